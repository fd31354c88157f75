//! archive-svc: moves the per-file rows of finished scan jobs from PostgreSQL to encrypted
//! cold object storage after their idle window, and restores them on demand.
//!
//! Its module docs name the private rooms inside each module; read them with
//! `cargo doc --document-private-items`.
#![allow(rustdoc::private_intra_doc_links)]

pub mod cli;
pub mod config;
pub mod db;
pub mod domain;
pub mod error;
pub mod grpc;
pub mod metrics;
pub mod seed;
pub mod startup;
