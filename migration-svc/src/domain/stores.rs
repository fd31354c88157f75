//! The stores behind bindings: credentials sealed with the key ring under a context naming
//! their binding (so a sealed value copied onto another row does not open), and opened
//! stores, kept per binding until its credential changes (a caller that knows the
//! credential's version takes the kept store without reading the binding).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use stowage_shared::{
    blob::{BlobStore, Credential, EncryptedStore, StoreConfig, StoreOptions},
    keyring::KeyRing,
};
use uuid::Uuid;

use super::model::bindings::Binding;
use crate::{
    db,
    error::{Error, Result},
};

/// The authenticated context a credential is sealed under.
fn credential_context(binding: Uuid) -> String {
    format!("migration.binding.credential/{binding}")
}

/// Opened stores by binding, with the credential time they were opened with.
type Opened = HashMap<Uuid, (DateTime<Utc>, EncryptedStore)>;

#[derive(Clone, Debug)]
pub struct Stores {
    pool: deadpool_postgres::Pool,
    keys: KeyRing,
    options: StoreOptions,
    opened: Arc<Mutex<Opened>>,
}

impl Stores {
    pub fn new(pool: deadpool_postgres::Pool, keys: KeyRing, options: StoreOptions) -> Self {
        Self {
            pool,
            keys,
            options,
            opened: Arc::default(),
        }
    }

    pub fn seal(&self, binding: Uuid, credential: &Credential) -> Result<Vec<u8>> {
        let plaintext = serde_json::to_vec(credential)
            .map_err(|e| Error::Corrupt(format!("credential does not serialize: {e}")))?;
        Ok(self
            .keys
            .seal(credential_context(binding).as_bytes(), &plaintext)?)
    }

    /// The binding and its store, opened with the binding's own current credential.
    pub async fn open(&self, organization: &str, id: Uuid) -> Result<(Binding, EncryptedStore)> {
        let client = self.pool.get().await?;
        let (binding, sealed) = db::bindings::get_with_secret(&client, organization, id)
            .await?
            .ok_or_else(|| Error::NotFound(format!("binding {id}")))?;
        drop(client);
        if let Some(store) = self.cached(id, binding.credential_update_time) {
            return Ok((binding, store));
        }
        let credential = self
            .keys
            .unseal(credential_context(id).as_bytes(), &sealed)?;
        let credential: Credential = serde_json::from_slice(&credential)
            .map_err(|e| Error::Corrupt(format!("credential of binding {id}: {e}")))?;
        let config = StoreConfig {
            provider: binding.provider,
            location: binding.location.clone(),
            credential,
        };
        let store =
            EncryptedStore::new(BlobStore::open(&config, &self.options)?, self.keys.clone());
        if let Ok(mut opened) = self.opened.lock() {
            opened.insert(id, (binding.credential_update_time, store.clone()));
        }
        Ok((binding, store))
    }

    /// The store of binding `id` as its credential was at `credential_time` (as a claim
    /// read it): the store already opened with that credential, without a read, or else
    /// opened as [`Stores::open`] does.
    pub async fn open_at(
        &self,
        organization: &str,
        id: Uuid,
        credential_time: Option<DateTime<Utc>>,
    ) -> Result<EncryptedStore> {
        if let Some(time) = credential_time
            && let Some(store) = self.cached(id, time)
        {
            return Ok(store);
        }
        Ok(self.open(organization, id).await?.1)
    }

    fn cached(&self, id: Uuid, credential_time: DateTime<Utc>) -> Option<EncryptedStore> {
        let opened = self.opened.lock().ok()?;
        opened
            .get(&id)
            .filter(|(opened_with, _)| *opened_with == credential_time)
            .map(|(_, store)| store.clone())
    }
}
