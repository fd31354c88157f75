//! Leasing items: one statement returns each leased item with everything its copy needs
//! (the artifact, its source binding's credential version) and the run's state.

use std::{sync::LazyLock, time::Duration};

use stowage_shared::db::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{
    COLUMNS, RUN_AND_TARGET, item, parse_binding_state, parse_item_state, parse_run_state,
};
use crate::{
    db::{artifacts, qualified},
    domain::model::runs::{Claim, Lease},
    error::Result,
};

/// The claiming statement (see [`claim`]).
static CLAIM: LazyLock<String> = LazyLock::new(|| {
    let (item_columns, artifact_columns) =
        (qualified("l", COLUMNS), qualified("a", artifacts::COLUMNS));
    format!(
        "with {RUN_AND_TARGET},
             open as (
                 select 1 from run
                 where state = 'running' and not cancel_requested
                   and (select state from target) = 'active'),
             picked as (
                 select artifact_id, state from migration.run_items
                 where run_id = $1 and exists (select 1 from open)
                   and (state = 'queued' or (state = 'running' and lease_expires < now()))
                 order by artifact_id limit $4 for update skip locked),
             leased as (
                 update migration.run_items i
                 set state = 'running', lease_owner = $2,
                     lease_expires = now() + make_interval(secs => $3),
                     attempts = i.attempts + 1, start_time = coalesce(i.start_time, now()),
                     update_time = now()
                 from picked
                 where i.run_id = $1 and i.artifact_id = picked.artifact_id
                 returning i.*, picked.state as previous),
             shifted as (
                 update migration.runs
                 set items_queued = items_queued - q.n, items_running = items_running + q.n,
                     update_time = now()
                 from (select count(*) as n from leased where previous = 'queued') q
                 where id = $1 and q.n > 0)
             select run.state as run_state, run.cancel_requested,
                    (select state from target) as target_state,
                    {item_columns}, l.previous, {artifact_columns}, b.credential_update_time
             from run
             left join leased l on true
             left join migration.artifacts a on a.id = l.artifact_id
             left join migration.bindings b on b.id = a.binding_id
             order by l.artifact_id"
    )
});

/// Leases up to `limit` QUEUED items of the run, or RUNNING ones whose lease expired (a
/// replica stopped), to `owner`, in one statement: the run row locked (so its counters
/// move with the leases), its target binding read, items leased only if the run is
/// running, not cancelled and its target active, and with each item the artifact as it is
/// now and the credential version of the artifact's binding. `None` if the run is gone.
pub async fn claim(
    client: &impl GenericClient,
    run_id: Uuid,
    owner: &str,
    ttl: Duration,
    limit: i64,
) -> Result<Option<Claim>> {
    let statement = client.prepare_cached(&CLAIM).await?;
    let rows = client
        .query(&statement, &[&run_id, &owner, &ttl.as_secs_f64(), &limit])
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let run_state: &str = first.get("run_state");
    let target_state: Option<&str> = first.get("target_state");
    let mut claim = Claim {
        run_state: parse_run_state(run_state)?,
        cancel_requested: first.get("cancel_requested"),
        target_state: target_state.map(parse_binding_state).transpose()?,
        leases: Vec::with_capacity(rows.len()),
    };
    // The artifact's columns come right after `previous`.
    let artifact_at = first
        .columns()
        .iter()
        .position(|column| column.name() == "previous")
        .map_or(0, |previous| previous + 1);
    for row in rows
        .iter()
        .filter(|row| row.get::<_, Option<Uuid>>("artifact_id").is_some())
    {
        claim.leases.push(lease(row, artifact_at)?);
    }
    Ok(Some(claim))
}

/// One leased row of a claim: the item's columns by name (they come before the
/// artifact's, whose `size_bytes` is the same figure), the artifact's by position, from
/// column `artifact_at` on.
fn lease(row: &Row, artifact_at: usize) -> Result<Lease> {
    let previous: &str = row.get("previous");
    let artifact = row
        .get::<_, Option<Uuid>>(artifact_at)
        .map(|_| artifacts::artifact_at(row, artifact_at));
    Ok(Lease {
        item: item(row)?,
        previous: parse_item_state(previous)?,
        artifact,
        source_credential: row.get("credential_update_time"),
    })
}
