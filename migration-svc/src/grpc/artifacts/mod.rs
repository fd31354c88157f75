//! `stowage.migration.v1.ArtifactService`.

mod verify;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures::{StreamExt, TryStreamExt, stream};
use stowage_proto::migration::v1::{
    self as pb, artifact_service_server::ArtifactService, get_artifact_response,
    put_artifact_request,
};
use stowage_shared::{
    api::{self, InvalidArgument, ResponseStream},
    auth::{self, Role},
};
use tonic::{Request, Response, Status, Streaming};

use super::{optional_text, required_text};
use crate::domain::{
    artifacts::{Artifacts, ListArtifacts, NewArtifact},
    model::artifacts::Artifact,
    shredding::Shredder,
    verify::{Verifier, VerifyArtifacts},
};

/// Longest organization id a request names.
const MAX_ORGANIZATION_CHARS: usize = 128;

#[derive(Debug, Clone)]
pub struct ArtifactApi {
    artifacts: Artifacts,
    verifier: Verifier,
    shredder: Shredder,
}

impl ArtifactApi {
    pub fn new(artifacts: Artifacts, verifier: Verifier, shredder: Shredder) -> Self {
        Self {
            artifacts,
            verifier,
            shredder,
        }
    }
}

#[tonic::async_trait]
impl ArtifactService for ArtifactApi {
    async fn put_artifact(
        &self,
        request: Request<Streaming<pb::PutArtifactRequest>>,
    ) -> Result<Response<pb::Artifact>, Status> {
        let caller = auth::principal(&request)?;
        let mut parts = request.into_inner();
        let metadata = match parts.message().await? {
            Some(pb::PutArtifactRequest {
                part: Some(put_artifact_request::Part::Metadata(metadata)),
            }) => NewArtifact::try_from(metadata)?,
            _ => {
                return Err(InvalidArgument::new(
                    "metadata",
                    "the first message of an upload must carry the metadata",
                )
                .into());
            }
        };
        // A stream the client broke (a second metadata message, a message over the size
        // limit, a reset) fails the upload with the client's own status, not as a store
        // read error that quotes it.
        let broken = Arc::new(Mutex::new(None::<Status>));
        let chunks = parts.map({
            let broken = Arc::clone(&broken);
            move |part| {
                let chunk = match part.map(|p| p.part) {
                    Ok(Some(put_artifact_request::Part::Chunk(chunk))) => Ok(chunk),
                    Ok(Some(put_artifact_request::Part::Metadata(_))) => Err(InvalidArgument::new(
                        "metadata",
                        "only the first message may carry it",
                    )
                    .into()),
                    Ok(None) => Ok(Bytes::new()),
                    Err(status) => Err(status),
                };
                if let (Err(status), Ok(mut slot)) = (&chunk, broken.lock()) {
                    slot.get_or_insert_with(|| status.clone());
                }
                chunk
            }
        });
        match self.artifacts.put(&caller, metadata, chunks).await {
            Ok(artifact) => Ok(Response::new(artifact.into())),
            Err(error) => {
                let client_fault = broken.lock().ok().and_then(|mut slot| slot.take());
                Err(client_fault.unwrap_or_else(|| error.into()))
            }
        }
    }

    type GetArtifactStream = ResponseStream<pb::GetArtifactResponse>;

    async fn get_artifact(
        &self,
        request: Request<pb::GetArtifactRequest>,
    ) -> Result<Response<Self::GetArtifactStream>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("id", &request.get_ref().id)?;
        let (artifact, content) = self.artifacts.get(&caller, id).await?;
        let head = stream::once(async move {
            Ok(pb::GetArtifactResponse {
                part: Some(get_artifact_response::Part::Artifact(artifact.into())),
            })
        });
        let chunks = content
            .map_err(Status::from)
            .map_ok(|chunk| pb::GetArtifactResponse {
                part: Some(get_artifact_response::Part::Chunk(chunk)),
            });
        Ok(Response::new(Box::pin(head.chain(chunks))))
    }

    async fn stat_artifact(
        &self,
        request: Request<pb::StatArtifactRequest>,
    ) -> Result<Response<pb::Artifact>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("id", &request.get_ref().id)?;
        Ok(Response::new(
            self.artifacts.stat(&caller, id).await?.into(),
        ))
    }

    async fn list_artifacts(
        &self,
        request: Request<pb::ListArtifactsRequest>,
    ) -> Result<Response<pb::ListArtifactsResponse>, Status> {
        let (caller, query): (_, ListArtifacts) = auth::admit(request, None)?;
        let page = self.artifacts.list(&caller, query).await?;
        Ok(Response::new(pb::ListArtifactsResponse {
            artifacts: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    type VerifyArtifactsStream = ResponseStream<pb::VerifyArtifactsResponse>;

    async fn verify_artifacts(
        &self,
        request: Request<pb::VerifyArtifactsRequest>,
    ) -> Result<Response<Self::VerifyArtifactsStream>, Status> {
        let (caller, command): (_, VerifyArtifacts) = auth::admit(request, None)?;
        let reports = self
            .verifier
            .verify(&caller, command)?
            .map_err(Status::from)
            .map_ok(pb::VerifyArtifactsResponse::from);
        Ok(Response::new(Box::pin(reports)))
    }

    async fn delete_artifact(
        &self,
        request: Request<pb::DeleteArtifactRequest>,
    ) -> Result<Response<pb::Artifact>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("id", &request.get_ref().id)?;
        Ok(Response::new(
            self.artifacts.delete(&caller, id).await?.into(),
        ))
    }
    async fn destroy_organization_keys(
        &self,
        request: Request<pb::DestroyOrganizationKeysRequest>,
    ) -> Result<Response<pb::DestroyOrganizationKeysResponse>, Status> {
        let (caller, destroy): (_, DestroyKeys) = auth::admit(request, Some(Role::SuperAdmin))?;
        let shredded = (self.shredder)
            .destroy(&caller, &destroy.organization_id, &destroy.reason)
            .await?;
        Ok(Response::new(pb::DestroyOrganizationKeysResponse {
            organization_id: destroy.organization_id,
            keys_destroyed: i64::try_from(shredded.keys_destroyed).unwrap_or(i64::MAX),
            artifacts_shredded: shredded.artifacts,
        }))
    }
}

/// A DestroyOrganizationKeysRequest, checked: the organization named twice.
#[derive(Debug)]
struct DestroyKeys {
    organization_id: String,
    reason: String,
}

impl TryFrom<pb::DestroyOrganizationKeysRequest> for DestroyKeys {
    type Error = InvalidArgument;

    fn try_from(r: pb::DestroyOrganizationKeysRequest) -> Result<Self, Self::Error> {
        let organization = api::confirmed(
            ("organization_id", &r.organization_id),
            ("confirm_organization_id", &r.confirm_organization_id),
            MAX_ORGANIZATION_CHARS,
        )?;
        Ok(Self {
            organization_id: organization.to_owned(),
            reason: api::reason(&r.reason)?.to_owned(),
        })
    }
}

impl TryFrom<pb::ArtifactMetadata> for NewArtifact {
    type Error = InvalidArgument;

    fn try_from(m: pb::ArtifactMetadata) -> Result<Self, Self::Error> {
        let expected_sha256 = match m.expected_sha256.trim() {
            "" => None,
            hex if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
                Some(hex.to_ascii_lowercase())
            }
            _ => {
                return Err(InvalidArgument::new(
                    "expected_sha256",
                    "must be 64 hexadecimal digits",
                ));
            }
        };
        let content_type = match m.content_type.trim() {
            "" => "application/octet-stream".to_owned(),
            other => required_text("content_type", other, 255)?,
        };
        Ok(Self {
            purpose: required_text("purpose", &m.purpose, 100)?,
            name: required_text("name", &m.name, 1024)?,
            content_type,
            expected_sha256,
            binding: api::optional_id("binding_id", &m.binding_id)?,
        })
    }
}

impl TryFrom<pb::ListArtifactsRequest> for ListArtifacts {
    type Error = InvalidArgument;

    fn try_from(r: pb::ListArtifactsRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            binding: api::optional_id("binding_id", &r.binding_id)?,
            purpose: optional_text("purpose", &r.purpose, 100)?,
            show_deleted: r.show_deleted,
            after: api::parse_page_token(&r.page_token)?,
            limit: api::page_size(r.page_size)?,
        })
    }
}

impl From<Artifact> for pb::Artifact {
    fn from(a: Artifact) -> Self {
        pb::Artifact {
            id: a.id.to_string(),
            organization_id: a.organization_id,
            binding_id: a.binding_id.to_string(),
            object_key: a.object_key,
            name: a.name,
            purpose: a.purpose,
            content_type: a.content_type,
            size_bytes: a.size_bytes,
            sha256: a.sha256,
            create_time: Some(api::timestamp(a.create_time)),
            update_time: Some(api::timestamp(a.update_time)),
            delete_time: api::optional_timestamp(a.delete_time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::refused, *};

    fn metadata() -> pb::ArtifactMetadata {
        pb::ArtifactMetadata {
            purpose: "document".into(),
            name: "hello.txt".into(),
            ..Default::default()
        }
    }

    #[test]
    fn an_upload_without_a_content_type_is_an_octet_stream() {
        let meta = NewArtifact::try_from(metadata()).expect("valid");
        assert_eq!(meta.content_type, "application/octet-stream");
        assert_eq!((meta.expected_sha256, meta.binding), (None, None));
    }

    #[test]
    fn an_expected_digest_is_64_hex_digits_kept_lowercase() {
        let hex = "AB".repeat(32);
        let request = pb::ArtifactMetadata {
            expected_sha256: hex.clone(),
            ..metadata()
        };
        let meta = NewArtifact::try_from(request).expect("valid");
        assert_eq!(meta.expected_sha256, Some(hex.to_ascii_lowercase()));
        for bad in ["abc", &"zz".repeat(32)] {
            let request = pb::ArtifactMetadata {
                expected_sha256: bad.to_owned(),
                ..metadata()
            };
            assert_eq!(refused(NewArtifact::try_from(request)), "expected_sha256");
        }
    }

    #[test]
    fn each_malformed_upload_field_is_named() {
        let cases = [
            (
                pb::ArtifactMetadata {
                    purpose: String::new(),
                    ..metadata()
                },
                "purpose",
            ),
            (
                pb::ArtifactMetadata {
                    name: "a\0".into(),
                    ..metadata()
                },
                "name",
            ),
            (
                pb::ArtifactMetadata {
                    content_type: "x".repeat(256),
                    ..metadata()
                },
                "content_type",
            ),
            (
                pb::ArtifactMetadata {
                    binding_id: "b".into(),
                    ..metadata()
                },
                "binding_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(NewArtifact::try_from(request)), field);
        }
    }

    #[test]
    fn a_listing_names_its_malformed_page_and_filters() {
        let list = |r: pb::ListArtifactsRequest| ListArtifacts::try_from(r);
        let ok = list(pb::ListArtifactsRequest::default()).expect("valid");
        assert_eq!((ok.binding, ok.purpose, ok.after), (None, None, None));
        let cases = [
            (
                pb::ListArtifactsRequest {
                    page_size: -1,
                    ..Default::default()
                },
                "page_size",
            ),
            (
                pb::ListArtifactsRequest {
                    page_token: "?".into(),
                    ..Default::default()
                },
                "page_token",
            ),
            (
                pb::ListArtifactsRequest {
                    binding_id: "b".into(),
                    ..Default::default()
                },
                "binding_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(list(request)), field);
        }
    }

    #[test]
    fn destroying_keys_needs_the_organization_twice_and_a_reason() {
        let destroy = |confirm: &str, reason: &str| pb::DestroyOrganizationKeysRequest {
            organization_id: " org-a ".into(),
            confirm_organization_id: confirm.into(),
            reason: reason.into(),
        };
        let taken = DestroyKeys::try_from(destroy(" org-a ", "offboarded")).expect("valid");
        assert_eq!(taken.organization_id, "org-a");
        let unconfirmed = destroy("org-b", "offboarded");
        assert_eq!(
            refused(DestroyKeys::try_from(unconfirmed)),
            "confirm_organization_id"
        );
        let unexplained = destroy(" org-a ", " ");
        assert_eq!(refused(DestroyKeys::try_from(unexplained)), "reason");
    }
}
