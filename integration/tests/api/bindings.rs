//! BindingService: create, read, list, replace credentials; idempotency; secrets sealed.

use std::sync::{Arc, Mutex};

use stowage_integration::{migration, spawn_app};
use stowage_proto::migration::v1 as pb;
use stowage_shared::{auth::Role, keyring};
use tonic::Code;

pub use stowage_integration::migration::memory_binding;

fn azure_binding(account_key: &str) -> pb::CreateBindingRequest {
    pb::CreateBindingRequest {
        display_name: "customer bucket".into(),
        provider: pb::Provider::Azure.into(),
        location: Some(pb::Location {
            container: "artifacts".into(),
            ..Default::default()
        }),
        credential: Some(pb::Credential {
            kind: Some(pb::credential::Kind::AzureConnectionString(format!(
                "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={account_key};EndpointSuffix=core.windows.net"
            ))),
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn a_created_binding_is_pending_and_readable_without_its_secret() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let created = bindings
        .create_binding(azure_binding("a2V5"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(created.state(), pb::BindingState::Pending);
    assert_eq!(created.provider(), pb::Provider::Azure);
    assert_eq!(
        created.credential_kind(),
        pb::CredentialKind::AzureConnectionString
    );
    assert_eq!(created.organization_id, "acme");
    let fetched = bindings
        .get_binding(pb::GetBindingRequest {
            id: created.id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, created);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn invalid_requests_are_invalid_argument() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let mut unspecified = memory_binding("x");
    unspecified.provider = pb::Provider::Unspecified.into();
    let mut no_credential = memory_binding("x");
    no_credential.credential = None;
    let mut mismatched = memory_binding("x");
    mismatched.credential = azure_binding("a2V5").credential;
    let mut bad_connection_string = azure_binding("a2V5");
    bad_connection_string.credential = Some(pb::Credential {
        kind: Some(pb::credential::Kind::AzureConnectionString(
            "AccountName=a".into(),
        )),
    });
    let mut unknown_enum = memory_binding("x");
    unknown_enum.provider = 99;
    for request in [
        unspecified,
        no_credential,
        mismatched,
        bad_connection_string,
        unknown_enum,
    ] {
        let status = bindings.create_binding(request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{}", status.message());
    }
    let status = bindings
        .get_binding(pb::GetBindingRequest { id: "nope".into() })
        .await;
    assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
    let status = bindings
        .list_bindings(pb::ListBindingsRequest {
            page_token: "forged".into(),
            ..Default::default()
        })
        .await;
    assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn listing_pages_through_every_binding_once() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let mut created = Vec::new();
    for i in 0..5 {
        created.push(
            bindings
                .create_binding(memory_binding(&format!("b{i}")))
                .await
                .unwrap()
                .into_inner()
                .id,
        );
    }
    let mut seen = Vec::new();
    let mut page_token = String::new();
    for _ in 0..10 {
        let page = bindings
            .list_bindings(pb::ListBindingsRequest {
                page_size: 2,
                page_token,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(page.bindings.len() <= 2);
        seen.extend(page.bindings.into_iter().map(|b| b.id));
        page_token = page.next_page_token;
        if page_token.is_empty() {
            break;
        }
    }
    assert_eq!(seen, created);
    let pending = bindings
        .list_bindings(pb::ListBindingsRequest {
            state: pb::BindingState::Active.into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(pending.into_inner().bindings.is_empty());
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_repeated_request_id_returns_the_first_result() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let mut request = memory_binding("once");
    request.request_id = "create-once-1".into();
    let first = bindings
        .create_binding(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = bindings
        .create_binding(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, again);
    let listed = bindings
        .list_bindings(pb::ListBindingsRequest::default())
        .await
        .unwrap();
    assert_eq!(listed.into_inner().bindings.len(), 1);
    request.display_name = "something else".into();
    let reused = bindings.create_binding(request).await.unwrap_err();
    assert_eq!(reused.code(), Code::InvalidArgument);
    app.stop().await.unwrap();
}

#[tokio::test]
async fn updating_a_credential_replaces_it_and_returns_the_binding() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let created = bindings
        .create_binding(azure_binding("a2V5"))
        .await
        .unwrap()
        .into_inner();
    let updated = bindings
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id: created.id.clone(),
            credential: Some(pb::Credential {
                kind: Some(pb::credential::Kind::AzureSasToken(
                    "?sv=2022&sig=abc".into(),
                )),
            }),
            request_id: String::new(),
        })
        .await;
    // A SAS token alone does not name the account: the location must.
    assert_eq!(updated.unwrap_err().code(), Code::InvalidArgument);
    let updated = bindings
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id: created.id.clone(),
            credential: azure_binding("bmV3LWtleQ==").credential,
            request_id: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(updated.id, created.id);
    assert_eq!(
        updated.credential_kind(),
        pb::CredentialKind::AzureConnectionString
    );
    let seconds = |t: Option<prost_types::Timestamp>| t.map(|t| (t.seconds, t.nanos)).unwrap();
    assert!(seconds(updated.credential_update_time) > seconds(created.credential_update_time));
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_malformed_connection_string_is_refused_without_quoting_any_part_of_the_key() {
    let (app, _, mut bindings) = migration::acme_admin().await.unwrap();
    let key = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        keyring::random_array::<64>().unwrap(),
    );
    let created = bindings
        .create_binding(azure_binding("a2V5"))
        .await
        .unwrap()
        .into_inner();
    let malformed = [
        format!("DefaultEndpointsProtocol=https;AccountName=acct;{key}"),
        format!("AccountName=acct;AccountKey:{key}"),
        key.clone(),
    ];
    for connection_string in malformed {
        let credential = Some(pb::Credential {
            kind: Some(pb::credential::Kind::AzureConnectionString(
                connection_string,
            )),
        });
        let mut create = azure_binding("a2V5");
        create.credential = credential.clone();
        let refused = [
            bindings.create_binding(create).await.unwrap_err(),
            bindings
                .update_binding_credential(pb::UpdateBindingCredentialRequest {
                    id: created.id.clone(),
                    credential,
                    request_id: String::new(),
                })
                .await
                .unwrap_err(),
        ];
        for status in refused {
            assert_eq!(status.code(), Code::InvalidArgument, "{status:?}");
            let chars: Vec<char> = key.chars().collect();
            for window in chars.windows(8) {
                let window: String = window.iter().collect();
                assert!(
                    !status.message().contains(&window),
                    "{:?} quotes part of the key",
                    status.message()
                );
            }
        }
    }
    app.stop().await.unwrap();
}

/// Collects every log line the services emit while the test runs.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "current_thread")]
async fn sealed_credentials_appear_neither_in_pg_dump_nor_in_logs() {
    let logs = Captured::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);

    let app = spawn_app().await.unwrap();
    let token = app.token("acme", &[Role::OrgAdmin]);
    let marker = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        keyring::random_array::<24>().unwrap(),
    );
    let mut bindings = app.bindings(Some(&token)).await;
    let created = bindings
        .create_binding(azure_binding(&marker))
        .await
        .unwrap()
        .into_inner();
    let replacement = format!("{marker}AAAA");
    bindings
        .update_binding_credential(pb::UpdateBindingCredentialRequest {
            id: created.id,
            credential: azure_binding(&replacement).credential,
            request_id: "rotate-1".into(),
        })
        .await
        .unwrap();

    let dump = tokio::process::Command::new("pg_dump")
        .arg("--data-only")
        .arg(&app.db.url)
        .output()
        .await
        .expect("pg_dump (from postgresql-client) must be installed");
    assert!(
        dump.status.success(),
        "{}",
        String::from_utf8_lossy(&dump.stderr)
    );
    let dump = String::from_utf8_lossy(&dump.stdout);
    assert!(
        dump.contains("migration.bindings"),
        "the dump covers the bindings table"
    );
    assert!(
        !dump.contains(&marker),
        "a credential is readable in pg_dump output"
    );
    app.stop().await.unwrap();

    let logs = String::from_utf8_lossy(&logs.0.lock().unwrap()).into_owned();
    assert!(logs.contains("binding created"), "logs were captured");
    assert!(!logs.contains(&marker), "a credential was logged");
}
