//! archive-svc's tables (schema `archive`): embedded migrations and the queries, as free
//! functions over a client or transaction.

pub mod admin_config;
pub mod audit;
pub mod garbage;
pub mod jobs;
pub mod queue;
pub mod rows;
pub mod stores;

use stowage_shared::retention::{RetentionConfig, Rule};

stowage_shared::service_schema!("archive");

/// What the pruner deletes, and when: idempotency records by age, and evidence (the audit
/// log) after the longest age.
pub fn retention_rules(keep: &RetentionConfig) -> Vec<Rule> {
    vec![
        Rule::older_than("archive.request_log", "created_at", keep.requests),
        Rule::older_than("archive.audit_log", "at", keep.evidence),
    ]
}
