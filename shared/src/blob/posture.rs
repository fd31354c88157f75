//! The posture check a store passes before it is trusted with data: write a probe object
//! through the verified encrypted layer, read it back, delete it. Both a binding's
//! activation and a new archive store go through it, so a refused credential, a missing
//! container or a missing directory shows before anything depends on the store.

use bytes::Bytes;
use uuid::Uuid;

use super::{BlobError, BlobKey, EncryptedStore, ObjectError, Provider, StoreConfig};

/// Where a posture check stopped, and why.
#[derive(Debug, thiserror::Error)]
pub enum PostureError {
    #[error("posture check: directory {0} does not exist")]
    MissingDirectory(String),
    #[error(
        "posture check: the container (or bucket) does not exist or the credential cannot see it"
    )]
    MissingContainer,
    #[error("posture check failed to {step} a probe object: {cause}")]
    Step {
        step: &'static str,
        cause: ObjectError,
    },
}

/// Checks what can be checked without contacting the store: a `file` store's directory
/// must already exist (opening the store would create it).
pub fn check_location(config: &StoreConfig) -> Result<(), PostureError> {
    if config.provider == Provider::File
        && !std::path::Path::new(&config.location.container).is_dir()
    {
        return Err(PostureError::MissingDirectory(
            config.location.container.clone(),
        ));
    }
    Ok(())
}

/// Writes, reads back and deletes a probe object under `_stowage/posture/`.
pub async fn check(store: &EncryptedStore) -> Result<(), PostureError> {
    let key = BlobKey::new(format!("_stowage/posture/{}", Uuid::new_v4()))
        .map_err(|e| step("name", ObjectError::Source(e.to_string())))?;
    let probe = Bytes::from(format!("stowage posture check {}", Uuid::new_v4()));
    store
        .put(
            &key,
            futures::stream::iter([Ok::<_, std::io::Error>(probe)]),
        )
        .await
        .map_err(|e| match e {
            ObjectError::Blob(BlobError::NotFound(_)) => PostureError::MissingContainer,
            other => step("write and read back", other),
        })?;
    store
        .store()
        .delete(&key)
        .await
        .map_err(|e| step("delete", e.into()))?;
    Ok(())
}

fn step(step: &'static str, cause: ObjectError) -> PostureError {
    PostureError::Step { step, cause }
}
