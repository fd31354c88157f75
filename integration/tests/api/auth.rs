//! Authentication and tenancy: no token, expired, wrong key, wrong organization, and roles.

use stowage_integration::{TestApp, spawn_app};
use stowage_proto::{archive::v1 as archive_pb, migration::v1 as pb};
use stowage_shared::auth::{Claims, Role, TokenMinter};
use tonic::{Code, Status};

use crate::bindings::memory_binding;

/// How a call with `token` (or none) to list bindings is refused.
async fn bindings_refusal(app: &TestApp, token: Option<&str>) -> Status {
    let mut bindings = app.bindings(token).await;
    let listed = bindings.list_bindings(pb::ListBindingsRequest::default());
    listed.await.unwrap_err()
}

/// How a call with `token` to list runs is refused.
async fn runs_refusal(app: &TestApp, token: Option<&str>) -> Status {
    let mut runs = app.runs(token).await;
    let listed = runs.list_runs(pb::ListRunsRequest::default());
    listed.await.unwrap_err()
}

/// How a call with `token` (or none) to read the archive policy is refused.
async fn archive_refusal(app: &TestApp, token: Option<&str>) -> Status {
    let mut archive = app.archive(token).await;
    let read = archive.get_archive_policy(archive_pb::GetArchivePolicyRequest {});
    read.await.unwrap_err()
}

#[tokio::test]
async fn calls_without_a_token_are_unauthenticated() {
    let app = spawn_app().await.unwrap();
    let status = bindings_refusal(&app, None).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = archive_refusal(&app, None).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    let status = bindings_refusal(&app, Some("not-a-token")).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn expired_tokens_are_unauthenticated() {
    let app = spawn_app().await.unwrap();
    let now = chrono::Utc::now().timestamp() as u64;
    let expired = app
        .minter()
        .mint_claims(&Claims {
            sub: "alice".into(),
            org: "acme".into(),
            roles: vec!["ORG_ADMIN".into()],
            iat: now - 7200,
            exp: now - 3600,
            iss: None,
            aud: None,
        })
        .unwrap();
    let status = bindings_refusal(&app, Some(&expired)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    assert!(status.message().contains("expired"), "{}", status.message());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tokens_signed_with_another_key_are_unauthenticated() {
    let app = spawn_app().await.unwrap();
    let mut foreign = app.common.auth.clone();
    foreign.hs256_secret = Some("a-different-secret-that-is-32-bytes-or-more".into());
    let token = TokenMinter::from_config(&foreign)
        .unwrap()
        .mint(
            "mallory",
            "acme",
            &[Role::SuperAdmin],
            std::time::Duration::from_secs(60),
        )
        .unwrap();
    let status = bindings_refusal(&app, Some(&token)).await;
    assert_eq!(status.code(), Code::Unauthenticated);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn another_organization_sees_none_of_our_bindings() {
    let app = spawn_app().await.unwrap();
    let ours = app.token("acme", &[Role::OrgAdmin]);
    let theirs = app.token("globex", &[Role::OrgAdmin]);
    let created = app
        .bindings(Some(&ours))
        .await
        .create_binding(memory_binding("ours"))
        .await
        .unwrap();
    let id = created.into_inner().id;

    let mut other = app.bindings(Some(&theirs)).await;
    let listed = other
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap();
    assert!(listed.into_inner().bindings.is_empty());
    let get = other
        .get_binding(pb::GetBindingRequest { id: id.clone() })
        .await
        .unwrap_err();
    assert_eq!(get.code(), Code::NotFound);
    assert_eq!(get.message(), format!("binding {id} not found"));
    let update = other
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id,
            credential: Some(pb::Credential {
                kind: Some(pb::credential::Kind::None(pb::NoCredential {})),
            }),
            request_id: String::new(),
        })
        .await
        .unwrap_err();
    assert_eq!(update.code(), Code::NotFound);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn members_cannot_create_or_change_bindings() {
    let app = spawn_app().await.unwrap();
    let member = app.token("acme", &[Role::Member]);
    let mut bindings = app.bindings(Some(&member)).await;
    let status = bindings
        .create_binding(memory_binding("nope"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert!(
        bindings
            .list_bindings(pb::ListBindingsRequest::default())
            .await
            .is_ok()
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_token_with_no_role_is_permission_denied_in_both_services() {
    let app = spawn_app().await.unwrap();
    let no_role = app.token("acme", &[]);
    let status = bindings_refusal(&app, Some(&no_role)).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = runs_refusal(&app, Some(&no_role)).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    let status = archive_refusal(&app, Some(&no_role)).await;
    assert_eq!(status.code(), Code::PermissionDenied, "{status:?}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_oversized_authorization_header_is_unauthenticated() {
    let app = spawn_app().await.unwrap();
    let huge = "a".repeat(20 * 1024);
    let status = bindings_refusal(&app, Some(&huge)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    let status = archive_refusal(&app, Some(&huge)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    // A token a little under the bound is read and refused for what it is.
    let long = "a".repeat(8 * 1024);
    let status = bindings_refusal(&app, Some(&long)).await;
    assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    app.stop().await.unwrap();
}
