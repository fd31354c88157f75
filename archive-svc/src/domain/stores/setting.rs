//! An archive store setting as an operator gives it: `file:///absolute/dir`,
//! `memory://name`, or an Azure connection string (account key, SAS or
//! `UseDevelopmentStorage=true`) with its container; parsed into how to open the store and
//! what it names without its secret.

use secrecy::SecretString;
use serde::{Deserialize, Serialize};
use stowage_shared::{
    api::InvalidArgument,
    blob::{
        Credential, Location, Provider, StoreConfig,
        azure::{AccountSecret, ConnectionString},
    },
};

const FIELD: &str = "connection_string";

/// The store configured as `[archive.default_store]`: a connection string (Azure
/// account-key or SAS form, or `file:///absolute/dir`, or `memory://name`) and the
/// container. It becomes store version 1 when there is none yet.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ArchiveStoreConfig {
    pub connection_string: SecretString,
    #[serde(default = "default_container")]
    pub container: String,
}

fn default_container() -> String {
    "stowage-scan-archives".to_owned()
}

/// A connection string and container, as sealed.
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

/// A setting understood: how to open it, and what it names without its secret.
#[derive(Debug)]
pub struct ParsedSetting {
    pub config: StoreConfig,
    /// Endpoint and container, a directory or a memory store's name: the same for every
    /// credential of one store.
    pub location: String,
    pub credential_kind: &'static str,
}

impl StoreSetting {
    /// `file:///absolute/dir`, `memory://name`, or an Azure connection string (account
    /// key, SAS, or `UseDevelopmentStorage=true`) with its container.
    pub fn parse(&self) -> Result<ParsedSetting, InvalidArgument> {
        let text = self.connection_string.trim();
        if text.is_empty() {
            return Err(InvalidArgument::new(FIELD, "is required"));
        }
        let (config, location, credential_kind) = if let Some(path) = text.strip_prefix("file://") {
            file(path)?
        } else if let Some(name) = text.strip_prefix("memory://") {
            let location = format!("memory://{name}");
            (
                store(Provider::Memory, name, Credential::None),
                location,
                "none",
            )
        } else {
            azure(text, self.container.trim())?
        };
        Ok(ParsedSetting {
            config: config
                .validated()
                .map_err(|e| InvalidArgument::new(FIELD, e.to_string()))?,
            location,
            credential_kind,
        })
    }
}

type Parsed = (StoreConfig, String, &'static str);

fn file(path: &str) -> Result<Parsed, InvalidArgument> {
    if !path.starts_with('/') {
        return Err(InvalidArgument::new(
            FIELD,
            "a file store needs an absolute directory, as file:///var/lib/stowage",
        ));
    }
    let path = path.trim_end_matches('/');
    let location = format!("file://{path}");
    Ok((
        store(Provider::File, path, Credential::None),
        location,
        "none",
    ))
}

fn azure(text: &str, container: &str) -> Result<Parsed, InvalidArgument> {
    let parsed = ConnectionString::parse(text).map_err(|e| {
        InvalidArgument::new(
            FIELD,
            format!("is neither file:///dir, memory://name nor an Azure connection string: {e}"),
        )
    })?;
    if container.is_empty() {
        return Err(InvalidArgument::new(
            "container",
            "is required for an Azure store",
        ));
    }
    let kind = match parsed.secret {
        AccountSecret::Key(_) => "account_key",
        AccountSecret::Sas(_) => "sas",
    };
    let location = format!("{}/{container}", parsed.blob_endpoint);
    let credential = Credential::AzureConnectionString {
        connection_string: text.to_owned(),
    };
    Ok((
        store(Provider::Azure, container, credential),
        location,
        kind,
    ))
}

fn store(provider: Provider, container: &str, credential: Credential) -> StoreConfig {
    StoreConfig {
        provider,
        location: Location {
            container: container.to_owned(),
            ..Location::default()
        },
        credential,
    }
}

#[cfg(test)]
mod tests {
    use stowage_shared::blob::azure::{DEV_ACCOUNT, DEV_KEY};

    use super::*;

    fn setting(connection_string: &str, container: &str) -> StoreSetting {
        StoreSetting {
            connection_string: connection_string.to_owned(),
            container: container.to_owned(),
        }
    }

    #[test]
    fn settings_name_their_store_without_the_secret() {
        let azure = format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};\
             BlobEndpoint=http://127.0.0.1:10000/{DEV_ACCOUNT};"
        );
        let parsed = setting(&azure, "scans").parse().unwrap();
        assert_eq!(parsed.config.provider, Provider::Azure);
        assert_eq!(
            parsed.location,
            format!("http://127.0.0.1:10000/{DEV_ACCOUNT}/scans")
        );
        assert_eq!(parsed.credential_kind, "account_key");
        let development = setting("UseDevelopmentStorage=true", "scans")
            .parse()
            .unwrap();
        assert_eq!(
            development.location, parsed.location,
            "one store, two spellings"
        );

        let file = setting("file:///var/lib/stowage/", "").parse().unwrap();
        assert_eq!(file.location, "file:///var/lib/stowage");
        assert_eq!(file.config.location.container, "/var/lib/stowage");
        let memory = setting("memory://scratch", "ignored").parse().unwrap();
        assert_eq!(memory.location, "memory://scratch");
    }

    #[test]
    fn bad_settings_name_the_field_and_never_the_secret() {
        let cases = [
            ("", "scans", "connection_string: is required"),
            (
                "file://relative",
                "",
                "connection_string: a file store needs",
            ),
            ("no store at all", "scans", "connection_string: is neither"),
            ("UseDevelopmentStorage=true", "", "container: is required"),
        ];
        for (text, container, expected) in cases {
            let error = setting(text, container).parse().unwrap_err().to_string();
            assert!(error.starts_with(expected), "{text:?}: {error}");
        }
        let pasted = format!("AccountName={DEV_ACCOUNT};AccountKey:{DEV_KEY}");
        let error = setting(&pasted, "scans").parse().unwrap_err().to_string();
        assert!(!error.contains(&DEV_KEY[..12]), "{error}");
    }

    #[test]
    fn a_setting_prints_without_its_connection_string() {
        let printed = format!("{:?}", setting("AccountKey=secret-key", "scans"));
        assert!(!printed.contains("secret-key"), "{printed}");
    }
}
