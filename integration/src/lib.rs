//! Test harness for stowage's end-to-end tests: a fresh PostgreSQL database per test
//! (cloned from a migrated template), both services in-process on port 0, typed clients
//! carrying a token, and a private Azurite container.
//!
//! Needs `DATABASE_URL` (an admin URL to a PostgreSQL server) and, for blob tests,
//! `STOWAGE_TEST_AZURITE` (Azurite's blob endpoint); `deploy/dev/test` sets both.

pub mod access;
pub mod app;
pub mod azurite;
pub mod browser;
pub mod crash;
pub mod db;
pub mod migration;
pub mod pg_cluster;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod scans;

pub use app::{TestApp, spawn_app, spawn_app_configured};
