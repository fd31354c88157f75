use proptest::prelude::*;

use super::*;
use crate::keyring::Kek;

fn ring(ids: &[(&str, u8)], primary: &str) -> KeyRing {
    let keks = ids
        .iter()
        .map(|(id, byte)| Kek::new(*id, &[*byte; KEY_LEN]).unwrap());
    KeyRing::new(keks.collect(), primary).unwrap()
}

fn k1() -> KeyRing {
    ring(&[("k1", 1)], "k1")
}

fn data(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 31 % 251) as u8).collect()
}

const SEG: u32 = 64;

#[test]
fn round_trips_at_segment_boundaries() {
    let keys = k1();
    let seg = SEG as usize;
    for len in [0, 1, seg - 1, seg, seg + 1, 2 * seg, 3 * seg + 7] {
        let sealed = seal(&keys, SEG, &data(len)).unwrap();
        let expected_len = Encryptor::sealed_len(len as u64, SEG) as usize;
        assert!(sealed.len() > expected_len, "header present");
        assert_eq!(open(&keys, &sealed).unwrap(), data(len), "len {len}");
    }
}

#[test]
fn any_chunking_of_input_gives_the_same_result() {
    let keys = k1();
    let plaintext = data(1000);
    let sealed = seal(&keys, SEG, &plaintext).unwrap();
    for chunk in [1, 3, 64, 80, 81, 999] {
        let mut decryptor = Decryptor::new(keys.clone());
        let mut out = Vec::new();
        for piece in sealed.chunks(chunk) {
            decryptor.update(piece, &mut out).unwrap();
        }
        decryptor.finish(&mut out).unwrap();
        assert_eq!(out, plaintext, "chunk {chunk}");

        let (mut encryptor, mut resealed) = Encryptor::new(&keys, SEG).unwrap();
        for piece in plaintext.chunks(chunk) {
            encryptor.update(piece, &mut resealed).unwrap();
        }
        encryptor.finish(&mut resealed).unwrap();
        assert_eq!(resealed.len(), sealed.len());
        assert_eq!(open(&keys, &resealed).unwrap(), plaintext);
    }
}

#[test]
fn truncation_at_any_length_is_an_error() {
    let keys = k1();
    let sealed = seal(&keys, SEG, &data(3 * SEG as usize + 7)).unwrap();
    for len in 0..sealed.len() {
        let error = open(&keys, &sealed[..len]).unwrap_err();
        assert!(
            matches!(
                error,
                FormatError::Truncated | FormatError::CorruptSegment(_)
            ),
            "len {len}: {error:?}"
        );
    }
    let header = sealed.len() - Encryptor::sealed_len(3 * SEG as u64 + 7, SEG) as usize;
    let whole_segments = header + 2 * (SEG as usize + TAG_LEN);
    assert_eq!(
        open(&keys, &sealed[..whole_segments]),
        Err(FormatError::Truncated)
    );
}

#[test]
fn appended_bytes_and_reordered_segments_are_detected() {
    let keys = k1();
    let plaintext = data(3 * SEG as usize + 7);
    let sealed = seal(&keys, SEG, &plaintext).unwrap();
    let mut appended = sealed.clone();
    appended.extend_from_slice(&[0u8; 20]);
    assert_eq!(open(&keys, &appended), Err(FormatError::TrailingData));

    let header = sealed.len() - Encryptor::sealed_len(plaintext.len() as u64, SEG) as usize;
    let seg = SEG as usize + TAG_LEN;
    let mut swapped = sealed.clone();
    let (first, second) = (header..header + seg, header + seg..header + 2 * seg);
    let first_bytes = sealed[first.clone()].to_vec();
    swapped.copy_within(second.clone(), first.start);
    swapped[second].copy_from_slice(&first_bytes);
    assert_eq!(open(&keys, &swapped), Err(FormatError::CorruptSegment(0)));

    // Dropping a middle segment.
    let mut dropped = sealed[..header + seg].to_vec();
    dropped.extend_from_slice(&sealed[header + 2 * seg..]);
    assert_eq!(open(&keys, &dropped), Err(FormatError::CorruptSegment(1)));
}

#[test]
fn every_flipped_bit_is_detected_and_never_yields_plaintext_of_its_segment() {
    let keys = k1();
    let plaintext = data(2 * SEG as usize + 5);
    let sealed = seal(&keys, SEG, &plaintext).unwrap();
    for i in 0..sealed.len() {
        for bit in [0x01, 0x80] {
            let mut bad = sealed.clone();
            bad[i] ^= bit;
            assert!(open(&keys, &bad).is_err(), "flip at byte {i} accepted");
        }
    }
}

#[test]
fn header_edits_wrong_keys_and_unknown_keys_are_typed_errors() {
    let keys = k1();
    let sealed = seal(&keys, SEG, b"hello").unwrap();
    let mut not_ours = sealed.clone();
    not_ours[0] = b'X';
    assert_eq!(open(&keys, &not_ours), Err(FormatError::NotEncrypted));
    let mut version = sealed.clone();
    version[4] = 9;
    assert_eq!(
        open(&keys, &version),
        Err(FormatError::UnsupportedVersion(9))
    );
    let mut aead = sealed.clone();
    aead[5] = 7;
    assert_eq!(open(&keys, &aead), Err(FormatError::UnsupportedAead(7)));
    let mut segment_size = sealed.clone();
    segment_size[9] ^= 0x20;
    assert_eq!(
        open(&keys, &segment_size),
        Err(FormatError::HeaderUnauthentic("k1".into()))
    );
    let mut zero_segment = sealed.clone();
    zero_segment[6..10].copy_from_slice(&0u32.to_be_bytes());
    assert_eq!(
        open(&keys, &zero_segment),
        Err(FormatError::InvalidSegmentSize(0))
    );

    let wrong_material = ring(&[("k1", 2)], "k1");
    assert_eq!(
        open(&wrong_material, &sealed),
        Err(FormatError::HeaderUnauthentic("k1".into()))
    );
    let other = ring(&[("k2", 1)], "k2");
    assert_eq!(
        open(&other, &sealed),
        Err(FormatError::UnknownKek("k1".into()))
    );
    assert_eq!(
        open(&keys, b"plain text, not ours"),
        Err(FormatError::NotEncrypted)
    );
    assert_eq!(open(&keys, b""), Err(FormatError::Truncated));
}

#[test]
fn rotation_keeps_old_objects_readable_and_writes_under_the_new_primary() {
    let old = seal(&k1(), SEG, b"old").unwrap();
    let rotated = ring(&[("k1", 1), ("k2", 2)], "k2");
    assert_eq!(open(&rotated, &old).unwrap(), b"old");
    let new = seal(&rotated, SEG, b"new").unwrap();
    let (encryptor, _) = Encryptor::new(&rotated, SEG).unwrap();
    assert_eq!(encryptor.kek_id(), "k2");
    let k2_only = ring(&[("k2", 2)], "k2");
    assert_eq!(open(&k2_only, &new).unwrap(), b"new");
    assert_eq!(
        open(&k2_only, &old),
        Err(FormatError::UnknownKek("k1".into()))
    );
}

#[test]
fn segment_sizes_out_of_range_are_refused() {
    assert!(Encryptor::new(&k1(), MIN_SEGMENT_SIZE - 1).is_err());
    assert!(Encryptor::new(&k1(), MAX_SEGMENT_SIZE + 1).is_err());
}

proptest! {
    #[test]
    fn round_trip_any_data_segment_size_and_chunking(
        plaintext in proptest::collection::vec(any::<u8>(), 0..2000),
        segment_size in MIN_SEGMENT_SIZE..300,
        chunk in 1usize..500,
    ) {
        let keys = k1();
        let (mut encryptor, mut sealed) = Encryptor::new(&keys, segment_size).unwrap();
        for piece in plaintext.chunks(chunk) {
            encryptor.update(piece, &mut sealed).unwrap();
        }
        encryptor.finish(&mut sealed).unwrap();
        let mut decryptor = Decryptor::new(keys);
        let mut out = Vec::new();
        for piece in sealed.chunks(chunk) {
            decryptor.update(piece, &mut out).unwrap();
        }
        decryptor.finish(&mut out).unwrap();
        prop_assert_eq!(out, plaintext);
    }

    #[test]
    fn any_single_byte_change_fails(
        plaintext in proptest::collection::vec(any::<u8>(), 0..600),
        position in any::<prop::sample::Index>(),
        delta in 1u8..=255,
    ) {
        let keys = k1();
        let mut sealed = seal(&keys, 64, &plaintext).unwrap();
        let i = position.index(sealed.len());
        sealed[i] = sealed[i].wrapping_add(delta);
        prop_assert!(open(&keys, &sealed).is_err());
    }
}

/// The vectors published in `shared/FORMAT.md`, checked in both directions.
mod vectors {
    use super::*;

    const SPEC: &str = include_str!("../../FORMAT.md");

    fn field<'a>(vector: &'a str, name: &str) -> &'a str {
        let start = vector
            .find(&format!("{name}:"))
            .unwrap_or_else(|| panic!("{name} missing"));
        let rest = &vector[start + name.len() + 1..];
        rest[..rest.find('\n').unwrap_or(rest.len())].trim()
    }

    fn hex(text: &str) -> Vec<u8> {
        let clean: String = text.chars().filter(|c| !c.is_whitespace()).collect();
        ::hex::decode(clean).unwrap()
    }

    fn vectors() -> Vec<&'static str> {
        SPEC.split("```vector")
            .skip(1)
            .map(|v| &v[..v.find("```").unwrap()])
            .collect()
    }

    #[test]
    fn published_vectors_decrypt_and_reencrypt_byte_for_byte() {
        let vectors = vectors();
        assert!(vectors.len() >= 2, "FORMAT.md has test vectors");
        for vector in vectors {
            let kek = Kek::new(field(vector, "kek_id"), &hex(field(vector, "kek"))).unwrap();
            let keys = KeyRing::new(
                vec![Kek::new(kek.id(), &hex(field(vector, "kek"))).unwrap()],
                kek.id(),
            )
            .unwrap();
            let material = KeyMaterial {
                data_key: hex(field(vector, "data_key")).try_into().unwrap(),
                nonce_prefix: hex(field(vector, "nonce_prefix")).try_into().unwrap(),
                wrap_nonce: hex(field(vector, "wrap_nonce")).try_into().unwrap(),
            };
            let segment_size: u32 = field(vector, "segment_size").parse().unwrap();
            let plaintext = hex(field(vector, "plaintext"));
            let object_start = vector.find("object:").unwrap() + "object:".len();
            let object = hex(&vector[object_start..]);
            assert_eq!(open(&keys, &object).unwrap(), plaintext);
            let (mut encryptor, mut sealed) =
                Encryptor::with_material(&kek, segment_size, &material).unwrap();
            encryptor.update(&plaintext, &mut sealed).unwrap();
            encryptor.finish(&mut sealed).unwrap();
            assert_eq!(::hex::encode(&sealed), ::hex::encode(&object));
        }
    }

    /// Prints vectors for FORMAT.md: `cargo test -p stowage-shared print_vectors -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn print_vectors() {
        let kek_bytes: Vec<u8> = (0x00..0x20).collect();
        let kek = Kek::new("k1", &kek_bytes).unwrap();
        let material = KeyMaterial {
            data_key: core::array::from_fn(|i| 0x40 + i as u8),
            nonce_prefix: core::array::from_fn(|i| 0xa0 + i as u8),
            wrap_nonce: core::array::from_fn(|i| 0xb0 + i as u8),
        };
        for plaintext in [&b"stowage: a test vector of three segments"[..], b""] {
            let (mut encryptor, mut sealed) =
                Encryptor::with_material(&kek, 16, &material).unwrap();
            encryptor.update(plaintext, &mut sealed).unwrap();
            encryptor.finish(&mut sealed).unwrap();
            println!(
                "kek_id: k1\nkek: {}\ndata_key: {}\nnonce_prefix: {}\nwrap_nonce: {}\nsegment_size: 16\nplaintext: {}\nobject:",
                ::hex::encode(&kek_bytes),
                ::hex::encode(material.data_key),
                ::hex::encode(material.nonce_prefix),
                ::hex::encode(material.wrap_nonce),
                ::hex::encode(plaintext)
            );
            for line in sealed.chunks(32) {
                println!("{}", ::hex::encode(line));
            }
            println!();
        }
    }
}
