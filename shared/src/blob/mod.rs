//! Object stores behind bindings: configuration, Azure connection strings, and (with the
//! storage layer) the store type every object goes through.

pub mod azure;
pub mod config;

pub use config::{Credential, Location, Provider, StoreConfig};
