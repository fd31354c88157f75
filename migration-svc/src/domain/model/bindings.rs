//! Storage bindings as stored and shown: everything but the sealed credential.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use stowage_shared::{
    blob::{Location, Provider},
    text_enum,
};
use uuid::Uuid;

text_enum! {
    pub enum BindingState {
        /// Created, never activated.
        Pending = "pending",
        /// The organization's one binding for new writes.
        Active = "active",
        /// Replaced: refuses writes, still serves reads.
        Disabled = "disabled",
    }
}

/// A binding as callers see it: everything but the secret.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Binding {
    pub id: Uuid,
    pub organization_id: String,
    pub display_name: String,
    pub provider: Provider,
    pub location: Location,
    pub state: BindingState,
    pub credential_kind: String,
    pub credential_update_time: DateTime<Utc>,
    pub create_time: DateTime<Utc>,
    pub update_time: DateTime<Utc>,
    pub activate_time: Option<DateTime<Utc>>,
    pub disable_time: Option<DateTime<Utc>>,
}
