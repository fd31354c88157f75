//! Queries of verified source cleanup over `migration.run_items`: the migrated items of a
//! run whose source copy is still there (with the artifact as it is now), and the steps of
//! a deletion, recorded before and after the source object goes.

use std::sync::LazyLock;

use stowage_shared::db::{self, GenericClient};
use tokio_postgres::Row;
use uuid::Uuid;

use super::{artifacts, qualified};
use crate::{
    domain::model::cleanup::{Candidate, DeleteGuard, SourceCleanup},
    error::{Error, Result},
};

static CANDIDATES: LazyLock<String> = LazyLock::new(|| {
    format!(
        "select i.source_binding_id, i.source_object_key, i.end_time, i.source_cleanup, {}
         from migration.run_items i
         join migration.artifacts a on a.id = i.artifact_id
         where i.run_id = $1 and i.state = 'migrated' and i.source_object_key is not null
           and i.source_cleanup is distinct from 'deleted'
           -- the copy the artifact is read from now is never a source to delete
           and not (a.binding_id = i.source_binding_id
                    and a.object_key = i.source_object_key)
           and ($2::uuid is null or i.artifact_id > $2)
         order by i.artifact_id limit $3",
        qualified("a", artifacts::COLUMNS)
    )
});

/// The next `limit` items of run `run_id` after artifact `after` whose source copy has
/// not been deleted, by artifact id.
pub async fn candidates(
    client: &impl GenericClient,
    run_id: Uuid,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<Candidate>> {
    db::query_map(client, &CANDIDATES, &[&run_id, &after, &limit], candidate).await
}

fn candidate(row: &Row) -> Result<Candidate> {
    let cleanup: Option<&str> = row.try_get(3)?;
    let cleanup = cleanup
        .map(|text| {
            SourceCleanup::parse(text)
                .ok_or_else(|| Error::Corrupt(format!("source cleanup state {text:?}")))
        })
        .transpose()?;
    Ok(Candidate {
        source_binding_id: row.try_get(0)?,
        source_object_key: row.try_get(1)?,
        migrated_at: row.try_get(2)?,
        cleanup,
        artifact: artifacts::artifact_at(row, 4),
    })
}

/// Records how far the deletion of an item's source went (`None`: not started, the source
/// is untouched).
pub async fn mark(
    client: &impl GenericClient,
    run_id: Uuid,
    artifact_id: Uuid,
    cleanup: Option<SourceCleanup>,
) -> Result<()> {
    db::execute(
        client,
        "update migration.run_items
         set source_cleanup = $3,
             source_deleted_time = case when $3 = 'deleted' then now() end,
             update_time = now()
         where run_id = $1 and artifact_id = $2",
        &[&run_id, &artifact_id, &cleanup.map(SourceCleanup::as_str)],
    )
    .await?;
    Ok(())
}

/// Reads what a deletion must see under locks held to the end of `tx`: the source
/// binding's row shared (it cannot become active meanwhile, so no migration can flip an
/// artifact onto it) and the artifact's row exclusive (it cannot be flipped meanwhile).
pub async fn lock_for_delete(
    tx: &impl GenericClient,
    source_binding: Uuid,
    artifact: Uuid,
) -> Result<DeleteGuard> {
    let source = tx
        .query_one(
            "select state = 'active' from migration.bindings where id = $1 for share",
            &[&source_binding],
        )
        .await?;
    let current = tx
        .query_one(
            "select binding_id, object_key from migration.artifacts where id = $1 for update",
            &[&artifact],
        )
        .await?;
    Ok(DeleteGuard {
        source_active: source.try_get(0)?,
        binding_id: current.try_get(0)?,
        object_key: current.try_get(1)?,
    })
}
