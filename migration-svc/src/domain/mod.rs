//! The behaviour of migration-svc, free of wire types: bindings, artifacts, migration runs
//! (their API, the runner that plans and copies, and watching them), integrity sweeps,
//! verified cleanup of the sources migrations left, crypto-shredding, and the evidence
//! they leave.

pub mod artifacts;
pub mod bindings;
pub mod cleanup;
mod command;
pub mod copy;
pub mod evidence;
pub mod model;
pub mod pace;
pub mod runner;
pub mod runs;
pub mod shredding;
pub mod stores;
pub mod uploads;
pub mod verify;
pub mod watch;

/// Where this service's idempotent mutations keep their request ids.
const IDEMPOTENCY: stowage_shared::api::Idempotency = stowage_shared::api::Idempotency {
    table: "migration.request_log",
};
