//! Wiring: `App::build` (of [`ServiceBinary`]) connects, migrates, binds and registers the
//! services; `run_until_stopped` serves, and runs the migration runner, until shutdown.

use std::sync::Arc;

use futures::FutureExt;
use stowage_proto::migration::v1::{
    artifact_service_server::ArtifactServiceServer, binding_service_server::BindingServiceServer,
    evidence_service_server::EvidenceServiceServer,
    migration_service_server::MigrationServiceServer,
};
use stowage_shared::{
    db::Schema,
    startup::{Foundation, Service, ServiceBinary, StartupError, Worker},
    sweep::Sampling,
};
use tokio::sync::Notify;

use crate::{
    config::Config,
    db,
    domain::{
        artifacts::Artifacts,
        bindings::Bindings,
        cleanup::Cleaner,
        evidence::Evidence,
        runner::Runner,
        runs::Runs,
        shredding::Shredder,
        stores::Stores,
        uploads::UploadSweeper,
        verify::{SweepSchedule, Verifier},
        watch::Watcher,
    },
    grpc::{
        artifacts::ArtifactApi, bindings::BindingApi, evidence::EvidenceApi, runs::MigrationApi,
    },
};

/// Builds migration-svc: the services registered, the runner beside (unless disabled).
pub struct App;

impl ServiceBinary for App {
    type Config = Config;
    /// The integrity sweeps' schedule and sampling, when configured.
    type Checked = Option<(croner::Cron, Sampling)>;
    const NAME: &'static str = "migration-svc";
    const SCHEMA: Schema = db::SCHEMA;

    fn check(config: &Config) -> Result<Self::Checked, String> {
        config.migration.verify_schedule()
    }

    async fn assemble(
        config: Config,
        sweeps: Self::Checked,
        mut foundation: Foundation,
    ) -> Result<Service, StartupError> {
        crate::metrics::install(&mut foundation);
        let pool = foundation.pool.clone();
        let stores = Stores::new(
            pool.clone(),
            foundation.keys.clone(),
            config.migration.store_options(),
        );
        let evidence = Evidence::new(pool.clone());
        let wake = Arc::new(Notify::new());
        let bindings = Bindings::new(pool.clone(), stores.clone(), evidence.clone());
        let artifacts = Artifacts::new(pool.clone(), stores.clone());
        let runs = Runs::new(pool.clone(), wake.clone());
        let watcher = Watcher::new(pool.clone(), config.migration.watch_heartbeat);
        let window = config.migration.source_cleanup_window;
        let cleaner = Cleaner::new(pool.clone(), stores.clone(), window);
        let apis = Apis {
            bindings: BindingApi::new(bindings),
            artifacts: ArtifactApi::new(
                artifacts,
                Verifier::new(pool.clone(), stores.clone()),
                Shredder::new(pool.clone(), stores.clone()),
            ),
            runs: MigrationApi::new(runs, watcher, cleaner, foundation.grpc.drain()),
            evidence: EvidenceApi::new(evidence),
        };
        apis.register(&mut foundation);
        let workers = Background {
            uploads: UploadSweeper::new(
                pool.clone(),
                stores.clone(),
                config.migration.interrupted_upload_age,
            ),
            sweeps: sweeps.map(|(cron, sampling)| {
                SweepSchedule::new(Verifier::new(pool.clone(), stores.clone()), cron, sampling)
            }),
            runner: config
                .migration
                .enabled
                .then(|| Runner::new(pool, stores, config.migration.clone(), wake)),
            pruner: foundation.pruner(db::retention_rules),
        }
        .workers();
        Ok(Service::new(foundation, workers))
    }
}

/// The four gRPC services.
struct Apis {
    bindings: BindingApi,
    artifacts: ArtifactApi,
    runs: MigrationApi,
    evidence: EvidenceApi,
}

impl Apis {
    /// Registers every service, behind authentication.
    fn register(self, foundation: &mut Foundation) {
        let authenticate = foundation.auth.interceptor();
        let grpc = &mut foundation.grpc;
        grpc.add_service(BindingServiceServer::with_interceptor(
            self.bindings,
            authenticate.clone(),
        ));
        grpc.add_service(ArtifactServiceServer::with_interceptor(
            self.artifacts,
            authenticate.clone(),
        ));
        grpc.add_service(MigrationServiceServer::with_interceptor(
            self.runs,
            authenticate.clone(),
        ));
        grpc.add_service(EvidenceServiceServer::with_interceptor(
            self.evidence,
            authenticate,
        ));
    }
}

/// What runs beside the server: the runner (unless disabled), the upload sweeper, the
/// pruner and scheduled integrity sweeps (when configured). The runner stops claiming work
/// when the drain starts and gets the drain timeout again to finish its in-flight items;
/// what is still in flight then is abandoned (its leases expire and another replica takes
/// the items over).
struct Background {
    runner: Option<Runner>,
    uploads: UploadSweeper,
    sweeps: Option<SweepSchedule>,
    pruner: Worker,
}

impl Background {
    fn workers(self) -> Vec<Worker> {
        let mut workers: Vec<Worker> = vec![
            self.pruner,
            Box::new(move |drain| self.uploads.run(drain).boxed()),
        ];
        if let Some(runner) = self.runner {
            workers.push(Box::new(move |drain| runner.run(drain).boxed()));
        }
        if let Some(sweeps) = self.sweeps {
            workers.push(Box::new(move |drain| sweeps.run(drain).boxed()));
        }
        workers
    }
}
