//! Wiring: `App::build` connects, migrates, binds and registers the services;
//! `run_until_stopped` serves until shutdown.

use std::{future::Future, net::SocketAddr};

use stowage_proto::archive::v1::{
    archive_admin_service_server::ArchiveAdminServiceServer,
    archive_service_server::ArchiveServiceServer,
};
use stowage_shared::{
    blob::StoreOptions,
    startup::{self, Foundation, StartupError},
};

use crate::{
    config::Config,
    db,
    domain::{
        archive::Archiver, restore::Restorer, scheduler::Scheduler, service::Archives,
        store::ArchiveStores,
    },
    grpc::{admin::AdminApi, archive::ArchiveApi},
};

pub struct App {
    foundation: Foundation,
    scheduler: Scheduler,
}

#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Startup(#[from] StartupError),
    #[error("configuration: {0}")]
    Config(String),
}

impl App {
    pub async fn build(config: Config) -> Result<Self, AppError> {
        let policy = config.archive.policy().map_err(AppError::Config)?;
        let schedule = &config.archive.schedule;
        let cron = schedule
            .parse::<croner::Cron>()
            .map_err(|e| AppError::Config(format!("archive.schedule {schedule:?}: {e}")))?;
        let mut foundation =
            Foundation::build(&config.common, db::SCHEMA, db::migrations()).await?;
        let pool = foundation.pool.clone();
        let stores = ArchiveStores::new(
            pool.clone(),
            foundation.keys.clone(),
            config.archive.default_store.as_ref(),
            StoreOptions::default(),
        );
        let archiver = Archiver::new(pool.clone(), stores.clone(), policy.clone());
        let restorer = Restorer::new(pool.clone(), stores.clone());
        let archives = Archives::new(
            pool.clone(),
            archiver,
            restorer,
            stores,
            config.archive.jobs_per_tick,
        );
        let authenticate = foundation.auth.interceptor();
        let api = ArchiveApi::new(
            archives.clone(),
            policy,
            config.archive.schedule.clone(),
            config.archive.jobs_per_tick,
        );
        foundation
            .grpc
            .add_service(ArchiveServiceServer::with_interceptor(
                api,
                authenticate.clone(),
            ));
        foundation
            .grpc
            .add_service(ArchiveAdminServiceServer::with_interceptor(
                AdminApi::new(archives.clone()),
                authenticate,
            ));
        let scheduler = Scheduler::new(archives, pool, cron, config.archive.jobs_per_tick);
        Ok(Self {
            foundation,
            scheduler,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.foundation.grpc.local_addr()
    }

    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.foundation.metrics_addr()
    }

    pub async fn run_until_stopped(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), StartupError> {
        let schedule = tokio::spawn(self.scheduler.run(self.foundation.grpc.drain()));
        let served = self.foundation.run_until_stopped(shutdown).await;
        schedule.abort();
        served
    }

    /// The archive schedule, for running a tick on demand.
    pub fn scheduler(&self) -> &Scheduler {
        &self.scheduler
    }
}

/// The `migrate` subcommand.
pub async fn migrate(config: &Config) -> Result<(), StartupError> {
    migrated_pool(config).await?;
    Ok(())
}

/// A pool on the configured database with this service's schema migrated.
pub async fn migrated_pool(config: &Config) -> Result<deadpool_postgres::Pool, StartupError> {
    startup::migrated_pool(&config.common, db::SCHEMA, db::migrations()).await
}
