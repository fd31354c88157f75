//! Organizations are created on first use: their id comes from the caller's token.

use stowage_shared::db::GenericClient;

pub async fn ensure(client: &impl GenericClient, id: &str) -> Result<(), tokio_postgres::Error> {
    let statement = client
        .prepare_cached(
            "insert into migration.organizations (id) values ($1) on conflict (id) do nothing",
        )
        .await?;
    client.execute(&statement, &[&id]).await?;
    Ok(())
}
