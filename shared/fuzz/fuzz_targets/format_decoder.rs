//! Feeds arbitrary bytes to the encrypted-object decoder in arbitrary chunks: it must
//! return a typed error or the exact plaintext, never panic. Inputs starting with 0xFF
//! are instead sealed and opened again, which must round-trip.

#![no_main]

use libfuzzer_sys::fuzz_target;
use stowage_shared::{
    format::{self, Decryptor},
    keyring::{Kek, KeyRing},
};

/// The key of the published test vectors, so seeds made from them decrypt.
fn keys() -> KeyRing {
    let kek: Vec<u8> = (0u8..32).collect();
    KeyRing::new(vec![Kek::new("k1", &kek).expect("valid key")], "k1").expect("valid ring")
}

fuzz_target!(|input: &[u8]| {
    let keys = keys();
    let Some((&selector, data)) = input.split_first() else {
        return;
    };
    if selector == 0xFF {
        let segment_size = 16 + u32::from(data.first().copied().unwrap_or(0));
        let sealed = format::seal(&keys, segment_size, data).expect("sealing never fails");
        assert_eq!(format::open(&keys, &sealed).expect("own output opens"), data);
        return;
    }
    let chunk = usize::from(selector).max(1);
    let mut decryptor = Decryptor::new(keys);
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        if decryptor.update(piece, &mut out).is_err() {
            return;
        }
    }
    let _ = decryptor.finish(&mut out);
});
