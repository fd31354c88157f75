//! Interrupted uploads in `file` and S3 bindings: an artifact upload or a run's copy that
//! a killed replica never finished leaves its staging file or its incomplete multipart
//! upload behind (see `stowage_shared::blob::staging`). Every `interrupted_upload_age`,
//! those of each such binding untouched for that long are removed: a live upload writes
//! as its bytes arrive, and a copy whose replica died is taken over and written afresh.
//! A binding whose store cannot be listed is skipped until the next sweep.

use std::time::{Duration, SystemTime};

use stowage_shared::{blob::Provider, shutdown::Drain};
use uuid::Uuid;

use super::stores::Stores;
use crate::{db, error::Result};

#[derive(Clone, Debug)]
pub struct UploadSweeper {
    pool: deadpool_postgres::Pool,
    stores: Stores,
    age: Duration,
}

impl UploadSweeper {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores, age: Duration) -> Self {
        Self { pool, stores, age }
    }

    /// Removes the interrupted uploads older than the age; returns how many.
    #[tracing::instrument(skip_all)]
    pub async fn sweep(&self) -> Result<u64> {
        let client = self.pool.get().await?;
        let bindings = db::bindings::of_providers(&client, &[Provider::File, Provider::S3]).await?;
        drop(client);
        let cutoff = SystemTime::now() - self.age;
        let mut removed = 0;
        for (organization, id) in bindings {
            match self.sweep_binding(&organization, id, cutoff).await {
                Ok(n) => removed += n,
                Err(error) => tracing::warn!(binding = %id, %error, "cannot sweep a binding"),
            }
        }
        if removed > 0 {
            tracing::info!(removed, "interrupted uploads removed");
        }
        Ok(removed)
    }

    async fn sweep_binding(&self, organization: &str, id: Uuid, cutoff: SystemTime) -> Result<u64> {
        let (_, store) = self.stores.open(organization, id).await?;
        let blobs = store.store();
        let mut removed = 0;
        for upload in blobs.interrupted_uploads().await? {
            if upload.modified < cutoff {
                blobs.remove_interrupted(&upload).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps at once, then every `age`, until the drain starts.
    pub async fn run(self, drain: Drain) {
        loop {
            if let Err(error) = self.sweep().await {
                tracing::warn!(%error, "sweep of interrupted uploads failed");
            }
            tokio::select! {
                () = tokio::time::sleep(self.age) => {}
                () = drain.draining() => return,
            }
        }
    }
}
