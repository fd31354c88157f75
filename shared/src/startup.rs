//! What every service builds before adding its own services: the database pool with its
//! schema migrated, the key ring, the authenticator, the bound gRPC listener and the
//! metrics endpoint, with the metric catalog registered; and the serving loop that runs
//! them, and the tasks that keep gauges current, until shutdown.

use std::{future::Future, net::SocketAddr, time::Duration};

use deadpool_postgres::Pool;
use futures::{FutureExt, future::BoxFuture};
use tokio_util::task::AbortOnDropHandle;

use crate::{
    auth::{AuthError, Authenticator},
    config::Common,
    db::{self, DbError},
    instruments::{self, Metric},
    keyring::{KeyError, KeyRing},
    retention::{Pruner, RetentionConfig, Rule},
    server::{GrpcServer, ServerError},
    shutdown::Drain,
    telemetry::{MetricsServer, TelemetryError},
};

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error("database: {0}")]
    Db(#[from] DbError),
    #[error("keys: {0}")]
    Keys(#[from] KeyError),
    #[error("auth: {0}")]
    Auth(#[from] AuthError),
    #[error("grpc: {0}")]
    Server(#[from] ServerError),
    #[error("metrics: {0}")]
    Telemetry(#[from] TelemetryError),
    #[error("configuration: {0}")]
    Config(String),
    /// What the service itself met while setting up (its stores, say), and where.
    #[error("{0}: {1}")]
    Service(&'static str, crate::error::Error),
}

/// The parts of a service that do not depend on what it does.
pub struct Foundation {
    pub pool: Pool,
    pub keys: KeyRing,
    pub auth: Authenticator,
    pub grpc: GrpcServer,
    metrics: Option<MetricsServer>,
    drain_timeout: Duration,
    retention: RetentionConfig,
    alongside: Vec<BoxFuture<'static, ()>>,
}

/// How often the connection pool's gauges are set.
const POOL_GAUGE_PERIOD: Duration = Duration::from_secs(5);

/// Work a service runs beside its server (a runner, a schedule, a sweeper): started with
/// the server's drain, it stops taking new work when the drain starts.
pub type Worker = Box<dyn FnOnce(Drain) -> BoxFuture<'static, ()> + Send>;

impl Foundation {
    /// Connects, migrates `schema`, loads keys and auth, and binds both listeners. The
    /// shared metrics (gRPC server, connection pool labelled `schema`) are registered.
    pub async fn build(common: &Common, schema: db::Schema) -> Result<Self, StartupError> {
        common.retention.validate().map_err(StartupError::Config)?;
        let keys = KeyRing::from_config(&common.keys)?;
        let auth = Authenticator::from_config(&common.auth)?;
        let pool = migrated_pool(common, schema).await?;
        instruments::register(&crate::rpc_telemetry::catalog());
        instruments::register(&instruments::pool_catalog(schema.name));
        let alongside =
            vec![instruments::watch_pool(pool.clone(), schema.name, POOL_GAUGE_PERIOD).boxed()];
        let grpc = GrpcServer::bind(&common.grpc).await?;
        let metrics = match common.metrics.listen {
            Some(addr) => Some(MetricsServer::bind(addr).await?),
            None => None,
        };
        Ok(Self {
            pool,
            keys,
            auth,
            grpc,
            metrics,
            drain_timeout: common.grpc.drain_timeout,
            retention: common.retention.clone(),
            alongside,
        })
    }

    /// The worker that prunes the service's tables by `rules` (made from
    /// `[retention]`, which [`Foundation::build`] checked).
    pub fn pruner(&self, rules: impl FnOnce(&RetentionConfig) -> Vec<Rule>) -> Worker {
        let pruner = Pruner::new(self.pool.clone(), rules(&self.retention), &self.retention);
        Box::new(move |drain| pruner.run(drain).boxed())
    }

    /// Registers a service's own metrics (described, listed series at zero).
    pub fn register_metrics(&self, catalog: &[Metric]) {
        instruments::register(catalog);
    }

    /// Runs `task` while the server serves (a periodic gauge update, say); it is stopped
    /// when serving ends.
    pub fn run_alongside(&mut self, task: impl Future<Output = ()> + Send + 'static) {
        self.alongside.push(task.boxed());
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Serves with `workers` beside, until `shutdown` resolves and the gRPC drain
    /// completes; the workers then get the drain timeout again to finish what they hold.
    /// Whatever still runs after that, or when this future is dropped, is abandoned (for
    /// the database, a crash: leases expire, locks die with their sessions).
    pub async fn run_with_workers(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
        workers: Vec<Worker>,
    ) -> Result<(), StartupError> {
        let drain = self.grpc.drain();
        let drain_timeout = self.drain_timeout;
        let running: Vec<_> = workers
            .into_iter()
            .map(|worker| AbortOnDropHandle::new(tokio::spawn(worker(drain.clone()))))
            .collect();
        let served = self.run_until_stopped(shutdown).await;
        let _ = tokio::time::timeout(drain_timeout, futures::future::join_all(running)).await;
        served
    }

    /// Serves gRPC and metrics until `shutdown` resolves and the gRPC drain completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let shutdown = shutdown.boxed().shared();
        let _alongside: Vec<_> = self
            .alongside
            .into_iter()
            .map(|task| AbortOnDropHandle::new(tokio::spawn(task)))
            .collect();
        let metrics = self
            .metrics
            .map(|m| tokio::spawn(m.run_until_stopped(shutdown.clone())));
        let served = self.grpc.run_until_stopped(shutdown).await;
        if let Some(metrics) = metrics {
            metrics.abort();
        }
        Ok(served?)
    }
}

/// A built service: its foundation, with the services registered, and the workers that run
/// beside its server. What each service's `App::build` returns.
pub struct Service {
    foundation: Foundation,
    workers: Vec<Worker>,
}

impl Service {
    pub fn new(foundation: Foundation, workers: Vec<Worker>) -> Self {
        Self {
            foundation,
            workers,
        }
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.foundation.grpc.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.foundation.metrics_addr()
    }

    /// Serves until `shutdown`, the workers beside (see [`Foundation::run_with_workers`]).
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        self.foundation
            .run_with_workers(shutdown, self.workers)
            .await
    }
}

/// What a service binary is made of, so the subcommands every service has (`serve`,
/// `migrate`, `token`, `completions`) and the order a service starts in are written once,
/// in [`cli::service_main`](crate::cli::service_main) and [`ServiceBinary::build`].
pub trait ServiceBinary {
    type Config: crate::config::ServiceConfig + Send;
    /// What the service's own settings come to once checked (schedules parsed, policies
    /// built).
    type Checked: Send;
    /// The name in logs, traces and metrics.
    const NAME: &'static str;
    /// The PostgreSQL schema the service owns.
    const SCHEMA: db::Schema;

    /// The service's own settings, checked before anything connects: a setting that does
    /// not hold stops the start with a configuration error, never later.
    fn check(config: &Self::Config) -> Result<Self::Checked, String>;

    /// The service on its foundation: its parts, its gRPC services registered, its
    /// workers.
    fn assemble(
        config: Self::Config,
        checked: Self::Checked,
        foundation: Foundation,
    ) -> impl Future<Output = Result<Service, StartupError>> + Send;

    /// Checks the settings, builds the foundation (connects, migrates [`Self::SCHEMA`],
    /// loads keys, binds), then assembles the service on it.
    fn build(config: Self::Config) -> impl Future<Output = Result<Service, StartupError>> + Send {
        async move {
            let checked = Self::check(&config).map_err(StartupError::Config)?;
            let common = crate::config::ServiceConfig::common(&config);
            let foundation = Foundation::build(common, Self::SCHEMA).await?;
            Self::assemble(config, checked, foundation).await
        }
    }
}

/// A pool on `common.database` with `schema` migrated (the `migrate` subcommand).
pub async fn migrated_pool(common: &Common, schema: db::Schema) -> Result<Pool, StartupError> {
    let pool = db::connect(&common.database).await?;
    schema.migrate(&pool).await?;
    Ok(pool)
}
