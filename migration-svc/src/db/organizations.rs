//! Organizations are created on first use: their id comes from the caller's token.

use stowage_shared::db::{self, GenericClient};

pub async fn ensure(client: &impl GenericClient, id: &str) -> Result<(), tokio_postgres::Error> {
    db::execute(
        client,
        "insert into migration.organizations (id) values ($1) on conflict (id) do nothing",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Every organization's id, in order.
pub async fn all(client: &impl GenericClient) -> Result<Vec<String>, tokio_postgres::Error> {
    let rows = client
        .query("select id from migration.organizations order by id", &[])
        .await?;
    rows.iter().map(|row| row.try_get(0)).collect()
}
