//! gRPC-Web in a real browser: a dashboard page in headless Chromium follows a live
//! `WatchRun` and a `RestoreJob` with a bearer token and reports every event it got, which
//! must match the server's record; and CORS answers only the configured origins.

use std::{collections::BTreeMap, time::Duration};

use serde_json::Value;
use stowage_integration::{browser, migration, scans, spawn_app_configured};
use stowage_proto::{archive::v1 as apb, migration::v1 as pb};
use stowage_shared::auth::Role;

/// A JSON number, or a 64-bit integer that proto3 JSON wrote as a string.
fn int(value: &Value) -> i64 {
    value
        .as_i64()
        .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
        .unwrap_or_else(|| panic!("not an integer: {value}"))
}

#[tokio::test]
async fn a_browser_follows_a_live_run_and_a_restore_over_grpc_web_and_sees_what_the_server_recorded()
 {
    browser::check_installed().unwrap();
    let page = browser::PageServer::start().await.unwrap();
    let origin = page.origin();
    let app = spawn_app_configured(|c| {
        c.migration.common.grpc.cors_origins = vec![origin.clone()];
        c.archive.common.grpc.cors_origins = vec![origin.clone()];
    })
    .await
    .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);

    // a run of a few hundred small artifacts between memory bindings, paced to last about
    // ten seconds, so the page joins it while it runs
    let mut bindings = app.bindings(Some(&token)).await;
    migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let mut artifacts = app.artifacts(Some(&token)).await;
    const ARTIFACTS: usize = 300;
    for i in 0..ARTIFACTS {
        let name = format!("report-{i}.bin");
        migration::put(
            &mut artifacts,
            migration::metadata("document", &name),
            &migration::content(i, 256),
        )
        .await
        .unwrap();
    }
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();

    // an archived job of a few thousand rows
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2000, 1500)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    app.archive_admin(Some(&admin))
        .await
        .archive_job(apb::ArchiveJobRequest {
            job_id: job.to_string(),
            reason: "browser test".into(),
            compression: 0,
            request_id: String::new(),
        })
        .await
        .unwrap();

    let mut runs = app.runs(Some(&token)).await;
    let mut start = migration::start_request(&target.id, pb::MigrationMode::Live);
    start.limit = Some(pb::ThroughputLimit {
        bytes_per_second: 0,
        objects_per_second: 30,
    });
    let run = runs.start_run(start).await.unwrap().into_inner();

    let url = format!(
        "{origin}/?migration=http://{}&archive=http://{}&token={token}&run={}&job={job}",
        app.migration_addr, app.archive_addr, run.id
    );
    let visit = browser::visit(&url, Duration::from_secs(60)).await.unwrap();
    let report = &visit.report;
    let kinds = |stream: &str| {
        let mut kinds = BTreeMap::<String, usize>::new();
        for event in report[stream].as_array().into_iter().flatten() {
            let kind = event
                .as_object()
                .and_then(|o| o.keys().find(|k| *k != "cursor"))
                .cloned()
                .unwrap_or_default();
            *kinds.entry(kind).or_default() += 1;
        }
        kinds
    };
    println!(
        "chromium {}: WatchRun events {:?}, RestoreJob progress {}",
        visit.chromium,
        kinds("watch"),
        report["restore"],
    );
    let said = format!("errors: {}; console: {:?}", report["errors"], visit.console);
    assert_eq!(report["done"], true, "the page finished; {said}");
    assert_eq!(report["errors"], serde_json::json!([]), "{said}");
    assert_eq!(report["watchStatus"], "OK", "{said}");
    assert_eq!(report["restoreStatus"], "OK", "{said}");
    assert_eq!(
        visit.console,
        Vec::<String>::new(),
        "the page logged nothing"
    );

    // the run: a snapshot first, cursors rising, states in order, ending in the final one
    let ended = migration::wait_for_end(&mut runs, &run.id, Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(ended.state(), pb::RunState::Completed);
    let events = report["watch"].as_array().unwrap();
    assert!(events[0].get("snapshot").is_some(), "first: {}", events[0]);
    let cursors: Vec<i64> = events.iter().map(|e| int(&e["cursor"])).collect();
    assert!(
        cursors.windows(2).all(|w| w[0] <= w[1]),
        "cursors: {cursors:?}"
    );
    let mut states = Vec::new();
    let mut outcomes = BTreeMap::new();
    let mut last_run = None;
    for event in events {
        if let Some(run) = event.get("snapshot").or_else(|| event.get("update")) {
            let state = int(&run["state"]);
            if states.last() != Some(&state) {
                states.push(state);
            }
            last_run = Some(run);
        }
        if let Some(item) = event.get("outcome") {
            let id = item["artifact_id"].as_str().unwrap().to_owned();
            let previous = outcomes.insert(id, int(&item["state"]));
            assert!(previous.is_none(), "one outcome per item: {item}");
        }
    }
    assert!(
        states.windows(2).all(|w| w[0] < w[1]),
        "states in order: {states:?}"
    );
    assert_eq!(
        states.last(),
        Some(&i64::from(ended.state)),
        "states: {states:?}"
    );
    assert!(
        states[0] < i64::from(pb::RunState::Completed as i32),
        "the page joined a live run: {states:?}"
    );
    let last_run = last_run.unwrap();
    let counts = ended.items.unwrap();
    assert_eq!(int(&last_run["items"]["migrated"]), counts.migrated);
    assert_eq!(int(&last_run["bytes_migrated"]), ended.bytes_migrated);

    let recorded: BTreeMap<String, i64> =
        migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
            .await
            .unwrap()
            .into_iter()
            .map(|item| (item.artifact_id.clone(), i64::from(item.state)))
            .collect();
    assert_eq!(recorded.len(), ARTIFACTS);
    assert_eq!(outcomes, recorded, "outcomes seen match ListRunItems");

    // the restore: phases in order, ending DONE with every row
    let progress = report["restore"].as_array().unwrap();
    let phases: Vec<i64> = progress.iter().map(|p| int(&p["phase"])).collect();
    assert!(
        phases.windows(2).all(|w| w[0] <= w[1]),
        "phases: {phases:?}"
    );
    let last = progress.last().unwrap();
    assert_eq!(int(&last["phase"]), apb::RestorePhase::Done as i64);
    assert_eq!(int(&last["rows_done"]), 3500);
    assert_eq!(int(&last["rows_total"]), 3500);
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);

    app.stop().await.unwrap();
}

/// A CORS preflight from `origin` for WatchRun, and the allowed origin it was answered with.
async fn preflight(addr: std::net::SocketAddr, origin: &str) -> (u16, Option<String>) {
    let response = reqwest::Client::new()
        .request(
            reqwest::Method::OPTIONS,
            format!("http://{addr}/stowage.migration.v1.MigrationService/WatchRun"),
        )
        .header("origin", origin)
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization,content-type,x-grpc-web",
        )
        .send()
        .await
        .unwrap();
    let allowed = response
        .headers()
        .get("access-control-allow-origin")
        .map(|v| v.to_str().unwrap().to_owned());
    (response.status().as_u16(), allowed)
}

#[tokio::test]
async fn cors_answers_a_configured_origin_and_no_other() {
    let app = spawn_app_configured(|c| {
        c.migration.common.grpc.cors_origins = vec!["http://localhost:8080".into()];
    })
    .await
    .unwrap();
    let (_, allowed) = preflight(app.migration_addr, "http://localhost:8080").await;
    assert_eq!(allowed.as_deref(), Some("http://localhost:8080"));
    let (_, other) = preflight(app.migration_addr, "http://evil.example").await;
    assert_eq!(other, None);
    // archive-svc has none configured: no browser origin is allowed
    let (_, none) = preflight(app.archive_addr, "http://localhost:8080").await;
    assert_eq!(none, None);
    app.stop().await.unwrap();
}
