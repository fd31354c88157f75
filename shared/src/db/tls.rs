//! TLS to PostgreSQL: libpq's `sslmode` and `sslrootcert` read from the database URL (or
//! `[database] ca_file`), and the rustls connector (aws-lc-rs) that each mode calls for.
//! tokio-postgres itself knows only `disable`, `prefer` and `require`; the verifying modes
//! are `require` on the wire plus the certificate checks chosen here.

use std::{fmt, path::Path, sync::Arc};

use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme,
    client::{
        WebPkiServerVerifier,
        danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier},
    },
    crypto::WebPkiSupportedAlgorithms,
    pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject},
};
use tokio_postgres_rustls::MakeRustlsConnect;

use super::DbError;

/// libpq's `sslmode`; `prefer` when the URL names none, as with libpq.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum SslMode {
    /// Plaintext only.
    Disable,
    /// TLS when the server offers it, else plaintext; the certificate is not checked.
    #[default]
    Prefer,
    /// TLS or no connection; the certificate is checked against a root certificate only
    /// when one is configured (libpq's rule).
    Require,
    /// TLS with a certificate chain to the root certificate; any host name.
    VerifyCa,
    /// TLS with a certificate chain to the root certificate, issued for the host.
    VerifyFull,
}

impl SslMode {
    fn parse(value: &str) -> Result<Self, DbError> {
        Ok(match value {
            "disable" => Self::Disable,
            "prefer" => Self::Prefer,
            "require" => Self::Require,
            "verify-ca" => Self::VerifyCa,
            "verify-full" => Self::VerifyFull,
            other => {
                return Err(DbError::Config(format!(
                    "database.url: sslmode {other:?} is not one of disable, prefer, require, \
                     verify-ca, verify-full"
                )));
            }
        })
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Disable => "disable",
            Self::Prefer => "prefer",
            Self::Require => "require",
            Self::VerifyCa => "verify-ca",
            Self::VerifyFull => "verify-full",
        }
    }

    /// The mode tokio-postgres negotiates with.
    fn wire(self) -> tokio_postgres::config::SslMode {
        use tokio_postgres::config::SslMode as Wire;
        match self {
            Self::Disable => Wire::Disable,
            Self::Prefer => Wire::Prefer,
            Self::Require | Self::VerifyCa | Self::VerifyFull => Wire::Require,
        }
    }
}

impl fmt::Display for SslMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where the certificates that may sign the server's come from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RootCert {
    /// A PEM file of one or more certificates.
    File(String),
    /// The operating system's trust store (`sslrootcert=system`, and the verifying modes'
    /// default when nothing is configured).
    System,
}

/// A database URL split into what tokio-postgres parses and what this module handles.
#[derive(Debug)]
pub struct Target {
    pub config: tokio_postgres::Config,
    pub mode: SslMode,
    pub root: Option<RootCert>,
}

impl Target {
    /// Reads `url` (a `postgres://` URL or libpq `key=value` pairs); `sslrootcert` in it
    /// wins over `ca_file`.
    pub fn parse(url: &str, ca_file: Option<&Path>) -> Result<Self, DbError> {
        let (rest, mode, root) = take_tls_params(url)?;
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e: tokio_postgres::Error| DbError::Config(format!("database.url: {e}")))?;
        let mode = mode.unwrap_or_default();
        config.ssl_mode(mode.wire());
        let root = root.or_else(|| ca_file.map(|p| RootCert::File(p.display().to_string())));
        Ok(Self { config, mode, root })
    }

    /// `host:port/database` for messages (never the password).
    pub fn server(&self) -> String {
        let hosts: Vec<String> = self
            .config
            .get_hosts()
            .iter()
            .map(|host| match host {
                tokio_postgres::config::Host::Tcp(name) => name.clone(),
                tokio_postgres::config::Host::Unix(path) => path.display().to_string(),
            })
            .collect();
        let port = self.config.get_ports().first().copied().unwrap_or(5432);
        format!(
            "{}:{port}/{}",
            hosts.join(","),
            self.config.get_dbname().unwrap_or("")
        )
    }

    /// The connector for this mode. `disable` never calls it, but the pool's type needs one.
    pub fn connector(&self) -> Result<MakeRustlsConnect, DbError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let verify = match (self.mode, &self.root) {
            (SslMode::Disable | SslMode::Prefer, _) | (SslMode::Require, None) => None,
            (SslMode::Require | SslMode::VerifyCa, root) => Some((false, root)),
            (SslMode::VerifyFull, root) => Some((true, root)),
        };
        let algorithms = provider.signature_verification_algorithms;
        let verifier: Arc<dyn ServerCertVerifier> = match verify {
            None => Arc::new(Lenient {
                chain: None,
                algorithms,
            }),
            Some((check_name, root)) => {
                let roots = load_roots(root.as_ref().unwrap_or(&RootCert::System))?;
                let webpki =
                    WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                        .build()
                        .map_err(|e| DbError::Tls(format!("root certificates: {e}")))?;
                if check_name {
                    webpki
                } else {
                    Arc::new(Lenient {
                        chain: Some(webpki),
                        algorithms,
                    })
                }
            }
        };
        let config = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| DbError::Tls(e.to_string()))?
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth();
        Ok(MakeRustlsConnect::new(config))
    }
}

/// Removes `sslmode` and `sslrootcert` from `url`, returning the rest and their values.
fn take_tls_params(url: &str) -> Result<(String, Option<SslMode>, Option<RootCert>), DbError> {
    let mut mode = None;
    let mut root = None;
    let mut take = |key: &str, value: &str| -> Result<bool, DbError> {
        match key {
            "sslmode" => mode = Some(SslMode::parse(value)?),
            "sslrootcert" if value == "system" => root = Some(RootCert::System),
            "sslrootcert" => root = Some(RootCert::File(value.to_owned())),
            _ => return Ok(false),
        }
        Ok(true)
    };
    let rest = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        match url.split_once('?') {
            None => url.to_owned(),
            Some((base, query)) => {
                let mut kept = Vec::new();
                for pair in query.split('&').filter(|p| !p.is_empty()) {
                    let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                    if !take(key, &percent_decode(value))? {
                        kept.push(pair);
                    }
                }
                if kept.is_empty() {
                    base.to_owned()
                } else {
                    format!("{base}?{}", kept.join("&"))
                }
            }
        }
    } else {
        let mut kept = Vec::new();
        for pair in url.split_whitespace() {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            if !take(key, value.trim_matches('\''))? {
                kept.push(pair);
            }
        }
        kept.join(" ")
    };
    Ok((rest, mode, root))
}

/// `%XX` escapes decoded (a path in a URL query may carry them); anything malformed is
/// kept as written.
fn percent_decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                out.push((hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0)) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn load_roots(root: &RootCert) -> Result<RootCertStore, DbError> {
    let mut store = RootCertStore::empty();
    match root {
        RootCert::File(path) => {
            let certs = CertificateDer::pem_file_iter(path)
                .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
                .map_err(|e| DbError::Tls(format!("cannot read root certificate {path}: {e}")))?;
            let (added, _) = store.add_parsable_certificates(certs);
            if added == 0 {
                return Err(DbError::Tls(format!(
                    "root certificate file {path} holds no usable certificate"
                )));
            }
        }
        RootCert::System => {
            let loaded = rustls_native_certs::load_native_certs();
            let (added, _) = store.add_parsable_certificates(loaded.certs);
            if added == 0 {
                return Err(DbError::Tls(format!(
                    "no root certificate in the system trust store ({} errors); set \
                     sslrootcert in database.url or database.ca_file",
                    loaded.errors.len()
                )));
            }
        }
    }
    Ok(store)
}

/// What libpq checks short of `verify-full`. With a chain verifier (`verify-ca`, and
/// `require` given a root certificate) the chain must lead to a trusted root, the one
/// given or else the system's, and the name in it may be any. Without one (`prefer`, and
/// `require` with no root) the connection is encrypted and the peer unchecked. The
/// handshake's signatures are verified either way.
#[derive(Debug)]
struct Lenient {
    chain: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for Lenient {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(chain) = &self.chain else {
            return Ok(ServerCertVerified::assertion());
        };
        // webpki checks the chain before the name, so a name error means a good chain.
        match chain.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The rustls error somewhere under `error`, if a TLS failure caused it.
pub(crate) fn tls_cause(error: &(dyn std::error::Error + 'static)) -> Option<String> {
    let mut next = Some(error);
    while let Some(e) = next {
        if let Some(tls) = e.downcast_ref::<rustls::Error>() {
            return Some(tls.to_string());
        }
        // io::Error's source() skips the error it wraps; look at that one too.
        if let Some(tls) = e
            .downcast_ref::<std::io::Error>()
            .and_then(|io| io.get_ref())
            .and_then(|inner| inner.downcast_ref::<rustls::Error>())
        {
            return Some(tls.to_string());
        }
        next = e.source();
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(url: &str) -> Target {
        Target::parse(url, None).expect("valid url")
    }

    #[test]
    fn no_sslmode_means_prefer_as_with_libpq() {
        let target = parse("postgres://u@h:5433/db");
        assert_eq!(target.mode, SslMode::Prefer);
        assert_eq!(target.root, None);
        assert_eq!(target.server(), "h:5433/db");
    }

    #[test]
    fn every_libpq_sslmode_is_read_and_removed_from_the_url() {
        for (value, mode) in [
            ("disable", SslMode::Disable),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let target = parse(&format!(
                "postgresql://u:p@h/db?application_name=x&sslmode={value}"
            ));
            assert_eq!(target.mode, mode);
            assert_eq!(target.config.get_application_name(), Some("x"));
            assert_eq!(target.config.get_ssl_mode(), mode.wire());
        }
    }

    #[test]
    fn an_unknown_sslmode_is_a_configuration_error_naming_the_choices() {
        let error = Target::parse("postgres://h/db?sslmode=allow", None).unwrap_err();
        assert!(error.to_string().contains("verify-full"), "{error}");
    }

    #[test]
    fn sslrootcert_in_the_url_wins_over_ca_file() {
        let target = Target::parse(
            "postgres://h/db?sslrootcert=%2Fetc%2Fpg%2Froot.crt&sslmode=verify-full",
            Some(Path::new("/other.pem")),
        )
        .expect("valid");
        assert_eq!(target.root, Some(RootCert::File("/etc/pg/root.crt".into())));
        let target = Target::parse("postgres://h/db", Some(Path::new("/ca.pem"))).expect("valid");
        assert_eq!(target.root, Some(RootCert::File("/ca.pem".into())));
        assert_eq!(
            parse("postgres://h/db?sslrootcert=system").root,
            Some(RootCert::System)
        );
    }

    #[test]
    fn key_value_urls_are_read_too() {
        let target = parse("host=h port=5433 dbname=db sslmode=verify-ca sslrootcert=/ca.pem");
        assert_eq!(target.mode, SslMode::VerifyCa);
        assert_eq!(target.root, Some(RootCert::File("/ca.pem".into())));
        assert_eq!(target.server(), "h:5433/db");
    }

    #[test]
    fn a_missing_root_certificate_file_is_named() {
        let target = parse("postgres://h/db?sslmode=verify-full&sslrootcert=/nonexistent.pem");
        let error = target.connector().err().expect("no such file");
        assert!(error.to_string().contains("/nonexistent.pem"), "{error}");
    }
}
