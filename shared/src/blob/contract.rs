//! The contract every blob backend must pass, through [`EncryptedStore`]: round trips at
//! segment and part boundaries, conditional create, not-found, every tamper case on the
//! stored bytes, checksum checks and KEK rotation. `blob_contract_suite!` expands it into
//! one test per case for a backend (memory and file in unit tests, Azurite in
//! `integration/`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};

use super::{
    BlobError, BlobKey, BlobStore, EncryptedStore, ObjectError,
    encrypted::{Expected, META_SHA256},
};
use crate::{
    format::{FormatError, TAG_LEN},
    keyring::{KEY_LEN, Kek, KeyRing},
};

/// Segment size the suite writes with, small enough to make many segments cheaply.
pub const SEGMENT: u32 = 64 * 1024;

pub fn ring(ids: &[(&str, u8)], primary: &str) -> KeyRing {
    let keks = ids
        .iter()
        .map(|(id, b)| Kek::new(*id, &[*b; KEY_LEN]).unwrap())
        .collect();
    KeyRing::new(keks, primary).unwrap()
}

fn key(case: &str) -> BlobKey {
    BlobKey::new(format!("contract/{}/{case}", uuid::Uuid::new_v4().simple())).unwrap()
}

/// `len` bytes of the contract's test data (a pattern seeded by the length).
pub fn data(len: usize) -> Vec<u8> {
    pattern(0x2545_f491_4f6c_dd1d ^ len as u64, len)
}

/// `len` pseudo-random bytes (xorshift64) from `seed`, the same on every run; a zero seed
/// gives zeros.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed;
    (0..len)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect()
}

fn chunks(
    bytes: &[u8],
    size: usize,
) -> impl futures::Stream<Item = Result<Bytes, std::io::Error>> + Send + use<> {
    let chunks: Vec<_> = bytes
        .chunks(size.max(1))
        .map(Bytes::copy_from_slice)
        .map(Ok)
        .collect();
    stream::iter(chunks)
}

fn objects(store: &BlobStore, keys: KeyRing) -> EncryptedStore {
    EncryptedStore::new(store.clone(), keys).with_segment_size(SEGMENT)
}

async fn read_all(
    objects: &EncryptedStore,
    key: &BlobKey,
    expected: Option<Expected>,
) -> Result<Vec<u8>, ObjectError> {
    let stream = objects.get(key, expected).await?;
    let parts: Vec<Bytes> = stream.try_collect().await?;
    Ok(parts.concat())
}

async fn raw(store: &BlobStore, key: &BlobKey) -> Vec<u8> {
    let read = store.get(key).await.unwrap();
    let parts: Vec<Bytes> = read.stream.try_collect().await.unwrap();
    parts.concat()
}

pub async fn round_trips_at_segment_boundaries(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let seg = SEGMENT as usize;
    for len in [0, 1, seg - 1, seg, seg + 1, 3 * seg + 7] {
        let plaintext = data(len);
        let key = key(&format!("len-{len}"));
        let receipt = objects.put(&key, chunks(&plaintext, 10_000)).await.unwrap();
        assert_eq!(receipt.plaintext_len, len as u64);
        assert_eq!(receipt.sha256, hex::encode(crate::api::sha256(&plaintext)));
        assert_eq!(receipt.kek_id, "k1");
        assert_eq!(receipt.stored_len, store.size(&key).await.unwrap());
        let expected = Expected {
            sha256: receipt.sha256.clone(),
            plaintext_len: Some(len as u64),
        };
        assert_eq!(
            read_all(&objects, &key, Some(expected)).await.unwrap(),
            plaintext,
            "len {len}"
        );
        store.delete(&key).await.unwrap();
    }
}

/// 64 MiB through 8 MiB parts: the multipart path, streamed.
pub async fn large_objects_go_up_in_parts(store: BlobStore) {
    let objects = EncryptedStore::new(store.clone(), ring(&[("k1", 1)], "k1"));
    let plaintext = data(64 << 20);
    let key = key("large");
    let receipt = objects
        .put(&key, chunks(&plaintext, 1 << 20))
        .await
        .unwrap();
    assert_eq!(receipt.plaintext_len, 64 << 20);
    assert!(receipt.stored_len > receipt.plaintext_len);
    let stream = objects.get(&key, None).await.unwrap();
    let mut offset = 0;
    let mut stream = std::pin::pin!(stream);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.unwrap();
        assert_eq!(&plaintext[offset..offset + chunk.len()], &chunk[..]);
        offset += chunk.len();
    }
    assert_eq!(offset, plaintext.len());
    store.delete(&key).await.unwrap();
}

pub async fn small_parts_still_round_trip(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1")).with_part_size(100_000);
    let plaintext = data(1_000_003);
    let key = key("small-parts");
    let receipt = objects.put(&key, chunks(&plaintext, 33_333)).await.unwrap();
    assert_eq!(receipt.stored_len, store.size(&key).await.unwrap());
    assert_eq!(read_all(&objects, &key, None).await.unwrap(), plaintext);
    store.delete(&key).await.unwrap();
}

pub async fn create_only_refuses_an_existing_key(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let key = key("create-only");
    objects.put_new(&key, chunks(b"first", 5)).await.unwrap();
    let second = objects
        .put_new(&key, chunks(b"second", 6))
        .await
        .unwrap_err();
    assert!(
        matches!(second, ObjectError::Blob(BlobError::AlreadyExists(_))),
        "{second:?}"
    );
    assert_eq!(read_all(&objects, &key, None).await.unwrap(), b"first");
    // A plain put overwrites.
    objects.put(&key, chunks(b"third", 5)).await.unwrap();
    assert_eq!(read_all(&objects, &key, None).await.unwrap(), b"third");
}

pub async fn missing_objects_are_not_found(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let missing = key("missing");
    let error = objects.get(&missing, None).await.err().unwrap();
    assert!(
        matches!(error, ObjectError::Blob(BlobError::NotFound(_))),
        "{error:?}"
    );
    assert!(matches!(
        store.delete(&missing).await,
        Err(BlobError::NotFound(_))
    ));
    assert!(matches!(
        store.size(&missing).await,
        Err(BlobError::NotFound(_))
    ));
}

/// Rewrites the stored bytes of `key` and expects reading to fail with `expected`.
async fn tampered(
    store: &BlobStore,
    objects: &EncryptedStore,
    key: &BlobKey,
    bytes: Vec<u8>,
) -> ObjectError {
    store
        .put(key, Bytes::from(bytes), false, &[])
        .await
        .unwrap();
    read_all(objects, key, None).await.unwrap_err()
}

pub async fn every_tamper_of_stored_bytes_is_detected(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let plaintext = data(3 * SEGMENT as usize + 7);
    let key = key("tamper");
    objects.put(&key, chunks(&plaintext, 50_000)).await.unwrap();
    let original = raw(&store, &key).await;
    let seg = SEGMENT as usize + TAG_LEN;
    let header = original.len() - (3 * seg + 7 + TAG_LEN);

    let format_error = |e: ObjectError| match e {
        ObjectError::Format(f) => f,
        other => panic!("expected a format error, got {other:?}"),
    };
    let mut header_bit = original.clone();
    header_bit[8] ^= 1;
    let error = format_error(tampered(&store, &objects, &key, header_bit).await);
    assert_eq!(error, FormatError::HeaderUnauthentic("k1".into()));

    let mut segment_bit = original.clone();
    segment_bit[header + seg + 100] ^= 0x40;
    let error = format_error(tampered(&store, &objects, &key, segment_bit).await);
    assert_eq!(error, FormatError::CorruptSegment(1));

    let truncated = original[..header + 2 * seg].to_vec();
    let error = format_error(tampered(&store, &objects, &key, truncated).await);
    assert_eq!(error, FormatError::Truncated);

    let mut appended = original.clone();
    appended.extend_from_slice(b"appended");
    let error = format_error(tampered(&store, &objects, &key, appended).await);
    assert_eq!(error, FormatError::TrailingData);

    let mut swapped = original.clone();
    swapped[header..header + seg].copy_from_slice(&original[header + seg..header + 2 * seg]);
    swapped[header + seg..header + 2 * seg].copy_from_slice(&original[header..header + seg]);
    let error = format_error(tampered(&store, &objects, &key, swapped).await);
    assert_eq!(error, FormatError::CorruptSegment(0));

    let error = format_error(tampered(&store, &objects, &key, b"not encrypted".to_vec()).await);
    assert_eq!(error, FormatError::NotEncrypted);
    store.delete(&key).await.unwrap();
}

pub async fn a_wrong_expected_digest_is_a_checksum_mismatch(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let key = key("checksum");
    let receipt = objects.put(&key, chunks(b"payload", 3)).await.unwrap();
    let wrong = Expected {
        sha256: "00".repeat(32),
        plaintext_len: None,
    };
    let error = read_all(&objects, &key, Some(wrong)).await.unwrap_err();
    assert!(
        matches!(error, ObjectError::ChecksumMismatch { .. }),
        "{error:?}"
    );
    let right = Expected {
        sha256: receipt.sha256.to_uppercase(),
        plaintext_len: Some(7),
    };
    assert_eq!(
        read_all(&objects, &key, Some(right)).await.unwrap(),
        b"payload"
    );
}

pub async fn rotation_keeps_old_objects_readable(store: BlobStore) {
    let old = key("rotation-old");
    let new = key("rotation-new");
    objects(&store, ring(&[("k1", 1)], "k1"))
        .put(&old, chunks(b"old", 3))
        .await
        .unwrap();
    let rotated = objects(&store, ring(&[("k1", 1), ("k2", 2)], "k2"));
    assert_eq!(read_all(&rotated, &old, None).await.unwrap(), b"old");
    let receipt = rotated.put(&new, chunks(b"new", 3)).await.unwrap();
    assert_eq!(receipt.kek_id, "k2");
    let k2_only = objects(&store, ring(&[("k2", 2)], "k2"));
    assert_eq!(read_all(&k2_only, &new, None).await.unwrap(), b"new");
    let error = read_all(&k2_only, &old, None).await.unwrap_err();
    assert!(
        matches!(error, ObjectError::Format(FormatError::UnknownKek(ref id)) if id == "k1"),
        "{error:?}"
    );
}

pub async fn single_request_objects_carry_their_digest(store: BlobStore) {
    let objects = objects(&store, ring(&[("k1", 1)], "k1"));
    let key = key("metadata");
    let receipt = objects.put(&key, chunks(b"described", 4)).await.unwrap();
    if store.keeps_attributes() {
        let read = store.get(&key).await.unwrap();
        let digest = read
            .attributes
            .get(&object_store::Attribute::Metadata(META_SHA256.into()))
            .map(|v| v.to_string());
        assert_eq!(digest.as_deref(), Some(receipt.sha256.as_str()));
    }
}

/// Expands into one `#[tokio::test]` per contract case; `$store` is a future of the
/// [`BlobStore`] to test, evaluated once per case.
#[macro_export]
macro_rules! blob_contract_suite {
    ($store:expr) => {
        $crate::blob_contract_suite!(@cases $store;
            round_trips_at_segment_boundaries,
            large_objects_go_up_in_parts,
            small_parts_still_round_trip,
            create_only_refuses_an_existing_key,
            missing_objects_are_not_found,
            every_tamper_of_stored_bytes_is_detected,
            a_wrong_expected_digest_is_a_checksum_mismatch,
            rotation_keeps_old_objects_readable,
            single_request_objects_carry_their_digest,
        );
    };
    (@cases $store:expr; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                $crate::blob::contract::$case($store.await).await;
            }
        )*
    };
}
