//! The operator guide, run as written: every command of `docs/operations.md` (grpcurl
//! 1.8.6 and jq, as an operator types them) against both services, in order, each
//! printing what the guide says it prints, errors included. The guide starts where an
//! organization has artifacts on its first binding and finished scan jobs. With
//! `STOWAGE_GUIDE_SHOW=1` the test prints what every command printed (to write the guide
//! by).

use std::time::Duration;

use stowage_integration::{guide, migration, scans, seaweedfs::TestPrefix, spawn_app};
use stowage_shared::auth::Role;

use super::tls::{Ca, Pem, server_tls, spawn_tls_app};

const GUIDE: &str = include_str!("../../../docs/operations.md");

#[tokio::test]
async fn every_command_of_the_operator_guide_prints_what_the_guide_says() {
    let tool = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: deploy/dev/test installs grpcurl and jq (ensure_guide_tools in deploy/dev/lib.sh)")
        })
    };
    let (grpcurl, jq) = (tool("STOWAGE_TEST_GRPCURL"), tool("STOWAGE_TEST_JQ"));
    let app = spawn_app().await.unwrap();
    let org_admin = app.token("acme", &[Role::OrgAdmin]);
    let super_admin = app.token("acme", &[Role::SuperAdmin]);

    let mut bindings = app.bindings(Some(&org_admin)).await;
    migration::create_active(&mut bindings, migration::memory_binding("first"))
        .await
        .unwrap();
    let mut artifacts = app.artifacts(Some(&org_admin)).await;
    for i in 0..6 {
        // two contracts among six documents, for the scoped dry run
        let (purpose, name) = match i {
            0 | 1 => ("contract", format!("contract-{i}.pdf")),
            _ => ("document", format!("report-{i}.pdf")),
        };
        let metadata = migration::metadata(purpose, &name);
        migration::put(&mut artifacts, metadata, &migration::content(i, 4096))
            .await
            .unwrap();
    }
    let client = app.db.client().await.unwrap();
    let job = scans::insert_job(&client, "acme", "COMPLETED", 40.0, 200, 200)
        .await
        .unwrap();
    scans::insert_job(&client, "acme", "COMPLETED", 60.0, 50, 50)
        .await
        .unwrap();
    let s3 = TestPrefix::create().unwrap();

    // the TLS section's services: mutual TLS, with a client certificate from the client CA
    let (server_ca, client_ca) = (Ca::new("stowage guide CA"), Ca::new("stowage clients CA"));
    let pem = Pem::dir();
    let tls_app = spawn_tls_app(&server_tls(&pem, &server_ca, Some(&client_ca))).await;
    let (client_cert, client_key) = client_ca.client("operator");
    let ca_file = pem.write("ca.pem", &server_ca.pem);
    let (cert_file, key_file) = (
        pem.write("operator.pem", &client_cert),
        pem.write("operator.key", &client_key),
    );

    let dir = std::env::temp_dir().join(format!("stowage-guide-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let tools = dir.join("bin");
    std::fs::create_dir_all(&tools).unwrap();
    std::os::unix::fs::symlink(&grpcurl, tools.join("grpcurl")).unwrap();
    std::os::unix::fs::symlink(&jq, tools.join("jq")).unwrap();
    let path = format!(
        "{}:{}",
        tools.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let env = [
        ("PATH", path),
        ("MIGRATION", app.migration_addr.to_string()),
        ("ARCHIVE", app.archive_addr.to_string()),
        ("TOKEN", org_admin),
        ("ADMIN_TOKEN", super_admin),
        ("S3_ENDPOINT", s3.server.endpoint.clone()),
        ("S3_BUCKET", s3.server.bucket.clone()),
        ("S3_PREFIX", s3.prefix.clone()),
        ("S3_KEY_ID", s3.server.access_key_id.clone()),
        ("S3_SECRET", s3.server.secret_access_key.clone()),
        ("JOB", job.to_string()),
        (
            "MIGRATION_TLS",
            format!("localhost:{}", tls_app.migration_addr.port()),
        ),
        ("CA", ca_file.display().to_string()),
        ("CLIENT_CERT", cert_file.display().to_string()),
        ("CLIENT_KEY", key_file.display().to_string()),
    ];

    let steps = guide::steps(GUIDE);
    assert!(steps.len() >= 20, "the guide has {} commands", steps.len());
    let ran = guide::run(&steps, &dir, &env, Duration::from_secs(240))
        .await
        .unwrap();
    if std::env::var_os("STOWAGE_GUIDE_SHOW").is_some() {
        for step in &ran {
            println!(
                "--- line {} (exit {}):\n{}",
                step.step.line, step.status, step.output
            );
        }
    }
    let wrong: Vec<String> = ran.iter().filter_map(guide::Ran::mismatch).collect();
    assert!(wrong.is_empty(), "{}", wrong.join("\n\n"));
    let _ = std::fs::remove_dir_all(&dir);
    tls_app.stop().await.unwrap();
    app.stop().await.unwrap();
}
