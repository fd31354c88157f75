//! archive-svc's tables (schema `archive`): embedded migrations and the queries, as free
//! functions over a client or transaction.

pub mod admin_config;
pub mod audit;
pub mod garbage;
pub mod jobs;
pub mod rows;
pub mod stores;

/// The PostgreSQL schema that holds every table of this service.
pub const SCHEMA: &str = "archive";

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}
