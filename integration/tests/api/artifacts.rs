//! Binding activation and artifacts: posture checks, disabled bindings that refuse writes
//! and still serve reads, verified uploads and downloads.

use stowage_integration::migration::{self, ProxiedContainer};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{auth::Role, blob::azure::DEV_KEY};
use tonic::Code;

#[tokio::test]
async fn activation_checks_posture_and_disables_the_binding_it_replaces() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let first = migration::create_active(
        &mut bindings,
        migration::azurite_binding("first").await.unwrap(),
    )
    .await
    .unwrap();
    assert_eq!(first.state(), pb::BindingState::Active);
    assert!(first.activate_time.is_some());

    // A container that does not exist fails the posture check and changes nothing.
    let endpoint = stowage_integration::azurite::endpoint().unwrap();
    let broken = migration::create(
        &mut bindings,
        migration::azure_binding("broken", "no-such-container", &endpoint, DEV_KEY),
    )
    .await
    .unwrap();
    let refused = migration::activate(&mut bindings, &broken.id)
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("posture check"),
        "{}",
        refused.message()
    );
    let get = |id: &str| pb::GetBindingRequest { id: id.to_owned() };
    assert_eq!(
        bindings
            .get_binding(get(&broken.id))
            .await
            .unwrap()
            .into_inner()
            .state(),
        pb::BindingState::Pending
    );
    assert_eq!(
        bindings
            .get_binding(get(&first.id))
            .await
            .unwrap()
            .into_inner()
            .state(),
        pb::BindingState::Active
    );

    let second = migration::create_active(
        &mut bindings,
        migration::azurite_binding("second").await.unwrap(),
    )
    .await
    .unwrap();
    let first = bindings
        .get_binding(get(&first.id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.state(), pb::BindingState::Disabled);
    assert!(first.disable_time.is_some());
    assert_eq!(second.state(), pb::BindingState::Active);

    let member = app.token("acme", &[Role::Member]);
    let denied = app
        .bindings(Some(&member))
        .await
        .activate_binding(pb::ActivateBindingRequest {
            id: first.id.clone(),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn uploads_are_verified_and_downloads_come_back_byte_for_byte() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let mut artifacts = app.artifacts(Some(&token)).await;

    let none_active = migration::put(&mut artifacts, migration::metadata("document", "a"), b"x")
        .await
        .unwrap_err();
    assert_eq!(none_active.code(), Code::FailedPrecondition);

    let active = migration::create_active(
        &mut bindings,
        migration::azurite_binding("bucket").await.unwrap(),
    )
    .await
    .unwrap();
    let data = migration::content(1, 3 * 1024 * 1024 + 17);
    let mut meta = migration::metadata("document", "report.pdf");
    meta.expected_sha256 = hex(&aws_lc_rs::digest::digest(
        &aws_lc_rs::digest::SHA256,
        &data,
    ));
    let artifact = migration::put(&mut artifacts, meta, &data).await.unwrap();
    assert_eq!(artifact.binding_id, active.id);
    assert_eq!(artifact.size_bytes, data.len() as i64);
    let (read, content) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
    assert_eq!(read, artifact);
    assert!(content == data, "downloaded content differs");

    let mut wrong = migration::metadata("document", "b");
    wrong.expected_sha256 = "0".repeat(64);
    let mismatch = migration::put(&mut artifacts, wrong, b"hello")
        .await
        .unwrap_err();
    assert_eq!(mismatch.code(), Code::InvalidArgument);

    let mut no_purpose = migration::metadata("", "c");
    no_purpose.purpose.clear();
    let invalid = migration::put(&mut artifacts, no_purpose, b"x")
        .await
        .unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(invalid.message().contains("purpose"));

    // Other organizations do not see it.
    let other = app.token("other", &[Role::OrgAdmin]);
    let hidden = app
        .artifacts(Some(&other))
        .await
        .stat_artifact(pb::StatArtifactRequest {
            id: artifact.id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);

    let deleted = artifacts
        .delete_artifact(pb::DeleteArtifactRequest {
            id: artifact.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.delete_time.is_some());
    let listed = artifacts
        .list_artifacts(pb::ListArtifactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.artifacts.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_disabled_binding_refuses_writes_yet_serves_reads() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let mut artifacts = app.artifacts(Some(&token)).await;
    let old = ProxiedContainer::create().await.unwrap();
    let old_binding = migration::create_active(&mut bindings, old.binding("old"))
        .await
        .unwrap();
    let data = migration::content(7, 10_000);
    let on_old = migration::put(
        &mut artifacts,
        migration::metadata("document", "old"),
        &data,
    )
    .await
    .unwrap();
    let new_binding = migration::create_active(
        &mut bindings,
        migration::azurite_binding("new").await.unwrap(),
    )
    .await
    .unwrap();

    let mut pinned = migration::metadata("document", "pinned");
    pinned.binding_id = old_binding.id.clone();
    let refused = migration::put(&mut artifacts, pinned, b"new bytes")
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert!(
        refused.message().contains("refuses new writes"),
        "{}",
        refused.message()
    );

    let written_before = old.proxy.bytes().0;
    let fresh = migration::put(
        &mut artifacts,
        migration::metadata("document", "new"),
        b"new bytes",
    )
    .await
    .unwrap();
    assert_eq!(fresh.binding_id, new_binding.id);
    assert_eq!(
        old.proxy.bytes().0,
        written_before,
        "nothing was sent to the disabled binding"
    );

    let (read, content) = migration::get(&mut artifacts, &on_old.id).await.unwrap();
    assert_eq!(read.binding_id, old_binding.id);
    assert!(content == data);
    app.stop().await.unwrap();
}

fn hex(digest: &aws_lc_rs::digest::Digest) -> String {
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
