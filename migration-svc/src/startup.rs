//! Wiring: `App::build` connects, migrates, binds and registers the services;
//! `run_until_stopped` serves until shutdown.

use std::{future::Future, net::SocketAddr};

use stowage_proto::migration::v1::binding_service_server::BindingServiceServer;
use stowage_shared::startup::{self, Foundation, StartupError};

use crate::{config::Config, db, domain::bindings::Bindings, grpc::bindings::BindingApi};

pub struct App {
    foundation: Foundation,
}

impl App {
    pub async fn build(config: Config) -> Result<Self, StartupError> {
        let mut foundation =
            Foundation::build(&config.common, db::SCHEMA, db::migrations()).await?;
        let authenticate = foundation.auth.interceptor();
        let bindings = Bindings::new(foundation.pool.clone(), foundation.keys.clone());
        foundation
            .grpc
            .add_service(BindingServiceServer::with_interceptor(
                BindingApi::new(bindings),
                authenticate,
            ));
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
