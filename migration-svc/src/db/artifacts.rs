//! Queries over `migration.artifacts`. Every caller-facing read is scoped to an
//! organization. (The flip to a migration's target is part of recording outcomes,
//! `items::record`: conditional on the artifact still being live on its source, so it
//! happens at most once.)

use stowage_shared::{
    db::{self, GenericClient, OwnedRows},
    tenant_keys::Wrapped,
};
use tokio_postgres::{Row, types::ToSql};
use uuid::Uuid;

use crate::{
    domain::model::{artifacts::Artifact, runs::Scope},
    error::{Error, Result},
};

pub(super) const COLUMNS: &str = "id, organization_id, binding_id, object_key, name, purpose,
    content_type, size_bytes, sha256, stored_bytes, kek_id, create_time, update_time,
    delete_time";

fn artifact(row: &Row) -> Result<Artifact> {
    Ok(artifact_at(row, 0))
}

/// The artifact in the columns of [`COLUMNS`] from column `first` on (a wider row, as a
/// claim returns).
pub(super) fn artifact_at(row: &Row, first: usize) -> Artifact {
    let at = |n: usize| first + n;
    Artifact {
        id: row.get(at(0)),
        organization_id: row.get(at(1)),
        binding_id: row.get(at(2)),
        object_key: row.get(at(3)),
        name: row.get(at(4)),
        purpose: row.get(at(5)),
        content_type: row.get(at(6)),
        size_bytes: row.get(at(7)),
        sha256: row.get(at(8)),
        stored_bytes: row.get(at(9)),
        kek_id: row.get(at(10)),
        create_time: row.get(at(11)),
        update_time: row.get(at(12)),
        delete_time: row.get(at(13)),
    }
}

/// The conditions an artifact (columns unqualified) meets to be in a run's scope, with the
/// scope's five values as parameters `$first` to `$first + 4`, as [`scope_params`] gives
/// them.
pub(super) fn in_scope(first: usize) -> String {
    let [purposes, excluded, bindings, after, before] =
        [first, first + 1, first + 2, first + 3, first + 4];
    format!(
        "(cardinality(${purposes}::text[]) = 0 or purpose = any(${purposes}))
         and not (purpose = any(${excluded}::text[]))
         and (cardinality(${bindings}::uuid[]) = 0 or binding_id = any(${bindings}))
         and (${after}::timestamptz is null or create_time >= ${after})
         and (${before}::timestamptz is null or create_time < ${before})"
    )
}

/// The parameters of [`in_scope`], in its order.
pub(super) fn scope_params(scope: &Scope) -> [&(dyn ToSql + Sync); 5] {
    [
        &scope.purposes,
        &scope.excluded_purposes,
        &scope.source_bindings,
        &scope.created_after,
        &scope.created_before,
    ]
}

pub async fn insert(client: &impl GenericClient, a: &Artifact) -> Result<()> {
    db::execute(
        client,
        &format!(
            "insert into migration.artifacts ({COLUMNS})
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)"
        ),
        &[
            &a.id,
            &a.organization_id,
            &a.binding_id,
            &a.object_key,
            &a.name,
            &a.purpose,
            &a.content_type,
            &a.size_bytes,
            &a.sha256,
            &a.stored_bytes,
            &a.kek_id,
            &a.create_time,
            &a.update_time,
            &a.delete_time,
        ],
    )
    .await?;
    Ok(())
}

/// Artifacts by id, scoped to an organization unless `None` (the runner).
pub const ARTIFACTS: OwnedRows<Artifact, Error> = OwnedRows::new(
    "artifact",
    "migration.artifacts",
    COLUMNS,
    "organization_id",
    artifact,
    |a| a.id,
);

#[derive(Debug, Clone)]
pub struct ArtifactFilter<'a> {
    pub binding: Option<Uuid>,
    pub purpose: Option<&'a str>,
    pub show_deleted: bool,
}

pub async fn list(
    client: &impl GenericClient,
    org: &str,
    filter: &ArtifactFilter<'_>,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Artifact>> {
    let sql = format!(
        "select {COLUMNS} from migration.artifacts
         where organization_id = $1
           and ($2::uuid is null or binding_id = $2)
           and ($3::text is null or purpose = $3)
           and ($4 or delete_time is null)
           and ($5::uuid is null or id > $5)
         order by id limit $6"
    );
    db::query_map(
        client,
        &sql,
        &[
            &org,
            &filter.binding,
            &filter.purpose,
            &filter.show_deleted,
            &after,
            &limit,
        ],
        artifact,
    )
    .await
}

pub async fn mark_deleted(
    client: &impl GenericClient,
    org: &str,
    id: Uuid,
) -> Result<Option<Artifact>> {
    let sql = format!(
        "update migration.artifacts
         set delete_time = coalesce(delete_time, now()), update_time = now()
         where id = $1 and organization_id = $2 returning {COLUMNS}"
    );
    db::query_opt_map(client, &sql, &[&id, &org], artifact).await
}

/// A verified copy to point an artifact at.
#[derive(Debug)]
pub struct Flip {
    pub id: Uuid,
    pub source: Uuid,
    pub object_key: String,
    pub stored_bytes: i64,
    pub kek_id: String,
}

/// Live artifacts, as organization keys wrap their objects.
pub const LIVE_OBJECTS: Wrapped<'static> = Wrapped {
    table: "migration.artifacts",
    tenant_column: "organization_id",
    kek_column: "kek_id",
    only: "o.delete_time is null",
};
