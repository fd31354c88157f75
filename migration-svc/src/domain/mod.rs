//! The behaviour of migration-svc, free of wire types: bindings, artifacts, migration runs
//! (their API, the runner that plans and copies, and watching them), integrity sweeps,
//! verified cleanup of the sources migrations left, crypto-shredding, and the evidence
//! they leave.

pub mod artifacts;
pub mod bindings;
pub mod cleanup;
pub mod copy;
pub mod evidence;
pub mod model;
pub mod pace;
pub mod runner;
pub mod runs;
pub mod shredding;
pub mod stores;
pub mod uploads;
pub mod verify;
pub mod watch;

/// Where this service's idempotent mutations keep their request ids.
const IDEMPOTENCY: stowage_shared::api::Idempotency = stowage_shared::api::Idempotency {
    table: "migration.request_log",
};

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next: Option<C>,
}

impl<T, C> Page<T, C> {
    /// A page from `limit + 1` fetched rows: the extra row, if any, says there is more.
    pub fn from_rows(mut items: Vec<T>, limit: i64, cursor: impl Fn(&T) -> C) -> Self {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        let next = if items.len() > limit {
            items.truncate(limit);
            items.last().map(cursor)
        } else {
            None
        };
        Self { items, next }
    }
}
