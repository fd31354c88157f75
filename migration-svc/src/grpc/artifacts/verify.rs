//! The integrity sweep at the wire: `VerifyArtifactsRequest` validated on receipt, and
//! each report converted on the way out.

use stowage_proto::integrity::v1::Verification;
use stowage_proto::migration::v1::{self as pb, verify_artifacts_response::Report as Wire};
use stowage_shared::{
    api::{self, InvalidArgument},
    sweep::Sampling,
};

use crate::domain::verify::{Checked, Report, VerifyArtifacts};

impl TryFrom<pb::VerifyArtifactsRequest> for VerifyArtifacts {
    type Error = InvalidArgument;

    fn try_from(r: pb::VerifyArtifactsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            binding: api::optional_id("binding_id", &r.binding_id)?,
            sampling: Sampling::parse(r.sample_percent, r.byte_budget)?,
        })
    }
}

impl From<Report> for pb::VerifyArtifactsResponse {
    fn from(report: Report) -> Self {
        let report = match report {
            Report::Artifact(Checked {
                artifact_id,
                binding_id,
                verdict,
                detail,
            }) => Wire::Artifact(pb::ArtifactVerification {
                artifact_id: artifact_id.to_string(),
                binding_id: binding_id.to_string(),
                result: Verification::from(verdict).into(),
                detail,
            }),
            Report::Summary(summary) => Wire::Summary(summary.into()),
        };
        Self {
            report: Some(report),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::super::refused, *};

    #[test]
    fn a_sweep_checks_everything_unless_sampled_or_budgeted() {
        let all = VerifyArtifacts::try_from(pb::VerifyArtifactsRequest::default()).unwrap();
        assert_eq!(
            (all.sampling.percent, all.sampling.byte_budget, all.binding),
            (100, None, None)
        );
        let some = VerifyArtifacts::try_from(pb::VerifyArtifactsRequest {
            sample_percent: 5,
            byte_budget: 1 << 20,
            ..Default::default()
        })
        .unwrap();
        assert_eq!(
            (some.sampling.percent, some.sampling.byte_budget),
            (5, Some(1 << 20))
        );
    }

    #[test]
    fn each_malformed_sweep_field_is_named() {
        let cases = [
            (
                pb::VerifyArtifactsRequest {
                    sample_percent: 101,
                    ..Default::default()
                },
                "sample_percent",
            ),
            (
                pb::VerifyArtifactsRequest {
                    byte_budget: -1,
                    ..Default::default()
                },
                "byte_budget",
            ),
            (
                pb::VerifyArtifactsRequest {
                    binding_id: "b".into(),
                    ..Default::default()
                },
                "binding_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(VerifyArtifacts::try_from(request)), field);
        }
    }
}
