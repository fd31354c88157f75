//! The crash matrix of migration runs: two migration-svc processes on one database share
//! live runs between `file` bindings through leases, and one of them is killed (SIGKILL)
//! at random instants (queued, planning, mid-copy, between read-back and flip, in a lease
//! renewal or a record transaction, wherever the clock lands) and started again. After
//! every run: it COMPLETED; exactly one item per artifact, MIGRATED; its counters equal its
//! items' states; nothing QUEUED or RUNNING; every artifact reads back from the binding its
//! row names with the SHA-256 of what was uploaded. `STOWAGE_CRASH_INJECTIONS` sets the
//! number of kills (`deploy/dev/crash` runs hundreds).

use std::{
    collections::{BTreeMap, HashSet},
    path::{Path, PathBuf},
    time::Duration,
};

use aws_lc_rs::digest::{SHA256, digest};
use stowage_integration::{
    app::{Bearer, BearerToken, operator_token, test_common},
    crash::{Injections, staging_files, swept_to},
    db::TestDb,
    migration as m,
    process::{self, ServiceProcess},
};
use stowage_proto::migration::v1::{
    self as pb, artifact_service_client::ArtifactServiceClient,
    binding_service_client::BindingServiceClient, migration_service_client::MigrationServiceClient,
};
use stowage_shared::auth::Role;

const ARTIFACTS: usize = 120;
/// Objects per second a run may copy: slow enough that kills land inside it.
const PACE: i64 = 80;

/// Two replicas of migration-svc on one database.
struct Replicas {
    ports: [u16; 2],
    configs: [String; 2],
    running: [Option<ServiceProcess>; 2],
    bearer: BearerToken,
}

impl Replicas {
    async fn start(&mut self, i: usize) {
        let process = ServiceProcess::start("migration-svc", &self.configs[i], self.ports[i])
            .await
            .unwrap();
        self.running[i] = Some(process);
    }

    async fn kill(&mut self, i: usize) {
        if let Some(process) = self.running[i].take() {
            process.kill().await.unwrap();
        }
    }

    async fn channel(&self, i: usize) -> tonic::transport::Channel {
        self.running[i].as_ref().unwrap().connect().await.unwrap()
    }

    async fn runs(&self, i: usize) -> MigrationServiceClient<Bearer> {
        MigrationServiceClient::with_interceptor(self.channel(i).await, self.bearer.clone())
    }

    async fn bindings(&self, i: usize) -> BindingServiceClient<Bearer> {
        BindingServiceClient::with_interceptor(self.channel(i).await, self.bearer.clone())
    }

    async fn artifacts(&self, i: usize) -> ArtifactServiceClient<Bearer> {
        ArtifactServiceClient::with_interceptor(self.channel(i).await, self.bearer.clone())
    }
}

fn file_binding(name: &str, dir: &Path) -> pb::CreateBindingRequest {
    std::fs::create_dir_all(dir).unwrap();
    m::file_binding(name, dir)
}

fn sha256(data: &[u8]) -> Vec<u8> {
    digest(&SHA256, data).as_ref().to_vec()
}

/// Where in a run the kill lands, as `GetRun` saw it just before.
fn phase(run: &pb::Run) -> String {
    let counts = run.items.unwrap_or_default();
    match run.state() {
        pb::RunState::Running if counts.migrated * 2 < ARTIFACTS as i64 => {
            "running, under half migrated".into()
        }
        pb::RunState::Running => "running, half or more migrated".into(),
        state => state
            .as_str_name()
            .trim_start_matches("RUN_STATE_")
            .to_lowercase(),
    }
}

/// Everything a run that ended must show.
async fn check_run(
    replicas: &Replicas,
    api: usize,
    run_id: &str,
    target: &pb::Binding,
    uploaded: &BTreeMap<String, Vec<u8>>,
) {
    let mut runs = replicas.runs(api).await;
    let run = runs
        .get_run(pb::GetRunRequest { id: run_id.into() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(run.state(), pb::RunState::Completed, "{run:?}");
    let items = m::items(&mut runs, run_id, pb::ItemState::Unspecified)
        .await
        .unwrap();
    let artifacts: HashSet<&str> = items.iter().map(|i| i.artifact_id.as_str()).collect();
    assert_eq!(items.len(), uploaded.len(), "one item per artifact");
    assert_eq!(artifacts.len(), uploaded.len(), "no artifact twice");
    let migrated = items
        .iter()
        .filter(|i| i.state() == pb::ItemState::Migrated)
        .count();
    assert_eq!(migrated, uploaded.len(), "every item MIGRATED: {items:?}");
    let counts = run.items.unwrap_or_default();
    assert_eq!(
        (counts.queued, counts.running, counts.failed, counts.skipped),
        (0, 0, 0, 0),
        "{counts:?}"
    );
    assert_eq!(counts.migrated, migrated as i64);
    let mut client = replicas.artifacts(api).await;
    for (id, sum) in uploaded {
        let (artifact, data) = m::get(&mut client, id).await.unwrap();
        assert_eq!(
            artifact.binding_id, target.id,
            "artifact {id} points at the target"
        );
        assert_eq!(&sha256(&data), sum, "artifact {id} reads back as uploaded");
    }
}

#[tokio::test]
async fn replicas_killed_at_random_points_of_live_runs_lose_nothing() {
    let mut dice = Injections::from_env(4);
    let test_db = TestDb::migrated().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let root: PathBuf = std::env::temp_dir().join(format!(
        "stowage-run-crash-{}",
        uuid::Uuid::new_v4().simple()
    ));
    let ports = [process::free_port().unwrap(), process::free_port().unwrap()];
    let extra = "[migration]\nconcurrency = 8\nbatch_size = 8\nlease_ttl = \"1s\"\n\
                 poll_interval = \"50ms\"\ninterrupted_upload_age = \"1s\"\n";
    let token = operator_token(&common, "acme", Role::OrgAdmin).unwrap();
    let mut replicas = Replicas {
        ports,
        configs: ports.map(|port| process::config_toml(&common, port, extra).unwrap()),
        running: [None, None],
        bearer: BearerToken::new(Some(&token)),
    };
    replicas.start(0).await;
    replicas.start(1).await;

    let mut bindings = replicas.bindings(0).await;
    m::create_active(&mut bindings, file_binding("source", &root.join("source")))
        .await
        .unwrap();
    let mut client = replicas.artifacts(0).await;
    let mut uploaded = BTreeMap::new();
    for i in 0..ARTIFACTS {
        let data = m::content(i, 512 + (i * 997) % 48_000);
        let artifact = m::put(&mut client, m::metadata("reports", &format!("r{i}")), &data)
            .await
            .unwrap();
        uploaded.insert(artifact.id, sha256(&data));
    }

    let (mut runs_checked, mut litter_seen) = (0, 0);
    let mut targets = Vec::new();
    // Runs that end before a kill lands add none; the rounds are bounded all the same.
    for _ in 0..dice.count * 4 {
        if dice.injected() >= dice.count {
            break;
        }
        let api = dice.below(2) as usize;
        let dir = root.join(format!("target-{runs_checked}"));
        let mut bindings = replicas.bindings(api).await;
        let target = m::create_active(&mut bindings, file_binding("target", &dir))
            .await
            .unwrap();
        targets.push(dir.clone());
        let mut runs = replicas.runs(api).await;
        let run = runs
            .start_run(m::limited_request(&target.id, PACE))
            .await
            .unwrap()
            .into_inner();
        // One to three kills inside the run, of either replica.
        let kills = 1 + dice.below(3) as usize;
        for _ in 0..kills.min(dice.count - dice.injected()) {
            let victim = dice.below(2) as usize;
            tokio::time::sleep(dice.delay(Duration::from_millis(900))).await;
            let mut runs = replicas.runs(1 - victim).await;
            let seen = runs
                .get_run(pb::GetRunRequest { id: run.id.clone() })
                .await
                .unwrap()
                .into_inner();
            if m::is_terminal(seen.state()) {
                break;
            }
            replicas.kill(victim).await;
            litter_seen += staging_files(&dir);
            dice.landed(phase(&seen));
            replicas.start(victim).await;
        }
        let mut runs = replicas.runs(api).await;
        m::wait_for_end(&mut runs, &run.id, Duration::from_secs(120))
            .await
            .unwrap();
        check_run(&replicas, api, &run.id, &target, &uploaded).await;
        runs_checked += 1;
    }
    let litter = || targets.iter().map(|dir| staging_files(dir)).sum::<usize>();
    let swept = swept_to(litter, Duration::from_secs(15)).await;
    eprintln!(
        "{}",
        dice.report(
            "migration-svc",
            &[
                (
                    "runs, each COMPLETED with every item MIGRATED once",
                    runs_checked.to_string()
                ),
                (
                    "artifacts read back by SHA-256 from the binding their row names",
                    format!("{} (0 lost or corrupt)", runs_checked * ARTIFACTS),
                ),
                (
                    "staging files found right after the kills",
                    litter_seen.to_string()
                ),
                ("staging files left after the sweep", swept.to_string()),
            ]
        )
    );
    assert_eq!(swept, 0, "the sweep removes what killed uploads left");
    replicas.kill(0).await;
    replicas.kill(1).await;
    let _ = std::fs::remove_dir_all(&root);
}
