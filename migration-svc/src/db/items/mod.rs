//! Queries over `migration.run_items`: planning pages, leases (claim in
//! [`claim`](mod@claim), heartbeat, release), outcomes (recorded in
//! [`record`](mod@record)), and listings by state or by outcome sequence.

mod claim;
mod record;

use std::time::Duration;

use stowage_shared::db::{self, GenericClient};
use tokio_postgres::{Row, types::ToSql};
use uuid::Uuid;

pub use self::{
    claim::claim,
    record::{Ending, Finished, Recording, record},
};
use super::artifacts;
use crate::{
    domain::model::{
        bindings::BindingState,
        runs::{ItemCause, ItemState, Run, RunItem, RunState},
    },
    error::{Error, Result},
};

/// The first expressions of a claim and of a recording: the run's row, locked (a run's
/// claims and records take turns, and its counters move with them), and its target
/// binding's state, share-locked (an activation of another binding waits for it).
const RUN_AND_TARGET: &str = "run as (
        select state, cancel_requested, last_outcome, target_binding_id from migration.runs
        where id = $1 for update),
    target as (
        select state from migration.bindings
        where id = (select target_binding_id from run) for share)";

const COLUMNS: &str = "run_id, artifact_id, source_binding_id, state, size_bytes, cause,
    cause_detail, attempts, start_time, end_time, outcome_seq";

fn item(row: &Row) -> Result<RunItem> {
    let state: &str = row.get("state");
    let cause: Option<&str> = row.get("cause");
    Ok(RunItem {
        run_id: row.get("run_id"),
        artifact_id: row.get("artifact_id"),
        source_binding_id: row.get("source_binding_id"),
        state: parse_item_state(state)?,
        size_bytes: row.get("size_bytes"),
        cause: cause.and_then(ItemCause::parse),
        cause_detail: row.get("cause_detail"),
        attempts: row.get("attempts"),
        start_time: row.get("start_time"),
        end_time: row.get("end_time"),
        outcome_seq: row.get("outcome_seq"),
    })
}

/// One planned page: the last artifact it covered and what it added per source binding.
#[derive(Debug, Default)]
pub struct PlannedPage {
    pub last: Option<Uuid>,
    /// `(source binding, artifacts, bytes)`.
    pub sources: Vec<(Uuid, i64, i64)>,
}

/// Plans the next page of `run`'s candidates (the organization's live artifacts in the
/// run's scope and not on its target, after `after` in id order). `record` inserts them as
/// QUEUED items (a live run); otherwise into the dry run's plan (`migration.run_plans`),
/// which a live run can execute.
pub async fn plan_page(
    client: &impl GenericClient,
    run: &Run,
    after: Option<Uuid>,
    limit: i64,
    record: bool,
) -> Result<PlannedPage> {
    let page = format!(
        "page as (
            select id, binding_id, size_bytes, sha256 from migration.artifacts
            where organization_id = $1 and delete_time is null and binding_id <> $2
              and ($3::uuid is null or id > $3) and {}
            order by id limit $4)",
        artifacts::in_scope(6)
    );
    let taken = if record {
        "taken as (
            insert into migration.run_items
                (run_id, artifact_id, source_binding_id, size_bytes, state, update_time)
            select $5, id, binding_id, size_bytes, 'queued', now() from page
            on conflict do nothing
            returning source_binding_id, size_bytes)"
    } else {
        "taken as (
            insert into migration.run_plans (run_id, artifact_id, binding_id, size_bytes, sha256)
            select $5, id, binding_id, size_bytes, sha256 from page
            on conflict do nothing
            returning binding_id as source_binding_id, size_bytes)"
    };
    let sql = format!(
        "with {page}, {taken}
         select last.id, g.binding, g.n, g.bytes
         from (select id from page order by id desc limit 1) last
         left join (select source_binding_id as binding, count(*) as n,
                           sum(size_bytes)::bigint as bytes
                    from taken group by 1) g on true"
    );
    let statement = client.prepare_cached(&sql).await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &run.organization_id,
        &run.target_binding_id,
        &after,
        &limit,
        &run.id,
    ];
    params.extend(artifacts::scope_params(&run.scope));
    let rows = client.query(&statement, &params).await?;
    let mut planned = PlannedPage::default();
    for row in rows {
        planned.last = row.get(0);
        if let Some(binding) = row.get::<_, Option<Uuid>>(1) {
            planned.sources.push((binding, row.get(2), row.get(3)));
        }
    }
    Ok(planned)
}

/// Renews `owner`'s leases on the given items (`(runs[i], artifacts[i])`), locking them
/// in key order as recording does, so the two never deadlock.
pub async fn heartbeat(
    client: &impl GenericClient,
    owner: &str,
    runs: &[Uuid],
    artifacts: &[Uuid],
    ttl: Duration,
) -> Result<u64> {
    Ok(db::execute(
        client,
        "with held as (
             select i.run_id, i.artifact_id from migration.run_items i
             join unnest($3::uuid[], $4::uuid[]) as h(run_id, artifact_id)
               on i.run_id = h.run_id and i.artifact_id = h.artifact_id
             where i.lease_owner = $1 and i.state = 'running'
             order by i.run_id, i.artifact_id for update of i)
         update migration.run_items i
             set lease_expires = now() + make_interval(secs => $2)
             from held
             where i.run_id = held.run_id and i.artifact_id = held.artifact_id",
        &[&owner, &ttl.as_secs_f64(), &runs, &artifacts],
    )
    .await?)
}

pub(super) fn parse_item_state(state: &str) -> Result<ItemState> {
    ItemState::parse(state).ok_or_else(|| Error::Corrupt(format!("item state {state:?}")))
}

pub(super) fn parse_run_state(state: &str) -> Result<RunState> {
    RunState::parse(state).ok_or_else(|| Error::Corrupt(format!("run state {state:?}")))
}

pub(super) fn parse_binding_state(state: &str) -> Result<BindingState> {
    BindingState::parse(state).ok_or_else(|| Error::Corrupt(format!("binding state {state:?}")))
}

/// Gives a leased, unstarted item back to the queue.
pub async fn release(
    client: &impl GenericClient,
    run_id: Uuid,
    artifact_id: Uuid,
    owner: &str,
) -> Result<bool> {
    Ok(db::execute(
        client,
        "update migration.run_items
             set state = 'queued', lease_owner = null, lease_expires = null,
                 attempts = greatest(attempts - 1, 0), update_time = now()
             where run_id = $1 and artifact_id = $2 and state = 'running' and lease_owner = $3",
        &[&run_id, &artifact_id, &owner],
    )
    .await?
        == 1)
}

pub async fn list(
    client: &impl GenericClient,
    run_id: Uuid,
    state: Option<ItemState>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<RunItem>> {
    let sql = format!(
        "select {COLUMNS} from migration.run_items
         where run_id = $1 and ($2::text is null or state = $2)
           and ($3::uuid is null or artifact_id > $3)
         order by artifact_id limit $4"
    );
    db::query_map(
        client,
        &sql,
        &[&run_id, &state.map(ItemState::as_str), &after, &limit],
        item,
    )
    .await
}

/// Outcomes numbered after `after`, in order.
pub async fn outcomes_after(
    client: &impl GenericClient,
    run_id: Uuid,
    after: i64,
    limit: i64,
) -> Result<Vec<RunItem>> {
    let sql = format!(
        "select {COLUMNS} from migration.run_items
         where run_id = $1 and outcome_seq > $2
         order by outcome_seq limit $3"
    );
    db::query_map(client, &sql, &[&run_id, &after, &limit], item).await
}

/// Puts items whose lease expired back in the queue (a cancelled run's leftovers);
/// returns how many.
pub async fn requeue_expired(client: &impl GenericClient, run_id: Uuid) -> Result<i64> {
    Ok(db::execute(
        client,
        "update migration.run_items
             set state = 'queued', lease_owner = null, lease_expires = null, update_time = now()
             where run_id = $1 and state = 'running' and lease_expires < now()",
        &[&run_id],
    )
    .await? as i64)
}

/// Ends every still-leased item of a failing run as FAILED with `cause`, numbering their
/// outcomes after `last_outcome`, and moves the run's counters with them. Call with the
/// run row locked.
/// Fails every queued item of a run that failed before starting them, with `cause` and
/// no outcome number (they are counted, not streamed); returns how many.
pub async fn fail_queued(
    client: &impl GenericClient,
    run_id: Uuid,
    cause: ItemCause,
    detail: &str,
) -> Result<i64> {
    let statement = client
        .prepare_cached(
            "with closed as (
                 update migration.run_items
                 set state = 'failed', cause = $2, cause_detail = $3, lease_owner = null,
                     lease_expires = null, end_time = now(), update_time = now()
                 where run_id = $1 and state = 'queued'
                 returning 1)
             update migration.runs
             set items_queued = items_queued - (select count(*) from closed),
                 items_failed = items_failed + (select count(*) from closed)
             where id = $1
             returning (select count(*) from closed)",
        )
        .await?;
    Ok(client
        .query_one(&statement, &[&run_id, &cause.as_str(), &detail])
        .await?
        .get(0))
}

pub async fn fail_running(
    client: &impl GenericClient,
    run_id: Uuid,
    cause: ItemCause,
    detail: &str,
    last_outcome: i64,
) -> Result<i64> {
    let statement = client
        .prepare_cached(
            "with running as (
                 select artifact_id, row_number() over (order by artifact_id) as n
                 from migration.run_items where run_id = $1 and state = 'running'),
             closed as (
                 update migration.run_items i
                 set state = 'failed', cause = $2, cause_detail = $3,
                     outcome_seq = $4 + running.n, lease_owner = null, lease_expires = null,
                     end_time = now(), update_time = now()
                 from running
                 where i.run_id = $1 and i.artifact_id = running.artifact_id
                 returning 1)
             update migration.runs
             set items_running = items_running - (select count(*) from closed),
                 items_failed = items_failed + (select count(*) from closed),
                 last_outcome = last_outcome + (select count(*) from closed)
             where id = $1
             returning (select count(*) from closed)",
        )
        .await?;
    Ok(client
        .query_one(
            &statement,
            &[&run_id, &cause.as_str(), &detail, &last_outcome],
        )
        .await?
        .get(0))
}
