//! Live runs: artifacts copied verified and re-pointed, sources untouched; items that
//! fail or are skipped with their causes, and retries after a fix; a throttled run cancelled.

use std::collections::HashSet;

use stowage_integration::{
    migration::{self, ProxiedContainer, start_request},
    spawn_app,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{auth::Role, blob::azure::DEV_KEY};
use tonic::Code;

use super::WAIT;

#[tokio::test]
async fn a_live_run_migrates_every_artifact_verified_and_leaves_sources_untouched() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let a = ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    // One object larger than an upload part (multipart on both sides).
    let on_a = migration::upload(&app, &token, 0, &[9 * 1024 * 1024 + 5, 4096, 1, 0, 70_000])
        .await
        .unwrap();
    migration::create_active(&mut bindings, migration::memory_binding("b"))
        .await
        .unwrap();
    let on_b = migration::upload(&app, &token, 20, &[100, 200, 300])
        .await
        .unwrap();
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
    let again = migration::run_to_end(
        &mut runs,
        start_request(&target.id, pb::MigrationMode::Live),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(again.state(), pb::RunState::Completed);
    assert_eq!(again.items.unwrap().migrated, 0);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_revoked_source_credential_fails_items_and_a_new_run_after_the_fix_migrates_only_those() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let a = ProxiedContainer::create().await.unwrap();
    let a_binding = migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    let on_a = migration::upload(&app, &token, 0, &[100, 200, 300])
        .await
        .unwrap();
    migration::create_active(
        &mut bindings,
        migration::azurite_binding("b").await.unwrap(),
    )
    .await
    .unwrap();
    migration::upload(&app, &token, 10, &[400, 500])
        .await
        .unwrap();
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
    let first = migration::run_to_end(
        &mut runs,
        start_request(&target.id, pb::MigrationMode::Live),
        WAIT,
    )
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
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let a = ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, a.binding("a"))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &[1000, 1001, 1002, 1003, 1004, 1005, 1006])
        .await
        .unwrap();
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
        .start_run(migration::limited_request(&target.id, 2))
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
async fn a_throttled_run_shows_queued_and_running_items_and_cancels_after_them() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (source, _, target) = migration::memory_source_and_target(&app, &token, &[256; 14])
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(migration::limited_request(&target.id, 3))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for_migrated(&mut runs, &run.id, 1, WAIT)
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
