//! Parses arbitrary text as an Azure connection string: an error or a string whose
//! endpoint and account are usable, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_shared::blob::azure::ConnectionString;

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(parsed) = ConnectionString::parse(text) {
        assert!(!parsed.account.is_empty());
        assert!(!parsed.blob_endpoint.ends_with('/'));
        assert!(parsed.blob_endpoint.starts_with("http://") || parsed.blob_endpoint.starts_with("https://"));
        // Debug output never shows the secret.
        let shown = format!("{parsed:?}");
        match &parsed.secret {
            stowage_shared::blob::azure::AccountSecret::Key(key) if key.len() > 3 => {
                assert!(!shown.contains(key.as_str()))
            }
            stowage_shared::blob::azure::AccountSecret::Sas(sas) if sas.len() > 3 => {
                assert!(!shown.contains(sas.as_str()))
            }
            _ => {}
        }
    }
});
