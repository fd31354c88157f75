//! Server TLS for gRPC: the rustls configuration built from `[grpc] tls` (certificate
//! chain, key and, for mutual TLS, the client CA), re-read when the files change (checked
//! every `reload_interval`) or at once on SIGHUP, so a renewed certificate is served to new
//! connections without a restart. A reload that fails keeps the configuration in force.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, PoisonError, RwLock, Weak},
    time::Duration,
};

use rustls::{
    RootCertStore, ServerConfig,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::WebPkiClientVerifier,
};
use tokio_rustls::TlsAcceptor;

use crate::config::TlsConfig;

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("{}: no certificate in it", path.display())]
    NoCertificate { path: PathBuf },
    #[error("client CA {}: {message}", path.display())]
    ClientCa { path: PathBuf, message: String },
    #[error("certificate and key: {0}")]
    Rustls(#[from] rustls::Error),
}

/// The files' contents as last read, to tell a change from a repeat.
#[derive(PartialEq, Eq)]
struct Files {
    cert: Vec<u8>,
    key: Vec<u8>,
    client_ca: Option<Vec<u8>>,
}

impl Files {
    async fn read(config: &TlsConfig) -> Result<Self, TlsError> {
        Ok(Self {
            cert: read(&config.cert).await?,
            key: read(&config.key).await?,
            client_ca: match &config.client_ca {
                Some(path) => Some(read(path).await?),
                None => None,
            },
        })
    }
}

async fn read(path: &Path) -> Result<Vec<u8>, TlsError> {
    tokio::fs::read(path)
        .await
        .map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
}

struct Current {
    files: Files,
    server: Arc<ServerConfig>,
    /// The last contents refused, so a broken file is reported once, not every check.
    refused: Option<Files>,
}

/// The server's TLS configuration, swapped in place when its files change.
pub struct ServerTls {
    config: TlsConfig,
    current: RwLock<Current>,
}

impl ServerTls {
    /// Reads and checks the files, and starts watching them (and SIGHUP) for as long as
    /// the returned value lives.
    pub async fn load(config: &TlsConfig) -> Result<Arc<Self>, TlsError> {
        let files = Files::read(config).await?;
        let server = build(config, &files)?;
        let tls = Arc::new(Self {
            config: config.clone(),
            current: RwLock::new(Current {
                files,
                server,
                refused: None,
            }),
        });
        spawn_reloader(Arc::downgrade(&tls), config.reload_interval);
        Ok(tls)
    }

    /// An acceptor with the configuration in force now.
    pub fn acceptor(&self) -> TlsAcceptor {
        let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
        TlsAcceptor::from(current.server.clone())
    }

    /// Re-reads the files; whether a new configuration is now in force.
    async fn reload(&self) -> Result<bool, TlsError> {
        let files = Files::read(&self.config).await?;
        {
            let current = self.current.read().unwrap_or_else(PoisonError::into_inner);
            if current.files == files || current.refused.as_ref() == Some(&files) {
                return Ok(false);
            }
        }
        let built = build(&self.config, &files);
        let mut current = self.current.write().unwrap_or_else(PoisonError::into_inner);
        match built {
            Ok(server) => {
                current.server = server;
                current.files = files;
                current.refused = None;
                Ok(true)
            }
            Err(error) => {
                current.refused = Some(files);
                Err(error)
            }
        }
    }
}

fn build(config: &TlsConfig, files: &Files) -> Result<Arc<ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let pem = |path: &Path| {
        let path = path.to_owned();
        move |e: rustls::pki_types::pem::Error| TlsError::Pem {
            path,
            message: e.to_string(),
        }
    };
    let certs = CertificateDer::pem_slice_iter(&files.cert)
        .collect::<Result<Vec<_>, _>>()
        .map_err(pem(&config.cert))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: config.cert.clone(),
        });
    }
    let key = PrivateKeyDer::from_pem_slice(&files.key).map_err(pem(&config.key))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()?;
    let builder = match (&config.client_ca, &files.client_ca) {
        (Some(path), Some(ca)) => {
            let refused = |message: String| TlsError::ClientCa {
                path: path.clone(),
                message,
            };
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_slice_iter(ca) {
                roots.add(cert.map_err(pem(path))?)?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .map_err(|e| refused(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
        _ => builder.with_no_client_auth(),
    };
    let mut server = builder.with_single_cert(certs, key)?;
    server.alpn_protocols = vec![b"h2".to_vec()];
    Ok(Arc::new(server))
}

/// Checks the files every `interval` and on SIGHUP until `tls` is dropped.
fn spawn_reloader(tls: Weak<ServerTls>, interval: Duration) {
    tokio::spawn(async move {
        let mut hangup = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        {
            Ok(signal) => Some(signal),
            Err(error) => {
                tracing::warn!(%error, "cannot watch SIGHUP; TLS files are re-read on change only");
                None
            }
        };
        let mut ticks = tokio::time::interval(interval);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks.tick().await;
        loop {
            let signalled = async {
                let received = match &mut hangup {
                    Some(signal) => signal.recv().await.is_some(),
                    None => false,
                };
                if !received {
                    std::future::pending::<()>().await;
                }
            };
            let trigger = tokio::select! {
                _ = ticks.tick() => "change",
                () = signalled => "sighup",
            };
            let Some(tls) = tls.upgrade() else { break };
            match tls.reload().await {
                Ok(true) => tracing::info!(trigger, "reloaded the gRPC TLS certificate"),
                Ok(false) => tracing::debug!(trigger, "gRPC TLS files unchanged"),
                Err(error) => tracing::warn!(
                    trigger,
                    %error,
                    "cannot reload the gRPC TLS files; serving the previous certificate"
                ),
            }
        }
    });
}
