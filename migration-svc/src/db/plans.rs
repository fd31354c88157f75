//! Queries over `migration.run_plans`, a dry run's plan artifact by artifact: its rows in
//! order (for the plan's digest), and how the candidates drifted from it since.

use futures::{Stream, TryStreamExt};
use stowage_shared::db::{DbError, GenericClient};
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use super::artifacts;
use crate::{
    domain::model::runs::{Drift, Run},
    error::Result,
};

/// One planned artifact: `(artifact, source binding, size, sha256)`.
pub type Planned = (Uuid, Uuid, i64, String);

/// A dry run's plan in artifact order, streamed (a plan may hold millions).
pub async fn rows(
    client: &impl GenericClient,
    run_id: Uuid,
) -> Result<impl Stream<Item = Result<Planned>>> {
    let statement = client
        .prepare_cached(
            "select artifact_id, binding_id, size_bytes, sha256 from migration.run_plans
             where run_id = $1 order by artifact_id",
        )
        .await?;
    let rows = client
        .query_raw(&statement, [&run_id as &(dyn ToSql + Sync)])
        .await?;
    Ok(rows
        .map_ok(|row| (row.get(0), row.get(1), row.get(2), row.get(3)))
        .map_err(|e| DbError::from(e).into()))
}

pub async fn set_digest(client: &impl GenericClient, run_id: Uuid, digest: &str) -> Result<()> {
    stowage_shared::db::execute(
        client,
        "update migration.runs set plan_digest = $2, update_time = now() where id = $1",
        &[&run_id, &digest],
    )
    .await?;
    Ok(())
}

/// How `dry`'s organization's candidates (live artifacts in its scope, not on its target)
/// differ from its plan now: artifacts added, removed, or changed (another source
/// binding, size or content), each counted, with the first `shown` ids of each.
pub async fn drift(client: &impl GenericClient, dry: &Run, shown: i64) -> Result<Drift> {
    let sql = format!(
        "with current as (
             select id, binding_id, size_bytes, sha256 from migration.artifacts
             where organization_id = $1 and delete_time is null and binding_id <> $2
               and {}),
         plan as (
             select artifact_id as id, binding_id, size_bytes, sha256 from migration.run_plans
             where run_id = $3),
         drift as (
             select case when p.id is null then 'added'
                         when c.id is null then 'removed' else 'changed' end as kind,
                    coalesce(c.id, p.id) as id
             from current c full join plan p on p.id = c.id
             where p.id is null or c.id is null
                or (c.binding_id, c.size_bytes, c.sha256)
                   is distinct from (p.binding_id, p.size_bytes, p.sha256)),
         ranked as (
             select kind, id, count(*) over (partition by kind) as n,
                    row_number() over (partition by kind order by id) as r
             from drift)
         select kind, n, id from ranked where r <= $4 order by kind, id",
        artifacts::in_scope(5)
    );
    let statement = client.prepare_cached(&sql).await?;
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![
        &dry.organization_id,
        &dry.target_binding_id,
        &dry.id,
        &shown,
    ];
    params.extend(artifacts::scope_params(&dry.scope));
    let mut drift = Drift::default();
    for row in client.query(&statement, &params).await? {
        let (kind, n, id): (&str, i64, Uuid) = (row.get(0), row.get(1), row.get(2));
        let drifted = match kind {
            "added" => &mut drift.added,
            "removed" => &mut drift.removed,
            _ => &mut drift.changed,
        };
        drifted.count = n;
        drifted.first.push(id);
    }
    Ok(drift)
}
