//! Verified, encrypted objects. `put` streams plaintext → encrypt → upload (multipart
//! above one part) while hashing, then reads the object back, decrypts, hashes again and
//! compares: a write counts only if the read-back matches. `get` streams plaintext and,
//! given the expected digest, checks it at the end.

use std::{
    fmt::Display,
    sync::{Arc, Mutex},
};

use async_stream::try_stream;
use bytes::Bytes;
use futures::{Stream, StreamExt, pin_mut, stream::BoxStream};
use object_store::WriteMultipart;
use serde::{Deserialize, Serialize};

use super::store::{BlobError, BlobKey, BlobStore};
use crate::{
    digest::{HashingStopped, Sha256Pipe},
    format::{self, Decryptor, Encryptor, FormatError},
    keyring::KeyRing,
};

pub const META_SHA256: &str = "stowage_sha256";
pub const META_LENGTH: &str = "stowage_plaintext_length";
pub const META_FORMAT: &str = "stowage_format";
/// Stored bytes per uploaded part; objects smaller than one part go up in one request.
pub const DEFAULT_PART_SIZE: usize = 8 << 20;
/// Parts uploading at once; with the part size this bounds upload memory.
pub const DEFAULT_PARTS_IN_FLIGHT: usize = 2;

/// What a verified write proved.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Receipt {
    /// SHA-256 of the plaintext, lowercase hex.
    pub sha256: String,
    pub plaintext_len: u64,
    pub stored_len: u64,
    pub kek_id: String,
}

#[derive(Debug, thiserror::Error)]
pub enum ObjectError {
    #[error(transparent)]
    Blob(#[from] BlobError),
    /// The stored bytes are not a valid object under our keys.
    #[error("object is unreadable: {0}")]
    Format(#[from] FormatError),
    #[error("checksum mismatch: expected sha256 {expected}, read {actual}")]
    ChecksumMismatch { expected: String, actual: String },
    #[error("length mismatch: expected {expected} bytes, read {actual}")]
    LengthMismatch { expected: u64, actual: u64 },
    #[error("reading the plaintext to store failed: {0}")]
    Source(String),
    /// Ours, not the object's: its digest could not be computed.
    #[error(transparent)]
    Hashing(#[from] HashingStopped),
}

impl ObjectError {
    pub fn is_transient(&self) -> bool {
        matches!(self, ObjectError::Blob(e) if e.is_transient())
    }
}

/// The expected content of an object being read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Expected {
    pub sha256: String,
    pub plaintext_len: Option<u64>,
}

/// A [`BlobStore`] whose objects are encrypted with the key ring and verified.
#[derive(Clone, Debug)]
pub struct EncryptedStore {
    store: BlobStore,
    keys: KeyRing,
    segment_size: u32,
    part_size: usize,
    parts_in_flight: usize,
}

impl EncryptedStore {
    pub fn new(store: BlobStore, keys: KeyRing) -> Self {
        Self {
            store,
            keys,
            segment_size: format::DEFAULT_SEGMENT_SIZE,
            part_size: DEFAULT_PART_SIZE,
            parts_in_flight: DEFAULT_PARTS_IN_FLIGHT,
        }
    }

    pub fn with_segment_size(mut self, segment_size: u32) -> Self {
        self.segment_size = segment_size;
        self
    }

    /// Parts of multipart uploads this size (no smaller than the store takes).
    pub fn with_part_size(mut self, part_size: usize) -> Self {
        self.part_size = part_size
            .max(format::TAG_LEN + 1)
            .max(self.store.min_part_size());
        self
    }

    pub fn store(&self) -> &BlobStore {
        &self.store
    }

    /// The same store under another key ring (a tenant's, over the service's).
    pub fn with_keys(&self, keys: KeyRing) -> Self {
        Self {
            keys,
            ..self.clone()
        }
    }

    /// Verified write: encrypts and uploads `plaintext`, then reads it back and checks it.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn put<S, E>(&self, key: &BlobKey, plaintext: S) -> Result<Receipt, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let written = self.write(key, plaintext, false, None).await?;
        self.read_back(key, written).await
    }

    /// Verified write of plaintext whose digest is already known to be `expected`'s: a
    /// stream that checks itself, as [`EncryptedStore::get`] with `expected` does, ending
    /// in an error instead of bytes that differ. The plaintext is not hashed a second time
    /// on the way in; the read-back checks the stored object against `expected`.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn put_expected<S, E>(
        &self,
        key: &BlobKey,
        plaintext: S,
        expected: &Expected,
    ) -> Result<Receipt, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let written = self.write(key, plaintext, false, Some(expected)).await?;
        self.read_back(key, written).await
    }

    /// Reads a written object back and checks it is what was written, under the same key.
    async fn read_back(&self, key: &BlobKey, written: Receipt) -> Result<Receipt, ObjectError> {
        let expected = Expected {
            sha256: written.sha256.clone(),
            plaintext_len: Some(written.plaintext_len),
        };
        let read = self.verify(key, &expected).await?;
        if read.kek_id != written.kek_id {
            return Err(ObjectError::Format(FormatError::HeaderUnauthentic(
                read.kek_id,
            )));
        }
        Ok(written)
    }

    /// Like [`EncryptedStore::put`], but fails with `AlreadyExists` when the key is taken
    /// (atomic for objects written in one request; checked beforehand for larger ones).
    pub async fn put_new<S, E>(&self, key: &BlobKey, plaintext: S) -> Result<Receipt, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let written = self.write(key, plaintext, true, None).await?;
        self.read_back(key, written).await
    }

    /// Writes `plaintext` encrypted to `key`, hashing it unless its digest is `known`. A
    /// write that fails after its multipart upload began aborts the upload, so the store
    /// drops the parts (S3's incomplete upload, a `file` store's staging file) instead of
    /// keeping them until a lifecycle rule does.
    async fn write<S, E>(
        &self,
        key: &BlobKey,
        plaintext: S,
        create_only: bool,
        known: Option<&Expected>,
    ) -> Result<Receipt, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let mut upload = None;
        let written = self
            .write_into(key, plaintext, create_only, known, &mut upload)
            .await;
        if written.is_err()
            && let Some(upload) = upload.take()
            && let Err(error) = upload.abort().await
        {
            tracing::warn!(%key, %error, "aborting a failed upload failed; its parts stay");
        }
        written
    }

    async fn write_into<S, E>(
        &self,
        key: &BlobKey,
        plaintext: S,
        create_only: bool,
        known: Option<&Expected>,
        upload: &mut Option<WriteMultipart>,
    ) -> Result<Receipt, ObjectError>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: Display,
    {
        let (mut encryptor, mut sealed) = Encryptor::new(&self.keys, self.segment_size)?;
        let kek_id = encryptor.kek_id().to_owned();
        let mut digest = match known {
            Some(known) => Digest::Known(known.sha256.to_ascii_lowercase()),
            None => Digest::Hashing(Sha256Pipe::new()),
        };
        let mut plaintext_len = 0u64;
        let mut stored_len = 0u64;
        let parts = PartPool::default();
        pin_mut!(plaintext);
        while let Some(chunk) = plaintext.next().await {
            let chunk = chunk.map_err(|e| ObjectError::Source(e.to_string()))?;
            plaintext_len += chunk.len() as u64;
            encryptor.update(&chunk, &mut sealed)?;
            digest.update(chunk).await;
            if sealed.len() >= self.part_size {
                if upload.is_none() {
                    if create_only && self.store.size(key).await.is_ok() {
                        return Err(BlobError::AlreadyExists(key.to_string()).into());
                    }
                    let metadata = [(META_FORMAT, format::VERSION.to_string())];
                    *upload = Some(
                        self.store
                            .put_multipart(key, self.part_size, &metadata)
                            .await?,
                    );
                }
                if let Some(upload) = upload.as_mut() {
                    upload
                        .wait_for_capacity(self.parts_in_flight)
                        .await
                        .map_err(BlobError::from)?;
                    stored_len += sealed.len() as u64;
                    let next = parts.take(self.part_size + self.segment_size as usize);
                    upload.put(parts.share(std::mem::replace(&mut sealed, next)));
                }
            }
        }
        encryptor.finish(&mut sealed)?;
        stored_len += sealed.len() as u64;
        let sha256 = digest.finish().await?;
        match upload.take() {
            Some(mut upload) => {
                // finish aborts the upload itself when it fails
                upload.put(Bytes::from(sealed));
                upload.finish().await.map_err(BlobError::from)?;
            }
            None => {
                let metadata = [
                    (META_SHA256, sha256.clone()),
                    (META_LENGTH, plaintext_len.to_string()),
                    (META_FORMAT, format::VERSION.to_string()),
                ];
                self.store
                    .put(key, Bytes::from(sealed), create_only, &metadata)
                    .await?;
            }
        }
        Ok(Receipt {
            sha256,
            plaintext_len,
            stored_len,
            kek_id,
        })
    }

    /// Reads the whole object back, decrypting and hashing, and compares with `expected`.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn verify(&self, key: &BlobKey, expected: &Expected) -> Result<Receipt, ObjectError> {
        let (stream, kek_id, stored_len) = self.open(key, Some(expected.clone())).await?;
        pin_mut!(stream);
        let mut plaintext_len = 0u64;
        while let Some(chunk) = stream.next().await {
            plaintext_len += chunk?.len() as u64;
        }
        Ok(Receipt {
            sha256: expected.sha256.clone(),
            plaintext_len,
            stored_len,
            kek_id: kek_id.unwrap_or_default(),
        })
    }

    /// Streams the plaintext. With `expected`, the stream ends in an error instead of its
    /// last chunk when the digest or length differs.
    pub async fn get(
        &self,
        key: &BlobKey,
        expected: Option<Expected>,
    ) -> Result<BoxStream<'static, Result<Bytes, ObjectError>>, ObjectError> {
        Ok(self.open(key, expected).await?.0)
    }

    async fn open(
        &self,
        key: &BlobKey,
        expected: Option<Expected>,
    ) -> Result<
        (
            BoxStream<'static, Result<Bytes, ObjectError>>,
            Option<String>,
            u64,
        ),
        ObjectError,
    > {
        let read = self.store.get(key).await?;
        let stored_len = read.size;
        let mut decryptor = Decryptor::new(self.keys.clone());
        let mut source = read.stream;
        // Read up to the header first so the caller learns the KEK (and header errors)
        // before streaming.
        let mut first = Vec::new();
        while decryptor.kek_id().is_none() {
            match source.next().await {
                Some(chunk) => decryptor.update(&chunk?, &mut first)?,
                None => break,
            }
        }
        let kek_id = decryptor.kek_id().map(str::to_owned);
        let stream = try_stream! {
            let mut hasher = Sha256Pipe::new();
            let mut plaintext_len = 0u64;
            if !first.is_empty() {
                let chunk = Bytes::from(first);
                plaintext_len += chunk.len() as u64;
                hasher.update(chunk.clone()).await;
                yield chunk;
            }
            let mut out = Vec::new();
            while let Some(chunk) = source.next().await {
                decryptor.update(&chunk?, &mut out)?;
                if !out.is_empty() {
                    let chunk = Bytes::from(std::mem::take(&mut out));
                    plaintext_len += chunk.len() as u64;
                    hasher.update(chunk.clone()).await;
                    yield chunk;
                }
            }
            decryptor.finish(&mut out)?;
            let last = Bytes::from(out);
            plaintext_len += last.len() as u64;
            hasher.update(last.clone()).await;
            let actual = hex::encode(hasher.finish().await?);
            if let Some(expected) = expected {
                if let Some(len) = expected.plaintext_len && len != plaintext_len {
                    Err(ObjectError::LengthMismatch { expected: len, actual: plaintext_len })?;
                }
                if !expected.sha256.eq_ignore_ascii_case(&actual) {
                    Err(ObjectError::ChecksumMismatch { expected: expected.sha256, actual })?;
                }
            }
            if !last.is_empty() {
                yield last;
            }
        };
        Ok((stream.boxed(), kek_id, stored_len))
    }
}

/// The plaintext digest of a write: hashed on the way in, or known beforehand.
enum Digest {
    Hashing(Sha256Pipe),
    Known(String),
}

impl Digest {
    async fn update(&mut self, chunk: Bytes) {
        if let Digest::Hashing(hasher) = self {
            hasher.update(chunk).await;
        }
    }

    /// Lowercase hex.
    async fn finish(self) -> Result<String, HashingStopped> {
        match self {
            Digest::Hashing(hasher) => Ok(hex::encode(hasher.finish().await?)),
            Digest::Known(digest) => Ok(digest),
        }
    }
}

/// Upload part buffers, handed back when the upload drops a finished part, so a large
/// write reuses a few buffers instead of paging in fresh memory for every part.
#[derive(Clone, Default)]
struct PartPool(Arc<Mutex<Vec<Vec<u8>>>>);

/// A part on its way up; its buffer returns to the pool when the upload is done with it.
struct PooledPart {
    buf: Vec<u8>,
    pool: PartPool,
}

impl PartPool {
    const KEEP: usize = DEFAULT_PARTS_IN_FLIGHT + 1;

    fn take(&self, capacity: usize) -> Vec<u8> {
        let reused = self.0.lock().ok().and_then(|mut pool| pool.pop());
        let mut buf = reused.unwrap_or_default();
        buf.reserve(capacity);
        buf
    }

    fn share(&self, buf: Vec<u8>) -> Bytes {
        Bytes::from_owner(PooledPart {
            buf,
            pool: self.clone(),
        })
    }
}

impl AsRef<[u8]> for PooledPart {
    fn as_ref(&self) -> &[u8] {
        &self.buf
    }
}

impl Drop for PooledPart {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.buf);
        buf.clear();
        if let Ok(mut pool) = self.pool.0.lock()
            && pool.len() < PartPool::KEEP
        {
            pool.push(buf);
        }
    }
}
