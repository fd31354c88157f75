//! Crypto-shredding through the gRPC API: a tenant's archive blobs are wrapped by its own
//! key; DestroyTenantKeys (SUPER_ADMIN, confirmed, audited) makes every one of them
//! unreadable, even a copy a store kept, with a typed error and no plaintext, while other
//! tenants' archives and the tenant's later archives read as before. PostgreSQL and a file
//! store.

use stowage_integration::{TestApp, scans, spawn_app};
use stowage_proto::{
    archive::v1 as pb, archive::v1::verify_archives_response::Report, integrity::v1::Verification,
};
use tonic::Code;
use uuid::Uuid;

use super::stores::{Admin, admin, archive, file_dir, file_url, set_store};

fn destroy(tenant: &str, confirm: &str) -> pb::DestroyTenantKeysRequest {
    pb::DestroyTenantKeysRequest {
        tenant_id: tenant.into(),
        confirm_tenant_id: confirm.into(),
        reason: "the customer left; erase their archives".into(),
    }
}

async fn archived(app: &TestApp, admin: &mut Admin, tenant: &str) -> Uuid {
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, tenant, "COMPLETED", 20.0, 120, 60)
        .await
        .unwrap();
    archive(admin, job).await;
    job
}

async fn restore_as(app: &TestApp, tenant: &str, job: Uuid) -> Result<i64, tonic::Status> {
    let token = app.token(tenant, &[stowage_shared::auth::Role::Member]);
    let mut client = app.archive(Some(&token)).await;
    let mut stream = client
        .restore_job(pb::RestoreJobRequest {
            job_id: job.to_string(),
            trigger: pb::RestoreTrigger::User.into(),
        })
        .await?
        .into_inner();
    let mut rows = 0;
    while let Some(progress) = stream.message().await? {
        rows = progress.rows_done;
    }
    Ok(rows)
}

#[tokio::test]
async fn a_shredded_tenants_blobs_are_unreadable_even_as_kept_copies_and_nothing_else_is() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    set_store(&mut admin, &file_url(&dir), "").await;
    let (ours, theirs) = (
        archived(&app, &mut admin, "acme").await,
        archived(&app, &mut admin, "globex").await,
    );
    let kek: String = db
        .query_one(
            "select archive_kek_id from archive.scan_jobs where id = $1",
            &[&ours],
        )
        .await
        .unwrap()
        .get(0);
    assert!(
        kek.starts_with("tenant-key/"),
        "wrapped by the tenant's own key: {kek}"
    );
    let blob = dir.join("acme").join(format!("{ours}.json.zst"));
    let kept = std::fs::read(&blob).unwrap();

    let refused = admin
        .destroy_tenant_keys(destroy("acme", "acme-typo"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert!(refused.message().contains("confirm_tenant_id"));
    let done = admin
        .destroy_tenant_keys(destroy("acme", "acme"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((done.keys_destroyed, done.archived_jobs_shredded), (1, 1));
    let sealed: Option<Vec<u8>> = db
        .query_one(
            "select sealed from archive.tenant_keys where id = $1",
            &[&kek],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(sealed, None, "the key's material is gone");

    // the blob, and a copy a store kept of it, are unreadable: a typed error, nothing inserted
    let status = restore_as(&app, "acme", ours).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition, "{status:?}");
    assert!(
        status.message().contains("key was destroyed"),
        "{}",
        status.message()
    );
    std::fs::write(&blob, &kept).unwrap();
    let status = restore_as(&app, "acme", ours).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    let hot: i64 = db
        .query_one(
            "select count(*) from archive.scan_items where job_id = $1",
            &[&ours],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(hot, 0);
    assert!(
        !kept.windows(9).any(|w| w == b"Q4 report"),
        "no plaintext is stored"
    );

    // a sweep says what happened; the other tenant's archive and new archives read as before
    let mut stream = admin
        .verify_archives(pb::VerifyArchivesRequest {
            reason: "after shredding".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut verdicts = std::collections::BTreeMap::new();
    while let Some(message) = stream.message().await.unwrap() {
        if let Some(Report::Archive(a)) = message.report {
            verdicts.insert(a.job_id.clone(), a.result());
        }
    }
    assert_eq!(verdicts[&ours.to_string()], Verification::Shredded);
    assert_eq!(verdicts[&theirs.to_string()], Verification::Ok);
    assert_eq!(restore_as(&app, "globex", theirs).await.unwrap(), 180);
    let later = archived(&app, &mut admin, "acme").await;
    assert_eq!(
        restore_as(&app, "acme", later).await.unwrap(),
        180,
        "a new key for new archives"
    );

    let audited: i64 = db
        .query_one(
            "select count(*) from archive.audit_log where action = 'destroy_tenant_keys'
               and detail->>'tenant_id' = 'acme'",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(audited, 1);
    app.stop().await.unwrap();
}
