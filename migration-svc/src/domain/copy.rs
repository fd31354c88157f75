//! One live item's copy: the source object streams out of its binding (decrypted, its
//! digest checked against the artifact's) into a verified encrypted write on the target,
//! never whole in memory. A failure says which side it came from and what it means.

use std::sync::{Arc, Mutex};

use futures::StreamExt;
use stowage_shared::blob::{
    BlobError, BlobKey, EncryptedStore, ObjectError, Receipt, encrypted::Expected,
};

use super::model::runs::ItemCause;

#[derive(Debug, thiserror::Error)]
pub enum CopyError {
    #[error("source: {0}")]
    Source(ObjectError),
    #[error("target: {0}")]
    Target(ObjectError),
}

impl CopyError {
    /// The item cause of a failure that ends the item; `None` for a target that did not
    /// take the write (retried, then the run fails closed).
    pub fn item_cause(&self) -> Option<ItemCause> {
        use ObjectError as O;
        match self {
            CopyError::Source(O::Blob(BlobError::NotFound(_))) => Some(ItemCause::SourceNotFound),
            CopyError::Source(O::Blob(BlobError::PermissionDenied(_))) => {
                Some(ItemCause::SourcePermissionDenied)
            }
            CopyError::Source(O::Blob(_)) => Some(ItemCause::SourceUnavailable),
            CopyError::Source(O::Format(_)) => Some(ItemCause::SourceUnreadable),
            CopyError::Source(O::ChecksumMismatch { .. } | O::LengthMismatch { .. })
            | CopyError::Target(
                O::ChecksumMismatch { .. } | O::LengthMismatch { .. } | O::Format(_),
            ) => Some(ItemCause::ChecksumMismatch),
            CopyError::Source(O::Source(_) | O::Hashing(_))
            | CopyError::Target(O::Source(_) | O::Hashing(_)) => Some(ItemCause::Internal),
            CopyError::Target(O::Blob(_)) => None,
        }
    }
}

/// Copies `source_key` to `target_key`; the write counts only if it read back verified
/// with the artifact's digest.
pub async fn copy(
    source: &EncryptedStore,
    source_key: &BlobKey,
    target: &EncryptedStore,
    target_key: &BlobKey,
    expected: &Expected,
) -> Result<Receipt, CopyError> {
    let plaintext = source
        .get(source_key, Some(expected.clone()))
        .await
        .map_err(CopyError::Source)?;
    // The write sees source errors as text; keep the typed error to classify it.
    let source_failure = Arc::new(Mutex::new(None::<ObjectError>));
    let slot = source_failure.clone();
    let plaintext = plaintext.map(move |chunk| {
        chunk.map_err(|error| {
            let text = error.to_string();
            if let Ok(mut slot) = slot.lock() {
                *slot = Some(error);
            }
            text
        })
    });
    // The source stream checks the artifact's digest itself (ending in an error, not in
    // bytes that differ), so the write does not hash again; the read-back checks the copy.
    match target.put_expected(target_key, plaintext, expected).await {
        Ok(receipt) => Ok(receipt),
        Err(ObjectError::Source(text)) => {
            let typed = source_failure.lock().ok().and_then(|mut slot| slot.take());
            Err(CopyError::Source(
                typed.unwrap_or(ObjectError::Source(text)),
            ))
        }
        Err(other) => Err(CopyError::Target(other)),
    }
}

#[cfg(test)]
mod tests {
    use stowage_shared::{digest::HashingStopped, format::FormatError};

    use super::*;

    fn blob(error: BlobError) -> ObjectError {
        ObjectError::Blob(error)
    }

    fn checksum() -> ObjectError {
        ObjectError::ChecksumMismatch {
            expected: "a".into(),
            actual: "b".into(),
        }
    }

    #[test]
    fn a_source_failure_ends_the_item_with_what_went_wrong_at_the_source() {
        let cases = [
            (
                blob(BlobError::NotFound("k".into())),
                ItemCause::SourceNotFound,
            ),
            (
                blob(BlobError::PermissionDenied("k".into())),
                ItemCause::SourcePermissionDenied,
            ),
            (
                blob(BlobError::Unavailable("timeout".into())),
                ItemCause::SourceUnavailable,
            ),
            (
                blob(BlobError::Failed("500".into())),
                ItemCause::SourceUnavailable,
            ),
            (
                ObjectError::Format(FormatError::Truncated),
                ItemCause::SourceUnreadable,
            ),
            (checksum(), ItemCause::ChecksumMismatch),
            (ObjectError::Hashing(HashingStopped), ItemCause::Internal),
        ];
        for (error, cause) in cases {
            let text = error.to_string();
            assert_eq!(CopyError::Source(error).item_cause(), Some(cause), "{text}");
        }
    }

    #[test]
    fn a_copy_that_does_not_read_back_verified_is_a_checksum_mismatch() {
        for error in [
            checksum(),
            ObjectError::Format(FormatError::CorruptSegment(0)),
        ] {
            assert_eq!(
                CopyError::Target(error).item_cause(),
                Some(ItemCause::ChecksumMismatch)
            );
        }
    }

    #[test]
    fn a_target_that_does_not_take_the_write_is_no_item_cause_but_the_runs() {
        for error in [
            BlobError::Unavailable("timeout".into()),
            BlobError::PermissionDenied("revoked".into()),
            BlobError::NotFound("container".into()),
        ] {
            assert_eq!(CopyError::Target(blob(error)).item_cause(), None);
        }
    }
}
