//! Failing closed: a target that stops taking writes or stops being active fails the
//! run, with a security event and no fallback to any other store.

use stowage_integration::{
    migration::{self, start_request},
    spawn_app,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tonic::Code;

use super::WAIT;

#[tokio::test]
async fn a_target_killed_mid_run_fails_the_run_closed_with_no_fallback() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (source, uploaded, t, target) =
        migration::memory_source_and_proxied_target(&app, &token, &[4096; 24])
            .await
            .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::start_limited_and_wait(&mut runs, &target.id, 8, 3, WAIT)
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
async fn a_target_replaced_mid_run_fails_the_run_closed_and_a_second_live_run_waits_its_turn() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let (source, _, target) = migration::memory_source_and_target(&app, &token, &[128; 20])
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(migration::limited_request(&target.id, 5))
        .await
        .unwrap()
        .into_inner();
    let second = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Live))
        .await
        .unwrap_err();
    assert_eq!(second.code(), Code::FailedPrecondition, "{second:?}");
    migration::wait_for_migrated(&mut runs, &run.id, 2, WAIT)
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
