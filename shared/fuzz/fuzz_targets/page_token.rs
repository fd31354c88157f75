//! Parses arbitrary text as a page token for each cursor type the services page by (a
//! UUID, an evidence sequence number): `INVALID_ARGUMENT` naming `page_token` or a cursor
//! that encodes to a token parsing back to the same cursor, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use serde::{Serialize, de::DeserializeOwned};
use stowage_shared::api::{page_token, parse_page_token};
use uuid::Uuid;

fn round_trips<C: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug>(text: &str) {
    match parse_page_token::<C>(text) {
        Ok(None) => assert!(text.is_empty()),
        Ok(Some(cursor)) => {
            let again = parse_page_token::<C>(&page_token(&cursor)).expect("own token parses");
            assert_eq!(again, Some(cursor));
        }
        Err(error) => assert_eq!(error.field, "page_token"),
    }
}

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    round_trips::<Uuid>(text);
    round_trips::<i64>(text);
});
