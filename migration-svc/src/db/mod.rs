//! migration-svc's tables (schema `migration`): embedded migrations and the queries, as
//! free functions over a client or transaction.

pub mod artifacts;
pub mod bindings;
pub mod evidence;
pub mod items;
pub mod organizations;
pub mod plans;
pub mod runs;

use stowage_shared::{
    db::Schema,
    retention::{RetentionConfig, Rule},
};

/// The PostgreSQL schema that holds every table of this service, and its migrations.
pub const SCHEMA: Schema = Schema {
    name: "migration",
    migrations: embedded::migrations::runner,
};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// What the pruner deletes, and when: idempotency records by age, the items and the plans
/// of runs that ended long enough ago (the run row, its counts, its plan digest and its
/// evidence stay), and evidence last.
pub fn retention_rules(keep: &RetentionConfig) -> Vec<Rule> {
    let evidence = |table| Rule::older_than(table, "at", keep.evidence);
    vec![
        Rule::older_than("migration.request_log", "created_at", keep.requests),
        Rule {
            name: "migration.run_items",
            keep: keep.run_items,
            delete: "delete from migration.run_items where ctid in (
                         select i.ctid from migration.runs r
                         join migration.run_items i on i.run_id = r.id
                         where r.end_time < now() - make_interval(secs => $1)
                         limit $2)"
                .into(),
        },
        Rule {
            name: "migration.run_plans",
            keep: keep.run_items,
            delete: "delete from migration.run_plans where ctid in (
                         select p.ctid from migration.runs r
                         join migration.run_plans p on p.run_id = r.id
                         where r.end_time < now() - make_interval(secs => $1)
                         limit $2)"
                .into(),
        },
        evidence("migration.audit_log"),
        evidence("migration.domain_events"),
        evidence("migration.security_events"),
    ]
}
