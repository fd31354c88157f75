//! Parses arbitrary text as an Azure connection string: an error or a string whose
//! endpoint and account are usable and whose `Debug` hides the secret, never a panic.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_shared::blob::azure::{AccountSecret, ConnectionString};

fuzz_target!(|input: &[u8]| {
    let Ok(text) = std::str::from_utf8(input) else {
        return;
    };
    if let Ok(parsed) = ConnectionString::parse(text) {
        assert!(!parsed.account.is_empty());
        assert!(!parsed.blob_endpoint.ends_with('/'));
        assert!(parsed.blob_endpoint.starts_with("http://") || parsed.blob_endpoint.starts_with("https://"));
        // Debug output is exactly the public parts and a label for the secret.
        let label = match parsed.secret {
            AccountSecret::Key(_) => "AccountKey(redacted)",
            AccountSecret::Sas(_) => "SharedAccessSignature(redacted)",
        };
        let expected = format!(
            "ConnectionString {{ account: {:?}, secret: {label}, blob_endpoint: {:?} }}",
            parsed.account, parsed.blob_endpoint
        );
        assert_eq!(format!("{parsed:?}"), expected);
    }
});
