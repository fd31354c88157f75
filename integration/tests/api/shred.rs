//! Crypto-shredding of an organization's artifacts (DestroyOrganizationKeys) through the
//! gRPC API: its objects are wrapped by its own key; destroying it (SUPER_ADMIN, confirmed,
//! audited in the organization's evidence) makes every one unreadable with a typed error,
//! even a copy a store kept, while other organizations and the organization's later
//! uploads read as before. PostgreSQL and a file binding.

use stowage_integration::{migration, spawn_app};
use stowage_proto::{integrity::v1::Verification, migration::v1 as pb};
use stowage_shared::auth::Role;
use tonic::Code;

fn destroy(org: &str, confirm: &str) -> pb::DestroyOrganizationKeysRequest {
    pb::DestroyOrganizationKeysRequest {
        organization_id: org.into(),
        confirm_organization_id: confirm.into(),
        reason: "the customer asked to be forgotten".into(),
    }
}

#[tokio::test]
async fn a_shredded_organizations_artifacts_are_unreadable_and_nothing_else_is() {
    let app = spawn_app().await.unwrap();
    let dir = std::env::temp_dir().join(format!("stowage-shred-{}", uuid::Uuid::new_v4()));
    let mut ours = Vec::new();
    for org in ["acme", "globex"] {
        let token = app.token(org, &[Role::OrgAdmin]);
        let mut bindings = app.bindings(Some(&token)).await;
        migration::create_active(&mut bindings, migration::file_binding(org, &dir.join(org)))
            .await
            .unwrap();
        ours.push((
            token.clone(),
            migration::upload(&app, &token, 0, &[3000]).await.unwrap(),
        ));
    }
    let (acme, globex) = (&ours[0], &ours[1]);
    let artifact = &acme.1[0].0;
    let object = dir.join("acme").join(&artifact.object_key);
    let kept = std::fs::read(&object).unwrap();

    let mut root = app
        .artifacts(Some(&app.token("ops", &[Role::SuperAdmin])))
        .await;
    let refused = root
        .destroy_organization_keys(destroy("acme", "acme "))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("confirm_organization_id"));
    let mut org_admin = app.artifacts(Some(&acme.0)).await;
    let denied = org_admin
        .destroy_organization_keys(destroy("acme", "acme"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let done = root
        .destroy_organization_keys(destroy("acme", "acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((done.keys_destroyed, done.artifacts_shredded), (1, 1));

    let status = migration::get(&mut org_admin, &artifact.id)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("key was destroyed"),
        "{}",
        status.message()
    );
    std::fs::write(&object, &kept).unwrap();
    let status = migration::get(&mut org_admin, &artifact.id)
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::FailedPrecondition,
        "a copy a store kept too"
    );

    let (checked, summary) =
        super::verify::sweep(&app, &acme.0, pb::VerifyArtifactsRequest::default()).await;
    assert_eq!(checked[&artifact.id].result(), Verification::Shredded);
    assert_eq!((checked.len(), summary.shredded), (1, 1));

    let mut theirs = app.artifacts(Some(&globex.0)).await;
    let (_, data) = migration::get(&mut theirs, &globex.1[0].0.id)
        .await
        .unwrap();
    assert_eq!(data, globex.1[0].1, "another organization reads as before");
    let later = migration::upload(&app, &acme.0, 10, &[2000]).await.unwrap();
    let (_, data) = migration::get(&mut org_admin, &later[0].0.id)
        .await
        .unwrap();
    assert_eq!(data, later[0].1, "a new key for new uploads");

    let mut evidence = app.evidence(Some(&acme.0)).await;
    let audit = evidence
        .list_audit_entries(pb::ListEvidenceRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(
        audit
            .entries
            .iter()
            .any(|e| e.action == "DestroyOrganizationKeys")
    );
    app.stop().await.unwrap();
}
