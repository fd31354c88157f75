//! Crypto-shredding through the gRPC API: a tenant's archive blobs are wrapped by its own
//! key; DestroyTenantKeys (SUPER_ADMIN, confirmed, audited) makes every one of them
//! unreadable, even a copy a store kept, with a typed error and no plaintext, while other
//! tenants' archives and the tenant's later archives read as before. PostgreSQL and a file
//! store.

use stowage_integration::{TestApp, db::count, scans, spawn_app, spawn_app_and_db};
use stowage_proto::{archive::v1 as pb, integrity::v1::Verification};
use tonic::Code;
use uuid::Uuid;

use super::{
    restore_as,
    stores::{Admin, admin, archive, file_dir, file_url, set_store},
    verify::sweep,
};

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

/// Rewrites `job`'s blob as an earlier release wrote it: the same payload, its data key
/// wrapped by the service's key ring instead of the tenant's key.
async fn rewrap_under_service_keys(app: &TestApp, dir: &std::path::Path, job: Uuid) {
    use futures::TryStreamExt;
    use stowage_shared::{
        blob::{BlobKey, EncryptedStore},
        keyring::KeyRing,
        tenant_keys::TenantKeys,
    };
    let pool = stowage_shared::db::pool(&app.db.config()).unwrap();
    let db = pool.get().await.unwrap();
    let service = KeyRing::from_config(&app.common.keys).unwrap();
    let tenant = TenantKeys::new("archive.tenant_keys", service.clone())
        .for_reading(&db, "acme")
        .await
        .unwrap();
    let store = stowage_integration::migration::raw_file_store(dir).unwrap();
    let key = BlobKey::new(format!("acme/{job}.json.zst")).unwrap();
    let plaintext: Vec<bytes::Bytes> = EncryptedStore::new(store.clone(), tenant)
        .get(&key, None)
        .await
        .unwrap()
        .try_collect()
        .await
        .unwrap();
    let chunks = futures::stream::iter(plaintext.into_iter().map(Ok::<_, String>));
    let receipt = EncryptedStore::new(store, service)
        .put(&key, chunks)
        .await
        .unwrap();
    db.execute(
        "update archive.scan_jobs set archive_kek_id = $2, archive_stored_bytes = $3
         where id = $1",
        &[&job, &receipt.kek_id, &(receipt.stored_len as i64)],
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn a_shredded_tenants_blobs_are_unreadable_even_as_kept_copies_and_nothing_else_is() {
    let (app, db) = spawn_app_and_db().await.unwrap();
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
    // An archive written before the tenant had a key: wrapped by the service's key ring.
    let before_keys = archived(&app, &mut admin, "acme").await;
    rewrap_under_service_keys(&app, &dir, before_keys).await;

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
    assert_eq!(
        (done.keys_destroyed, done.archived_jobs_shredded),
        (1, 1),
        "not the rewrapped one"
    );
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
    let hot = count(
        &db,
        "select count(*) from archive.scan_items where job_id = $1",
        &[&ours],
    )
    .await
    .unwrap();
    assert_eq!(hot, 0);
    assert!(
        !kept.windows(9).any(|w| w == b"Q4 report"),
        "no plaintext is stored"
    );

    // a sweep says what happened; the other tenant's archive and new archives read as before
    let request = pb::VerifyArchivesRequest {
        reason: "after shredding".into(),
        ..Default::default()
    };
    let (verdicts, summary) = sweep(&mut admin, request).await;
    let verdicts: std::collections::BTreeMap<_, _> = verdicts
        .into_iter()
        .map(|(job, a)| (job, a.result()))
        .collect();
    assert_eq!(summary.shredded, 1);
    assert_eq!(verdicts[&ours.to_string()], Verification::Shredded);
    assert_eq!(verdicts[&theirs.to_string()], Verification::Ok);
    assert_eq!(restore_as(&app, "globex", theirs).await.unwrap(), 180);
    assert_eq!(
        restore_as(&app, "acme", before_keys).await.unwrap(),
        180,
        "an archive from before the tenant had a key is not shredded"
    );
    let later = archived(&app, &mut admin, "acme").await;
    assert_eq!(
        restore_as(&app, "acme", later).await.unwrap(),
        180,
        "a new key for new archives"
    );

    let audited = count(
        &db,
        "select count(*) from archive.audit_log where action = 'destroy_tenant_keys'
               and detail->>'tenant_id' = 'acme'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(audited, 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_write_that_holds_a_live_key_commits_before_its_destruction_or_not_at_all() {
    use stowage_shared::{keyring::KeyRing, tenant_keys::TenantKeys};
    let app = spawn_app().await.unwrap();
    let pool = stowage_shared::db::pool(&app.db.config()).unwrap();
    let service = KeyRing::from_config(&app.common.keys).unwrap();
    let keys = TenantKeys::new("archive.tenant_keys", service.clone());
    let (mut writer, other) = (pool.get().await.unwrap(), pool.get().await.unwrap());
    let ring = keys.for_writing(&other, "acme").await.unwrap();
    let key = ring.primary().id().to_owned();
    assert!(
        keys.hold_live(&other, service.primary().id())
            .await
            .unwrap(),
        "a service key"
    );

    // A write holds the key; its destruction waits for the write to commit.
    let tx = writer.transaction().await.unwrap();
    assert!(keys.hold_live(&tx, &key).await.unwrap());
    let destroying = {
        let (keys, pool) = (keys.clone(), pool.clone());
        tokio::spawn(async move {
            keys.destroy(&pool.get().await.unwrap(), "acme")
                .await
                .unwrap()
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    assert!(
        !destroying.is_finished(),
        "the destruction waits for the write"
    );
    tx.commit().await.unwrap();
    assert_eq!(destroying.await.unwrap(), 1);

    // After it, a write under that key does not count; the next one gets a new key.
    assert!(!keys.hold_live(&other, &key).await.unwrap());
    let next = keys.for_writing(&other, "acme").await.unwrap();
    assert_ne!(next.primary().id(), key);
    app.stop().await.unwrap();
}
