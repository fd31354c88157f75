//! Faults between the runner and its stores, through the fault relay: a target that dies
//! mid-upload, a read-back reset midway, a source cut mid-download (resumed, or left to the next run) or gone
//! mid-copy (the target's multipart upload aborted), a target that stalls and one that
//! answers slowly, and the upload a killed writer left on S3. Each run ends in its
//! documented state, every artifact stays readable with the bytes it was uploaded with,
//! and a later run finishes the work.

use std::time::{Duration, Instant};

use bytes::Bytes;
use migration_svc::config::RunnerConfig;
use stowage_integration::{
    TestApp,
    app::test_runner,
    migration,
    proxy::{Direction, Fault},
    seaweedfs::TestPrefix,
    spawn_app, spawn_app_configured,
};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{
    auth::Role,
    blob::{BlobKey, store::S3_MIN_PART_SIZE},
};

use super::WAIT;

const MIB: usize = 1024 * 1024;

/// Every artifact reads back, from whichever binding its row names, with its bytes; how
/// many are on `target`.
async fn all_readable(
    app: &TestApp,
    token: &str,
    uploaded: &[(pb::Artifact, Vec<u8>)],
    target: &str,
) -> usize {
    let mut artifacts = app.artifacts(Some(token)).await;
    let mut on_target = 0;
    for (artifact, data) in uploaded {
        let (now, read) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
        assert!(read == *data, "artifact {} reads back whole", artifact.id);
        on_target += usize::from(now.binding_id == target);
    }
    on_target
}

/// Nothing is left open behind an ended run, and its counts add up to its items.
fn settled(run: &pb::Run, artifacts: usize) {
    let counts = run.items.unwrap();
    assert_eq!((counts.queued, counts.running), (0, 0), "{counts:?}");
    assert_eq!(
        counts.migrated + counts.skipped + counts.failed,
        artifacts as i64,
        "{counts:?}"
    );
}

/// A new live run to `target` completes, and every artifact is then on it, whole.
async fn a_new_run_finishes(
    app: &TestApp,
    token: &str,
    uploaded: &[(pb::Artifact, Vec<u8>)],
    target: &pb::Binding,
) {
    let mut runs = app.runs(Some(token)).await;
    let live = migration::start_request(&target.id, pb::MigrationMode::Live);
    let again = migration::run_to_end(&mut runs, live, WAIT).await.unwrap();
    assert_eq!(again.state(), pb::RunState::Completed, "{again:?}");
    assert_eq!(
        all_readable(app, token, uploaded, &target.id).await,
        uploaded.len()
    );
}

async fn retry(app: &TestApp, token: &str, run: &pb::Run) -> pb::Run {
    let mut runs = app.runs(Some(token)).await;
    let retry = runs
        .retry_run(pb::RetryRunRequest {
            id: run.id.clone(),
            reason: "store back".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    migration::wait_for_end(&mut runs, &retry.id, WAIT)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_target_dying_mid_upload_fails_the_run_closed_and_its_retry_finishes_the_copy() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, mut t, target) =
        migration::memory_source_and_proxied_target(&app, &token, &[MIB; 8])
            .await
            .unwrap();
    let written = t.proxy.bytes().0;
    t.proxy
        .fault_after(Direction::ToUpstream, (5 * MIB / 2) as u64, Fault::Kill);
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::run_to_end(
        &mut runs,
        migration::start_request(&target.id, pb::MigrationMode::Live),
        WAIT,
    )
    .await
    .unwrap();
    assert!(
        t.proxy.fired(),
        "the target died mid-upload ({written} B before)"
    );
    assert_eq!(run.state(), pb::RunState::Failed, "{run:?}");
    assert_eq!(run.failure_cause(), pb::RunFailureCause::TargetUnavailable);
    settled(&run, uploaded.len());

    t.proxy.revive().await.unwrap();
    let migrated = run.items.unwrap().migrated as usize;
    assert_eq!(
        all_readable(&app, &token, &uploaded, &target.id).await,
        migrated
    );
    // Nothing half-written shows on the target. Copies whose read-back the dying target
    // cut off may be there, unverified and pointed at by nothing, under the key the
    // artifact's next copy overwrites; the retry leaves exactly one object per artifact.
    let raw = t.raw_store().unwrap();
    let target_keys: Vec<String> = uploaded
        .iter()
        .map(|(a, _)| format!("artifacts/{}/{}", target.id, a.id))
        .collect();
    let stored = migration::stored_keys(&raw, "").await.unwrap();
    assert!(stored.len() >= migrated, "{stored:?}");
    assert!(stored.iter().all(|k| target_keys.contains(k)), "{stored:?}");

    let retried = retry(&app, &token, &run).await;
    assert_eq!(retried.state(), pb::RunState::Completed, "{retried:?}");
    assert_eq!(
        all_readable(&app, &token, &uploaded, &target.id).await,
        uploaded.len()
    );
    let mut stored = migration::stored_keys(&raw, "").await.unwrap();
    stored.sort();
    let mut expected = target_keys;
    expected.sort();
    assert_eq!(stored, expected);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_read_back_reset_midway_is_tried_again_and_every_copy_is_verified() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, t, target) =
        migration::memory_source_and_proxied_target(&app, &token, &[2 * MIB; 4])
            .await
            .unwrap();
    // Writes get short answers; the first megabyte back from the target is a read-back.
    t.proxy
        .fault_after(Direction::FromUpstream, MIB as u64, Fault::Reset);
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::run_to_end(
        &mut runs,
        migration::start_request(&target.id, pb::MigrationMode::Live),
        WAIT,
    )
    .await
    .unwrap();
    assert!(t.proxy.fired(), "a read-back was reset midway");
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    settled(&run, uploaded.len());
    assert_eq!(
        all_readable(&app, &token, &uploaded, &target.id).await,
        uploaded.len()
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_source_cut_mid_download_is_resumed_or_left_to_the_next_run() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (s, uploaded) = migration::proxied_source(&app, &token, &[2 * MIB; 4])
        .await
        .unwrap();
    let mut bindings = app.bindings(Some(&token)).await;
    let target = migration::create_active(&mut bindings, migration::memory_binding("t"))
        .await
        .unwrap();
    s.proxy
        .fault_after(Direction::FromUpstream, (3 * MIB / 2) as u64, Fault::Cut);
    let mut runs = app.runs(Some(&token)).await;
    let live = migration::start_request(&target.id, pb::MigrationMode::Live);
    let run = migration::run_to_end(&mut runs, live, WAIT).await.unwrap();
    assert!(s.proxy.fired(), "source downloads were cut midway");
    settled(&run, uploaded.len());
    // The store client asks again for the rest (a range of the same ETag) while its retry
    // budget lasts, and the copy's digest covers the joined bytes; a download it cannot
    // resume fails its item SOURCE_UNAVAILABLE, and the next run copies it.
    let failed = migration::items(&mut runs, &run.id, pb::ItemState::Failed)
        .await
        .unwrap();
    for item in &failed {
        assert_eq!(item.cause(), pb::ItemCause::SourceUnavailable, "{item:?}");
    }
    println!(
        "fault relay: a source cut mid-download: {} of {} copies resumed",
        uploaded.len() - failed.len(),
        uploaded.len()
    );
    assert_eq!(
        all_readable(&app, &token, &uploaded, &target.id).await,
        uploaded.len() - failed.len()
    );
    a_new_run_finishes(&app, &token, &uploaded, &target).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_target_that_stalls_fails_the_run_closed_within_the_configured_bound() {
    let runner = RunnerConfig {
        store_read_timeout: Duration::from_secs(1),
        ..test_runner()
    };
    let bound = runner.dead_target_bound();
    let app = spawn_app_configured(|configs| configs.migration.migration = runner)
        .await
        .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, t, target) =
        migration::memory_source_and_proxied_target(&app, &token, &[4096; 24])
            .await
            .unwrap();
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::start_limited_and_wait(&mut runs, &target.id, 8, 3, WAIT)
        .await
        .unwrap();
    t.proxy.stall();
    let stalled = Instant::now();
    let run = migration::wait_for_end(&mut runs, &run.id, WAIT)
        .await
        .unwrap();
    let took = stalled.elapsed();
    assert_eq!(run.state(), pb::RunState::Failed, "{run:?}");
    assert_eq!(run.failure_cause(), pb::RunFailureCause::TargetUnavailable);
    settled(&run, uploaded.len());
    println!("fault relay: a stalled target failed the run closed in {took:?} (bound {bound:?})");
    // The bound is the store's; ending the run and polling it take a moment more.
    assert!(
        took <= bound + Duration::from_secs(1),
        "{took:?} > {bound:?}"
    );
    t.proxy.resume();
    all_readable(&app, &token, &uploaded, &target.id).await;
    app.stop().await.unwrap();
}

/// Small objects through a target that takes 100 ms to answer each request (50 ms each
/// way): concurrency hides the latency, and every copy is still verified.
#[tokio::test]
async fn a_target_that_answers_slowly_still_finishes_a_run_of_small_objects() {
    let objects: usize = std::env::var("STOWAGE_SLOW_STORE_OBJECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(1000);
    let concurrency = 64;
    let app = spawn_app_configured(|configs| {
        configs.migration.migration.concurrency = concurrency;
        configs.migration.migration.batch_size = concurrency as i64;
    })
    .await
    .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let (_, uploaded, t, target) =
        migration::memory_source_and_proxied_target(&app, &token, &vec![1024; objects])
            .await
            .unwrap();
    let latency = Duration::from_millis(50);
    t.proxy.slow(latency, None);
    let (connections, _) = t.proxy.connections();
    let requests_before = t.proxy.bytes();
    let started = Instant::now();
    let mut runs = app.runs(Some(&token)).await;
    let run = migration::run_to_end(
        &mut runs,
        migration::start_request(&target.id, pb::MigrationMode::Live),
        Duration::from_secs(300),
    )
    .await
    .unwrap();
    let took = started.elapsed();
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    settled(&run, objects);
    // Each copy is a write and a read-back at least: 200 ms one after another.
    let serial = 2 * 2 * latency * objects as u32;
    println!(
        "fault relay: {objects} objects through a target answering in {:?} took {took:?} \
         ({:.0} objects/s; {serial:?} one at a time; {} new connections, {:?} B before)",
        2 * latency,
        objects as f64 / took.as_secs_f64(),
        t.proxy.connections().0 - connections,
        requests_before,
    );
    assert!(took * 8 < serial, "concurrency hides the latency: {took:?}");
    t.proxy.resume();
    assert_eq!(
        all_readable(&app, &token, &uploaded, &target.id).await,
        objects
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_copy_to_s3_that_fails_midway_aborts_its_multipart_upload() {
    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    // Larger than two upload parts (8 MiB): the target's multipart upload has begun, and
    // a part is up, when the source goes away.
    let (mut s, uploaded) = migration::proxied_source(&app, &token, &[20 * MIB])
        .await
        .unwrap();
    let mut bindings = app.bindings(Some(&token)).await;
    let s3 = TestPrefix::create().unwrap();
    let target = migration::create_active(&mut bindings, s3.binding("s3"))
        .await
        .unwrap();
    s.proxy
        .fault_after(Direction::FromUpstream, (12 * MIB) as u64, Fault::Kill);
    let mut runs = app.runs(Some(&token)).await;
    let live = migration::start_request(&target.id, pb::MigrationMode::Live);
    let run = migration::run_to_end(&mut runs, live, WAIT).await.unwrap();
    assert!(s.proxy.fired(), "the source went away mid-copy");
    assert_eq!(run.state(), pb::RunState::CompletedWithErrors, "{run:?}");
    let left = s3.raw_store().unwrap().interrupted_uploads().await.unwrap();
    assert!(
        left.is_empty(),
        "the failed write aborted its upload: {left:?}"
    );
    let stored = migration::stored_keys(&s3.raw_store().unwrap(), &s3.prefix).await;
    assert!(stored.unwrap().is_empty(), "and no object shows");
    let failed = migration::items(&mut runs, &run.id, pb::ItemState::Failed)
        .await
        .unwrap();
    assert_eq!(
        failed[0].cause(),
        pb::ItemCause::SourceUnavailable,
        "{failed:?}"
    );

    // A new run picks the failure up once the source is back.
    s.proxy.revive().await.unwrap();
    a_new_run_finishes(&app, &token, &uploaded, &target).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_s3_upload_a_killed_writer_left_is_aborted_once_it_is_old() {
    let s3 = TestPrefix::create().unwrap();
    let raw = s3.raw_store().unwrap();
    // What a writer killed mid-upload leaves: a multipart upload with a part, never
    // completed nor aborted.
    let key = BlobKey::new("artifacts/killed/writer").unwrap();
    let mut upload = raw
        .put_multipart(&key, S3_MIN_PART_SIZE, &[])
        .await
        .unwrap();
    upload.put(Bytes::from(vec![7u8; S3_MIN_PART_SIZE]));
    upload.wait_for_capacity(0).await.unwrap();
    drop(upload);
    // The store lists the upload once it has recorded it (SeaweedFS may take a moment
    // under load).
    let listed = Instant::now() + Duration::from_secs(10);
    let left = loop {
        let left = raw.interrupted_uploads().await.unwrap();
        if !left.is_empty() || Instant::now() > listed {
            break left;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].key, key);

    let app = spawn_app_configured(|configs| {
        configs.migration.migration.interrupted_upload_age = Duration::from_secs(1);
    })
    .await
    .unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let mut bindings = app.bindings(Some(&token)).await;
    migration::create(&mut bindings, s3.binding("s3"))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !raw.interrupted_uploads().await.unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the sweeper aborts the upload");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await.unwrap();
}
