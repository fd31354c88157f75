//! Request validation common to every call: free text with NUL or control characters,
//! over-long reasons and undecodable messages are INVALID_ARGUMENT naming the field.

use std::time::Duration;

use stowage_integration::{
    migration::{self, memory_binding, metadata, put, start_request},
    raw, spawn_app, spawn_app_and_db,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::auth::Role;
use tonic::{Code, Status, transport::Channel};

fn assert_names(result: Result<impl std::fmt::Debug, Status>, field: &str) {
    let status = result.expect_err("the request is refused");
    assert_eq!(status.code(), Code::InvalidArgument, "{field}: {status:?}");
    assert!(
        status.message().starts_with(&format!("{field}:")),
        "{field}: {status:?}"
    );
}

#[tokio::test]
async fn a_nul_byte_in_any_text_field_is_invalid_argument_naming_the_field() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let with = |edit: fn(&mut pb::CreateBindingRequest)| {
        let mut request = memory_binding("nul");
        edit(&mut request);
        request
    };
    for (field, request) in [
        ("display_name", with(|r| r.display_name = "a\0b".into())),
        (
            "location.container",
            with(|r| r.location.as_mut().unwrap().container = "c\0".into()),
        ),
        (
            "location.prefix",
            with(|r| r.location.as_mut().unwrap().prefix = "p/\0".into()),
        ),
        (
            "location.region",
            with(|r| r.location.as_mut().unwrap().region = "\0".into()),
        ),
    ] {
        assert_names(bindings.create_binding(request).await, field);
    }

    let mut artifacts = app.artifacts(Some(&token)).await;
    for (field, m) in [
        ("purpose", metadata("doc\0", "a.txt")),
        ("name", metadata("doc", "a\0.txt")),
        (
            "content_type",
            pb::ArtifactMetadata {
                content_type: "text/plain\0".into(),
                ..metadata("doc", "a.txt")
            },
        ),
    ] {
        assert_names(put(&mut artifacts, m, b"hello").await, field);
    }
    let listed = artifacts
        .list_artifacts(pb::ListArtifactsRequest {
            purpose: "doc\0".into(),
            ..Default::default()
        })
        .await;
    assert_names(listed, "purpose");

    let super_admin = app.token("acme", &[Role::SuperAdmin]);
    let listed = app
        .evidence(Some(&super_admin))
        .await
        .list_audit_entries(pb::ListEvidenceRequest {
            organization_id: "acme\0".into(),
            ..Default::default()
        })
        .await;
    assert_names(listed, "organization_id");

    let mut runs = app.runs(Some(&token)).await;
    let target = uuid::Uuid::new_v4().to_string();
    let mut start = start_request(&target, pb::MigrationMode::DryRun);
    start.reason = "move\0".into();
    assert_names(runs.start_run(start).await, "reason");
    let retried = runs
        .retry_run(pb::RetryRunRequest {
            id: target.clone(),
            reason: "again\0".into(),
            request_id: String::new(),
        })
        .await;
    assert_names(retried, "reason");
    let cancelled = runs
        .cancel_run(pb::CancelRunRequest {
            id: target.clone(),
            reason: "stop\u{1b}[2J".into(),
        })
        .await;
    assert_names(cancelled, "reason");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_cancel_reason_is_bounded_like_a_start_reason() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut runs = app.runs(Some(&token)).await;
    let id = uuid::Uuid::new_v4().to_string();
    let mut start = start_request(&id, pb::MigrationMode::DryRun);
    start.reason = "x".repeat(1001);
    assert_names(runs.start_run(start).await, "reason");
    let cancelled = runs
        .cancel_run(pb::CancelRunRequest {
            id: id.clone(),
            reason: "x".repeat(1001),
        })
        .await;
    assert_names(cancelled, "reason");
    // Within the bound the request passes validation and meets the missing run.
    let cancelled = runs
        .cancel_run(pb::CancelRunRequest {
            id,
            reason: "x".repeat(1000),
        })
        .await;
    assert_eq!(cancelled.unwrap_err().code(), Code::NotFound);
    app.stop().await.unwrap();
}

/// A unary call of `path` whose request is `body` as given, bytes no generated client
/// would send: its code and message.
async fn raw_unary(channel: Channel, token: &str, path: &str, body: &[u8]) -> (Code, String) {
    let reply = raw::Call {
        path,
        shape: raw::Shape::Unary,
        messages: vec![body.to_vec()],
        token: Some(token),
        deadline: Duration::from_secs(20),
        max_messages: 1,
    }
    .send(channel)
    .await;
    (reply.code, reply.message)
}

#[tokio::test]
async fn invalid_utf8_in_a_string_field_is_invalid_argument_in_both_services() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    // field 1, length-delimited, two bytes that are not UTF-8
    let not_utf8: &[u8] = &[0x0a, 0x02, 0xff, 0xfe];
    let (code, message) = raw_unary(
        app.channel(app.migration_addr).await,
        &token,
        "/stowage.migration.v1.BindingService/GetBinding",
        not_utf8,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("GetBindingRequest.id"), "{message}");
    let (code, message) = raw_unary(
        app.channel(app.archive_addr).await,
        &token,
        "/stowage.archive.v1.ArchiveService/GetJobArchive",
        not_utf8,
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    assert!(message.contains("GetJobArchiveRequest.job_id"), "{message}");
    // a length that runs past the end of the message
    let (code, message) = raw_unary(
        app.channel(app.migration_addr).await,
        &token,
        "/stowage.migration.v1.BindingService/GetBinding",
        &[0x0a, 0x05, b'a'],
    )
    .await;
    assert_eq!(code, Code::InvalidArgument, "{message}");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_nul_byte_in_an_archive_call_is_invalid_argument_and_leaves_no_trace() {
    use stowage_proto::archive::v1 as apb;

    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = stowage_integration::scans::insert_job(&db, "acme", "COMPLETED", 20.0, 3, 3)
        .await
        .unwrap();
    let admin_token = app.token("acme", &[Role::SuperAdmin]);
    let mut admin = app.archive_admin(Some(&admin_token)).await;
    let mut jobs = app.archive(Some(&admin_token)).await;
    let nul = "cleanup\u{0}".to_owned();
    let refusals = [
        (
            "reason",
            admin
                .archive_job(apb::ArchiveJobRequest {
                    job_id: job.to_string(),
                    reason: nul.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reason",
            jobs.delete_job(apb::DeleteJobRequest {
                job_id: job.to_string(),
                reason: nul.clone(),
                request_id: String::new(),
            })
            .await
            .map(drop),
        ),
        (
            "reason",
            admin
                .set_archive_store(apb::SetArchiveStoreRequest {
                    connection_string: "memory://elsewhere".into(),
                    reason: nul.clone(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "container",
            admin
                .set_archive_store(apb::SetArchiveStoreRequest {
                    connection_string: "UseDevelopmentStorage=true".into(),
                    container: nul.clone(),
                    reason: "move".into(),
                    ..Default::default()
                })
                .await
                .map(drop),
        ),
        (
            "reason",
            admin
                .archive_eligible_jobs(apb::ArchiveEligibleJobsRequest {
                    limit: 10,
                    reason: nul.clone(),
                })
                .await
                .map(drop),
        ),
    ];
    for (field, refused) in refusals {
        let status = refused.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
        assert!(status.message().starts_with(field), "{}", status.message());
    }
    let (audited, rows): (i64, i64) = db
        .query_one(
            "select (select count(*) from archive.audit_log),
                    (select count(*) from archive.scan_items where job_id = $1)",
            &[&job],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(
        (audited, rows),
        (0, 3),
        "nothing happened, nothing was recorded"
    );
    app.stop().await.unwrap();
}
