//! archive-svc's tables (schema `archive`): embedded migrations and the queries, as free
//! functions over a client or transaction.

pub mod admin_config;
pub mod audit;
pub mod garbage;
pub mod jobs;
pub mod queue;
pub mod rows;
pub mod stores;

use stowage_shared::{
    db::Schema,
    retention::{RetentionConfig, Rule},
};

/// The PostgreSQL schema that holds every table of this service, and its migrations.
pub const SCHEMA: Schema = Schema {
    name: "archive",
    migrations: embedded::migrations::runner,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// What the pruner deletes, and when: idempotency records by age, and evidence (the audit
/// log) after the longest age.
pub fn retention_rules(keep: &RetentionConfig) -> Vec<Rule> {
    vec![
        Rule::older_than("archive.request_log", "created_at", keep.requests),
        Rule::older_than("archive.audit_log", "at", keep.evidence),
    ]
}
