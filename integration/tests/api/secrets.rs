//! Secrets stay sealed: both services run as real processes logging at debug level through
//! a scenario with every kind of credential a caller hands them (Azure connection strings
//! with an account key, SAS tokens, S3 keys, an Entra client secret, a GCS key file, an
//! archive store set and a SAS offered in place of its key), malformed ones among them. Then every
//! reply, every log line, both `/metrics` pages and every row of both schemas are searched
//! for any piece of any secret (and of the services' own keys): there is none.

use std::{fmt::Debug, path::Path, time::Duration};

use secrecy::ExposeSecret;
use stowage_integration::{
    app::{Bearer, BearerToken, operator_token, test_common},
    azurite::{self, TestContainer},
    db::TestDb,
    migration as m,
    process::{self, Launch, ServiceProcess},
    scans,
};
use stowage_proto::{
    archive::v1::{
        self as apb, archive_admin_service_client::ArchiveAdminServiceClient,
        archive_service_client::ArchiveServiceClient,
    },
    migration::v1::{
        self as pb, artifact_service_client::ArtifactServiceClient,
        binding_service_client::BindingServiceClient,
        evidence_service_client::EvidenceServiceClient,
        migration_service_client::MigrationServiceClient,
    },
};
use stowage_shared::{
    auth::Role,
    blob::azure::{DEV_ACCOUNT, DEV_KEY},
};
use tonic::transport::Channel;

/// A piece this long of a secret anywhere is a leak; shorter ones occur by chance.
const PIECE: usize = 10;

/// Every secret of the scenario, with what it is.
struct Secrets(Vec<(&'static str, String)>);

impl Secrets {
    /// Where in `text` (one place, named `place`) a piece of a secret stands.
    fn leaks(&self, place: &str, text: &str) -> Vec<String> {
        let mut found = Vec::new();
        for (name, secret) in &self.0 {
            let chars: Vec<char> = secret.chars().collect();
            let width = PIECE.min(chars.len());
            for start in 0..=chars.len() - width {
                let piece: String = chars[start..start + width].iter().collect();
                if let Some(at) = text.find(&piece) {
                    let line = text[..at].lines().count();
                    found.push(format!("{place} line {line}: a piece of {name}"));
                    break;
                }
            }
        }
        found
    }
}

/// Everything the services answered, as the caller saw it.
#[derive(Default)]
struct Said(Vec<String>);

impl Said {
    fn reply<T: Debug>(
        &mut self,
        reply: Result<tonic::Response<T>, tonic::Status>,
    ) -> Result<T, tonic::Status> {
        match reply {
            Ok(reply) => {
                let reply = reply.into_inner();
                self.0.push(format!("{reply:?}"));
                Ok(reply)
            }
            Err(status) => {
                self.0.push(format!("{status:?}"));
                Err(status)
            }
        }
    }

    /// A server stream to its end, every message kept.
    async fn stream<T: Debug>(
        &mut self,
        reply: Result<tonic::Response<tonic::Streaming<T>>, tonic::Status>,
    ) -> Result<Vec<T>, tonic::Status> {
        let mut stream = self.reply(reply)?;
        let mut messages = Vec::new();
        loop {
            match stream.message().await {
                Ok(Some(message)) => {
                    self.0.push(format!("{message:?}"));
                    messages.push(message);
                }
                Ok(None) => return Ok(messages),
                Err(status) => {
                    self.0.push(format!("{status:?}"));
                    return Err(status);
                }
            }
        }
    }
}

/// A service process logging at debug level to `log`, its metrics on a port of its own.
struct Logged {
    process: ServiceProcess,
    metrics: u16,
}

impl Logged {
    async fn start(binary: &str, config: &str, port: u16, log: &Path) -> Logged {
        let metrics = process::free_port().unwrap();
        let launch = Launch {
            log: Some(log.to_owned()),
            env: vec![(
                "STOWAGE__METRICS__LISTEN".into(),
                format!("127.0.0.1:{metrics}"),
            )],
        };
        let process = ServiceProcess::start_with(binary, config, port, launch)
            .await
            .unwrap();
        Logged { process, metrics }
    }

    async fn channel(&self) -> Channel {
        self.process.connect().await.unwrap()
    }

    async fn metrics(&self) -> String {
        let url = format!("http://127.0.0.1:{}/metrics", self.metrics);
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }
}

/// The `text` of every row of every table of both schemas.
async fn every_row(db: &tokio_postgres::Client) -> String {
    let tables = db
        .query(
            "select table_schema || '.' || table_name from information_schema.tables
             where table_schema in ('migration', 'archive') and table_type = 'BASE TABLE'",
            &[],
        )
        .await
        .unwrap();
    let mut text = String::new();
    for table in tables {
        let table: String = table.get(0);
        for row in db
            .query(&format!("select t::text from {table} t"), &[])
            .await
            .unwrap()
        {
            text.push_str(&table);
            text.push(' ');
            text.push_str(row.get(0));
            text.push('\n');
        }
    }
    text
}

/// The three malformed forms of an account-key connection string seen pasted: the key as
/// a bare segment, `AccountKey:` for `AccountKey=`, and only the key.
fn malformed_connection_strings(endpoint: &str) -> [String; 3] {
    [
        format!("AccountName={DEV_ACCOUNT};{DEV_KEY};BlobEndpoint={endpoint}"),
        format!("AccountName={DEV_ACCOUNT};AccountKey:{DEV_KEY};BlobEndpoint={endpoint}"),
        DEV_KEY.to_owned(),
    ]
}

/// The request that activates `binding`.
fn activation(binding: &pb::Binding) -> pb::ActivateBindingRequest {
    pb::ActivateBindingRequest {
        id: binding.id.clone(),
        request_id: String::new(),
    }
}

fn binding(
    name: &str,
    container: &str,
    credential: pb::credential::Kind,
) -> pb::CreateBindingRequest {
    pb::CreateBindingRequest {
        display_name: name.into(),
        provider: match credential {
            pb::credential::Kind::S3AccessKey(_) => pb::Provider::S3,
            pb::credential::Kind::GcsServiceAccountJson(_) => pb::Provider::Gcs,
            _ => pb::Provider::Azure,
        }
        .into(),
        location: Some(pb::Location {
            container: container.into(),
            endpoint: match credential {
                pb::credential::Kind::S3AccessKey(_) => "http://127.0.0.1:9".into(),
                pb::credential::Kind::AzureSasToken(_) => azurite::endpoint().unwrap(),
                _ => String::new(),
            },
            account: match credential {
                pb::credential::Kind::AzureSasToken(_) => DEV_ACCOUNT.into(),
                _ => String::new(),
            },
            region: "us-east-1".into(),
            ..Default::default()
        }),
        credential: Some(pb::Credential {
            kind: Some(credential),
        }),
        request_id: String::new(),
    }
}

#[tokio::test]
async fn no_reply_log_metric_or_row_carries_a_piece_of_a_secret() {
    let test_db = TestDb::migrated().await.unwrap();
    let db = test_db.client().await.unwrap();
    let common = test_common(&test_db).unwrap();
    let endpoint = azurite::endpoint().unwrap();
    let sas = azurite::account_sas_token().unwrap();
    let sas_sig = sas.rsplit_once("sig=").unwrap().1.to_owned();
    let s3_secret = format!("s3s3cr3t{}", uuid::Uuid::new_v4().simple());
    let s3_rotated = format!("s3r0tat3d{}", uuid::Uuid::new_v4().simple());
    let entra_secret = format!("entr4{}", uuid::Uuid::new_v4().simple());
    let gcs_key = format!(
        "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC{}",
        uuid::Uuid::new_v4().simple()
    );
    let mut secrets = Vec::from([
        ("the Azure account key", DEV_KEY.to_owned()),
        ("the SAS signature", sas_sig.clone()),
        (
            "the SAS signature, decoded",
            sas_sig
                .replace("%2B", "+")
                .replace("%2F", "/")
                .replace("%3D", "="),
        ),
        ("the S3 secret key", s3_secret.clone()),
        ("the rotated S3 secret key", s3_rotated.clone()),
        ("the Entra client secret", entra_secret.clone()),
        ("the GCS private key", gcs_key.clone()),
    ]);
    let hs256 = common.auth.hs256_secret.as_ref().unwrap();
    secrets.push(("the token signing secret", hs256.expose_secret().to_owned()));
    for kek in common.keys.keks.values() {
        secrets.push(("a key-encryption key", kek.expose_secret().to_owned()));
    }
    let secrets = Secrets(secrets);

    let dir =
        std::env::temp_dir().join(format!("stowage-secrets-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(dir.join("archive")).unwrap();
    let admin = operator_token(&common, "acme", Role::SuperAdmin).unwrap();
    let bearer = BearerToken::new(Some(&admin));
    let debug = "[log]\nfilter = \"debug\"\nformat = \"json\"\n";
    let mut said = Said::default();

    // migration-svc: bindings with every kind of credential, artifacts, a live run.
    let port = process::free_port().unwrap();
    let config = process::config_toml(&common, port, debug).unwrap();
    let migration = Logged::start("migration-svc", &config, port, &dir.join("migration.log")).await;
    let channel = migration.channel().await;
    let mut bindings: BindingServiceClient<Bearer> =
        BindingServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let source = TestContainer::create().await.unwrap();
    let key_binding = m::azure_binding("by key", &source.container, &endpoint, DEV_KEY);
    let created = said
        .reply(bindings.create_binding(key_binding).await)
        .unwrap();
    said.reply(bindings.activate_binding(activation(&created)).await)
        .unwrap();
    let mut artifacts = ArtifactServiceClient::with_interceptor(channel.clone(), bearer.clone());
    for i in 0..3 {
        let content = m::content(i, 2048);
        m::put(
            &mut artifacts,
            m::metadata("reports", &format!("r{i}")),
            &content,
        )
        .await
        .unwrap();
    }
    // A SAS binding: Azurite answers the posture check's blob batch delete with 500 when
    // signed by SAS (Azure itself takes it), so its activation may fail; either way its
    // answer is searched.
    let sas_container = TestContainer::create().await.unwrap();
    let sas_binding = binding(
        "by SAS",
        &sas_container.container,
        pb::credential::Kind::AzureSasToken(sas.clone()),
    );
    let by_sas = said
        .reply(bindings.create_binding(sas_binding).await)
        .unwrap();
    let _ = said.reply(bindings.activate_binding(activation(&by_sas)).await);
    let target = TestContainer::create().await.unwrap();
    let target = m::azure_binding("target", &target.container, &endpoint, DEV_KEY);
    let target = said.reply(bindings.create_binding(target).await).unwrap();
    said.reply(bindings.activate_binding(activation(&target)).await)
        .unwrap();
    let mut runs = MigrationServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let run = said
        .reply(
            runs.start_run(m::start_request(&target.id, pb::MigrationMode::Live))
                .await,
        )
        .unwrap();
    let ended = m::wait_for_end(&mut runs, &run.id, Duration::from_secs(60))
        .await
        .unwrap();
    said.0.push(format!("{ended:?}"));
    assert_eq!(ended.state(), pb::RunState::Completed, "{ended:?}");
    said.reply(
        runs.list_run_items(pb::ListRunItemsRequest {
            run_id: run.id.clone(),
            ..Default::default()
        })
        .await,
    )
    .unwrap();
    said.reply(
        bindings
            .update_binding_credential(pb::UpdateBindingCredentialRequest {
                id: created.id.clone(),
                credential: Some(m::azure_credential(&endpoint, DEV_KEY)),
                ..Default::default()
            })
            .await,
    )
    .unwrap();
    for malformed in malformed_connection_strings(&endpoint) {
        let kind = pb::credential::Kind::AzureConnectionString(malformed.clone());
        let refused = said
            .reply(
                bindings
                    .create_binding(binding("malformed", "c", kind.clone()))
                    .await,
            )
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
        let refused = said
            .reply(
                bindings
                    .update_binding_credential(pb::UpdateBindingCredentialRequest {
                        id: created.id.clone(),
                        credential: Some(pb::Credential { kind: Some(kind) }),
                        ..Default::default()
                    })
                    .await,
            )
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }
    let s3 = |secret: &str| {
        pb::credential::Kind::S3AccessKey(pb::S3AccessKey {
            access_key_id: "AKIASTOWAGETEST".into(),
            secret_access_key: secret.into(),
            session_token: String::new(),
        })
    };
    let s3_binding = said
        .reply(
            bindings
                .create_binding(binding("S3", "bucket", s3(&s3_secret)))
                .await,
        )
        .unwrap();
    // Nothing listens at its endpoint: activation fails, and says so without the key.
    said.reply(bindings.activate_binding(activation(&s3_binding)).await)
        .unwrap_err();
    said.reply(
        bindings
            .update_binding_credential(pb::UpdateBindingCredentialRequest {
                id: s3_binding.id.clone(),
                credential: Some(pb::Credential {
                    kind: Some(s3(&s3_rotated)),
                }),
                ..Default::default()
            })
            .await,
    )
    .unwrap();
    let entra = pb::credential::Kind::AzureEntraId(pb::AzureEntraId {
        tenant_id: "00000000-0000-0000-0000-000000000001".into(),
        client_id: "00000000-0000-0000-0000-000000000002".into(),
        client_secret: entra_secret.clone(),
    });
    let mut entra_binding = binding("Entra", "c", entra);
    entra_binding.location.as_mut().unwrap().account = "stowagetest".into();
    let _ = said.reply(bindings.create_binding(entra_binding).await);
    let gcs_json = format!(
        "{{\"type\": \"service_account\", \"client_email\": \"svc@p.iam.gserviceaccount.com\", \
         \"private_key_id\": \"k1\", \"private_key\": \"-----BEGIN PRIVATE KEY-----\\n{gcs_key}\\n-----END PRIVATE KEY-----\\n\"}}"
    );
    let _ = said.reply(
        bindings
            .create_binding(binding(
                "GCS",
                "bucket",
                pb::credential::Kind::GcsServiceAccountJson(gcs_json),
            ))
            .await,
    );
    said.reply(
        bindings
            .list_bindings(pb::ListBindingsRequest::default())
            .await,
    )
    .unwrap();
    said.reply(
        bindings
            .get_binding(pb::GetBindingRequest {
                id: s3_binding.id.clone(),
            })
            .await,
    )
    .unwrap();
    let mut evidence = EvidenceServiceClient::with_interceptor(channel.clone(), bearer.clone());
    said.reply(
        evidence
            .list_audit_entries(pb::ListEvidenceRequest::default())
            .await,
    )
    .unwrap();
    said.reply(
        evidence
            .list_security_events(pb::ListEvidenceRequest::default())
            .await,
    )
    .unwrap();

    // archive-svc: an Azure archive store set by connection string, a job archived and
    // restored, the store's credential replaced by a SAS, and malformed strings refused.
    let port = process::free_port().unwrap();
    let extra = format!(
        "{debug}[archive]\ndefault_store = {{ connection_string = \"file://{}\" }}\n",
        dir.join("archive").display()
    );
    let config = process::config_toml(&common, port, &extra).unwrap();
    let archive = Logged::start("archive-svc", &config, port, &dir.join("archive.log")).await;
    let channel = archive.channel().await;
    let mut admin_api =
        ArchiveAdminServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let mut jobs = ArchiveServiceClient::with_interceptor(channel.clone(), bearer.clone());
    let store = TestContainer::create().await.unwrap();
    let set = said
        .reply(
            admin_api
                .set_archive_store(apb::SetArchiveStoreRequest {
                    connection_string: store.connection_string(),
                    container: store.container.clone(),
                    reason: "cold store on Azure".into(),
                    request_id: String::new(),
                })
                .await,
        )
        .unwrap();
    let version = set.store.unwrap().version;
    let job = scans::insert_job(&db, "acme", "COMPLETED", 30.0, 40, 30)
        .await
        .unwrap();
    let digest = scans::table_digest(&db, job).await.unwrap();
    said.reply(
        admin_api
            .archive_job(apb::ArchiveJobRequest {
                job_id: job.to_string(),
                reason: "secrets scenario".into(),
                ..Default::default()
            })
            .await,
    )
    .unwrap();
    // Its posture check meets Azurite's refusal of SAS-signed batch deletes, as above.
    let _ = said.reply(
        admin_api
            .update_archive_store_credential(apb::UpdateArchiveStoreCredentialRequest {
                version,
                connection_string: format!("BlobEndpoint={endpoint};SharedAccessSignature={sas}"),
                container: store.container.clone(),
                reason: "key rotated out".into(),
            })
            .await,
    );
    said.stream(
        jobs.restore_job(apb::RestoreJobRequest {
            job_id: job.to_string(),
            trigger: apb::RestoreTrigger::Admin.into(),
        })
        .await,
    )
    .await
    .unwrap();
    assert_eq!(scans::table_digest(&db, job).await.unwrap(), digest);
    for malformed in malformed_connection_strings(&endpoint) {
        let refused = said
            .reply(
                admin_api
                    .set_archive_store(apb::SetArchiveStoreRequest {
                        connection_string: malformed,
                        container: store.container.clone(),
                        reason: "pasted wrong".into(),
                        request_id: String::new(),
                    })
                    .await,
            )
            .unwrap_err();
        assert_eq!(refused.code(), tonic::Code::InvalidArgument, "{refused:?}");
    }
    said.reply(
        admin_api
            .list_archive_stores(apb::ListArchiveStoresRequest {})
            .await,
    )
    .unwrap();
    said.reply(
        jobs.get_job_archive(apb::GetJobArchiveRequest {
            job_id: job.to_string(),
        })
        .await,
    )
    .unwrap();

    // Where a secret could surface: replies, logs, metrics, rows.
    let mut places = vec![("the replies".to_owned(), said.0.join("\n"))];
    places.push(("migration-svc /metrics".into(), migration.metrics().await));
    places.push(("archive-svc /metrics".into(), archive.metrics().await));
    migration.process.kill().await.unwrap();
    archive.process.kill().await.unwrap();
    for log in ["migration.log", "archive.log"] {
        let text = std::fs::read_to_string(dir.join(log)).unwrap();
        assert!(
            text.lines().filter(|l| l.contains("\"DEBUG\"")).count() > 10,
            "{log} holds debug lines"
        );
        places.push((log.to_owned(), text));
    }
    places.push(("the database".into(), every_row(&db).await));
    let leaks: Vec<String> = places
        .iter()
        .flat_map(|(place, text)| secrets.leaks(place, text))
        .collect();
    let searched: usize = places.iter().map(|(_, text)| text.len()).sum();
    eprintln!(
        "searched {searched} bytes in {} places for {} secrets: {} hits",
        places.len(),
        secrets.0.len(),
        leaks.len()
    );
    assert!(leaks.is_empty(), "secrets leaked: {leaks:#?}");
    let _ = std::fs::remove_dir_all(&dir);
}
