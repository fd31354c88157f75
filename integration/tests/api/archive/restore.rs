//! Restore through the gRPC API: lossless for every format, the earlier system's blobs
//! included; a corrupt or missing blob inserts nothing; concurrent restores insert once.

use super::*;

#[tokio::test]
async fn an_archived_job_restores_every_column_of_every_row() {
    let (app, db) = spawn_app_and_db().await.unwrap();
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
    let (app, db) = spawn_app_and_db().await.unwrap();
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
async fn restore_of_a_corrupt_blob_is_data_loss_and_inserts_nothing() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let Archived {
        job, admin, key, ..
    } = archived_job(&app, &db, ("COMPLETED", 20.0), (300, 100)).await;
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
    let (app, db) = spawn_app_and_db().await.unwrap();
    let Archived {
        job, admin, key, ..
    } = archived_job(&app, &db, ("CANCELLED", 3.0), (10, 10)).await;
    archive_store(&app).delete(&key).await.unwrap();
    let status = restore(&mut app.archive(Some(&admin)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "{}", status.message());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn concurrent_restores_insert_once() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let Archived {
        job, admin, before, ..
    } = archived_job(&app, &db, ("COMPLETED", 20.0), (2000, 1000)).await;
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

/// Replaces a hot job's rows by a blob in the earlier system's format (camelCase JSON of
/// every column, gzipped, unencrypted), after `edit` changes the payload.
pub(super) async fn archive_as_legacy(
    app: &stowage_integration::TestApp,
    db: &tokio_postgres::Client,
    job: uuid::Uuid,
    edit: impl FnOnce(&mut serde_json::Value),
) {
    use std::io::Write;

    // The earlier system's payload: camelCase JSON of every column, gzipped, unencrypted.
    let mut json: serde_json::Value = db
        .query_one(
            "select json_build_object(
               'scanItems', (select json_agg(json_build_object('jobId', job_id, 'id', id,
                   'parentId', parent_id, 'path', path, 'name', name, 'kind', kind,
                   'sizeBytes', size_bytes, 'modifiedAt', modified_at, 'etag', etag,
                   'mimeType', mime_type, 'status', status, 'error', error,
                   'discoveredAt', discovered_at)) from archive.scan_items where job_id = $1),
               'fileRecords', (select json_agg(json_build_object('jobId', job_id, 'id', id,
                   'scanItemId', scan_item_id, 'sourcePath', source_path,
                   'destinationPath', destination_path, 'sizeBytes', size_bytes,
                   'checksum', checksum, 'status', status, 'attempts', attempts,
                   'lastError', last_error, 'startedAt', started_at,
                   'completedAt', completed_at)) from archive.file_records where job_id = $1))",
            &[&job],
        )
        .await
        .unwrap()
        .get(0);
    edit(&mut json);
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(json.to_string().as_bytes()).unwrap();
    let key = format!("acme/{job}.json.gz");
    archive_store(app)
        .put(
            &BlobKey::new(key.clone()).unwrap(),
            gz.finish().unwrap().into(),
            false,
            &[],
        )
        .await
        .unwrap();
    db.batch_execute(&format!(
        "update archive.scan_jobs set archived_at = now(), archive_blob_key = '{key}',
             archive_format = 'legacy.json.gz' where id = '{job}';
         delete from archive.scan_items where job_id = '{job}';
         delete from archive.file_records where job_id = '{job}';"
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn legacy_unencrypted_gzip_archives_restore() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 120, 80)
        .await
        .unwrap();
    let before = scans::table_digest(&db, job).await.unwrap();
    archive_as_legacy(&app, &db, job, |_| {}).await;
    let user = app.token("acme", &[Role::Member]);
    let done = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap();
    assert_eq!(done.last().unwrap().rows_done, 200);
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), before);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_payload_missing_an_array_is_data_loss_and_inserts_nothing() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 30, 20)
        .await
        .unwrap();
    archive_as_legacy(&app, &db, job, |json| {
        json.as_object_mut().unwrap().remove("fileRecords");
    })
    .await;
    let user = app.token("acme", &[Role::Member]);
    let status = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap().1,
        0,
        "nothing inserted"
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn rows_that_differ_from_the_digest_their_blob_carries_are_data_loss() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 30, 20)
        .await
        .unwrap();
    // A well-formed payload whose rows are not the ones its digest was taken of.
    archive_as_legacy(&app, &db, job, |json| {
        // The right row count (50 = 0x32), the wrong sum.
        let digest = format!("{}{:016x}", "00".repeat(16), 50);
        json["rowsDigest"] = serde_json::json!(digest);
    })
    .await;
    let user = app.token("acme", &[Role::Member]);
    let status = restore(&mut app.archive(Some(&user)).await, job)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::DataLoss, "{}", status.message());
    assert!(status.message().contains("digest"), "{}", status.message());
    assert_eq!(
        scans::table_digest(&db, job).await.unwrap().1,
        0,
        "nothing inserted"
    );
    app.stop().await.unwrap();
}
