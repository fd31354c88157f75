//! The blob sweeper: deletes the blobs recorded in `archive.blob_garbage` (those of deleted
//! jobs, of archives moved to another store version, of moves that never re-pointed their
//! job) from the store version each names. A blob a job points at is never deleted; one
//! whose job an archive or move is still writing waits for the next sweep; a store that
//! fails puts the entry off with a growing backoff. It runs right after each delete and
//! move, at start, and every `sweep_interval`, and each time also removes what archives
//! and moves killed mid-upload left in `file` stores (a staging file whose job lock is
//! free has no writer left).

use std::time::Duration;

use stowage_shared::{
    blob::{BlobError, BlobKey},
    shutdown::Drain,
};
use uuid::Uuid;

use super::{job_lock, stores::ArchiveStores};
use crate::{db, error::Result};

/// Entries one sweep looks at.
const BATCH: i64 = 100;
/// Sweeps run back to back while each finds a full batch.
const MAX_BACK_TO_BACK: usize = 10;

/// What one sweep did.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Blobs deleted (or found already gone).
    pub deleted: u64,
    /// Entries dropped because a job points at their blob.
    pub kept: u64,
    /// Entries left for later: store failed, or the job was busy.
    pub left: u64,
}

#[derive(Clone, Debug)]
pub struct Sweeper {
    pool: deadpool_postgres::Pool,
    stores: ArchiveStores,
    backoff: Duration,
}

impl Sweeper {
    pub fn new(pool: deadpool_postgres::Pool, stores: ArchiveStores, backoff: Duration) -> Self {
        Self {
            pool,
            stores,
            backoff,
        }
    }

    /// Sweeps the due entries, or exactly `ids` (due or not).
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self, ids: Option<&[i64]>) -> Result<Swept> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut swept = Swept::default();
        for garbage in db::garbage::claim(&tx, ids, BATCH).await? {
            if !job_lock::try_lock_for_transaction(&tx, garbage.job_id).await? {
                swept.left += 1;
                continue;
            }
            if db::garbage::is_referenced(&tx, &garbage).await? {
                db::garbage::remove(&tx, garbage.id).await?;
                swept.kept += 1;
                continue;
            }
            let deleted = match BlobKey::new(garbage.blob_key.clone()) {
                // A key no store can hold was never written.
                Err(_) => Ok(()),
                Ok(key) => match self.stores.open(&tx, Some(garbage.store_version)).await {
                    Ok(store) => match store.objects.store().delete(&key).await {
                        Ok(()) | Err(BlobError::NotFound(_)) => Ok(()),
                        Err(error) => Err(error.to_string()),
                    },
                    Err(error) => Err(error.to_string()),
                },
            };
            match deleted {
                Ok(()) => {
                    db::garbage::remove(&tx, garbage.id).await?;
                    swept.deleted += 1;
                }
                Err(error) => {
                    tracing::warn!(
                        store_version = garbage.store_version,
                        key = %garbage.blob_key,
                        %error,
                        "archive blob not deleted yet"
                    );
                    db::garbage::postpone(&tx, garbage.id, &error, self.backoff).await?;
                    swept.left += 1;
                }
            }
        }
        tx.commit().await?;
        metrics::counter!("archive_blobs_swept_total").increment(swept.deleted);
        Ok(swept)
    }

    /// Removes the staging files that archives and moves killed mid-upload left in every
    /// store version; returns how many. An upload's job lock is held while it writes, so a
    /// staging file whose job lock is free is dead.
    #[tracing::instrument(skip_all)]
    pub async fn sweep_interrupted_uploads(&self) -> Result<u64> {
        let mut client = self.pool.get().await?;
        let mut removed = 0;
        for version in db::stores::list(&client).await? {
            let store = self.stores.open(&client, Some(version.version)).await?;
            let blobs = store.objects.store();
            for upload in blobs.interrupted_uploads().await? {
                let Some(job) = job_of(&upload.key) else {
                    continue;
                };
                let tx = client.transaction().await?;
                if job_lock::try_lock_for_transaction(&tx, job).await? {
                    blobs.remove_interrupted(&upload).await?;
                    removed += 1;
                }
                tx.commit().await?;
            }
        }
        if removed > 0 {
            tracing::info!(removed, "interrupted archive uploads removed");
        }
        Ok(removed)
    }

    /// Sweeps at once, then every `interval`, until the drain starts.
    pub async fn run(self, interval: Duration, drain: Drain) {
        loop {
            for _ in 0..MAX_BACK_TO_BACK {
                match self.sweep(None).await {
                    Ok(swept) if swept.deleted + swept.kept + swept.left < BATCH as u64 => break,
                    Ok(_) => {}
                    Err(error) => {
                        tracing::warn!(%error, "blob sweep failed");
                        break;
                    }
                }
            }
            if let Err(error) = self.sweep_interrupted_uploads().await {
                tracing::warn!(%error, "sweep of interrupted uploads failed");
            }
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                () = drain.draining() => return,
            }
        }
    }
}

/// The job a blob key (`{tenant}/{job}.json.zst`) belongs to.
fn job_of(key: &BlobKey) -> Option<Uuid> {
    let name = key.as_str().rsplit('/').next()?;
    name.split('.').next()?.parse().ok()
}
