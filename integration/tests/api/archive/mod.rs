//! The scan archive through the gRPC API, by behaviour, and the helpers they share.

mod crash;
mod crash_matrix;
mod faults;
mod lifecycle;
mod listing;
mod queue;
mod races;
mod refusals;
mod restore;
mod schedule;
mod shred;
mod stores;
mod verify;

use stowage_integration::{app::archive_store_name, db::count, scans, spawn_app_and_db};
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
        request_id: String::new(),
    }
}

/// A job of `acme` archived by a super admin, as [`archived_job`] leaves it.
struct Archived {
    job: uuid::Uuid,
    /// The super admin's token.
    admin: String,
    key: BlobKey,
    /// `scans::table_digest` of the job's rows before they were archived.
    before: (String, i64, i64),
}

/// A job of `acme` put in (`status`, terminal `days` ago, `items` scan items, `records`
/// file records) and archived by a super admin.
async fn archived_job(
    app: &stowage_integration::TestApp,
    db: &tokio_postgres::Client,
    (status, days): (&str, f64),
    (items, records): (i64, i64),
) -> Archived {
    let job = scans::insert_job(db, "acme", status, days, items, records)
        .await
        .unwrap();
    let before = scans::table_digest(db, job).await.unwrap();
    let admin = app.token("acme", &[Role::SuperAdmin]);
    let archived = stores::archive(&mut app.archive_admin(Some(&admin)).await, job).await;
    assert_eq!(archived.state(), pb::ArchiveState::Archived);
    Archived {
        job,
        admin,
        key: BlobKey::new(archived.blob_key).unwrap(),
        before,
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

async fn archive_due(app: &stowage_integration::TestApp, limit: i32) -> Vec<pb::ArchiveOutcome> {
    let admin = app.token("ops", &[Role::SuperAdmin]);
    let request = pb::ArchiveEligibleJobsRequest {
        limit,
        reason: "catch up".into(),
    };
    let mut stream = app
        .archive_admin(Some(&admin))
        .await
        .archive_eligible_jobs(request)
        .await
        .unwrap()
        .into_inner();
    let mut outcomes = Vec::new();
    while let Some(outcome) = stream.message().await.unwrap() {
        outcomes.push(outcome);
    }
    outcomes
}

/// The job is eligible again a full COMPLETED window (14 days) from now, so not due now.
async fn assert_clock_restarted(app: &stowage_integration::TestApp, state: &pb::JobArchive) {
    let eligible = state.eligible_time.unwrap();
    let in_days = (eligible.seconds - chrono::Utc::now().timestamp()) as f64 / 86_400.0;
    assert!(
        (13.9..=14.0).contains(&in_days),
        "eligible again in {in_days} days"
    );
    assert!(archive_due(app, 100).await.is_empty());
}

/// Restores `job` as a member of `tenant`; the rows restored.
pub(super) async fn restore_as(
    app: &stowage_integration::TestApp,
    tenant: &str,
    job: uuid::Uuid,
) -> Result<i64, tonic::Status> {
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
