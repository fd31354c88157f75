//! The command line as scripts use it: `run start` and `run watch` exit with the run's
//! end state, `--server` takes `host:port` without a scheme, and `--ca`, `--cert` and
//! `--key` reach a server under mutual TLS.

use std::{process::Output, time::Duration};

use stowage_integration::{
    TestApp,
    app::BearerToken,
    migration::{self, memory_binding},
    process::workspace_binary,
    scans, spawn_app,
};
use stowage_proto::migration::v1::binding_service_client::BindingServiceClient;
use stowage_shared::auth::Role;

use crate::tls::{Ca, Pem, client_files, server_tls, spawn_tls_app, tls_args};

/// Runs `binary args` with stdout and stderr piped (not a terminal), no configuration
/// from the environment, for up to 60 s.
async fn command(binary: &str, args: &[String]) -> Output {
    let run = tokio::process::Command::new(workspace_binary(binary).unwrap())
        .args(args)
        .env_remove("STOWAGE_CONFIG")
        .env_remove("STOWAGE_SERVER")
        .env_remove("STOWAGE_TOKEN")
        .env_remove("STOWAGE_CA")
        .env_remove("STOWAGE_CLIENT_CERT")
        .env_remove("STOWAGE_CLIENT_KEY")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the command ends")
        .expect("the command runs")
}

fn args(list: &[&str]) -> Vec<String> {
    list.iter().map(|a| (*a).to_owned()).collect()
}

async fn migration_cli(app: &TestApp, token: &str, args: &[&str]) -> Output {
    let server = app.migration_addr.to_string();
    let run = tokio::process::Command::new(workspace_binary("migration-svc").unwrap())
        .arg("run")
        .args(args)
        .args(["--server", &server, "--token", token])
        .env_remove("STOWAGE_CONFIG")
        .env_remove("STOWAGE_SERVER")
        .env_remove("STOWAGE_TOKEN")
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the command ends")
        .expect("the command runs")
}

#[tokio::test]
async fn run_start_and_run_watch_exit_non_zero_when_the_run_fails() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let active = migration::create_active(&mut bindings, memory_binding("t"))
        .await
        .unwrap();
    // Not the active binding: the run fails at planning.
    let pending = migration::create(&mut bindings, memory_binding("p"))
        .await
        .unwrap();

    let failed = migration_cli(
        &app,
        &token,
        &[
            "start",
            "--target",
            &pending.id,
            "--mode",
            "dry-run",
            "--reason",
            "sizing",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&failed.stderr);
    assert_eq!(failed.status.code(), Some(4), "{stderr}");
    let stdout = String::from_utf8_lossy(&failed.stdout);
    let run_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("run "))
        .map(str::trim)
        .expect("the run is printed")
        .to_owned();
    let watched = migration_cli(&app, &token, &["watch", "--run", &run_id]).await;
    assert_eq!(
        watched.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&watched.stderr)
    );

    let completed = migration_cli(
        &app,
        &token,
        &[
            "start", "--target", &active.id, "--mode", "dry-run", "--reason", "sizing",
        ],
    )
    .await;
    assert_eq!(
        completed.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&completed.stderr)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn client_subcommands_reach_a_server_under_mtls_with_ca_cert_and_key() {
    let (ca, clients, pem) = (Ca::new("server ca"), Ca::new("client ca"), Pem::dir());
    let app = spawn_tls_app(&server_tls(&pem, &ca, Some(&clients))).await;
    let files = client_files(&pem, &ca, &clients);
    let (cert, key) = clients.client("test");
    let channel =
        tonic::transport::Endpoint::from_shared(format!("https://{}", app.migration_addr))
            .unwrap()
            .tls_config(
                tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&ca.pem))
                    .identity(tonic::transport::Identity::from_pem(cert, key)),
            )
            .unwrap()
            .connect()
            .await
            .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings =
        BindingServiceClient::with_interceptor(channel, BearerToken::new(Some(&token)));
    let active = migration::create_active(&mut bindings, memory_binding("t"))
        .await
        .unwrap();

    let migration_server = app.migration_addr.to_string();
    let start = [
        args(&["run", "start", "--target", &active.id, "--mode", "dry-run"]),
        args(&[
            "--reason",
            "sizing",
            "--server",
            &migration_server,
            "--token",
            &token,
        ]),
    ]
    .concat();
    let refused = command("migration-svc", &start).await;
    assert_eq!(
        refused.status.code(),
        Some(1),
        "plaintext reached a TLS server"
    );
    let started = command("migration-svc", &[start.clone(), tls_args(&files)].concat()).await;
    let stderr = String::from_utf8_lossy(&started.stderr);
    assert_eq!(started.status.code(), Some(0), "{stderr}");
    let stdout = String::from_utf8_lossy(&started.stdout);
    let run_id = stdout
        .lines()
        .find_map(|line| line.strip_prefix("run "))
        .map(str::trim)
        .expect("the run is printed")
        .to_owned();
    let get = [
        args(&["run", "get", "--run", &run_id, "--server"]),
        args(&[&format!("https://localhost:{}", app.migration_addr.port())]),
        args(&["--token", &token]),
        tls_args(&files),
    ]
    .concat();
    let got = command("migration-svc", &get).await;
    assert_eq!(
        got.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );

    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 30, 10)
        .await
        .unwrap()
        .to_string();
    let archive_server = app.archive_addr.to_string();
    for (subcommand, role) in [("archive", Role::SuperAdmin), ("restore", Role::Member)] {
        let token = app.token("acme", &[role]);
        let run = [
            args(&[subcommand, "--job", &job, "--server", &archive_server]),
            args(&["--token", &token]),
            tls_args(&files),
        ]
        .concat();
        let output = command("archive-svc", &run).await;
        assert_eq!(
            output.status.code(),
            Some(0),
            "{subcommand}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    app.stop().await.unwrap();
}
