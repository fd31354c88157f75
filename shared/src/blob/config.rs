//! What a binding says about its store: provider, location and credential. Validated on
//! receipt; the credential is serialized only to be sealed, and never printed.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::azure::ConnectionString;
use crate::api::{self, InvalidArgument};

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    Azure,
    S3,
    Gcs,
    File,
    Memory,
}

impl Provider {
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Azure => "azure",
            Provider::S3 => "s3",
            Provider::Gcs => "gcs",
            Provider::File => "file",
            Provider::Memory => "memory",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "azure" => Provider::Azure,
            "s3" => Provider::S3,
            "gcs" => Provider::Gcs,
            "file" => Provider::File,
            "memory" => Provider::Memory,
            _ => return None,
        })
    }
}

/// Where the objects live.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Location {
    /// Container, bucket, directory (file) or store name (memory).
    pub container: String,
    /// Key prefix inside the container, without leading or trailing slash.
    #[serde(default)]
    pub prefix: String,
    #[serde(default)]
    pub endpoint: Option<String>,
    #[serde(default)]
    pub account: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
}

/// A store credential. `Debug` shows the kind only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Credential {
    None,
    AzureConnectionString {
        connection_string: String,
    },
    AzureSas {
        token: String,
    },
    AzureEntraId {
        tenant_id: String,
        client_id: String,
        client_secret: String,
    },
    S3AccessKey {
        access_key_id: String,
        secret_access_key: String,
        session_token: Option<String>,
    },
    GcsServiceAccount {
        json: String,
    },
}

impl Credential {
    pub fn kind(&self) -> &'static str {
        match self {
            Credential::None => "none",
            Credential::AzureConnectionString { .. } => "azure_connection_string",
            Credential::AzureSas { .. } => "azure_sas",
            Credential::AzureEntraId { .. } => "azure_entra_id",
            Credential::S3AccessKey { .. } => "s3_access_key",
            Credential::GcsServiceAccount { .. } => "gcs_service_account",
        }
    }

    fn fits(&self, provider: Provider) -> bool {
        match self {
            Credential::None => true,
            Credential::AzureConnectionString { .. }
            | Credential::AzureSas { .. }
            | Credential::AzureEntraId { .. } => provider == Provider::Azure,
            Credential::S3AccessKey { .. } => provider == Provider::S3,
            Credential::GcsServiceAccount { .. } => provider == Provider::Gcs,
        }
    }
}

impl fmt::Debug for Credential {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Credential({}, redacted)", self.kind())
    }
}

/// Everything needed to open a store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoreConfig {
    pub provider: Provider,
    pub location: Location,
    pub credential: Credential,
}

impl StoreConfig {
    /// Checks and normalizes a submitted configuration: container present, prefix and
    /// endpoint without stray slashes, the credential of a kind the provider accepts.
    pub fn validated(mut self) -> Result<Self, InvalidArgument> {
        let location = &mut self.location;
        location.container = api::text("location.container", &location.container, 1024)?.to_owned();
        location.prefix = api::text("location.prefix", &location.prefix, 1024)?.to_owned();
        for (field, value, max) in [
            ("location.endpoint", &mut location.endpoint, 2048),
            ("location.account", &mut location.account, 256),
            ("location.region", &mut location.region, 128),
        ] {
            if let Some(text) = value {
                *text = api::text(field, text, max)?.to_owned();
            }
        }
        if location.container.is_empty() {
            return Err(InvalidArgument::new("location.container", "is required"));
        }
        match self.provider {
            Provider::File if !location.container.starts_with('/') => {
                return Err(InvalidArgument::new(
                    "location.container",
                    "a file store needs an absolute directory path",
                ));
            }
            Provider::Azure | Provider::S3 | Provider::Gcs
                if !location
                    .container
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_') =>
            {
                return Err(InvalidArgument::new(
                    "location.container",
                    "must be a container or bucket name (letters, digits, '-', '.', '_')",
                ));
            }
            _ => {}
        }
        location.prefix = location.prefix.trim_matches('/').to_owned();
        if location
            .prefix
            .split('/')
            .any(|part| part == ".." || part == ".")
        {
            return Err(InvalidArgument::new(
                "location.prefix",
                "must not contain '.' or '..'",
            ));
        }
        if let Some(endpoint) = location.endpoint.take().filter(|e| !e.trim().is_empty()) {
            let endpoint = endpoint.trim().trim_end_matches('/').to_owned();
            if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
                return Err(InvalidArgument::new(
                    "location.endpoint",
                    "must be an http(s) URL",
                ));
            }
            location.endpoint = Some(endpoint);
        }
        location.account = location.account.take().filter(|a| !a.trim().is_empty());
        location.region = location.region.take().filter(|r| !r.trim().is_empty());
        if !self.credential.fits(self.provider) {
            return Err(InvalidArgument::new(
                "credential",
                format!(
                    "a {} credential does not fit a {} store",
                    self.credential.kind(),
                    self.provider.as_str()
                ),
            ));
        }
        match &self.credential {
            Credential::AzureConnectionString { connection_string } => {
                ConnectionString::parse(connection_string).map_err(|e| {
                    InvalidArgument::new("credential.azure_connection_string", e.to_string())
                })?;
            }
            Credential::AzureSas { token } if token.trim_start_matches('?').is_empty() => {
                return Err(InvalidArgument::new(
                    "credential.azure_sas_token",
                    "is empty",
                ));
            }
            Credential::AzureSas { .. } | Credential::AzureEntraId { .. }
                if self.location.account.is_none() && self.location.endpoint.is_none() =>
            {
                return Err(InvalidArgument::new(
                    "location.account",
                    "an Azure SAS or Entra ID credential needs the storage account (or endpoint)",
                ));
            }
            Credential::S3AccessKey {
                access_key_id,
                secret_access_key,
                ..
            } if access_key_id.is_empty() || secret_access_key.is_empty() => {
                return Err(InvalidArgument::new(
                    "credential.s3_access_key",
                    "is incomplete",
                ));
            }
            Credential::GcsServiceAccount { json }
                if serde_json::from_str::<serde_json::Value>(json).is_err() =>
            {
                return Err(InvalidArgument::new(
                    "credential.gcs_service_account_json",
                    "is not JSON",
                ));
            }
            _ => {}
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn azure(credential: Credential) -> StoreConfig {
        StoreConfig {
            provider: Provider::Azure,
            location: Location {
                container: "archives".into(),
                ..Location::default()
            },
            credential,
        }
    }

    #[test]
    fn normalizes_prefix_and_endpoint() {
        let mut config = azure(Credential::None);
        config.location.prefix = "/a/b/".into();
        config.location.endpoint = Some("http://127.0.0.1:10000/devstoreaccount1/".into());
        let config = config.validated().unwrap();
        assert_eq!(config.location.prefix, "a/b");
        assert_eq!(
            config.location.endpoint.as_deref(),
            Some("http://127.0.0.1:10000/devstoreaccount1")
        );
    }

    #[test]
    fn rejects_credentials_of_another_provider() {
        let mut config = azure(Credential::S3AccessKey {
            access_key_id: "a".into(),
            secret_access_key: "b".into(),
            session_token: None,
        });
        assert_eq!(config.clone().validated().unwrap_err().field, "credential");
        config.provider = Provider::S3;
        assert!(config.validated().is_ok());
    }

    #[test]
    fn control_characters_in_a_location_are_refused_naming_the_field() {
        let mut config = azure(Credential::None);
        config.location.prefix = "a\0b".into();
        assert_eq!(
            config.clone().validated().unwrap_err().field,
            "location.prefix"
        );
        config.location.prefix = String::new();
        config.location.region = Some("west\0".into());
        assert_eq!(
            config.clone().validated().unwrap_err().field,
            "location.region"
        );
        config.location.region = None;
        config.location.container = "x".repeat(1025);
        assert_eq!(config.validated().unwrap_err().field, "location.container");
    }

    #[test]
    fn file_stores_need_absolute_paths_and_debug_hides_secrets() {
        let config = StoreConfig {
            provider: Provider::File,
            location: Location {
                container: "relative/dir".into(),
                ..Location::default()
            },
            credential: Credential::None,
        };
        assert!(config.validated().is_err());
        let secret = Credential::AzureSas {
            token: "sig=SECRET".into(),
        };
        assert!(!format!("{:?}", azure(secret)).contains("SECRET"));
    }
}
