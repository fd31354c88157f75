//! The types of migration-svc: runs and items, bindings, artifacts and evidence, as the
//! domain, the queries and the wire adapter share them. Leaf modules: they import nothing
//! from `db`, the rest of `domain` or `grpc`.

pub mod artifacts;
pub mod bindings;
pub mod cleanup;
pub mod evidence;
pub mod runs;
