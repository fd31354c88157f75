//! Scan jobs and per-file rows written straight into a test database, as the scanning
//! application would.

use anyhow::Result;
use uuid::Uuid;

/// Inserts a job with `items` scan items and `records` file records; its terminal
/// timestamp (and last activity) lie `idle_days` (fractional) in the past.
pub async fn insert_job(
    client: &tokio_postgres::Client,
    tenant: &str,
    status: &str,
    idle_days: f64,
    items: i64,
    records: i64,
) -> Result<Uuid> {
    let id = Uuid::new_v4();
    let terminal = matches!(
        status,
        "CANCELLED" | "FAILED" | "SCAN_COMPLETE" | "COMPLETED"
    );
    client
        .execute(
            "insert into archive.scan_jobs (id, tenant_id, owner_id, name, status, file_count,
                 byte_count, started_at, completed_at, terminal_at, last_activity_at, configuration)
             values ($1, $2, 'owner-1', 'Finance share scan', $3, $4::bigint, $4::bigint * 1000,
                 now() - make_interval(secs => ($5::float8 + 1) * 86400),
                 case when $6 then now() - make_interval(secs => $5::float8 * 86400) end,
                 case when $6 then now() - make_interval(secs => $5::float8 * 86400) end,
                 now() - make_interval(secs => $5::float8 * 86400),
                 '{\"source\": \"sharepoint\", \"depth\": 12}')",
            &[&id, &tenant, &status, &items, &idle_days, &terminal],
        )
        .await?;
    client
        .execute(
            "insert into archive.scan_items (job_id, id, parent_id, path, name, kind, size_bytes,
                 modified_at, etag, mime_type, status, error, discovered_at)
             select $1, g, nullif(g / 10, 0), '/sites/Finance/Shared Documents/' || g || '/Q4 report ' || g || '.xlsx',
                 'Q4 report ' || g || '.xlsx', case when g % 10 = 0 then 'folder' else 'file' end,
                 case when g % 10 = 0 then null else g * 1024 end,
                 now() - make_interval(days => (g % 400)::int), md5(g::text),
                 'application/vnd.ms-excel', 'DISCOVERED',
                 case when g % 97 = 0 then 'access denied: ''' || g || '''' end,
                 now() - interval '30 days' + make_interval(secs => g)
             from generate_series(1, $2::bigint) g",
            &[&id, &items],
        )
        .await?;
    client
        .execute(
            "insert into archive.file_records (job_id, id, scan_item_id, source_path,
                 destination_path, size_bytes, checksum, status, attempts, last_error,
                 started_at, completed_at)
             select $1, g, g, '/sites/Finance/Shared Documents/' || g,
                 case when g % 5 = 0 then null else '/dest/' || g end, g * 1024,
                 encode(sha256(g::text::bytea), 'hex'),
                 case when g % 5 = 0 then 'FAILED' else 'TRANSFERRED' end, 1 + g % 3,
                 case when g % 5 = 0 then 'timeout, \"retry\"' end,
                 now() - interval '20 days', case when g % 5 = 0 then null else now() - interval '19 days' end
             from generate_series(1, $2::bigint) g",
            &[&id, &records],
        )
        .await?;
    Ok(id)
}

/// A digest of every column of every row of a job, to compare before and after.
pub async fn table_digest(
    client: &tokio_postgres::Client,
    job: Uuid,
) -> Result<(String, i64, i64)> {
    let row = client
        .query_one(
            "select
                 md5(coalesce((select string_agg(t::text, '|' order by t.id) from archive.scan_items t where job_id = $1), '')
                  || '#' ||
                     coalesce((select string_agg(t::text, '|' order by t.id) from archive.file_records t where job_id = $1), '')),
                 (select count(*) from archive.scan_items where job_id = $1),
                 (select count(*) from archive.file_records where job_id = $1)",
            &[&job],
        )
        .await?;
    Ok((row.get(0), row.get(1), row.get(2)))
}
