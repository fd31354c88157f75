//! Recording outcomes: a batch of endings in one statement, flips included, numbered in
//! commit order and counted on the run.

use std::sync::LazyLock;

use stowage_shared::db::GenericClient;
use tokio_postgres::Row;
use uuid::Uuid;

use super::{RUN_AND_TARGET, parse_binding_state, parse_item_state, parse_run_state};
use crate::{
    db::artifacts,
    domain::model::{
        bindings::BindingState,
        runs::{ItemCause, ItemState, RunState},
    },
    error::Result,
};

/// How a leased item is to end, planned before the recording statement runs.
#[derive(Debug)]
pub struct Ending {
    pub artifact_id: Uuid,
    pub state: ItemState,
    pub cause: Option<ItemCause>,
    pub detail: String,
    /// Bytes migrated (a MIGRATED item's plaintext length).
    pub bytes: i64,
    /// The verified copy to point the artifact at, for a MIGRATED item.
    pub flip: Option<artifacts::Flip>,
}

/// One recorded outcome.
#[derive(Debug)]
pub struct Finished {
    pub artifact_id: Uuid,
    pub state: ItemState,
    pub cause: Option<ItemCause>,
    pub detail: String,
    pub bytes: i64,
}

/// What a recording statement found, and what it recorded if the run and its target
/// were as the endings were planned for.
#[derive(Debug)]
pub struct Recording {
    pub run_state: RunState,
    pub target_state: Option<BindingState>,
    /// `None`: the run or its target was not as planned, and nothing was written.
    pub finished: Option<Vec<Finished>>,
}

/// The recording statement (see [`record`]).
static RECORD: LazyLock<String> = LazyLock::new(|| {
    format!(
        "with {RUN_AND_TARGET},
             verdict as (
                 select run.state = 'running' as running,
                        run.state = 'running'
                            and coalesce((select state from target) = 'active', false) as active
                 from run),
             go as (select 1 from verdict where running = $3 and active = $4),
             ending as (
                 select * from unnest($5::uuid[], $6::text[], $7::text[], $8::text[],
                                      $9::int8[], $10::uuid[], $11::text[], $12::int8[],
                                      $13::text[])
                     with ordinality
                     as e(artifact_id, state, cause, detail, bytes, flip_source, flip_key,
                          flip_stored, flip_kek, ord)),
             held as (
                 select i.artifact_id from migration.run_items i
                 join ending e on e.artifact_id = i.artifact_id
                 where i.run_id = $1 and i.state = 'running' and i.lease_owner = $2
                   and exists (select 1 from go)
                 order by i.artifact_id for update of i),
             flipped as (
                 update migration.artifacts a
                 set binding_id = (select target_binding_id from run), object_key = e.flip_key,
                     stored_bytes = e.flip_stored, kek_id = e.flip_kek, update_time = now()
                 from ending e
                 where e.flip_source is not null
                   and e.artifact_id in (select artifact_id from held)
                   and a.id = e.artifact_id and a.binding_id = e.flip_source
                   and a.delete_time is null
                 returning a.id),
             decided as (
                 select e.artifact_id, e.ord,
                        e.flip_source is null or f.id is not null as as_planned,
                        a.delete_time is null
                            and a.binding_id = (select target_binding_id from run) as on_target,
                        -- the statement's snapshot: the key before the flip, on the source
                        case when f.id is not null then a.object_key end as source_key,
                        e.state, e.cause, e.detail, e.bytes
                 from ending e
                 join held h on h.artifact_id = e.artifact_id
                 left join flipped f on f.id = e.artifact_id
                 left join migration.artifacts a on a.id = e.artifact_id),
             numbered as (
                 select artifact_id,
                        case when as_planned then state else 'skipped' end as state,
                        case when as_planned then cause
                             when on_target then 'already_on_target'
                             else 'artifact_deleted' end as cause,
                        case when as_planned then detail else '' end as detail,
                        case when as_planned then bytes else 0 end as bytes,
                        source_key,
                        (select last_outcome from run) + row_number() over (order by ord) as seq
                 from decided),
             finished as (
                 update migration.run_items i
                 set state = n.state, cause = n.cause, cause_detail = nullif(n.detail, ''),
                     source_object_key = n.source_key, outcome_seq = n.seq, lease_owner = null, lease_expires = null,
                     end_time = now(), update_time = now()
                 from numbered n
                 where i.run_id = $1 and i.artifact_id = n.artifact_id),
             counted as (
                 update migration.runs r
                 set items_running = items_running - t.n,
                     items_migrated = items_migrated + t.migrated,
                     items_skipped = items_skipped + t.skipped,
                     items_failed = items_failed + t.failed,
                     bytes_migrated = bytes_migrated + t.bytes,
                     last_outcome = last_outcome + t.n, update_time = now()
                 from (select count(*) as n,
                              count(*) filter (where state = 'migrated') as migrated,
                              count(*) filter (where state = 'skipped') as skipped,
                              count(*) filter (where state = 'failed') as failed,
                              coalesce(sum(bytes), 0)::int8 as bytes
                       from numbered) t
                 where r.id = $1 and t.n > 0)
             select run.state as run_state, (select state from target) as target_state,
                    exists (select 1 from go) as recorded,
                    n.artifact_id, n.state, n.cause, n.detail, n.bytes
             from run left join numbered n on true
             order by n.seq"
    )
});

/// Records the endings of items `owner` leased, in one statement, if the run is running
/// (`running`) and its target active (`active`) as the endings were planned: the run row
/// locked first (so outcome numbers follow commit order), the leases `owner` still holds
/// locked (an item whose lease was lost is not recorded: the replica that took it over
/// records it), each flip applied only to an artifact still live on its source, a
/// MIGRATED ending whose flip did not apply recorded SKIPPED (already on the target, or
/// deleted), outcomes numbered after the run's last, and the run's counters moved. `None`
/// if the run is gone.
pub async fn record(
    client: &impl GenericClient,
    run_id: Uuid,
    owner: &str,
    (running, active): (bool, bool),
    endings: &[Ending],
) -> Result<Option<Recording>> {
    let statement = client.prepare_cached(&RECORD).await?;

    let ids: Vec<Uuid> = endings.iter().map(|e| e.artifact_id).collect();
    let states: Vec<&str> = endings.iter().map(|e| e.state.as_str()).collect();
    let causes: Vec<Option<&str>> = endings
        .iter()
        .map(|e| e.cause.map(ItemCause::as_str))
        .collect();
    let details: Vec<&str> = endings.iter().map(|e| e.detail.as_str()).collect();
    let bytes: Vec<i64> = endings.iter().map(|e| e.bytes).collect();
    let flips = endings.iter().map(|e| e.flip.as_ref());
    let sources: Vec<Option<Uuid>> = flips.clone().map(|f| f.map(|f| f.source)).collect();
    let keys: Vec<Option<&str>> = flips
        .clone()
        .map(|f| f.map(|f| f.object_key.as_str()))
        .collect();
    let stored: Vec<Option<i64>> = flips.clone().map(|f| f.map(|f| f.stored_bytes)).collect();
    let keks: Vec<Option<&str>> = flips.map(|f| f.map(|f| f.kek_id.as_str())).collect();
    let rows = client
        .query(
            &statement,
            &[
                &run_id, &owner, &running, &active, &ids, &states, &causes, &details, &bytes,
                &sources, &keys, &stored, &keks,
            ],
        )
        .await?;
    let Some(first) = rows.first() else {
        return Ok(None);
    };
    let run_state: &str = first.get("run_state");
    let target_state: Option<&str> = first.get("target_state");
    let recorded: bool = first.get("recorded");
    let finished = if recorded {
        let rows = rows
            .iter()
            .filter(|row| row.get::<_, Option<Uuid>>("artifact_id").is_some());
        Some(rows.map(finished).collect::<Result<Vec<_>>>()?)
    } else {
        None
    };
    Ok(Some(Recording {
        run_state: parse_run_state(run_state)?,
        target_state: target_state.map(parse_binding_state).transpose()?,
        finished,
    }))
}

fn finished(row: &Row) -> Result<Finished> {
    let state: &str = row.get("state");
    let cause: Option<&str> = row.get("cause");
    Ok(Finished {
        artifact_id: row.get("artifact_id"),
        state: parse_item_state(state)?,
        cause: cause.and_then(ItemCause::parse),
        detail: row.get("detail"),
        bytes: row.get("bytes"),
    })
}
