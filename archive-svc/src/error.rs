//! archive-svc's errors are the one error type both services share, with its one mapping to
//! gRPC status codes: [`stowage_shared::error`].

pub use stowage_shared::error::{Error, OrNotFound, Result};
