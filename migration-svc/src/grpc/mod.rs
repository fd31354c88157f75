//! The gRPC adapter: wire messages in, domain calls, wire messages out. Validation of
//! requests happens here, in `TryFrom` conversions; no SQL or store I/O.

pub mod bindings;

use stowage_shared::api::InvalidArgument;
use uuid::Uuid;

/// Parses a resource id field.
fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidArgument::new(field, "must be a UUID"))
}
