//! Helpers for migration-svc tests: bindings on Azurite (directly or through a
//! [`TcpProxy`]), activation, uploads and downloads of artifacts, a source and a target
//! with artifacts to move, and starting and waiting for runs.

use std::{
    path::Path,
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::StreamExt;
use stowage_proto::migration::v1::{
    self as pb, artifact_service_client::ArtifactServiceClient,
    binding_service_client::BindingServiceClient, get_artifact_response,
    migration_service_client::MigrationServiceClient, put_artifact_request,
};
use stowage_shared::blob::{
    BlobKey, BlobStore, Credential, Location, Provider, StoreConfig, StoreOptions,
    azure::{DEV_ACCOUNT, DEV_KEY},
};

use crate::{
    TestApp,
    app::Bearer,
    azurite::{self, TestContainer},
    proxy::TcpProxy,
};

/// A fresh Azurite container behind a proxy of its own.
pub struct ProxiedContainer {
    pub container: TestContainer,
    pub proxy: TcpProxy,
}

impl ProxiedContainer {
    pub async fn create() -> Result<Self> {
        let container = TestContainer::create().await?;
        let upstream = container
            .endpoint
            .split_once("://")
            .and_then(|(_, rest)| rest.split('/').next())
            .context("Azurite endpoint has no host")?
            .parse()?;
        let proxy = TcpProxy::start(upstream).await?;
        Ok(Self { container, proxy })
    }

    /// The Azurite endpoint as reached through the proxy.
    pub fn endpoint(&self) -> String {
        format!("http://{}/{DEV_ACCOUNT}", self.proxy.addr)
    }

    pub fn binding(&self, name: &str) -> pb::CreateBindingRequest {
        azure_binding(name, &self.container.container, &self.endpoint(), DEV_KEY)
    }

    /// The container reached directly (not through the proxy), without encryption: to
    /// read, alter or delete stored objects behind the service's back.
    pub fn raw_store(&self) -> Result<BlobStore> {
        self.container.raw_store()
    }
}

/// The whole stored object at `key`.
pub async fn read_raw(store: &BlobStore, key: &str) -> Result<Vec<u8>> {
    let mut read = store.get(&BlobKey::new(key)?).await?;
    let mut out = Vec::new();
    while let Some(chunk) = read.stream.next().await {
        out.extend_from_slice(&chunk?);
    }
    Ok(out)
}

/// An Azure binding on Azurite at `endpoint` with the account key `key`.
pub fn azure_binding(
    name: &str,
    container: &str,
    endpoint: &str,
    key: &str,
) -> pb::CreateBindingRequest {
    pb::CreateBindingRequest {
        display_name: name.to_owned(),
        provider: pb::Provider::Azure.into(),
        location: Some(pb::Location {
            container: container.to_owned(),
            ..Default::default()
        }),
        credential: Some(azure_credential(endpoint, key)),
        request_id: String::new(),
    }
}

pub fn azure_credential(endpoint: &str, key: &str) -> pb::Credential {
    pb::Credential {
        kind: Some(pb::credential::Kind::AzureConnectionString(format!(
            "DefaultEndpointsProtocol=http;AccountName={DEV_ACCOUNT};AccountKey={key};\
             BlobEndpoint={endpoint};"
        ))),
    }
}

/// A binding on a fresh Azurite container, reached directly.
pub async fn azurite_binding(name: &str) -> Result<pb::CreateBindingRequest> {
    let container = TestContainer::create().await?;
    Ok(azure_binding(
        name,
        &container.container,
        &azurite::endpoint()?,
        DEV_KEY,
    ))
}

/// A process-local memory binding named `name` (unique per test run).
pub fn memory_binding(name: &str) -> pb::CreateBindingRequest {
    pb::CreateBindingRequest {
        display_name: name.to_owned(),
        provider: pb::Provider::Memory.into(),
        location: Some(pb::Location {
            container: format!("{name}-{}", uuid::Uuid::new_v4().simple()),
            ..Default::default()
        }),
        credential: Some(pb::Credential {
            kind: Some(pb::credential::Kind::None(pb::NoCredential {})),
        }),
        request_id: String::new(),
    }
}

/// Every object under `prefix` ("" for all) in the container of `store`, as its store
/// names it.
pub async fn stored_keys(store: &BlobStore, prefix: &str) -> Result<Vec<String>> {
    let prefix = (!prefix.is_empty()).then(|| object_store::path::Path::from(prefix));
    let listed: Vec<_> = store
        .object_store()
        .list(prefix.as_ref())
        .collect::<Vec<_>>()
        .await;
    listed
        .into_iter()
        .map(|meta| Ok(meta?.location.to_string()))
        .collect()
}

/// The `file` store on `dir`, without encryption: to read what a `file` binding stored.
pub fn raw_file_store(dir: &Path) -> Result<BlobStore> {
    let config = StoreConfig {
        provider: Provider::File,
        location: Location {
            container: dir.display().to_string(),
            ..Location::default()
        },
        credential: Credential::None,
    };
    Ok(BlobStore::open(&config, &StoreOptions::fail_fast())?)
}

/// A `file` binding on the directory `dir`.
pub fn file_binding(name: &str, dir: &Path) -> pb::CreateBindingRequest {
    pb::CreateBindingRequest {
        display_name: name.to_owned(),
        provider: pb::Provider::File.into(),
        location: Some(pb::Location {
            container: dir.display().to_string(),
            ..Default::default()
        }),
        credential: Some(pb::Credential {
            kind: Some(pb::credential::Kind::None(pb::NoCredential {})),
        }),
        request_id: String::new(),
    }
}

pub async fn create(
    bindings: &mut BindingServiceClient<Bearer>,
    request: pb::CreateBindingRequest,
) -> Result<pb::Binding> {
    Ok(bindings.create_binding(request).await?.into_inner())
}

pub async fn activate(
    bindings: &mut BindingServiceClient<Bearer>,
    id: &str,
) -> Result<pb::Binding, tonic::Status> {
    Ok(bindings
        .activate_binding(pb::ActivateBindingRequest {
            id: id.to_owned(),
            request_id: String::new(),
        })
        .await?
        .into_inner())
}

/// Creates and activates a binding.
pub async fn create_active(
    bindings: &mut BindingServiceClient<Bearer>,
    request: pb::CreateBindingRequest,
) -> Result<pb::Binding> {
    let created = create(bindings, request).await?;
    Ok(activate(bindings, &created.id).await?)
}

/// Deterministic content for artifact `i`.
pub fn content(i: usize, len: usize) -> Vec<u8> {
    let seed = (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    stowage_shared::blob::contract::pattern(seed, len)
}

pub fn metadata(purpose: &str, name: &str) -> pb::ArtifactMetadata {
    pb::ArtifactMetadata {
        purpose: purpose.to_owned(),
        name: name.to_owned(),
        content_type: "application/octet-stream".to_owned(),
        ..Default::default()
    }
}

/// Uploads `data` in 64 KiB chunks after `metadata`.
pub async fn put(
    artifacts: &mut ArtifactServiceClient<Bearer>,
    metadata: pb::ArtifactMetadata,
    data: &[u8],
) -> Result<pb::Artifact, tonic::Status> {
    let mut messages = vec![pb::PutArtifactRequest {
        part: Some(put_artifact_request::Part::Metadata(metadata)),
    }];
    messages.extend(data.chunks(64 * 1024).map(|chunk| pb::PutArtifactRequest {
        part: Some(put_artifact_request::Part::Chunk(Bytes::copy_from_slice(
            chunk,
        ))),
    }));
    Ok(artifacts
        .put_artifact(futures::stream::iter(messages))
        .await?
        .into_inner())
}

/// Downloads an artifact: its metadata and content.
pub async fn get(
    artifacts: &mut ArtifactServiceClient<Bearer>,
    id: &str,
) -> Result<(pb::Artifact, Vec<u8>), tonic::Status> {
    let mut stream = artifacts
        .get_artifact(pb::GetArtifactRequest { id: id.to_owned() })
        .await?
        .into_inner();
    let mut artifact = None;
    let mut data = Vec::new();
    while let Some(message) = stream.message().await? {
        match message.part {
            Some(get_artifact_response::Part::Artifact(a)) => artifact = Some(a),
            Some(get_artifact_response::Part::Chunk(chunk)) => data.extend_from_slice(&chunk),
            None => {}
        }
    }
    let artifact = artifact.ok_or_else(|| tonic::Status::internal("no artifact message"))?;
    Ok((artifact, data))
}

pub fn start_request(target: &str, mode: pb::MigrationMode) -> pb::StartRunRequest {
    pb::StartRunRequest {
        target_binding_id: target.to_owned(),
        mode: mode.into(),
        reason: "move older files to the new bucket".to_owned(),
        limit: None,
        request_id: String::new(),
        scope: None,
        from_dry_run_id: String::new(),
        accept_drift: false,
    }
}

/// Polls a run until it is terminal (at most `timeout`).
pub async fn wait_for_end(
    runs: &mut MigrationServiceClient<Bearer>,
    id: &str,
    timeout: Duration,
) -> Result<pb::Run> {
    wait_for(runs, id, timeout, |run| is_terminal(run.state())).await
}

/// Polls a run until `done` holds (at most `timeout`).
pub async fn wait_for(
    runs: &mut MigrationServiceClient<Bearer>,
    id: &str,
    timeout: Duration,
    done: impl Fn(&pb::Run) -> bool,
) -> Result<pb::Run> {
    let deadline = Instant::now() + timeout;
    loop {
        let run = runs
            .get_run(pb::GetRunRequest { id: id.to_owned() })
            .await?
            .into_inner();
        if done(&run) {
            return Ok(run);
        }
        if Instant::now() > deadline {
            bail!("run {id} did not get there within {timeout:?}: {run:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub fn is_terminal(state: pb::RunState) -> bool {
    matches!(
        state,
        pb::RunState::Completed
            | pb::RunState::CompletedWithErrors
            | pb::RunState::Failed
            | pb::RunState::Cancelled
    )
}

/// Every item of a run (all pages).
pub async fn items(
    runs: &mut MigrationServiceClient<Bearer>,
    run_id: &str,
    state: pb::ItemState,
) -> Result<Vec<pb::RunItem>> {
    let mut all = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = runs
            .list_run_items(pb::ListRunItemsRequest {
                run_id: run_id.to_owned(),
                page_size: 100,
                page_token,
                state: state.into(),
            })
            .await?
            .into_inner();
        all.extend(page.items);
        if page.next_page_token.is_empty() {
            return Ok(all);
        }
        page_token = page.next_page_token;
    }
}

/// Uploads artifacts of `sizes` (content `seed`, `seed + 1`, …) to the active binding;
/// returns them with their content.
pub async fn upload(
    app: &TestApp,
    token: &str,
    seed: usize,
    sizes: &[usize],
) -> Result<Vec<(pb::Artifact, Vec<u8>)>> {
    let mut artifacts = app.artifacts(Some(token)).await;
    let mut out = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        let data = content(seed + i, *size);
        let name = format!("file-{}", seed + i);
        let artifact = put(&mut artifacts, metadata("document", &name), &data).await?;
        out.push((artifact, data));
    }
    Ok(out)
}

/// How most migration tests begin: a fresh app, an org admin of `acme` and its bindings
/// client.
pub async fn acme_admin() -> Result<(TestApp, String, BindingServiceClient<Bearer>)> {
    let app = crate::spawn_app().await?;
    let token = app.token("acme", &[stowage_shared::auth::Role::OrgAdmin]);
    let bindings = app.bindings(Some(&token)).await;
    Ok((app, token, bindings))
}

/// An active memory binding holding artifacts of `sizes`, then a new active memory
/// binding (the target) replacing it: `(source, artifacts, target)`.
pub async fn memory_source_and_target(
    app: &TestApp,
    token: &str,
    sizes: &[usize],
) -> Result<(pb::Binding, Vec<(pb::Artifact, Vec<u8>)>, pb::Binding)> {
    let mut bindings = app.bindings(Some(token)).await;
    let source = create_active(&mut bindings, memory_binding("a")).await?;
    let uploaded = upload(app, token, 0, sizes).await?;
    let target = create_active(&mut bindings, memory_binding("t")).await?;
    Ok((source, uploaded, target))
}

/// An active memory binding holding artifacts of `sizes`, then a fresh Azurite container
/// behind a fault relay of its own as the new active binding (the target):
/// `(source, artifacts, target store, target)`.
pub async fn memory_source_and_proxied_target(
    app: &TestApp,
    token: &str,
    sizes: &[usize],
) -> Result<(
    pb::Binding,
    Vec<(pb::Artifact, Vec<u8>)>,
    ProxiedContainer,
    pb::Binding,
)> {
    let mut bindings = app.bindings(Some(token)).await;
    let source = create_active(&mut bindings, memory_binding("a")).await?;
    let uploaded = upload(app, token, 0, sizes).await?;
    let proxied = ProxiedContainer::create().await?;
    let target = create_active(&mut bindings, proxied.binding("t")).await?;
    Ok((source, uploaded, proxied, target))
}

/// A fresh Azurite container behind a fault relay of its own as the active binding,
/// holding artifacts of `sizes`: `(source store, artifacts)`. The caller names the target.
pub async fn proxied_source(
    app: &TestApp,
    token: &str,
    sizes: &[usize],
) -> Result<(ProxiedContainer, Vec<(pb::Artifact, Vec<u8>)>)> {
    let mut bindings = app.bindings(Some(token)).await;
    let proxied = ProxiedContainer::create().await?;
    create_active(&mut bindings, proxied.binding("s")).await?;
    let uploaded = upload(app, token, 0, sizes).await?;
    Ok((proxied, uploaded))
}

/// A live run to `target` at `objects_per_second` at most.
pub fn limited_request(target: &str, objects_per_second: i64) -> pb::StartRunRequest {
    let mut request = start_request(target, pb::MigrationMode::Live);
    request.limit = Some(pb::ThroughputLimit {
        bytes_per_second: 0,
        objects_per_second,
    });
    request
}

/// Starts a live run to `target` at `objects_per_second` at most and waits until
/// `migrated` of its items are migrated (at most `timeout`): a run caught midway.
pub async fn start_limited_and_wait(
    runs: &mut MigrationServiceClient<Bearer>,
    target: &str,
    objects_per_second: i64,
    migrated: i64,
    timeout: Duration,
) -> Result<pb::Run> {
    let request = limited_request(target, objects_per_second);
    let run = runs.start_run(request).await?.into_inner();
    wait_for_migrated(runs, &run.id, migrated, timeout).await
}

/// Starts a run and waits for it to end (at most `timeout`).
pub async fn run_to_end(
    runs: &mut MigrationServiceClient<Bearer>,
    request: pb::StartRunRequest,
    timeout: Duration,
) -> Result<pb::Run> {
    let run = runs.start_run(request).await?.into_inner();
    wait_for_end(runs, &run.id, timeout).await
}

/// Polls a run until at least `migrated` of its items are migrated (at most `timeout`).
pub async fn wait_for_migrated(
    runs: &mut MigrationServiceClient<Bearer>,
    id: &str,
    migrated: i64,
    timeout: Duration,
) -> Result<pb::Run> {
    wait_for(runs, id, timeout, |run| {
        run.items.as_ref().is_some_and(|c| c.migrated >= migrated)
    })
    .await
}
