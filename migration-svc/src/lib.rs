//! migration-svc: storage bindings of organizations, their artifacts, and migration runs
//! that move artifacts from older bindings to the active one.
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
pub mod startup;
