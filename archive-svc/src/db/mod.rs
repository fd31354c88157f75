//! archive-svc's tables (schema `archive`): embedded migrations and the queries.

/// The PostgreSQL schema that holds every table of this service.
pub const SCHEMA: &str = "archive";

mod embedded {
    refinery::embed_migrations!("migrations");
}

pub fn migrations() -> refinery::Runner {
    embedded::migrations::runner()
}
