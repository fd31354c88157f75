//! Verified source cleanup (CleanupRun) through the gRPC API on PostgreSQL and file
//! stores: nothing is deleted before the waiting window; past it, a source is deleted only
//! after the artifact's current copy read back verified, never when that copy is missing
//! or corrupt (a security event instead); each deletion is in the evidence; a dry run
//! deletes nothing; a deletion a crash left half done is finished, after verifying again;
//! and what may not be cleaned is refused.

use std::{collections::BTreeMap, path::PathBuf};

use stowage_integration::{TestApp, migration, spawn_app};
use stowage_proto::migration::v1::{self as pb, cleanup_run_response::Report};
use stowage_shared::auth::Role;
use tonic::Code;
use uuid::Uuid;

use super::WAIT;

fn request(run: &str, mode: pb::MigrationMode) -> pb::CleanupRunRequest {
    pb::CleanupRunRequest {
        run_id: run.to_owned(),
        mode: mode.into(),
        reason: "free the old disk".into(),
        limit: 0,
    }
}

async fn cleanup(
    app: &TestApp,
    token: &str,
    request: pb::CleanupRunRequest,
) -> Result<(BTreeMap<String, pb::CleanupItem>, pb::CleanupSummary), tonic::Status> {
    let mut runs = app.runs(Some(token)).await;
    let mut stream = runs.cleanup_run(request).await?.into_inner();
    let (mut items, mut summary) = (BTreeMap::new(), None);
    while let Some(message) = stream.message().await? {
        match message.report.unwrap() {
            Report::Item(item) => {
                assert!(summary.is_none(), "the summary comes last");
                items.insert(item.artifact_id.clone(), item);
            }
            Report::Summary(s) => summary = Some(s),
        }
    }
    Ok((items, summary.expect("a summary")))
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stowage-cleanup-{name}-{}", Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Moves the migration of `artifacts` of `run` `days` into the past.
async fn migrated_days_ago(app: &TestApp, run: &str, artifacts: &[&str], days: i32) {
    let db = app.db.client().await.unwrap();
    let run: Uuid = run.parse().unwrap();
    let ids: Vec<Uuid> = artifacts.iter().map(|a| a.parse().unwrap()).collect();
    db.execute(
        "update migration.run_items set end_time = end_time - make_interval(days => $3)
         where run_id = $1 and artifact_id = any($2)",
        &[&run, &ids, &days],
    )
    .await
    .unwrap();
}

struct Migrated {
    token: String,
    source_binding: String,
    run: pb::Run,
    ids: Vec<String>,
    /// Each artifact's source copy, then its copy on the target.
    sources: Vec<PathBuf>,
    targets: Vec<PathBuf>,
}

/// Four artifacts on a file binding migrated by a live run to another file binding.
async fn migrated(app: &TestApp) -> Migrated {
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let (old, new) = (temp_dir("old"), temp_dir("new"));
    let source = migration::create_active(&mut bindings, migration::file_binding("old", &old))
        .await
        .unwrap();
    let uploaded = migration::upload(app, &token, 0, &[1000, 2000, 3000, 4000])
        .await
        .unwrap();
    let target = migration::create_active(&mut bindings, migration::file_binding("new", &new))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let request = migration::start_request(&target.id, pb::MigrationMode::Live);
    let run = migration::run_to_end(&mut runs, request, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Completed);
    let ids: Vec<String> = uploaded.iter().map(|(a, _)| a.id.clone()).collect();
    let sources = uploaded
        .iter()
        .map(|(a, _)| old.join(&a.object_key))
        .collect();
    let targets = ids
        .iter()
        .map(|id| new.join(format!("artifacts/{}/{id}", target.id)))
        .collect();
    Migrated {
        token,
        source_binding: source.id,
        run,
        ids,
        sources,
        targets,
    }
}

#[tokio::test]
async fn a_source_is_deleted_only_past_the_window_and_after_its_copy_verified() {
    let app = spawn_app().await.unwrap();
    let m = migrated(&app).await;
    let live = pb::MigrationMode::Live;
    assert!(m.sources.iter().chain(&m.targets).all(|p| p.exists()));

    // within the window: nothing read, nothing deleted
    let (items, summary) = cleanup(&app, &m.token, request(&m.run.id, live))
        .await
        .unwrap();
    assert_eq!(items.len(), 4);
    assert!(
        items
            .values()
            .all(|i| i.state() == pb::CleanupState::SkippedNotDue)
    );
    let next_due = summary.next_due_time.unwrap().seconds - chrono::Utc::now().timestamp();
    assert!((6 * 86_400..=7 * 86_400).contains(&next_due), "{next_due}");
    assert!(m.sources.iter().all(|p| p.exists()));

    // three past the window: one intact, one with a flipped byte, one gone from the target
    migrated_days_ago(&app, &m.run.id, &[&m.ids[0], &m.ids[1], &m.ids[2]], 8).await;
    let mut bytes = std::fs::read(&m.targets[1]).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&m.targets[1], bytes).unwrap();
    std::fs::remove_file(&m.targets[2]).unwrap();

    let dry = pb::MigrationMode::DryRun;
    let (items, summary) = cleanup(&app, &m.token, request(&m.run.id, dry))
        .await
        .unwrap();
    let state = |items: &BTreeMap<String, pb::CleanupItem>, i: usize| {
        let item = &items[&m.ids[i]];
        (item.state(), item.cause())
    };
    use pb::{CleanupCause as C, CleanupState as S};
    assert_eq!(state(&items, 0), (S::WouldDelete, C::Unspecified));
    assert_eq!(state(&items, 1), (S::Failed, C::TargetCorrupt));
    assert_eq!(state(&items, 2), (S::Failed, C::TargetMissing));
    assert_eq!(state(&items, 3), (S::SkippedNotDue, C::Unspecified));
    assert_eq!(
        (summary.would_delete, summary.failed, summary.not_due),
        (1, 2, 1)
    );
    assert!(
        m.sources.iter().all(|p| p.exists()),
        "a dry run deletes nothing"
    );

    let (items, summary) = cleanup(&app, &m.token, request(&m.run.id, live))
        .await
        .unwrap();
    assert_eq!(state(&items, 0), (S::VerifiedAndDeleted, C::Unspecified));
    assert_eq!(state(&items, 1), (S::Failed, C::TargetCorrupt));
    assert_eq!(state(&items, 2), (S::Failed, C::TargetMissing));
    assert_eq!(
        (summary.deleted, summary.failed, summary.bytes),
        (1, 2, 1000)
    );
    assert!(!m.sources[0].exists(), "the verified item's source is gone");
    assert!(
        m.sources[1].exists() && m.sources[2].exists(),
        "failed checks keep the source"
    );
    assert!(m.targets[0].exists());
    let mut artifacts = app.artifacts(Some(&m.token)).await;
    let (_, read) = migration::get(&mut artifacts, &m.ids[0]).await.unwrap();
    assert_eq!(
        read,
        migration::content(0, 1000),
        "the artifact reads from its copy"
    );

    // the evidence: the deletion with its verification, the failed checks as security events
    let mut evidence = app.evidence(Some(&m.token)).await;
    let listing = pb::ListEvidenceRequest {
        run_id: m.run.id.clone(),
        ..Default::default()
    };
    let domain = evidence
        .list_domain_events(listing.clone())
        .await
        .unwrap()
        .into_inner();
    let deleted: Vec<serde_json::Value> = domain
        .events
        .iter()
        .filter(|e| e.r#type == "storageSourceDeleted")
        .map(|e| serde_json::from_str(&e.payload_json).unwrap())
        .collect();
    assert_eq!(deleted.len(), 1);
    assert_eq!(deleted[0]["artifact_id"], m.ids[0].as_str());
    assert!(deleted[0]["verification"]["sha256"].is_string());
    let security = evidence
        .list_security_events(listing)
        .await
        .unwrap()
        .into_inner();
    let failed: Vec<&str> = security
        .events
        .iter()
        .filter(|e| e.r#type == "storageCleanupVerificationFailed")
        .map(|e| e.detail_json.as_str())
        .collect();
    assert_eq!(failed.len(), 4, "two failed checks in each of two cleanups");
    assert!(
        failed.iter().any(|d| d.contains(&m.ids[1]))
            && failed.iter().any(|d| d.contains(&m.ids[2]))
    );
    let audit = evidence
        .list_audit_entries(pb::ListEvidenceRequest {
            run_id: m.run.id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        audit
            .entries
            .iter()
            .filter(|e| e.action == "CleanupRun")
            .count(),
        3
    );

    // a deleted source is not looked at again
    let (items, _) = cleanup(&app, &m.token, request(&m.run.id, live))
        .await
        .unwrap();
    assert!(!items.contains_key(&m.ids[0]));
    assert_eq!(items.len(), 3);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_deletion_a_crash_left_half_done_is_finished_after_verifying_again() {
    let app = spawn_app().await.unwrap();
    let m = migrated(&app).await;
    migrated_days_ago(&app, &m.run.id, &[&m.ids[0], &m.ids[1]], 8).await;
    // As a cleanup that died after recording `deleting` leaves them: the first after its
    // source went, the second before.
    let db = app.db.client().await.unwrap();
    db.execute(
        "update migration.run_items set source_cleanup = 'deleting'
         where run_id = $1::text::uuid and artifact_id = any($2::text[]::uuid[])",
        &[&m.run.id, &vec![m.ids[0].clone(), m.ids[1].clone()]],
    )
    .await
    .unwrap();
    std::fs::remove_file(&m.sources[0]).unwrap();
    std::fs::remove_file(&m.targets[1]).unwrap();

    let live = pb::MigrationMode::Live;
    let (items, _) = cleanup(&app, &m.token, request(&m.run.id, live))
        .await
        .unwrap();
    let first = &items[&m.ids[0]];
    assert_eq!(first.state(), pb::CleanupState::VerifiedAndDeleted);
    assert!(first.detail.contains("already gone"), "{}", first.detail);
    let second = &items[&m.ids[1]];
    assert_eq!(
        (second.state(), second.cause()),
        (pb::CleanupState::Failed, pb::CleanupCause::TargetMissing)
    );
    assert!(
        m.sources[1].exists(),
        "an unverified copy keeps its source, begun or not"
    );
    let states: Vec<(String, Option<String>)> = db
        .query(
            "select artifact_id::text, source_cleanup from migration.run_items
             where run_id = $1::text::uuid order by artifact_id",
            &[&m.run.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let of = |id: &str| states.iter().find(|(a, _)| a == id).unwrap().1.clone();
    assert_eq!(of(&m.ids[0]).as_deref(), Some("deleted"));
    assert_eq!(of(&m.ids[1]), None, "the begun deletion is called off");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_source_binding_active_again_keeps_its_copies() {
    let app = spawn_app().await.unwrap();
    let m = migrated(&app).await;
    migrated_days_ago(&app, &m.run.id, &[&m.ids[0]], 8).await;
    // A migration back to it would write the same keys.
    let mut bindings = app.bindings(Some(&m.token)).await;
    migration::activate(&mut bindings, &m.source_binding)
        .await
        .unwrap();
    let live = pb::MigrationMode::Live;
    let (items, summary) = cleanup(&app, &m.token, request(&m.run.id, live))
        .await
        .unwrap();
    let item = &items[&m.ids[0]];
    assert_eq!(
        (item.state(), item.cause()),
        (pb::CleanupState::Failed, pb::CleanupCause::SourceInUse)
    );
    assert_eq!((summary.deleted, summary.failed), (0, 1));
    assert!(m.sources[0].exists());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn what_may_not_be_cleaned_is_refused() {
    let app = spawn_app().await.unwrap();
    let m = migrated(&app).await;
    let live = pb::MigrationMode::Live;
    let member = app.token("acme", &[Role::Member]);
    let status = cleanup(&app, &member, request(&m.run.id, live))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let other = app.token("globex", &[Role::OrgAdmin]);
    let status = cleanup(&app, &other, request(&m.run.id, live))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "another organization's run");

    let mut runs = app.runs(Some(&m.token)).await;
    let dry = migration::start_request(&m.run.target_binding_id, pb::MigrationMode::DryRun);
    let dry = migration::run_to_end(&mut runs, dry, WAIT).await.unwrap();
    let status = cleanup(&app, &m.token, request(&dry.id, live))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert!(status.message().contains("dry run"), "{}", status.message());

    let mut unspecified = request(&m.run.id, live);
    unspecified.mode = 0;
    let status = cleanup(&app, &m.token, unspecified).await.unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(status.message().contains("mode"));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn on_azure_and_s3_a_verified_source_goes_and_one_whose_copy_is_missing_stays() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let azure = migration::ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, azure.binding("azure"))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &[5000, 6000])
        .await
        .unwrap();
    let s3 = stowage_integration::seaweedfs::TestPrefix::create().unwrap();
    let target = migration::create_active(&mut bindings, s3.binding("s3"))
        .await
        .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let start = migration::start_request(&target.id, pb::MigrationMode::Live);
    let run = migration::run_to_end(&mut runs, start, WAIT).await.unwrap();
    let ids: Vec<&str> = uploaded.iter().map(|(a, _)| a.id.as_str()).collect();
    migrated_days_ago(&app, &run.id, &ids, 8).await;
    let (on_azure, on_s3) = (azure.raw_store().unwrap(), s3.raw_store().unwrap());
    let key = |k: &str| stowage_shared::blob::BlobKey::new(k).unwrap();
    on_s3
        .delete(&key(&format!("artifacts/{}/{}", target.id, ids[1])))
        .await
        .unwrap();

    let live = pb::MigrationMode::Live;
    let (items, summary) = cleanup(&app, &token, request(&run.id, live)).await.unwrap();
    assert_eq!(items[ids[0]].state(), pb::CleanupState::VerifiedAndDeleted);
    assert_eq!(
        (items[ids[1]].state(), items[ids[1]].cause()),
        (pb::CleanupState::Failed, pb::CleanupCause::TargetMissing)
    );
    assert_eq!((summary.deleted, summary.failed), (1, 1));
    let exists = |store: &stowage_shared::blob::BlobStore, k: String| {
        let store = store.clone();
        async move { store.size(&key(&k)).await.is_ok() }
    };
    assert!(
        !exists(&on_azure, uploaded[0].0.object_key.clone()).await,
        "deleted on Azure"
    );
    assert!(
        exists(&on_azure, uploaded[1].0.object_key.clone()).await,
        "kept on Azure"
    );
    let mut artifacts = app.artifacts(Some(&token)).await;
    let (_, data) = migration::get(&mut artifacts, ids[0]).await.unwrap();
    assert_eq!(data, uploaded[0].1, "read from its verified copy on S3");
    app.stop().await.unwrap();
}
