//! The command line as scripts use it: `run start` and `run watch` exit with the run's
//! end state, `--server` takes `host:port` without a scheme, and `--ca`, `--cert` and
//! `--key` reach a server under mutual TLS.

use std::{process::Output, time::Duration};

use stowage_integration::{
    TestApp,
    app::BearerToken,
    migration::{self, memory_binding},
    process::workspace_binary,
    scans, spawn_app, spawn_app_and_db,
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
    migration_cli_at(&app.migration_addr.to_string(), token, args).await
}

async fn migration_cli_at(server: &str, token: &str, args: &[&str]) -> Output {
    let run = tokio::process::Command::new(workspace_binary("migration-svc").unwrap())
        .arg("run")
        .args(args)
        .args(["--server", server, "--token", token])
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
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
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
    let run_id = printed_run(&failed, 4);
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
async fn client_subcommands_reach_a_server_under_mtls_with_ca_cert_and_key_from_flags_or_config() {
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
    let run_id = printed_run(&started, 0);
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
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archive = [
        args(&["archive", "--job", &job, "--server", &archive_server]),
        args(&["--token", &admin]),
        tls_args(&files),
    ]
    .concat();
    let archived = command("archive-svc", &archive).await;
    let stderr = String::from_utf8_lossy(&archived.stderr);
    assert_eq!(archived.status.code(), Some(0), "{stderr}");
    // the same from the configuration's [client] section
    let [ca, cert, key] = &files;
    let config = pem.write(
        "client.toml",
        &format!(
            "[client]\nserver = {:?}\nca = {:?}\ncert = {:?}\nkey = {:?}\n",
            archive_server,
            ca.display().to_string(),
            cert.display().to_string(),
            key.display().to_string()
        ),
    );
    let member = app.token("acme", &[Role::Member]);
    let restore = [
        args(&["--config", &config.display().to_string()]),
        args(&["restore", "--job", &job, "--token", &member]),
    ]
    .concat();
    let restored = command("archive-svc", &restore).await;
    let stderr = String::from_utf8_lossy(&restored.stderr);
    assert_eq!(restored.status.code(), Some(0), "{stderr}");
    app.stop().await.unwrap();
}

/// The run id a `run start` that exited with `code` printed (`run <id>`).
fn printed_run(output: &Output, code: i32) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(code), "{stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .find_map(|line| line.strip_prefix("run "))
        .map(|id| id.trim().to_owned())
        .expect("the run is printed")
}

/// stdout's last line.
fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_owned()
}

/// stdout as exactly one JSON object.
fn json(output: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(stdout.lines().count(), 1, "one line of JSON: {stdout}");
    serde_json::from_str(&stdout).expect("stdout is JSON")
}

#[tokio::test]
async fn run_subcommands_end_with_a_summary_line_when_piped_and_print_one_json_object_with_output_json()
 {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let active = migration::create_active(&mut bindings, memory_binding("t"))
        .await
        .unwrap();
    let start = ["start", "--target", &active.id, "--mode", "dry-run"];
    let start = [&start[..], &["--reason", "sizing"]].concat();

    let text = migration_cli(&app, &token, &start).await;
    assert_eq!(text.status.code(), Some(0));
    let summary = last_line(&text);
    assert!(summary.starts_with("run "), "{summary}");
    assert!(
        summary.contains(" completed: 0 migrated, 0 skipped, 0 failed; 0 of 0 bytes"),
        "{summary}"
    );
    assert!(
        !String::from_utf8_lossy(&text.stderr).contains('['),
        "no progress bar off a terminal"
    );

    let run =
        json(&migration_cli(&app, &token, &[&start[..], &["--output", "json"]].concat()).await);
    assert_eq!(run["state"], "COMPLETED");
    assert_eq!(run["mode"], "DRY_RUN");
    assert_eq!(run["exit_code"], 0);
    let id = run["id"].as_str().unwrap().to_owned();
    let got = migration_cli(&app, &token, &["get", "--run", &id, "--output", "json"]).await;
    assert_eq!(got.status.code(), Some(0));
    assert_eq!(json(&got)["id"], id.as_str());
    let queued = migration_cli(&app, &token, &[&start[..], &["--no-watch"]].concat()).await;
    assert!(
        last_line(&queued).contains(" queued: "),
        "{}",
        last_line(&queued)
    );
    let watched = migration_cli(&app, &token, &["watch", "--run", &id]).await;
    assert!(
        last_line(&watched).starts_with(&format!("run {id} completed: ")),
        "{}",
        last_line(&watched)
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn archive_and_restore_print_a_summary_line_and_json_when_stdout_is_not_a_terminal() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 30, 10)
        .await
        .unwrap()
        .to_string();
    let server = app.archive_addr.to_string();
    let archive_cli = |role: Role, more: &[&str]| {
        let token = app.token("acme", &[role]);
        let run = [
            args(more),
            args(&["--job", &job, "--server", &server, "--token", &token]),
        ]
        .concat();
        async move { command("archive-svc", &run).await }
    };

    let archived = archive_cli(Role::SuperAdmin, &["archive"]).await;
    assert_eq!(archived.status.code(), Some(0));
    let summary = last_line(&archived);
    assert!(
        summary.starts_with(&format!("archived job {job}: 40 rows to ")),
        "{summary}"
    );
    let restored = archive_cli(Role::Member, &["restore"]).await;
    assert_eq!(restored.status.code(), Some(0));
    let summary = last_line(&restored);
    assert!(
        summary.starts_with(&format!("restored job {job}: 40 rows, "))
            && summary.ends_with(" bytes read"),
        "{summary}"
    );
    // restored already: a second restore finds the job hot
    let hot = json(&archive_cli(Role::Member, &["restore", "--output", "json"]).await);
    assert_eq!(hot["already_hot"], true);
    assert_eq!(hot["job_id"], job.as_str());
    let hot = archive_cli(Role::Member, &["restore"]).await;
    assert_eq!(
        last_line(&hot),
        format!("job {job} is already hot; nothing restored")
    );
    let again = json(&archive_cli(Role::SuperAdmin, &["archive", "--output", "json"]).await);
    assert_eq!(again["scan_items"], 30);
    assert_eq!(again["file_records"], 10);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_grpc_error_exits_one_and_names_the_code_on_stderr_and_in_json() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::Member]);
    let server = app.archive_addr.to_string();
    let missing = uuid::Uuid::new_v4().to_string();
    let restore = args(&[
        "restore", "--job", &missing, "--server", &server, "--token", &token,
    ]);

    let text = command("archive-svc", &restore).await;
    assert_eq!(text.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&text.stderr);
    assert!(stderr.starts_with("error: NOT_FOUND: "), "{stderr}");
    let failed = command(
        "archive-svc",
        &[restore, args(&["--output", "json"])].concat(),
    )
    .await;
    assert_eq!(failed.status.code(), Some(1));
    assert_eq!(json(&failed)["error"]["code"], "NOT_FOUND");

    let unreachable = format!(
        "127.0.0.1:{}",
        stowage_integration::process::free_port().unwrap()
    );
    let run = migration_cli_at(&unreachable, &token, &["get", "--run", &missing]).await;
    assert_eq!(run.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(stderr.starts_with("error: UNAVAILABLE: "), "{stderr}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn both_binaries_generate_shell_completions() {
    for binary in ["migration-svc", "archive-svc"] {
        for shell in ["bash", "zsh", "fish"] {
            let output = command(binary, &args(&["completions", shell])).await;
            assert_eq!(output.status.code(), Some(0), "{binary} {shell}");
            let script = String::from_utf8_lossy(&output.stdout);
            assert!(script.contains(binary), "{binary} {shell}");
            assert!(script.contains("completions"), "{binary} {shell}");
        }
    }
    let bash = command("migration-svc", &args(&["completions", "bash"])).await;
    assert!(String::from_utf8_lossy(&bash.stdout).contains("--output"));
}
