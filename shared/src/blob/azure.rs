//! Azure Storage connection strings: the account-key form
//! (`DefaultEndpointsProtocol=…;AccountName=…;AccountKey=…;EndpointSuffix=…` or
//! `BlobEndpoint=…`), SAS forms (`SharedAccessSignature=…`) and
//! `UseDevelopmentStorage=true` (Azurite on 127.0.0.1:10000).

use std::fmt;

use base64::{Engine, engine::general_purpose::STANDARD};

/// Azurite's well-known development account.
pub const DEV_ACCOUNT: &str = "devstoreaccount1";
pub const DEV_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("segment {0:?} is not key=value")]
    Segment(String),
    #[error("key {0:?} appears twice")]
    Duplicate(String),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("{0} is required")]
    Missing(&'static str),
    #[error("AccountKey is not base64")]
    AccountKey,
    #[error("{0} must be an http(s) URL")]
    Url(&'static str),
    #[error("DefaultEndpointsProtocol must be http or https")]
    Protocol,
    #[error("UseDevelopmentStorage only accepts the value true")]
    Development,
    #[error("AccountName must be letters and digits")]
    AccountName,
    #[error("EndpointSuffix must be a host name")]
    EndpointSuffix,
}

/// A parsed connection string. `Debug` hides the key and signature.
#[derive(Clone, PartialEq, Eq)]
pub struct ConnectionString {
    pub account: String,
    pub secret: AccountSecret,
    /// Blob service endpoint, no trailing slash.
    pub blob_endpoint: String,
}

#[derive(Clone, PartialEq, Eq)]
pub enum AccountSecret {
    Key(String),
    Sas(String),
}

impl fmt::Debug for AccountSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            AccountSecret::Key(_) => "AccountKey(redacted)",
            AccountSecret::Sas(_) => "SharedAccessSignature(redacted)",
        })
    }
}

impl fmt::Debug for ConnectionString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ConnectionString")
            .field("account", &self.account)
            .field("secret", &self.secret)
            .field("blob_endpoint", &self.blob_endpoint)
            .finish()
    }
}

impl ConnectionString {
    pub fn parse(text: &str) -> Result<Self, ConnectionStringError> {
        let mut protocol = None;
        let mut account = None;
        let mut key = None;
        let mut sas = None;
        let mut suffix = None;
        let mut blob_endpoint = None;
        let mut development = None;
        for segment in text.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            let (name, value) = segment
                .split_once('=')
                .ok_or_else(|| ConnectionStringError::Segment(redact(segment)))?;
            let slot = match name.trim() {
                "DefaultEndpointsProtocol" => &mut protocol,
                "AccountName" => &mut account,
                "AccountKey" => &mut key,
                "SharedAccessSignature" => &mut sas,
                "EndpointSuffix" => &mut suffix,
                "BlobEndpoint" => &mut blob_endpoint,
                "UseDevelopmentStorage" => &mut development,
                "QueueEndpoint" | "TableEndpoint" | "FileEndpoint" => continue,
                other => return Err(ConnectionStringError::UnknownKey(other.to_owned())),
            };
            if slot.replace(value.trim().to_owned()).is_some() {
                return Err(ConnectionStringError::Duplicate(name.trim().to_owned()));
            }
        }
        if let Some(value) = development {
            if !value.eq_ignore_ascii_case("true") {
                return Err(ConnectionStringError::Development);
            }
            return Ok(Self {
                account: DEV_ACCOUNT.to_owned(),
                secret: AccountSecret::Key(DEV_KEY.to_owned()),
                blob_endpoint: format!("http://127.0.0.1:10000/{DEV_ACCOUNT}"),
            });
        }
        let secret = match (key, sas) {
            (Some(key), _) => {
                STANDARD
                    .decode(&key)
                    .map_err(|_| ConnectionStringError::AccountKey)?;
                AccountSecret::Key(key)
            }
            (None, Some(sas)) => AccountSecret::Sas(sas.trim_start_matches('?').to_owned()),
            (None, None) => return Err(ConnectionStringError::Missing("AccountKey")),
        };
        let blob_endpoint = match blob_endpoint {
            Some(endpoint) => {
                let endpoint = endpoint.trim_end_matches('/');
                if !valid_endpoint(endpoint) {
                    return Err(ConnectionStringError::Url("BlobEndpoint"));
                }
                endpoint.to_owned()
            }
            None => {
                let protocol = protocol.as_deref().unwrap_or("https");
                if protocol != "http" && protocol != "https" {
                    return Err(ConnectionStringError::Protocol);
                }
                let account = account
                    .as_deref()
                    .ok_or(ConnectionStringError::Missing("AccountName"))?;
                let suffix = suffix.as_deref().unwrap_or("core.windows.net");
                if !valid_account(account) {
                    return Err(ConnectionStringError::AccountName);
                }
                if !valid_suffix(suffix) {
                    return Err(ConnectionStringError::EndpointSuffix);
                }
                format!("{protocol}://{account}.blob.{suffix}")
            }
        };
        let account = match account {
            Some(account) => account,
            None => account_from_endpoint(&blob_endpoint)
                .ok_or(ConnectionStringError::Missing("AccountName"))?,
        };
        if account.is_empty() {
            return Err(ConnectionStringError::Missing("AccountName"));
        }
        if !valid_account(&account) {
            return Err(ConnectionStringError::AccountName);
        }
        Ok(Self {
            account,
            secret,
            blob_endpoint,
        })
    }
}

/// Storage account names are 3 to 24 lowercase letters and digits on Azure; Azurite and
/// sovereign clouds are laxer, so this accepts 1 to 64 ASCII letters and digits.
fn valid_account(account: &str) -> bool {
    (1..=64).contains(&account.len()) && account.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// `http(s)://host[:port][/path]` with a plausible host and no trailing slash.
fn valid_endpoint(endpoint: &str) -> bool {
    let Some(rest) = endpoint
        .strip_prefix("https://")
        .or_else(|| endpoint.strip_prefix("http://"))
    else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    !host.is_empty()
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]".contains(&b))
        && (path.is_empty() || !path.split('/').any(str::is_empty))
        && !path
            .bytes()
            .any(|b| b.is_ascii_control() || b == b' ' || b == b'?' || b == b'#')
}

/// A DNS suffix such as `core.windows.net`.
fn valid_suffix(suffix: &str) -> bool {
    !suffix.is_empty()
        && !suffix.starts_with(['.', '-'])
        && !suffix.ends_with(['.', '-'])
        && suffix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
}

/// `https://acct.blob.core.windows.net` → `acct`; `http://host:port/acct` → `acct`.
fn account_from_endpoint(endpoint: &str) -> Option<String> {
    let rest = endpoint.split_once("://")?.1;
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let from_path = path.split('/').find(|s| !s.is_empty());
    from_path
        .or_else(|| host.split('.').next())
        .map(str::to_owned)
}

fn redact(segment: &str) -> String {
    segment.chars().take(24).collect::<String>() + if segment.len() > 24 { "…" } else { "" }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_account_key_form() {
        let cs = ConnectionString::parse(
            "DefaultEndpointsProtocol=https;AccountName=migrationfoxarchive;AccountKey=a2V5;EndpointSuffix=core.windows.net",
        )
        .unwrap();
        assert_eq!(cs.account, "migrationfoxarchive");
        assert_eq!(
            cs.blob_endpoint,
            "https://migrationfoxarchive.blob.core.windows.net"
        );
        assert_eq!(cs.secret, AccountSecret::Key("a2V5".into()));
    }

    #[test]
    fn parses_azurite_forms() {
        let dev = ConnectionString::parse("UseDevelopmentStorage=true").unwrap();
        assert_eq!(dev.blob_endpoint, "http://127.0.0.1:10000/devstoreaccount1");
        let explicit = ConnectionString::parse(&format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};BlobEndpoint=http://127.0.0.1:41234/devstoreaccount1/;"
        ))
        .unwrap();
        assert_eq!(
            explicit.blob_endpoint,
            "http://127.0.0.1:41234/devstoreaccount1"
        );
        assert_eq!(explicit.account, DEV_ACCOUNT);
    }

    #[test]
    fn parses_sas_and_infers_the_account() {
        let cs = ConnectionString::parse(
            "BlobEndpoint=https://acct.blob.core.windows.net;SharedAccessSignature=?sv=2022&sig=abc",
        )
        .unwrap();
        assert_eq!(cs.account, "acct");
        assert_eq!(cs.secret, AccountSecret::Sas("sv=2022&sig=abc".into()));
        assert!(!format!("{cs:?}").contains("sig=abc"));
    }

    #[test]
    fn rejects_malformed_strings() {
        use ConnectionStringError as E;
        assert_eq!(
            ConnectionString::parse("AccountName=a"),
            Err(E::Missing("AccountKey"))
        );
        assert_eq!(
            ConnectionString::parse("AccountName=a;AccountKey=!!"),
            Err(E::AccountKey)
        );
        assert!(matches!(
            ConnectionString::parse("garbage"),
            Err(E::Segment(_))
        ));
        assert!(matches!(
            ConnectionString::parse("Foo=bar"),
            Err(E::UnknownKey(_))
        ));
        assert!(matches!(
            ConnectionString::parse("AccountName=a;AccountName=b;AccountKey=a2V5"),
            Err(E::Duplicate(_))
        ));
        assert_eq!(
            ConnectionString::parse("UseDevelopmentStorage=false"),
            Err(E::Development)
        );
        assert_eq!(
            ConnectionString::parse("BlobEndpoint=https://////;SharedAccessSignature=s"),
            Err(E::Url("BlobEndpoint"))
        );
        // Found by fuzzing: a suffix ending in '/' made an endpoint with a trailing slash.
        assert_eq!(
            ConnectionString::parse("AccountName=acct;AccountKey=a2V5;EndpointSuffix=ccol=hind/"),
            Err(E::EndpointSuffix)
        );
        assert_eq!(
            ConnectionString::parse("AccountName=a/b;AccountKey=a2V5"),
            Err(E::AccountName)
        );
    }
}
