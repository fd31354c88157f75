//! The gRPC adapter: wire messages in, domain calls, wire messages out. Validation of
//! requests happens here, in `TryFrom` conversions; no SQL or store I/O.

pub mod artifacts;
pub mod bindings;
pub mod evidence;
pub mod runs;

use stowage_shared::api::InvalidArgument;
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

/// A required free-text field of at most `max` characters, trimmed.
fn required_text(field: &'static str, raw: &str, max: usize) -> Result<String, InvalidArgument> {
    let text = raw.trim();
    if text.is_empty() || text.chars().count() > max {
        return Err(InvalidArgument::new(
            field,
            format!("is required, 1 to {max} characters"),
        ));
    }
    Ok(text.to_owned())
}

fn optional_uuid(id: Option<Uuid>) -> String {
    id.map(|id| id.to_string()).unwrap_or_default()
}
