//! migration-svc errors and their one mapping to gRPC status codes. The errors both
//! services share (a caller's field, auth, request ids, the database, sealed secrets,
//! stores and unreadable objects) are in `Common` and map through `stowage_shared::error`.

use stowage_shared::error::CommonError;
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(CommonError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// Stored bytes do not match what was recorded for them.
    #[error("stored data is unreadable: {0}")]
    DataLoss(String),
    #[error("stored data is inconsistent: {0}")]
    Corrupt(String),
    #[error("{0}")]
    Internal(String),
}

stowage_shared::common_errors!(Error);

impl Error {
    /// The database's own error, when that is what this is.
    pub fn as_db(&self) -> Option<&stowage_shared::db::DbError> {
        match self {
            Error::Common(CommonError::Db(db)) => Some(db),
            _ => None,
        }
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Common(common) => common.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DataLoss(_) => Status::data_loss(error.to_string()),
            Error::Corrupt(_) | Error::Internal(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use stowage_shared::{
        api::{IdempotencyError, InvalidArgument},
        auth::{AuthError, Role},
        blob::{BlobError, ObjectError},
        db::DbError,
    };
    use tonic::Code;

    use super::*;

    fn code(error: impl Into<Error>) -> Code {
        Status::from(error.into()).code()
    }

    #[test]
    fn each_of_our_own_errors_has_the_code_that_says_what_it_means() {
        assert_eq!(code(Error::NotFound("run 1".into())), Code::NotFound);
        assert_eq!(
            code(Error::FailedPrecondition("no".into())),
            Code::FailedPrecondition
        );
        assert_eq!(code(Error::DataLoss("bits".into())), Code::DataLoss);
    }

    #[test]
    fn an_invalid_argument_names_its_field() {
        let status = Status::from(Error::from(InvalidArgument::new("reason", "too long")));
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains("reason"), "{}", status.message());
    }

    #[test]
    fn internal_errors_reach_the_caller_as_a_short_generic_message() {
        for error in [
            Error::Internal("the recorder stopped at 0xdeadbeef".into()),
            Error::Corrupt("binding state \"weird\"".into()),
            Error::from(BlobError::Failed("secret detail".into())),
        ] {
            let status = Status::from(error);
            assert_eq!(status.code(), Code::Internal);
            assert_eq!(status.message(), "internal error");
        }
    }

    #[test]
    fn shared_errors_keep_their_codes_through_ours() {
        assert_eq!(
            code(IdempotencyError::Mismatch("r1".into())),
            Code::InvalidArgument
        );
        assert_eq!(code(AuthError::MissingToken), Code::Unauthenticated);
        assert_eq!(
            code(AuthError::MissingRole(Role::OrgAdmin)),
            Code::PermissionDenied
        );
        assert_eq!(code(DbError::Config("url".into())), Code::Internal);
        assert_eq!(
            code(BlobError::Unavailable("timeout".into())),
            Code::Unavailable
        );
        let mismatch = ObjectError::ChecksumMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(code(mismatch), Code::DataLoss);
    }

    #[test]
    fn only_a_database_error_is_one() {
        assert!(Error::from(DbError::Config("url".into())).as_db().is_some());
        assert!(Error::Internal("x".into()).as_db().is_none());
    }
}
