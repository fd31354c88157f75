//! Wiring: `App::build` connects, migrates, binds and registers the services;
//! `run_until_stopped` serves, and runs the migration runner, until shutdown.

use std::{future::Future, net::SocketAddr, sync::Arc};

use stowage_proto::migration::v1::{
    artifact_service_server::ArtifactServiceServer, binding_service_server::BindingServiceServer,
    evidence_service_server::EvidenceServiceServer,
    migration_service_server::MigrationServiceServer,
};
use stowage_shared::startup::{self, Foundation, StartupError};
use tokio::sync::Notify;
use tokio_util::task::AbortOnDropHandle;

use crate::{
    config::Config,
    db,
    domain::{
        artifacts::Artifacts, bindings::Bindings, evidence::Evidence, runner::Runner, runs::Runs,
        stores::Stores, watch::Watcher,
    },
    grpc::{
        artifacts::ArtifactApi, bindings::BindingApi, evidence::EvidenceApi, runs::MigrationApi,
    },
};

pub struct App {
    foundation: Foundation,
    runner: Option<Runner>,
    drain_timeout: std::time::Duration,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let mut foundation =
            Foundation::build(&config.common, db::SCHEMA, db::migrations()).await?;
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
        let runs = Runs::new(pool.clone(), evidence.clone(), wake.clone());
        let watcher = Watcher::new(pool.clone(), config.migration.watch_heartbeat);
        let drain = foundation.grpc.drain();
        let authenticate = foundation.auth.interceptor();
        let grpc = &mut foundation.grpc;
        grpc.add_service(BindingServiceServer::with_interceptor(
            BindingApi::new(bindings),
            authenticate.clone(),
        ));
        grpc.add_service(ArtifactServiceServer::with_interceptor(
            ArtifactApi::new(artifacts),
            authenticate.clone(),
        ));
        grpc.add_service(MigrationServiceServer::with_interceptor(
            MigrationApi::new(runs, watcher, drain),
            authenticate.clone(),
        ));
        grpc.add_service(EvidenceServiceServer::with_interceptor(
            EvidenceApi::new(evidence),
            authenticate,
        ));
        let runner = config
            .migration
            .enabled
            .then(|| Runner::new(pool, stores, config.migration.clone(), wake));
        Ok(Self {
            foundation,
            runner,
            drain_timeout: config.common.grpc.drain_timeout,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.foundation.grpc.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.foundation.metrics_addr()
    }

    /// Serves until `shutdown`; the runner stops claiming work when the drain starts and
    /// gets the drain timeout again to finish its in-flight items. Whatever is still in
    /// flight then, or when this future is dropped (a crash, as far as the database can
    /// tell), is abandoned: its leases expire and another replica takes the items over.
    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let runner = self.runner.map(|runner| {
            let drain = self.foundation.grpc.drain();
            AbortOnDropHandle::new(tokio::spawn(runner.run(drain)))
        });
        let served = self.foundation.run_until_stopped(shutdown).await;
        if let Some(runner) = runner {
            let _ = tokio::time::timeout(self.drain_timeout, runner).await;
        }
        served
    }
}

/// The `migrate` subcommand.
pub async fn migrate(config: &Config) -> Result<(), StartupError> {
    startup::migrated_pool(&config.common, db::SCHEMA, db::migrations()).await?;
    Ok(())
}
