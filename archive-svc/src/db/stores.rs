//! `archive.stores`: the versions of the archive store, each with its sealed setting.

use stowage_shared::db::{self, GenericClient};
use tokio_postgres::Row;

use crate::{
    domain::stores::version::{NewStore, StoreVersion},
    error::Result,
};

const COLUMNS: &str = "s.version, s.provider, s.location, s.credential_kind, s.sealed_setting,
    s.credential_version, s.created_at, s.created_by, s.credential_updated_at,
    s.credential_updated_by,
    (select count(*) from archive.scan_jobs j
      where j.archive_store_version = s.version and j.archived_at is not null) as archived_jobs,
    (select count(*) from archive.blob_garbage g where g.store_version = s.version)
      as pending_deletes,
    s.version = (select max(version) from archive.stores) as current";

fn store(row: &Row) -> Result<StoreVersion> {
    Ok(StoreVersion {
        version: row.try_get("version")?,
        provider: row.try_get("provider")?,
        location: row.try_get("location")?,
        credential_kind: row.try_get("credential_kind")?,
        sealed_setting: row.try_get("sealed_setting")?,
        credential_version: row.try_get("credential_version")?,
        created_at: row.try_get("created_at")?,
        created_by: row.try_get("created_by")?,
        credential_updated_at: row.try_get("credential_updated_at")?,
        credential_updated_by: row.try_get("credential_updated_by")?,
        archived_jobs: row.try_get("archived_jobs")?,
        pending_deletes: row.try_get("pending_deletes")?,
        current: row.try_get("current")?,
    })
}

/// One version; `None` is the newest, where new archives go.
pub async fn get(
    client: &impl GenericClient,
    version: Option<i64>,
) -> Result<Option<StoreVersion>> {
    pick(client, version, "desc").await
}

/// The first version: the store a deployment started with.
pub async fn oldest(client: &impl GenericClient) -> Result<Option<StoreVersion>> {
    pick(client, None, "asc").await
}

async fn pick(
    client: &impl GenericClient,
    version: Option<i64>,
    order: &str,
) -> Result<Option<StoreVersion>> {
    let sql = format!(
        "select {COLUMNS} from archive.stores s
         where $1::bigint is null or s.version = $1
         order by s.version {order} limit 1"
    );
    db::query_opt_map(client, &sql, &[&version], store).await
}

/// Every version, newest first.
pub async fn list(client: &impl GenericClient) -> Result<Vec<StoreVersion>> {
    let sql = format!("select {COLUMNS} from archive.stores s order by s.version desc");
    db::query_map(client, &sql, &[], store).await
}

/// Adds the next version. The table lock orders concurrent additions.
pub async fn insert(client: &impl GenericClient, store: &NewStore<'_>) -> Result<i64> {
    client
        .batch_execute("lock table archive.stores in share row exclusive mode")
        .await?;
    let statement = client
        .prepare_cached(
            "insert into archive.stores (version, provider, location, credential_kind,
                 sealed_setting, created_at, created_by, reason)
             select coalesce(max(version), 0) + 1, $1, $2, $3, $4, coalesce($5, now()), $6, $7
             from archive.stores
             returning version",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &store.provider,
                &store.location,
                &store.credential_kind,
                &store.sealed_setting,
                &store.created_at,
                &store.created_by,
                &store.reason,
            ],
        )
        .await?;
    Ok(row.try_get(0)?)
}

/// Replaces a version's sealed setting (a new credential for the same store).
pub async fn update_credential(
    client: &impl GenericClient,
    version: i64,
    credential_kind: &str,
    sealed_setting: &[u8],
    actor: &str,
) -> Result<()> {
    db::execute(
        client,
        "update archive.stores set credential_kind = $2, sealed_setting = $3,
                 credential_version = credential_version + 1, credential_updated_at = now(),
                 credential_updated_by = $4
             where version = $1",
        &[&version, &credential_kind, &sealed_setting, &actor],
    )
    .await?;
    Ok(())
}

/// Row-locks one version (an update of its credential), returning its sealed setting.
pub async fn lock(client: &impl GenericClient, version: i64) -> Result<Option<StoreVersion>> {
    let statement = client
        .prepare_cached("select version from archive.stores where version = $1 for update")
        .await?;
    if client.query_opt(&statement, &[&version]).await?.is_none() {
        return Ok(None);
    }
    get(client, Some(version)).await
}

/// Points every archived job that names no store at `version` (a store adopted from an
/// earlier release), those archived at or after `since` when given.
pub async fn adopt_jobs(
    client: &impl GenericClient,
    version: i64,
    since: Option<chrono::DateTime<chrono::Utc>>,
) -> Result<u64> {
    Ok(db::execute(
        client,
        "update archive.scan_jobs set archive_store_version = $1
             where archived_at is not null and archive_store_version is null
               and ($2::timestamptz is null or archived_at >= $2)",
        &[&version, &since],
    )
    .await?)
}
