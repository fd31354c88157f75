//! Artifacts: uploads always go to the organization's active binding through the verified
//! encrypted layer and are recorded only once verified, and only if that binding is still
//! active then; reads come from whichever binding the artifact is recorded against, with
//! that binding's credential, checked against the recorded digest.

use bytes::Bytes;
use futures::{Stream, StreamExt, stream::BoxStream};
use stowage_shared::{
    api::{InvalidArgument, Page},
    auth::{Principal, Role},
    blob::{BlobKey, Receipt},
};
use uuid::Uuid;

use super::{
    model::{
        artifacts::Artifact,
        bindings::{Binding, BindingState},
    },
    stores::Stores,
};
use crate::{
    db::{self, artifacts::ArtifactFilter},
    error::{Error, OrNotFound, Result},
};

/// The key of an artifact's object on a binding: deterministic, so a repeated copy
/// overwrites its own earlier attempt and never another object.
pub fn object_key(artifact: Uuid, binding: Uuid) -> Result<BlobKey> {
    Ok(BlobKey::new(format!("artifacts/{binding}/{artifact}"))?)
}

/// The artifact an upload recorded by its receipt becomes.
fn uploaded(
    id: Uuid,
    org: &str,
    binding: Uuid,
    key: &BlobKey,
    meta: NewArtifact,
    receipt: Receipt,
) -> Result<Artifact> {
    let now = stowage_shared::db::now();
    Ok(Artifact {
        id,
        organization_id: org.to_owned(),
        binding_id: binding,
        object_key: key.to_string(),
        name: meta.name,
        purpose: meta.purpose,
        content_type: meta.content_type,
        size_bytes: i64::try_from(receipt.plaintext_len)
            .map_err(|_| Error::Internal("artifact size".into()))?,
        sha256: receipt.sha256,
        stored_bytes: i64::try_from(receipt.stored_len)
            .map_err(|_| Error::Internal("stored size".into()))?,
        kek_id: receipt.kek_id,
        create_time: now,
        update_time: now,
        delete_time: None,
    })
}

/// The metadata message of an upload.
#[derive(Debug, Clone)]
pub struct NewArtifact {
    pub purpose: String,
    pub name: String,
    pub content_type: String,
    pub expected_sha256: Option<String>,
    /// If set, the upload must land on this binding, and it must be active.
    pub binding: Option<Uuid>,
}

#[derive(Debug, Clone)]
pub struct ListArtifacts {
    pub binding: Option<Uuid>,
    pub purpose: Option<String>,
    pub show_deleted: bool,
    pub after: Option<Uuid>,
    pub limit: i64,
}

#[derive(Clone, Debug)]
pub struct Artifacts {
    pool: deadpool_postgres::Pool,
    stores: Stores,
}

impl Artifacts {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores) -> Self {
        Self { pool, stores }
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization))]
    pub async fn put<S, E>(
        &self,
        caller: &Principal,
        meta: NewArtifact,
        body: S,
    ) -> Result<Artifact>
    where
        S: Stream<Item = Result<Bytes, E>> + Send,
        E: std::fmt::Display,
    {
        caller.require(Role::Member)?;
        let org = caller.organization.as_str();
        let active = self.active_for_write(org, meta.binding).await?;
        let (_, store) = self.stores.open(org, active.id).await?;
        let id = Uuid::now_v7();
        let key = object_key(id, active.id)?;
        let receipt = store.put(&key, body).await?;
        if let Some(expected) = &meta.expected_sha256
            && !expected.eq_ignore_ascii_case(&receipt.sha256)
        {
            let _ = store.store().delete(&key).await;
            return Err(InvalidArgument::new(
                "expected_sha256",
                format!("the upload's SHA-256 is {}, not {expected}", receipt.sha256),
            )
            .into());
        }
        let plaintext_len = receipt.plaintext_len;
        let artifact = uploaded(id, org, active.id, &key, meta, receipt)?;
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        // Recorded only against a binding that is still active: one disabled meanwhile
        // refuses the write.
        if db::bindings::state_for_share(&tx, active.id).await? != Some(BindingState::Active) {
            return Err(Error::FailedPrecondition(format!(
                "binding {} was replaced during the upload and refuses new writes; upload again",
                active.id
            )));
        }
        // And only under a key that still unwraps it: a destruction of the organization's
        // keys that came first refuses the write.
        if !(self.stores.tenant_keys())
            .hold_live(&tx, &artifact.kek_id)
            .await?
        {
            self.stores.forget_ring(org);
            return Err(Error::FailedPrecondition(
                "the organization's keys were destroyed during the upload; upload again".into(),
            ));
        }
        db::artifacts::insert(&tx, &artifact).await?;
        tx.commit().await?;
        metrics::counter!("migration_artifacts_written_total").increment(1);
        metrics::counter!("migration_artifact_bytes_written_total").increment(plaintext_len);
        Ok(artifact)
    }

    /// The organization's active binding, which an upload goes to; one that names
    /// another binding is refused.
    async fn active_for_write(&self, org: &str, wanted: Option<Uuid>) -> Result<Binding> {
        let active = {
            let client = self.pool.get().await?;
            db::bindings::active(&client, org).await?
        }
        .ok_or_else(|| {
            Error::FailedPrecondition(
                "the organization has no active binding: activate one first".into(),
            )
        })?;
        if let Some(wanted) = wanted
            && wanted != active.id
        {
            return Err(Error::FailedPrecondition(format!(
                "binding {wanted} is not the organization's active binding ({}); it refuses \
                 new writes",
                active.id
            )));
        }
        Ok(active)
    }

    pub async fn stat(&self, caller: &Principal, id: Uuid) -> Result<Artifact> {
        db::artifacts::ARTIFACTS
            .owned_by(&self.pool, &caller.organization, id)
            .await
    }

    /// The artifact and its plaintext, read from the binding it is recorded against. The
    /// stream ends in `DATA_LOSS` if the bytes differ from the recorded digest.
    pub async fn get(
        &self,
        caller: &Principal,
        id: Uuid,
    ) -> Result<(Artifact, BoxStream<'static, Result<Bytes>>)> {
        let artifact = self.stat(caller, id).await?;
        if artifact.delete_time.is_some() {
            return Err(Error::NotFound(format!("artifact {id} (deleted)")));
        }
        let (_, store) = self
            .stores
            .open(&artifact.organization_id, artifact.binding_id)
            .await?;
        let key = BlobKey::new(artifact.object_key.clone())?;
        let stream = store
            .get(&key, Some(artifact.expected()))
            .await?
            .map(|chunk| chunk.map_err(Error::from))
            .boxed();
        Ok((artifact, stream))
    }

    pub async fn list(
        &self,
        caller: &Principal,
        query: ListArtifacts,
    ) -> Result<Page<Artifact, Uuid>> {
        let client = self.pool.get().await?;
        let filter = ArtifactFilter {
            binding: query.binding,
            purpose: query.purpose.as_deref(),
            show_deleted: query.show_deleted,
        };
        let items = db::artifacts::list(
            &client,
            &caller.organization,
            &filter,
            query.after,
            query.limit + 1,
        )
        .await?;
        Ok(Page::from_rows(items, query.limit, |a| a.id))
    }

    /// Marks the artifact deleted; its stored object stays.
    pub async fn delete(&self, caller: &Principal, id: Uuid) -> Result<Artifact> {
        caller.require(Role::Member)?;
        let client = self.pool.get().await?;
        db::artifacts::mark_deleted(&client, &caller.organization, id)
            .await?
            .or_not_found("artifact", id)
    }
}
