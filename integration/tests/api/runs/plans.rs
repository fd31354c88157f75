//! Executable plans: a dry run's report carries its plan's digest, and a live run started
//! from the dry run (`from_dry_run_id`) executes that plan, or is refused with the exact
//! drift (added, removed, changed) when the candidates no longer match it, unless the
//! caller accepts the drift.

use stowage_integration::{
    TestApp,
    migration::{self, start_request},
    spawn_app,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tonic::Code;

use super::WAIT;

async fn dry_run(
    runs: &mut pb::migration_service_client::MigrationServiceClient<
        stowage_integration::app::Bearer,
    >,
    target: &str,
    scope: Option<pb::RunScope>,
) -> pb::Run {
    let request = pb::StartRunRequest {
        scope,
        ..start_request(target, pb::MigrationMode::DryRun)
    };
    let run = runs.start_run(request).await.unwrap().into_inner();
    let run = migration::wait_for_end(runs, &run.id, WAIT).await.unwrap();
    assert_eq!(run.state(), pb::RunState::Completed);
    run
}

fn from(target: &str, dry_run: &str, accept_drift: bool) -> pb::StartRunRequest {
    pb::StartRunRequest {
        from_dry_run_id: dry_run.to_owned(),
        accept_drift,
        ..start_request(target, pb::MigrationMode::Live)
    }
}

async fn organization_with_artifacts(
    app: &TestApp,
    token: &str,
) -> (Vec<pb::Artifact>, pb::Binding) {
    let (_, uploaded, target) =
        migration::memory_source_and_target(app, token, &[100, 200, 300, 400])
            .await
            .unwrap();
    (uploaded.into_iter().map(|(a, _)| a).collect(), target)
}

#[tokio::test]
async fn a_live_run_from_a_dry_run_executes_its_plan_when_nothing_drifted() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, target) = organization_with_artifacts(&app, &token).await;
    let mut runs = app.runs(Some(&token)).await;

    let dry = dry_run(&mut runs, &target.id, None).await;
    assert_eq!(dry.plan_digest.len(), 64, "{dry:?}");
    let again = dry_run(&mut runs, &target.id, None).await;
    assert_eq!(
        again.plan_digest, dry.plan_digest,
        "the same plan, the same digest"
    );
    let scoped = dry_run(
        &mut runs,
        &target.id,
        Some(pb::RunScope {
            purposes: vec!["document".into()],
            ..Default::default()
        }),
    )
    .await;
    assert_ne!(
        scoped.plan_digest, dry.plan_digest,
        "the scope is part of the plan"
    );

    let live = runs
        .start_run(from(&target.id, &dry.id, false))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(live.from_dry_run_id, dry.id);
    let live = migration::wait_for_end(&mut runs, &live.id, WAIT)
        .await
        .unwrap();
    assert_eq!(live.state(), pb::RunState::Completed);
    assert_eq!(live.items.unwrap().migrated, 4);
    assert_eq!(live.bytes_total, dry.bytes_total);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_plan_the_candidates_drifted_from_is_refused_with_the_drift_unless_accepted() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let source = migration::create_active(&mut bindings, migration::memory_binding("a"))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &[100, 200, 300])
        .await
        .unwrap();
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let dry = dry_run(&mut runs, &target.id, None).await;

    // one artifact deleted, one added on the old binding (active again for the upload)
    let mut artifacts = app.artifacts(Some(&token)).await;
    let removed = uploaded[0].0.id.clone();
    artifacts
        .delete_artifact(pb::DeleteArtifactRequest {
            id: removed.clone(),
        })
        .await
        .unwrap();
    migration::activate(&mut bindings, &source.id)
        .await
        .unwrap();
    let added = migration::upload(&app, &token, 10, &[50]).await.unwrap()[0]
        .0
        .id
        .clone();
    migration::activate(&mut bindings, &target.id)
        .await
        .unwrap();

    let refused = runs
        .start_run(from(&target.id, &dry.id, false))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition, "{refused:?}");
    let message = refused.message();
    assert!(message.contains(&format!("1 added ({added})")), "{message}");
    assert!(
        message.contains(&format!("1 removed ({removed})")),
        "{message}"
    );
    assert!(!message.contains("changed"), "{message}");

    let accepted = migration::run_to_end(&mut runs, from(&target.id, &dry.id, true), WAIT)
        .await
        .unwrap();
    assert_eq!(
        accepted.items.unwrap().migrated,
        3,
        "the candidates as they are now"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn only_a_completed_dry_run_for_the_same_target_is_executed() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, target) = organization_with_artifacts(&app, &token).await;
    let mut runs = app.runs(Some(&token)).await;
    let live = runs
        .start_run(start_request(&target.id, pb::MigrationMode::Live))
        .await
        .unwrap()
        .into_inner();
    migration::wait_for_end(&mut runs, &live.id, WAIT)
        .await
        .unwrap();
    let status = runs
        .start_run(from(&target.id, &live.id, false))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(
        status.message().contains("is a live run"),
        "{}",
        status.message()
    );

    let dry = dry_run(&mut runs, &target.id, None).await;
    let cases = [
        (
            pb::StartRunRequest {
                mode: pb::MigrationMode::DryRun.into(),
                ..from(&target.id, &dry.id, false)
            },
            "from_dry_run_id",
        ),
        (
            pb::StartRunRequest {
                scope: Some(pb::RunScope {
                    purposes: vec!["x".into()],
                    ..Default::default()
                }),
                ..from(&target.id, &dry.id, false)
            },
            "scope",
        ),
        (from(&target.id, "not-a-run", false), "from_dry_run_id"),
        (
            pb::StartRunRequest {
                accept_drift: true,
                ..start_request(&target.id, pb::MigrationMode::Live)
            },
            "accept_drift",
        ),
    ];
    for (request, field) in cases {
        let status = runs.start_run(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    app.stop().await.unwrap();
}
