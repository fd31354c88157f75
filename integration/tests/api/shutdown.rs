//! Graceful shutdown: health turns NOT_SERVING, open streams end, the process exits 0.

use std::time::Duration;

use stowage_integration::{
    app::test_common,
    db::TestDb,
    process::{self, ServiceProcess},
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

#[tokio::test]
async fn sigterm_turns_health_not_serving_ends_streams_and_exits_zero() {
    let test_db = TestDb::migrated().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let port = process::free_port().unwrap();
    let config = process::config_toml(&common, port, "").unwrap();
    let mut service = ServiceProcess::start("migration-svc", &config, port)
        .await
        .unwrap();
    let mut health = HealthClient::new(service.connect().await.unwrap());
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

    service.signal("TERM").unwrap();
    let next = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(next.unwrap().unwrap().status(), ServingStatus::NotServing);
    let end = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .unwrap();
    assert_eq!(end.unwrap_err().code(), tonic::Code::Unavailable);
    let status = service.wait(Duration::from_secs(10)).await.unwrap();
    assert!(status.success(), "exit status {status}");
}
