//! The scan archive through the gRPC API: archive, restore, refusals and failures.

use stowage_integration::{app::archive_store_name, scans, spawn_app};
use stowage_proto::archive::v1 as pb;
use stowage_shared::{
    auth::Role,
    blob::{BlobKey, BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions},
};
use tonic::Code;

fn archive_request(job: uuid::Uuid) -> pb::ArchiveJobRequest {
    pb::ArchiveJobRequest {
        job_id: job.to_string(),
        reason: "test".into(),
        compression: 0,
    }
}

fn restore_request(job: uuid::Uuid) -> pb::RestoreJobRequest {
    pb::RestoreJobRequest {
        job_id: job.to_string(),
        trigger: pb::RestoreTrigger::User.into(),
    }
}

async fn restore(
    client: &mut pb::archive_service_client::ArchiveServiceClient<stowage_integration::app::Bearer>,
    job: uuid::Uuid,
) -> Result<Vec<pb::RestoreProgress>, tonic::Status> {
    let mut stream = client.restore_job(restore_request(job)).await?.into_inner();
    let mut seen = Vec::new();
    while let Some(progress) = stream.message().await? {
        seen.push(progress);
    }
    Ok(seen)
}

#[tokio::test]
async fn an_archived_job_restores_every_column_of_every_row() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 1500, 700)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((before.1, before.2), (1500, 700));

    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let archived = archived.unwrap().into_inner();
    assert_eq!(archived.state(), pb::ArchiveState::Archived);
    assert_eq!(archived.blob_key, format!("acme/{job}.json.zst"));
    assert_eq!((archived.scan_items, archived.file_records), (1500, 700));
    let (_, items, records) = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((items, records), (0, 0), "archived rows leave PostgreSQL");

    let user = app.token("acme", &[Role::Member]);
    let mut client = app.archive(Some(&user)).await;
    let progress = restore(&mut client, job).await.unwrap();
    let last = progress.last().unwrap();
    assert_eq!(last.phase(), pb::RestorePhase::Done);
    assert_eq!(last.rows_done, 2200);
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap(),
        before,
        "lossless"
    );
    let state = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await;
    assert_eq!(state.unwrap().into_inner().state(), pb::ArchiveState::Hot);

    // Restoring a hot job is a no-op success.
    let again = restore(&mut client, job).await.unwrap();
    assert!(again.last().unwrap().already_hot);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn gzip_archives_restore_too() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "FAILED", 9.0, 40, 20)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let mut request = archive_request(job);
    request.compression = pb::Compression::Gzip.into();
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(request)
        .await
        .unwrap();
    assert!(archived.into_inner().blob_key.ends_with(".json.gz"));
    restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap();
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn active_jobs_are_never_archived_not_even_by_an_admin() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);
    app.stop().await.unwrap();
}

fn archive_store(app: &stowage_integration::TestApp) -> BlobStore {
    let config = StoreConfig {
        provider: Provider::Memory,
        location: Location {
            container: archive_store_name(&app.db),
            ..Location::default()
        },
        credential: Credential::None,
    };
    BlobStore::open(&config, &StoreOptions::fail_fast()).unwrap()
}

#[tokio::test]
async fn restore_of_a_corrupt_blob_is_data_loss_and_inserts_nothing() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 300, 100)
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let key = BlobKey::new(archived.unwrap().into_inner().blob_key).unwrap();
    let store = archive_store(&app);
    let read = store.get(&key).await.unwrap();
    let chunks: Vec<bytes::Bytes> = futures::TryStreamExt::try_collect(read.stream)
        .await
        .unwrap();
    let mut bytes = chunks.concat();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    store.put(&key, bytes.into(), false, &[]).await.unwrap();

    let status = restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    let (_, items, records) = scans::table_digest(&db, job).await.unwrap();
    assert_eq!((items, records), (0, 0), "nothing inserted");
    let state = app
        .archive(Some(&admin))
        .await
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap();
    assert_eq!(state.into_inner().state(), pb::ArchiveState::Archived);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn restore_of_a_missing_blob_is_not_found_and_the_job_stays_archived() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "CANCELLED", 3.0, 10, 10)
        .await
        .unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = app
        .archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await;
    let key = BlobKey::new(archived.unwrap().into_inner().blob_key).unwrap();
    archive_store(&app).delete(&key).await.unwrap();
    let status = restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_restores_insert_once() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 2000, 1000)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    app.archive_admin(Some(&admin))
        .await
        .archive_job(archive_request(job))
        .await
        .unwrap();
    let (mut a, mut b) = (
        app.archive(Some(&admin)).await,
        app.archive(Some(&admin)).await,
    );
    let (first, second) = tokio::join!(restore(&mut a, job), restore(&mut b, job));
    let (first, second) = (first.unwrap(), second.unwrap());
    let hot = [
        first.last().unwrap().already_hot,
        second.last().unwrap().already_hot,
    ];
    assert_eq!(
        hot.iter().filter(|h| **h).count(),
        1,
        "exactly one restore inserted"
    );
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn another_tenant_cannot_see_or_restore_a_job() {
    let app = spawn_app().await.unwrap();
    let db = app.db.client().await.unwrap();
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
