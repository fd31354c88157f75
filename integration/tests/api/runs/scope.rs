//! Scoped runs: a run that names purposes (to include or exclude), source bindings or a
//! creation-time window plans and moves only those artifacts, dry or live, and shows its
//! scope in GetRun; the empty scope is the whole organization.

use std::collections::BTreeSet;

use stowage_integration::{
    TestApp,
    migration::{self, start_request},
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::api;
use tonic::Code;

use super::WAIT;

/// Uploads one artifact of each `purposes` to the active binding; returns their ids.
async fn put_each(app: &TestApp, token: &str, purposes: &[&str]) -> Vec<String> {
    let mut artifacts = app.artifacts(Some(token)).await;
    let mut ids = Vec::new();
    for (i, purpose) in purposes.iter().enumerate() {
        let name = format!("{purpose}-{i}-{}", uuid::Uuid::new_v4());
        let metadata = migration::metadata(purpose, &name);
        let artifact = migration::put(&mut artifacts, metadata, &migration::content(i, 300))
            .await
            .unwrap();
        ids.push(artifact.id);
    }
    ids
}

/// The artifacts now on `binding`.
async fn on_binding(app: &TestApp, token: &str, binding: &str) -> BTreeSet<String> {
    let mut artifacts = app.artifacts(Some(token)).await;
    let list = artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            page_size: 1000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    list.artifacts
        .into_iter()
        .filter(|a| a.binding_id == binding)
        .map(|a| a.id)
        .collect()
}

fn scoped(target: &str, mode: pb::MigrationMode, scope: pb::RunScope) -> pb::StartRunRequest {
    pb::StartRunRequest {
        scope: Some(scope),
        ..start_request(target, mode)
    }
}

#[tokio::test]
async fn a_run_scoped_by_purpose_and_source_binding_moves_only_its_scope() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let a = migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let on_a = put_each(&app, &token, &["invoice", "invoice", "log", "contract"]).await;
    migration::create_active(&mut bindings, migration::memory_binding("b"))
        .await
        .unwrap();
    let on_b = put_each(&app, &token, &["invoice", "contract"]).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;

    // invoices and contracts of binding a, but no contracts: a's two invoices
    let scope = pb::RunScope {
        purposes: vec!["invoice".into(), "contract".into()],
        excluded_purposes: vec!["log".into()],
        source_binding_ids: vec![a.id.clone()],
        ..Default::default()
    };
    let narrower = pb::RunScope {
        purposes: vec!["invoice".into()],
        ..scope.clone()
    };
    let dry = migration::run_to_end(
        &mut runs,
        scoped(&target.id, pb::MigrationMode::DryRun, narrower.clone()),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(dry.state(), pb::RunState::Completed);
    assert_eq!(
        dry.scope.as_ref(),
        Some(&narrower),
        "GetRun shows the scope"
    );
    let planned: i64 = dry.sources.iter().map(|s| s.artifacts).sum();
    assert_eq!(planned, 2, "{:?}", dry.sources);
    assert_eq!(dry.bytes_total, 600);

    let live = migration::run_to_end(
        &mut runs,
        scoped(&target.id, pb::MigrationMode::Live, narrower),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(live.state(), pb::RunState::Completed);
    assert_eq!(live.items.unwrap().migrated, 2);
    let moved: BTreeSet<String> = on_a[..2].iter().cloned().collect();
    assert_eq!(on_binding(&app, &token, &target.id).await, moved);

    // the same scope with contracts too moves a's contract only; an empty scope the rest
    let contracts = migration::run_to_end(
        &mut runs,
        scoped(&target.id, pb::MigrationMode::Live, scope),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(contracts.items.unwrap().migrated, 1);
    let rest = migration::run_to_end(
        &mut runs,
        start_request(&target.id, pb::MigrationMode::Live),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(rest.items.unwrap().migrated, 3, "a's log and b's two");
    assert_eq!(rest.scope.unwrap_or_default(), pb::RunScope::default());
    let everything: BTreeSet<String> = on_a.iter().chain(&on_b).cloned().collect();
    assert_eq!(on_binding(&app, &token, &target.id).await, everything);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_run_scoped_by_creation_time_moves_only_what_was_created_in_its_window() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let early = put_each(&app, &token, &["document", "document"]).await;
    let cut = chrono::Utc::now();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let late = put_each(&app, &token, &["document"]).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let before = pb::RunScope {
        created_before: Some(api::timestamp(cut)),
        ..Default::default()
    };
    let run = migration::run_to_end(
        &mut runs,
        scoped(&target.id, pb::MigrationMode::Live, before),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(run.items.unwrap().migrated, 2);
    let moved: BTreeSet<String> = early.into_iter().collect();
    assert_eq!(on_binding(&app, &token, &target.id).await, moved);

    let after = pb::RunScope {
        created_after: Some(api::timestamp(cut)),
        ..Default::default()
    };
    let run = migration::run_to_end(
        &mut runs,
        scoped(&target.id, pb::MigrationMode::Live, after),
        WAIT,
    )
    .await
    .unwrap();
    assert_eq!(run.items.unwrap().migrated, 1);
    assert!(
        on_binding(&app, &token, &target.id)
            .await
            .contains(&late[0])
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_scope_is_refused_naming_its_field() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let cases = [
        (
            pb::RunScope {
                source_binding_ids: vec!["not-a-binding".into()],
                ..Default::default()
            },
            "scope.source_binding_ids",
        ),
        (
            pb::RunScope {
                purposes: vec!["log".into()],
                excluded_purposes: vec!["log".into()],
                ..Default::default()
            },
            "scope.excluded_purposes",
        ),
    ];
    for (scope, field) in cases {
        let status = runs
            .start_run(scoped(&target.id, pb::MigrationMode::DryRun, scope))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    app.stop().await.unwrap();
}
