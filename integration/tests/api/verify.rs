//! Integrity sweeps (VerifyArtifacts): an artifact whose object was deleted is reported
//! MISSING, one with a flipped byte CORRUPT, one on a store that cannot be reached
//! UNVERIFIABLE (never OK), the rest OK; the sweep is audited, a missing or corrupt
//! artifact records a security event, and a byte budget or a sample bounds the reading.

use std::collections::BTreeMap;

use stowage_integration::{
    TestApp,
    migration::{self, ProxiedContainer},
};
use stowage_proto::{
    integrity::v1::{Verification, VerifySummary},
    migration::v1::{self as pb, verify_artifacts_response::Report},
};
use stowage_shared::auth::Role;

pub(crate) async fn sweep(
    app: &TestApp,
    token: &str,
    request: pb::VerifyArtifactsRequest,
) -> (BTreeMap<String, pb::ArtifactVerification>, VerifySummary) {
    let mut artifacts = app.artifacts(Some(token)).await;
    let mut stream = artifacts
        .verify_artifacts(request)
        .await
        .unwrap()
        .into_inner();
    let (mut checked, mut summary) = (BTreeMap::new(), None);
    while let Some(message) = stream.message().await.unwrap() {
        match message.report.unwrap() {
            Report::Artifact(report) => {
                assert!(summary.is_none(), "the summary comes last");
                checked.insert(report.artifact_id.clone(), report);
            }
            Report::Summary(s) => summary = Some(s),
        }
    }
    (checked, summary.expect("a summary"))
}

#[tokio::test]
async fn a_sweep_finds_a_deleted_object_missing_a_flipped_byte_corrupt_and_an_unreachable_store_unverifiable()
 {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let unreachable = ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, unreachable.binding("behind a relay"))
        .await
        .unwrap();
    let far = migration::upload(&app, &token, 100, &[700]).await.unwrap();
    let dir = std::env::temp_dir().join(format!("stowage-verify-{}", uuid::Uuid::new_v4()));
    let files = migration::create_active(&mut bindings, migration::file_binding("disk", &dir))
        .await
        .unwrap();
    let near = migration::upload(&app, &token, 0, &[1000, 2000, 3000, 4000])
        .await
        .unwrap();
    let ids: Vec<String> = near.iter().map(|(a, _)| a.id.clone()).collect();
    std::fs::remove_file(dir.join(&near[0].0.object_key)).unwrap();
    let damaged = dir.join(&near[1].0.object_key);
    let mut bytes = std::fs::read(&damaged).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(&damaged, bytes).unwrap();
    unreachable.proxy.kill();

    let (checked, summary) = sweep(&app, &token, pb::VerifyArtifactsRequest::default()).await;
    let result = |id: &str| checked[id].result();
    assert_eq!(result(&ids[0]), Verification::Missing);
    assert_eq!(result(&ids[1]), Verification::Corrupt);
    assert_eq!(result(&ids[2]), Verification::Ok);
    assert_eq!(result(&ids[3]), Verification::Ok);
    assert_eq!(result(&far[0].0.id), Verification::Unverifiable);
    assert!(!checked[&ids[1]].detail.is_empty());
    assert_eq!(
        (
            summary.ok,
            summary.missing,
            summary.corrupt,
            summary.unverifiable
        ),
        (2, 1, 1, 1)
    );
    assert!(!summary.budget_exhausted);

    // audited, and the missing and corrupt artifacts named in a security event
    let mut evidence = app.evidence(Some(&token)).await;
    let audit = evidence
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(audit.entries.iter().any(|e| e.action == "VerifyArtifacts"));
    let security = evidence
        .list_security_events(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    let event = security
        .events
        .iter()
        .find(|e| e.r#type == "storageIntegrityCheckFailed")
        .expect("a security event");
    let detail = &event.detail_json;
    assert!(
        detail.contains(&ids[0]) && detail.contains(&ids[1]),
        "{detail}"
    );

    // only the file binding, within a budget of the first object's stored bytes
    let (checked, summary) = sweep(
        &app,
        &token,
        pb::VerifyArtifactsRequest {
            binding_id: files.id.clone(),
            byte_budget: 1,
            ..Default::default()
        },
    )
    .await;
    assert!(checked.is_empty());
    assert!(summary.budget_exhausted);
    let _ = std::fs::remove_dir_all(&dir);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scheduled_sweep_of_every_organization_finds_a_missing_object_on_its_own() {
    let app = stowage_integration::spawn_app_configured(|configs| {
        configs.migration.migration.verify_schedule = Some("* * * * * *".into());
    })
    .await
    .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    let dir = std::env::temp_dir().join(format!("stowage-verify-{}", uuid::Uuid::new_v4()));
    migration::create_active(&mut bindings, migration::file_binding("disk", &dir))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &[1000]).await.unwrap();
    std::fs::remove_file(dir.join(&uploaded[0].0.object_key)).unwrap();

    let mut evidence = app.evidence(Some(&token)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let events = evidence
            .list_security_events(pb::ListEvidenceRequest::default())
            .await
            .unwrap()
            .into_inner();
        if let Some(event) = events
            .events
            .iter()
            .find(|e| e.r#type == "storageIntegrityCheckFailed")
        {
            assert!(event.detail_json.contains(&uploaded[0].0.id));
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled sweep found the object missing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let audit = evidence
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "VerifyArtifacts" && e.actor == "scheduler")
    );
    app.stop().await.unwrap();
}
