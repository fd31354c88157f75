//! Archive store versions through the gRPC API: every archive restores and deletes from
//! the store version it was written to, a move to the newest version is verified before
//! the old blob goes, a delete is whole or recorded, and a store change is checked before
//! it takes effect. PostgreSQL, Azurite and file stores.

use std::{path::PathBuf, time::Duration};

use stowage_integration::{
    TestApp,
    app::{Bearer, Configs},
    azurite::TestContainer,
    db::count,
    migration::ProxiedContainer,
    scans, spawn_app, spawn_app_and_db, spawn_app_configured,
};
use stowage_proto::archive::v1::{
    self as pb, archive_admin_service_client::ArchiveAdminServiceClient,
};
use stowage_shared::{
    auth::Role,
    blob::{
        BlobKey, BlobStore,
        azure::{DEV_ACCOUNT, DEV_KEY},
    },
};
use tonic::Code;
use uuid::Uuid;

/// A store fault gives up within a second or two rather than retrying for a minute.
pub(super) fn fail_fast(configs: Configs<'_>) {
    configs.archive.archive.store_retries = 0;
    configs.archive.archive.store_retry_timeout = Duration::from_secs(1);
}

pub(super) type Admin = ArchiveAdminServiceClient<Bearer>;

pub(super) async fn admin(app: &TestApp) -> Admin {
    app.archive_admin(Some(&app.token("ops", &[Role::SuperAdmin])))
        .await
}

fn set_store_request(connection_string: &str, container: &str) -> pb::SetArchiveStoreRequest {
    pb::SetArchiveStoreRequest {
        connection_string: connection_string.to_owned(),
        container: container.to_owned(),
        reason: "new archive store".into(),
        request_id: String::new(),
    }
}

pub(super) async fn set_store(
    admin: &mut Admin,
    connection_string: &str,
    container: &str,
) -> pb::ArchiveStore {
    admin
        .set_archive_store(set_store_request(connection_string, container))
        .await
        .unwrap()
        .into_inner()
        .store
        .unwrap()
}

pub(super) async fn archive(admin: &mut Admin, job: Uuid) -> pb::JobArchive {
    admin
        .archive_job(pb::ArchiveJobRequest {
            job_id: job.to_string(),
            reason: "test".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

pub(super) async fn restore(app: &TestApp, job: Uuid) -> Result<i64, tonic::Status> {
    super::restore_as(app, "acme", job).await
}

async fn stores(admin: &mut Admin) -> Vec<pb::ArchiveStore> {
    admin
        .list_archive_stores(pb::ListArchiveStoresRequest {})
        .await
        .unwrap()
        .into_inner()
        .stores
}

/// A fresh directory for a file store.
pub(super) fn file_dir() -> PathBuf {
    let dir = std::env::temp_dir().join(format!("stowage-archive-{}", Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

pub(super) fn file_url(dir: &std::path::Path) -> String {
    format!("file://{}", dir.display())
}

/// Archive blobs under `dir` (probe objects of posture checks are deleted, so none stay).
fn files_under(dir: &std::path::Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                found.push(path);
            }
        }
    }
    found
}

pub(super) fn azure_url(endpoint: &str) -> String {
    format!(
        "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={DEV_KEY};\
         BlobEndpoint={endpoint};"
    )
}

pub(super) async fn exists(store: &BlobStore, key: &str) -> bool {
    store.size(&BlobKey::new(key).unwrap()).await.is_ok()
}

async fn hot_job(app: &TestApp, idle_days: f64) -> (Uuid, (String, i64, i64)) {
    let db = app.db.client().await.unwrap();
    let job = scans::insert_job(&db, "acme", "COMPLETED", idle_days, 120, 60)
        .await
        .unwrap();
    let digest = scans::table_digest(&db, job).await.unwrap();
    (job, digest)
}

#[tokio::test]
async fn each_archive_restores_from_the_store_version_it_was_written_to() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    let file = set_store(&mut admin, &file_url(&dir), "").await;
    assert_eq!((file.version, file.provider.as_str()), (2, "file"));
    let (first, first_rows) = hot_job(&app, 20.0).await;
    let archived = archive(&mut admin, first).await;
    assert_eq!(archived.store_version, 2);
    assert_eq!(files_under(&dir).len(), 1, "the blob is in the file store");

    let container = TestContainer::create().await.unwrap();
    let azure = set_store(
        &mut admin,
        &container.connection_string(),
        &container.container,
    )
    .await;
    assert_eq!((azure.version, azure.provider.as_str()), (3, "azure"));
    let (second, second_rows) = hot_job(&app, 20.0).await;
    assert_eq!(archive(&mut admin, second).await.store_version, 3);
    assert!(
        exists(
            &container.raw_store().unwrap(),
            &format!("acme/{second}.json.zst")
        )
        .await
    );

    let listed = stores(&mut admin).await;
    let summary: Vec<_> = listed
        .iter()
        .map(|s| (s.version, s.current, s.archived_jobs))
        .collect();
    assert_eq!(summary, [(3, true, 1), (2, false, 1), (1, false, 0)]);
    assert!(
        !format!("{listed:?}").contains(DEV_KEY),
        "a listing never carries a secret"
    );
    assert_eq!(listed[0].credential_kind, "account_key");
    assert_eq!(
        listed[0].location,
        format!("{}/{}", container.endpoint, container.container)
    );

    assert_eq!(restore(&app, first).await.unwrap(), 180);
    assert_eq!(restore(&app, second).await.unwrap(), 180);
    assert_eq!(scans::table_digest(&db, first).await.unwrap(), first_rows);
    assert_eq!(scans::table_digest(&db, second).await.unwrap(), second_rows);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn deleting_a_job_removes_its_blob_from_its_own_store_version_once() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    set_store(&mut admin, &file_url(&dir), "").await;
    let (job, _) = hot_job(&app, 20.0).await;
    archive(&mut admin, job).await;
    let container = TestContainer::create().await.unwrap();
    set_store(
        &mut admin,
        &container.connection_string(),
        &container.container,
    )
    .await;

    let mut client = app
        .archive(Some(&app.token("acme", &[Role::OrgAdmin])))
        .await;
    let request = pb::DeleteJobRequest {
        job_id: job.to_string(),
        reason: "customer asked".into(),
        request_id: "delete-1".into(),
    };
    let deleted = client
        .delete_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(deleted.blob_deleted && !deleted.blob_delete_pending);
    assert!(files_under(&dir).is_empty(), "the v2 blob is gone");

    let again = client
        .delete_job(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, deleted, "a repeat returns the first result");
    let other = pb::DeleteJobRequest {
        reason: "another reason".into(),
        ..request
    };
    assert_eq!(
        client.delete_job(other).await.unwrap_err().code(),
        Code::InvalidArgument,
        "the same id for another request"
    );
    let audited = count(
        &db,
        "select count(*) from archive.audit_log where action = 'delete' and job_id = $1",
        &[&job],
    )
    .await
    .unwrap();
    assert_eq!(audited, 1);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_delete_whose_store_is_down_is_kept_on_record_and_finished_later() {
    let app = spawn_app_configured(|configs| {
        configs.archive.archive.sweep_interval = Duration::from_millis(200);
        fail_fast(configs);
    })
    .await
    .unwrap();
    let mut admin = admin(&app).await;
    let mut proxied = ProxiedContainer::create().await.unwrap();
    let store = set_store(
        &mut admin,
        &azure_url(&proxied.endpoint()),
        &proxied.container.container,
    )
    .await;
    let (job, _) = hot_job(&app, 20.0).await;
    archive(&mut admin, job).await;
    let raw = proxied.raw_store().unwrap();
    let key = format!("acme/{job}.json.zst");

    proxied.proxy.kill();
    let mut client = app
        .archive(Some(&app.token("acme", &[Role::OrgAdmin])))
        .await;
    let deleted = client
        .delete_job(pb::DeleteJobRequest {
            job_id: job.to_string(),
            reason: "customer asked".into(),
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!deleted.blob_deleted && deleted.blob_delete_pending);
    let gone = client
        .get_job_archive(pb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Code::NotFound, "the job itself is deleted");
    assert!(
        exists(&raw, &key).await,
        "the blob is still there, and on record"
    );
    let pending = |listed: Vec<pb::ArchiveStore>| {
        listed
            .iter()
            .find(|s| s.version == store.version)
            .map(|s| s.pending_deletes)
    };
    assert!(pending(stores(&mut admin).await).unwrap() >= 1);

    proxied.proxy.revive().await.unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while exists(&raw, &key).await || pending(stores(&mut admin).await) != Some(0) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the sweeper deletes the blob once the store is back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_moved_archive_restores_from_the_newest_version_and_its_old_blob_goes_after_the_copy() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let db = app.db.client().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    set_store(&mut admin, &file_url(&dir), "").await;
    let (first, first_rows) = hot_job(&app, 20.0).await;
    let (second, _) = hot_job(&app, 20.0).await;
    archive(&mut admin, first).await;
    archive(&mut admin, second).await;
    let mut proxied = ProxiedContainer::create().await.unwrap();
    let newest = set_store(
        &mut admin,
        &azure_url(&proxied.endpoint()),
        &proxied.container.container,
    )
    .await;
    let raw = proxied.raw_store().unwrap();

    let dry = migrate(&mut admin, pb::MoveMode::DryRun, 0).await.unwrap();
    let MoveReport { plan, jobs, done } = dry;
    assert_eq!(plan.target_version, newest.version);
    assert_eq!(
        plan.sources
            .iter()
            .map(|s| (s.store_version, s.jobs))
            .collect::<Vec<_>>(),
        [(2, 2)]
    );
    assert!(jobs.is_empty() && done.moved == 0);
    assert_eq!(files_under(&dir).len(), 2, "a dry run touches no store");

    // The target goes away: the copy fails, nothing is re-pointed, nothing deleted.
    proxied.proxy.kill();
    let failed = migrate(&mut admin, pb::MoveMode::Live, 1).await.unwrap();
    assert_eq!(failed.jobs.len(), 1);
    assert_eq!(failed.jobs[0].outcome(), pb::MoveOutcome::Failed);
    assert_eq!(files_under(&dir).len(), 2, "the old blobs stay");
    let versions: Vec<i64> = db
        .query(
            "select archive_store_version from archive.scan_jobs order by id",
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [2, 2]);

    proxied.proxy.revive().await.unwrap();
    let moved = migrate(&mut admin, pb::MoveMode::Live, 0).await.unwrap();
    assert_eq!((moved.done.moved, moved.done.failed), (2, 0));
    assert!(
        files_under(&dir).is_empty(),
        "old blobs go once the copies verified"
    );
    assert!(exists(&raw, &format!("acme/{first}.json.zst")).await);
    let listed = stores(&mut admin).await;
    assert_eq!(listed[0].archived_jobs, 2);
    assert_eq!(restore(&app, first).await.unwrap(), 180);
    assert_eq!(scans::table_digest(&db, first).await.unwrap(), first_rows);

    let again = migrate(&mut admin, pb::MoveMode::Live, 0).await.unwrap();
    assert_eq!(again.done.moved, 0, "nothing is left to move");
    app.stop().await.unwrap();
}

struct MoveReport {
    plan: pb::MovePlan,
    jobs: Vec<pb::ArchiveMove>,
    done: pb::MoveTotals,
}

async fn migrate(
    admin: &mut Admin,
    mode: pb::MoveMode,
    limit: i32,
) -> Result<MoveReport, tonic::Status> {
    let mut stream = admin
        .migrate_archives(pb::MigrateArchivesRequest {
            mode: mode.into(),
            reason: "one store".into(),
            limit,
        })
        .await?
        .into_inner();
    let (mut plan, mut jobs, mut done) = (None, Vec::new(), None);
    while let Some(progress) = stream.message().await? {
        match progress.event {
            Some(pb::migrate_archives_progress::Event::Plan(p)) => plan = Some(p),
            Some(pb::migrate_archives_progress::Event::Job(j)) => jobs.push(j),
            Some(pb::migrate_archives_progress::Event::Done(d)) => done = Some(d),
            None => {}
        }
    }
    Ok(MoveReport {
        plan: plan.expect("a plan first"),
        jobs,
        done: done.expect("totals last"),
    })
}

#[tokio::test]
async fn a_store_change_that_fails_its_check_changes_nothing() {
    let app = spawn_app_configured(fail_fast).await.unwrap();
    let mut admin = admin(&app).await;
    let container = TestContainer::create().await.unwrap();
    let wrong_key = base64::Engine::encode(&base64::engine::general_purpose::STANDARD, [7u8; 64]);
    let missing_dir = std::env::temp_dir().join(format!("stowage-missing-{}", Uuid::new_v4()));
    let refused = [
        (
            container.connection_string().replace(DEV_KEY, &wrong_key),
            container.container.clone(),
            Code::FailedPrecondition,
        ),
        (
            container.connection_string(),
            "no-such-container".to_owned(),
            Code::FailedPrecondition,
        ),
        (
            file_url(&missing_dir),
            String::new(),
            Code::FailedPrecondition,
        ),
        (
            "file://relative/dir".to_owned(),
            String::new(),
            Code::InvalidArgument,
        ),
        (
            "not a store at all".to_owned(),
            "archives".to_owned(),
            Code::InvalidArgument,
        ),
        (
            container.connection_string(),
            String::new(),
            Code::InvalidArgument,
        ),
    ];
    let refusals = refused.len() as i64;
    for (connection_string, container_name, code) in refused {
        let status = admin
            .set_archive_store(set_store_request(&connection_string, &container_name))
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            code,
            "{connection_string}: {}",
            status.message()
        );
        assert!(
            !status.message().contains(&wrong_key) && !status.message().contains(DEV_KEY),
            "no secret in {}",
            status.message()
        );
        assert_eq!(stores(&mut admin).await.len(), 1, "nothing changed");
    }
    assert!(!missing_dir.exists(), "a missing directory is not created");
    let garbage = admin
        .set_archive_store(set_store_request("not a store at all", "archives"))
        .await
        .unwrap_err();
    assert!(
        garbage
            .message()
            .starts_with("connection_string: is neither"),
        "{}",
        garbage.message()
    );
    // Every refusal is audited as a failed attempt, and no audit entry holds a secret.
    let db = app.db.client().await.unwrap();
    let failed = count(
        &db,
        "select count(*) from archive.audit_log
         where action = 'set_archive_store' and outcome = 'failed'",
        &[],
    )
    .await
    .unwrap();
    assert_eq!(failed, refusals + 1);
    let leaked = count(
        &db,
        "select count(*) from archive.audit_log
         where detail::text like '%' || $1 || '%' or detail::text like '%' || $2 || '%'",
        &[&wrong_key, &DEV_KEY],
    )
    .await
    .unwrap();
    assert_eq!(leaked, 0, "no secret in the audit trail");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_repeated_store_change_or_archive_returns_the_first_result() {
    let app = spawn_app().await.unwrap();
    let mut admin = admin(&app).await;
    let dir = file_dir();
    let request = pb::SetArchiveStoreRequest {
        request_id: "store-1".into(),
        ..set_store_request(&file_url(&dir), "")
    };
    let first = admin
        .set_archive_store(request.clone())
        .await
        .unwrap()
        .into_inner();
    let second = admin
        .set_archive_store(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.store.unwrap().version, second.store.unwrap().version);
    assert_eq!(stores(&mut admin).await.len(), 2);
    let other = pb::SetArchiveStoreRequest {
        connection_string: "memory://another".into(),
        ..request
    };
    assert_eq!(
        admin.set_archive_store(other).await.unwrap_err().code(),
        Code::InvalidArgument
    );

    let (job, _) = hot_job(&app, 20.0).await;
    let archive_request = pb::ArchiveJobRequest {
        job_id: job.to_string(),
        reason: "now".into(),
        request_id: "archive-1".into(),
        ..Default::default()
    };
    let archived = admin
        .archive_job(archive_request.clone())
        .await
        .unwrap()
        .into_inner();
    let repeated = admin
        .archive_job(archive_request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(archived, repeated);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_version_takes_a_new_credential_only_for_the_same_store() {
    let app = spawn_app().await.unwrap();
    let mut admin = admin(&app).await;
    let container = TestContainer::create().await.unwrap();
    let store = set_store(
        &mut admin,
        &container.connection_string(),
        &container.container,
    )
    .await;
    let (job, _) = hot_job(&app, 20.0).await;
    archive(&mut admin, job).await;
    let other = TestContainer::create().await.unwrap();
    let elsewhere = admin
        .update_archive_store_credential(pb::UpdateArchiveStoreCredentialRequest {
            version: store.version,
            connection_string: other.connection_string(),
            container: other.container.clone(),
            reason: "typo".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::FailedPrecondition);
    let updated = admin
        .update_archive_store_credential(pb::UpdateArchiveStoreCredentialRequest {
            version: store.version,
            connection_string: container.connection_string(),
            container: container.container.clone(),
            reason: "key rotated".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.credential_version, 2);
    assert!(!updated.credential_updated_by.is_empty());
    assert_eq!(restore(&app, job).await.unwrap(), 180);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn tenant_ids_that_cannot_name_a_blob_are_a_precondition_never_internal() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut admin = admin(&app).await;
    for tenant in [
        "../escape",
        "acme/",
        "acme//x",
        "",
        "..",
        "a\\b",
        "tab\there",
    ] {
        let job = scans::insert_job(&db, tenant, "COMPLETED", 20.0, 3, 3)
            .await
            .unwrap();
        let status = admin
            .archive_job(pb::ArchiveJobRequest {
                job_id: job.to_string(),
                reason: "test".into(),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "{tenant:?}: {}",
            status.message()
        );
        assert_eq!(
            scans::table_digest(&db, job).await.unwrap().1,
            3,
            "rows stay hot"
        );
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn archives_are_audited_under_the_jobs_tenant_with_the_actor_beside_it() {
    let (app, db) = spawn_app_and_db().await.unwrap();
    let mut admin = admin(&app).await;
    let (job, _) = hot_job(&app, 20.0).await;
    archive(&mut admin, job).await;
    let (tenant, actor_tenant): (String, Option<String>) = db
        .query_one(
            "select tenant_id, actor_tenant from archive.audit_log
             where action = 'archive' and job_id = $1",
            &[&job],
        )
        .await
        .map(|row| (row.get(0), row.get(1)))
        .unwrap();
    assert_eq!(
        (tenant.as_str(), actor_tenant.as_deref()),
        ("acme", Some("ops"))
    );
    app.stop().await.unwrap();
}

#[tokio::test]
async fn an_earlier_releases_store_setting_becomes_a_version_and_keeps_its_jobs() {
    use stowage_integration::{app::spawn_app_with, db::TestDb};

    let test_db = TestDb::migrated().await.unwrap();
    let common = stowage_integration::app::test_common(&test_db).unwrap();
    let db = test_db.client().await.unwrap();
    // What an earlier release left: its one store setting, set a day ago, and two jobs
    // archived before and after that.
    let dir = file_dir();
    let setting = serde_json::json!({ "connection_string": file_url(&dir), "container": "" });
    let keys = stowage_shared::keyring::KeyRing::from_config(&common.keys).unwrap();
    let sealed = keys
        .seal(
            b"archive.admin_config/archive_store",
            setting.to_string().as_bytes(),
        )
        .unwrap();
    db.execute(
        "insert into archive.admin_config (key, value, sealed, update_time, updated_by)
         values ('archive_store', $1, true, now() - interval '1 day', 'ops-7')",
        &[&sealed],
    )
    .await
    .unwrap();
    let mut jobs = Vec::new();
    for archived_days_ago in [2, 0] {
        let job = scans::insert_job(&db, "acme", "COMPLETED", 30.0, 0, 0)
            .await
            .unwrap();
        db.execute(
            "update archive.scan_jobs set archived_at = now() - make_interval(days => $2),
                 archive_blob_key = 'acme/' || id || '.json.zst', archive_format = 'json.zst'
             where id = $1",
            &[&job, &archived_days_ago],
        )
        .await
        .unwrap();
        jobs.push(job);
    }

    let app = spawn_app_with(test_db, common, |_| {}).await.unwrap();
    let listed = stores(&mut admin(&app).await).await;
    let summary: Vec<_> = listed
        .iter()
        .map(|s| {
            (
                s.version,
                s.provider.as_str(),
                s.created_by.as_str(),
                s.archived_jobs,
            )
        })
        .collect();
    assert_eq!(
        summary,
        [(2, "file", "ops-7", 1), (1, "memory", "configuration", 1)],
        "the configured default is version 1, the earlier setting version 2"
    );
    let versions: Vec<Option<i64>> = db
        .query(
            "select archive_store_version from archive.scan_jobs where id = any($1)
             order by archived_at",
            &[&jobs],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    assert_eq!(versions, [Some(1), Some(2)]);
    let left = count(&db, "select count(*) from archive.admin_config", &[])
        .await
        .unwrap();
    assert_eq!(left, 0, "the earlier setting is adopted once");
    app.stop().await.unwrap();
}

#[tokio::test]
async fn archive_blobs_are_written_at_the_configured_azure_access_tier() {
    for (tier, sent) in [
        ("Cool", Some("cool")),
        ("Hot", Some("hot")),
        ("Default", None),
    ] {
        let app = spawn_app_configured(|configs| {
            configs.archive.archive.access_tier = tier.into();
            fail_fast(configs);
        })
        .await
        .unwrap();
        let mut admin = admin(&app).await;
        let proxied = ProxiedContainer::create().await.unwrap();
        set_store(
            &mut admin,
            &azure_url(&proxied.endpoint()),
            &proxied.container.container,
        )
        .await;
        let (job, rows) = hot_job(&app, 20.0).await;
        archive(&mut admin, job).await;
        // Each request's head: from its request line to the blank line that ends it.
        let heard = proxied.proxy.heard();
        let job_puts: Vec<&str> = heard
            .match_indices("put /")
            .filter_map(|(at, _)| heard[at..].split("\r\n\r\n").next())
            .filter(|head| {
                head.lines()
                    .next()
                    .is_some_and(|l| l.contains(&job.to_string()))
            })
            .collect();
        assert!(
            !job_puts.is_empty(),
            "{tier}: no PUT of the job's blob was heard"
        );
        let asked: std::collections::BTreeSet<&str> = job_puts
            .iter()
            .flat_map(|head| head.lines())
            .filter_map(|line| line.strip_prefix("x-ms-access-tier: "))
            .collect();
        assert_eq!(asked.into_iter().next(), sent, "{tier}: {job_puts:?}");
        assert_eq!(restore(&app, job).await.unwrap(), 180);
        assert_eq!(
            scans::table_digest(&app.db.client().await.unwrap(), job)
                .await
                .unwrap(),
            rows
        );
        app.stop().await.unwrap();
    }
}
