//! The one error type of both services and its one mapping to gRPC status codes: a
//! caller's bad field, authentication, a reused request id, the database, sealed secrets,
//! a store, an unreadable object, and the outcomes every domain speaks of (not found, not
//! now, data loss, ours to look into). Each variant maps to exactly one code in one
//! exhaustive match; what is ours stays in the log, never in the reply.

use tonic::Status;

use crate::{
    api::{IdempotencyError, InvalidArgument},
    auth::AuthError,
    blob::{BlobError, ObjectError},
    db::{DbError, RowMissing},
    format::FormatError,
    keyring::KeyError,
    stream::WorkStopped,
    tenant_keys::{self, TenantKeyError},
};

#[derive(Debug, thiserror::Error)]
pub enum Error {
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
    #[error("{0} not found")]
    NotFound(String),
    /// The request is valid but the state it meets does not allow it (yet).
    #[error("{0}")]
    FailedPrecondition(String),
    /// Stored bytes that cannot be read back as they were written.
    #[error("stored data is unreadable: {0}")]
    DataLoss(String),
    /// A stored record this service cannot make sense of (a state it does not know).
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Internal(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The database's own error, when that is what this is.
    pub fn as_db(&self) -> Option<&DbError> {
        match self {
            Error::Db(db) => Some(db),
            _ => None,
        }
    }
}

impl From<ObjectError> for Error {
    fn from(error: ObjectError) -> Self {
        match error {
            ObjectError::Blob(blob) => Self::Store(blob),
            other => Self::Object(other),
        }
    }
}

impl From<RowMissing> for Error {
    fn from(missing: RowMissing) -> Self {
        Self::NotFound(missing.to_string())
    }
}

/// An `Option` read by id, as the record or NOT_FOUND naming it (`binding 5f0c…`).
pub trait OrNotFound<T> {
    fn or_not_found(self, noun: &'static str, id: impl std::fmt::Display) -> Result<T>;
}

impl<T> OrNotFound<T> for Option<T> {
    fn or_not_found(self, noun: &'static str, id: impl std::fmt::Display) -> Result<T> {
        self.ok_or_else(|| RowMissing::new(noun, id).into())
    }
}

impl From<TenantKeyError> for Error {
    fn from(error: TenantKeyError) -> Self {
        match error {
            TenantKeyError::Db(db) => Self::Db(db),
            TenantKeyError::Keys(keys) => Self::Keys(keys),
        }
    }
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

impl From<WorkStopped> for Error {
    fn from(error: WorkStopped) -> Self {
        Self::Internal(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::InvalidArgument(e) => e.into(),
            Error::Auth(e) => e.into(),
            Error::Idempotency(IdempotencyError::Mismatch(_)) => {
                Status::invalid_argument(error.to_string())
            }
            Error::Idempotency(IdempotencyError::Db(e)) | Error::Db(e) => e.into(),
            Error::Store(store) => store_status(store),
            Error::Object(ObjectError::Blob(store)) => store_status(store),
            Error::Object(ObjectError::Format(FormatError::UnknownKek(ref id)))
                if tenant_keys::is_tenant_key(id) =>
            {
                Status::failed_precondition(
                    "the object is unreadable: its tenant's key was destroyed (crypto-shredded)",
                )
            }
            Error::Object(
                ObjectError::Format(_)
                | ObjectError::ChecksumMismatch { .. }
                | ObjectError::LengthMismatch { .. },
            ) => Status::data_loss(format!("stored data is unreadable: {error}")),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DataLoss(_) => Status::data_loss(error.to_string()),
            Error::Idempotency(
                IdempotencyError::Corrupt(_) | IdempotencyError::Unserializable(_),
            )
            | Error::Keys(_)
            | Error::Object(ObjectError::Source(_) | ObjectError::Hashing(_))
            | Error::Corrupt(_)
            | Error::Internal(_) => internal(&error),
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

#[cfg(test)]
mod tests {
    use tonic::Code;

    use super::*;

    #[test]
    fn each_shared_error_has_the_code_it_means() {
        let cases = [
            (
                Error::from(InvalidArgument::new("name", "is required")),
                Code::InvalidArgument,
            ),
            (
                Error::from(IdempotencyError::Mismatch("r-1".into())),
                Code::InvalidArgument,
            ),
            (
                Error::from(IdempotencyError::Corrupt("r-1".into())),
                Code::Internal,
            ),
            (
                Error::from(IdempotencyError::Unserializable("r-1".into())),
                Code::Internal,
            ),
            (Error::from(KeyError::Empty), Code::Internal),
            (Error::from(AuthError::MissingToken), Code::Unauthenticated),
            (
                Error::from(AuthError::MissingRole(crate::auth::Role::OrgAdmin)),
                Code::PermissionDenied,
            ),
            (Error::from(DbError::Config("url".into())), Code::Internal),
            (Error::NotFound("run 1".into()), Code::NotFound),
            (
                Error::FailedPrecondition("hot".into()),
                Code::FailedPrecondition,
            ),
            (Error::DataLoss("digest".into()), Code::DataLoss),
            (Error::from(WorkStopped), Code::Internal),
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
            Error::from(KeyError::Empty),
            Error::from(BlobError::Failed("secret detail".into())),
            Error::from(ObjectError::Source("the row stream at 0xdeadbeef".into())),
            Error::from(ObjectError::Hashing(crate::digest::HashingStopped)),
            Error::Internal("the recorder stopped at 0xdeadbeef".into()),
            Error::Corrupt("binding state \"weird\"".into()),
        ] {
            let status = Status::from(error);
            assert_eq!(status.code(), Code::Internal);
            assert_eq!(status.message(), "internal error");
        }
    }

    #[test]
    fn store_errors_say_whether_to_try_again_or_what_is_missing() {
        let code = |error: BlobError| Status::from(Error::from(error)).code();
        assert_eq!(
            code(BlobError::Unavailable("timeout".into())),
            Code::Unavailable
        );
        assert_eq!(code(BlobError::NotFound("k".into())), Code::NotFound);
        assert_eq!(
            code(BlobError::Config("no container".into())),
            Code::FailedPrecondition
        );
        let wrapped = Status::from(Error::from(ObjectError::Blob(BlobError::NotFound(
            "k".into(),
        ))));
        assert_eq!(wrapped.code(), Code::NotFound);
    }

    #[test]
    fn a_store_that_refuses_access_is_a_precondition_without_its_detail() {
        let status = Status::from(Error::from(BlobError::PermissionDenied("sig=abc".into())));
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
            let status = Status::from(Error::from(error));
            assert_eq!(status.code(), Code::DataLoss);
            assert!(status.message().starts_with("stored data is unreadable"));
        }
    }

    #[test]
    fn an_invalid_argument_names_its_field() {
        let status = Status::from(Error::from(InvalidArgument::new("reason", "too long")));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("reason"), "{}", status.message());
    }

    #[test]
    fn only_a_database_error_is_one() {
        assert!(Error::from(DbError::Config("url".into())).as_db().is_some());
        assert!(Error::Internal("x".into()).as_db().is_none());
    }

    #[test]
    fn a_missing_record_is_not_found_by_name() {
        let found: Result<u8> = Some(7).or_not_found("binding", 3);
        assert_eq!(found.unwrap(), 7);
        let status = Status::from(None::<u8>.or_not_found("binding", 3).unwrap_err());
        assert_eq!(status.code(), Code::NotFound);
        assert_eq!(status.message(), "binding 3 not found");
        let missing = Status::from(Error::from(RowMissing::new("run", "r-1")));
        assert_eq!(missing.code(), Code::NotFound);
        assert_eq!(missing.message(), "run r-1 not found");
    }
}
