//! End-to-end tests through the real gRPC API, on real PostgreSQL (and Azurite).

#![allow(clippy::unwrap_used)]

mod access;
mod archive;
mod archive_crash;
mod archive_stores;
mod artifacts;
mod auth;
mod bindings;
mod blob_contract;
mod cli;
mod connections;
mod evidence;
mod foundation;
mod hostile;
mod runs;
mod shutdown;
mod validation;
