//! The command line as scripts use it: `run start` and `run watch` exit with the run's
//! end state, and `--server` takes `host:port` without a scheme.

use std::{process::Output, time::Duration};

use stowage_integration::{
    TestApp,
    migration::{self, memory_binding},
    process::workspace_binary,
    spawn_app,
};
use stowage_shared::auth::Role;

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
