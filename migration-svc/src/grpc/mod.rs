//! The gRPC adapter: wire messages in, domain calls, wire messages out. Validation of
//! requests happens here, in `TryFrom` conversions; no SQL or store I/O.

pub mod artifacts;
pub mod bindings;
pub mod evidence;
pub mod runs;

use stowage_shared::api::{self, InvalidArgument};
use uuid::Uuid;

/// Parses a resource id field.
fn parse_id(field: &'static str, raw: &str) -> Result<Uuid, InvalidArgument> {
    Uuid::parse_str(raw.trim()).map_err(|_| InvalidArgument::new(field, "must be a UUID"))
}

/// Parses an optional resource id field (empty: none).
fn parse_optional_id(field: &'static str, raw: &str) -> Result<Option<Uuid>, InvalidArgument> {
    if raw.trim().is_empty() {
        return Ok(None);
    }
    parse_id(field, raw).map(Some)
}

/// A required free-text field of at most `max` characters, trimmed, with no control
/// characters.
fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidArgument> {
    api::required_text(field, raw, max).map(str::to_owned)
}

/// An optional free-text filter (empty: none), bounded like a stored field.
fn optional_text(
    field: &'static str,
    raw: &str,
    max: usize,
) -> Result<Option<String>, InvalidArgument> {
    let text = api::text(field, raw, max)?;
    Ok(Some(text.to_owned()).filter(|t| !t.is_empty()))
}

fn optional_uuid(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}
