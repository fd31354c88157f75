//! archive-svc errors and their one mapping to gRPC status codes. The errors both
//! services share are in `Common` and map through `stowage_shared::error`.

use stowage_shared::{error::CommonError, stream::WorkStopped};
use tonic::Status;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Common(CommonError),
    #[error("{0} not found")]
    NotFound(String),
    #[error("{0}")]
    FailedPrecondition(String),
    /// The archived data cannot be read back as it was written.
    #[error("archive is unreadable: {0}")]
    DataLoss(String),
    #[error("{0}")]
    Internal(String),
}

stowage_shared::common_errors!(Error);

impl From<WorkStopped> for Error {
    fn from(error: WorkStopped) -> Self {
        Error::Internal(error.to_string())
    }
}

impl From<Error> for Status {
    fn from(error: Error) -> Self {
        match error {
            Error::Common(common) => common.into(),
            Error::NotFound(_) => Status::not_found(error.to_string()),
            Error::FailedPrecondition(_) => Status::failed_precondition(error.to_string()),
            Error::DataLoss(_) => Status::data_loss(error.to_string()),
            Error::Internal(_) => {
                tracing::error!(%error, "internal error");
                Status::internal("internal error")
            }
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use stowage_shared::{api::InvalidArgument, blob::BlobError};
    use tonic::Code;

    use super::*;

    #[test]
    fn each_error_has_the_code_it_means() {
        let cases = [
            (
                Error::from(InvalidArgument::new("job_id", "must be a UUID")),
                Code::InvalidArgument,
            ),
            (Error::NotFound("job 1".into()), Code::NotFound),
            (
                Error::FailedPrecondition("hot".into()),
                Code::FailedPrecondition,
            ),
            (Error::DataLoss("digest".into()), Code::DataLoss),
            (
                Error::from(BlobError::Unavailable("down".into())),
                Code::Unavailable,
            ),
            (Error::Internal("bug".into()), Code::Internal),
        ];
        for (error, code) in cases {
            let shown = error.to_string();
            assert_eq!(Status::from(error).code(), code, "{shown}");
        }
    }

    #[test]
    fn internal_detail_stays_out_of_the_reply() {
        let status = Status::from(Error::Internal("the compressor thread panicked".into()));
        assert_eq!(status.message(), "internal error");
    }
}
