//! migration-svc configuration: the common sections plus its own defaults
//! (gRPC on 50051, metrics on 9451).

use std::path::Path;

use serde::Deserialize;
use stowage_shared::config::{self, Common};

#[derive(Clone, Debug, Deserialize)]
pub struct Config {
    #[serde(flatten)]
    pub common: Common,
}

impl Config {
    pub const GRPC_PORT: u16 = 50051;
    pub const METRICS_PORT: u16 = 9451;

    pub fn load(file: Option<&Path>) -> Result<Self, Box<figment::Error>> {
        config::load(
            config::listen_defaults(Self::GRPC_PORT, Self::METRICS_PORT),
            file,
        )
    }
}
