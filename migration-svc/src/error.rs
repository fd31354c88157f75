//! migration-svc errors and their one mapping to gRPC status codes.

use stowage_shared::{
    api::{IdempotencyError, InvalidArgument},
    auth::AuthError,
    db::DbError,
    keyring::KeyError,
};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    #[error("{0} not found")]
    NotFound(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("sealed secret: {0}")]
    Keys(#[from] KeyError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(e) => e.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::Auth(e) => e.into(),
            Error::Idempotency(IdempotencyError::Mismatch(_)) => {
                Status::invalid_argument(error.to_string())
            }
            Error::Idempotency(IdempotencyError::Db(e)) | Error::Db(e) => e.into(),
            Error::Idempotency(IdempotencyError::Corrupt(_))
            | Error::Keys(_)
            | Error::Corrupt(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
