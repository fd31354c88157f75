//! archive-svc killed (SIGKILL) while it moves archives between store versions: after
//! every kill, each job is archived in exactly the store version its row names, its blob
//! is there, the blobs a move left behind are swept, and in the end every job restores
//! losslessly.

use std::{collections::BTreeSet, path::Path, time::Duration};

use stowage_integration::{
    app::{Bearer, BearerToken, test_common},
    db::TestDb,
    db::count,
    process::{self, ServiceProcess},
    scans,
};
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
    archive_service_client::ArchiveServiceClient,
};
use stowage_shared::auth::{Role, TokenMinter};
use uuid::Uuid;

const JOBS: usize = 24;

struct Archive {
    port: u16,
    config: String,
    token: String,
}

impl Archive {
    async fn start(&self) -> ServiceProcess {
        ServiceProcess::start("archive-svc", &self.config, self.port)
            .await
            .unwrap()
    }

    async fn admin(&self, service: &ServiceProcess) -> ArchiveAdminServiceClient<Bearer> {
        let channel = service.connect().await.unwrap();
        ArchiveAdminServiceClient::with_interceptor(channel, BearerToken::new(Some(&self.token)))
    }

    async fn jobs(&self, service: &ServiceProcess) -> ArchiveServiceClient<Bearer> {
        let channel = service.connect().await.unwrap();
        ArchiveServiceClient::with_interceptor(channel, BearerToken::new(Some(&self.token)))
    }
}

/// Blob keys (`tenant/job.json.zst`) under a file store's directory.
fn blobs_in(dir: &Path) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let Ok(tenants) = std::fs::read_dir(dir) else {
        return found;
    };
    for tenant in tenants.flatten() {
        let Ok(files) = std::fs::read_dir(tenant.path()) else {
            continue;
        };
        for file in files.flatten() {
            let name = file.file_name().to_string_lossy().into_owned();
            if name.ends_with(".json.zst") {
                found.insert(format!("{}/{name}", tenant.file_name().to_string_lossy()));
            }
        }
    }
    found
}

/// Checks that every job is archived in the version its row names and that version's store
/// holds its blob; returns the blobs each store should hold.
async fn check_readable(
    db: &tokio_postgres::Client,
    dirs: &[&Path; 2],
    jobs: &[Uuid],
) -> [BTreeSet<String>; 2] {
    let rows = db
        .query(
            "select id, archive_store_version, archive_blob_key from archive.scan_jobs
             where id = any($1)",
            &[&jobs],
        )
        .await
        .unwrap();
    assert_eq!(rows.len(), jobs.len());
    let mut expected = [BTreeSet::new(), BTreeSet::new()];
    for row in rows {
        let (id, version, key): (Uuid, Option<i64>, Option<String>) =
            (row.get(0), row.get(1), row.get(2));
        let key = key.unwrap_or_else(|| panic!("job {id} is no longer archived"));
        let version = version.unwrap_or_else(|| panic!("job {id} names no store version"));
        let index = usize::try_from(version - 1).unwrap();
        assert!(
            dirs[index].join(&key).exists(),
            "job {id} names version {version}, whose store lacks {key}"
        );
        expected[index].insert(key);
    }
    expected
}

/// Waits for the sweeper to remove whatever moves left: each store then holds exactly the
/// blobs of the jobs that name it, and nothing is on record as garbage.
async fn check_swept(db: &tokio_postgres::Client, dirs: &[&Path; 2], jobs: &[Uuid]) {
    let expected = check_readable(db, dirs, jobs).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let found = [blobs_in(dirs[0]), blobs_in(dirs[1])];
        let garbage = count(db, "select count(*) from archive.blob_garbage", &[])
            .await
            .unwrap();
        if found == expected && garbage == 0 {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "blobs left behind: {:?} and {:?} against {:?} and {:?}, {garbage} on record",
            found[0],
            found[1],
            expected[0],
            expected[1]
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

#[tokio::test]
async fn a_move_killed_at_any_point_leaves_every_job_readable_where_its_row_says() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.client().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let base = std::env::temp_dir().join(format!("stowage-crash-{}", Uuid::new_v4().simple()));
    let (old_dir, new_dir) = (base.join("v1"), base.join("v2"));
    std::fs::create_dir_all(&old_dir).unwrap();
    std::fs::create_dir_all(&new_dir).unwrap();
    let port = process::free_port().unwrap();
    let extra = format!(
        "[archive]\nsweep_interval = 1\nstore_retries = 0\n\
         default_store = {{ connection_string = \"file://{}\" }}\n",
        old_dir.display()
    );
    let minter = TokenMinter::from_config(&common.auth).unwrap();
    let archive = Archive {
        port,
        config: process::config_toml(&common, port, &extra).unwrap(),
        token: minter
            .mint(
                "ops-1",
                "acme",
                &[Role::SuperAdmin],
                Duration::from_secs(3600),
            )
            .unwrap(),
    };

    let mut jobs = Vec::new();
    let mut digests = Vec::new();
    for _ in 0..JOBS {
        let job = scans::insert_job(&db, "acme", "COMPLETED", 30.0, 3000, 2000)
            .await
            .unwrap();
        digests.push(scans::table_digest(&db, job).await.unwrap());
        jobs.push(job);
    }
    let mut service = archive.start().await;
    let mut admin = archive.admin(&service).await;
    let mut outcomes = admin
        .archive_eligible_jobs(pb::ArchiveEligibleJobsRequest {
            limit: 100,
            reason: "fill the old store".into(),
        })
        .await
        .unwrap()
        .into_inner();
    while let Some(outcome) = outcomes.message().await.unwrap() {
        assert!(outcome.archived, "{}", outcome.error);
    }
    assert_eq!(blobs_in(&old_dir).len(), JOBS);
    admin
        .set_archive_store(pb::SetArchiveStoreRequest {
            connection_string: format!("file://{}", new_dir.display()),
            reason: "one store".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // Kill the move after a few jobs each time, at whatever step it is in.
    for moves_before_kill in [1, 3, 2, 5] {
        let mut admin = archive.admin(&service).await;
        let mut stream = admin
            .migrate_archives(pb::MigrateArchivesRequest {
                mode: pb::MoveMode::Live.into(),
                reason: "one store".into(),
                limit: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let mut seen = 0;
        while let Ok(Some(progress)) = stream.message().await {
            if let Some(pb::migrate_archives_progress::Event::Job(_)) = progress.event {
                seen += 1;
                if seen == moves_before_kill {
                    break;
                }
            }
        }
        service.kill().await.unwrap();
        check_readable(&db, &[&old_dir, &new_dir], &jobs).await;
        service = archive.start().await;
        // The restarted replica's sweeper removes what the killed one left.
        check_swept(&db, &[&old_dir, &new_dir], &jobs).await;
    }

    // A move to its end, then every job restores every row.
    let mut admin = archive.admin(&service).await;
    let mut stream = admin
        .migrate_archives(pb::MigrateArchivesRequest {
            mode: pb::MoveMode::Live.into(),
            reason: "one store".into(),
            limit: 0,
        })
        .await
        .unwrap()
        .into_inner();
    while stream.message().await.unwrap().is_some() {}
    check_swept(&db, &[&old_dir, &new_dir], &jobs).await;
    assert!(blobs_in(&old_dir).is_empty(), "every archive moved");
    let mut client = archive.jobs(&service).await;
    for (job, digest) in jobs.iter().zip(&digests) {
        let mut restore = client
            .restore_job(pb::RestoreJobRequest {
                job_id: job.to_string(),
                trigger: pb::RestoreTrigger::Admin.into(),
            })
            .await
            .unwrap()
            .into_inner();
        while restore.message().await.unwrap().is_some() {}
        assert_eq!(&scans::table_digest(&db, *job).await.unwrap(), digest);
    }
    service.kill().await.unwrap();
    let _ = std::fs::remove_dir_all(&base);
}
