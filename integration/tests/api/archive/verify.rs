//! Integrity sweeps of the archive (VerifyArchives) through the gRPC API: a job whose blob
//! was deleted is reported MISSING, one with a flipped byte CORRUPT, one in a store version
//! that cannot be reached UNVERIFIABLE (never OK), the rest OK; nothing is changed (every
//! job restores afterwards as it did before), the sweep is audited naming the failed jobs,
//! a version filter, a sample and a byte budget bound the reading, and only SUPER_ADMIN may
//! sweep. PostgreSQL, a file store and Azurite behind a relay.

use std::collections::BTreeMap;

use futures::TryStreamExt;
use stowage_integration::{TestApp, migration::ProxiedContainer, scans, spawn_app_configured};
use stowage_proto::{
    archive::v1::{self as pb, verify_archives_response::Report},
    integrity::v1::{Verification, VerifySummary},
};
use stowage_shared::{auth::Role, blob::BlobKey};
use tonic::Code;
use uuid::Uuid;

use super::{
    archive_store, archived_job,
    restore::archive_as_legacy,
    stores::{Admin, admin, azure_url, fail_fast, file_dir, file_url, restore, set_store},
};

fn request(store_version: i64, byte_budget: i64) -> pb::VerifyArchivesRequest {
    pb::VerifyArchivesRequest {
        store_version,
        sample_percent: 0,
        byte_budget,
        reason: "weekly integrity sweep".into(),
    }
}

pub(super) async fn sweep(
    admin: &mut Admin,
    request: pb::VerifyArchivesRequest,
) -> (BTreeMap<String, pb::ArchiveVerification>, VerifySummary) {
    let mut stream = admin.verify_archives(request).await.unwrap().into_inner();
    let (mut checked, mut summary) = (BTreeMap::new(), None);
    while let Some(message) = stream.message().await.unwrap() {
        match message.report.unwrap() {
            Report::Archive(report) => {
                assert!(summary.is_none(), "the summary comes last");
                checked.insert(report.job_id.clone(), report);
            }
            Report::Summary(s) => summary = Some(s),
        }
    }
    (checked, summary.expect("a summary"))
}

/// A COMPLETED job of `acme` with 40 scan items and 20 file records, archived now.
async fn archived(app: &TestApp) -> Uuid {
    let db = app.db.client().await.unwrap();
    archived_job(app, &db, ("COMPLETED", 20.0), (40, 20))
        .await
        .job
}

#[tokio::test]
async fn a_sweep_finds_a_deleted_blob_missing_a_flipped_byte_corrupt_and_an_unreachable_store_unverifiable()
 {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let mut admin = admin(&app).await;
    let proxied = ProxiedContainer::create().await.unwrap();
    let far = set_store(
        &mut admin,
        &azure_url(&proxied.endpoint()),
        &proxied.container.container,
    )
    .await;
    let unreachable = archived(&app).await;
    let dir = file_dir();
    let near = set_store(&mut admin, &file_url(&dir), "").await;
    let mut jobs = Vec::new();
    for _ in 0..4 {
        jobs.push(archived(&app).await);
    }
    let blob = |job: Uuid| dir.join("acme").join(format!("{job}.json.zst"));
    std::fs::remove_file(blob(jobs[0])).unwrap();
    let mut bytes = std::fs::read(blob(jobs[1])).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x01;
    std::fs::write(blob(jobs[1]), bytes).unwrap();
    proxied.proxy.kill();

    let (checked, summary) = sweep(&mut admin, request(0, 0)).await;
    let result = |job: Uuid| checked[&job.to_string()].result();
    assert_eq!(result(jobs[0]), Verification::Missing);
    assert_eq!(result(jobs[1]), Verification::Corrupt);
    assert_eq!(result(jobs[2]), Verification::Ok);
    assert_eq!(result(jobs[3]), Verification::Ok);
    assert_eq!(result(unreachable), Verification::Unverifiable);
    let corrupt = &checked[&jobs[1].to_string()];
    assert!(!corrupt.detail.is_empty());
    assert_eq!(
        (corrupt.store_version, corrupt.tenant_id.as_str()),
        (near.version, "acme")
    );
    assert_eq!(checked[&unreachable.to_string()].store_version, far.version);
    assert_eq!(
        (
            summary.ok,
            summary.missing,
            summary.corrupt,
            summary.unverifiable
        ),
        (2, 1, 1, 1)
    );
    assert!(!summary.budget_exhausted);

    // audited, naming the missing and the corrupt job
    let db = app.db.client().await.unwrap();
    let detail: serde_json::Value = db
        .query_one(
            "select detail from archive.audit_log where action = 'verify_archives'
             order by id desc limit 1",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(detail["missing_jobs"], serde_json::json!([jobs[0]]));
    assert_eq!(detail["corrupt_jobs"], serde_json::json!([jobs[1]]));
    assert_eq!(detail["unverifiable"], 1);

    // nothing changed: the intact archives restore, the damaged ones fail as they would have
    assert_eq!(restore(&app, jobs[2]).await.unwrap(), 60);
    assert_eq!(
        restore(&app, jobs[0]).await.unwrap_err().code(),
        Code::NotFound
    );
    assert_eq!(
        restore(&app, jobs[1]).await.unwrap_err().code(),
        Code::DataLoss
    );

    // one version only, within a byte budget of one blob
    let (checked, summary) = sweep(&mut admin, request(near.version, 1)).await;
    assert!(checked.is_empty() && summary.budget_exhausted);
    let (checked, summary) = sweep(&mut admin, request(near.version, 0)).await;
    assert_eq!(
        checked.len(),
        3,
        "the restored job is hot, the rest still archived"
    );
    assert!(!checked.contains_key(&jobs[2].to_string()));
    assert_eq!((summary.ok, summary.missing, summary.corrupt), (1, 1, 1));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn only_a_super_admin_sweeps_and_each_malformed_field_is_named() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let mut org_admin = app
        .archive_admin(Some(&app.token("acme", &[Role::OrgAdmin])))
        .await;
    let denied = org_admin.verify_archives(request(0, 0)).await.unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);

    let mut admin = admin(&app).await;
    let cases = [
        (
            pb::VerifyArchivesRequest {
                reason: String::new(),
                ..request(0, 0)
            },
            "reason",
        ),
        (
            pb::VerifyArchivesRequest {
                sample_percent: 101,
                ..request(0, 0)
            },
            "sample_percent",
        ),
        (request(0, -1), "byte_budget"),
        (request(-1, 0), "store_version"),
    ];
    for (request, field) in cases {
        let status = admin.verify_archives(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(field), "{}", status.message());
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_unencrypted_blob_of_the_earlier_system_is_checked_by_its_gzip_checksum() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 200.0, 30, 20)
        .await
        .unwrap();
    archive_as_legacy(&app, &db, job, |_| {}).await;
    let mut admin = admin(&app).await;
    // the job names no store version: it is in the first
    let (checked, _) = sweep(&mut admin, request(1, 0)).await;
    let report = &checked[&job.to_string()];
    assert_eq!(
        (report.result(), report.store_version),
        (Verification::Ok, 0)
    );

    let key = BlobKey::new(format!("acme/{job}.json.gz")).unwrap();
    let store = archive_store(&app);
    let read = store.get(&key).await.unwrap();
    let chunks: Vec<bytes::Bytes> = read.stream.try_collect().await.unwrap();
    let mut stored = chunks.concat();
    let middle = stored.len() / 2;
    stored[middle] ^= 0x01;
    store.put(&key, stored.into(), false, &[]).await.unwrap();
    let (checked, summary) = sweep(&mut admin, request(0, 0)).await;
    assert_eq!(checked[&job.to_string()].result(), Verification::Corrupt);
    assert_eq!((summary.ok, summary.corrupt), (0, 1));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_scheduled_sweep_finds_a_missing_blob_on_its_own() {
    let app = spawn_app_configured(|configs| {
        configs.archive.archive.verify_schedule = Some("* * * * * *".into());
        fail_fast(configs);
    })
    .await
    .unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    set_store(&mut admin, &file_url(&dir), "").await;
    let job = archived(&app).await;
    std::fs::remove_file(dir.join("acme").join(format!("{job}.json.zst"))).unwrap();

    let db = app.db.client().await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let found: Option<serde_json::Value> = db
            .query_opt(
                "select detail from archive.audit_log
                 where action = 'verify_archives' and actor = 'scheduler'
                   and detail->'missing_jobs' ? $1
                 order by id desc limit 1",
                &[&job.to_string()],
            )
            .await
            .unwrap()
            .map(|row| row.get(0));
        if let Some(detail) = found {
            assert_eq!(detail["missing"], 1);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no scheduled sweep found the blob missing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.stop().await.unwrap();
}
