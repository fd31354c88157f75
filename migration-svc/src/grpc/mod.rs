//! The gRPC adapter: wire messages in, domain calls, wire messages out. Validation of
//! requests happens here, in `TryFrom` conversions; no SQL or store I/O.

pub mod artifacts;
pub mod bindings;
pub mod evidence;
pub mod runs;

use stowage_shared::api::{self, InvalidArgument};
use uuid::Uuid;

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

/// The field a refused request names.
#[cfg(test)]
fn refused<T: std::fmt::Debug>(result: Result<T, InvalidArgument>) -> &'static str {
    match result {
        Ok(value) => panic!("accepted: {value:?}"),
        Err(error) => error.field,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_id_must_be_a_uuid_and_may_be_padded() {
        let id = Uuid::now_v7();
        assert_eq!(api::id("id", &format!(" {id} ")).ok(), Some(id));
        assert_eq!(refused(api::id("run_id", "run-1")), "run_id");
        assert_eq!(refused(api::id("id", "")), "id");
    }

    #[test]
    fn an_optional_id_left_empty_is_none() {
        assert_eq!(api::optional_id("binding_id", "  ").ok(), Some(None));
        assert_eq!(refused(api::optional_id("binding_id", "x")), "binding_id");
    }

    #[test]
    fn required_text_is_trimmed_bounded_and_free_of_control_characters() {
        assert_eq!(required_text("name", " a ", 3).ok().as_deref(), Some("a"));
        assert_eq!(refused(required_text("name", "  ", 3)), "name");
        assert_eq!(refused(required_text("name", "abcd", 3)), "name");
        assert_eq!(refused(required_text("name", "a\0b", 3)), "name");
    }

    #[test]
    fn optional_text_left_empty_is_no_filter() {
        assert_eq!(optional_text("purpose", "", 5).ok(), Some(None));
        assert_eq!(
            optional_text("purpose", "doc", 5).ok(),
            Some(Some("doc".into()))
        );
        assert_eq!(refused(optional_text("purpose", "a\u{7}", 5)), "purpose");
    }
}
