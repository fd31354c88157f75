//! migration-svc's tables (schema `migration`): embedded migrations and the queries, as
//! free functions over a client or transaction.

pub mod bindings;
pub mod organizations;

/// The PostgreSQL schema that holds every table of this service.
pub const SCHEMA: &str = "migration";

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}
