//! The archive store, in versions. Every `SetArchiveStore` adds a version (its setting
//! sealed in `archive.stores`) after a posture check; new archives go to the newest, and
//! each archived job names the version its blob is in, so restore, delete and moves open
//! the job's own store, whatever came after. A version's credential can be replaced for
//! the same store (a revoked key). Opened stores are cached per credential version. A
//! tenant's blobs are written and read under the tenant's own key ([`TenantKeys`]).

mod setting;
pub mod version;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
};

use chrono::{DateTime, Utc};
use secrecy::ExposeSecret;
use stowage_shared::{
    blob::{BlobStore, EncryptedStore, StoreConfig, StoreOptions, posture},
    db::GenericClient,
    keyring::KeyRing,
    tenant_keys::TenantKeys,
};

pub use setting::{ArchiveStoreConfig, ParsedSetting, StoreSetting};
pub use version::{NewStore, StoreVersion};

use crate::{
    db,
    error::{Error, OrNotFound, Result},
};

/// The table of tenant keys (crypto-shredding).
const TENANT_KEYS: &str = "archive.tenant_keys";

/// Where an earlier release kept its one store setting.
const LEGACY_ADMIN_KEY: &str = "archive_store";
const LEGACY_SEAL_CONTEXT: &[u8] = b"archive.admin_config/archive_store";

/// An opened version.
#[derive(Clone, Debug)]
pub struct OpenStore {
    pub version: i64,
    /// Where its blobs are: versions with the same location share their objects.
    pub location: String,
    pub objects: EncryptedStore,
}

#[derive(Clone, Debug)]
pub struct ArchiveStores {
    keys: KeyRing,
    default: Option<StoreSetting>,
    options: StoreOptions,
    /// version → (credential version, store)
    opened: Arc<Mutex<HashMap<i64, (i32, EncryptedStore)>>>,
    tenant_keys: TenantKeys,
}

/// Whether a tenant's objects are to be written (its key created if it has none) or
/// only read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Write,
    Read,
}

impl ArchiveStores {
    pub fn new(keys: KeyRing, default: Option<&ArchiveStoreConfig>, options: StoreOptions) -> Self {
        let default = default.map(|d| StoreSetting {
            connection_string: d.connection_string.expose_secret().to_owned(),
            container: d.container.clone(),
        });
        Self {
            tenant_keys: TenantKeys::new(TENANT_KEYS, keys.clone()),
            keys,
            default,
            options,
            opened: Arc::default(),
        }
    }

    pub fn tenant_keys(&self) -> &TenantKeys {
        &self.tenant_keys
    }

    /// `store`'s objects under `tenant`'s key ring: its own key over the service's.
    pub async fn tenant_objects(
        &self,
        client: &impl GenericClient,
        store: &OpenStore,
        tenant: &str,
        access: Access,
    ) -> Result<EncryptedStore> {
        let keys = match access {
            Access::Write => self.tenant_keys.for_writing(client, tenant).await?,
            Access::Read => self.tenant_keys.for_reading(client, tenant).await?,
        };
        Ok(store.objects.with_keys(keys))
    }

    pub fn keys(&self) -> &KeyRing {
        &self.keys
    }

    /// The newest version, where new archives go.
    pub async fn current(&self, client: &impl GenericClient) -> Result<OpenStore> {
        let version = db::stores::get(client, None).await?.ok_or_else(|| {
            Error::FailedPrecondition(
                "no archive store is configured: set one with SetArchiveStore".into(),
            )
        })?;
        self.opened(&version)
    }

    /// A job's own version. A job archived by the earlier system names none: its blob is
    /// in the store the deployment started with, the first version.
    pub async fn open(
        &self,
        client: &impl GenericClient,
        version: Option<i64>,
    ) -> Result<OpenStore> {
        let found = match version {
            Some(version) => db::stores::get(client, Some(version))
                .await?
                .ok_or_else(|| {
                    Error::Internal(format!("archive store version {version} is missing"))
                })?,
            None => db::stores::oldest(client).await?.ok_or_else(|| {
                Error::FailedPrecondition(
                    "no archive store is configured: set one with SetArchiveStore".into(),
                )
            })?,
        };
        self.opened(&found)
    }

    fn opened(&self, version: &StoreVersion) -> Result<OpenStore> {
        let cached = self
            .opened
            .lock()
            .ok()
            .and_then(|opened| opened.get(&version.version).cloned())
            .filter(|(credential, _)| *credential == version.credential_version);
        let objects = match cached {
            Some((_, objects)) => objects,
            None => {
                let setting = self.unseal(version)?;
                let parsed = setting
                    .parse()
                    .map_err(|e| Error::Internal(format!("stored archive store setting: {e}")))?;
                let objects = self.connect(&parsed.config)?;
                if let Ok(mut opened) = self.opened.lock() {
                    opened.insert(
                        version.version,
                        (version.credential_version, objects.clone()),
                    );
                }
                objects
            }
        };
        Ok(OpenStore {
            version: version.version,
            location: version.location.clone(),
            objects,
        })
    }

    fn connect(&self, config: &StoreConfig) -> Result<EncryptedStore> {
        Ok(EncryptedStore::new(
            BlobStore::open(config, &self.options)?,
            self.keys.clone(),
        ))
    }

    /// Parses `setting` and passes it through the posture check; nothing is recorded.
    pub async fn check(&self, setting: &StoreSetting) -> Result<ParsedSetting> {
        let parsed = setting.parse()?;
        let refused = |e: posture::PostureError| {
            Error::FailedPrecondition(format!("the archive store failed its check: {e}"))
        };
        posture::check_location(&parsed.config).map_err(refused)?;
        posture::check(&self.connect(&parsed.config)?)
            .await
            .map_err(refused)?;
        Ok(parsed)
    }

    /// Records a checked setting as the next version.
    pub async fn add(
        &self,
        client: &impl GenericClient,
        setting: &StoreSetting,
        parsed: &ParsedSetting,
        created: (Option<DateTime<Utc>>, &str),
        reason: Option<&str>,
    ) -> Result<i64> {
        let sealed = self.seal(setting)?;
        db::stores::insert(
            client,
            &NewStore {
                provider: parsed.config.provider.as_str(),
                location: &parsed.location,
                credential_kind: parsed.credential_kind,
                sealed_setting: &sealed,
                created_at: created.0,
                created_by: created.1,
                reason,
            },
        )
        .await
    }

    /// Replaces the credential of `version` with a checked `setting` naming the same store.
    pub async fn replace_credential(
        &self,
        client: &impl GenericClient,
        version: i64,
        setting: &StoreSetting,
        parsed: &ParsedSetting,
        actor: &str,
    ) -> Result<StoreVersion> {
        let current = db::stores::lock(client, version)
            .await?
            .or_not_found("archive store version", version)?;
        if current.location != parsed.location {
            return Err(Error::FailedPrecondition(format!(
                "archive store version {version} is {}; the new credential names {}: a \
                 different store is a new version (SetArchiveStore)",
                current.location, parsed.location
            )));
        }
        let sealed = self.seal(setting)?;
        db::stores::update_credential(client, version, parsed.credential_kind, &sealed, actor)
            .await?;
        db::stores::get(client, Some(version))
            .await?
            .or_not_found("archive store version", version)
    }

    /// Gives an earlier release's store setting (and the configured default) versions of
    /// their own, once, and points the jobs archived under them at those versions.
    pub async fn adopt(&self, client: &mut deadpool_postgres::Object) -> Result<()> {
        let tx = client.transaction().await?;
        tx.batch_execute("lock table archive.stores in share row exclusive mode")
            .await?;
        if db::stores::get(&tx, None).await?.is_some() {
            return Ok(());
        }
        let legacy = db::admin_config::get_with_time(&tx, LEGACY_ADMIN_KEY).await?;
        let default_version = match &self.default {
            Some(default) => {
                let parsed = default.parse()?;
                Some(
                    self.add(&tx, default, &parsed, (None, "configuration"), None)
                        .await?,
                )
            }
            None => None,
        };
        match (legacy, default_version) {
            (Some((sealed, updated_at, updated_by)), default_version) => {
                let json = self.keys.unseal(LEGACY_SEAL_CONTEXT, &sealed)?;
                let setting: StoreSetting = serde_json::from_slice(&json)
                    .map_err(|e| Error::Internal(format!("stored archive store setting: {e}")))?;
                let parsed = setting.parse()?;
                let version = self
                    .add(
                        &tx,
                        &setting,
                        &parsed,
                        (Some(updated_at), &updated_by),
                        None,
                    )
                    .await?;
                // Jobs archived since that setting was made are in its store; earlier
                // ones in the configured default's, when there is one.
                db::stores::adopt_jobs(&tx, version, Some(updated_at)).await?;
                db::stores::adopt_jobs(&tx, default_version.unwrap_or(version), None).await?;
                db::admin_config::delete(&tx, LEGACY_ADMIN_KEY).await?;
            }
            (None, Some(version)) => {
                db::stores::adopt_jobs(&tx, version, None).await?;
            }
            (None, None) => {}
        }
        tx.commit().await?;
        Ok(())
    }

    fn seal(&self, setting: &StoreSetting) -> Result<Vec<u8>> {
        let json = serde_json::to_vec(setting)
            .map_err(|e| Error::Internal(format!("archive store setting: {e}")))?;
        Ok(self.keys.seal(SEAL_CONTEXT, &json)?)
    }

    fn unseal(&self, version: &StoreVersion) -> Result<StoreSetting> {
        let json = self.keys.unseal(SEAL_CONTEXT, &version.sealed_setting)?;
        serde_json::from_slice(&json)
            .map_err(|e| Error::Internal(format!("stored archive store setting: {e}")))
    }
}

const SEAL_CONTEXT: &[u8] = b"archive.stores/sealed_setting";
