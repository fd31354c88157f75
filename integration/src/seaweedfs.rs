//! A private key prefix in the bucket of the SeaweedFS S3 gateway `deploy/dev/test`
//! starts (`weed mini`, a real multi-threaded object store), reached directly or through
//! a fault relay of its own.

use anyhow::{Context, Result};
use stowage_proto::migration::v1 as pb;
use stowage_shared::blob::{BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions};

use crate::proxy::TcpProxy;

/// The region SeaweedFS signs with (it accepts any; object_store needs one).
pub const REGION: &str = "us-east-1";

/// Where the test S3 server is and how to sign for it.
#[derive(Debug, Clone)]
pub struct S3Server {
    /// e.g. `http://127.0.0.1:41234` (no trailing slash).
    pub endpoint: String,
    pub bucket: String,
    pub access_key_id: String,
    pub secret_access_key: String,
}

impl S3Server {
    /// The server from `STOWAGE_TEST_S3*` (exported by `deploy/dev/test`).
    pub fn from_env() -> Result<Self> {
        let var = |name: &str| {
            std::env::var(name).with_context(|| {
                format!("{name} is not set: run the tests through deploy/dev/test, which starts SeaweedFS")
            })
        };
        Ok(Self {
            endpoint: var("STOWAGE_TEST_S3")?.trim_end_matches('/').to_owned(),
            bucket: var("STOWAGE_TEST_S3_BUCKET")?,
            access_key_id: var("STOWAGE_TEST_S3_KEY_ID")?,
            secret_access_key: var("STOWAGE_TEST_S3_SECRET")?,
        })
    }

    /// The gateway's TCP address.
    pub fn addr(&self) -> Result<std::net::SocketAddr> {
        self.endpoint
            .trim_start_matches("http://")
            .parse()
            .context("STOWAGE_TEST_S3 is not http://IP:PORT")
    }

    pub fn credential(&self) -> Credential {
        Credential::S3AccessKey {
            access_key_id: self.access_key_id.clone(),
            secret_access_key: self.secret_access_key.clone(),
            session_token: None,
        }
    }
}

/// A prefix of its own in the test bucket, so tests never see each other's objects.
#[derive(Debug, Clone)]
pub struct TestPrefix {
    pub server: S3Server,
    pub prefix: String,
}

impl TestPrefix {
    pub fn create() -> Result<Self> {
        Ok(Self {
            server: S3Server::from_env()?,
            prefix: format!("test-{}", uuid::Uuid::new_v4().simple()),
        })
    }

    /// The store configuration of this prefix, at `endpoint` (the server's, or a relay's).
    pub fn config_at(&self, endpoint: &str) -> StoreConfig {
        StoreConfig {
            provider: Provider::S3,
            location: Location {
                container: self.server.bucket.clone(),
                prefix: self.prefix.clone(),
                endpoint: Some(endpoint.to_owned()),
                region: Some(REGION.to_owned()),
                ..Location::default()
            },
            credential: self.server.credential(),
        }
    }

    /// The prefix reached directly, without encryption: to read, alter or delete stored
    /// objects behind the service's back.
    pub fn raw_store(&self) -> Result<BlobStore> {
        let config = self.config_at(&self.server.endpoint).validated()?;
        Ok(BlobStore::open(&config, &StoreOptions::fail_fast())?)
    }

    /// A binding of this prefix reached at `endpoint`.
    pub fn binding_at(&self, name: &str, endpoint: &str) -> pb::CreateBindingRequest {
        pb::CreateBindingRequest {
            display_name: name.to_owned(),
            provider: pb::Provider::S3.into(),
            location: Some(pb::Location {
                container: self.server.bucket.clone(),
                prefix: self.prefix.clone(),
                endpoint: endpoint.to_owned(),
                region: REGION.to_owned(),
                ..Default::default()
            }),
            credential: Some(pb::Credential {
                kind: Some(pb::credential::Kind::S3AccessKey(pb::S3AccessKey {
                    access_key_id: self.server.access_key_id.clone(),
                    secret_access_key: self.server.secret_access_key.clone(),
                    session_token: String::new(),
                })),
            }),
            request_id: String::new(),
        }
    }

    /// A binding of this prefix, reached directly.
    pub fn binding(&self, name: &str) -> pb::CreateBindingRequest {
        self.binding_at(name, &self.server.endpoint)
    }
}

/// A test prefix behind a fault relay of its own.
pub struct ProxiedPrefix {
    pub prefix: TestPrefix,
    pub proxy: TcpProxy,
}

impl ProxiedPrefix {
    pub async fn create() -> Result<Self> {
        let prefix = TestPrefix::create()?;
        let proxy = TcpProxy::start(prefix.server.addr()?).await?;
        Ok(Self { prefix, proxy })
    }

    /// The S3 endpoint as reached through the relay.
    pub fn endpoint(&self) -> String {
        format!("http://{}", self.proxy.addr)
    }

    pub fn binding(&self, name: &str) -> pb::CreateBindingRequest {
        self.prefix.binding_at(name, &self.endpoint())
    }
}
