//! `stowage.migration.v1.EvidenceService`.

use stowage_proto::migration::v1::{self as pb, evidence_service_server::EvidenceService};
use stowage_shared::{
    api::{self, InvalidArgument},
    auth,
};
use tonic::{Request, Response, Status};

use super::{optional_text, optional_uuid};
use crate::domain::{
    evidence::{Evidence, ListEvidence},
    model::evidence::{AuditRecord, EventRecord},
};

#[derive(Debug, Clone)]
pub struct EvidenceApi {
    evidence: Evidence,
}

impl EvidenceApi {
    pub fn new(evidence: Evidence) -> Self {
        Self { evidence }
    }
}

#[tonic::async_trait]
impl EvidenceService for EvidenceApi {
    async fn list_audit_entries(
        &self,
        request: Request<pb::ListEvidenceRequest>,
    ) -> Result<Response<pb::ListAuditEntriesResponse>, Status> {
        let (caller, query): (_, ListEvidence) = auth::admit(request, None)?;
        let page = self.evidence.audit_entries(&caller, query).await?;
        Ok(Response::new(pb::ListAuditEntriesResponse {
            entries: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    async fn list_domain_events(
        &self,
        request: Request<pb::ListEvidenceRequest>,
    ) -> Result<Response<pb::ListDomainEventsResponse>, Status> {
        let (caller, query): (_, ListEvidence) = auth::admit(request, None)?;
        let page = self.evidence.events(&caller, false, query).await?;
        Ok(Response::new(pb::ListDomainEventsResponse {
            events: page
                .items
                .into_iter()
                .map(|e| pb::DomainEvent {
                    id: e.id,
                    organization_id: e.organization_id,
                    r#type: e.kind,
                    run_id: optional_uuid(e.run_id),
                    time: Some(api::timestamp(e.at)),
                    payload_json: e.payload.to_string(),
                })
                .collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    async fn list_security_events(
        &self,
        request: Request<pb::ListEvidenceRequest>,
    ) -> Result<Response<pb::ListSecurityEventsResponse>, Status> {
        let (caller, query): (_, ListEvidence) = auth::admit(request, None)?;
        let page = self.evidence.events(&caller, true, query).await?;
        Ok(Response::new(pb::ListSecurityEventsResponse {
            events: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }
}

impl TryFrom<pb::ListEvidenceRequest> for ListEvidence {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListEvidenceRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            organization: optional_text("organization_id", &r.organization_id, 200)?,
            run_id: api::optional_id("run_id", &r.run_id)?,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl From<AuditRecord> for pb::AuditEntry {
    fn from(r: AuditRecord) -> Self {
        let e = r.entry;
        pb::AuditEntry {
            id: r.id,
            organization_id: e.organization_id,
            actor: e.actor,
            action: e.action,
            run_id: optional_uuid(e.run_id),
            binding_id: optional_uuid(e.binding_id),
            mode: e
                .mode
                .map_or(pb::MigrationMode::Unspecified, Into::into)
                .into(),
            reason: e.reason.unwrap_or_default(),
            outcome: if e.ok { "ok" } else { "failed" }.to_owned(),
            time: Some(api::timestamp(r.at)),
            detail_json: e.detail.to_string(),
        }
    }
}

impl From<EventRecord> for pb::SecurityEvent {
    fn from(e: EventRecord) -> Self {
        pb::SecurityEvent {
            id: e.id,
            organization_id: e.organization_id,
            r#type: e.kind,
            severity: e.severity.unwrap_or_default(),
            run_id: optional_uuid(e.run_id),
            binding_id: optional_uuid(e.binding_id),
            time: Some(api::timestamp(e.at)),
            detail_json: e.payload.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::refused, *};

    #[test]
    fn an_evidence_listing_without_filters_is_the_callers_default_page() {
        let query = ListEvidence::try_from(pb::ListEvidenceRequest::default()).expect("valid");
        assert_eq!(
            (query.organization, query.run_id, query.after),
            (None, None, None)
        );
        assert_eq!(query.limit, 50);
    }

    #[test]
    fn each_malformed_evidence_filter_is_named() {
        let cases = [
            (
                pb::ListEvidenceRequest {
                    run_id: "r".into(),
                    ..Default::default()
                },
                "run_id",
            ),
            (
                pb::ListEvidenceRequest {
                    organization_id: "a\0".into(),
                    ..Default::default()
                },
                "organization_id",
            ),
            (
                pb::ListEvidenceRequest {
                    page_size: -5,
                    ..Default::default()
                },
                "page_size",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(ListEvidence::try_from(request)), field);
        }
    }
}
