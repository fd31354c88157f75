//! gRPC over TLS and mutual TLS, with certificates made here: plaintext is refused, a
//! client without a certificate or with one from another CA is refused under mTLS, and
//! replaced certificate files are served to new connections without a restart (on change,
//! and at once on SIGHUP).

use std::{
    path::{Path, PathBuf},
    time::Duration,
};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use stowage_integration::{
    TestApp,
    process::{ServiceProcess, config_toml, free_port},
    spawn_app_configured,
};
use stowage_shared::config::TlsConfig;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity};
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

/// A certificate authority made for one test.
pub struct Ca {
    pub pem: String,
    issuer: Issuer<'static, KeyPair>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let pem = params.self_signed(&key).unwrap().pem();
        Self {
            pem,
            issuer: Issuer::new(params, key),
        }
    }

    /// A leaf certificate and its key (PEM) for `names`, for a server or a client.
    pub fn leaf(&self, names: &[&str], purpose: ExtendedKeyUsagePurpose) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let mut params = CertificateParams::new(names.clone()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, &names[0]);
        params.extended_key_usages = vec![purpose];
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        (cert.pem(), key.serialize_pem())
    }

    pub fn server(&self) -> (String, String) {
        self.leaf(
            &["localhost", "127.0.0.1"],
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub fn client(&self, name: &str) -> (String, String) {
        self.leaf(&[name], ExtendedKeyUsagePurpose::ClientAuth)
    }
}

/// A directory of PEM files for one test, removed with it.
pub struct Pem(PathBuf);

impl Pem {
    pub fn dir() -> Self {
        let dir = std::env::temp_dir().join(format!("stowage-tls-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        Self(dir)
    }

    /// Writes `contents` to `name` by a rename, so a reader never sees half a file.
    pub fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.0.join(name);
        let partial = self.0.join(format!(".{name}.partial"));
        std::fs::write(&partial, contents).unwrap();
        std::fs::rename(&partial, &path).unwrap();
        path
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Pem {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Server files from `ca` (and `client_ca`, for mTLS) written to `pem`.
pub fn server_tls(pem: &Pem, ca: &Ca, client_ca: Option<&Ca>) -> TlsConfig {
    let (cert, key) = ca.server();
    TlsConfig::new(
        pem.write("server.pem", &cert),
        pem.write("server.key", &key),
        client_ca.map(|ca| pem.write("client-ca.pem", &ca.pem)),
    )
}

/// Both services over `tls`.
pub async fn spawn_tls_app(tls: &TlsConfig) -> TestApp {
    spawn_app_configured(|c| {
        c.migration.common.grpc.tls = Some(tls.clone());
        c.archive.common.grpc.tls = Some(tls.clone());
    })
    .await
    .unwrap()
}

fn endpoint(port: u16, trusted: &Ca, identity: Option<&(String, String)>) -> Endpoint {
    let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(&trusted.pem));
    if let Some((cert, key)) = identity {
        tls = tls.identity(Identity::from_pem(cert, key));
    }
    Endpoint::from_shared(format!("https://127.0.0.1:{port}"))
        .unwrap()
        .tls_config(tls)
        .unwrap()
}

/// A health check on a new connection through `endpoint`.
async fn health(endpoint: Endpoint) -> Result<(), String> {
    let call = async {
        let channel = endpoint
            .connect_timeout(Duration::from_secs(5))
            .connect()
            .await
            .map_err(|e| format!("connect: {e:?}"))?;
        HealthClient::new(channel)
            .check(HealthCheckRequest::default())
            .await
            .map_err(|status| format!("call: {status}"))?;
        Ok(())
    };
    tokio::time::timeout(Duration::from_secs(10), call)
        .await
        .map_err(|_| "timed out".to_owned())?
}

/// Polls until a new connection through `endpoint` is served, for up to 20 s.
async fn eventually_served(endpoint: impl Fn() -> Endpoint) -> Result<(), String> {
    let mut last = String::new();
    for _ in 0..100 {
        match health(endpoint()).await {
            Ok(()) => return Ok(()),
            Err(error) => last = error,
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(last)
}

#[tokio::test]
async fn with_tls_on_a_plaintext_client_is_refused_and_a_client_trusting_the_ca_is_served() {
    let (ca, pem) = (Ca::new("stowage test ca"), Pem::dir());
    let app = spawn_tls_app(&server_tls(&pem, &ca, None)).await;
    let port = app.migration_addr.port();

    health(endpoint(port, &ca, None)).await.unwrap();
    let plaintext =
        health(Endpoint::from_shared(format!("http://127.0.0.1:{port}")).unwrap()).await;
    assert!(plaintext.is_err(), "plaintext was served");
    let untrusted = health(endpoint(port, &Ca::new("another ca"), None)).await;
    assert!(untrusted.is_err(), "a client trusting another CA connected");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn under_mtls_only_a_client_with_a_certificate_from_the_client_ca_is_served() {
    let (ca, clients, pem) = (Ca::new("server ca"), Ca::new("client ca"), Pem::dir());
    let app = spawn_tls_app(&server_tls(&pem, &ca, Some(&clients))).await;
    let port = app.migration_addr.port();

    health(endpoint(port, &ca, Some(&clients.client("dashboard"))))
        .await
        .unwrap();
    let anonymous = health(endpoint(port, &ca, None)).await;
    assert!(
        anonymous.is_err(),
        "a client without a certificate was served"
    );
    let stranger = Ca::new("another client ca").client("dashboard");
    let foreign = health(endpoint(port, &ca, Some(&stranger))).await;
    assert!(foreign.is_err(), "a certificate from another CA was served");
    // the server's own CA is not the client CA either
    let wrong_ca = health(endpoint(port, &ca, Some(&ca.client("dashboard")))).await;
    assert!(
        wrong_ca.is_err(),
        "a certificate from the server CA was served"
    );
    app.stop().await.unwrap();
}

fn replace_certificate(pem: &Pem, ca: &Ca) {
    let (cert, key) = ca.server();
    // key first, then the certificate: a check in between sees a pair that does not
    // match, refuses it and keeps serving the old one
    pem.write("server.key", &key);
    pem.write("server.pem", &cert);
}

#[tokio::test]
async fn replaced_certificate_files_are_served_to_new_connections_without_a_restart() {
    let (old, new, pem) = (Ca::new("old ca"), Ca::new("new ca"), Pem::dir());
    let mut tls = server_tls(&pem, &old, None);
    tls.reload_interval = Duration::from_millis(200);
    let app = spawn_tls_app(&tls).await;
    let port = app.migration_addr.port();
    health(endpoint(port, &old, None)).await.unwrap();
    // an open connection keeps working across the change
    let open = endpoint(port, &old, None).connect().await.unwrap();

    replace_certificate(&pem, &new);
    eventually_served(|| endpoint(port, &new, None))
        .await
        .unwrap();
    assert!(health(endpoint(port, &old, None)).await.is_err());
    HealthClient::new(open)
        .check(HealthCheckRequest::default())
        .await
        .unwrap();

    // broken files are refused and the certificate in force stays
    std::fs::write(pem.path("server.pem"), "not a certificate").unwrap();
    tokio::time::sleep(Duration::from_millis(600)).await;
    health(endpoint(port, &new, None)).await.unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn sighup_makes_a_running_binary_serve_replaced_certificate_files_at_once() {
    let (old, new, pem) = (Ca::new("old ca"), Ca::new("new ca"), Pem::dir());
    let tls = server_tls(&pem, &old, None);
    let db = stowage_integration::db::TestDb::migrated().await.unwrap();
    let common = stowage_integration::app::test_common(&db).unwrap();
    let port = free_port().unwrap();
    // checked for changes only hourly: only the signal explains a reload
    let extra = format!(
        "[grpc.tls]\ncert = {:?}\nkey = {:?}\nreload_interval = \"1h\"\n",
        tls.cert.display().to_string(),
        tls.key.display().to_string(),
    );
    let config = config_toml(&common, port, &extra).unwrap();
    let process =
        ServiceProcess::start_reached("migration-svc", &config, port, endpoint(port, &old, None))
            .await
            .unwrap();

    replace_certificate(&pem, &new);
    tokio::time::sleep(Duration::from_millis(300)).await;
    health(endpoint(port, &old, None)).await.unwrap();
    process.signal("HUP").unwrap();
    eventually_served(|| endpoint(port, &new, None))
        .await
        .unwrap();
    assert!(health(endpoint(port, &old, None)).await.is_err());
    process.kill().await.unwrap();
}

/// The files a CLI needs to reach a server under mTLS: `--ca`, `--cert`, `--key`.
pub fn client_files(pem: &Pem, ca: &Ca, clients: &Ca) -> [PathBuf; 3] {
    let (cert, key) = clients.client("cli");
    [
        pem.write("ca.pem", &ca.pem),
        pem.write("cli.pem", &cert),
        pem.write("cli.key", &key),
    ]
}

pub fn tls_args(files: &[PathBuf; 3]) -> Vec<String> {
    let arg = |p: &Path| p.display().to_string();
    vec![
        "--ca".into(),
        arg(&files[0]),
        "--cert".into(),
        arg(&files[1]),
        "--key".into(),
        arg(&files[2]),
    ]
}

#[tokio::test]
async fn a_connection_that_never_starts_the_tls_handshake_is_closed_after_the_handshake_timeout() {
    use tokio::io::AsyncReadExt;

    let (ca, pem) = (Ca::new("stowage test ca"), Pem::dir());
    let tls = server_tls(&pem, &ca, None);
    let app = spawn_app_configured(|c| {
        for common in [&mut c.migration.common, &mut c.archive.common] {
            common.grpc.tls = Some(tls.clone());
            common.grpc.handshake_timeout = Duration::from_millis(500);
        }
    })
    .await
    .unwrap();
    let mut idle = tokio::net::TcpStream::connect(app.migration_addr)
        .await
        .unwrap();
    let start = std::time::Instant::now();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut [0u8; 64])).await;
    assert!(
        matches!(read, Ok(Ok(0) | Err(_))),
        "still open after 5 s: {read:?}"
    );
    assert!(
        start.elapsed() >= Duration::from_millis(400),
        "{:?}",
        start.elapsed()
    );
    // a client that finishes the handshake is served
    health(endpoint(app.migration_addr.port(), &ca, None))
        .await
        .unwrap();
    app.stop().await.unwrap();
}
