//! Evidence as recorded and listed: audit entries (who did what), domain and security
//! events.

use chrono::{DateTime, Utc};
use stowage_shared::auth::Principal;
use uuid::Uuid;

use super::runs::Mode;

/// Who did what; built by the caller, recorded in the action's transaction.
#[derive(Debug, Clone)]
pub struct AuditEntry {
    pub organization_id: String,
    pub actor: String,
    pub action: String,
    pub run_id: Option<Uuid>,
    pub binding_id: Option<Uuid>,
    pub mode: Option<Mode>,
    pub reason: Option<String>,
    pub ok: bool,
    pub detail: serde_json::Value,
}

impl AuditEntry {
    pub fn new(caller: &Principal, action: &'static str) -> Self {
        Self {
            organization_id: caller.organization.clone(),
            actor: caller.subject.clone(),
            action: action.to_owned(),
            run_id: None,
            binding_id: None,
            mode: None,
            reason: None,
            ok: true,
            detail: serde_json::json!({}),
        }
    }

    pub fn run(mut self, id: Uuid) -> Self {
        self.run_id = Some(id);
        self
    }

    pub fn binding(mut self, id: Uuid) -> Self {
        self.binding_id = Some(id);
        self
    }

    pub fn mode(mut self, mode: Mode) -> Self {
        self.mode = Some(mode);
        self
    }

    pub fn reason(mut self, reason: &str) -> Self {
        self.reason = Some(reason.to_owned());
        self
    }

    pub fn detail(mut self, detail: serde_json::Value) -> Self {
        self.detail = detail;
        self
    }

    pub fn failed(mut self, detail: serde_json::Value) -> Self {
        self.ok = false;
        self.detail = detail;
        self
    }
}

/// An audit entry as listed.
#[derive(Debug, Clone)]
pub struct AuditRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub entry: AuditEntry,
}

/// A domain or security event as listed.
#[derive(Debug, Clone)]
pub struct EventRecord {
    pub id: i64,
    pub at: DateTime<Utc>,
    pub organization_id: String,
    pub kind: String,
    pub severity: Option<String>,
    pub run_id: Option<Uuid>,
    pub binding_id: Option<Uuid>,
    pub payload: serde_json::Value,
}
