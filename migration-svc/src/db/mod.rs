//! migration-svc's tables (schema `migration`): embedded migrations and the queries, as
//! free functions over a client or transaction.

pub mod artifacts;
pub mod bindings;
pub mod cleanup;
pub mod evidence;
pub mod items;
pub mod organizations;
pub mod plans;
pub mod runs;

use stowage_shared::retention::{RetentionConfig, Rule};

stowage_shared::service_schema!("migration");

/// A column list (`a, b, c`) with each column qualified by `alias` (`x.a, x.b, x.c`).
fn qualified(alias: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|column| format!("{alias}.{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// What the pruner deletes, and when: idempotency records by age, the items and the plans
/// of runs that ended long enough ago (the run row, its counts, its plan digest and its
/// evidence stay), and evidence last.
pub fn retention_rules(keep: &RetentionConfig) -> Vec<Rule> {
    let evidence = |table| Rule::older_than(table, "at", keep.evidence);
    vec![
        Rule::older_than("migration.request_log", "created_at", keep.requests),
        of_ended_runs("migration.run_items", keep),
        of_ended_runs("migration.run_plans", keep),
        evidence("migration.audit_log"),
        evidence("migration.domain_events"),
        evidence("migration.security_events"),
    ]
}

/// Rows of `table` (keyed by `run_id`) of runs that ended longer than `keep.run_items` ago.
fn of_ended_runs(table: &'static str, keep: &RetentionConfig) -> Rule {
    Rule {
        name: table,
        keep: keep.run_items,
        delete: format!(
            "delete from {table} where ctid in (
                 select t.ctid from migration.runs r
                 join {table} t on t.run_id = r.id
                 where r.end_time < now() - make_interval(secs => $1)
                 limit $2)"
        ),
    }
}
