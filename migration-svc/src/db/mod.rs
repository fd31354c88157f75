//! migration-svc's tables (schema `migration`): embedded migrations and the queries, as
//! free functions over a client or transaction.

pub mod artifacts;
pub mod bindings;
pub mod evidence;
pub mod items;
pub mod organizations;
pub mod runs;

/// The PostgreSQL schema that holds every table of this service.
pub const SCHEMA: &str = "migration";

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}
