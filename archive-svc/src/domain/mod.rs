//! The behaviour of archive-svc, free of wire types: the retention policy, archiving and
//! restoring jobs, and the archive store.

pub mod admin;
pub mod archive;
pub mod audit;
pub mod garbage;
pub mod job_lock;
pub mod jobs;
pub mod payload;
pub mod pipe;
pub mod policy;
pub mod queue;
pub mod relocate;
pub mod requests;
pub mod restore;
pub mod rows;
pub mod scheduler;
pub mod service;
pub mod stores;
pub mod verify;

/// Idempotent mutations (`request_id`), claimed in each mutation's own transaction.
const IDEMPOTENCY: stowage_shared::api::Idempotency = stowage_shared::api::Idempotency {
    table: "archive.request_log",
};
