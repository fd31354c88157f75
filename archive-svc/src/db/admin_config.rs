//! `archive.admin_config`: settings operators changed at run time. An earlier release kept
//! its one archive store setting here; `domain::stores` adopts it as a store version.

use chrono::{DateTime, Utc};
use stowage_shared::db::{self, GenericClient};

use crate::error::Result;

/// A sealed value with when and by whom it was last set.
pub async fn get_with_time(
    client: &impl GenericClient,
    key: &str,
) -> Result<Option<(Vec<u8>, DateTime<Utc>, String)>> {
    let statement = client
        .prepare_cached(
            "select value, update_time, updated_by from archive.admin_config where key = $1",
        )
        .await?;
    client
        .query_opt(&statement, &[&key])
        .await?
        .map(|row| Ok((row.try_get(0)?, row.try_get(1)?, row.try_get(2)?)))
        .transpose()
}

pub async fn delete(client: &impl GenericClient, key: &str) -> Result<()> {
    db::execute(
        client,
        "delete from archive.admin_config where key = $1",
        &[&key],
    )
    .await?;
    Ok(())
}
