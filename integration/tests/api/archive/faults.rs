//! Faults between archive-svc and what it depends on, through the fault relay: an archive
//! store that dies mid-upload, a download cut mid-restore, and PostgreSQL connections cut
//! at points through an archive (its COPY out runs inside the transaction that deletes
//! the rows) and a restore (its COPY in), the commit included. Each call ends UNAVAILABLE
//! or done, every job stays whole — hot with every row, or archived with no row and its
//! blob — and a later call finishes the work losslessly.

use stowage_integration::{
    TestApp,
    app::{spawn_app_with, test_common},
    db::TestDb,
    migration::ProxiedContainer,
    proxy::{Direction, Fault, TcpProxy},
    scans, spawn_app_configured,
};
use stowage_proto::archive::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use super::{
    crash_matrix::{check_whole, state},
    stores::{
        Admin, admin, archive, azure_url, exists, fail_fast, file_dir, file_url, restore, set_store,
    },
};

/// A job big enough that a fault lands inside its transfer (about 1 MiB of rows).
async fn big_job(app: &TestApp) -> (Uuid, (String, i64, i64)) {
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", 20.0, 3000, 3000)
        .await
        .unwrap();
    let digest = scans::table_digest(&db, job).await.unwrap();
    (job, digest)
}

fn archive_request(job: Uuid) -> pb::ArchiveJobRequest {
    pb::ArchiveJobRequest {
        job_id: job.to_string(),
        reason: "fault relay".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn an_archive_store_dying_mid_upload_leaves_the_job_hot_and_a_later_archive_finishes() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut admin = admin(&app).await;
    let mut proxied = ProxiedContainer::create().await.unwrap();
    let endpoint = azure_url(&proxied.endpoint());
    set_store(&mut admin, &endpoint, &proxied.container.container).await;
    let raw = proxied.raw_store().unwrap();

    // What one such archive sends the store, measured on a job of the same size.
    let (probe, _) = big_job(&app).await;
    let before = proxied.proxy.bytes().0;
    archive(&mut admin, probe).await;
    let upload = proxied.proxy.bytes().0 - before;
    assert!(
        upload > 128 * 1024,
        "the blob is big enough to cut: {upload} B"
    );

    let (job, digest) = big_job(&app).await;
    proxied
        .proxy
        .fault_after(Direction::ToUpstream, upload / 2, Fault::Kill);
    let refused = admin.archive_job(archive_request(job)).await.unwrap_err();
    assert!(proxied.proxy.fired(), "the store died mid-upload");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    assert_eq!(state(&db, job).await.0, None, "the job stays hot");
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), digest);

    proxied.proxy.revive().await.unwrap();
    let key = format!("acme/{job}.json.zst");
    assert!(
        !exists(&raw, &key).await,
        "no half-written blob under its key"
    );
    archive(&mut admin, job).await;
    assert_eq!(state(&db, job).await, (Some(key), 0));
    restore(&app, job).await.unwrap();
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), digest);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_download_cut_mid_restore_leaves_the_job_archived_and_a_later_restore_is_lossless() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut admin = admin(&app).await;
    let proxied = ProxiedContainer::create().await.unwrap();
    let endpoint = azure_url(&proxied.endpoint());
    set_store(&mut admin, &endpoint, &proxied.container.container).await;
    let raw = proxied.raw_store().unwrap();
    let (probe, _) = big_job(&app).await;
    let (job, digest) = big_job(&app).await;
    archive(&mut admin, probe).await;
    archive(&mut admin, job).await;

    let before = proxied.proxy.bytes().1;
    restore(&app, probe).await.unwrap();
    let download = proxied.proxy.bytes().1 - before;
    assert!(
        download > 128 * 1024,
        "the blob is big enough to cut: {download} B"
    );

    proxied
        .proxy
        .fault_after(Direction::FromUpstream, download / 2, Fault::Cut);
    let refused = restore(&app, job).await.unwrap_err();
    assert!(proxied.proxy.fired(), "the download was cut midway");
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
    let key = format!("acme/{job}.json.zst");
    assert_eq!(
        state(&db, job).await,
        (Some(key.clone()), 0),
        "still archived"
    );
    assert!(exists(&raw, &key).await, "its blob is untouched");

    restore(&app, job).await.unwrap();
    assert_eq!(state(&db, job).await, (None, 6000));
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), digest);
    app.stop().await.unwrap();
}

/// Bytes one archive and one restore of a [`big_job`] exchange with PostgreSQL, each way.
struct Exchange {
    archive: (u64, u64),
    restore: (u64, u64),
}

async fn measure(app: &TestApp, admin: &mut Admin, relay: &TcpProxy) -> Exchange {
    let delta = |before: (u64, u64), after: (u64, u64)| (after.0 - before.0, after.1 - before.1);
    let mut exchange = None;
    // The second probe is measured: the first also opens connections and prepares
    // statements, which later calls find done.
    for _ in 0..2 {
        let (probe, _) = big_job(app).await;
        let before = relay.bytes();
        archive(admin, probe).await;
        let archived = relay.bytes();
        restore(app, probe).await.unwrap();
        exchange = Some(Exchange {
            archive: delta(before, archived),
            restore: delta(archived, relay.bytes()),
        });
    }
    exchange.expect("two probes")
}

/// Where a cut lands: `direction`, this many bytes into the call's exchange.
fn cut_points((up, down): (u64, u64)) -> Vec<(Direction, u64)> {
    let mut points: Vec<_> = [0.1, 0.5, 0.9]
        .iter()
        .map(|f| (Direction::FromUpstream, (down as f64 * f) as u64))
        .collect();
    points.extend(
        [0.5, 0.9]
            .iter()
            .map(|f| (Direction::ToUpstream, (up as f64 * f) as u64)),
    );
    // Near the last message the service sends (the commit, or what follows it); calls of
    // the same size differ by a few bytes.
    points.push((Direction::ToUpstream, up - up / 50));
    points
}

/// One call under a cut, for the printed table: where the cut was armed, whether it fired
/// before the call returned, and the call's failure (which must be UNAVAILABLE).
#[derive(Debug)]
#[allow(dead_code)] // read through Debug
struct Cut {
    call: &'static str,
    direction: Direction,
    at: u64,
    fired: bool,
    failure: Option<Code>,
}

impl Cut {
    fn new(
        call: &'static str,
        (direction, at): (Direction, u64),
        relay: &TcpProxy,
        result: &Result<(), tonic::Status>,
    ) -> Self {
        if let Err(status) = result {
            assert_eq!(
                status.code(),
                Code::Unavailable,
                "{call} cut at {at}: {status:?}"
            );
        }
        Self {
            call,
            direction,
            at,
            fired: relay.fired(),
            failure: result.as_ref().err().map(|s| s.code()),
        }
    }
}

#[tokio::test]
async fn postgres_connections_cut_through_archives_and_restores_leave_every_job_whole() {
    let db = TestDb::migrated().await.unwrap();
    let relay = TcpProxy::start(db.server().await.unwrap()).await.unwrap();
    let through = db.config_through(relay.addr).unwrap();
    let common = test_common(&db).unwrap();
    let app = spawn_app_with(db, common, |configs| {
        configs.archive.common.database = through;
    })
    .await
    .unwrap();
    let db = app.db.client().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    set_store(&mut admin, &file_url(&dir), "").await;
    let exchange = measure(&app, &mut admin, &relay).await;

    let mut outcomes = Vec::new();
    let mut jobs = Vec::new();
    for point in cut_points(exchange.archive) {
        let (job, digest) = big_job(&app).await;
        relay.fault_after(point.0, point.1, Fault::Cut);
        let result = admin.archive_job(archive_request(job)).await.map(drop);
        outcomes.push(Cut::new("archive", point, &relay, &result));
        let archived = check_whole(&db, &dir, job, &digest).await;
        assert!(
            archived || result.is_err(),
            "an archive that answered OK is done"
        );
        if !archived {
            archive(&mut admin, job).await;
        }
        jobs.push((job, digest));
    }
    for (point, (job, digest)) in cut_points(exchange.restore).into_iter().zip(&jobs) {
        relay.fault_after(point.0, point.1, Fault::Cut);
        let result = restore(&app, *job).await.map(drop);
        outcomes.push(Cut::new("restore", point, &relay, &result));
        let archived = check_whole(&db, &dir, *job, digest).await;
        assert!(
            !archived || result.is_err(),
            "a restore that answered OK is done"
        );
        if archived {
            restore(&app, *job).await.unwrap();
        }
        assert_eq!(state(&db, *job).await.0, None);
        assert_eq!(
            &scans::table_digest(&db, *job).await.unwrap(),
            digest,
            "lossless"
        );
    }
    println!("fault relay, PostgreSQL cuts: {outcomes:#?}");
    for call in ["archive", "restore"] {
        assert!(
            outcomes
                .iter()
                .any(|o| o.call == call && o.failure.is_some()),
            "some cut landed inside a {call}: {outcomes:?}"
        );
    }
    app.stop().await.unwrap();
}
