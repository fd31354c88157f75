//! Uploads begun and never completed: what a process killed mid-upload leaves behind,
//! which no listing shows. A `file` store writes an upload to `<object>#<n>` beside the
//! object and renames it into place when the upload completes (an upload that fails is
//! removed as it is dropped), so a killed writer leaves that staging file; an S3 store
//! keeps a killed writer's multipart upload, billed, until it is aborted (see
//! `blob::multipart`). [`BlobStore::interrupted_uploads`] finds both, with when each
//! was last written to, so the service that wrote them can remove those no writer holds
//! any more. A write that fails in a live process aborts its own upload (see
//! `EncryptedStore::write`). Azure has no abort: it discards an interrupted upload's
//! uncommitted blocks itself after 7 days; a memory store dies with its process.

use std::{
    io::ErrorKind,
    path::{Path, PathBuf},
    time::SystemTime,
};

use super::{BlobError, BlobKey, BlobStore, multipart::Incomplete};

/// An upload that never completed.
#[derive(Clone, Debug)]
pub struct InterruptedUpload {
    /// The object the upload was writing.
    pub key: BlobKey,
    /// When the upload last wrote anything.
    pub modified: SystemTime,
    parts: Parts,
}

/// Where an interrupted upload's bytes are.
#[derive(Clone, Debug)]
enum Parts {
    StagingFile(PathBuf),
    Multipart(Incomplete),
}

impl BlobStore {
    /// The uploads that never completed: staging files in a `file` store, incomplete
    /// multipart uploads in an S3 store; none in any other store.
    pub async fn interrupted_uploads(&self) -> Result<Vec<InterruptedUpload>, BlobError> {
        if let Some(multipart) = self.multipart() {
            let incomplete = multipart.incomplete(self.prefix()).await?;
            return Ok(incomplete
                .into_iter()
                .filter_map(|upload| {
                    Some(InterruptedUpload {
                        key: self.key_of(&upload.location)?,
                        modified: upload.last_activity,
                        parts: Parts::Multipart(upload),
                    })
                })
                .collect());
        }
        let Some(root) = self.local_root().map(Path::to_path_buf) else {
            return Ok(Vec::new());
        };
        tokio::task::spawn_blocking(move || {
            let mut found = Vec::new();
            walk(&root, &root, &mut found)?;
            Ok(found)
        })
        .await
        .map_err(|e| BlobError::Failed(format!("listing interrupted uploads: {e}")))?
    }

    /// Removes an interrupted upload's staging file, or aborts its multipart upload (gone
    /// already is removed).
    pub async fn remove_interrupted(&self, upload: &InterruptedUpload) -> Result<(), BlobError> {
        match (&upload.parts, self.multipart()) {
            (Parts::Multipart(incomplete), Some(multipart)) => multipart.abort(incomplete).await,
            (Parts::Multipart(_), None) => Err(BlobError::Failed(format!(
                "{} is a multipart upload of another store",
                upload.key.as_str()
            ))),
            (Parts::StagingFile(path), _) => match tokio::fs::remove_file(path).await {
                Err(error) if error.kind() != ErrorKind::NotFound => {
                    Err(BlobError::Failed(format!(
                        "removing an interrupted upload of {}: {error}",
                        upload.key.as_str()
                    )))
                }
                _ => Ok(()),
            },
        }
    }
}

fn walk(root: &Path, dir: &Path, found: &mut Vec<InterruptedUpload>) -> Result<(), BlobError> {
    let failed = |e: std::io::Error| BlobError::Failed(format!("{}: {e}", dir.display()));
    let entries = match std::fs::read_dir(dir) {
        Err(error) if error.kind() == ErrorKind::NotFound => return Ok(()),
        entries => entries.map_err(failed)?,
    };
    for entry in entries {
        let entry = entry.map_err(failed)?;
        let path = entry.path();
        if entry.file_type().map_err(failed)?.is_dir() {
            walk(root, &path, found)?;
            continue;
        }
        let Some(key) = staged_object(&path)
            .and_then(|object| object.strip_prefix(root).ok().map(Path::to_path_buf))
            .and_then(|relative| relative.to_str().map(str::to_owned))
            .and_then(|relative| BlobKey::new(relative).ok())
        else {
            continue;
        };
        let modified = entry
            .metadata()
            .and_then(|m| m.modified())
            .map_err(failed)?;
        found.push(InterruptedUpload {
            key,
            modified,
            parts: Parts::StagingFile(path),
        });
    }
    Ok(())
}

/// The object a staging file `<object>#<n>` was for.
fn staged_object(path: &Path) -> Option<PathBuf> {
    let object = staged_name(path.file_name()?.to_str()?)?;
    Some(path.with_file_name(object))
}

/// The name of the object a staging file named `<object>#<n>` was for; `None` for any
/// other name.
pub fn staged_name(name: &str) -> Option<&str> {
    let (object, number) = name.rsplit_once('#')?;
    let staged =
        !object.is_empty() && !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit());
    staged.then_some(object)
}

#[cfg(test)]
mod tests {
    use crate::blob::{Credential, Location, Provider, StoreConfig, StoreOptions};

    use super::*;

    fn file_store(dir: &Path, prefix: &str) -> BlobStore {
        let config = StoreConfig {
            provider: Provider::File,
            location: Location {
                container: dir.display().to_string(),
                prefix: prefix.into(),
                ..Location::default()
            },
            credential: Credential::None,
        };
        BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
    }

    #[tokio::test]
    async fn an_upload_killed_midway_is_found_by_the_object_it_was_writing_and_removed() {
        let dir = std::env::temp_dir().join(format!("stowage-staging-{}", uuid::Uuid::new_v4()));
        let store = file_store(&dir, "archives");
        let done = BlobKey::new("acme/job-1.json.zst").unwrap();
        store
            .put(&done, bytes::Bytes::from_static(b"whole"), false, &[])
            .await
            .unwrap();
        // What a killed writer leaves: the staging file, never renamed.
        let tenant = dir.join("archives/acme");
        std::fs::write(tenant.join("job-2.json.zst#1"), b"half").unwrap();
        std::fs::write(tenant.join("job-2.json.zst#2"), b"half").unwrap();
        // Names a store can hold that only look alike.
        std::fs::write(tenant.join("notes#draft"), b"x").unwrap();
        std::fs::write(tenant.join("#7"), b"x").unwrap();

        let mut found = store.interrupted_uploads().await.unwrap();
        found.sort_by_key(|u| u.key.as_str().to_owned());
        let keys: Vec<&str> = found.iter().map(|u| u.key.as_str()).collect();
        assert_eq!(keys, ["acme/job-2.json.zst", "acme/job-2.json.zst"]);
        for upload in &found {
            store.remove_interrupted(upload).await.unwrap();
            store.remove_interrupted(upload).await.unwrap();
        }
        assert!(store.interrupted_uploads().await.unwrap().is_empty());
        assert!(tenant.join("job-1.json.zst").exists());
        assert!(tenant.join("notes#draft").exists());
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[tokio::test]
    async fn other_stores_have_none() {
        let store = crate::blob::tests::memory_store();
        assert!(store.interrupted_uploads().await.unwrap().is_empty());
    }
}
