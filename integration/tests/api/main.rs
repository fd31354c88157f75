//! End-to-end tests through the real gRPC API, on real PostgreSQL (and Azurite).

#![allow(clippy::unwrap_used)]

mod access;
mod archive;
mod artifacts;
mod auth;
mod bindings;
mod blob_contract;
mod browser;
mod cli;
mod connections;
mod dashboards;
mod db_tls;
mod deploy;
mod evidence;
mod foundation;
mod guide;
mod hostile;
mod metrics;
mod retention;
mod runs;
mod secrets;
mod shred;
mod shutdown;
mod tls;
mod traces;
mod validation;
mod verify;
