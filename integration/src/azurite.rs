//! A private container on the Azurite instance `deploy/dev/test` starts. `object_store`
//! cannot create containers, so this signs Azure's `Create Container` REST call with the
//! development account's shared key.

use anyhow::{Context, Result, bail};
use aws_lc_rs::hmac;
use base64::{Engine, engine::general_purpose::STANDARD};
use stowage_shared::blob::{
    BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions,
    azure::{DEV_ACCOUNT, DEV_KEY},
};

const API_VERSION: &str = "2021-08-06";

/// A container of its own on Azurite.
#[derive(Debug, Clone)]
pub struct TestContainer {
    /// Blob endpoint, e.g. `http://127.0.0.1:41234/devstoreaccount1` (no trailing slash).
    pub endpoint: String,
    pub container: String,
}

impl TestContainer {
    /// Creates a uniquely named container.
    pub async fn create() -> Result<Self> {
        let endpoint = endpoint()?;
        let container = format!("test-{}", uuid::Uuid::new_v4().simple());
        create_container(&endpoint, &container).await?;
        Ok(Self {
            endpoint,
            container,
        })
    }

    /// An account-key connection string for this Azurite.
    pub fn connection_string(&self) -> String {
        format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};\
             BlobEndpoint={};",
            self.endpoint
        )
    }

    /// The container as a plain store (no encryption), with an account-key connection
    /// string: to read, alter or delete stored objects behind a service's back.
    pub fn raw_store(&self) -> Result<BlobStore> {
        let config = StoreConfig {
            provider: Provider::Azure,
            location: Location {
                container: self.container.clone(),
                ..Location::default()
            },
            credential: Credential::AzureConnectionString {
                connection_string: self.connection_string(),
            },
        }
        .validated()?;
        Ok(BlobStore::open(&config, &StoreOptions::fail_fast())?)
    }
}

/// An account SAS token (the query string, no leading `?`) for the development account,
/// signed with its key: read, write, delete, list, add, create, update and process on
/// every blob resource, until 2035.
pub fn account_sas_token() -> Result<String> {
    let (version, expiry) = ("2019-12-12", "2035-01-01T00:00:00Z");
    let to_sign = format!("{DEV_ACCOUNT}\nrwdlacup\nb\nsco\n\n{expiry}\n\nhttps,http\n{version}\n");
    let key = hmac::Key::new(hmac::HMAC_SHA256, &STANDARD.decode(DEV_KEY)?);
    let signature = STANDARD.encode(hmac::sign(&key, to_sign.as_bytes()).as_ref());
    let encode = |s: &str| {
        s.replace('+', "%2B")
            .replace('/', "%2F")
            .replace('=', "%3D")
            .replace(':', "%3A")
    };
    Ok(format!(
        "sv={version}&ss=b&srt=sco&sp=rwdlacup&se={}&spr=https,http&sig={}",
        encode(expiry),
        encode(&signature)
    ))
}

/// Azurite's blob endpoint from `STOWAGE_TEST_AZURITE`.
pub fn endpoint() -> Result<String> {
    let endpoint = std::env::var("STOWAGE_TEST_AZURITE").context(
        "STOWAGE_TEST_AZURITE is not set: run the tests through deploy/dev/test, which starts \
         Azurite and sets it",
    )?;
    Ok(endpoint.trim_end_matches('/').to_owned())
}

/// `PUT {endpoint}/{container}?restype=container`, signed with the dev account's key.
pub async fn create_container(endpoint: &str, container: &str) -> Result<()> {
    container_call(reqwest::Method::PUT, endpoint, container, 409).await
}

/// `DELETE {endpoint}/{container}?restype=container`: Azurite drops the container's blobs
/// with it (and slows down with every blob it holds, so benchmarks clear what they made).
pub async fn delete_container(endpoint: &str, container: &str) -> Result<()> {
    container_call(reqwest::Method::DELETE, endpoint, container, 404).await
}

/// A container-level REST call signed with the dev account's key; `tolerated` is the one
/// failure status that means the container is already as asked.
async fn container_call(
    method: reqwest::Method,
    endpoint: &str,
    container: &str,
    tolerated: u16,
) -> Result<()> {
    let date = chrono::Utc::now()
        .format("%a, %d %b %Y %H:%M:%S GMT")
        .to_string();
    // Path-style (emulator) URLs repeat the account in the canonicalized resource.
    let path = endpoint
        .split_once("://")
        .and_then(|(_, rest)| rest.split_once('/'))
        .map(|x| x.1);
    let resource = match path {
        Some(path) => format!("/{DEV_ACCOUNT}/{path}/{container}"),
        None => format!("/{DEV_ACCOUNT}/{container}"),
    };
    let string_to_sign = format!(
        "{method}\n\n\n\n\n\n\n\n\n\n\n\nx-ms-date:{date}\nx-ms-version:{API_VERSION}\n{resource}\nrestype:container"
    );
    let key = hmac::Key::new(hmac::HMAC_SHA256, &STANDARD.decode(DEV_KEY)?);
    let signature = STANDARD.encode(hmac::sign(&key, string_to_sign.as_bytes()).as_ref());
    let response = reqwest::Client::new()
        .request(
            method.clone(),
            format!("{endpoint}/{container}?restype=container"),
        )
        .header("x-ms-date", &date)
        .header("x-ms-version", API_VERSION)
        .header("content-length", "0")
        .header(
            "authorization",
            format!("SharedKey {DEV_ACCOUNT}:{signature}"),
        )
        .send()
        .await
        .with_context(|| format!("{method} container {container} on Azurite at {endpoint}"))?;
    let status = response.status();
    if !status.is_success() && status.as_u16() != tolerated {
        bail!(
            "Azurite refused {method} {container}: {status} {}",
            response.text().await?
        );
    }
    Ok(())
}
