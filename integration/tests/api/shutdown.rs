//! Graceful shutdown: health turns NOT_SERVING, open streams end, the process exits 0.

use std::{process::Stdio, time::Duration};

use stowage_integration::{
    app::{test_common, workspace_binary},
    db::TestDb,
    spawn_app,
};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};

#[tokio::test]
async fn stopping_ends_open_watch_streams_and_returns_cleanly() {
    let app = spawn_app().await.unwrap();
    let mut health = HealthClient::new(app.channel(app.migration_addr).await);
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );
    let stopped = tokio::spawn(app.stop());
    let not_serving = tokio::time::timeout(Duration::from_secs(5), watch.message()).await;
    assert_eq!(
        not_serving.unwrap().unwrap().unwrap().status(),
        ServingStatus::NotServing
    );
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), tonic::Code::Unavailable);
    tokio::time::timeout(Duration::from_secs(5), stopped)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn sigterm_turns_health_not_serving_ends_streams_and_exits_zero() {
    use secrecy::ExposeSecret;

    let test_db = TestDb::migrated().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let port = free_port();
    let (_, kek) = common.keys.keks.iter().next().unwrap();
    let config = format!(
        "[database]\nurl = {:?}\n[grpc]\nlisten = \"127.0.0.1:{port}\"\ndrain_timeout = 5\n\
         [metrics]\nlisten = \"127.0.0.1:0\"\n[auth]\nhs256_secret = {:?}\n\
         [keys]\nprimary = \"test-1\"\n[keys.keks]\ntest-1 = {:?}\n",
        test_db.url,
        common.auth.hs256_secret.as_ref().unwrap().expose_secret(),
        kek.expose_secret(),
    );
    let config_path = std::env::temp_dir().join(format!("stowage-sigterm-{port}.toml"));
    std::fs::write(&config_path, config).unwrap();
    let mut child = tokio::process::Command::new(workspace_binary("migration-svc"))
        .arg("--config")
        .arg(&config_path)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .unwrap();

    let endpoint = format!("http://127.0.0.1:{port}");
    let mut health = None;
    for _ in 0..100 {
        if let Ok(channel) = tonic::transport::Endpoint::from_shared(endpoint.clone())
            .unwrap()
            .connect()
            .await
        {
            health = Some(HealthClient::new(channel));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut health = health.expect("migration-svc did not start listening within 10 s");
    let mut watch = health
        .watch(HealthCheckRequest {
            service: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        watch.message().await.unwrap().unwrap().status(),
        ServingStatus::Serving
    );

    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), tonic::Code::Unavailable);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    std::fs::remove_file(&config_path).unwrap();
    assert!(status.success(), "exit status {status}");
}
