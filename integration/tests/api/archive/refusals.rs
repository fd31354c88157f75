//! What is refused: active jobs, callers without the role, other tenants, and a scan
//! table changed under the service.

use super::*;

#[tokio::test]
async fn active_jobs_are_never_archived_not_even_by_an_admin() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    for status in ["SCANNING", "READY_TO_TRANSFER", "TRANSFERRING", "PAUSED"] {
        let job = scans::insert_job(&db, "acme", status, 400.0, 5, 5)
            .await
            .unwrap();
        let refused = app
            .archive_admin(Some(&admin))
            .await
            .archive_job(archive_request(job))
            .await;
        assert_eq!(
            refused.unwrap_err().code(),
            Code::FailedPrecondition,
            "{status}"
        );
        assert_eq!(scans::table_digest(&db, job).await.unwrap().1, 5);
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn admin_calls_need_super_admin() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let org_admin = app.token("acme", &[Role::OrgAdmin]);
    let mut admin = app.archive_admin(Some(&org_admin)).await;
    let refused = admin.archive_job(archive_request(job)).await.unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    let refused = admin
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: "memory://elsewhere".into(),
            container: "x".into(),
            reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn another_tenant_cannot_see_or_restore_a_job() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let other = app.token("globex", &[Role::OrgAdmin]);
    let mut client = app.archive(Some(&other)).await;
    let get = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(get.unwrap_err().code(), Code::NotFound);
    assert_eq!(
        restore(&mut client, job).await.unwrap_err().code(),
        Code::NotFound
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scan_table_changed_under_the_service_is_an_error_not_a_crash() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2, 2)
        .await
        .unwrap();
    // The scanning application's migration narrowed a column archive-svc reads.
    db.batch_execute("alter table archive.scan_jobs alter column file_count type integer")
        .await
        .unwrap();
    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let request = pb::GetJobArchiveRequest {
        job_id: job.to_string(),
    };
    let status = client.get_job_archive(request.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::Internal, "{}", status.message());
    // The server is still there for the next call.
    let again = client.get_job_archive(request).await.unwrap_err();
    assert_eq!(again.code(), Code::Internal);
    app.stop().await.unwrap();
}
