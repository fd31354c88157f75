//! Planning: dry runs that count and touch no store, the states a run passes through,
//! a target that is not active, and the validation of StartRun.

use stowage_integration::{
    migration::{self, ProxiedContainer, start_request},
    spawn_app,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tonic::Code;

use super::WAIT;

#[tokio::test]
async fn a_dry_run_counts_by_source_binding_and_touches_no_store() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let (a, b, t) = (
        ProxiedContainer::create().await.unwrap(),
        ProxiedContainer::create().await.unwrap(),
        ProxiedContainer::create().await.unwrap(),
    );
    let a_binding = migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    migration::upload(&app, &token, 0, &[1000, 2000, 3000])
        .await
        .unwrap();
    let b_binding = migration::create_active(&mut bindings, b.binding("b"))
        .await
        .unwrap();
    migration::upload(&app, &token, 10, &[500, 700])
        .await
        .unwrap();
    let target = migration::create_active(&mut bindings, t.binding("t"))
        .await
        .unwrap();

    let mut artifacts = app.artifacts(Some(&token)).await;
    let list = pb::ListArtifactsRequest {
        show_deleted: true,
        ..Default::default()
    };
    let before = artifacts
        .list_artifacts(list.clone())
        .await
        .unwrap()
        .into_inner();
    let traffic = [a.proxy.bytes(), b.proxy.bytes(), t.proxy.bytes()];

    let mut runs = app.runs(Some(&token)).await;
    let queued = runs
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queued.state(), pb::RunState::Queued);
    let run = migration::wait_for_end(&mut runs, &queued.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Completed);
    assert_eq!(run.mode(), pb::MigrationMode::DryRun);
    assert_eq!(run.bytes_total, 7200);
    let mut sources: Vec<_> = run
        .sources
        .iter()
        .map(|s| (s.binding_id.clone(), s.artifacts, s.bytes))
        .collect();
    sources.sort();
    let mut expected = vec![
        (a_binding.id.clone(), 3, 6000),
        (b_binding.id.clone(), 2, 1200),
    ];
    expected.sort();
    assert_eq!(sources, expected);
    assert!(
        migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
            .await
            .unwrap()
            .is_empty()
    );

    assert_eq!(
        [a.proxy.bytes(), b.proxy.bytes(), t.proxy.bytes()],
        traffic,
        "a dry run sends no request to any store"
    );
    let after = artifacts.list_artifacts(list).await.unwrap().into_inner();
    assert_eq!(after, before, "a dry run changes no artifact");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_run_is_queued_then_planning_then_running() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, _, target) = migration::memory_source_and_target(&app, &token, &[64; 4])
        .await
        .unwrap();
    // Hold planning at its first page: a transaction of our own locks the artifacts.
    let mut db = app.db.client().await.unwrap();
    let blocker = db.transaction().await.unwrap();
    blocker
        .batch_execute("lock table migration.artifacts in access exclusive mode")
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(migration::limited_request(&target.id, 2))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.state(), pb::RunState::Queued);
    let planning = migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.state() == pb::RunState::Planning
    })
    .await
    .unwrap();
    assert!(planning.start_time.is_some());
    blocker.rollback().await.unwrap();
    let running = migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.state() == pb::RunState::Running
    })
    .await
    .unwrap();
    assert_eq!(running.bytes_total, 256);
    let done = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(done.state(), pb::RunState::Completed);
    assert_eq!(done.items.unwrap().migrated, 4);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_target_that_is_not_active_fails_the_run_at_planning() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    migration::upload(&app, &token, 0, &[10, 20]).await.unwrap();
    let pending = migration::create(&mut bindings, migration::memory_binding("p"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::run_to_end(
        &mut runs,
        start_request(&pending.id, pb::MigrationMode::Live),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(run.state(), pb::RunState::Failed);
    assert_eq!(run.failure_cause(), pb::RunFailureCause::TargetNotActive);
    assert!(
        migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
            .await
            .unwrap()
            .is_empty()
    );

    // Another organization's binding is not a target at all.
    let other = app.token("other", &[Role::OrgAdmin]);
    let refused = app
        .runs(Some(&other))
        .await
        .start_run(start_request(&pending.id, pb::MigrationMode::DryRun))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn start_run_requests_are_validated_and_need_an_org_admin() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let no_mode = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Unspecified))
        .await
        .unwrap_err();
    assert_eq!(no_mode.code(), Code::InvalidArgument);
    assert!(no_mode.message().contains("mode"));
    let mut no_reason = start_request(&target.id, pb::MigrationMode::Live);
    no_reason.reason = "  ".into();
    let no_reason = runs.start_run(no_reason).await.unwrap_err();
    assert_eq!(no_reason.code(), Code::InvalidArgument);
    assert!(no_reason.message().contains("reason"));
    let member = app.token("acme", &[Role::Member]);
    let denied = app
        .runs(Some(&member))
        .await
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let run = runs
        .start_run(start_request(&target.id, pb::MigrationMode::DryRun))
        .await
        .unwrap()
        .into_inner();
    let other = app.token("other", &[Role::OrgAdmin]);
    let hidden = app
        .runs(Some(&other))
        .await
        .get_run(pb::GetRunRequest { id: run.id.clone() })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let evidence_denied = app
        .evidence(Some(&member))
        .await
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap_err();
    assert_eq!(evidence_denied.code(), Code::PermissionDenied);
    let others_view = app
        .evidence(Some(&other))
        .await
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(others_view.entries.is_empty());
    let root = app.token("ops", &[Role::SuperAdmin]);
    let all = app
        .evidence(Some(&root))
        .await
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        all.entries
            .iter()
            .any(|e| e.organization_id == "acme" && e.action == "StartRun")
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn runs_are_listed_newest_first_a_page_at_a_time_and_by_state() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, _, target) = migration::memory_source_and_target(&app, &token, &[10])
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let mut started = Vec::new();
    for _ in 0..3 {
        let request = start_request(&target.id, pb::MigrationMode::DryRun);
        let run = migration::run_to_end(&mut runs, request, WAIT)
            .await
            .unwrap();
        started.push(run.id);
    }
    started.reverse();

    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10 {
        let page = runs
            .list_runs(pb::ListRunsRequest {
                page_size: 1,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.runs.len() <= 1);
        seen.extend(page.runs.into_iter().map(|r| r.id));
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, started, "newest first, each run once");

    let by_state = |state: pb::RunState| pb::ListRunsRequest {
        state: state.into(),
        ..Default::default()
    };
    let completed = runs.list_runs(by_state(pb::RunState::Completed)).await;
    assert_eq!(completed.unwrap().into_inner().runs.len(), 3);
    let running = runs.list_runs(by_state(pb::RunState::Running)).await;
    assert!(running.unwrap().into_inner().runs.is_empty());
    app.stop().await.unwrap();
}
