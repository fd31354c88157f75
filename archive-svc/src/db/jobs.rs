//! Queries over `archive.scan_jobs` and the per-file tables. Reads take an optional
//! tenant: `Some` scopes them to a caller's tenant, `None` is for the scheduler and admins.

use chrono::{DateTime, Utc};
use stowage_shared::{
    api::Page,
    db::{self, Filter, GenericClient, IdOrder, OwnedRows},
    tenant_keys::Wrapped,
};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    domain::{
        jobs::{ArchiveInfo, Job, JobStatus},
        payload::BlobFormat,
    },
    error::{Error, Result},
};

const COLUMNS: &str = "id, tenant_id, owner_id, name, status, file_count, byte_count,
    error_count, terminal_at, last_activity_at, archived_at, archive_blob_key, archive_format,
    archive_stored_bytes, archive_plaintext_bytes, archive_plaintext_sha256, archive_kek_id,
    archive_scan_items, archive_file_records, archive_rows_digest, archive_store_version";

/// Maps a row; a column the scanning application changed is an error, never a panic.
fn job(row: &Row) -> Result<Job> {
    let status: String = row.try_get("status")?;
    let archived_at: Option<DateTime<Utc>> = row.try_get("archived_at")?;
    let archive = match archived_at {
        None => None,
        Some(archived_at) => {
            let format: String = row
                .try_get::<_, Option<String>>("archive_format")?
                .unwrap_or_default();
            Some(ArchiveInfo {
                archived_at,
                blob_key: row.try_get("archive_blob_key")?,
                format: BlobFormat::parse(&format)
                    .ok_or_else(|| Error::Internal(format!("archive format {format:?}")))?,
                stored_bytes: row.try_get("archive_stored_bytes")?,
                plaintext_bytes: row.try_get("archive_plaintext_bytes")?,
                plaintext_sha256: row.try_get("archive_plaintext_sha256")?,
                kek_id: row.try_get("archive_kek_id")?,
                scan_items: row.try_get("archive_scan_items")?,
                file_records: row.try_get("archive_file_records")?,
                rows_digest: row.try_get("archive_rows_digest")?,
                store_version: row.try_get("archive_store_version")?,
            })
        }
    };
    Ok(Job {
        id: row.try_get("id")?,
        tenant_id: row.try_get("tenant_id")?,
        owner_id: row.try_get("owner_id")?,
        name: row.try_get("name")?,
        status: status.parse().map_err(Error::Internal)?,
        file_count: row.try_get("file_count")?,
        byte_count: row.try_get("byte_count")?,
        error_count: row.try_get("error_count")?,
        terminal_at: row.try_get("terminal_at")?,
        last_activity_at: row.try_get("last_activity_at")?,
        archive,
    })
}

/// Jobs by id, scoped to a tenant; a job is row-locked (`RowLock::ForUpdate`) by every
/// transaction that archives, restores, moves or deletes it.
pub const JOBS: OwnedRows<Job, Error> =
    OwnedRows::new("job", "archive.scan_jobs", COLUMNS, "tenant_id", job, |j| {
        j.id
    });

pub async fn list(
    client: &impl GenericClient,
    tenant: &str,
    archived: Option<bool>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Page<Job, Uuid>> {
    let archived_is: Filter = (
        "($2::bool is null or (archived_at is not null) = $2)",
        &archived,
    );
    JOBS.page(
        client,
        Some(tenant),
        archived_is,
        after,
        limit,
        IdOrder::Ascending,
    )
    .await
}

/// Hot terminal jobs idle past their window at `$3` (windows as `$1` statuses and `$2`
/// days), oldest terminal timestamp first, at most `$4`: the rule of
/// `RetentionPolicy::due_at`, in SQL (`greatest` skips a missing terminal timestamp, as
/// `due_at` does). Columns: id, tenant_id, idle_since.
pub(super) const DUE: &str = "select j.id, j.tenant_id,
        coalesce(j.terminal_at, j.last_activity_at) as idle_since
    from archive.scan_jobs j
    join unnest($1::text[], $2::int4[]) as policy(status, days)
      on policy.status = j.status
    where j.archived_at is null
      and greatest(j.terminal_at, j.last_activity_at)
          <= $3::timestamptz - make_interval(days => policy.days)
    order by coalesce(j.terminal_at, j.last_activity_at), j.id
    limit $4";

/// The windows as [`DUE`]'s first two parameters.
pub fn window_params(windows: &[(JobStatus, i32)]) -> (Vec<&'static str>, Vec<i32>) {
    windows.iter().map(|(s, d)| (s.as_str(), *d)).unzip()
}

/// The jobs due at `now` ([`DUE`]): (id, tenant).
pub async fn eligible(
    client: &impl GenericClient,
    windows: &[(JobStatus, i32)],
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<(Uuid, String)>> {
    let (statuses, days) = window_params(windows);
    let statement = client.prepare_cached(DUE).await?;
    let rows = client
        .query(&statement, &[&statuses, &days, &now, &limit])
        .await?;
    rows.iter()
        .map(|r| Ok((r.try_get(0)?, r.try_get(1)?)))
        .collect()
}

/// Sets the archive marker; the archive deleted the rows as it read them.
pub async fn mark_archived(
    client: &impl GenericClient,
    id: Uuid,
    info: &ArchiveInfo,
) -> Result<()> {
    db::execute(
        client,
        "update archive.scan_jobs set archived_at = $2, archive_blob_key = $3,
                 archive_format = $4, archive_stored_bytes = $5, archive_plaintext_bytes = $6,
                 archive_plaintext_sha256 = $7, archive_kek_id = $8, archive_scan_items = $9,
                 archive_file_records = $10, archive_rows_digest = $11,
                 archive_store_version = $12
             where id = $1",
        &[
            &id,
            &info.archived_at,
            &info.blob_key,
            &info.format.as_str(),
            &info.stored_bytes,
            &info.plaintext_bytes,
            &info.plaintext_sha256,
            &info.kek_id,
            &info.scan_items,
            &info.file_records,
            &info.rows_digest,
            &info.store_version,
        ],
    )
    .await?;
    Ok(())
}

/// Clears the archive marker; restoring counts as activity.
pub async fn mark_hot(client: &impl GenericClient, id: Uuid) -> Result<()> {
    db::execute(
        client,
        "update archive.scan_jobs set archived_at = null, archive_blob_key = null,
                 archive_format = null, archive_stored_bytes = null,
                 archive_plaintext_bytes = null, archive_plaintext_sha256 = null,
                 archive_kek_id = null, archive_scan_items = null, archive_file_records = null,
                 archive_rows_digest = null, archive_store_version = null,
                 last_activity_at = now()
             where id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Whether any hot row of the job is left.
pub async fn has_rows(client: &impl GenericClient, id: Uuid) -> Result<bool> {
    let statement = client
        .prepare_cached(
            "select exists (select from archive.scan_items where job_id = $1)
                 or exists (select from archive.file_records where job_id = $1)",
        )
        .await?;
    Ok(client.query_one(&statement, &[&id]).await?.try_get(0)?)
}

/// Deletes a job's hot rows.
async fn delete_rows(client: &impl GenericClient, id: Uuid) -> Result<()> {
    let items = client
        .prepare_cached("delete from archive.scan_items where job_id = $1")
        .await?;
    let records = client
        .prepare_cached("delete from archive.file_records where job_id = $1")
        .await?;
    client.execute(&items, &[&id]).await?;
    client.execute(&records, &[&id]).await?;
    Ok(())
}

pub async fn delete_job(client: &impl GenericClient, id: Uuid) -> Result<()> {
    delete_rows(client, id).await?;
    db::execute(
        client,
        "delete from archive.scan_jobs where id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Records activity on a job, resetting its retention clock.
pub async fn touch(
    client: &impl GenericClient,
    tenant: Option<&str>,
    id: Uuid,
) -> Result<Option<Job>> {
    let sql = format!(
        "update archive.scan_jobs set last_activity_at = now()
         where id = $1 and ($2::text is null or tenant_id = $2) returning {COLUMNS}"
    );
    db::query_opt_map(client, &sql, &[&id, &tenant], job).await
}

/// Points an archived job at a copy of its blob in another store version.
pub async fn repoint(client: &impl GenericClient, id: Uuid, info: &ArchiveInfo) -> Result<()> {
    db::execute(
        client,
        "update archive.scan_jobs set archive_store_version = $2, archive_format = $3,
                 archive_stored_bytes = $4, archive_plaintext_sha256 = $5, archive_kek_id = $6
             where id = $1 and archived_at is not null",
        &[
            &id,
            &info.store_version,
            &info.format.as_str(),
            &info.stored_bytes,
            &info.plaintext_sha256,
            &info.kek_id,
        ],
    )
    .await?;
    Ok(())
}

/// Archived jobs in store versions other than `target`: (version, jobs, stored bytes).
pub async fn archived_off(
    client: &impl GenericClient,
    target: i64,
) -> Result<Vec<(Option<i64>, i64, i64)>> {
    let statement = client
        .prepare_cached(
            "select archive_store_version, count(*),
                 coalesce(sum(archive_stored_bytes), 0)::bigint
             from archive.scan_jobs
             where archived_at is not null and archive_store_version is distinct from $1
             group by 1 order by 1",
        )
        .await?;
    client
        .query(&statement, &[&target])
        .await?
        .iter()
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .collect()
}

/// The next `limit` archived jobs after `after` (by id) not in store version `target`.
pub async fn archived_off_page(
    client: &impl GenericClient,
    target: i64,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Uuid>> {
    let statement = client
        .prepare_cached(
            "select id from archive.scan_jobs
             where archived_at is not null and archive_store_version is distinct from $1
               and ($2::uuid is null or id > $2)
             order by id limit $3",
        )
        .await?;
    client
        .query(&statement, &[&target, &after, &limit])
        .await?
        .iter()
        .map(|row| Ok(row.try_get(0)?))
        .collect()
}

/// A page of every tenant's archived jobs, in store version `version` if given (a job that
/// names no version is in the first one), in id order past `after`.
pub async fn archived_page(
    client: &impl GenericClient,
    version: Option<i64>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Page<Job, Uuid>> {
    let in_version: Filter = (
        "(archived_at is not null
          and ($2::bigint is null
               or coalesce(archive_store_version,
                           (select min(version) from archive.stores)) = $2))",
        &version,
    );
    JOBS.page(client, None, in_version, after, limit, IdOrder::Ascending)
        .await
}

/// Archived jobs, as tenant keys wrap their blobs.
pub const ARCHIVED_BLOBS: Wrapped<'static> = Wrapped {
    table: "archive.scan_jobs",
    tenant_column: "tenant_id",
    kek_column: "archive_kek_id",
    only: "o.archived_at is not null",
};
