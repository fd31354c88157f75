//! Migration runs through the gRPC API on PostgreSQL and Azurite: every run and item state,
//! dry runs that touch no store, failure causes, retries, failing closed, cancelling,
//! watching, and a replica killed mid-run.

use std::{collections::HashSet, time::Duration};

use stowage_integration::{
    app::test_runner,
    migration::{self, ProxiedContainer, content, is_terminal, start_request},
    spawn_app, spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{auth::Role, blob::azure::DEV_KEY};
use tonic::Code;

const WAIT: Duration = Duration::from_secs(60);

/// Uploads `sizes.len()` artifacts to the active binding; returns them with their content.
async fn upload(
    app: &stowage_integration::TestApp,
    token: &str,
    seed: usize,
    sizes: &[usize],
) -> Vec<(pb::Artifact, Vec<u8>)> {
    let mut artifacts = app.artifacts(Some(token)).await;
    let mut out = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = content(seed + i, *size);
        let name = format!("file-{}", seed + i);
        let artifact = migration::put(
            &mut artifacts,
            migration::metadata("document", &name),
            &data,
        )
        .await
        .unwrap();
        out.push((artifact, data));
    }
    out
}

/// An active memory binding holding artifacts of `sizes`, then a new active memory
/// binding (the target) replacing it.
async fn memory_source_and_target(
    app: &stowage_integration::TestApp,
    token: &str,
    sizes: &[usize],
) -> (pb::Binding, Vec<(pb::Artifact, Vec<u8>)>, pb::Binding) {
    let mut bindings = app.bindings(Some(token)).await;
    let source = migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let uploaded = upload(app, token, 0, sizes).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    (source, uploaded, target)
}

fn limited(target: &str, objects_per_second: i64) -> pb::StartRunRequest {
    let mut request = start_request(target, pb::MigrationMode::Live);
    request.limit = Some(pb::ThroughputLimit {
        bytes_per_second: 0,
        objects_per_second,
    });
    request
}

#[tokio::test]
async fn a_dry_run_counts_by_source_binding_and_touches_no_store() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let (a, b, t) = (
        ProxiedContainer::create().await.unwrap(),
        ProxiedContainer::create().await.unwrap(),
        ProxiedContainer::create().await.unwrap(),
    );
    let a_binding = migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    upload(&app, &token, 0, &[1000, 2000, 3000]).await;
    let b_binding = migration::create_active(&mut bindings, b.binding("b"))
        .await
        .unwrap();
    upload(&app, &token, 10, &[500, 700]).await;
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
async fn a_live_run_migrates_every_artifact_verified_and_leaves_sources_untouched() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let a = ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    // One object larger than an upload part (multipart on both sides).
    let on_a = upload(&app, &token, 0, &[9 * 1024 * 1024 + 5, 4096, 1, 0, 70_000]).await;
    migration::create_active(&mut bindings, migration::memory_binding("b"))
        .await
        .unwrap();
    let on_b = upload(&app, &token, 20, &[100, 200, 300]).await;
    let target = migration::create_active(
        &mut bindings,
        migration::azurite_binding("t").await.unwrap(),
    )
    .await
    .unwrap();
    let raw = a.raw_store().unwrap();
    let mut stored_before = Vec::new();
    for (artifact, _) in &on_a {
        stored_before.push(
            migration::read_raw(&raw, &artifact.object_key)
                .await
                .unwrap(),
        );
    }

    let mut runs = app.runs(Some(&token)).await;
    let mut request = start_request(&target.id, pb::MigrationMode::Live);
    request.request_id = "start-1".into();
    let started = runs.start_run(request.clone()).await.unwrap().into_inner();
    let repeated = runs.start_run(request).await.unwrap().into_inner();
    assert_eq!(
        repeated.id, started.id,
        "a repeated request_id returns the first run"
    );
    let run = migration::wait_for_end(&mut runs, &started.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    let counts = run.items.unwrap();
    assert_eq!((counts.migrated, counts.failed, counts.queued), (8, 0, 0));
    let total: i64 = on_a.iter().chain(&on_b).map(|(_, d)| d.len() as i64).sum();
    assert_eq!(run.bytes_migrated, total);

    let mut artifacts = app.artifacts(Some(&token)).await;
    for (artifact, data) in on_a.iter().chain(&on_b) {
        let (now, read) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
        assert_eq!(now.binding_id, target.id);
        assert_eq!(now.sha256, artifact.sha256);
        assert!(read == *data, "content of {} changed", artifact.name);
    }
    for ((artifact, _), before) in on_a.iter().zip(&stored_before) {
        let after = migration::read_raw(&raw, &artifact.object_key)
            .await
            .unwrap();
        assert!(
            after == *before,
            "the source object of {} was touched",
            artifact.name
        );
    }

    let mut evidence = app.evidence(Some(&token)).await;
    let by_run = pb::ListEvidenceRequest {
        run_id: run.id.clone(),
        ..Default::default()
    };
    let audit = evidence
        .list_audit_entries(by_run.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(audit.entries.len(), 1);
    let entry = &audit.entries[0];
    assert_eq!(entry.action, "StartRun");
    assert_eq!(entry.actor, "test-user");
    assert_eq!(entry.mode(), pb::MigrationMode::Live);
    assert_eq!(entry.binding_id, target.id);
    assert_eq!(entry.reason, "move older files to the new bucket");
    let events = evidence
        .list_domain_events(by_run.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.events.len(), 1);
    assert_eq!(events.events[0].r#type, "storageMigrationRunCompleted");
    let payload: serde_json::Value = serde_json::from_str(&events.events[0].payload_json).unwrap();
    assert_eq!(payload["items"]["migrated"], 8);
    assert!(
        evidence
            .list_security_events(by_run)
            .await
            .unwrap()
            .into_inner()
            .events
            .is_empty()
    );

    // Nothing is left to do: the next run has no items.
    let again = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Live))
        .await
        .unwrap()
        .into_inner();
    let again = migration::wait_for_end(&mut runs, &again.id, WAIT)
        .await
        .unwrap();
    assert_eq!(again.state(), pb::RunState::Completed);
    assert_eq!(again.items.unwrap().migrated, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_run_is_queued_then_planning_then_running() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, _, target) = memory_source_and_target(&app, &token, &[64; 4]).await;
    // Hold planning at its first page: a transaction of our own locks the artifacts.
    let mut db = app.db.client().await.unwrap();
    let blocker = db.transaction().await.unwrap();
    blocker
        .batch_execute("lock table migration.artifacts in access exclusive mode")
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 2))
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
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    upload(&app, &token, 0, &[10, 20]).await;
    let pending = migration::create(&mut bindings, migration::memory_binding("p"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(start_request(&pending.id, pb::MigrationMode::Live))
        .await
        .unwrap()
        .into_inner();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
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
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
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
async fn a_revoked_source_credential_fails_items_and_a_new_run_after_the_fix_migrates_only_those() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let a = ProxiedContainer::create().await.unwrap();
    let a_binding = migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    let on_a = upload(&app, &token, 0, &[100, 200, 300]).await;
    migration::create_active(
        &mut bindings,
        migration::azurite_binding("b").await.unwrap(),
    )
    .await
    .unwrap();
    upload(&app, &token, 10, &[400, 500]).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();

    let revoked = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 64]);
    bindings
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id: a_binding.id.clone(),
            credential: Some(migration::azure_credential(&a.endpoint(), &revoked)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let first = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Live))
        .await
        .unwrap()
        .into_inner();
    let first = migration::wait_for_end(&mut runs, &first.id, WAIT)
        .await
        .unwrap();
    assert_eq!(
        first.state(),
        pb::RunState::CompletedWithErrors,
        "{first:?}"
    );
    let failed = migration::items(&mut runs, &first.id, pb::ItemState::Failed)
        .await
        .unwrap();
    assert_eq!(failed.len(), 3);
    for item in &failed {
        assert_eq!(
            item.cause(),
            pb::ItemCause::SourcePermissionDenied,
            "{item:?}"
        );
        assert_eq!(item.source_binding_id, a_binding.id);
        assert!(!item.cause_detail.is_empty());
    }
    assert_eq!(first.items.unwrap().migrated, 2);

    bindings
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id: a_binding.id.clone(),
            credential: Some(migration::azure_credential(&a.endpoint(), DEV_KEY)),
            request_id: String::new(),
        })
        .await
        .unwrap();
    // RetryRun is for FAILED runs; the failures of a run that completed with errors are
    // picked up by a new run's planning.
    let refused = runs
        .retry_run(pb::RetryRunRequest {
            id: first.id.clone(),
            reason: "credential fixed".into(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(refused.message().contains("start a new run"), "{refused:?}");
    let mut again = start_request(&target.id, pb::MigrationMode::Live);
    again.reason = "credential fixed".into();
    let retry = runs.start_run(again).await.unwrap().into_inner();
    let retry = migration::wait_for_end(&mut runs, &retry.id, WAIT)
        .await
        .unwrap();
    assert_eq!(retry.state(), pb::RunState::Completed);
    let migrated = migration::items(&mut runs, &retry.id, pb::ItemState::Migrated)
        .await
        .unwrap();
    let migrated: HashSet<_> = migrated.into_iter().map(|i| i.artifact_id).collect();
    let expected: HashSet<_> = on_a.iter().map(|(a, _)| a.id.clone()).collect();
    assert_eq!(
        migrated, expected,
        "the new run migrates exactly what had failed"
    );

    let not_failed = runs
        .retry_run(pb::RetryRunRequest {
            id: retry.id.clone(),
            reason: String::new(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(not_failed.code(), Code::FailedPrecondition);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn changed_deleted_and_vanished_sources_are_told_apart() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let a = ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    let uploaded = upload(&app, &token, 0, &[1000, 1001, 1002, 1003, 1004, 1005, 1006]).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let raw = a.raw_store().unwrap();
    let key =
        |i: usize| stowage_shared::blob::BlobKey::new(uploaded[i].0.object_key.clone()).unwrap();
    // 0: modified externally (another valid object under our keys); 1: its object deleted.
    let other = migration::read_raw(&raw, &uploaded[2].0.object_key)
        .await
        .unwrap();
    raw.put(&key(0), other.into(), false, &[]).await.unwrap();
    raw.delete(&key(1)).await.unwrap();

    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 2))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.state() == pb::RunState::Running
    })
    .await
    .unwrap();
    // 6 starts about three seconds in: deleted after planning, before execution.
    let mut artifacts = app.artifacts(Some(&token)).await;
    artifacts
        .delete_artifact(pb::DeleteArtifactRequest {
            id: uploaded[6].0.id.clone(),
        })
        .await
        .unwrap();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::CompletedWithErrors);
    let all = migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
        .await
        .unwrap();
    let outcome = |i: usize| {
        let item = all
            .iter()
            .find(|x| x.artifact_id == uploaded[i].0.id)
            .unwrap();
        (item.state(), item.cause())
    };
    assert_eq!(
        outcome(0),
        (pb::ItemState::Failed, pb::ItemCause::ChecksumMismatch)
    );
    assert_eq!(
        outcome(1),
        (pb::ItemState::Failed, pb::ItemCause::SourceNotFound)
    );
    assert_eq!(
        outcome(6),
        (pb::ItemState::Skipped, pb::ItemCause::ArtifactDeleted)
    );
    for i in 2..6 {
        assert_eq!(outcome(i).0, pb::ItemState::Migrated);
    }
    // Failed items stay on their source.
    let stat = artifacts
        .stat_artifact(pb::StatArtifactRequest {
            id: uploaded[0].0.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stat.binding_id, uploaded[0].0.binding_id);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_target_killed_mid_run_fails_the_run_closed_with_no_fallback() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let source = migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let uploaded = upload(&app, &token, 0, &[4096; 24]).await;
    let t = ProxiedContainer::create().await.unwrap();
    let target = migration::create_active(&mut bindings, t.binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 8))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.items.as_ref().is_some_and(|c| c.migrated >= 3)
    })
    .await
    .unwrap();
    t.proxy.kill();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Failed, "{run:?}");
    assert_eq!(run.failure_cause(), pb::RunFailureCause::TargetUnavailable);
    let counts = run.items.unwrap();
    assert!(counts.migrated >= 3 && counts.migrated < 24, "{counts:?}");

    let mut evidence = app.evidence(Some(&token)).await;
    let by_run = pb::ListEvidenceRequest {
        run_id: run.id.clone(),
        ..Default::default()
    };
    let security = evidence
        .list_security_events(by_run.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(security.events.len(), 1);
    assert_eq!(
        security.events[0].r#type,
        "storageOperationsMigrationFailed"
    );
    assert_eq!(security.events[0].binding_id, target.id);
    let events = evidence
        .list_domain_events(by_run)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(events.events[0].r#type, "storageMigrationRunFailed");

    // Nothing is left open behind the failed run: items never started end FAILED with
    // RUN_FAILED, those cut off mid-write with TARGET_UNAVAILABLE, and the counts add up.
    assert_eq!((counts.queued, counts.running), (0, 0), "{counts:?}");
    assert_eq!(counts.migrated + counts.skipped + counts.failed, 24);
    let all = migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
        .await
        .unwrap();
    assert_eq!(all.len(), 24);
    for item in &all {
        assert!(
            matches!(
                item.state(),
                pb::ItemState::Migrated | pb::ItemState::Failed
            ),
            "{item:?}"
        );
    }
    let never_started = all
        .iter()
        .filter(|i| i.cause() == pb::ItemCause::RunFailed)
        .count();
    assert!(never_started > 0, "{all:?}");
    for item in all.iter().filter(|i| i.state() == pb::ItemState::Failed) {
        assert!(
            matches!(
                item.cause(),
                pb::ItemCause::TargetUnavailable | pb::ItemCause::RunFailed
            ),
            "{item:?}"
        );
    }
    // Only what was leased when the target first refused a write (a batch of 8 and the 4
    // workers' items) was cut off: no batch is leased after that sign.
    let cut_off = all
        .iter()
        .filter(|i| i.cause() == pb::ItemCause::TargetUnavailable)
        .count();
    assert!(
        cut_off <= 8 + 4,
        "{cut_off} items were started against a failing target"
    );
    let mut artifacts = app.artifacts(Some(&token)).await;
    let mut on_target = 0;
    for (artifact, data) in &uploaded {
        let now = artifacts
            .stat_artifact(pb::StatArtifactRequest {
                id: artifact.id.clone(),
            })
            .await
            .unwrap()
            .into_inner();
        if now.binding_id == target.id {
            on_target += 1;
        } else {
            assert_eq!(
                now.binding_id, source.id,
                "nothing falls back to another store"
            );
            let (_, read) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
            assert!(
                read == *data,
                "an artifact left on its source stays readable"
            );
        }
    }
    assert_eq!(on_target, counts.migrated);

    // A FAILED run is what RetryRun is for.
    let retry = runs
        .retry_run(pb::RetryRunRequest {
            id: run.id.clone(),
            reason: "target back".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retry.retry_of_run_id, run.id);
    runs.cancel_run(pb::CancelRunRequest {
        id: retry.id,
        reason: "not yet".into(),
    })
    .await
    .unwrap();
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_throttled_run_shows_queued_and_running_items_and_cancels_after_them() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (source, _, target) = memory_source_and_target(&app, &token, &[256; 14]).await;
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 3))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.items.as_ref().is_some_and(|c| c.migrated >= 1)
    })
    .await
    .unwrap();
    let queued = migration::items(&mut runs, &run.id, pb::ItemState::Queued)
        .await
        .unwrap();
    let running = migration::items(&mut runs, &run.id, pb::ItemState::Running)
        .await
        .unwrap();
    assert!(!queued.is_empty() && !running.is_empty());
    let cancelled = runs
        .cancel_run(pb::CancelRunRequest {
            id: run.id.clone(),
            reason: "wrong window".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(cancelled.cancel_requested);
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Cancelled);
    let counts = run.items.unwrap();
    assert!(counts.queued > 0 && counts.running == 0, "{counts:?}");
    let mut artifacts = app.artifacts(Some(&token)).await;
    let on_source = artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            binding_id: source.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(on_source.artifacts.len() as i64, 14 - counts.migrated);
    app.stop().await.unwrap();
}

/// Reads a watch stream until it ends or `outcomes` outcomes arrived.
async fn follow(
    runs: &mut pb::migration_service_client::MigrationServiceClient<
        stowage_integration::app::Bearer,
    >,
    run_id: &str,
    resume_after: i64,
    outcomes: usize,
) -> (Vec<pb::RunEvent>, bool) {
    let mut stream = runs
        .watch_run(pb::WatchRunRequest {
            id: run_id.to_owned(),
            resume_after,
        })
        .await
        .unwrap()
        .into_inner();
    let mut events = Vec::new();
    let mut seen = 0;
    while let Some(event) = tokio::time::timeout(WAIT, stream.message())
        .await
        .unwrap()
        .unwrap()
    {
        if matches!(event.event, Some(pb::run_event::Event::Outcome(_))) {
            seen += 1;
        }
        events.push(event);
        if seen == outcomes {
            return (events, false);
        }
    }
    (events, true)
}

fn outcome_ids(events: &[pb::RunEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match &e.event {
            Some(pb::run_event::Event::Outcome(item)) => Some(item.artifact_id.clone()),
            _ => None,
        })
        .collect()
}

#[tokio::test]
async fn watchers_joining_late_or_rejoining_with_a_cursor_see_every_outcome_once() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, target) = memory_source_and_target(&app, &token, &[512; 30]).await;
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 15))
        .await
        .unwrap()
        .into_inner();

    let (first, ended) = follow(&mut runs, &run.id, 0, 10).await;
    assert!(!ended);
    assert!(matches!(
        first[0].event,
        Some(pb::run_event::Event::Snapshot(_))
    ));
    let cursor = first.last().unwrap().cursor;
    let (rest, ended) = follow(&mut runs, &run.id, cursor, usize::MAX).await;
    assert!(ended, "the stream ends when the run does");
    assert!(matches!(
        rest[0].event,
        Some(pb::run_event::Event::Snapshot(_))
    ));
    let last_run = rest
        .iter()
        .rev()
        .find_map(|e| match &e.event {
            Some(pb::run_event::Event::Update(run)) => Some(run.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(last_run.state(), pb::RunState::Completed);
    assert!(rest.iter().any(|e| matches!(&e.event,
        Some(pb::run_event::Event::Update(r)) if r.state() == pb::RunState::Running)));

    let mut seen = outcome_ids(&first);
    seen.extend(outcome_ids(&rest));
    let unique: HashSet<_> = seen.iter().cloned().collect();
    assert_eq!(seen.len(), unique.len(), "no outcome twice");
    let all: HashSet<_> = uploaded.iter().map(|(a, _)| a.id.clone()).collect();
    assert_eq!(unique, all, "every outcome once");
    let cursors: Vec<i64> = first.iter().chain(&rest).map(|e| e.cursor).collect();
    assert!(cursors.windows(2).all(|w| w[0] <= w[1] || w[1] == cursor));

    // A watcher that joins after the end replays everything, then ends.
    let (late, ended) = follow(&mut runs, &run.id, 0, usize::MAX).await;
    assert!(ended);
    assert_eq!(outcome_ids(&late).len(), 30);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_replica_killed_mid_run_is_taken_over_and_the_run_completes() {
    let app = spawn_app_configured(|c| c.migration.migration.enabled = false)
        .await
        .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let uploaded = upload(&app, &token, 0, &[16 * 1024; 24]).await;
    let target = migration::create_active(
        &mut bindings,
        migration::azurite_binding("t").await.unwrap(),
    )
    .await
    .unwrap();
    let first = app.replica(test_runner()).await.unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 6))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.items.as_ref().is_some_and(|c| c.migrated >= 4)
    })
    .await
    .unwrap();
    first.kill().await;
    let stalled = runs
        .get_run(pb::GetRunRequest { id: run.id.clone() })
        .await
        .unwrap()
        .into_inner();
    assert!(!is_terminal(stalled.state()));

    let _second = app.replica(test_runner()).await.unwrap();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    let items = migration::items(&mut runs, &run.id, pb::ItemState::Unspecified)
        .await
        .unwrap();
    assert_eq!(items.len(), 24);
    assert!(items.iter().all(|i| i.state() == pb::ItemState::Migrated));
    let sequences: HashSet<_> = items.iter().map(|i| i.outcome_sequence).collect();
    assert_eq!(sequences, (1..=24).collect(), "one outcome per item");
    assert!(
        items.iter().any(|i| i.attempts >= 2),
        "the killed replica's leased items were taken over"
    );
    let mut artifacts = app.artifacts(Some(&token)).await;
    for (artifact, data) in &uploaded {
        let (now, read) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
        assert_eq!(now.binding_id, target.id);
        assert!(read == *data);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_target_replaced_mid_run_fails_the_run_closed_and_a_second_live_run_waits_its_turn() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let (source, _, target) = memory_source_and_target(&app, &token, &[128; 20]).await;
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(limited(&target.id, 5))
        .await
        .unwrap()
        .into_inner();
    let second = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Live))
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition, "{second:?}");
    migration::wait_for(&mut runs, &run.id, WAIT, |r| {
        r.items.as_ref().is_some_and(|c| c.migrated >= 2)
    })
    .await
    .unwrap();
    let newer = migration::create_active(&mut bindings, migration::memory_binding("n"))
        .await
        .unwrap();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Failed, "{run:?}");
    assert_eq!(run.failure_cause(), pb::RunFailureCause::TargetNotActive);
    let counts = run.items.unwrap();
    assert_eq!(counts.running, 0);
    let security = app
        .evidence(Some(&token))
        .await
        .list_security_events(pb::ListEvidenceRequest {
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(security.events.len(), 1);
    let mut artifacts = app.artifacts(Some(&token)).await;
    let listed = artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            page_size: 100,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let on_target = listed
        .artifacts
        .iter()
        .filter(|a| a.binding_id == target.id)
        .count();
    assert_eq!(on_target as i64, counts.migrated);
    assert!(
        listed
            .artifacts
            .iter()
            .all(|a| a.binding_id == target.id || a.binding_id == source.id)
    );
    assert!(!listed.artifacts.iter().any(|a| a.binding_id == newer.id));
    app.stop().await.unwrap();
}
