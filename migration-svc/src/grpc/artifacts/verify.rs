//! The integrity sweep at the wire: `VerifyArtifactsRequest` validated on receipt, and
//! each report converted on the way out.

use stowage_proto::migration::v1::{self as pb, verify_artifacts_response::Report as Wire};
use stowage_shared::api::InvalidArgument;

use super::super::parse_optional_id;
use crate::domain::verify::{Checked, Report, Summary, Verdict, VerifyArtifacts};

impl TryFrom<pb::VerifyArtifactsRequest> for VerifyArtifacts {
    type Error = InvalidArgument;

    fn try_from(r: pb::VerifyArtifactsRequest) -> Result<Self, Self::Error> {
        let sample_percent = match r.sample_percent {
            0 => 100,
            n @ 1..=100 => n as u8,
            _ => {
                return Err(InvalidArgument::new(
                    "sample_percent",
                    "must be from 1 to 100 (0 checks every artifact)",
                ));
            }
        };
        let byte_budget = match r.byte_budget {
            0 => None,
            n if n > 0 => Some(n),
            _ => {
                return Err(InvalidArgument::new(
                    "byte_budget",
                    "must not be negative (0 is no limit)",
                ));
            }
        };
        Ok(Self {
            binding: parse_optional_id("binding_id", &r.binding_id)?,
            sample_percent,
            byte_budget,
        })
    }
}

impl From<Verdict> for pb::Verification {
    fn from(verdict: Verdict) -> Self {
        match verdict {
            Verdict::Ok => pb::Verification::Ok,
            Verdict::Missing => pb::Verification::Missing,
            Verdict::Corrupt => pb::Verification::Corrupt,
            Verdict::Unverifiable => pb::Verification::Unverifiable,
        }
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
                result: pb::Verification::from(verdict).into(),
                detail,
            }),
            Report::Summary(Summary {
                ok,
                missing,
                corrupt,
                unverifiable,
                bytes_read,
                budget_exhausted,
            }) => Wire::Summary(pb::VerifySummary {
                ok,
                missing,
                corrupt,
                unverifiable,
                bytes_read,
                budget_exhausted,
            }),
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
            (all.sample_percent, all.byte_budget, all.binding),
            (100, None, None)
        );
        let some = VerifyArtifacts::try_from(pb::VerifyArtifactsRequest {
            sample_percent: 5,
            byte_budget: 1 << 20,
            ..Default::default()
        })
        .unwrap();
        assert_eq!((some.sample_percent, some.byte_budget), (5, Some(1 << 20)));
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
