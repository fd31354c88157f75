//! [`BlobStore`]: one small type over `Arc<dyn ObjectStore>`, opened from a
//! [`StoreConfig`], addressed by [`BlobKey`], with errors that say whether trying again
//! may help.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, OnceLock},
    time::Duration,
};

use bytes::Bytes;
use futures::{StreamExt, stream::BoxStream};
use object_store::{
    Attribute, AttributeValue, Attributes, BackoffConfig, ClientOptions, GetOptions,
    GetResultPayload, ObjectStore, ObjectStoreExt, PutMode, PutMultipartOptions, PutOptions,
    PutPayload, RetryConfig, WriteMultipart,
    aws::{AmazonS3Builder, Checksum},
    azure::{MicrosoftAzureBuilder, split_sas},
    gcp::GoogleCloudStorageBuilder,
    local::LocalFileSystem,
    memory::InMemory,
    path::Path,
};

use super::{
    azure::{AccountSecret, ConnectionString},
    config::{Credential, Provider, StoreConfig},
    multipart::Multipart,
};
use crate::api::InvalidArgument;

/// Read size for objects of the `file` store.
const FILE_READ_CHUNK: usize = 1 << 20;

/// A key inside a binding: relative, `/`-separated, no empty, `.` or `..` parts.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BlobKey(String);

impl BlobKey {
    pub fn new(key: impl Into<String>) -> Result<Self, InvalidArgument> {
        let key = key.into();
        let bad = key.is_empty()
            || key.len() > 1024
            || key
                .split('/')
                .any(|part| part.is_empty() || part == "." || part == "..")
            || key.chars().any(|c| c.is_control() || c == '\\');
        if bad {
            return Err(InvalidArgument::new(
                "key",
                "must be 1 to 1024 characters of '/'-separated names without '.', '..' or \
                 empty parts",
            ));
        }
        Ok(Self(key))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for BlobKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

#[derive(Debug, Clone, thiserror::Error)]
pub enum BlobError {
    #[error("object {0} not found")]
    NotFound(String),
    #[error("permission denied: {0}")]
    PermissionDenied(String),
    #[error("object {0} already exists")]
    AlreadyExists(String),
    #[error("precondition failed: {0}")]
    Precondition(String),
    /// Timeouts, refused connections, 5xx: the store may answer later.
    #[error("store unavailable: {0}")]
    Unavailable(String),
    #[error("store error: {0}")]
    Failed(String),
    #[error("store configuration: {0}")]
    Config(String),
}

impl BlobError {
    /// Whether trying the same call again may succeed.
    pub fn is_transient(&self) -> bool {
        matches!(self, BlobError::Unavailable(_))
    }

    pub fn is_permanent(&self) -> bool {
        !self.is_transient()
    }

    fn from_store(error: object_store::Error) -> Self {
        use object_store::Error as E;
        match error {
            E::NotFound { path, .. } => BlobError::NotFound(path),
            E::AlreadyExists { path, .. } => BlobError::AlreadyExists(path),
            E::Precondition { path, .. } => BlobError::Precondition(path),
            E::PermissionDenied { path, source } | E::Unauthenticated { path, source } => {
                BlobError::PermissionDenied(format!("{path}: {source}"))
            }
            E::Generic { .. } if is_transient(&error) => BlobError::Unavailable(error.to_string()),
            other => BlobError::Failed(other.to_string()),
        }
    }
}

impl From<object_store::Error> for BlobError {
    fn from(error: object_store::Error) -> Self {
        BlobError::from_store(error)
    }
}

/// Connection failures, timeouts and 5xx answers, found by walking the error's sources.
fn is_transient(error: &object_store::Error) -> bool {
    use object_store::client::{HttpError, HttpErrorKind};
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = source {
        if let Some(http) = current.downcast_ref::<HttpError>() {
            return matches!(
                http.kind(),
                HttpErrorKind::Connect
                    | HttpErrorKind::Request
                    | HttpErrorKind::Timeout
                    | HttpErrorKind::Interrupted
            );
        }
        let text = current.to_string();
        if text.contains("non-2xx status code: 5") || text.contains("retries, max_retries") {
            return true;
        }
        source = current.source();
    }
    false
}

const INIT_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
const BACKOFF_BASE: f64 = 2.0;

/// The most the store client waits before its `retry`-th retry (its backoff is jittered
/// below this).
fn backoff_before(retry: usize) -> Duration {
    INIT_BACKOFF.mul_f64(BACKOFF_BASE.powi(i32::try_from(retry).unwrap_or(i32::MAX)))
}

/// Retry and timeout behaviour of cloud stores.
#[derive(Debug, Clone)]
pub struct StoreOptions {
    pub max_retries: usize,
    pub retry_timeout: Duration,
    pub connect_timeout: Duration,
    /// Longest silence while reading a response body.
    pub read_timeout: Duration,
    /// The Azure access tier new blobs are written at (`Hot`, `Cool`, `Cold`; `None`: the
    /// account's default). Other providers ignore it.
    pub azure_access_tier: Option<String>,
}

impl Default for StoreOptions {
    fn default() -> Self {
        Self {
            max_retries: 5,
            retry_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(60),
            azure_access_tier: None,
        }
    }
}

impl StoreOptions {
    /// The defaults with a service's own retry budget and silence timeout.
    pub fn with_budget(
        max_retries: usize,
        retry_timeout: Duration,
        read_timeout: Duration,
    ) -> Self {
        Self {
            max_retries,
            retry_timeout,
            read_timeout,
            ..Self::default()
        }
    }

    /// Gives up within about two seconds (tests, fault injection).
    pub fn fail_fast() -> Self {
        Self {
            max_retries: 1,
            retry_timeout: Duration::from_secs(2),
            connect_timeout: Duration::from_millis(500),
            read_timeout: Duration::from_secs(5),
            azure_access_tier: None,
        }
    }

    /// The longest one store operation takes to fail against a store that stopped
    /// answering (accepts connections, says nothing): each request gives up after
    /// `connect_timeout + read_timeout` of silence, and a retry starts only while fewer than
    /// `max_retries` were made and `retry_timeout` has not passed, after its backoff.
    pub fn gives_up_within(&self) -> Duration {
        let silence = self.connect_timeout + self.read_timeout;
        let backoffs: Vec<Duration> = (1..=self.max_retries)
            .map(|retry| backoff_before(retry).min(MAX_BACKOFF))
            .collect();
        let by_count = silence * (self.max_retries as u32 + 1) + backoffs.iter().sum::<Duration>();
        let longest_backoff = backoffs.last().copied().unwrap_or_default();
        let by_time = self.retry_timeout + longest_backoff + silence;
        by_count.min(by_time)
    }

    fn retry(&self) -> RetryConfig {
        RetryConfig {
            backoff: BackoffConfig {
                init_backoff: INIT_BACKOFF,
                max_backoff: MAX_BACKOFF,
                base: BACKOFF_BASE,
            },
            max_retries: self.max_retries,
            retry_timeout: self.retry_timeout,
        }
    }

    fn client(&self, allow_http: bool) -> ClientOptions {
        ClientOptions::new()
            .with_allow_http(allow_http)
            .with_connect_timeout(self.connect_timeout)
            .with_timeout_disabled()
            .with_read_timeout(self.read_timeout)
    }
}

/// A store with its key prefix. Cheap to clone.
#[derive(Clone, Debug)]
pub struct BlobStore {
    inner: Arc<dyn ObjectStore>,
    prefix: Option<Path>,
    keeps_attributes: bool,
    /// Where a `file` store keeps this store's objects (its directory and prefix).
    local_root: Option<std::path::PathBuf>,
    /// An S3 store's multipart uploads (to find and abort those a killed process left).
    multipart: Option<Arc<Multipart>>,
    /// The access tier every write asks for (an Azure store's, when configured).
    access_tier: Option<String>,
}

/// The smallest part an S3 multipart upload takes (but for its last).
pub const S3_MIN_PART_SIZE: usize = 5 << 20;

/// What a [`BlobStore::get`] returns: the size and a stream of the stored bytes.
pub struct BlobRead {
    pub size: u64,
    pub attributes: Attributes,
    pub stream: BoxStream<'static, Result<Bytes, BlobError>>,
}

impl BlobStore {
    /// Opens the store a binding describes. Nothing is contacted yet.
    pub fn open(config: &StoreConfig, options: &StoreOptions) -> Result<Self, BlobError> {
        let location = &config.location;
        let config_error = |e: object_store::Error| BlobError::Config(e.to_string());
        let mut multipart = None;
        let (inner, keeps_attributes): (Arc<dyn ObjectStore>, bool) = match config.provider {
            Provider::Memory => (memory_store(&location.container), true),
            Provider::File => {
                std::fs::create_dir_all(&location.container).map_err(|e| {
                    BlobError::Config(format!("cannot create {}: {e}", location.container))
                })?;
                // fsync each written file and its directory before a write returns: a
                // write that counts is on disk, not only in the page cache the
                // read-back would otherwise read.
                let store = LocalFileSystem::new_with_prefix(&location.container)
                    .map_err(config_error)?
                    .with_automatic_cleanup(true)
                    .with_fsync(true);
                (Arc::new(store), false)
            }
            Provider::Azure => (
                Arc::new(azure(config, options)?.build().map_err(config_error)?),
                true,
            ),
            Provider::S3 => {
                // x-amz-checksum-sha256 on every upload: the store itself refuses bytes
                // corrupted on the way, before the read-back would find them.
                let mut builder = AmazonS3Builder::new()
                    .with_bucket_name(&location.container)
                    .with_checksum_algorithm(Checksum::SHA256)
                    .with_retry(options.retry());
                let mut allow_http = false;
                if let Some(region) = &location.region {
                    builder = builder.with_region(region);
                }
                if let Some(endpoint) = &location.endpoint {
                    allow_http = endpoint.starts_with("http://");
                    builder = builder.with_endpoint(endpoint);
                }
                if let Credential::S3AccessKey {
                    access_key_id,
                    secret_access_key,
                    session_token,
                } = &config.credential
                {
                    builder = builder
                        .with_access_key_id(access_key_id)
                        .with_secret_access_key(secret_access_key);
                    if let Some(token) = session_token {
                        builder = builder.with_token(token);
                    }
                }
                let client = options.client(allow_http);
                let builder = builder.with_client_options(client.clone());
                let s3 = Arc::new(builder.build().map_err(config_error)?);
                let region = location.region.as_deref().unwrap_or("us-east-1");
                multipart = Some(Arc::new(Multipart::new(
                    s3.clone(),
                    client,
                    location.endpoint.as_deref(),
                    &location.container,
                    region,
                )));
                (s3, true)
            }
            Provider::Gcs => {
                let mut builder = GoogleCloudStorageBuilder::new()
                    .with_bucket_name(&location.container)
                    .with_retry(options.retry())
                    .with_client_options(options.client(false));
                if let Credential::GcsServiceAccount { json } = &config.credential {
                    builder = builder.with_service_account_key(json);
                }
                (Arc::new(builder.build().map_err(config_error)?), true)
            }
        };
        let prefix = Some(location.prefix.as_str())
            .filter(|p| !p.is_empty())
            .map(Path::from);
        let local_root = (config.provider == Provider::File).then(|| {
            prefix.iter().flat_map(|p| p.parts()).fold(
                std::path::PathBuf::from(&location.container),
                |dir, part| dir.join(part.as_ref()),
            )
        });
        let access_tier = options
            .azure_access_tier
            .clone()
            .filter(|_| config.provider == Provider::Azure);
        Ok(Self {
            inner,
            prefix,
            keeps_attributes,
            local_root,
            multipart,
            access_tier,
        })
    }

    /// Wraps an existing store (tests wrap stores to count or fail requests).
    pub fn from_object_store(inner: Arc<dyn ObjectStore>, keeps_attributes: bool) -> Self {
        Self {
            inner,
            prefix: None,
            keeps_attributes,
            local_root: None,
            multipart: None,
            access_tier: None,
        }
    }

    /// Whether objects keep user metadata (attributes) on this store.
    pub fn keeps_attributes(&self) -> bool {
        self.keeps_attributes
    }

    /// The directory of a `file` store's objects; `None` for every other store.
    pub fn local_root(&self) -> Option<&std::path::Path> {
        self.local_root.as_deref()
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner
    }

    /// An S3 store's multipart uploads; `None` for every other store.
    pub(super) fn multipart(&self) -> Option<&Multipart> {
        self.multipart.as_deref()
    }

    /// The prefix objects of this store live under, if any.
    pub(super) fn prefix(&self) -> Option<&Path> {
        self.prefix.as_ref()
    }

    /// The smallest multipart upload part this store takes (but for the last).
    pub fn min_part_size(&self) -> usize {
        if self.multipart.is_some() {
            S3_MIN_PART_SIZE
        } else {
            1
        }
    }

    /// The key of the object at `location`, if it lies under this store's prefix.
    pub(super) fn key_of(&self, location: &Path) -> Option<BlobKey> {
        let relative = match &self.prefix {
            Some(prefix) => location.prefix_match(prefix)?.collect::<Path>(),
            None => location.clone(),
        };
        BlobKey::new(relative.as_ref()).ok()
    }

    fn path(&self, key: &BlobKey) -> Path {
        let key = Path::from(key.as_str());
        match &self.prefix {
            Some(prefix) => prefix.parts().chain(key.parts()).collect(),
            None => key,
        }
    }

    /// Writes `bytes` in one request; `create_only` fails with `AlreadyExists` if the
    /// key is taken.
    pub async fn put(
        &self,
        key: &BlobKey,
        bytes: Bytes,
        create_only: bool,
        metadata: &[(&'static str, String)],
    ) -> Result<(), BlobError> {
        let options = PutOptions {
            mode: if create_only {
                PutMode::Create
            } else {
                PutMode::Overwrite
            },
            attributes: self.attributes(metadata),
            ..PutOptions::default()
        };
        self.inner
            .put_opts(&self.path(key), PutPayload::from_bytes(bytes), options)
            .await?;
        Ok(())
    }

    /// Starts a multipart write of `part_size`-byte parts.
    pub async fn put_multipart(
        &self,
        key: &BlobKey,
        part_size: usize,
        metadata: &[(&'static str, String)],
    ) -> Result<WriteMultipart, BlobError> {
        let options = PutMultipartOptions {
            attributes: self.attributes(metadata),
            ..PutMultipartOptions::default()
        };
        let upload = self
            .inner
            .put_multipart_opts(&self.path(key), options)
            .await?;
        Ok(WriteMultipart::new_with_chunk_size(upload, part_size))
    }

    fn attributes(&self, metadata: &[(&'static str, String)]) -> Attributes {
        if !self.keeps_attributes {
            return Attributes::new();
        }
        let tier = self
            .access_tier
            .iter()
            .map(|tier| (Attribute::StorageClass, AttributeValue::from(tier.clone())));
        metadata
            .iter()
            .map(|(name, value)| {
                (
                    Attribute::Metadata((*name).into()),
                    AttributeValue::from(value.clone()),
                )
            })
            .chain(tier)
            .collect()
    }

    pub async fn get(&self, key: &BlobKey) -> Result<BlobRead, BlobError> {
        let result = self
            .inner
            .get_opts(&self.path(key), GetOptions::default())
            .await?;
        let size = result.meta.size;
        let attributes = result.attributes.clone();
        let stream = match result.payload {
            // object_store reads local files 8 KiB at a time; read them in large chunks.
            GetResultPayload::File(file, path) => {
                let file = tokio::fs::File::from_std(file);
                tokio_util::io::ReaderStream::with_capacity(file, FILE_READ_CHUNK)
                    .map(move |chunk| {
                        chunk.map_err(|e| BlobError::Failed(format!("{}: {e}", path.display())))
                    })
                    .boxed()
            }
            GetResultPayload::Stream(stream) => {
                stream.map(|chunk| chunk.map_err(BlobError::from)).boxed()
            }
        };
        Ok(BlobRead {
            size,
            attributes,
            stream,
        })
    }

    /// Size of the stored object.
    pub async fn size(&self, key: &BlobKey) -> Result<u64, BlobError> {
        Ok(self.inner.head(&self.path(key)).await?.size)
    }

    /// Deletes the object; a missing object is `NotFound`.
    pub async fn delete(&self, key: &BlobKey) -> Result<(), BlobError> {
        let path = self.path(key);
        // Some stores report a missing object as deleted; ask first so all agree.
        self.inner.head(&path).await?;
        self.inner.delete(&path).await?;
        Ok(())
    }
}

/// Process-wide in-memory stores by name, so every binding naming one shares it.
fn memory_store(name: &str) -> Arc<dyn ObjectStore> {
    static STORES: OnceLock<Mutex<HashMap<String, Arc<InMemory>>>> = OnceLock::new();
    let mut stores = STORES
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|p| p.into_inner());
    stores
        .entry(name.to_owned())
        .or_insert_with(|| Arc::new(InMemory::new()))
        .clone()
}

fn azure(config: &StoreConfig, options: &StoreOptions) -> Result<MicrosoftAzureBuilder, BlobError> {
    let location = &config.location;
    let mut builder = MicrosoftAzureBuilder::new()
        .with_container_name(&location.container)
        .with_retry(options.retry());
    let mut endpoint = location.endpoint.clone();
    let mut account = location.account.clone();
    match &config.credential {
        Credential::AzureConnectionString { connection_string } => {
            let parsed = ConnectionString::parse(connection_string)
                .map_err(|e| BlobError::Config(format!("connection string: {e}")))?;
            endpoint = endpoint.or(Some(parsed.blob_endpoint));
            account = Some(parsed.account);
            builder = match parsed.secret {
                AccountSecret::Key(key) => builder.with_access_key(key),
                AccountSecret::Sas(sas) => builder.with_sas_authorization(
                    split_sas(&sas).map_err(|e| BlobError::Config(e.to_string()))?,
                ),
            };
        }
        Credential::AzureSas { token } => {
            builder = builder.with_sas_authorization(
                split_sas(token).map_err(|e| BlobError::Config(e.to_string()))?,
            );
        }
        Credential::AzureEntraId {
            tenant_id,
            client_id,
            client_secret,
        } => {
            builder = builder.with_client_secret_authorization(client_id, client_secret, tenant_id);
        }
        Credential::None => {}
        other => {
            return Err(BlobError::Config(format!(
                "{} does not fit Azure",
                other.kind()
            )));
        }
    }
    let account = account
        .or_else(|| endpoint.as_deref().and_then(account_in_endpoint))
        .ok_or_else(|| BlobError::Config("the Azure storage account is not known".into()))?;
    builder = builder.with_account(account);
    let allow_http = endpoint
        .as_deref()
        .is_some_and(|e| e.starts_with("http://"));
    builder = builder.with_client_options(options.client(allow_http));
    if let Some(endpoint) = endpoint {
        builder = builder.with_endpoint(endpoint.trim_end_matches('/').to_owned());
    }
    Ok(builder)
}

fn account_in_endpoint(endpoint: &str) -> Option<String> {
    ConnectionString::parse(&format!("BlobEndpoint={endpoint};SharedAccessSignature=x"))
        .ok()
        .map(|cs| cs.account)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_refuse_traversal_and_empty_parts() {
        assert!(BlobKey::new("tenant/job.json.zst").is_ok());
        for bad in ["", "/abs", "a//b", "a/../b", "./a", "a/", "a\\b", "a\nb"] {
            assert!(BlobKey::new(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn memory_stores_are_shared_by_name() {
        let a = memory_store("shared-by-name");
        let b = memory_store("shared-by-name");
        assert!(Arc::ptr_eq(&a, &b));
    }
}
