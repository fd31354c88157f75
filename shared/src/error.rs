//! The errors every service meets the same way (a caller's bad field, authentication, a
//! reused request id, the database, sealed secrets) and their one mapping to gRPC status
//! codes. A service's error enum holds them in one variant, `Common`, maps only its own
//! variants, and gets the conversions from [`common_errors!`](crate::common_errors).

use tonic::Status;

use crate::{
    api::{IdempotencyError, InvalidArgument},
    auth::AuthError,
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
            CommonError::Idempotency(IdempotencyError::Corrupt(_)) | CommonError::Keys(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
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
        let status = Status::from(CommonError::from(KeyError::Empty));
        assert_eq!(status.message(), "internal error");
    }
}
