//! Storage bindings: create, read, list, replace a credential, and activate one after a
//! posture check, which disables the binding it replaces. Credentials are sealed by
//! [`Stores`] and never leave in clear.

use serde::Serialize;
use serde_json::json;
use stowage_shared::{
    api::{Page, RequestId},
    auth::{Principal, Role},
    blob::{Credential, StoreConfig, posture},
    db::RowLock,
};
use uuid::Uuid;

use super::{
    command::{self, Command, commands},
    evidence::Evidence,
    model::{
        bindings::{Binding, BindingState},
        evidence::AuditEntry,
    },
    stores::Stores,
};
use crate::{
    db,
    error::{Error, OrNotFound, Result},
};

#[derive(Debug, Clone, Serialize)]
pub struct CreateBinding {
    pub display_name: String,
    pub store: StoreConfig,
    #[serde(skip)]
    pub request_id: RequestId,
}

#[derive(Debug, Clone, Serialize)]
pub struct UpdateCredential {
    pub id: Uuid,
    pub credential: Credential,
    #[serde(skip)]
    pub request_id: RequestId,
}

#[derive(Debug, Clone)]
pub struct ListBindings {
    pub limit: i64,
    pub after: Option<Uuid>,
    pub state: Option<BindingState>,
}

#[derive(Debug, Clone, Serialize)]
pub struct ActivateBinding {
    pub id: Uuid,
    #[serde(skip)]
    pub request_id: RequestId,
}

commands! {
    CreateBinding => "CreateBinding",
    UpdateCredential => "UpdateBindingCredential",
    ActivateBinding => "ActivateBinding",
}

#[derive(Clone, Debug)]
pub struct Bindings {
    pool: deadpool_postgres::Pool,
    stores: Stores,
    evidence: Evidence,
}

impl Bindings {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores, evidence: Evidence) -> Self {
        Self {
            pool,
            stores,
            evidence,
        }
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization))]
    pub async fn create(&self, caller: &Principal, command: CreateBinding) -> Result<Binding> {
        caller.require(Role::OrgAdmin)?;
        let created = command::run(&self.pool, caller, &command, async |tx, entry| {
            self.insert(tx, caller, &command, entry).await
        })
        .await?;
        if let Some(binding) = created.now() {
            tracing::info!(binding = %binding.id, provider = binding.provider.as_str(), "binding created");
        }
        Ok(created.response())
    }

    /// A new pending binding of `caller`'s organization, its credential sealed.
    async fn insert(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        caller: &Principal,
        command: &CreateBinding,
        entry: AuditEntry,
    ) -> Result<(Binding, AuditEntry)> {
        let org = caller.organization.as_str();
        let now = stowage_shared::db::now();
        let id = Uuid::now_v7();
        let sealed = self.stores.seal(id, &command.store.credential)?;
        let binding = Binding {
            id,
            organization_id: org.to_owned(),
            display_name: command.display_name.clone(),
            provider: command.store.provider,
            location: command.store.location.clone(),
            state: BindingState::Pending,
            credential_kind: command.store.credential.kind().to_owned(),
            credential_update_time: now,
            create_time: now,
            update_time: now,
            activate_time: None,
            disable_time: None,
        };
        db::organizations::ensure(tx, org).await?;
        db::bindings::insert(tx, &binding, &sealed).await?;
        let entry = entry
            .binding(id)
            .detail(json!({ "provider": binding.provider.as_str() }));
        Ok((binding, entry))
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Binding> {
        db::bindings::BINDINGS
            .owned_by(&self.pool, &caller.organization, id)
            .await
    }

    pub async fn list(
        &self,
        caller: &Principal,
        query: ListBindings,
    ) -> Result<Page<Binding, Uuid>> {
        let client = self.pool.get().await?;
        let org = &caller.organization;
        db::bindings::list(&client, org, query.state, query.after, query.limit).await
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization, binding = %command.id))]
    pub async fn update_credential(
        &self,
        caller: &Principal,
        command: UpdateCredential,
    ) -> Result<Binding> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let updated = command::run(&self.pool, caller, &command, async |tx, entry| {
            let current = db::bindings::BINDINGS
                .find(tx, Some(org), command.id, RowLock::ForUpdate)
                .await?;
            let store = StoreConfig {
                provider: current.provider,
                location: current.location.clone(),
                credential: command.credential.clone(),
            }
            .validated()?;
            let sealed = self.stores.seal(current.id, &store.credential)?;
            let kind = store.credential.kind();
            let binding = db::bindings::update_credential(tx, current.id, kind, &sealed).await?;
            let entry = entry
                .binding(binding.id)
                .detail(json!({ "credential_kind": binding.credential_kind }));
            Ok((binding, entry))
        })
        .await?;
        if updated.now().is_some() {
            tracing::info!("binding credential replaced");
        }
        Ok(updated.response())
    }

    /// Activates a binding after a posture check (write a probe through the verified
    /// layer, read it back, delete it); the binding it replaces becomes disabled in the
    /// same transaction, with its audit entry. A failed check changes nothing; its attempt
    /// is audited as failed.
    #[tracing::instrument(skip_all, fields(org = %caller.organization, binding = %command.id))]
    pub async fn activate(&self, caller: &Principal, command: ActivateBinding) -> Result<Binding> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let (binding, store) = self.stores.open(org, command.id).await?;
        if binding.state != BindingState::Active
            && let Err(error) = posture::check(&store)
                .await
                .map_err(|e| Error::FailedPrecondition(e.to_string()))
        {
            let attempt = AuditEntry::new(caller, ActivateBinding::METHOD)
                .binding(binding.id)
                .failed(json!({ "posture_check": error.to_string() }));
            if let Err(audit_error) = self.evidence.audit_attempt(&attempt).await {
                tracing::error!(error = %audit_error, "could not audit a refused activation");
            }
            return Err(error);
        }
        let mut disabled = None;
        let activated = command::run(&self.pool, caller, &command, async |tx, entry| {
            // Lock the organization's bindings in id order, then swap.
            let locked = db::bindings::lock_organization(tx, org).await?;
            let current = locked
                .iter()
                .find(|b| b.id == command.id)
                .or_not_found("binding", command.id)?;
            let previous = locked
                .iter()
                .find(|b| b.state == BindingState::Active && b.id != current.id)
                .map(|b| b.id);
            if let Some(previous) = previous {
                db::bindings::set_state(tx, previous, BindingState::Disabled).await?;
            }
            let activated = db::bindings::set_state(tx, current.id, BindingState::Active).await?;
            disabled = previous;
            let entry = entry
                .binding(activated.id)
                .detail(json!({ "disabled": previous }));
            Ok((activated, entry))
        })
        .await?;
        if activated.now().is_some() {
            tracing::info!(previous = ?disabled, "binding activated");
        }
        Ok(activated.response())
    }
}
