//! Retention: the pruner of each service deletes idempotency records, the items of ended
//! runs and evidence once they are past their configured age, in batches, and keeps
//! everything younger, every open run's items and every run row.

use std::time::{Duration, Instant};

use stowage_integration::{
    TestApp,
    db::count,
    migration::{self, start_request},
    spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{auth::Role, retention::RetentionConfig};

const HOUR: Duration = Duration::from_secs(3600);

/// Rows are kept an hour; the pruner looks every 200 ms, three rows at a time, so a
/// prune of more rows than a batch is seen to finish.
fn keep_an_hour() -> RetentionConfig {
    RetentionConfig {
        requests: HOUR,
        run_items: HOUR,
        evidence: HOUR,
        interval: Duration::from_millis(200),
        batch: 3,
    }
}

/// Polls `sql` (a count) until it is `expected`, for at most 20 s.
async fn until_count(db: &tokio_postgres::Client, sql: &str, expected: i64) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = count(db, sql, &[]).await.unwrap();
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{sql}: {now}, expected {expected}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Two ended live runs, each moving the same six artifacts (to a first target, then to a
/// second), with request ids, and their evidence.
async fn two_ended_runs(app: &TestApp) -> (pb::Run, pb::Run) {
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, _, first) = migration::memory_source_and_target(app, &token, &[10; 6])
        .await
        .unwrap();
    let mut bindings = app.bindings(Some(&token)).await;
    let mut runs = app.runs(Some(&token)).await;
    let mut ended = Vec::new();
    for (request_id, target) in [("r-old", first.id.clone()), ("r-new", String::new())] {
        let target = if target.is_empty() {
            migration::create_active(&mut bindings, migration::memory_binding("t2"))
                .await
                .unwrap()
                .id
        } else {
            target
        };
        let mut request = start_request(&target, pb::MigrationMode::Live);
        request.request_id = request_id.into();
        let run = migration::run_to_end(&mut runs, request, Duration::from_secs(30))
            .await
            .unwrap();
        assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
        ended.push(run);
    }
    let new = ended.pop().unwrap();
    (ended.pop().unwrap(), new)
}

#[tokio::test]
async fn rows_past_their_age_are_pruned_and_younger_ones_kept() {
    let app = spawn_app_configured(|c| {
        c.migration.common.retention = keep_an_hour();
        c.archive.common.retention = keep_an_hour();
    })
    .await
    .unwrap();
    let (old, new) = two_ended_runs(&app).await;
    let db = app.db.client().await.unwrap();
    let items_of = |run: &pb::Run| {
        format!(
            "select count(*) from migration.run_items where run_id = '{}'",
            run.id
        )
    };
    assert_eq!(count(&db, &items_of(&old), &[]).await.unwrap(), 6);
    let evidence_before = count(&db, "select count(*) from migration.audit_log", &[])
        .await
        .unwrap();
    assert!(evidence_before >= 2);

    // Both runs hold a plan (as dry runs keep theirs) of the six artifacts.
    let plans_of = |run: &pb::Run| {
        format!(
            "select count(*) from migration.run_plans where run_id = '{}'",
            run.id
        )
    };
    for run in [&old, &new] {
        db.batch_execute(&format!(
            "insert into migration.run_plans
                 select '{}', id, binding_id, size_bytes, sha256 from migration.artifacts",
            run.id
        ))
        .await
        .unwrap();
    }

    // The old run ended, asked and was audited two hours ago.
    db.batch_execute(&format!(
        "update migration.runs set end_time = now() - interval '2 hours' where id = '{id}';
         update migration.request_log set created_at = now() - interval '2 hours'
             where request_id = 'r-old';
         update migration.audit_log set at = now() - interval '2 hours' where run_id = '{id}';
         update migration.domain_events set at = now() - interval '2 hours'
             where run_id = '{id}';
         insert into archive.request_log values
             ('acme', 'ArchiveJob', 'a-old', '\\x00', null, now() - interval '2 hours'),
             ('acme', 'ArchiveJob', 'a-new', '\\x00', null, now());
         insert into archive.audit_log (at, tenant_id, actor, action, outcome)
             select now() - interval '2 hours', 'acme', 'op', 'ArchiveJob', 'ok'
             from generate_series(1, 7);",
        id = old.id
    ))
    .await
    .unwrap();

    until_count(&db, &items_of(&old), 0).await;
    until_count(&db, &plans_of(&old), 0).await;
    until_count(
        &db,
        "select count(*) from migration.request_log where request_id = 'r-old'",
        0,
    )
    .await;
    until_count(
        &db,
        &format!(
            "select count(*) from migration.audit_log where run_id = '{}'",
            old.id
        ),
        0,
    )
    .await;
    until_count(&db, "select count(*) from archive.audit_log", 0).await;
    until_count(
        &db,
        "select count(*) from archive.request_log where request_id = 'a-old'",
        0,
    )
    .await;

    // What is younger stays: the newer run's items, request and evidence, and both runs.
    assert_eq!(count(&db, &items_of(&new), &[]).await.unwrap(), 6);
    assert_eq!(count(&db, &plans_of(&new), &[]).await.unwrap(), 6);
    let kept = [
        "select count(*) from migration.request_log where request_id = 'r-new'",
        "select count(*) from archive.request_log where request_id = 'a-new'",
    ];
    for sql in kept {
        assert_eq!(count(&db, sql, &[]).await.unwrap(), 1, "{sql}");
    }
    let new_evidence = format!(
        "select count(*) from migration.audit_log where run_id = '{}'",
        new.id
    );
    assert!(count(&db, &new_evidence, &[]).await.unwrap() >= 1);
    assert_eq!(
        count(&db, "select count(*) from migration.runs", &[])
            .await
            .unwrap(),
        2
    );
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut runs = app.runs(Some(&token)).await;
    let kept_run = runs
        .get_run(pb::GetRunRequest { id: old.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(kept_run.items, old.items, "a pruned run keeps its counts");
}

#[tokio::test]
async fn evidence_kept_shorter_than_what_it_speaks_of_is_refused_at_start() {
    let error = spawn_app_configured(|c| {
        c.migration.common.retention = RetentionConfig {
            evidence: Duration::from_secs(60),
            ..RetentionConfig::default()
        };
    })
    .await
    .err()
    .expect("refused");
    assert!(
        format!("{error:#}").contains("retention.evidence"),
        "{error:#}"
    );
}
