//! `migration.audit_log`, `migration.domain_events` and `migration.security_events`: the
//! evidence of submissions, of runs ending, and of fail-closed conditions.

use stowage_shared::db::{self, GenericClient};
use tokio_postgres::Row;
use uuid::Uuid;

use crate::{
    domain::model::{
        evidence::{AuditEntry, AuditRecord, EventRecord},
        runs::Mode,
    },
    error::Result,
};

pub async fn record_audit(client: &impl GenericClient, entry: &AuditEntry) -> Result<()> {
    db::execute(
        client,
        "insert into migration.audit_log (organization_id, actor, action, run_id, binding_id,
                 mode, reason, outcome, detail)
             values ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
        &[
            &entry.organization_id,
            &entry.actor,
            &entry.action,
            &entry.run_id,
            &entry.binding_id,
            &entry.mode.map(Mode::as_str),
            &entry.reason,
            &if entry.ok { "ok" } else { "failed" },
            &entry.detail,
        ],
    )
    .await?;
    Ok(())
}

pub async fn record_domain_event(
    client: &impl GenericClient,
    organization: &str,
    kind: &str,
    run_id: Uuid,
    payload: &serde_json::Value,
) -> Result<()> {
    db::execute(
        client,
        "insert into migration.domain_events (organization_id, type, run_id, payload)
             values ($1, $2, $3, $4)",
        &[&organization, &kind, &run_id, payload],
    )
    .await?;
    Ok(())
}

pub async fn record_security_event(
    client: &impl GenericClient,
    organization: &str,
    kind: &str,
    run_id: Option<Uuid>,
    binding_id: Option<Uuid>,
    detail: &serde_json::Value,
) -> Result<()> {
    db::execute(
        client,
        "insert into migration.security_events
                 (organization_id, type, severity, run_id, binding_id, detail)
             values ($1, $2, 'high', $3, $4, $5)",
        &[&organization, &kind, &run_id, &binding_id, detail],
    )
    .await?;
    Ok(())
}

/// Which evidence to list: an organization (`None`: every one), a run, a page.
#[derive(Debug, Clone)]
pub struct EvidenceQuery {
    pub organization: Option<String>,
    pub run_id: Option<Uuid>,
    pub after: Option<i64>,
    pub limit: i64,
}

pub async fn list_audit(
    client: &impl GenericClient,
    query: &EvidenceQuery,
) -> Result<Vec<AuditRecord>> {
    let rows = listed(
        client,
        "select id, at, organization_id, actor, action, run_id, binding_id, mode, reason,
                    outcome, detail
             from migration.audit_log
             where ($1::text is null or organization_id = $1)
               and ($2::uuid is null or run_id = $2)
               and ($3::bigint is null or id > $3)
             order by id limit $4",
        query,
    )
    .await?;
    Ok(rows.iter().map(audit_record).collect())
}

fn audit_record(row: &Row) -> AuditRecord {
    let mode: Option<&str> = row.get("mode");
    let outcome: &str = row.get("outcome");
    AuditRecord {
        id: row.get("id"),
        at: row.get("at"),
        entry: AuditEntry {
            organization_id: row.get("organization_id"),
            actor: row.get("actor"),
            action: row.get("action"),
            run_id: row.get("run_id"),
            binding_id: row.get("binding_id"),
            mode: mode.and_then(Mode::parse),
            reason: row.get("reason"),
            ok: outcome == "ok",
            detail: row.get("detail"),
        },
    }
}

/// Domain events, or with `security` security events.
pub async fn list_events(
    client: &impl GenericClient,
    security: bool,
    query: &EvidenceQuery,
) -> Result<Vec<EventRecord>> {
    let sql = if security {
        "select id, at, organization_id, type, severity, run_id, binding_id, detail as payload
         from migration.security_events
         where ($1::text is null or organization_id = $1)
           and ($2::uuid is null or run_id = $2)
           and ($3::bigint is null or id > $3)
         order by id limit $4"
    } else {
        "select id, at, organization_id, type, null::text as severity, run_id,
                null::uuid as binding_id, payload
         from migration.domain_events
         where ($1::text is null or organization_id = $1)
           and ($2::uuid is null or run_id = $2)
           and ($3::bigint is null or id > $3)
         order by id limit $4"
    };
    let rows = listed(client, sql, query).await?;
    Ok(rows
        .iter()
        .map(|row| EventRecord {
            id: row.get("id"),
            at: row.get("at"),
            organization_id: row.get("organization_id"),
            kind: row.get("type"),
            severity: row.get("severity"),
            run_id: row.get("run_id"),
            binding_id: row.get("binding_id"),
            payload: row.get("payload"),
        })
        .collect())
}

/// Runs a listing whose parameters are the query's organization, run, cursor and limit.
async fn listed(client: &impl GenericClient, sql: &str, query: &EvidenceQuery) -> Result<Vec<Row>> {
    let statement = client.prepare_cached(sql).await?;
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 4] = [
        &query.organization,
        &query.run_id,
        &query.after,
        &query.limit,
    ];
    Ok(client.query(&statement, &params).await?)
}
