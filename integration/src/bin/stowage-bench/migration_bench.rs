//! migration-svc against rclone on the same objects between the same places: two Azurite
//! containers (rclone through an account SAS), two prefixes of a SeaweedFS S3 bucket (a
//! real multi-threaded object store), and two local directories. Between stores rclone
//! runs with server-side copy disabled, because stowage must re-encrypt and so moves every
//! byte through itself; rclone's server-side copy is measured too, and on S3 rclone with
//! 32 transfers besides its default 4.

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use anyhow::{Context, Result, bail};
use bytes::Bytes;
use futures::{StreamExt, stream};
use stowage_integration::{
    app::{Bearer, BearerToken, test_common},
    azurite::{self, TestContainer},
    db::TestDb,
    migration::{self as m},
    seaweedfs::TestPrefix,
};
use stowage_proto::migration::v1::{
    self as pb, artifact_service_client::ArtifactServiceClient,
    binding_service_client::BindingServiceClient, migration_service_client::MigrationServiceClient,
    put_artifact_request,
};
use stowage_shared::{
    auth::{Role, TokenMinter},
    blob::azure::DEV_KEY,
};
use tonic::transport::Channel;

use super::server::{Server, fresh_root, machine_cpu, migration_config};

const MIB: usize = 1 << 20;
/// Rounds of each measurement; the best counts.
const ROUNDS: usize = 5;

pub(super) struct Clients {
    pub(super) bindings: BindingServiceClient<Bearer>,
    pub(super) artifacts: ArtifactServiceClient<Bearer>,
    pub(super) runs: MigrationServiceClient<Bearer>,
}

impl Clients {
    /// Clients acting as an admin of `org` (each scenario has an organization of its own,
    /// so a run covers only that scenario's objects).
    pub(super) fn new(channel: &Channel, minter: &TokenMinter, org: &str) -> Result<Self> {
        let token = minter.mint(
            "bench",
            org,
            &[Role::OrgAdmin],
            Duration::from_secs(3 * 3600),
        )?;
        let bearer = BearerToken::new(Some(&token));
        Ok(Self {
            bindings: BindingServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            artifacts: ArtifactServiceClient::with_interceptor(channel.clone(), bearer.clone()),
            runs: MigrationServiceClient::with_interceptor(channel.clone(), bearer),
        })
    }
}

/// The kind of store a scenario moves objects between.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Azure,
    S3,
    File,
}

impl Kind {
    fn label(self) -> &'static str {
        match self {
            Kind::Azure => "Azurite → Azurite",
            Kind::S3 => "SeaweedFS S3 → S3",
            Kind::File => "file → file",
        }
    }

    /// rclone's flags for a copy between two places of this kind without server-side
    /// copy (none between directories).
    fn no_server_side_copy(self) -> &'static [&'static str] {
        match self {
            Kind::Azure | Kind::S3 => &["--disable", "Copy"],
            Kind::File => &[],
        }
    }
}

/// Where a scenario's objects live: an Azurite container, a SeaweedFS prefix or a
/// directory.
pub(super) enum Place {
    Azure { endpoint: String, container: String },
    S3(TestPrefix),
    Dir(PathBuf),
}

impl Place {
    pub(super) fn binding(&self, name: &str) -> pb::CreateBindingRequest {
        match self {
            Place::Azure {
                endpoint,
                container,
            } => m::azure_binding(name, container, endpoint, DEV_KEY),
            Place::S3(prefix) => prefix.binding(name),
            Place::Dir(dir) => m::file_binding(name, dir),
        }
    }

    /// The place as an rclone path (`:azureblob:` and `:s3:` are configured by
    /// environment variables, see [`rclone`]).
    fn rclone(&self, under: &str) -> String {
        match self {
            Place::Azure { container, .. } => format!(":azureblob:{container}/{under}"),
            Place::S3(prefix) => format!(":s3:{}/{}/{under}", prefix.server.bucket, prefix.prefix),
            Place::Dir(dir) => dir.join(under).display().to_string(),
        }
    }

    async fn new_azure() -> Result<Self> {
        let created = TestContainer::create().await?;
        Ok(Place::Azure {
            endpoint: created.endpoint,
            container: created.container,
        })
    }

    /// Removes the place and everything in it, so it no longer weighs on the next rounds
    /// (Azurite looks blobs up by scanning every blob of the account).
    async fn clear(&self) -> Result<()> {
        match self {
            Place::Azure {
                endpoint,
                container,
            } => azurite::delete_container(endpoint, container).await,
            Place::S3(prefix) => {
                let store = prefix.raw_store()?;
                let keys = m::stored_keys(&store, &prefix.prefix).await?;
                let objects = store.object_store();
                let paths = stream::iter(keys.into_iter().map(|k| Ok(k.into()))).boxed();
                let deleted: Vec<_> = objects.delete_stream(paths).collect().await;
                for result in deleted {
                    result?;
                }
                Ok(())
            }
            Place::Dir(dir) => Ok(std::fs::remove_dir_all(dir)?),
        }
    }

    /// A fresh place named `name`: a new Azurite container, a new S3 prefix, or a
    /// directory under `root`.
    async fn fresh(kind: Kind, root: &Path, name: &str) -> Result<Self> {
        match kind {
            Kind::Azure => Self::new_azure().await,
            Kind::S3 => Ok(Place::S3(TestPrefix::create()?)),
            Kind::File => Self::new_dir(root, name),
        }
    }

    pub(super) fn new_dir(root: &Path, name: &str) -> Result<Self> {
        let dir = root.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(Place::Dir(dir))
    }
}

/// An account SAS URL for Azurite's development account: how rclone 1.60 reaches it.
fn account_sas_url(endpoint: &str) -> Result<String> {
    Ok(format!("{endpoint}?{}", azurite::account_sas_token()?))
}

/// Times `rclone copy --checksum` (with `extra` flags) from `from` to `to`.
async fn rclone(sas_url: &str, from: &str, to: &str, extra: &[&str]) -> Result<Duration> {
    let mut command = tokio::process::Command::new("rclone");
    // rclone 1.60's S3 client refuses to start with AWS_CA_BUNDLE set (any value), and
    // the test server is plain http on loopback.
    command.env_remove("AWS_CA_BUNDLE");
    if let Ok(s3) = stowage_integration::seaweedfs::S3Server::from_env() {
        command
            .env("RCLONE_S3_PROVIDER", "SeaweedFS")
            .env("RCLONE_S3_ENDPOINT", &s3.endpoint)
            .env("RCLONE_S3_ACCESS_KEY_ID", &s3.access_key_id)
            .env("RCLONE_S3_SECRET_ACCESS_KEY", &s3.secret_access_key)
            .env("RCLONE_S3_REGION", stowage_integration::seaweedfs::REGION);
    }
    let start = Instant::now();
    let output = command
        .args(["copy", "--checksum", "--no-update-modtime"])
        .args(extra)
        .arg(from)
        .arg(to)
        .env("RCLONE_AZUREBLOB_SAS_URL", sas_url)
        .env("RCLONE_CONFIG", "/dev/null")
        .output()
        .await
        .context("rclone must be installed (apt-get install rclone)")?;
    if !output.status.success() {
        bail!("rclone failed: {}", String::from_utf8_lossy(&output.stderr));
    }
    Ok(start.elapsed())
}

/// One timed rclone copy of `objects` from `source` to `to`, which is cleared afterwards.
async fn rclone_round(
    sas_url: &str,
    source: &Place,
    objects: &str,
    to: Place,
    extra: &[&str],
) -> Result<Duration> {
    let took = rclone(sas_url, &source.rclone(objects), &to.rclone(objects), extra).await?;
    println!(
        "  rclone copy {}: {:.2} s",
        extra.join(" "),
        took.as_secs_f64()
    );
    to.clear().await?;
    Ok(took)
}

/// Uploads `count` objects of `size` bytes, `parallel` at a time.
pub(super) async fn upload(
    clients: &Clients,
    count: usize,
    size: usize,
    parallel: usize,
) -> Result<()> {
    upload_to(&clients.artifacts, count, size, parallel).await
}

/// Uploads `count` distinct objects of `size` bytes, `parallel` at a time.
pub async fn upload_to(
    artifacts: &ArtifactServiceClient<Bearer>,
    count: usize,
    size: usize,
    parallel: usize,
) -> Result<()> {
    let block = Bytes::from(m::content(size, size.min(MIB)));
    let results: Vec<Result<()>> = stream::iter(0..count)
        .map(|i| {
            let mut artifacts = artifacts.clone();
            let block = block.clone();
            async move {
                let mut messages = vec![pb::PutArtifactRequest {
                    part: Some(put_artifact_request::Part::Metadata(m::metadata(
                        "bench",
                        &format!("object-{i}"),
                    ))),
                }];
                let mut left = size;
                let mut first = true;
                while left > 0 || first {
                    first = false;
                    let n = left.min(block.len());
                    // Vary the first bytes so no two objects are equal.
                    let mut chunk = block.slice(..n).to_vec();
                    if let Some(byte) = chunk.first_mut() {
                        *byte ^= i as u8;
                    }
                    messages.push(pb::PutArtifactRequest {
                        part: Some(put_artifact_request::Part::Chunk(chunk.into())),
                    });
                    left -= n;
                }
                artifacts.put_artifact(stream::iter(messages)).await?;
                Ok(())
            }
        })
        .buffer_unordered(parallel)
        .collect()
        .await;
    results.into_iter().collect()
}

/// Migrates everything on the active binding to a new binding at `to`; returns the time
/// from StartRun to the run's end.
async fn migrate(
    clients: &mut Clients,
    server: &Server,
    to: &Place,
    expected: usize,
) -> Result<Duration> {
    let poll = Duration::from_millis(10);
    Ok(migrate_polling(clients, server, to, expected, poll, |_| ())
        .await?
        .elapsed)
}

/// One live run, measured.
pub(super) struct Migrated {
    /// From StartRun to the run's end.
    pub(super) elapsed: Duration,
    /// CPU seconds migration-svc used meanwhile.
    pub(super) cpu_seconds: f64,
}

/// Like [`migrate`], asking for the run every `poll`; `started` is told the run's id as
/// soon as StartRun answers.
pub(super) async fn migrate_polling(
    clients: &mut Clients,
    server: &Server,
    to: &Place,
    expected: usize,
    poll: Duration,
    started: impl FnOnce(&str),
) -> Result<Migrated> {
    let target = m::create_active(&mut clients.bindings, to.binding("target")).await?;
    let (cpu, (busy, total)) = (server.cpu_seconds()?, machine_cpu()?);
    let start = Instant::now();
    let run = clients
        .runs
        .start_run(m::start_request(&target.id, pb::MigrationMode::Live))
        .await?
        .into_inner();
    started(&run.id);
    loop {
        let now = clients
            .runs
            .get_run(pb::GetRunRequest { id: run.id.clone() })
            .await?
            .into_inner();
        if m::is_terminal(now.state()) {
            let elapsed = start.elapsed();
            let migrated = now.items.unwrap_or_default().migrated;
            if now.state() != pb::RunState::Completed || migrated != expected as i64 {
                bail!(
                    "run ended {:?} with {migrated} of {expected} migrated",
                    now.state()
                );
            }
            let (busy_after, total_after) = machine_cpu()?;
            let cpu_seconds = server.cpu_seconds()? - cpu;
            println!(
                "  run of {expected}: {:.2} s; migration-svc used {cpu_seconds:.2} CPU s; the \
                 machine was {:.0}% busy",
                elapsed.as_secs_f64(),
                100.0 * (busy_after - busy) / (total_after - total).max(0.01)
            );
            return Ok(Migrated {
                elapsed,
                cpu_seconds,
            });
        }
        tokio::time::sleep(poll).await;
    }
}

struct Measured {
    name: String,
    stowage: Duration,
    rclone: Duration,
    rclone_server_side: Option<Duration>,
    /// rclone with 32 transfers (S3 only).
    rclone_32: Option<Duration>,
    objects: usize,
    bytes: usize,
}

/// One scenario: objects on a fresh source binding, migrated by stowage to a fresh
/// target, and copied by rclone from the same source objects to another fresh place.
async fn scenario(
    server: &Server,
    minter: &TokenMinter,
    kind: Kind,
    root: &Path,
    sas_url: &str,
    count: usize,
    size: usize,
) -> Result<Measured> {
    let tag = format!("{kind:?}-{count}x{size}").to_lowercase();
    let clients = &mut Clients::new(&server.channel, minter, &tag)?;
    let place = |suffix: &str| format!("{tag}-{suffix}");
    let source = Place::fresh(kind, root, &place("source")).await?;
    let binding = m::create_active(&mut clients.bindings, source.binding("source")).await?;
    upload(clients, count, size, if size > MIB { 2 } else { 32 }).await?;
    let objects = format!("artifacts/{}", binding.id);

    // Best of ROUNDS each, taking turns at going first: this machine is shared and noisy.
    // Each stowage round migrates everything from the previous round's binding to a fresh
    // one; each rclone round copies the source objects to a fresh place. What a round
    // leaves behind is cleared once no later round reads it, so every round meets an
    // Azurite holding about as many blobs as the others.
    let disabled = kind.no_server_side_copy();
    let (mut stowage, mut rclone_time) = (Duration::MAX, Duration::MAX);
    let mut previous: Option<Place> = None;
    for round in 0..ROUNDS {
        let rclone_first = round % 2 == 1;
        for rclone_turn in [rclone_first, !rclone_first] {
            if rclone_turn {
                let to = Place::fresh(kind, root, &place(&format!("rclone-{round}"))).await?;
                let took = rclone_round(sas_url, &source, &objects, to, disabled).await?;
                rclone_time = rclone_time.min(took);
            } else {
                let target = Place::fresh(kind, root, &place(&format!("target-{round}"))).await?;
                stowage = stowage.min(migrate(clients, server, &target, count).await?);
                if let Some(done) = previous.replace(target) {
                    done.clear().await?;
                }
            }
        }
    }
    let rclone_server_side = if kind == Kind::File {
        None
    } else {
        let to = Place::fresh(kind, root, &place("server-side")).await?;
        Some(rclone_round(sas_url, &source, &objects, to, &[]).await?)
    };
    let rclone_32 = if kind == Kind::S3 {
        let mut best = Duration::MAX;
        for round in 0..ROUNDS {
            let to = Place::fresh(kind, root, &place(&format!("rclone32-{round}"))).await?;
            let flags = [disabled, &["--transfers", "32"]].concat();
            best = best.min(rclone_round(sas_url, &source, &objects, to, &flags).await?);
        }
        Some(best)
    } else {
        None
    };
    for place in previous.iter().chain([&source]) {
        place.clear().await?;
    }
    Ok(Measured {
        name: format!("{count} × {} {}", human(size), kind.label()),
        stowage,
        rclone: rclone_time,
        rclone_server_side,
        rclone_32,
        objects: count,
        bytes: count * size,
    })
}

fn human(size: usize) -> String {
    if size >= MIB {
        format!("{} MiB", size / MIB)
    } else {
        format!("{} KiB", size / 1024)
    }
}

/// Runs the scenarios of `kinds` (every kind when empty), then the RSS measurement
/// (`rss`: only that).
pub async fn run(kinds: &[Kind], only_rss: bool) -> Result<()> {
    let endpoint = azurite::endpoint()?;
    let sas_url = account_sas_url(&endpoint)?;
    let db = TestDb::migrated().await?;
    let common = test_common(&db)?;
    let root = fresh_root("migration")?;
    let (config_path, port) = migration_config(&common, &db.url, &root)?;
    let server = Server::start(
        "migration-svc",
        &config_path,
        port,
        &root.join("migration-svc.log"),
    )
    .await?;
    let minter = TokenMinter::from_config(&common.auth)?;
    let mut results = Vec::new();
    let scenarios = match (only_rss, kinds) {
        (true, _) => vec![],
        (false, []) => vec![Kind::Azure, Kind::S3, Kind::File],
        (false, kinds) => kinds.to_vec(),
    };
    for kind in scenarios {
        for (count, size) in [(1000, 4096), (10, 50 * MIB)] {
            let measured = scenario(&server, &minter, kind, &root, &sas_url, count, size).await?;
            println!(
                "{}: stowage {:.2} s, rclone {:.2} s{}",
                measured.name,
                measured.stowage.as_secs_f64(),
                measured.rclone.as_secs_f64(),
                measured
                    .rclone_server_side
                    .map(|d| format!(", rclone server-side copy {:.2} s", d.as_secs_f64()))
                    .unwrap_or_default()
            );
            results.push(measured);
        }
    }

    // Peak RSS while migrating one 2 GiB object (file → file), upload excluded, in a
    // fresh server process (memory the scenarios above left resident would count).
    server.stop().await?;
    let server = Server::start(
        "migration-svc",
        &config_path,
        port,
        &root.join("migration-svc-rss.log"),
    )
    .await?;
    let mut clients = Clients::new(&server.channel, &minter, "rss")?;
    let source = Place::new_dir(&root, "rss-source")?;
    m::create_active(&mut clients.bindings, source.binding("rss")).await?;
    upload(&clients, 1, 2048 * MIB, 1).await?;
    let after_upload = server.peak_rss_mib()?;
    let resident = server.rss_mib()?;
    server.reset_peak_rss()?;
    let target = Place::new_dir(&root, "rss-target")?;
    let big = migrate(&mut clients, &server, &target, 1).await?;
    let rss = server.peak_rss_mib()?;
    server.stop().await?;

    println!(
        "\n| scenario | stowage | rclone (no server-side copy) | ratio | rclone --transfers 32 | rclone server-side copy |"
    );
    println!("|---|---|---|---|---|---|");
    for r in &results {
        // large objects by bytes, small ones by objects
        let large = r.bytes / r.objects >= MIB;
        let unit = if large { "MiB/s" } else { "objects/s" };
        let rate = |d: Duration| {
            let done = if large {
                r.bytes as f64 / MIB as f64
            } else {
                r.objects as f64
            };
            done / d.as_secs_f64()
        };
        let (ours, theirs) = (rate(r.stowage), rate(r.rclone));
        println!(
            "| {} | {ours:.1} {unit} | {theirs:.1} {unit} | **{:.2}** | {} | {} |",
            r.name,
            ours / theirs,
            r.rclone_32
                .map(|d| format!("{:.1} {unit}, ratio **{:.2}**", rate(d), ours / rate(d)))
                .unwrap_or_else(|| "n/a".into()),
            r.rclone_server_side
                .map(|d| format!(
                    "{:.2} s (stowage {:.2} s)",
                    d.as_secs_f64(),
                    r.stowage.as_secs_f64()
                ))
                .unwrap_or_else(|| "n/a".into())
        );
    }
    println!(
        "\none 2 GiB object, file → file: {:.1} s, migration-svc peak RSS during the run {rss:.0} MiB \
         (peak during the 2 GiB upload {after_upload:.0} MiB, resident before the run {resident:.0} MiB)",
        big.as_secs_f64()
    );
    Ok(())
}
