//! The first stage of a restore: the blob streamed out of the job's store version,
//! decrypted and digest-checked (or, for the earlier system's unencrypted blobs, as
//! stored), into the parser's channel. A missing blob is `NOT_FOUND`.

use bytes::Bytes;
use futures::{StreamExt, pin_mut, stream::BoxStream};
use stowage_shared::blob::{BlobKey, ObjectError, encrypted::Expected};
use tokio::sync::mpsc;

use crate::{
    domain::{jobs::ArchiveInfo, payload::BlobFormat},
    error::{Error, Result},
};

/// Streams the blob's plaintext (still compressed) into `out`; returns stored bytes.
pub(super) async fn fetch(
    objects: &stowage_shared::blob::EncryptedStore,
    info: &ArchiveInfo,
    out: mpsc::Sender<std::io::Result<Bytes>>,
) -> Result<u64> {
    let key = BlobKey::new(info.blob_key.clone())?;
    let stream: BoxStream<'static, Result<Bytes>> = if info.format == BlobFormat::LegacyJsonGzip {
        // Written by the earlier system: unencrypted, so the stored bytes are the payload.
        let key_of_error = key.clone();
        let blob = objects
            .store()
            .get(&key)
            .await
            .map_err(|e| blob_error(e, &key))?;
        blob.stream
            .map(move |chunk| chunk.map_err(|e| blob_error(e, &key_of_error)))
            .boxed()
    } else {
        // The digest covers the compressed payload; its length is not recorded (the job's
        // plaintext size is that of the JSON), so only the digest is checked.
        let expected = info.plaintext_sha256.clone().map(|sha256| Expected {
            sha256,
            plaintext_len: None,
        });
        let key_of_error = key.clone();
        objects
            .get(&key, expected)
            .await
            .map_err(|e| object_error(e, &key))?
            .map(move |chunk| chunk.map_err(|e| object_error(e, &key_of_error)))
            .boxed()
    };
    pin_mut!(stream);
    let mut read = 0u64;
    while let Some(chunk) = stream.next().await {
        match chunk {
            Ok(chunk) => {
                read += chunk.len() as u64;
                if out.send(Ok(chunk)).await.is_err() {
                    break;
                }
            }
            Err(error) => {
                // Tell the parser the payload stops here, so it fails instead of waiting.
                let _ = out.try_send(Err(std::io::Error::other(error.to_string())));
                return Err(error);
            }
        }
    }
    Ok(read)
}

fn object_error(error: ObjectError, key: &BlobKey) -> Error {
    match error {
        ObjectError::Blob(blob) => blob_error(blob, key),
        other => other.into(),
    }
}

fn blob_error(error: stowage_shared::blob::BlobError, key: &BlobKey) -> Error {
    match error {
        stowage_shared::blob::BlobError::NotFound(_) => {
            Error::NotFound(format!("archive blob {key} of this archived job"))
        }
        other => other.into(),
    }
}
