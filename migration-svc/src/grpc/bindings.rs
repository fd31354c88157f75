//! `stowage.migration.v1.BindingService`.

use stowage_proto::migration::v1::{self as pb, binding_service_server::BindingService};
use stowage_shared::{
    api::{self, InvalidArgument, RequestId},
    auth::{self, Role},
    blob::{Credential, Location, Provider, StoreConfig},
    same_variants,
};
use tonic::{Request, Response, Status};

use super::required_text;
use crate::domain::{
    bindings::{ActivateBinding, Bindings, CreateBinding, ListBindings, UpdateCredential},
    model::bindings::{Binding, BindingState},
};

#[derive(Debug, Clone)]
pub struct BindingApi {
    bindings: Bindings,
}

impl BindingApi {
    pub fn new(bindings: Bindings) -> Self {
        Self { bindings }
    }
}

#[tonic::async_trait]
impl BindingService for BindingApi {
    async fn create_binding(
        &self,
        request: Request<pb::CreateBindingRequest>,
    ) -> Result<Response<pb::Binding>, Status> {
        let (caller, command): (_, CreateBinding) = auth::admit(request, Some(Role::OrgAdmin))?;
        let binding = self.bindings.create(&caller, command).await?;
        Ok(Response::new(binding.into()))
    }

    async fn get_binding(
        &self,
        request: Request<pb::GetBindingRequest>,
    ) -> Result<Response<pb::Binding>, Status> {
        let caller = auth::principal(&request)?;
        let id = api::id("id", &request.get_ref().id)?;
        Ok(Response::new(self.bindings.get(&caller, id).await?.into()))
    }

    async fn list_bindings(
        &self,
        request: Request<pb::ListBindingsRequest>,
    ) -> Result<Response<pb::ListBindingsResponse>, Status> {
        let (caller, query): (_, ListBindings) = auth::admit(request, None)?;
        let page = self.bindings.list(&caller, query).await?;
        Ok(Response::new(pb::ListBindingsResponse {
            bindings: page.items.into_iter().map(Into::into).collect(),
            next_page_token: api::next_page_token(&page.next)?,
        }))
    }

    async fn update_binding_credential(
        &self,
        request: Request<pb::UpdateBindingCredentialRequest>,
    ) -> Result<Response<pb::Binding>, Status> {
        let (caller, command): (_, UpdateCredential) = auth::admit(request, Some(Role::OrgAdmin))?;
        Ok(Response::new(
            self.bindings
                .update_credential(&caller, command)
                .await?
                .into(),
        ))
    }

    async fn activate_binding(
        &self,
        request: Request<pb::ActivateBindingRequest>,
    ) -> Result<Response<pb::Binding>, Status> {
        let (caller, command): (_, ActivateBinding) = auth::admit(request, Some(Role::OrgAdmin))?;
        Ok(Response::new(
            self.bindings.activate(&caller, command).await?.into(),
        ))
    }
}

impl TryFrom<pb::ActivateBindingRequest> for ActivateBinding {
    type Error = InvalidArgument;

    fn try_from(request: pb::ActivateBindingRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &request.id)?,
            request_id: RequestId::parse(&request.request_id)?,
        })
    }
}

impl TryFrom<pb::CreateBindingRequest> for CreateBinding {
    type Error = InvalidArgument;

    fn try_from(request: pb::CreateBindingRequest) -> Result<Self, Self::Error> {
        let display_name = required_text("display_name", &request.display_name, 200)?;
        let store = StoreConfig {
            provider: provider(request.provider)?,
            location: request.location.map(location).unwrap_or_default(),
            credential: credential(request.credential)?,
        }
        .validated()?;
        Ok(Self {
            display_name,
            store,
            request_id: RequestId::parse(&request.request_id)?,
        })
    }
}

impl TryFrom<pb::UpdateBindingCredentialRequest> for UpdateCredential {
    type Error = InvalidArgument;

    fn try_from(request: pb::UpdateBindingCredentialRequest) -> Result<Self, Self::Error> {
        Ok(Self {
            id: api::id("id", &request.id)?,
            credential: credential(request.credential)?,
            request_id: RequestId::parse(&request.request_id)?,
        })
    }
}

impl TryFrom<pb::ListBindingsRequest> for ListBindings {
    type Error = InvalidArgument;

    fn try_from(request: pb::ListBindingsRequest) -> Result<Self, Self::Error> {
        let state = match pb::BindingState::try_from(request.state) {
            Ok(pb::BindingState::Unspecified) => None,
            Ok(pb::BindingState::Pending) => Some(BindingState::Pending),
            Ok(pb::BindingState::Active) => Some(BindingState::Active),
            Ok(pb::BindingState::Disabled) => Some(BindingState::Disabled),
            Err(_) => return Err(InvalidArgument::new("state", "unknown binding state")),
        };
        Ok(Self {
            limit: api::page_size(request.page_size)?,
            after: api::parse_page_token(&request.page_token)?,
            state,
        })
    }
}

fn provider(raw: i32) -> Result<Provider, InvalidArgument> {
    match pb::Provider::try_from(raw) {
        Ok(pb::Provider::Azure) => Ok(Provider::Azure),
        Ok(pb::Provider::S3) => Ok(Provider::S3),
        Ok(pb::Provider::Gcs) => Ok(Provider::Gcs),
        Ok(pb::Provider::File) => Ok(Provider::File),
        Ok(pb::Provider::Memory) => Ok(Provider::Memory),
        Ok(pb::Provider::Unspecified) => Err(InvalidArgument::new(
            "provider",
            "is required (PROVIDER_UNSPECIFIED)",
        )),
        Err(_) => Err(InvalidArgument::new(
            "provider",
            format!("unknown provider {raw}"),
        )),
    }
}

fn location(location: pb::Location) -> Location {
    let optional = |s: String| Some(s).filter(|s| !s.trim().is_empty());
    Location {
        container: location.container,
        prefix: location.prefix,
        endpoint: optional(location.endpoint),
        account: optional(location.account),
        region: optional(location.region),
    }
}

fn credential(credential: Option<pb::Credential>) -> Result<Credential, InvalidArgument> {
    use pb::credential::Kind;
    let kind = credential
        .and_then(|c| c.kind)
        .ok_or_else(|| InvalidArgument::new("credential", "is required (use `none` for none)"))?;
    Ok(match kind {
        Kind::None(_) => Credential::None,
        Kind::AzureConnectionString(connection_string) => {
            Credential::AzureConnectionString { connection_string }
        }
        Kind::AzureSasToken(token) => Credential::AzureSas {
            token: token.trim_start_matches('?').to_owned(),
        },
        Kind::AzureEntraId(entra) => Credential::AzureEntraId {
            tenant_id: entra.tenant_id,
            client_id: entra.client_id,
            client_secret: entra.client_secret,
        },
        Kind::S3AccessKey(key) => Credential::S3AccessKey {
            access_key_id: key.access_key_id,
            secret_access_key: key.secret_access_key,
            session_token: Some(key.session_token).filter(|t| !t.is_empty()),
        },
        Kind::GcsServiceAccountJson(json) => Credential::GcsServiceAccount { json },
    })
}

fn credential_kind(kind: &str) -> pb::CredentialKind {
    match kind {
        "none" => pb::CredentialKind::None,
        "azure_connection_string" => pb::CredentialKind::AzureConnectionString,
        "azure_sas" => pb::CredentialKind::AzureSas,
        "azure_entra_id" => pb::CredentialKind::AzureEntraId,
        "s3_access_key" => pb::CredentialKind::S3AccessKey,
        "gcs_service_account" => pb::CredentialKind::GcsServiceAccount,
        _ => pb::CredentialKind::Unspecified,
    }
}

same_variants!(BindingState => pb::BindingState { Pending, Active, Disabled });

impl From<Binding> for pb::Binding {
    fn from(b: Binding) -> Self {
        let provider = match b.provider {
            Provider::Azure => pb::Provider::Azure,
            Provider::S3 => pb::Provider::S3,
            Provider::Gcs => pb::Provider::Gcs,
            Provider::File => pb::Provider::File,
            Provider::Memory => pb::Provider::Memory,
        };
        pb::Binding {
            id: b.id.to_string(),
            organization_id: b.organization_id,
            display_name: b.display_name,
            provider: provider.into(),
            location: Some(pb::Location {
                container: b.location.container,
                prefix: b.location.prefix,
                endpoint: b.location.endpoint.unwrap_or_default(),
                account: b.location.account.unwrap_or_default(),
                region: b.location.region.unwrap_or_default(),
            }),
            state: pb::BindingState::from(b.state).into(),
            credential_kind: credential_kind(&b.credential_kind).into(),
            credential_update_time: Some(api::timestamp(b.credential_update_time)),
            create_time: Some(api::timestamp(b.create_time)),
            update_time: Some(api::timestamp(b.update_time)),
            activate_time: api::optional_timestamp(b.activate_time),
            disable_time: api::optional_timestamp(b.disable_time),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{super::refused, *};

    fn create() -> pb::CreateBindingRequest {
        pb::CreateBindingRequest {
            display_name: "scratch".into(),
            provider: pb::Provider::File as i32,
            location: Some(pb::Location {
                container: "/tmp/scratch".into(),
                ..Default::default()
            }),
            credential: Some(pb::Credential {
                kind: Some(pb::credential::Kind::None(pb::NoCredential {})),
            }),
            request_id: String::new(),
        }
    }

    #[test]
    fn a_create_request_is_taken_with_its_store() {
        let command = CreateBinding::try_from(create()).expect("valid");
        assert_eq!(command.store.provider, Provider::File);
        assert_eq!(command.store.credential, Credential::None);
    }

    #[test]
    fn each_malformed_create_field_is_named() {
        let cases = [
            (
                pb::CreateBindingRequest {
                    display_name: " ".into(),
                    ..create()
                },
                "display_name",
            ),
            (
                pb::CreateBindingRequest {
                    provider: 0,
                    ..create()
                },
                "provider",
            ),
            (
                pb::CreateBindingRequest {
                    provider: 99,
                    ..create()
                },
                "provider",
            ),
            (
                pb::CreateBindingRequest {
                    credential: None,
                    ..create()
                },
                "credential",
            ),
            (
                pb::CreateBindingRequest {
                    location: None,
                    ..create()
                },
                "location.container",
            ),
            (
                pb::CreateBindingRequest {
                    request_id: "a b".into(),
                    ..create()
                },
                "request_id",
            ),
        ];
        for (request, field) in cases {
            assert_eq!(refused(CreateBinding::try_from(request)), field);
        }
    }

    #[test]
    fn a_sas_token_loses_its_leading_question_mark() {
        let sas = pb::Credential {
            kind: Some(pb::credential::Kind::AzureSasToken("?sv=1&sig=x".into())),
        };
        let request = pb::UpdateBindingCredentialRequest {
            id: uuid::Uuid::now_v7().to_string(),
            credential: Some(sas),
            request_id: String::new(),
        };
        let command = UpdateCredential::try_from(request).expect("valid");
        assert!(
            matches!(command.credential, Credential::AzureSas { token } if token == "sv=1&sig=x")
        );
    }

    #[test]
    fn a_credential_update_names_a_malformed_id_and_a_missing_credential() {
        let request = pb::UpdateBindingCredentialRequest {
            id: "b".into(),
            ..Default::default()
        };
        assert_eq!(refused(UpdateCredential::try_from(request)), "id");
        let request = pb::UpdateBindingCredentialRequest {
            id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        };
        assert_eq!(refused(UpdateCredential::try_from(request)), "credential");
    }

    #[test]
    fn a_binding_listing_filters_by_a_known_state_only() {
        let list = |state| {
            ListBindings::try_from(pb::ListBindingsRequest {
                state,
                ..Default::default()
            })
        };
        assert_eq!(list(0).expect("valid").state, None);
        let active = list(pb::BindingState::Active as i32).expect("valid");
        assert_eq!(active.state, Some(BindingState::Active));
        assert_eq!(refused(list(42)), "state");
    }

    #[test]
    fn an_activation_names_a_malformed_id_or_request_id() {
        let activate = |id: &str, request_id: &str| pb::ActivateBindingRequest {
            id: id.into(),
            request_id: request_id.into(),
        };
        let id = uuid::Uuid::now_v7();
        let taken = ActivateBinding::try_from(activate(&id.to_string(), "r-1")).expect("valid");
        assert_eq!(taken.id, id);
        assert_eq!(
            refused(ActivateBinding::try_from(activate("b", "r-1"))),
            "id"
        );
        let spaced = activate(&id.to_string(), "a b");
        assert_eq!(refused(ActivateBinding::try_from(spaced)), "request_id");
    }
}
