//! The behaviour of migration-svc, free of wire types: bindings (and, as they come,
//! artifacts, runs and evidence).

pub mod bindings;

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next: Option<C>,
}
