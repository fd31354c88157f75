//! One blob-writing operation per job at a time: an archive, a move to another store
//! version, and the sweeper deleting a blob of the job all take the job's advisory lock
//! (`stowage_shared::db::lock`), so none deletes or overwrites a blob another is still
//! writing. The lock is the session's (or the transaction's), so it dies with a crashed
//! replica.

use stowage_shared::db::{
    GenericClient,
    lock::{self, AdvisoryLock},
};
use uuid::Uuid;

use crate::error::Result;

fn key(job: Uuid) -> String {
    format!("stowage.archive.job/{job}")
}

/// Takes the job's lock on `client`'s session, if no one holds it.
pub async fn try_lock(
    client: deadpool_postgres::Object,
    job: Uuid,
) -> Result<Option<AdvisoryLock>> {
    Ok(AdvisoryLock::try_acquire(client, key(job)).await?)
}

/// Takes the job's lock until the transaction `client` is in ends, if no one holds it.
pub async fn try_lock_for_transaction(client: &impl GenericClient, job: Uuid) -> Result<bool> {
    Ok(lock::try_lock_for_transaction(client, &key(job)).await?)
}
