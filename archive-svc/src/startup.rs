//! Wiring: `App::build` connects, migrates, binds and registers the services;
//! `run_until_stopped` serves until shutdown.

use std::{future::Future, net::SocketAddr};

use stowage_proto::archive::v1::archive_service_server::ArchiveServiceServer;
use stowage_shared::startup::{self, Foundation, StartupError};

use crate::{config::Config, db, grpc::archive::ArchiveApi};

pub struct App {
    foundation: Foundation,
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
        config
            .archive
            .schedule
            .parse::<croner::Cron>()
            .map_err(|e| {
                AppError::Config(format!(
                    "archive.schedule {:?}: {e}",
                    config.archive.schedule
                ))
            })?;
        let mut foundation =
            Foundation::build(&config.common, db::SCHEMA, db::migrations()).await?;
        let authenticate = foundation.auth.interceptor();
        let api = ArchiveApi::new(
            policy,
            config.archive.schedule.clone(),
            config.archive.jobs_per_tick,
        );
        foundation
            .grpc
            .add_service(ArchiveServiceServer::with_interceptor(api, authenticate));
        Ok(Self { foundation })
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
        self.foundation.run_until_stopped(shutdown).await
    }
}

/// The `migrate` subcommand.
pub async fn migrate(config: &Config) -> Result<(), StartupError> {
    startup::migrated_pool(&config.common, db::SCHEMA, db::migrations()).await?;
    Ok(())
}
