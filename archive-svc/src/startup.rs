//! Wiring: `App::build` (of [`ServiceBinary`]) connects, migrates, binds and registers the
//! services; `run_until_stopped` serves, with the schedule, the queue workers and the
//! sweeper, until shutdown.

use futures::FutureExt;
use stowage_proto::archive::v1::{
    archive_admin_service_server::ArchiveAdminServiceServer,
    archive_service_server::ArchiveServiceServer,
};
use stowage_shared::{
    db::Schema,
    schedule::parse_cron,
    startup::{self, Foundation, Service, ServiceBinary, StartupError, Worker},
    sweep::Sampling,
};

use crate::{
    config::{ArchiveConfig, Config},
    db,
    domain::{
        archive::Archiver,
        garbage::Sweeper,
        policy::RetentionPolicy,
        queue::QueueWorkers,
        restore::Restorer,
        scheduler::Scheduler,
        service::Archives,
        stores::ArchiveStores,
        verify::{SweepSchedule, Verifier},
    },
    grpc::{admin::AdminApi, archive::ArchiveApi},
};

/// Builds archive-svc: the services registered, the schedule, the queue workers and the
/// sweeper beside.
pub struct App;

impl ServiceBinary for App {
    type Config = Config;
    type Checked = Checked;
    const NAME: &'static str = "archive-svc";
    const SCHEMA: Schema = db::SCHEMA;

    fn check(config: &Config) -> Result<Checked, String> {
        Checked::of(&config.archive)
    }

    async fn assemble(
        config: Config,
        checked: Checked,
        mut foundation: Foundation,
    ) -> Result<Service, StartupError> {
        let Checked {
            policy,
            cron,
            sweeps,
        } = checked;
        crate::metrics::install(&mut foundation, &policy);
        let pool = foundation.pool.clone();
        let stores = ArchiveStores::new(
            foundation.keys.clone(),
            config.archive.default_store.as_ref(),
            config.archive.store_options(),
        );
        let adopted = async { stores.adopt(&mut pool.get().await?).await };
        adopted
            .await
            .map_err(|error| StartupError::Service("archive stores", error))?;
        let archiver = Archiver::new(pool.clone(), stores.clone(), policy.clone());
        let queue = QueueWorkers::new(
            pool.clone(),
            archiver.clone(),
            config.archive.queue.settings(),
        );
        let sweeps = sweeps.map(|(cron, sampling)| {
            let verifier = Verifier::new(pool.clone(), stores.clone());
            SweepSchedule::new(pool.clone(), verifier, cron, sampling)
        });
        let restorer = Restorer::new(pool.clone(), stores.clone());
        let sweep_interval = config.archive.sweep_interval;
        let sweeper = Sweeper::new(pool.clone(), stores.clone(), sweep_interval);
        let archives = Archives::new(
            pool.clone(),
            archiver,
            restorer,
            stores,
            sweeper.clone(),
            config.archive.jobs_per_tick,
        );
        register(&mut foundation, &archives, policy.clone(), &config.archive);
        let workers = Background {
            scheduler: Scheduler::new(policy, pool, cron, config.archive.jobs_per_tick),
            queue,
            sweeper: (sweeper, sweep_interval),
            pruner: foundation.pruner(db::retention_rules),
            sweeps,
        }
        .workers();
        Ok(Service::new(foundation, workers))
    }
}

/// Registers both gRPC services, behind authentication.
fn register(
    foundation: &mut Foundation,
    archives: &Archives,
    policy: RetentionPolicy,
    archive: &ArchiveConfig,
) {
    let authenticate = foundation.auth.interceptor();
    let schedule = archive.schedule.clone();
    let api = ArchiveApi::new(archives.clone(), policy, schedule, archive.jobs_per_tick);
    let grpc = &mut foundation.grpc;
    grpc.add_service(ArchiveServiceServer::with_interceptor(
        api,
        authenticate.clone(),
    ));
    grpc.add_service(ArchiveAdminServiceServer::with_interceptor(
        AdminApi::new(archives.clone()),
        authenticate,
    ));
}

/// What runs beside the server: the schedule's tick, the queue workers, the sweeper of
/// blobs left to delete, the pruner, and scheduled integrity sweeps (when configured).
struct Background {
    scheduler: Scheduler,
    queue: QueueWorkers,
    sweeper: (Sweeper, std::time::Duration),
    pruner: Worker,
    sweeps: Option<SweepSchedule>,
}

impl Background {
    fn workers(self) -> Vec<Worker> {
        let (sweeper, interval) = self.sweeper;
        let (scheduler, queue) = (self.scheduler, self.queue);
        let mut workers: Vec<Worker> = vec![
            Box::new(move |drain| scheduler.run(drain).boxed()),
            Box::new(move |drain| queue.run(drain).boxed()),
            Box::new(move |drain| sweeper.run(interval, drain).boxed()),
            self.pruner,
        ];
        if let Some(sweeps) = self.sweeps {
            workers.push(Box::new(move |drain| sweeps.run(drain).boxed()));
        }
        workers
    }
}

/// What `[archive]` settles before anything starts: a setting that does not hold is a
/// configuration error at start, never later.
pub struct Checked {
    policy: RetentionPolicy,
    cron: croner::Cron,
    sweeps: Option<(croner::Cron, Sampling)>,
}

impl Checked {
    fn of(archive: &ArchiveConfig) -> Result<Self, String> {
        archive.check_access_tier()?;
        Ok(Self {
            policy: archive.policy()?,
            cron: parse_cron("archive.schedule", &archive.schedule)?,
            sweeps: archive.verify_schedule()?,
        })
    }
}

/// A pool on the configured database with this service's schema migrated.
pub async fn migrated_pool(config: &Config) -> Result<deadpool_postgres::Pool, StartupError> {
    startup::migrated_pool(&config.common, db::SCHEMA).await
}
