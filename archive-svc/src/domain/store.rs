//! The archive store: where archived rows live. Its connection string is kept sealed in
//! `admin_config` and read at every archive and restore, so rotating it needs no restart;
//! until an admin sets one, the configured default applies.

use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use stowage_shared::{
    api::InvalidArgument,
    blob::{BlobStore, Credential, EncryptedStore, Location, Provider, StoreConfig, StoreOptions},
    keyring::KeyRing,
};

use crate::{
    config::ArchiveStoreConfig,
    db,
    error::{Error, Result},
};

const ADMIN_KEY: &str = "archive_store";
const SEAL_CONTEXT: &[u8] = b"archive.admin_config/archive_store";

/// A connection string and container, as stored.
#[derive(Clone, Serialize, Deserialize)]
pub struct StoreSetting {
    pub connection_string: String,
    pub container: String,
}

impl std::fmt::Debug for StoreSetting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StoreSetting")
            .field("container", &self.container)
            .finish_non_exhaustive()
    }
}

impl StoreSetting {
    /// `file:///absolute/dir`, `memory://name`, or an Azure connection string (account
    /// key, SAS, or `UseDevelopmentStorage=true`) with the container.
    pub fn store_config(&self) -> Result<StoreConfig, InvalidArgument> {
        let text = self.connection_string.trim();
        let (provider, container, credential) = if let Some(path) = text.strip_prefix("file://") {
            (Provider::File, path.to_owned(), Credential::None)
        } else if let Some(name) = text.strip_prefix("memory://") {
            (Provider::Memory, name.to_owned(), Credential::None)
        } else {
            let credential = Credential::AzureConnectionString {
                connection_string: text.to_owned(),
            };
            (Provider::Azure, self.container.clone(), credential)
        };
        StoreConfig {
            provider,
            location: Location {
                container,
                ..Location::default()
            },
            credential,
        }
        .validated()
        .map_err(|e| InvalidArgument::new("connection_string", e.to_string()))
    }
}

#[derive(Clone, Debug)]
pub struct ArchiveStores {
    pool: deadpool_postgres::Pool,
    keys: KeyRing,
    default: Option<StoreSetting>,
    options: StoreOptions,
}

impl ArchiveStores {
    pub fn new(
        pool: deadpool_postgres::Pool,
        keys: KeyRing,
        default: Option<&ArchiveStoreConfig>,
        options: StoreOptions,
    ) -> Self {
        let default = default.map(|d| StoreSetting {
            connection_string: d.connection_string.expose_secret().to_owned(),
            container: d.container.clone(),
        });
        Self {
            pool,
            keys,
            default,
            options,
        }
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The store in force now.
    pub async fn current(&self) -> Result<EncryptedStore> {
        let client = self
            .pool
            .get()
            .await
            .map_err(stowage_shared::db::DbError::from)?;
        let setting = match db::admin_config::get(&client, ADMIN_KEY).await? {
            Some(sealed) => {
                let json = self.keys.unseal(SEAL_CONTEXT, &sealed)?;
                serde_json::from_slice(&json)
                    .map_err(|e| Error::Internal(format!("stored archive store setting: {e}")))?
            }
            None => self.default.clone().ok_or_else(|| {
                Error::FailedPrecondition(
                    "no archive store is configured: set one with SetArchiveStore".into(),
                )
            })?,
        };
        let config = setting.store_config()?;
        let store = BlobStore::open(&config, &self.options)?;
        Ok(EncryptedStore::new(store, self.keys.clone()))
    }

    /// Replaces the store setting (sealed) after checking it parses.
    pub async fn set(&self, setting: &StoreSetting, actor: &str) -> Result<()> {
        setting.store_config()?;
        let json = serde_json::to_vec(setting)
            .map_err(|e| Error::Internal(format!("archive store setting: {e}")))?;
        let sealed = self.keys.seal(SEAL_CONTEXT, &json)?;
        let client = self
            .pool
            .get()
            .await
            .map_err(stowage_shared::db::DbError::from)?;
        db::admin_config::put(&client, ADMIN_KEY, &sealed, actor).await?;
        Ok(())
    }
}
