//! Configuration sections both services share, and the loader: a TOML file overlaid by
//! `STOWAGE__SECTION__KEY` environment variables. Secrets are `SecretString`s, which never
//! print their value.

use std::{collections::BTreeMap, net::SocketAddr, path::PathBuf, time::Duration};

use figment::{
    Figment,
    providers::{Env, Format, Serialized, Toml},
};
use secrecy::SecretString;
use serde::{Deserialize, Serialize, de::DeserializeOwned};

/// Prefix of environment overrides: `STOWAGE__DATABASE__URL` sets `database.url`.
pub const ENV_PREFIX: &str = "STOWAGE__";

/// Loads a service configuration: `defaults`, overlaid by an optional TOML file, overlaid
/// by the process environment.
pub fn load<T: DeserializeOwned>(
    defaults: impl Serialize,
    file: Option<&std::path::Path>,
) -> Result<T, Box<figment::Error>> {
    let mut figment = Figment::from(Serialized::defaults(defaults));
    if let Some(file) = file {
        if !file.exists() {
            return Err(Box::new(figment::Error::from(format!(
                "configuration file {} does not exist",
                file.display()
            ))));
        }
        figment = figment.merge(Toml::file_exact(file));
    }
    figment
        .merge(Env::prefixed(ENV_PREFIX).split("__"))
        .extract()
        .map_err(Box::new)
}

/// The sections every service has. Services flatten it into their own configuration and
/// supply their default ports through [`load`]'s defaults.
#[derive(Clone, Debug, Deserialize)]
pub struct Common {
    #[serde(default)]
    pub database: DatabaseConfig,
    pub grpc: GrpcConfig,
    pub metrics: MetricsConfig,
    #[serde(default)]
    pub log: LogConfig,
    #[serde(default)]
    pub auth: AuthConfig,
    #[serde(default)]
    pub keys: KeysConfig,
    /// Defaults for the client subcommands; their flags and environment win.
    #[serde(default)]
    pub client: ClientConfig,
    /// How long idempotency records, ended runs' items and evidence are kept.
    #[serde(default)]
    pub retention: crate::retention::RetentionConfig,
}

/// `[client]`: where and how the client subcommands reach a server.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientConfig {
    /// As `--server`: `http(s)://host:port`, or `host:port`.
    #[serde(default)]
    pub server: Option<String>,
    /// As `--ca`: PEM root certificate(s) the server's certificate must chain to.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// As `--cert`: PEM client certificate chain for mutual TLS.
    #[serde(default)]
    pub cert: Option<PathBuf>,
    /// As `--key`: PEM private key of `cert`.
    #[serde(default)]
    pub key: Option<PathBuf>,
}

/// A service's configuration: the common sections and its own, with its default ports.
/// [`service_config!`](crate::service_config) writes the type and this implementation.
pub trait ServiceConfig: DeserializeOwned {
    const GRPC_PORT: u16;
    const METRICS_PORT: u16;

    fn common(&self) -> &Common;

    /// The defaults (both listeners on loopback at the service's ports), overlaid by `file`
    /// and then by `STOWAGE__SECTION__KEY` environment variables.
    fn load(file: Option<&std::path::Path>) -> Result<Self, Box<figment::Error>> {
        load(listen_defaults(Self::GRPC_PORT, Self::METRICS_PORT), file)
    }
}

/// Default listen addresses of a service, as [`load`] defaults.
pub fn listen_defaults(grpc_port: u16, metrics_port: u16) -> serde_json::Value {
    serde_json::json!({
        "grpc": { "listen": format!("127.0.0.1:{grpc_port}") },
        "metrics": { "listen": format!("127.0.0.1:{metrics_port}") },
    })
}

/// A service's configuration type `Name { common, section }`: the common sections at the
/// top level of the file, the service's own under `[section]` (its `Default` when absent),
/// and its default ports.
///
/// ```ignore
/// stowage_shared::service_config!(Config { archive: ArchiveConfig }, ports: 50052, 9452);
/// ```
#[macro_export]
macro_rules! service_config {
    ($name:ident { $section:ident: $type:ty }, ports: $grpc:literal, $metrics:literal) => {
        /// The service's whole configuration: the common sections and its own.
        #[derive(Clone, Debug, serde::Deserialize)]
        pub struct $name {
            #[serde(flatten)]
            pub common: $crate::config::Common,
            #[serde(default)]
            pub $section: $type,
        }

        impl $crate::config::ServiceConfig for $name {
            const GRPC_PORT: u16 = $grpc;
            const METRICS_PORT: u16 = $metrics;

            fn common(&self) -> &$crate::config::Common {
                &self.common
            }
        }
    };
}

/// PostgreSQL connection.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DatabaseConfig {
    /// `postgres://user:password@host:port/database`; the password is never logged.
    /// `?sslmode=` takes libpq's `disable`, `prefer` (the default), `require`, `verify-ca`
    /// and `verify-full`; `&sslrootcert=FILE` (or `system`) names the root certificate.
    pub url: SecretString,
    /// PEM root certificate(s) for `verify-ca`/`verify-full` when the URL names no
    /// `sslrootcert`; without either, the system trust store.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_pool_size")]
    pub pool_size: usize,
    /// How long a caller waits for a pooled connection before the call fails UNAVAILABLE.
    #[serde(default = "default_acquire_timeout", with = "humantime_secs")]
    pub acquire_timeout: Duration,
}

fn default_pool_size() -> usize {
    16
}

fn default_acquire_timeout() -> Duration {
    Duration::from_secs(10)
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        Self {
            url: SecretString::from("postgres://postgres@127.0.0.1:5432/stowage"),
            ca_file: None,
            pool_size: default_pool_size(),
            acquire_timeout: default_acquire_timeout(),
        }
    }
}

/// The gRPC listener.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrpcConfig {
    pub listen: SocketAddr,
    /// After SIGTERM: how long open calls may take to finish before the process exits.
    #[serde(default = "default_drain_timeout", with = "humantime_secs")]
    pub drain_timeout: Duration,
    /// How long a new connection has to send the HTTP/2 preface (and, with TLS, to finish
    /// the TLS handshake) before it is closed.
    #[serde(default = "default_handshake_timeout", with = "humantime_secs")]
    pub handshake_timeout: Duration,
    /// Connections open at once; one more is accepted and closed at once.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    #[serde(default)]
    pub tls: Option<TlsConfig>,
    /// Browser origins (`https://dash.example.com`) allowed to call over gRPC-Web; `"*"`
    /// allows any. Empty (the default): gRPC-Web only from non-browser clients or the
    /// same origin.
    #[serde(default)]
    pub cors_origins: Vec<String>,
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(15)
}

fn default_handshake_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_max_connections() -> usize {
    10_000
}

impl GrpcConfig {
    pub fn on(listen: SocketAddr) -> Self {
        Self {
            listen,
            drain_timeout: default_drain_timeout(),
            handshake_timeout: default_handshake_timeout(),
            max_connections: default_max_connections(),
            tls: None,
            cors_origins: Vec::new(),
        }
    }
}

/// Server TLS; with `client_ca` set, clients must present a certificate it signed (mTLS).
/// The files are re-read when they change (checked every `reload_interval`) or on SIGHUP.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// PEM certificate chain, the server's own certificate first.
    pub cert: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// PEM root certificate(s) client certificates must chain to; set, it makes TLS mutual.
    #[serde(default)]
    pub client_ca: Option<PathBuf>,
    #[serde(default = "default_reload_interval", with = "humantime_secs")]
    pub reload_interval: Duration,
}

impl TlsConfig {
    pub fn new(cert: PathBuf, key: PathBuf, client_ca: Option<PathBuf>) -> Self {
        Self {
            cert,
            key,
            client_ca,
            reload_interval: default_reload_interval(),
        }
    }
}

fn default_reload_interval() -> Duration {
    Duration::from_secs(10)
}

/// The Prometheus scrape endpoint (`GET /metrics`) on its own HTTP port.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// `None` turns the endpoint off.
    pub listen: Option<SocketAddr>,
}

/// Log output.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    #[serde(default)]
    pub format: LogFormat,
    /// `tracing_subscriber::EnvFilter` directives; `RUST_LOG` wins when set.
    #[serde(default = "default_log_filter")]
    pub filter: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        Self {
            format: LogFormat::default(),
            filter: default_log_filter(),
        }
    }
}

fn default_log_filter() -> String {
    "info".to_owned()
}

#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    Pretty,
    Json,
}

/// How bearer tokens are verified (and, for development, minted).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthConfig {
    /// Shared HS256 secret.
    #[serde(default)]
    pub hs256_secret: Option<SecretString>,
    /// Ed25519 public key (PEM) that verifies EdDSA tokens.
    #[serde(default)]
    pub ed25519_public_key_pem: Option<String>,
    /// Ed25519 private key (PEM); only the `token` subcommand uses it.
    #[serde(default)]
    pub ed25519_private_key_pem: Option<SecretString>,
    /// When set, tokens must carry this `iss`.
    #[serde(default)]
    pub issuer: Option<String>,
    /// When set, tokens must carry this `aud`.
    #[serde(default)]
    pub audience: Option<String>,
}

/// Key-encryption keys: ids mapped to base64 AES-256 keys; `primary` seals new data.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysConfig {
    pub primary: String,
    pub keks: BTreeMap<String, SecretString>,
}

/// Durations in configuration are whole seconds (`drain_timeout = 15`) or humane
/// strings (`drain_timeout = "1m 30s"`).
pub mod humantime_secs {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, de::Error};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Secs(u64),
        Text(String),
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        match Raw::deserialize(d)? {
            Raw::Secs(secs) => Ok(Duration::from_secs(secs)),
            Raw::Text(text) => match text.trim().parse::<u64>() {
                Ok(secs) => Ok(Duration::from_secs(secs)),
                Err(_) => parse(&text).map_err(D::Error::custom),
            },
        }
    }

    /// Parses `"90s"`, `"1m 30s"`, `"2h"`, `"500ms"`, `"14d"`.
    pub fn parse(text: &str) -> Result<Duration, String> {
        let mut total = Duration::ZERO;
        let mut rest = text.trim();
        if rest.is_empty() {
            return Err("empty duration".to_owned());
        }
        while !rest.is_empty() {
            let digits = rest
                .find(|c: char| !c.is_ascii_digit())
                .unwrap_or(rest.len());
            if digits == 0 {
                return Err(format!("invalid duration {text:?}: expected a number"));
            }
            let value: u64 = rest[..digits]
                .parse()
                .map_err(|e| format!("{text:?}: {e}"))?;
            rest = rest[digits..].trim_start();
            let unit_len = rest
                .find(|c: char| !c.is_ascii_alphabetic())
                .unwrap_or(rest.len());
            let unit = &rest[..unit_len];
            rest = rest[unit_len..].trim_start();
            let one = match unit {
                "ms" => Duration::from_millis(1),
                "s" | "sec" | "secs" => Duration::from_secs(1),
                "m" | "min" | "mins" => Duration::from_secs(60),
                "h" | "hour" | "hours" => Duration::from_secs(3600),
                "d" | "day" | "days" => Duration::from_secs(86_400),
                _ => return Err(format!("invalid duration {text:?}: unknown unit {unit:?}")),
            };
            total += one * u32::try_from(value).map_err(|_| format!("{text:?} is too large"))?;
        }
        Ok(total)
    }

    #[cfg(test)]
    mod tests {
        use super::*;

        #[test]
        fn parses_compound_durations() {
            assert_eq!(parse("1m 30s"), Ok(Duration::from_secs(90)));
            assert_eq!(parse("500ms"), Ok(Duration::from_millis(500)));
            assert_eq!(parse("14d"), Ok(Duration::from_secs(14 * 86_400)));
        }

        #[test]
        fn rejects_garbage() {
            assert!(parse("").is_err());
            assert!(parse("ten seconds").is_err());
            assert!(parse("10 parsecs").is_err());
        }
    }
}

#[cfg(test)]
mod tests {
    use figment::providers::Serialized;
    use secrecy::ExposeSecret;

    use super::*;

    #[derive(Debug, Deserialize)]
    struct Sample {
        database: DatabaseConfig,
    }

    #[test]
    fn file_values_override_defaults() {
        let path = std::env::temp_dir().join(format!("stowage-config-{}.toml", std::process::id()));
        std::fs::write(&path, "[grpc]\nlisten = \"0.0.0.0:7000\"\n").unwrap();
        let common: Result<Common, _> = load(listen_defaults(1, 2), Some(&path));
        std::fs::remove_file(&path).unwrap();
        let common = common.unwrap();
        assert_eq!(common.grpc.listen.port(), 7000);
        assert_eq!(common.metrics.listen.map(|a| a.port()), Some(2));
        assert_eq!(common.log.format, LogFormat::Pretty);
    }

    #[test]
    fn a_missing_file_is_an_error() {
        let missing = std::path::Path::new("/nonexistent/stowage.toml");
        assert!(load::<Common>(listen_defaults(1, 2), Some(missing)).is_err());
    }

    #[test]
    fn secrets_do_not_print() {
        let sample: Sample = Figment::new()
            .merge(Serialized::default(
                "database.url",
                "postgres://u:hunter2@h/db",
            ))
            .extract()
            .expect("config");
        assert_eq!(
            sample.database.url.expose_secret(),
            "postgres://u:hunter2@h/db"
        );
        assert!(!format!("{sample:?}").contains("hunter2"));
    }
}
