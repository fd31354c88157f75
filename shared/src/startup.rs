//! What every service builds before adding its own services: the database pool with its
//! schema migrated, the key ring, the authenticator, the bound gRPC listener and the
//! metrics endpoint; and the serving loop that runs them until shutdown.

use std::{future::Future, net::SocketAddr};

use deadpool_postgres::Pool;
use futures::FutureExt;

use crate::{
    auth::{AuthError, Authenticator},
    config::Common,
    db::{self, DbError},
    keyring::{KeyError, KeyRing},
    server::{GrpcServer, ServerError},
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
}

/// The parts of a service that do not depend on what it does.
pub struct Foundation {
    pub pool: Pool,
    pub keys: KeyRing,
    pub auth: Authenticator,
    pub grpc: GrpcServer,
    metrics: Option<MetricsServer>,
}

impl Foundation {
    /// Connects, migrates `schema`, loads keys and auth, and binds both listeners.
    pub async fn build(
        common: &Common,
        schema: &str,
        migrations: refinery::Runner,
    ) -> Result<Self, StartupError> {
        let keys = KeyRing::from_config(&common.keys)?;
        let auth = Authenticator::from_config(&common.auth)?;
        let pool = migrated_pool(common, schema, migrations).await?;
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
        })
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics.as_ref().map(MetricsServer::local_addr)
    }

    /// Serves gRPC and metrics until `shutdown` resolves and the gRPC drain completes.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let shutdown = shutdown.boxed().shared();
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

/// A pool on `common.database` with `schema` migrated (the `migrate` subcommand).
pub async fn migrated_pool(
    common: &Common,
    schema: &str,
    migrations: refinery::Runner,
) -> Result<Pool, StartupError> {
    let pool = db::connect(&common.database).await?;
    db::migrate(&pool, schema, migrations).await?;
    Ok(pool)
}
