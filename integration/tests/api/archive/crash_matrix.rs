//! The crash matrix of archives and restores: archive-svc (a real process, a `file`
//! archive store) is killed (SIGKILL) at random instants of `ArchiveJob` and `RestoreJob`
//! calls (mid-COPY, during the upload or its read-back, at the final check, around the
//! commit, wherever the clock lands) and started again. After every kill each job is
//! either hot with every row (whole-table digest equal to the original) or archived with
//! no row left and its blob in the store, never neither and never both; in the end every
//! job restores losslessly. `STOWAGE_CRASH_INJECTIONS` sets the number of kills
//! (`deploy/dev/crash` runs hundreds).

use std::{path::Path, time::Duration};

use stowage_integration::{
    app::{BearerToken, operator_token, test_common},
    crash::{Injections, staging_files, swept_to},
    db::TestDb,
    process::{self, ServiceProcess},
    scans,
};
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
    archive_service_client::ArchiveServiceClient,
};
use stowage_shared::auth::Role;
use uuid::Uuid;

const JOBS: usize = 6;

/// A job as the database shows it: `Some(blob key)` when archived, and its rows left.
pub(super) async fn state(db: &tokio_postgres::Client, job: Uuid) -> (Option<String>, i64) {
    let row = db
        .query_one(
            "select archive_blob_key,
                    (select count(*) from archive.scan_items where job_id = $1)
                  + (select count(*) from archive.file_records where job_id = $1)
             from archive.scan_jobs where id = $1",
            &[&job],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

/// Hot with every row, or archived with none and its blob in `store`, in one snapshot (a
/// killed replica's last commit may still land while we look).
pub(super) async fn check_whole(
    db: &tokio_postgres::Client,
    store: &Path,
    job: Uuid,
    digest: &(String, i64, i64),
) -> bool {
    db.batch_execute("begin isolation level repeatable read read only")
        .await
        .unwrap();
    let archived = check_in_snapshot(db, store, job, digest).await;
    db.batch_execute("commit").await.unwrap();
    archived
}

async fn check_in_snapshot(
    db: &tokio_postgres::Client,
    store: &Path,
    job: Uuid,
    digest: &(String, i64, i64),
) -> bool {
    match state(db, job).await {
        (None, _) => {
            assert_eq!(
                &scans::table_digest(db, job).await.unwrap(),
                digest,
                "hot job {job} has every row as it was"
            );
            false
        }
        (Some(key), rows) => {
            assert_eq!(rows, 0, "archived job {job} keeps no row");
            assert!(
                store.join(&key).exists(),
                "archived job {job} has its blob {key}"
            );
            true
        }
    }
}

async fn call(channel: tonic::transport::Channel, bearer: BearerToken, job: Uuid, archive: bool) {
    if archive {
        let mut admin = ArchiveAdminServiceClient::with_interceptor(channel, bearer);
        let _ = admin
            .archive_job(pb::ArchiveJobRequest {
                job_id: job.to_string(),
                reason: "crash matrix".into(),
                ..Default::default()
            })
            .await;
    } else {
        let mut jobs = ArchiveServiceClient::with_interceptor(channel, bearer);
        if let Ok(stream) = jobs
            .restore_job(pb::RestoreJobRequest {
                job_id: job.to_string(),
                trigger: pb::RestoreTrigger::Admin.into(),
            })
            .await
        {
            let mut stream = stream.into_inner();
            while let Ok(Some(_)) = stream.message().await {}
        }
    }
}

#[tokio::test]
async fn archives_and_restores_killed_at_random_points_leave_every_job_whole() {
    let mut dice = Injections::from_env(4);
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.client().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let store =
        std::env::temp_dir().join(format!("stowage-archive-crash-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&store).unwrap();
    let port = process::free_port().unwrap();
    let extra = format!(
        "[archive]\nsweep_interval = 1\nstore_retries = 0\n\
         default_store = {{ connection_string = \"file://{}\" }}\n",
        store.display()
    );
    let config = process::config_toml(&common, port, &extra).unwrap();
    let token = operator_token(&common, "acme", Role::SuperAdmin).unwrap();
    let bearer = BearerToken::new(Some(&token));
    let mut jobs = Vec::new();
    for i in 0..JOBS {
        let rows = 4_000 + 2_000 * i as i64;
        let job = scans::insert_job(&db, "acme", "COMPLETED", 30.0, rows, rows / 2)
            .await
            .unwrap();
        jobs.push((job, scans::table_digest(&db, job).await.unwrap()));
    }

    let mut service = ServiceProcess::start("archive-svc", &config, port)
        .await
        .unwrap();
    // How long one archive takes here bounds where a kill may land.
    let started = std::time::Instant::now();
    call(
        service.connect().await.unwrap(),
        bearer.clone(),
        jobs[0].0,
        true,
    )
    .await;
    let span = started.elapsed().max(Duration::from_millis(50)) * 2;
    let (mut archived_seen, mut hot_seen, mut litter_seen) = (0usize, 0usize, 0usize);
    while dice.injected() < dice.count {
        let (job, _) = jobs[dice.below(JOBS as u64) as usize];
        let archive = state(&db, job).await.0.is_none();
        let channel = service.connect().await.unwrap();
        let task = tokio::spawn(call(channel, bearer.clone(), job, archive));
        tokio::time::sleep(dice.delay(span)).await;
        let done = task.is_finished();
        service.kill().await.unwrap();
        task.abort();
        litter_seen += staging_files(&store);
        dice.landed(match (archive, done) {
            (true, false) => "during ArchiveJob",
            (true, true) => "after ArchiveJob returned",
            (false, false) => "during RestoreJob",
            (false, true) => "after RestoreJob returned",
        });
        for (job, digest) in &jobs {
            if check_whole(&db, &store, *job, digest).await {
                archived_seen += 1;
            } else {
                hot_seen += 1;
            }
        }
        service = ServiceProcess::start("archive-svc", &config, port)
            .await
            .unwrap();
    }
    let swept = swept_to(|| staging_files(&store), Duration::from_secs(15)).await;
    assert_eq!(swept, 0, "the sweep removes what killed uploads left");

    // Every job archived, then restored, without a kill: each comes back whole.
    for (job, digest) in &jobs {
        let channel = service.connect().await.unwrap();
        if state(&db, *job).await.0.is_none() {
            call(channel.clone(), bearer.clone(), *job, true).await;
        }
        assert!(
            check_whole(&db, &store, *job, digest).await,
            "job {job} archives"
        );
        call(channel, bearer.clone(), *job, false).await;
        assert!(
            !check_whole(&db, &store, *job, digest).await,
            "job {job} restores"
        );
    }
    eprintln!(
        "{}",
        dice.report(
            "archive-svc",
            &[
                (
                    "job states checked after the kills (hot with every row / archived with none)",
                    format!("{hot_seen} / {archived_seen}, 0 lost or doubled"),
                ),
                (
                    "jobs archived and restored losslessly at the end",
                    JOBS.to_string()
                ),
                (
                    "staging files found right after the kills",
                    litter_seen.to_string()
                ),
                ("staging files left after the sweep", swept.to_string()),
            ]
        )
    );
    service.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&store);
}
