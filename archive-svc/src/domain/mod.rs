//! The behaviour of archive-svc, free of wire types: the retention policy, archiving and
//! restoring jobs, and the archive store.

pub mod archive;
pub mod jobs;
pub mod pipe;
pub mod policy;
pub mod restore;
pub mod rows;
pub mod scheduler;
pub mod service;
pub mod store;

/// One page of a keyset-paginated listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T, C> {
    pub items: Vec<T>,
    /// Cursor of the next page; `None` on the last page.
    pub next: Option<C>,
}
