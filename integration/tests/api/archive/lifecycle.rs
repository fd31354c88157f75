//! Deleting a job, and a new archive store taking effect without a restart.

use super::*;

#[tokio::test]
async fn deleting_a_job_removes_its_summary_rows_and_blob_and_is_audited() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let Archived { job, key, .. } = archived_job(&app, &db, ("COMPLETED", 20.0), (10, 10)).await;
    let org_admin = app.token("acme", &[Role::OrgAdmin]);
    let mut client = app.archive(Some(&org_admin)).await;
    let no_reason = pb::DeleteJobRequest {
        job_id: job.to_string(),
        ..Default::default()
    };
    assert_eq!(
        client.delete_job(no_reason).await.unwrap_err().code(),
        Code::InvalidArgument
    );
    let deleted = client
        .delete_job(pb::DeleteJobRequest {
            job_id: job.to_string(),
            reason: "customer request".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.blob_deleted);
    let gone = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(gone.unwrap_err().code(), Code::NotFound);
    assert!(matches!(
        archive_store(&app).size(&key).await,
        Err(stowage_shared::blob::BlobError::NotFound(_))
    ));
    let audited = count(
        &db,
        "select count(*) from archive.audit_log
             where job_id = $1 and action = 'delete' and reason = 'customer request'",
        &[&job],
    )
    .await
    .unwrap();
    assert_eq!(audited, 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_new_archive_store_takes_effect_without_a_restart() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let first = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let second = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 5, 5)
        .await
        .unwrap();
    let admin = app.token("ops", &[Role::SuperAdmin]);
    let mut client = app.archive_admin(Some(&admin)).await;
    client.archive_job(archive_request(first)).await.unwrap();
    let rotated = format!("rotated-{}", app.db.name);
    client
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: format!("memory://{rotated}"),
            container: "archives".into(),
            reason: "key rotation".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let archived = client
        .archive_job(archive_request(second))
        .await
        .unwrap()
        .into_inner();
    let store = BlobStore::open(
        &StoreConfig {
            provider: Provider::Memory,
            location: Location {
                container: rotated,
                ..Location::default()
            },
            credential: Credential::None,
        },
        &StoreOptions::fail_fast(),
    )
    .unwrap();
    assert!(
        store
            .size(&BlobKey::new(archived.blob_key).unwrap())
            .await
            .is_ok()
    );
    let bad = client
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: "AccountName=x".into(),
            container: "archives".into(),
            reason: "typo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}
