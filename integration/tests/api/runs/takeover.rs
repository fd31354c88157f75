//! Replicas sharing a run: one killed mid-run leaves its leases to expire and another
//! takes them over.

use std::collections::HashSet;

use stowage_integration::{
    app::test_runner,
    migration::{self, is_terminal},
    spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;

use super::WAIT;

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
    let uploaded = migration::upload(&app, &token, 0, &[16 * 1024; 24])
        .await
        .unwrap();
    let target = migration::create_active(
        &mut bindings,
        migration::azurite_binding("t").await.unwrap(),
    )
    .await
    .unwrap();
    let first = app.replica(test_runner()).await.unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = runs
        .start_run(migration::limited_request(&target.id, 6))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for_migrated(&mut runs, &run.id, 4, WAIT)
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
