//! Test harness for stowage's end-to-end tests: a fresh PostgreSQL database per test
//! (cloned from a migrated template), both services in-process on port 0, typed clients
//! carrying a token, a private Azurite container, a private prefix on a SeaweedFS S3
//! server, and a fault relay to put in front of any of them.
//!
//! Needs `DATABASE_URL` (an admin URL to a PostgreSQL server) and, for blob tests,
//! `STOWAGE_TEST_AZURITE` (Azurite's blob endpoint) and `STOWAGE_TEST_S3*` (SeaweedFS);
//! `deploy/dev/test` sets them all.

pub mod access;
pub mod app;
pub mod azurite;
pub mod browser;
pub mod crash;
pub mod db;
pub mod guide;
pub mod migration;
pub mod pg_cluster;
pub mod process;
pub mod proxy;
pub mod raw;
pub mod scans;
pub mod seaweedfs;

pub use app::{TestApp, spawn_app, spawn_app_and_db, spawn_app_configured};
