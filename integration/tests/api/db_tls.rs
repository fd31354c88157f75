//! TLS to PostgreSQL: each libpq `sslmode` against a private cluster with `ssl = on` and a
//! certificate made here, a certificate from another CA refused at startup, and
//! `sslmode=disable` against the usual server.

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use secrecy::SecretString;
use stowage_integration::{
    app::test_common,
    db::TestDb,
    pg_cluster::{PgCluster, ServerTls},
    spawn_app_configured,
};
use stowage_shared::startup::ServiceBinary;
use stowage_shared::{
    config::DatabaseConfig,
    db::{self, DbError},
};

struct Ca {
    pem: String,
    issuer: Issuer<'static, KeyPair>,
}

fn ca(name: &str) -> Ca {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let pem = params.self_signed(&key).unwrap().pem();
    Ca {
        pem,
        issuer: Issuer::new(params, key),
    }
}

/// A server certificate for `localhost` only, signed by `ca`.
fn server_tls(ca: &Ca) -> ServerTls {
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    let cert = params.signed_by(&key, &ca.issuer).unwrap();
    ServerTls {
        cert_pem: cert.pem(),
        key_pem: key.serialize_pem(),
    }
}

/// A cluster with `ssl = on` and a certificate from `ca`, or `None` (with a message) when
/// this machine has no `initdb`.
fn tls_cluster(ca: &Ca) -> Option<PgCluster> {
    let cluster = PgCluster::start(Some(&server_tls(ca))).unwrap();
    if cluster.is_none() {
        eprintln!(
            "skipping: no initdb/pg_ctl on PATH or under /usr/lib/postgresql \
             (apt-get install postgresql) to start a TLS cluster with"
        );
    }
    cluster
}

fn config(url: String) -> DatabaseConfig {
    DatabaseConfig {
        url: SecretString::from(url),
        ..DatabaseConfig::default()
    }
}

/// Whether a connection made with `config` is encrypted, as the server sees it.
async fn connects_over_tls(config: &DatabaseConfig) -> Result<bool, DbError> {
    let pool = db::connect(config).await?;
    let client = pool.get().await?;
    let row = client
        .query_one(
            "select ssl from pg_stat_ssl where pid = pg_backend_pid()",
            &[],
        )
        .await?;
    Ok(row.get(0))
}

#[tokio::test]
async fn verify_full_connects_over_tls_to_a_server_whose_certificate_the_ca_signed() {
    let ca = ca("stowage test ca");
    let Some(cluster) = tls_cluster(&ca) else {
        return;
    };
    let ca_file = cluster.write_file("ca.pem", &ca.pem).unwrap();
    let root = format!("sslrootcert={}", ca_file.display());
    // the certificate names localhost; hostaddr says where localhost is
    let by_name =
        |query: &str| config(cluster.url("localhost", &format!("hostaddr=127.0.0.1&{query}")));
    let by_ip = |query: &str| config(cluster.url("127.0.0.1", query));

    assert!(
        connects_over_tls(&by_name(&format!("sslmode=verify-full&{root}")))
            .await
            .unwrap()
    );
    let mut with_ca_file = by_name("sslmode=verify-full");
    with_ca_file.ca_file = Some(ca_file.clone());
    assert!(connects_over_tls(&with_ca_file).await.unwrap());
    // verify-ca checks the chain but not the name
    assert!(
        connects_over_tls(&by_ip(&format!("sslmode=verify-ca&{root}")))
            .await
            .unwrap()
    );
    let error = connects_over_tls(&by_ip(&format!("sslmode=verify-full&{root}")))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(error.contains("not valid for name"), "{error}");
    // encrypted without checks, as libpq does
    assert!(connects_over_tls(&by_ip("sslmode=require")).await.unwrap());
    assert!(connects_over_tls(&by_ip("sslmode=prefer")).await.unwrap());
    assert!(connects_over_tls(&by_ip("")).await.unwrap());
    assert!(!connects_over_tls(&by_ip("sslmode=disable")).await.unwrap());
}

#[tokio::test]
async fn a_server_certificate_from_another_ca_stops_startup_with_an_error_naming_tls() {
    let server_ca = ca("the server's ca");
    let Some(cluster) = tls_cluster(&server_ca) else {
        return;
    };
    let other = cluster
        .write_file("other-ca.pem", &ca("another ca").pem)
        .unwrap();
    let test_db = TestDb::empty().await.unwrap();
    let mut common = test_common(&test_db).unwrap();
    common.database = config(cluster.url(
        "localhost",
        &format!(
            "hostaddr=127.0.0.1&sslmode=verify-full&sslrootcert={}",
            other.display()
        ),
    ));

    let error = migration_svc::startup::App::build(migration_svc::config::Config {
        common: common.clone(),
        migration: Default::default(),
    })
    .await
    .err()
    .expect("startup refuses the server's certificate")
    .to_string();
    assert!(error.contains("TLS handshake failed"), "{error}");
    assert!(error.contains("UnknownIssuer"), "{error}");
    assert!(error.contains("sslmode=verify-full"), "{error}");
    assert!(
        error.contains(&format!("localhost:{}/postgres", cluster.port)),
        "{error}"
    );

    // require with a root certificate checks the chain too (libpq's rule), and so does verify-ca
    for mode in ["require", "verify-ca"] {
        let mut database = config(cluster.url("127.0.0.1", &format!("sslmode={mode}")));
        database.ca_file = Some(other.clone());
        let error = connects_over_tls(&database).await.unwrap_err().to_string();
        assert!(error.contains("UnknownIssuer"), "{mode}: {error}");
    }
}

#[tokio::test]
async fn sslmode_disable_still_connects_to_the_usual_server_in_plaintext() {
    let test_db = TestDb::migrated().await.unwrap();
    let separator = if test_db.url.contains('?') { '&' } else { '?' };
    let url = format!("{}{separator}sslmode=disable", test_db.url);
    assert!(!connects_over_tls(&config(url.clone())).await.unwrap());

    let app = spawn_app_configured(|configs| {
        configs.migration.common.database.url = SecretString::from(url.clone());
        configs.archive.common.database.url = SecretString::from(url.clone());
    })
    .await
    .unwrap();
    let token = app.token("org-a", &[stowage_shared::auth::Role::Member]);
    app.bindings(Some(&token))
        .await
        .list_bindings(stowage_proto::migration::v1::ListBindingsRequest::default())
        .await
        .unwrap();
    app.stop().await.unwrap();
}
