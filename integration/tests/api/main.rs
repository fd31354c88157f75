//! End-to-end tests through the real gRPC API, on real PostgreSQL (and Azurite).

#![allow(clippy::unwrap_used)]

mod archive;
mod archive_crash;
mod archive_stores;
mod artifacts;
mod auth;
mod bindings;
mod blob_contract;
mod db_tls;
mod foundation;
mod runs;
mod shutdown;
