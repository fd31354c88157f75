//! Migrations, health, reflection and metrics.

use stowage_integration::{db::TestDb, spawn_app};
use stowage_shared::db::{self, Schema};
use tonic_health::pb::{
    HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient,
};
use tonic_reflection::pb::{v1, v1alpha};

async fn history_rows(test_db: &TestDb, schema: &str) -> i64 {
    let client = test_db.client().await.unwrap();
    let row = client
        .query_one(
            &format!("select count(*) from {schema}.refinery_schema_history"),
            &[],
        )
        .await
        .unwrap();
    row.get(0)
}

#[tokio::test]
async fn migrations_applied_twice_change_nothing_the_second_time() {
    let test_db = TestDb::empty().await.unwrap();
    let pool = db::pool(&test_db.config()).unwrap();
    let first = migration_svc::db::SCHEMA.migrate(&pool).await.unwrap();
    assert!(!first.applied_migrations().is_empty());
    let second = migration_svc::db::SCHEMA.migrate(&pool).await.unwrap();
    assert!(second.applied_migrations().is_empty());
    let expected = migration_svc::db::SCHEMA
        .migrations()
        .get_migrations()
        .len() as i64;
    assert_eq!(history_rows(&test_db, "migration").await, expected);
}

#[tokio::test]
async fn two_servers_migrating_at_once_apply_each_migration_once() {
    let test_db = TestDb::empty().await.unwrap();
    // Separate pools are separate sessions, as two processes would be.
    let migrate = |schema: Schema| {
        let pool = db::pool(&test_db.config()).unwrap();
        async move {
            schema
                .migrate(&pool)
                .await
                .map(|r| r.applied_migrations().len())
        }
    };
    let (a, b, c, d) = tokio::join!(
        migrate(migration_svc::db::SCHEMA),
        migrate(migration_svc::db::SCHEMA),
        migrate(archive_svc::db::SCHEMA),
        migrate(archive_svc::db::SCHEMA),
    );
    let migration_total = migration_svc::db::SCHEMA
        .migrations()
        .get_migrations()
        .len();
    let archive_total = archive_svc::db::SCHEMA.migrations().get_migrations().len();
    assert_eq!(
        a.unwrap() + b.unwrap(),
        migration_total,
        "each migration applied exactly once"
    );
    assert_eq!(c.unwrap() + d.unwrap(), archive_total);
    assert_eq!(
        history_rows(&test_db, "migration").await,
        migration_total as i64
    );
    assert_eq!(
        history_rows(&test_db, "archive").await,
        archive_total as i64
    );
}

#[tokio::test]
async fn health_reports_the_server_and_each_service_serving() {
    let app = spawn_app().await.unwrap();
    for (addr, service) in [
        (app.migration_addr, "stowage.migration.v1.BindingService"),
        (app.archive_addr, "stowage.archive.v1.ArchiveService"),
    ] {
        let mut health = HealthClient::new(app.channel(addr).await);
        for name in ["", service] {
            let status = health
                .check(HealthCheckRequest {
                    service: name.to_owned(),
                })
                .await
                .unwrap()
                .into_inner()
                .status();
            assert_eq!(status, ServingStatus::Serving, "{name:?} on {addr}");
        }
        let unknown = health
            .check(HealthCheckRequest {
                service: "nope".into(),
            })
            .await;
        assert_eq!(unknown.unwrap_err().code(), tonic::Code::NotFound);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn reflection_lists_the_services_in_v1_and_v1alpha_without_a_token() {
    let app = spawn_app().await.unwrap();
    let list = |host: String| v1::ServerReflectionRequest {
        host,
        message_request: Some(v1::server_reflection_request::MessageRequest::ListServices(
            String::new(),
        )),
    };
    let mut client = v1::server_reflection_client::ServerReflectionClient::new(
        app.channel(app.migration_addr).await,
    );
    let mut stream = client
        .server_reflection_info(tokio_stream::iter([list(String::new())]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    let Some(v1::server_reflection_response::MessageResponse::ListServicesResponse(services)) =
        response.message_response
    else {
        panic!("unexpected reflection response");
    };
    let names: Vec<_> = services.service.into_iter().map(|s| s.name).collect();
    assert!(
        names.contains(&"stowage.migration.v1.BindingService".to_owned()),
        "{names:?}"
    );
    assert!(
        names.contains(&"grpc.health.v1.Health".to_owned()),
        "{names:?}"
    );
    assert!(
        !names.iter().any(|n| n.starts_with("stowage.archive")),
        "{names:?}"
    );

    let mut alpha = v1alpha::server_reflection_client::ServerReflectionClient::new(
        app.channel(app.archive_addr).await,
    );
    let request = v1alpha::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(
            v1alpha::server_reflection_request::MessageRequest::FileContainingSymbol(
                "stowage.archive.v1.ArchiveService".into(),
            ),
        ),
    };
    let mut stream = alpha
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let response = stream.message().await.unwrap().unwrap();
    assert!(matches!(
        response.message_response,
        Some(v1alpha::server_reflection_response::MessageResponse::FileDescriptorResponse(f))
            if !f.file_descriptor_proto.is_empty()
    ));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn metrics_are_served_as_prometheus_text() {
    let app = spawn_app().await.unwrap();
    let addr = app.migration_metrics.expect("metrics enabled");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(response.status().is_success());
    app.stop().await.unwrap();
}

/// A service's own setting that does not hold stops the start before anything connects:
/// the database below has nothing listening, so a start that connected first would fail
/// on it instead.
#[tokio::test]
async fn a_bad_service_setting_stops_startup_before_anything_connects() {
    use stowage_shared::startup::{ServiceBinary, StartupError};

    let test_db = TestDb::empty().await.unwrap();
    let mut common = stowage_integration::app::test_common(&test_db).unwrap();
    common.database.url = "postgres://postgres@127.0.0.1:1/postgres".to_owned().into();

    let migration = migration_svc::config::RunnerConfig {
        verify_schedule: Some("every now and then".into()),
        ..Default::default()
    };
    let refused = migration_svc::startup::App::build(migration_svc::config::Config {
        common: common.clone(),
        migration,
    })
    .await
    .err()
    .expect("migration-svc refuses the schedule");
    assert!(matches!(refused, StartupError::Config(_)), "{refused}");
    assert!(refused.to_string().contains("verify_schedule"), "{refused}");

    let archive = archive_svc::config::ArchiveConfig {
        schedule: "every now and then".into(),
        ..Default::default()
    };
    let refused = archive_svc::startup::App::build(archive_svc::config::Config { common, archive })
        .await
        .err()
        .expect("archive-svc refuses the schedule");
    assert!(matches!(refused, StartupError::Config(_)), "{refused}");
    assert!(
        refused.to_string().contains("archive.schedule"),
        "{refused}"
    );
}
