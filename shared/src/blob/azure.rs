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

/// Why a connection string was refused. No variant carries any part of a value: a segment
/// is named by its position, and a key name is quoted only when it looks like one (see
/// `plausible_key_name`), because a pasted secret often lands where a key name belongs.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConnectionStringError {
    #[error("segment {0} is not key=value")]
    Segment(usize),
    #[error("key {0:?} appears twice")]
    Duplicate(&'static str),
    #[error("unknown key {0:?}")]
    UnknownKey(String),
    #[error("segment {0} does not start with a known key name")]
    NotAKey(usize),
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
        let segments = text.split(';').map(str::trim).filter(|s| !s.is_empty());
        for (index, segment) in (1..).zip(segments) {
            let (name, value) = segment
                .split_once('=')
                .ok_or(ConnectionStringError::Segment(index))?;
            let name = name.trim();
            let slot = match name {
                "DefaultEndpointsProtocol" => &mut protocol,
                "AccountName" => &mut account,
                "AccountKey" => &mut key,
                "SharedAccessSignature" => &mut sas,
                "EndpointSuffix" => &mut suffix,
                "BlobEndpoint" => &mut blob_endpoint,
                "UseDevelopmentStorage" => &mut development,
                "QueueEndpoint" | "TableEndpoint" | "FileEndpoint" => continue,
                other if plausible_key_name(other) => {
                    return Err(ConnectionStringError::UnknownKey(other.to_owned()));
                }
                _ => return Err(ConnectionStringError::NotAKey(index)),
            };
            if slot.replace(value.trim().to_owned()).is_some() {
                return Err(ConnectionStringError::Duplicate(known_key_name(name)));
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

/// A name worth quoting back: 1 to 32 ASCII letters, like every key Azure defines. A
/// base64 account key or a SAS signature pasted as a segment does not pass (their
/// characters go beyond letters, or they are longer), so they never reach an error.
fn plausible_key_name(name: &str) -> bool {
    (1..=32).contains(&name.len()) && name.bytes().all(|b| b.is_ascii_alphabetic())
}

/// The static spelling of a key `parse` matched, so a duplicate error owns no input.
fn known_key_name(name: &str) -> &'static str {
    [
        "DefaultEndpointsProtocol",
        "AccountName",
        "AccountKey",
        "SharedAccessSignature",
        "EndpointSuffix",
        "BlobEndpoint",
        "UseDevelopmentStorage",
    ]
    .into_iter()
    .find(|known| *known == name)
    .unwrap_or("a key")
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
        assert_eq!(
            ConnectionString::parse("AccountName=a;AccountName=b;AccountKey=a2V5"),
            Err(E::Duplicate("AccountName"))
        );
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

    /// A real-looking 64-byte account key, base64 (88 characters).
    const KEY: &str =
        "q7Zr0wXhT3vK9mNpLs2dFgHjYuIoPaSeRtWqCvBnMl5k8J4xE6yU1iO0pA9sD3fG7hJ2kL6zX8cV4bN1mQ5wRt==";

    /// Every 8-character window of the key, none of which may appear in an error.
    fn assert_quotes_no_part_of_the_key(text: &str) {
        let error = ConnectionString::parse(text)
            .expect_err("a malformed connection string is refused")
            .to_string();
        let chars: Vec<char> = KEY.chars().collect();
        for window in chars.windows(8) {
            let window: String = window.iter().collect();
            assert!(
                !error.contains(&window),
                "error {error:?} quotes {window:?} of the key"
            );
        }
    }

    #[test]
    fn errors_about_a_malformed_string_quote_no_part_of_the_key() {
        for text in [
            // the key pasted as a bare segment
            format!("DefaultEndpointsProtocol=https;AccountName=acct;{KEY}"),
            // a colon where the '=' belongs
            format!("AccountName=acct;AccountKey:{KEY}"),
            format!("AccountName=acct;AccountKey: {KEY};EndpointSuffix=core.windows.net"),
            // only the key, with and without its padding
            KEY.to_owned(),
            KEY.trim_end_matches('=').to_owned(),
            // a key that is not base64, a duplicate key, a key in the name's place
            format!("AccountName=acct;AccountKey={KEY}!"),
            format!("AccountName=acct;AccountKey={KEY};AccountKey={KEY}"),
            format!("AccountName=acct;{KEY}=x"),
            format!("AccountName={KEY};AccountKey={KEY}"),
        ] {
            assert_quotes_no_part_of_the_key(&text);
        }
    }

    #[test]
    fn a_plausible_unknown_key_name_is_quoted_and_a_segment_is_named_by_position() {
        use ConnectionStringError as E;
        assert_eq!(
            ConnectionString::parse("AccountName=a;AccountKee=a2V5"),
            Err(E::UnknownKey("AccountKee".into()))
        );
        assert_eq!(
            ConnectionString::parse(&format!("AccountName=a;{KEY}")),
            Err(E::NotAKey(2))
        );
        assert_eq!(
            ConnectionString::parse("AccountName=a;;secretwithnoequals"),
            Err(E::Segment(2))
        );
    }
}
