//! `archive.admin_config`: settings operators change at run time.

use stowage_shared::db::GenericClient;

pub async fn get(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<Vec<u8>>, tokio_postgres::Error> {
    let statement = client
        .prepare_cached("select value from archive.admin_config where key = $1")
        .await?;
    Ok(client
        .query_opt(&statement, &[&key])
        .await?
        .map(|row| row.get(0)))
}

pub async fn put(
    client: &impl GenericClient,
    key: &str,
    sealed: &[u8],
    actor: &str,
) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "insert into archive.admin_config (key, value, sealed, update_time, updated_by)
             values ($1, $2, true, now(), $3)
             on conflict (key) do update
             set value = excluded.value, sealed = true, update_time = now(),
                 updated_by = excluded.updated_by",
        )
        .await?;
    client.execute(&statement, &[&key, &sealed, &actor]).await?;
    Ok(())
}
