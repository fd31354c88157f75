//! Live runs between providers on real stores: Azure (Azurite) → S3 (SeaweedFS) and
//! S3 → file, each with an object larger than an upload part, every copy verified, the
//! sources left as they were.

use stowage_integration::{migration, seaweedfs::TestPrefix};
use stowage_proto::migration::v1 as pb;
use stowage_shared::blob::BlobStore;

use super::WAIT;

const SIZES: [usize; 5] = [9 * 1024 * 1024 + 5, 70_000, 4096, 1, 0];

/// Runs every artifact of the organization to `target` and checks each one is there,
/// whole, with the source objects unchanged in `source`.
async fn migrates_everything(
    app: &stowage_integration::TestApp,
    token: &str,
    uploaded: &[(pb::Artifact, Vec<u8>)],
    source: &BlobStore,
    target: &pb::Binding,
    stored_on_target: &BlobStore,
) {
    let mut before = Vec::new();
    for (artifact, _) in uploaded {
        before.push(
            migration::read_raw(source, &artifact.object_key)
                .await
                .unwrap(),
        );
    }
    let mut runs = app.runs(Some(token)).await;
    let request = migration::start_request(&target.id, pb::MigrationMode::Live);
    let run = migration::run_to_end(&mut runs, request, WAIT)
        .await
        .unwrap();
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    let counts = run.items.unwrap();
    assert_eq!(counts.migrated, uploaded.len() as i64, "{counts:?}");

    let mut artifacts = app.artifacts(Some(token)).await;
    for ((artifact, data), before) in uploaded.iter().zip(&before) {
        let (now, read) = migration::get(&mut artifacts, &artifact.id).await.unwrap();
        assert_eq!(now.binding_id, target.id);
        assert!(read == *data, "content of {} changed", artifact.name);
        let stored = migration::read_raw(stored_on_target, &now.object_key)
            .await
            .unwrap();
        assert!(
            stored.len() > data.len(),
            "stored encrypted under {}",
            now.object_key
        );
        let after = migration::read_raw(source, &artifact.object_key)
            .await
            .unwrap();
        assert!(
            after == *before,
            "the source object of {} is untouched",
            artifact.name
        );
    }
}

#[tokio::test]
async fn a_live_run_from_azure_to_s3_moves_every_artifact_verified() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let azure = migration::ProxiedContainer::create().await.unwrap();
    migration::create_active(&mut bindings, azure.binding("azure"))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &SIZES).await.unwrap();
    let s3 = TestPrefix::create().unwrap();
    let target = migration::create_active(&mut bindings, s3.binding("s3"))
        .await
        .unwrap();
    let (source, on_target) = (azure.raw_store().unwrap(), s3.raw_store().unwrap());
    migrates_everything(&app, &token, &uploaded, &source, &target, &on_target).await;
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_live_run_from_s3_to_file_moves_every_artifact_verified() {
    let (app, token, mut bindings) = migration::acme_admin().await.unwrap();
    let s3 = TestPrefix::create().unwrap();
    migration::create_active(&mut bindings, s3.binding("s3"))
        .await
        .unwrap();
    let uploaded = migration::upload(&app, &token, 0, &SIZES).await.unwrap();
    let dir = std::env::temp_dir().join(format!("stowage-file-{}", uuid::Uuid::new_v4().simple()));
    let target = migration::create_active(&mut bindings, migration::file_binding("file", &dir))
        .await
        .unwrap();
    let on_target = migration::raw_file_store(&dir).unwrap();
    let source = s3.raw_store().unwrap();
    migrates_everything(&app, &token, &uploaded, &source, &target, &on_target).await;
    app.stop().await.unwrap();
    let _ = std::fs::remove_dir_all(dir);
}
