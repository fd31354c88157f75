//! Which artifacts a started run covers, as `run start` takes it: the whole organization
//! unless narrowed by purpose, source binding or creation time.

use chrono::{DateTime, Utc};
use stowage_proto::migration::v1 as pb;
use stowage_shared::api;

/// Which artifacts a run covers: the whole organization unless narrowed.
#[derive(Debug, clap::Args)]
pub struct ScopeArgs {
    /// Only artifacts of this purpose (repeat for several).
    #[arg(long = "purpose")]
    purposes: Vec<String>,
    /// Never artifacts of this purpose (repeat for several).
    #[arg(long = "exclude-purpose")]
    excluded_purposes: Vec<String>,
    /// Only artifacts on this source binding (repeat for several).
    #[arg(long = "source-binding")]
    source_bindings: Vec<String>,
    /// Only artifacts created at or after this time (RFC 3339).
    #[arg(long)]
    created_after: Option<DateTime<Utc>>,
    /// Only artifacts created before this time (RFC 3339).
    #[arg(long)]
    created_before: Option<DateTime<Utc>>,
}

impl ScopeArgs {
    pub(super) fn request(self) -> pb::RunScope {
        pb::RunScope {
            purposes: self.purposes,
            excluded_purposes: self.excluded_purposes,
            source_binding_ids: self.source_bindings,
            created_after: api::optional_timestamp(self.created_after),
            created_before: api::optional_timestamp(self.created_before),
        }
    }
}
