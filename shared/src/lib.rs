//! What both stowage services share: configuration, the key ring, authentication,
//! PostgreSQL, API conventions, object-store bindings, telemetry and the gRPC server
//! bootstrap.

pub mod api;
pub mod auth;
pub mod blob;
pub mod cli;
pub mod config;
pub mod db;
pub mod digest;
pub mod error;
pub mod format;
pub mod instruments;
pub mod keyring;
pub mod retention;
pub mod rpc_telemetry;
pub mod same_variants;
pub mod schedule;
pub mod server;
pub mod shutdown;
pub mod startup;
pub mod stream;
pub mod sweep;
pub mod telemetry;
pub mod tenant_keys;
pub mod text_enum;
