//! Storage bindings: create, read, list, and replace a credential. A binding's credential
//! is sealed with the key ring under a context naming the binding, so a sealed value
//! copied onto another row does not open.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_shared::{
    api::{Claim, Idempotency, RequestId},
    auth::{Principal, Role},
    blob::{Credential, Location, Provider, StoreConfig},
    db::DbError,
    keyring::KeyRing,
};
use uuid::Uuid;

use super::Page;
use crate::{
    db,
    error::{Error, Result},
};

const IDEMPOTENCY: Idempotency = Idempotency {
    table: "migration.request_log",
};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BindingState {
    Pending,
    Active,
    Disabled,
}

impl BindingState {
    pub fn as_str(self) -> &'static str {
        match self {
            BindingState::Pending => "pending",
            BindingState::Active => "active",
            BindingState::Disabled => "disabled",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "pending" => BindingState::Pending,
            "active" => BindingState::Active,
            "disabled" => BindingState::Disabled,
            _ => return None,
        })
    }
}

/// A binding as callers see it: everything but the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub id: Uuid,
    pub organization_id: String,
    pub display_name: String,
    pub provider: Provider,
    pub location: Location,
    pub state: BindingState,
    pub credential_kind: String,
    pub credential_update_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub activate_time: Option<DateTime<Utc>>,
    pub disable_time: Option<DateTime<Utc>>,
}

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

/// The authenticated context a credential is sealed under.
fn credential_context(binding: Uuid) -> String {
    format!("migration.binding.credential/{binding}")
}

#[derive(Clone, Debug)]
pub struct Bindings {
    pool: deadpool_postgres::Pool,
    keys: KeyRing,
}

impl Bindings {
    pub fn new(pool: deadpool_postgres::Pool, keys: KeyRing) -> Self {
        Self { pool, keys }
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization))]
    pub async fn create(&self, caller: &Principal, command: CreateBinding) -> Result<Binding> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await?;
        if let Claim::Replay(binding) = IDEMPOTENCY
            .begin(&tx, org, "CreateBinding", &command.request_id, &command)
            .await?
        {
            return Ok(binding);
        }
        let now = stowage_shared::db::now();
        let id = Uuid::now_v7();
        let sealed = self.seal(id, &command.store.credential)?;
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
        db::organizations::ensure(&tx, org).await?;
        db::bindings::insert(&tx, &binding, &sealed).await?;
        IDEMPOTENCY
            .finish(&tx, org, "CreateBinding", &command.request_id, &binding)
            .await?;
        tx.commit().await?;
        tracing::info!(binding = %id, provider = binding.provider.as_str(), "binding created");
        Ok(binding)
    }

    pub async fn get(&self, caller: &Principal, id: Uuid) -> Result<Binding> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        db::bindings::get(&client, &caller.organization, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("binding {id}")))
    }

    pub async fn list(
        &self,
        caller: &Principal,
        query: ListBindings,
    ) -> Result<Page<Binding, Uuid>> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        let mut items = db::bindings::list(
            &client,
            &caller.organization,
            query.state,
            query.after,
            query.limit + 1,
        )
        .await?;
        let next = if items.len() as i64 > query.limit {
            items.truncate(query.limit as usize);
            items.last().map(|b| b.id)
        } else {
            None
        };
        Ok(Page { items, next })
    }

    #[tracing::instrument(skip_all, fields(org = %caller.organization, binding = %command.id))]
    pub async fn update_credential(
        &self,
        caller: &Principal,
        command: UpdateCredential,
    ) -> Result<Binding> {
        caller.require(Role::OrgAdmin)?;
        let org = caller.organization.as_str();
        let mut client = self.pool.get().await.map_err(DbError::from)?;
        let tx = client.transaction().await?;
        if let Claim::Replay(binding) = IDEMPOTENCY
            .begin(
                &tx,
                org,
                "UpdateBindingCredential",
                &command.request_id,
                &command,
            )
            .await?
        {
            return Ok(binding);
        }
        let current = db::bindings::get_for_update(&tx, org, command.id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("binding {}", command.id)))?;
        let store = StoreConfig {
            provider: current.provider,
            location: current.location.clone(),
            credential: command.credential.clone(),
        }
        .validated()?;
        let sealed = self.seal(current.id, &store.credential)?;
        let binding =
            db::bindings::update_credential(&tx, current.id, store.credential.kind(), &sealed)
                .await?;
        IDEMPOTENCY
            .finish(
                &tx,
                org,
                "UpdateBindingCredential",
                &command.request_id,
                &binding,
            )
            .await?;
        tx.commit().await?;
        tracing::info!("binding credential replaced");
        Ok(binding)
    }

    /// The full store configuration of a binding, credential unsealed, for I/O.
    pub async fn store_config(&self, organization: &str, id: Uuid) -> Result<StoreConfig> {
        let client = self.pool.get().await.map_err(DbError::from)?;
        let (binding, sealed) = db::bindings::get_with_secret(&client, organization, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("binding {id}")))?;
        let credential = self
            .keys
            .unseal(credential_context(id).as_bytes(), &sealed)?;
        let credential = serde_json::from_slice(&credential)
            .map_err(|e| Error::Corrupt(format!("credential of binding {id}: {e}")))?;
        Ok(StoreConfig {
            provider: binding.provider,
            location: binding.location,
            credential,
        })
    }

    fn seal(&self, binding: Uuid, credential: &Credential) -> Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(credential)
            .map_err(|e| Error::Corrupt(format!("credential does not serialize: {e}")))?;
        Ok(self
            .keys
            .seal(credential_context(binding).as_bytes(), &plaintext)?)
    }
}
