//! Queries over `migration.artifacts`. Every caller-facing read is scoped to an
//! organization; the flip to a migration's target is conditional on the artifact still
//! being live on its source, so it happens at most once.

use stowage_shared::db::{self, GenericClient};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{domain::model::artifacts::Artifact, error::Result};

const COLUMNS: &str = "id, organization_id, binding_id, object_key, name, purpose,
    content_type, size_bytes, sha256, stored_bytes, kek_id, create_time, update_time,
    delete_time";

fn artifact(row: &Row) -> Artifact {
    Artifact {
        id: row.get("id"),
        organization_id: row.get("organization_id"),
        binding_id: row.get("binding_id"),
        object_key: row.get("object_key"),
        name: row.get("name"),
        purpose: row.get("purpose"),
        content_type: row.get("content_type"),
        size_bytes: row.get("size_bytes"),
        sha256: row.get("sha256"),
        stored_bytes: row.get("stored_bytes"),
        kek_id: row.get("kek_id"),
        create_time: row.get("create_time"),
        update_time: row.get("update_time"),
        delete_time: row.get("delete_time"),
    }
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

/// An artifact, scoped to an organization unless `org` is `None` (the runner).
pub async fn get(
    client: &impl GenericClient,
    org: Option<&str>,
    id: Uuid,
) -> Result<Option<Artifact>> {
    let statement = client
        .prepare_cached(&format!(
            "select {COLUMNS} from migration.artifacts
             where id = $1 and ($2::text is null or organization_id = $2)"
        ))
        .await?;
    Ok(client
        .query_opt(&statement, &[&id, &org])
        .await?
        .as_ref()
        .map(artifact))
}

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
    let statement = client
        .prepare_cached(&format!(
            "select {COLUMNS} from migration.artifacts
             where organization_id = $1
               and ($2::uuid is null or binding_id = $2)
               and ($3::text is null or purpose = $3)
               and ($4 or delete_time is null)
               and ($5::uuid is null or id > $5)
             order by id limit $6"
        ))
        .await?;
    Ok(client
        .query(
            &statement,
            &[
                &org,
                &filter.binding,
                &filter.purpose,
                &filter.show_deleted,
                &after,
                &limit,
            ],
        )
        .await?
        .iter()
        .map(artifact)
        .collect())
}

pub async fn mark_deleted(
    client: &impl GenericClient,
    org: &str,
    id: Uuid,
) -> Result<Option<Artifact>> {
    let statement = client
        .prepare_cached(&format!(
            "update migration.artifacts
             set delete_time = coalesce(delete_time, now()), update_time = now()
             where id = $1 and organization_id = $2 returning {COLUMNS}"
        ))
        .await?;
    Ok(client
        .query_opt(&statement, &[&id, &org])
        .await?
        .as_ref()
        .map(artifact))
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

/// Points every live artifact that is still on its `source` at its verified copy on
/// `target`; returns the ids it flipped.
pub async fn flip(client: &impl GenericClient, target: Uuid, flips: &[Flip]) -> Result<Vec<Uuid>> {
    if flips.is_empty() {
        return Ok(Vec::new());
    }
    let statement = client
        .prepare_cached(
            "update migration.artifacts a
             set binding_id = $1, object_key = f.object_key, stored_bytes = f.stored_bytes,
                 kek_id = f.kek_id, update_time = now()
             from unnest($2::uuid[], $3::uuid[], $4::text[], $5::int8[], $6::text[])
                 as f(id, source, object_key, stored_bytes, kek_id)
             where a.id = f.id and a.binding_id = f.source and a.delete_time is null
             returning a.id",
        )
        .await?;
    let ids: Vec<Uuid> = flips.iter().map(|f| f.id).collect();
    let sources: Vec<Uuid> = flips.iter().map(|f| f.source).collect();
    let keys: Vec<&str> = flips.iter().map(|f| f.object_key.as_str()).collect();
    let stored: Vec<i64> = flips.iter().map(|f| f.stored_bytes).collect();
    let keks: Vec<&str> = flips.iter().map(|f| f.kek_id.as_str()).collect();
    Ok(client
        .query(
            &statement,
            &[&target, &ids, &sources, &keys, &stored, &keks],
        )
        .await?
        .iter()
        .map(|row| row.get(0))
        .collect())
}
