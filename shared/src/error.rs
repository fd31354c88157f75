//! The errors every service meets the same way (a caller's bad field, authentication, a
//! reused request id, the database, sealed secrets, a store, an unreadable object) and
//! their one mapping to gRPC status codes. A service's error enum holds them in one variant, `Common`, maps only its own
//! variants, and gets the conversions from [`common_errors!`](crate::common_errors).

use tonic::Status;

use crate::{
    api::{IdempotencyError, InvalidArgument},
    auth::AuthError,
    blob::{BlobError, ObjectError},
    db::DbError,
    keyring::KeyError,
};

#[derive(Debug, thiserror::Error)]
pub enum CommonError {
    #[error(transparent)]
    InvalidArgument(#[from] InvalidArgument),
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error(transparent)]
    Idempotency(#[from] IdempotencyError),
    #[error(transparent)]
    Db(#[from] DbError),
    #[error("sealed secret: {0}")]
    Keys(#[from] KeyError),
    #[error("store: {0}")]
    Store(#[from] BlobError),
    /// An object that was read or written and is not what it should be, or whose bytes
    /// could not be produced or hashed.
    #[error(transparent)]
    Object(ObjectError),
}

impl From<ObjectError> for CommonError {
    fn from(error: ObjectError) -> Self {
        match error {
            ObjectError::Blob(blob) => Self::Store(blob),
            other => Self::Object(other),
        }
    }
}

impl From<tokio_postgres::Error> for CommonError {
    fn from(error: tokio_postgres::Error) -> Self {
        Self::Db(error.into())
    }
}

impl From<deadpool_postgres::PoolError> for CommonError {
    fn from(error: deadpool_postgres::PoolError) -> Self {
        Self::Db(error.into())
    }
}

impl From<CommonError> for Status {
    fn from(error: CommonError) -> Self {
        match error {
            CommonError::InvalidArgument(e) => e.into(),
            CommonError::Auth(e) => e.into(),
            CommonError::Idempotency(IdempotencyError::Mismatch(_)) => {
                Status::invalid_argument(error.to_string())
            }
            CommonError::Idempotency(IdempotencyError::Db(e)) | CommonError::Db(e) => e.into(),
            CommonError::Store(store) => store_status(store),
            CommonError::Object(ObjectError::Blob(store)) => store_status(store),
            CommonError::Object(
                ObjectError::Format(_)
                | ObjectError::ChecksumMismatch { .. }
                | ObjectError::LengthMismatch { .. },
            ) => Status::data_loss(format!("stored data is unreadable: {error}")),
            CommonError::Idempotency(IdempotencyError::Corrupt(_))
            | CommonError::Keys(_)
            | CommonError::Object(ObjectError::Source(_) | ObjectError::Hashing(_)) => {
                internal(&error)
            }
        }
    }
}

/// What a caller may do about a store's answer: wait, fix a credential or a setting, or
/// nothing (it is ours to look into).
fn store_status(error: BlobError) -> Status {
    match error {
        BlobError::Unavailable(_) => Status::unavailable(error.to_string()),
        BlobError::NotFound(_) => Status::not_found(error.to_string()),
        BlobError::Config(_) => Status::failed_precondition(error.to_string()),
        BlobError::PermissionDenied(_) => {
            tracing::warn!(%error, "a store refused access");
            Status::failed_precondition("the store refused access; check its credential")
        }
        BlobError::AlreadyExists(_) | BlobError::Precondition(_) | BlobError::Failed(_) => {
            internal(&error)
        }
    }
}

/// The reply for a failure that is ours: the detail goes to the log, never to the caller.
fn internal(error: &dyn std::error::Error) -> Status {
    tracing::error!(error = %error, "internal error");
    Status::internal("internal error")
}

/// A status code's name as the gRPC specification writes it (`NOT_FOUND`): in metrics
/// labels, CLI errors and test reports alike.
pub fn code_name(code: tonic::Code) -> &'static str {
    use tonic::Code;
    match code {
        Code::Ok => "OK",
        Code::Cancelled => "CANCELLED",
        Code::Unknown => "UNKNOWN",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::DeadlineExceeded => "DEADLINE_EXCEEDED",
        Code::NotFound => "NOT_FOUND",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::Aborted => "ABORTED",
        Code::OutOfRange => "OUT_OF_RANGE",
        Code::Unimplemented => "UNIMPLEMENTED",
        Code::Internal => "INTERNAL",
        Code::Unavailable => "UNAVAILABLE",
        Code::DataLoss => "DATA_LOSS",
        Code::Unauthenticated => "UNAUTHENTICATED",
    }
}

/// `From` every shared error for a service's error enum, through its `Common(CommonError)`
/// variant, so `?` works on them all.
#[macro_export]
macro_rules! common_errors {
    ($error:ty) => {
        $crate::common_errors!(
            @each $error,
            $crate::api::InvalidArgument,
            $crate::auth::AuthError,
            $crate::api::IdempotencyError,
            $crate::db::DbError,
            $crate::keyring::KeyError,
            $crate::blob::BlobError,
            $crate::blob::ObjectError,
            tokio_postgres::Error,
            deadpool_postgres::PoolError
        );
    };
    (@each $error:ty, $($from:ty),+) => {
        $(
            impl From<$from> for $error {
                fn from(error: $from) -> Self {
                    Self::Common(error.into())
                }
            }
        )+
    };
}

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_shared_error_has_the_code_it_means() {
        let cases = [
            (
                CommonError::from(InvalidArgument::new("name", "is required")),
                Code::InvalidArgument,
            ),
            (
                CommonError::from(IdempotencyError::Mismatch("r-1".into())),
                Code::InvalidArgument,
            ),
            (
                CommonError::from(IdempotencyError::Corrupt("r-1".into())),
                Code::Internal,
            ),
            (CommonError::from(KeyError::Empty), Code::Internal),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            let status = Status::from(error);
            assert_eq!(status.code(), code, "{shown}");
        }
    }

    #[test]
    fn internal_errors_reach_the_caller_as_a_short_generic_message() {
        for error in [
            CommonError::from(KeyError::Empty),
            CommonError::from(BlobError::Failed("secret detail".into())),
            CommonError::from(ObjectError::Source("the row stream at 0xdeadbeef".into())),
            CommonError::from(ObjectError::Hashing(crate::digest::HashingStopped)),
        ] {
            let status = Status::from(error);
            assert_eq!(status.code(), Code::Internal);
            assert_eq!(status.message(), "internal error");
        }
    }

    #[test]
    fn store_errors_say_whether_to_try_again_or_what_is_missing() {
        let code = |error: BlobError| Status::from(CommonError::from(error)).code();
        assert_eq!(
            code(BlobError::Unavailable("timeout".into())),
            Code::Unavailable
        );
        assert_eq!(code(BlobError::NotFound("k".into())), Code::NotFound);
        assert_eq!(
            code(BlobError::Config("no container".into())),
            Code::FailedPrecondition
        );
        let wrapped = Status::from(CommonError::from(ObjectError::Blob(BlobError::NotFound(
            "k".into(),
        ))));
        assert_eq!(wrapped.code(), Code::NotFound);
    }

    #[test]
    fn a_store_that_refuses_access_is_a_precondition_without_its_detail() {
        let status = Status::from(CommonError::from(BlobError::PermissionDenied(
            "sig=abc".into(),
        )));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(
            !status.message().contains("sig=abc"),
            "{}",
            status.message()
        );
    }

    #[test]
    fn an_object_that_is_not_what_was_written_is_data_loss() {
        let unreadable = [
            ObjectError::Format(crate::format::FormatError::Truncated),
            ObjectError::ChecksumMismatch {
                expected: "a".into(),
                actual: "b".into(),
            },
            ObjectError::LengthMismatch {
                expected: 2,
                actual: 1,
            },
        ];
        for error in unreadable {
            let status = Status::from(CommonError::from(error));
            assert_eq!(status.code(), Code::DataLoss);
            assert!(status.message().starts_with("stored data is unreadable"));
        }
    }
}
