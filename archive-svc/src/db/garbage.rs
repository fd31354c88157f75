//! `archive.blob_garbage`: blobs that no job may point at any more, recorded in the
//! transaction that made them so, until the sweeper has deleted them.

use std::time::Duration;

use stowage_shared::db::{self, GenericClient};
use uuid::Uuid;

use crate::error::Result;

/// Why a blob became garbage.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cause {
    /// Its job was deleted.
    JobDeleted,
    /// Its job's archive moved to another store version.
    Moved,
    /// A move wrote it, then did not re-point the job (or died before it could).
    MoveAbandoned,
}

impl Cause {
    fn as_str(self) -> &'static str {
        match self {
            Cause::JobDeleted => "job_deleted",
            Cause::Moved => "moved",
            Cause::MoveAbandoned => "move_abandoned",
        }
    }
}

/// One recorded blob.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Garbage {
    pub id: i64,
    pub store_version: i64,
    pub blob_key: String,
    pub job_id: Uuid,
}

pub async fn record(
    client: &impl GenericClient,
    store_version: i64,
    blob_key: &str,
    job: (Uuid, &str),
    cause: Cause,
) -> Result<i64> {
    let statement = client
        .prepare_cached(
            "insert into archive.blob_garbage (store_version, blob_key, job_id, tenant_id, cause)
             values ($1, $2, $3, $4, $5) returning id",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[&store_version, &blob_key, &job.0, &job.1, &cause.as_str()],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Locks up to `limit` entries that are due (or exactly `ids`, when given), skipping those
/// another sweeper holds.
pub async fn claim(
    client: &impl GenericClient,
    ids: Option<&[i64]>,
    limit: i64,
) -> Result<Vec<Garbage>> {
    let statement = client
        .prepare_cached(
            "select id, store_version, blob_key, job_id from archive.blob_garbage
             where case when $1::int8[] is null then next_attempt_at <= now()
                        else id = any($1) end
             order by id limit $2 for update skip locked",
        )
        .await?;
    client
        .query(&statement, &[&ids, &limit])
        .await?
        .iter()
        .map(|row| {
            Ok(Garbage {
                id: row.try_get(0)?,
                store_version: row.try_get(1)?,
                blob_key: row.try_get(2)?,
                job_id: row.try_get(3)?,
            })
        })
        .collect()
}

/// Whether a job points at this blob, through this version or any other version of the
/// same store (a key rotation is a new version over the same objects): then it is not
/// garbage, whatever the entry says.
pub async fn is_referenced(client: &impl GenericClient, garbage: &Garbage) -> Result<bool> {
    let statement = client
        .prepare_cached(
            "select exists (
                 select from archive.scan_jobs j
                 join archive.stores s on s.version = j.archive_store_version
                 where j.archive_blob_key = $2
                   and s.location = (select location from archive.stores where version = $1))",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&garbage.store_version, &garbage.blob_key])
        .await?;
    Ok(row.try_get(0)?)
}

pub async fn remove(client: &impl GenericClient, id: i64) -> Result<()> {
    db::execute(
        client,
        "delete from archive.blob_garbage where id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Counts a failed attempt and puts the next one off by `backoff`.
pub async fn postpone(
    client: &impl GenericClient,
    id: i64,
    error: &str,
    backoff: Duration,
) -> Result<()> {
    db::execute(
        client,
        "update archive.blob_garbage set attempts = attempts + 1, last_error = $2,
                 next_attempt_at = now()
                     + make_interval(secs => least($3::float8 * (attempts + 1), 3600))
             where id = $1",
        &[&id, &error, &backoff.as_secs_f64()],
    )
    .await?;
    Ok(())
}

/// Entries still waiting among `ids`, once a sweep that holds any of them has ended (the
/// lock waits for it), so a concurrent repeat of a delete counts what the sweep left, not
/// what it was in the middle of deleting.
pub async fn pending(client: &impl GenericClient, ids: &[i64]) -> Result<i64> {
    let statement = client
        .prepare_cached(
            "select count(*) from (select id from archive.blob_garbage where id = any($1)
             for update) waiting",
        )
        .await?;
    Ok(client.query_one(&statement, &[&ids]).await?.try_get(0)?)
}
