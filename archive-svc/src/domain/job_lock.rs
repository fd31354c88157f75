//! One blob-writing operation per job at a time: an archive, a move to another store
//! version, and the sweeper deleting a blob of the job all take the job's PostgreSQL
//! advisory lock, so none deletes or overwrites a blob another is still writing. The lock
//! is the session's (or the transaction's), so it dies with a crashed replica.

use stowage_shared::db::GenericClient;
use uuid::Uuid;

use crate::error::Result;

fn key(job: Uuid) -> String {
    format!("stowage.archive.job/{job}")
}

/// Takes the job's lock for this session, if no one holds it.
pub async fn try_lock(client: &impl GenericClient, job: Uuid) -> Result<bool> {
    let row = client
        .query_one("select pg_try_advisory_lock(hashtext($1))", &[&key(job)])
        .await?;
    Ok(row.try_get(0)?)
}

/// Takes the job's lock until the transaction `client` is in ends, if no one holds it.
pub async fn try_lock_for_transaction(client: &impl GenericClient, job: Uuid) -> Result<bool> {
    let row = client
        .query_one(
            "select pg_try_advisory_xact_lock(hashtext($1))",
            &[&key(job)],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Releases a lock of [`try_lock`]. A connection that may still hold it never goes back to
/// the pool: it is closed, and the lock with it.
pub async fn unlock(client: deadpool_postgres::Object, job: Uuid) {
    let released = client
        .execute("select pg_advisory_unlock(hashtext($1))", &[&key(job)])
        .await;
    if released.is_err() {
        drop(deadpool_postgres::Object::take(client));
    }
}
