//! The stores behind bindings: credentials sealed with the key ring under a context naming
//! their binding (so a sealed value copied onto another row does not open), and opened
//! stores, kept per binding until its credential changes (a caller that knows the
//! credential's version takes the kept store without reading the binding). Every store
//! is handed out under its organization's key ring: the organization's own key over the
//! service's ([`TenantKeys`]), kept for [`RING_TTL`], so destroying the key
//! (crypto-shredding) reaches every replica within that time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::{DateTime, Utc};
use stowage_shared::{
    blob::{BlobStore, Credential, EncryptedStore, StoreConfig, StoreOptions},
    keyring::KeyRing,
    tenant_keys::TenantKeys,
};
use uuid::Uuid;

use super::model::bindings::Binding;
use crate::{
    db,
    error::{Error, OrNotFound, Result},
};

/// The authenticated context a credential is sealed under.
fn credential_context(binding: Uuid) -> String {
    format!("migration.binding.credential/{binding}")
}

/// Opened stores by binding, with the credential time they were opened with.
type Opened = HashMap<Uuid, (DateTime<Utc>, EncryptedStore)>;

/// How long an organization's key ring is kept before it is read again: the longest a
/// replica that did not destroy an organization's key goes on using it.
pub const RING_TTL: Duration = Duration::from_secs(10);

/// The table of organization keys (crypto-shredding).
const TENANT_KEYS: &str = "migration.tenant_keys";

#[derive(Clone, Debug)]
pub struct Stores {
    pool: deadpool_postgres::Pool,
    keys: KeyRing,
    options: StoreOptions,
    opened: Arc<Mutex<Opened>>,
    tenant_keys: TenantKeys,
    /// Organization → (when read, its ring).
    rings: Arc<Mutex<HashMap<String, (Instant, KeyRing)>>>,
}

impl Stores {
    pub fn new(pool: deadpool_postgres::Pool, keys: KeyRing, options: StoreOptions) -> Self {
        Self {
            pool,
            tenant_keys: TenantKeys::new(TENANT_KEYS, keys.clone()),
            keys,
            options,
            opened: Arc::default(),
            rings: Arc::default(),
        }
    }

    pub fn tenant_keys(&self) -> &TenantKeys {
        &self.tenant_keys
    }

    /// The organization's key ring: its own key (created on first use) over the
    /// service's, read again after [`RING_TTL`].
    async fn ring(&self, organization: &str) -> Result<KeyRing> {
        let kept = self.rings.lock().ok().and_then(|rings| {
            let (read, ring) = rings.get(organization)?;
            (read.elapsed() < RING_TTL).then(|| ring.clone())
        });
        if let Some(ring) = kept {
            return Ok(ring);
        }
        let client = self.pool.get().await?;
        let ring = self.tenant_keys.for_writing(&client, organization).await?;
        if let Ok(mut rings) = self.rings.lock() {
            rings.insert(organization.to_owned(), (Instant::now(), ring.clone()));
        }
        Ok(ring)
    }

    /// Forgets the organization's ring at once (its key was destroyed here).
    pub fn forget_ring(&self, organization: &str) {
        if let Ok(mut rings) = self.rings.lock() {
            rings.remove(organization);
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
            .or_not_found("binding", id)?;
        drop(client);
        let ring = self.ring(organization).await?;
        if let Some(store) = self.cached(id, binding.credential_update_time) {
            return Ok((binding, store.with_keys(ring)));
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
        Ok((binding, store.with_keys(ring)))
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
            return Ok(store.with_keys(self.ring(organization).await?));
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
