//! Prometheus metrics: every metric both services record is described (`# HELP` with its
//! unit) and present from start, gRPC calls are counted per method and code, and the
//! backlog, pool, run and watcher gauges follow what they measure.

use std::time::Duration;

use stowage_integration::{
    app::{spawn_app_with, test_common},
    db::TestDb,
    migration::{create_active, memory_binding, start_request},
    scans, spawn_app, spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{
    auth::Role,
    instruments::{self, Kind, Metric},
    rpc_telemetry,
};

async fn scrape(addr: Option<std::net::SocketAddr>) -> String {
    let addr = addr.expect("metrics enabled");
    let response = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap();
    assert!(response.status().is_success());
    response.text().await.unwrap()
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|line| {
        let value = line.strip_prefix(series)?.strip_prefix(' ')?;
        value.trim().parse().ok()
    })
}

/// Scrapes until `series` has a value `accept`s (fifteen seconds at most: gauges read from
/// the database are set every few seconds).
async fn wait_for_sample(
    addr: Option<std::net::SocketAddr>,
    series: &str,
    accept: impl Fn(f64) -> bool,
) -> f64 {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    loop {
        let text = scrape(addr).await;
        match sample(&text, series) {
            Some(value) if accept(value) => return value,
            _ if tokio::time::Instant::now() > deadline => {
                panic!("{series} never reached the expected value:\n{text}")
            }
            _ => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

fn labels(labels: &[(&str, &str)]) -> String {
    if labels.is_empty() {
        return String::new();
    }
    let inner: Vec<String> = labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")).collect();
    format!("{{{}}}", inner.join(","))
}

/// `text` describes every metric of `catalog` and shows each listed series at zero (or
/// more, for gauges).
fn assert_described(text: &str, catalog: &[Metric]) {
    for metric in catalog {
        let help = format!("# HELP {} {}", metric.name, metric.help_text());
        assert!(text.contains(&help), "missing {help:?} in\n{text}");
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let type_line = format!("# TYPE {} {kind}", metric.name);
        assert!(text.contains(&type_line), "missing {type_line:?}");
        let series: Vec<&[(&str, &str)]> = if metric.series.is_empty() {
            vec![&[]]
        } else {
            metric.series.iter().map(|s| s.as_slice()).collect()
        };
        for labels_ in series {
            let name = match metric.kind {
                Kind::Histogram => format!("{}_count", metric.name),
                Kind::Counter | Kind::Gauge => metric.name.to_owned(),
            };
            let series = format!("{name}{}", labels(labels_));
            assert!(
                sample(text, &series).is_some(),
                "no sample {series} in\n{text}"
            );
        }
        if let Some(unit) = metric.unit {
            assert!(
                metric.name.contains(unit.as_str()),
                "{} names no unit",
                metric.name
            );
        }
    }
}

#[tokio::test]
async fn every_metric_is_described_with_its_unit_and_present_from_start() {
    let app = spawn_app().await.unwrap();
    let migration = scrape(app.migration_metrics).await;
    let archive = scrape(app.archive_metrics).await;

    assert_described(&migration, &migration_svc::metrics::catalog());
    assert_described(&migration, &instruments::pool_catalog("migration"));
    assert_described(&migration, &rpc_telemetry::catalog()[..1]);
    assert_described(&archive, &archive_svc::metrics::catalog());
    assert_described(&archive, &instruments::pool_catalog("archive"));
    // the histogram is described before any call; its series appear with the first
    assert!(archive.contains(&format!(
        "# HELP {} {}",
        rpc_telemetry::DURATION,
        rpc_telemetry::catalog()[1].help_text()
    )));
    assert_eq!(
        sample(&migration, "migration_runs_ended_total{state=\"failed\"}"),
        Some(0.0)
    );
    // every method of the services is counted at zero before its first call
    for method in ["StartRun", "WatchRun", "CancelRun"] {
        let series = format!(
            "{}{{service=\"stowage.migration.v1.MigrationService\",method=\"{method}\",code=\"OK\"}}",
            rpc_telemetry::REQUESTS
        );
        assert_eq!(sample(&migration, &series), Some(0.0), "{series}");
    }
    let restore = "grpc_server_requests_total{service=\"stowage.archive.v1.ArchiveService\",\
                   method=\"RestoreJob\",code=\"OK\"}";
    assert_eq!(sample(&archive, restore), Some(0.0));
    // the pool gauges are set from the pool
    let max = wait_for_sample(
        app.migration_metrics,
        "db_pool_max_connections{pool=\"migration\"}",
        |v| v > 0.0,
    )
    .await;
    assert_eq!(max, app.common.database.pool_size as f64);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn grpc_calls_are_counted_and_timed_per_method_and_status_code() {
    let app = spawn_app().await.unwrap();
    let token = app.token("org-metrics", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    bindings
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap();
    let missing = bindings
        .get_binding(pb::GetBindingRequest {
            id: uuid::Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), tonic::Code::NotFound);

    let service = "service=\"stowage.migration.v1.BindingService\"";
    let list = format!("{service},method=\"ListBindings\",code=\"OK\"");
    let get = format!("{service},method=\"GetBinding\",code=\"NOT_FOUND\"");
    for (series, at_least) in [
        (format!("grpc_server_requests_total{{{list}}}"), 1.0),
        (format!("grpc_server_requests_total{{{get}}}"), 1.0),
        (
            format!("grpc_server_request_duration_seconds_count{{{get}}}"),
            1.0,
        ),
    ] {
        wait_for_sample(app.migration_metrics, &series, |v| v >= at_least).await;
    }
    let text = scrape(app.migration_metrics).await;
    assert!(text.contains(&format!(
        "grpc_server_request_duration_seconds_bucket{{{list},le=\"+Inf\"}}"
    )));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn the_archive_backlog_counts_eligible_jobs_and_the_age_of_the_oldest() {
    let db = TestDb::migrated().await.unwrap();
    let client = db.client().await.unwrap();
    // CANCELLED waits one day: eligible for two days now
    scans::insert_job(&client, "tenant-a", "CANCELLED", 3.0, 2, 2)
        .await
        .unwrap();
    // eligible in six days; and an active job, never eligible
    scans::insert_job(&client, "tenant-a", "FAILED", 1.0, 2, 2)
        .await
        .unwrap();
    scans::insert_job(&client, "tenant-a", "SCANNING", 30.0, 2, 2)
        .await
        .unwrap();
    // terminal without a terminal timestamp: due from its last activity, as the schedule
    // has it (COMPLETED waits 14 days: eligible for one day now)
    let untimed = scans::insert_job(&client, "tenant-a", "COMPLETED", 15.0, 2, 2)
        .await
        .unwrap();
    client
        .execute(
            "update archive.scan_jobs set terminal_at = null where id = $1",
            &[&untimed],
        )
        .await
        .unwrap();
    let common = test_common(&db).unwrap();
    let app = spawn_app_with(db, common, |_| {}).await.unwrap();
    wait_for_sample(app.archive_metrics, "archive_backlog_jobs", |v| v == 2.0).await;
    let oldest = sample(
        &scrape(app.archive_metrics).await,
        "archive_backlog_oldest_seconds",
    )
    .unwrap();
    let two_days = 2.0 * 86_400.0;
    assert!((oldest - two_days).abs() < 600.0, "oldest {oldest}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn runs_by_state_open_watch_streams_and_their_shared_feeds_are_gauged() {
    // no runner: the run stays queued
    let app = spawn_app_configured(|configs| configs.migration.migration.enabled = false)
        .await
        .unwrap();
    let token = app.token("org-watch", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let target = create_active(&mut bindings, memory_binding("watched"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap()
        .into_inner();
    wait_for_sample(
        app.migration_metrics,
        "migration_runs{state=\"queued\"}",
        |v| v == 1.0,
    )
    .await;

    // Twenty streams on one run: one poller feeds them all.
    let mut streams = Vec::new();
    for _ in 0..20 {
        let mut stream = runs
            .watch_run(pb::WatchRunRequest {
                id: run.id.clone(),
                resume_after: 0,
            })
            .await
            .unwrap()
            .into_inner();
        stream.message().await.unwrap().expect("a snapshot");
        streams.push(stream);
    }
    wait_for_sample(app.migration_metrics, "migration_watch_streams", |v| {
        v == 20.0
    })
    .await;
    wait_for_sample(app.migration_metrics, "migration_watch_feeds", |v| v == 1.0).await;
    drop(streams);
    wait_for_sample(app.migration_metrics, "migration_watch_streams", |v| {
        v == 0.0
    })
    .await;
    wait_for_sample(app.migration_metrics, "migration_watch_feeds", |v| v == 0.0).await;
    app.stop().await.unwrap();
}

/// Metric names written as literals in `dir`'s Rust files.
fn recorded_names(dir: &std::path::Path, names: &mut Vec<(String, String)>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            recorded_names(&path, names);
        } else if path.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&path).unwrap();
            for macro_ in ["counter!(\"", "gauge!(\"", "histogram!(\""] {
                for (i, _) in text.match_indices(macro_) {
                    let rest = &text[i + macro_.len()..];
                    let name = &rest[..rest.find('"').unwrap()];
                    names.push((name.to_owned(), path.display().to_string()));
                }
            }
        }
    }
}

#[test]
fn every_metric_the_services_record_is_in_their_catalog() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let mut names = Vec::new();
    for crate_ in ["migration-svc/src", "archive-svc/src", "shared/src"] {
        recorded_names(&root.join(crate_), &mut names);
    }
    assert!(names.len() >= 10, "found only {names:?}");
    let catalog: Vec<&str> = [
        migration_svc::metrics::catalog(),
        archive_svc::metrics::catalog(),
        rpc_telemetry::catalog(),
        instruments::pool_catalog("any"),
    ]
    .iter()
    .flatten()
    .map(|m| m.name)
    .collect();
    for (name, file) in names {
        assert!(
            catalog.contains(&name.as_str()),
            "{name} (recorded in {file}) is not in a metric catalog"
        );
    }
}
