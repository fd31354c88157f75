//! migration-svc errors and their one mapping to gRPC status codes.

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
    /// Stored bytes do not match what was recorded for them.
    #[error("stored data is unreadable: {0}")]
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
    #[error("store: {0}")]
    Store(BlobError),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
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
            BlobError::Unavailable(_) => Error::Unavailable(error.to_string()),
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
            ObjectError::Source(_) => {
                Error::InvalidArgument(InvalidArgument::new("chunk", error.to_string()))
            }
            ObjectError::Hashing(_) => Error::Internal(error.to_string()),
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
                tracing::warn!(%error, "a store refused access");
                Status::failed_precondition(
                    "the binding's store refused access; check its credential",
                )
            }
            Error::Store(BlobError::Config(_)) => Status::failed_precondition(error.to_string()),
            Error::Idempotency(IdempotencyError::Corrupt(_))
            | Error::Keys(_)
            | Error::Store(_)
            | Error::Corrupt(_)
            | Error::Internal(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use stowage_shared::{auth::Role, digest::HashingStopped, format::FormatError};
    use tonic::Code;

    use super::*;

    fn code(error: impl Into<Error>) -> Code {
        Status::from(error.into()).code()
    }

    #[test]
    fn each_of_our_own_errors_has_the_code_that_says_what_it_means() {
        let bad = InvalidArgument::new("reason", "too long");
        assert_eq!(code(bad), Code::InvalidArgument);
        assert_eq!(code(Error::NotFound("run 1".into())), Code::NotFound);
        assert_eq!(
            code(Error::FailedPrecondition("no".into())),
            Code::FailedPrecondition
        );
        assert_eq!(code(Error::DataLoss("bits".into())), Code::DataLoss);
        assert_eq!(code(Error::Unavailable("later".into())), Code::Unavailable);
    }

    #[test]
    fn an_invalid_argument_names_its_field() {
        let status = Status::from(Error::from(InvalidArgument::new("reason", "too long")));
        assert!(status.message().contains("reason"), "{}", status.message());
    }

    #[test]
    fn internal_errors_reach_the_caller_as_a_short_generic_message() {
        for error in [
            Error::Internal("the recorder stopped at 0xdeadbeef".into()),
            Error::Corrupt("binding state \"weird\"".into()),
            Error::Keys(KeyError::Empty),
            Error::Store(BlobError::Failed("secret detail".into())),
            Error::Idempotency(IdempotencyError::Corrupt("r1".into())),
        ] {
            let status = Status::from(error);
            assert_eq!(status.code(), Code::Internal);
            assert_eq!(status.message(), "internal error");
        }
    }

    #[test]
    fn a_store_that_refuses_access_is_a_precondition_without_its_detail() {
        let status = Status::from(Error::from(BlobError::PermissionDenied("sig=abc".into())));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(!status.message().contains("sig=abc"));
    }

    #[test]
    fn store_errors_say_whether_to_try_again_or_what_is_missing() {
        assert_eq!(
            code(BlobError::Unavailable("timeout".into())),
            Code::Unavailable
        );
        assert_eq!(code(BlobError::NotFound("k".into())), Code::NotFound);
        assert_eq!(
            code(BlobError::Config("no container".into())),
            Code::FailedPrecondition
        );
    }

    #[test]
    fn unreadable_objects_are_data_loss_and_a_broken_upload_is_the_callers() {
        assert_eq!(
            code(ObjectError::Format(FormatError::Truncated)),
            Code::DataLoss
        );
        let mismatch = ObjectError::ChecksumMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(code(mismatch), Code::DataLoss);
        let short = ObjectError::LengthMismatch {
            expected: 2,
            actual: 1,
        };
        assert_eq!(code(short), Code::DataLoss);
        let upload = Status::from(Error::from(ObjectError::Source("reset".into())));
        assert_eq!(upload.code(), Code::InvalidArgument);
        assert!(upload.message().contains("chunk"));
    }

    #[test]
    fn a_reused_request_id_is_invalid_and_auth_errors_keep_their_codes() {
        let reused = IdempotencyError::Mismatch("r1".into());
        assert_eq!(code(reused), Code::InvalidArgument);
        assert_eq!(code(AuthError::MissingToken), Code::Unauthenticated);
        assert_eq!(
            code(AuthError::MissingRole(Role::OrgAdmin)),
            Code::PermissionDenied
        );
        assert_eq!(code(DbError::Config("url".into())), Code::Internal);
        assert_eq!(code(ObjectError::Hashing(HashingStopped)), Code::Internal);
    }
}
