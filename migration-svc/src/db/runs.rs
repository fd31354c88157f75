//! Queries over `migration.runs`: the run rows, their leases, counters kept in step with
//! item transitions, and the outcome sequence watchers follow.

use std::time::Duration;

use stowage_shared::{
    api::Page,
    db::{self, Filter, GenericClient, IdOrder, OwnedRows},
};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    domain::model::runs::{
        Counts, FailureCause, ItemState, Limit, Mode, Run, RunState, SourceReport,
    },
    error::{Error, Result},
};

const COLUMNS: &str = "id, organization_id, target_binding_id, mode, state, reason, requested_by,
    retry_of, limit_bytes_per_second, limit_objects_per_second, cancel_requested,
    failure_cause, failure_detail, sources, scope, plan_digest, from_dry_run, items_queued,
    items_running, items_migrated, items_skipped, items_failed, bytes_total, bytes_migrated,
    last_outcome, create_time, start_time, end_time, update_time";

fn run(row: &Row) -> Result<Run> {
    let mode: &str = row.get("mode");
    let state: &str = row.get("state");
    let cause: Option<&str> = row.get("failure_cause");
    let sources: serde_json::Value = row.get("sources");
    let scope: serde_json::Value = row.get("scope");
    Ok(Run {
        id: row.get("id"),
        organization_id: row.get("organization_id"),
        target_binding_id: row.get("target_binding_id"),
        mode: Mode::parse(mode).ok_or_else(|| Error::Corrupt(format!("run mode {mode:?}")))?,
        state: RunState::parse(state)
            .ok_or_else(|| Error::Corrupt(format!("run state {state:?}")))?,
        reason: row.get("reason"),
        requested_by: row.get("requested_by"),
        retry_of: row.get("retry_of"),
        limit: Limit {
            bytes_per_second: row.get("limit_bytes_per_second"),
            objects_per_second: row.get("limit_objects_per_second"),
        },
        scope: serde_json::from_value(scope)
            .map_err(|e| Error::Corrupt(format!("run scope: {e}")))?,
        plan_digest: row.get("plan_digest"),
        from_dry_run: row.get("from_dry_run"),
        counts: Counts {
            queued: row.get("items_queued"),
            running: row.get("items_running"),
            migrated: row.get("items_migrated"),
            skipped: row.get("items_skipped"),
            failed: row.get("items_failed"),
        },
        bytes_total: row.get("bytes_total"),
        bytes_migrated: row.get("bytes_migrated"),
        sources: serde_json::from_value::<Vec<SourceReport>>(sources)
            .map_err(|e| Error::Corrupt(format!("run sources: {e}")))?,
        failure_cause: cause.and_then(FailureCause::parse),
        failure_detail: row.get("failure_detail"),
        cancel_requested: row.get("cancel_requested"),
        last_outcome: row.get("last_outcome"),
        create_time: row.get("create_time"),
        start_time: row.get("start_time"),
        end_time: row.get("end_time"),
        update_time: row.get("update_time"),
    })
}

fn seconds(ttl: Duration) -> f64 {
    ttl.as_secs_f64()
}

pub async fn insert(client: &impl GenericClient, r: &Run) -> Result<()> {
    let scope =
        serde_json::to_value(&r.scope).map_err(|e| Error::Internal(format!("run scope: {e}")))?;
    db::execute(
        client,
        "insert into migration.runs (id, organization_id, target_binding_id, mode, state,
                 reason, requested_by, retry_of, limit_bytes_per_second,
                 limit_objects_per_second, scope, from_dry_run, create_time, update_time)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        &[
            &r.id,
            &r.organization_id,
            &r.target_binding_id,
            &r.mode.as_str(),
            &r.state.as_str(),
            &r.reason,
            &r.requested_by,
            &r.retry_of,
            &r.limit.bytes_per_second,
            &r.limit.objects_per_second,
            &scope,
            &r.from_dry_run,
            &r.create_time,
        ],
    )
    .await?;
    Ok(())
}

/// Runs by id, scoped to an organization unless `None` (the runner). Every transaction
/// that changes a run's items locks the run first (`RowLock::ForUpdate`), so they never
/// deadlock and outcome numbers follow commit order.
pub const RUNS: OwnedRows<Run, Error> = OwnedRows::new(
    "run",
    "migration.runs",
    COLUMNS,
    "organization_id",
    run,
    |r| r.id,
);

pub async fn list(
    client: &impl GenericClient,
    org: &str,
    state: Option<RunState>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Page<Run, Uuid>> {
    let state = state.map(RunState::as_str);
    let state_is: Filter = ("($2::text is null or state = $2)", &state);
    RUNS.page(
        client,
        Some(org),
        state_is,
        after,
        limit,
        IdOrder::Descending,
    )
    .await
}

/// Leases the oldest queued run, or a planning run whose planner stopped renewing its
/// lease, and moves it to PLANNING.
pub async fn claim_for_planning(
    client: &impl GenericClient,
    owner: &str,
    ttl: Duration,
) -> Result<Option<Run>> {
    let sql = format!(
        "update migration.runs set state = 'planning', lease_owner = $1,
             lease_expires = now() + make_interval(secs => $2),
             start_time = coalesce(start_time, now()), update_time = now()
         where id = (select id from migration.runs
                     where state = 'queued'
                        or (state = 'planning' and lease_expires < now())
                     order by create_time limit 1 for update skip locked)
         returning {COLUMNS}"
    );
    db::query_opt_map(client, &sql, &[&owner, &seconds(ttl)], run).await
}

/// Where planning of a run stopped: the last artifact planned.
pub async fn plan_cursor(client: &impl GenericClient, id: Uuid) -> Result<Option<Uuid>> {
    let statement = client
        .prepare_cached("select plan_cursor from migration.runs where id = $1")
        .await?;
    Ok(client.query_one(&statement, &[&id]).await?.get(0))
}

/// Records a planned page under the planner's lease (renewing it). Returns whether a
/// cancel was requested, or `None` if the lease was lost (the caller rolls back).
#[allow(clippy::too_many_arguments)]
pub async fn save_plan_page(
    client: &impl GenericClient,
    id: Uuid,
    owner: &str,
    ttl: Duration,
    cursor: Uuid,
    sources: &[SourceReport],
    items: i64,
    bytes: i64,
) -> Result<Option<bool>> {
    let statement = client
        .prepare_cached(
            "update migration.runs set plan_cursor = $3, sources = $4,
                 items_queued = items_queued + $5, bytes_total = bytes_total + $6,
                 lease_expires = now() + make_interval(secs => $7), update_time = now()
             where id = $1 and lease_owner = $2 and state = 'planning'
             returning cancel_requested",
        )
        .await?;
    let sources =
        serde_json::to_value(sources).map_err(|e| Error::Internal(format!("sources: {e}")))?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 7] = [
        &id,
        &owner,
        &cursor,
        &sources,
        &items,
        &bytes,
        &seconds(ttl),
    ];
    Ok(client
        .query_opt(&statement, &params)
        .await?
        .map(|row| row.get(0)))
}

/// PLANNING → RUNNING under the planner's lease, which it gives up.
pub async fn start_running(client: &impl GenericClient, id: Uuid, owner: &str) -> Result<bool> {
    Ok(db::execute(
        client,
        "update migration.runs set state = 'running', lease_owner = null,
                 lease_expires = null, update_time = now()
             where id = $1 and lease_owner = $2 and state = 'planning'",
        &[&id, &owner],
    )
    .await?
        == 1)
}

/// Ends a run in `state` (terminal).
pub async fn end(
    client: &impl GenericClient,
    id: Uuid,
    state: RunState,
    cause: Option<FailureCause>,
    detail: Option<&str>,
) -> Result<()> {
    db::execute(
        client,
        "update migration.runs set state = $2, failure_cause = $3, failure_detail = $4,
                 lease_owner = null, lease_expires = null, end_time = now(),
                 update_time = now()
             where id = $1",
        &[
            &id,
            &state.as_str(),
            &cause.map(FailureCause::as_str),
            &detail,
        ],
    )
    .await?;
    Ok(())
}

pub async fn request_cancel(client: &impl GenericClient, id: Uuid) -> Result<()> {
    db::execute(
        client,
        "update migration.runs set cancel_requested = true, update_time = now()
             where id = $1",
        &[&id],
    )
    .await?;
    Ok(())
}

/// Running runs, oldest first.
pub async fn running(client: &impl GenericClient) -> Result<Vec<Uuid>> {
    let statement = client
        .prepare_cached(
            "select id from migration.runs where state = 'running' order by create_time",
        )
        .await?;
    Ok(client
        .query(&statement, &[])
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect())
}

fn counter(state: ItemState) -> &'static str {
    match state {
        ItemState::Queued => "items_queued",
        ItemState::Running => "items_running",
        ItemState::Migrated => "items_migrated",
        ItemState::Skipped => "items_skipped",
        ItemState::Failed => "items_failed",
    }
}

/// Moves `n` items' worth of counters from `from` to `to`, adding `migrated_bytes`.
pub async fn shift(
    client: &impl GenericClient,
    id: Uuid,
    from: ItemState,
    to: ItemState,
    n: i64,
) -> Result<()> {
    if from == to || n == 0 {
        return Ok(());
    }
    let (from, to) = (counter(from), counter(to));
    db::execute(
        client,
        &format!(
            "update migration.runs set {from} = {from} - $2, {to} = {to} + $2,
                 update_time = now()
             where id = $1"
        ),
        &[&id, &n],
    )
    .await?;
    Ok(())
}

/// How many runs are in each state, and the items of the unfinished ones (queued,
/// planning, running) by item state: the gauges' figures.
pub async fn census(
    client: &impl GenericClient,
) -> Result<(Vec<(RunState, i64)>, Vec<(ItemState, i64)>)> {
    let statement = client
        .prepare_cached(
            "select state, count(*)::int8, sum(items_queued)::int8, sum(items_running)::int8,
                    sum(items_migrated)::int8, sum(items_skipped)::int8, sum(items_failed)::int8
             from migration.runs group by state",
        )
        .await?;
    let mut runs = Vec::new();
    let mut items: Vec<(ItemState, i64)> = ItemState::ALL.iter().map(|s| (*s, 0)).collect();
    for row in client.query(&statement, &[]).await? {
        let state: &str = row.try_get(0)?;
        let Some(state) = RunState::parse(state) else {
            continue;
        };
        runs.push((state, row.try_get(1)?));
        if state.is_terminal() {
            continue;
        }
        for (i, item) in [
            ItemState::Queued,
            ItemState::Running,
            ItemState::Migrated,
            ItemState::Skipped,
            ItemState::Failed,
        ]
        .into_iter()
        .enumerate()
        {
            let n: Option<i64> = row.try_get(i + 2)?;
            if let Some(slot) = items.iter_mut().find(|(s, _)| *s == item) {
                slot.1 += n.unwrap_or(0);
            }
        }
    }
    Ok((runs, items))
}
