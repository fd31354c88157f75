//! archive-svc errors and their one mapping to gRPC status codes.

use stowage_shared::{
    api::{IdempotencyError, InvalidArgument},
    auth::AuthError,
    blob::{BlobError, ObjectError},
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
    #[error("{0}")]
    FailedPrecondition(String),
    /// The archived data cannot be read back as it was written.
    #[error("archive is unreadable: {0}")]
    DataLoss(String),
    #[error("{0}")]
    Unavailable(String),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("sealed secret: {0}")]
    Keys(#[from] KeyError),
    #[error("archive store: {0}")]
    Store(BlobError),
    #[error("{0}")]
    Internal(String),
}

impl From<tokio_postgres::Error> for Error {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for Error {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Db(error.into())
    }
}

impl From<BlobError> for Error {
    fn from(error: BlobError) -> Self {
        match error {
            BlobError::Unavailable(_) => Error::Unavailable(format!("archive store: {error}")),
            other => Error::Store(other),
        }
    }
}

impl From<ObjectError> for Error {
    fn from(error: ObjectError) -> Self {
        match error {
            ObjectError::Blob(blob) => blob.into(),
            ObjectError::Format(_)
            | ObjectError::ChecksumMismatch { .. }
            | ObjectError::LengthMismatch { .. } => Error::DataLoss(error.to_string()),
            ObjectError::Source(_) | ObjectError::Hashing(_) => Error::Internal(error.to_string()),
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(e) => e.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DataLoss(_) => Status::data_loss(error.to_string()),
            Error::Unavailable(_) => Status::unavailable(error.to_string()),
            Error::Auth(e) => e.into(),
            Error::Idempotency(IdempotencyError::Mismatch(_)) => {
                Status::invalid_argument(error.to_string())
            }
            Error::Idempotency(IdempotencyError::Db(e)) | Error::Db(e) => e.into(),
            Error::Store(BlobError::NotFound(_)) => Status::not_found(error.to_string()),
            Error::Store(BlobError::PermissionDenied(_)) => {
                tracing::error!(%error, "archive store refused access");
                Status::failed_precondition(
                    "the archive store refused access; check its credential",
                )
            }
            Error::Idempotency(IdempotencyError::Corrupt(_))
            | Error::Keys(_)
            | Error::Store(_)
            | Error::Internal(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
