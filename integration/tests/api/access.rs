//! The access matrix: every RPC of both services × every kind of caller, each answered
//! with exactly the code `integration/src/access.rs` (and so `docs/access.md`) states;
//! another organization gets no data of ours and changes nothing of ours.

use std::{collections::BTreeSet, net::SocketAddr, path::Path, time::Duration};
use stowage_shared::error::code_name;

use prost::Message;
use stowage_integration::{
    TestApp,
    access::{self, Access, Caller, OURS, TABLE, THEIRS},
    app::archive_store_name,
    migration::{self as m, memory_binding},
    raw::{Call, Shape},
    scans, spawn_app_configured,
};
use stowage_proto::{archive::v1 as apb, migration::v1 as pb};
use stowage_shared::auth::Role;
use tonic::{Code, transport::Channel};
use uuid::Uuid;

/// Resources of ours that one caller's calls use, so that what one caller changes (an
/// activation, a delete, a cancel) never decides what the next one gets.
pub(crate) struct Slot {
    pub(crate) binding: String,
    artifact: String,
    run: String,
    failed_run: String,
    /// An ended live run, for CleanupRun.
    ended_live_run: String,
    job: Uuid,
    doomed_job: Uuid,
}

pub(crate) struct Fixture {
    pub(crate) app: TestApp,
    active: String,
    pub(crate) slots: Vec<Slot>,
    /// Every id of ours, none of which may appear in a reply to the other organization.
    ours: Vec<String>,
    migration: Channel,
    archive: Channel,
}

impl Fixture {
    /// Our organization with an active binding and, per caller, a pending binding, an
    /// artifact, a queued run, a failed run and two terminal hot jobs; the other
    /// organization with an active binding of its own. No runner runs, so nothing changes
    /// unless a call changes it.
    pub(crate) async fn new() -> Self {
        let app = spawn_app_configured(|c| c.migration.migration.enabled = false)
            .await
            .unwrap();
        let admin = app.token(OURS, &[Role::OrgAdmin]);
        let theirs = app.token(THEIRS, &[Role::OrgAdmin]);
        let mut bindings = app.bindings(Some(&admin)).await;
        let active = m::create_active(&mut bindings, memory_binding("acme-active"))
            .await
            .unwrap()
            .id;
        m::create_active(
            &mut app.bindings(Some(&theirs)).await,
            memory_binding("globex-active"),
        )
        .await
        .unwrap();
        let retired = m::create(&mut bindings, memory_binding("acme-retired"))
            .await
            .unwrap()
            .id;
        let mut artifacts = app.artifacts(Some(&admin)).await;
        let mut runs = app.runs(Some(&admin)).await;
        let db = app.db.client().await.unwrap();

        // Runs that fail at planning (their target is not active), for RetryRun: a
        // runner replica runs only until they have failed.
        let mut failed = Vec::new();
        for _ in Caller::ALL {
            let run = runs
                .start_run(m::start_request(&retired, pb::MigrationMode::DryRun))
                .await
                .unwrap()
                .into_inner();
            failed.push(run.id);
        }
        let replica = app
            .replica(stowage_integration::app::test_runner())
            .await
            .unwrap();
        for id in &failed {
            let run = m::wait_for_end(&mut runs, id, Duration::from_secs(30))
                .await
                .unwrap();
            assert_eq!(run.state(), pb::RunState::Failed, "{run:?}");
        }
        // Live runs that fail the same way, one after the other (one open live run at a
        // time), for CleanupRun.
        let mut ended_live = Vec::new();
        for _ in Caller::ALL {
            let run = runs
                .start_run(m::start_request(&retired, pb::MigrationMode::Live))
                .await
                .unwrap()
                .into_inner();
            m::wait_for_end(&mut runs, &run.id, Duration::from_secs(30))
                .await
                .unwrap();
            ended_live.push(run.id);
        }
        replica.kill().await;

        let mut slots = Vec::new();
        for (i, (failed_run, ended_live_run)) in failed.into_iter().zip(ended_live).enumerate() {
            let binding = m::create(&mut bindings, memory_binding(&format!("acme-{i}")))
                .await
                .unwrap()
                .id;
            let artifact = m::put(
                &mut artifacts,
                m::metadata("document", &format!("acme-{i}.bin")),
                &m::content(i, 4096),
            )
            .await
            .unwrap()
            .id;
            let run = runs
                .start_run(m::start_request(&active, pb::MigrationMode::DryRun))
                .await
                .unwrap()
                .into_inner()
                .id;
            let job = scans::insert_job(&db, OURS, "COMPLETED", 0.5, 3, 3)
                .await
                .unwrap();
            let doomed_job = scans::insert_job(&db, OURS, "FAILED", 0.5, 3, 3)
                .await
                .unwrap();
            slots.push(Slot {
                binding,
                artifact,
                run,
                failed_run,
                ended_live_run,
                job,
                doomed_job,
            });
        }
        let mut ours = vec![OURS.to_owned(), active.clone(), retired];
        for slot in &slots {
            ours.extend([
                slot.binding.clone(),
                slot.artifact.clone(),
                slot.run.clone(),
                slot.failed_run.clone(),
                slot.ended_live_run.clone(),
                slot.job.to_string(),
                slot.doomed_job.to_string(),
            ]);
        }
        let migration = app.channel(app.migration_addr).await;
        let archive = app.channel(app.archive_addr).await;
        Self {
            app,
            active,
            slots,
            ours,
            migration,
            archive,
        }
    }

    /// The servers a row is called on: its service's, or both for health and reflection.
    pub(crate) fn channels(&self, access: &Access) -> Vec<(SocketAddr, Channel)> {
        let (migration, archive) = (
            (self.app.migration_addr, self.migration.clone()),
            (self.app.archive_addr, self.archive.clone()),
        );
        if access.service().starts_with("stowage.migration.") {
            vec![migration]
        } else if access.service().starts_with("stowage.archive.") {
            vec![archive]
        } else {
            vec![migration, archive]
        }
    }

    /// A valid request of `access`'s RPC as caller `slot` sends it: its shape and messages.
    pub(crate) fn request(&self, access: &Access, slot: usize) -> (Shape, Vec<Vec<u8>>) {
        let s = &self.slots[slot];
        let request_id = Uuid::new_v4().to_string();
        let reason = "access matrix".to_owned();
        let one = |message: Vec<u8>| (Shape::Unary, vec![message]);
        let stream = |message: Vec<u8>| (Shape::ServerStreaming, vec![message]);
        match access.method() {
            "CreateBinding" => one(pb::CreateBindingRequest {
                request_id,
                ..memory_binding(&format!("made-{slot}"))
            }
            .encode_to_vec()),
            "GetBinding" => one(pb::GetBindingRequest {
                id: s.binding.clone(),
            }
            .encode_to_vec()),
            "ListBindings" => one(pb::ListBindingsRequest::default().encode_to_vec()),
            "UpdateBindingCredential" => one(pb::UpdateBindingCredentialRequest {
                id: s.binding.clone(),
                credential: Some(pb::Credential {
                    kind: Some(pb::credential::Kind::None(pb::NoCredential {})),
                }),
                request_id,
            }
            .encode_to_vec()),
            "ActivateBinding" => one(pb::ActivateBindingRequest {
                id: s.binding.clone(),
                request_id,
            }
            .encode_to_vec()),
            "PutArtifact" => (Shape::ClientStreaming, put_messages(slot)),
            "StatArtifact" => one(pb::StatArtifactRequest {
                id: s.artifact.clone(),
            }
            .encode_to_vec()),
            "GetArtifact" => stream(
                pb::GetArtifactRequest {
                    id: s.artifact.clone(),
                }
                .encode_to_vec(),
            ),
            "ListArtifacts" => one(pb::ListArtifactsRequest {
                show_deleted: true,
                ..Default::default()
            }
            .encode_to_vec()),
            "DeleteArtifact" => one(pb::DeleteArtifactRequest {
                id: s.artifact.clone(),
            }
            .encode_to_vec()),
            "VerifyArtifacts" => stream(pb::VerifyArtifactsRequest::default().encode_to_vec()),
            "StartRun" => one(pb::StartRunRequest {
                request_id,
                ..m::start_request(&self.active, pb::MigrationMode::DryRun)
            }
            .encode_to_vec()),
            "GetRun" => one(pb::GetRunRequest { id: s.run.clone() }.encode_to_vec()),
            "ListRuns" => one(pb::ListRunsRequest::default().encode_to_vec()),
            "ListRunItems" => one(pb::ListRunItemsRequest {
                run_id: s.run.clone(),
                ..Default::default()
            }
            .encode_to_vec()),
            "WatchRun" => stream(
                pb::WatchRunRequest {
                    id: s.run.clone(),
                    resume_after: 0,
                }
                .encode_to_vec(),
            ),
            "RetryRun" => one(pb::RetryRunRequest {
                id: s.failed_run.clone(),
                reason,
                request_id,
            }
            .encode_to_vec()),
            "CancelRun" => one(pb::CancelRunRequest {
                id: s.run.clone(),
                reason,
            }
            .encode_to_vec()),
            "CleanupRun" => stream(
                pb::CleanupRunRequest {
                    run_id: s.ended_live_run.clone(),
                    mode: pb::MigrationMode::DryRun.into(),
                    reason,
                    limit: 0,
                }
                .encode_to_vec(),
            ),
            "ListAuditEntries" | "ListDomainEvents" | "ListSecurityEvents" => {
                one(pb::ListEvidenceRequest {
                    run_id: s.run.clone(),
                    ..Default::default()
                }
                .encode_to_vec())
            }
            "GetArchivePolicy" => one(apb::GetArchivePolicyRequest {}.encode_to_vec()),
            "GetJobArchive" => one(apb::GetJobArchiveRequest {
                job_id: s.job.to_string(),
            }
            .encode_to_vec()),
            "ListJobArchives" => one(apb::ListJobArchivesRequest::default().encode_to_vec()),
            "TouchJob" => one(apb::TouchJobRequest {
                job_id: s.job.to_string(),
            }
            .encode_to_vec()),
            "RestoreJob" => stream(
                apb::RestoreJobRequest {
                    job_id: s.job.to_string(),
                    trigger: apb::RestoreTrigger::User.into(),
                }
                .encode_to_vec(),
            ),
            "DeleteJob" => one(apb::DeleteJobRequest {
                job_id: s.doomed_job.to_string(),
                reason,
                request_id,
            }
            .encode_to_vec()),
            "ArchiveJob" => one(apb::ArchiveJobRequest {
                job_id: s.job.to_string(),
                reason,
                compression: apb::Compression::Unspecified.into(),
                request_id,
            }
            .encode_to_vec()),
            "ArchiveEligibleJobs" => {
                stream(apb::ArchiveEligibleJobsRequest { limit: 1, reason }.encode_to_vec())
            }
            "SetArchiveStore" => one(apb::SetArchiveStoreRequest {
                connection_string: format!("memory://access-{slot}-{}", Uuid::new_v4()),
                container: "archives".into(),
                reason,
                request_id,
            }
            .encode_to_vec()),
            "UpdateArchiveStoreCredential" => one(apb::UpdateArchiveStoreCredentialRequest {
                version: 1,
                connection_string: format!("memory://{}", archive_store_name(&self.app.db)),
                container: "archives".into(),
                reason,
            }
            .encode_to_vec()),
            "ListArchiveStores" => one(apb::ListArchiveStoresRequest {}.encode_to_vec()),
            "MigrateArchives" => stream(
                apb::MigrateArchivesRequest {
                    mode: apb::MoveMode::DryRun.into(),
                    reason,
                    limit: 0,
                }
                .encode_to_vec(),
            ),
            "DestroyOrganizationKeys" => one(pb::DestroyOrganizationKeysRequest {
                organization_id: "access-matrix".into(),
                confirm_organization_id: "access-matrix".into(),
                reason,
            }
            .encode_to_vec()),
            "DestroyTenantKeys" => one(apb::DestroyTenantKeysRequest {
                tenant_id: "access-matrix".into(),
                confirm_tenant_id: "access-matrix".into(),
                reason,
            }
            .encode_to_vec()),
            "VerifyArchives" => stream(
                apb::VerifyArchivesRequest {
                    reason,
                    ..Default::default()
                }
                .encode_to_vec(),
            ),
            // grpc.health.v1.HealthCheckRequest {service: ""} encodes to nothing.
            "Check" => one(Vec::new()),
            "Watch" => stream(Vec::new()),
            // ServerReflectionRequest {list_services: "*"}
            "ServerReflectionInfo" => (Shape::Bidi, vec![vec![0x3a, 0x01, b'*']]),
            other => panic!("no request for {other}: add it to the access matrix"),
        }
    }

    /// Everything of ours a call could change, as one comparable text.
    async fn state_of_ours(&self) -> String {
        let admin = self.app.token(OURS, &[Role::SuperAdmin]);
        let mut out = String::new();
        let bindings = self
            .app
            .bindings(Some(&admin))
            .await
            .list_bindings(pb::ListBindingsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out += &format!("{bindings:?}\n");
        let artifacts = self
            .app
            .artifacts(Some(&admin))
            .await
            .list_artifacts(pb::ListArtifactsRequest {
                page_size: 500,
                show_deleted: true,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out += &format!("{artifacts:?}\n");
        let mut runs = self.app.runs(Some(&admin)).await;
        let listed = runs
            .list_runs(pb::ListRunsRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out += &format!("{listed:?}\n");
        for run in &listed.runs {
            let items = m::items(&mut runs, &run.id, pb::ItemState::Unspecified)
                .await
                .unwrap();
            out += &format!("{items:?}\n");
        }
        let mut evidence = self.app.evidence(Some(&admin)).await;
        let query = pb::ListEvidenceRequest {
            page_size: 500,
            organization_id: OURS.into(),
            ..Default::default()
        };
        let audit = evidence.list_audit_entries(query.clone()).await.unwrap();
        let domain = evidence.list_domain_events(query.clone()).await.unwrap();
        let security = evidence.list_security_events(query).await.unwrap();
        out += &format!(
            "{:?}\n{:?}\n{:?}\n",
            audit.into_inner(),
            domain.into_inner(),
            security.into_inner()
        );
        let jobs = self
            .app
            .archive(Some(&admin))
            .await
            .list_job_archives(apb::ListJobArchivesRequest {
                page_size: 500,
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        out += &format!("{jobs:?}\n");
        let stores = self
            .app
            .archive_admin(Some(&admin))
            .await
            .list_archive_stores(apb::ListArchiveStoresRequest {})
            .await
            .unwrap()
            .into_inner();
        out += &format!("{stores:?}\n");
        let db = self.app.db.client().await.unwrap();
        for slot in &self.slots {
            for job in [slot.job, slot.doomed_job] {
                out += &format!("{job} {:?}\n", scans::table_digest(&db, job).await.unwrap());
            }
        }
        out
    }
}

/// An upload: metadata, then one chunk.
fn put_messages(slot: usize) -> Vec<Vec<u8>> {
    use pb::put_artifact_request::Part;
    vec![
        pb::PutArtifactRequest {
            part: Some(Part::Metadata(m::metadata(
                "document",
                &format!("put-{slot}.bin"),
            ))),
        }
        .encode_to_vec(),
        pb::PutArtifactRequest {
            part: Some(Part::Chunk(m::content(100 + slot, 1024).into())),
        }
        .encode_to_vec(),
    ]
}

#[tokio::test]
async fn every_rpc_answers_every_kind_of_caller_with_the_documented_code() {
    let fixture = Fixture::new().await;
    let before = fixture.state_of_ours().await;
    let mut wrong = Vec::new();
    let mut calls = 0;
    let mut seen = std::collections::BTreeMap::<&str, usize>::new();
    for (slot, caller) in Caller::ALL.into_iter().enumerate() {
        if caller == Caller::Member {
            // Every caller so far was a stranger: nothing of ours may have changed.
            let after = fixture.state_of_ours().await;
            assert!(
                before == after,
                "callers without a valid token of ours changed our state:\nbefore: \
                 {before}\nafter: {after}"
            );
        }
        let token = access::token(&fixture.app, caller);
        for row in TABLE {
            for (addr, channel) in fixture.channels(row) {
                let (shape, messages) = fixture.request(row, slot);
                let reply = Call {
                    path: row.path,
                    shape,
                    messages,
                    token: token.as_deref(),
                    deadline: Duration::from_secs(10),
                    max_messages: 1,
                }
                .send(channel)
                .await;
                calls += 1;
                *seen.entry(code_name(reply.code)).or_default() += 1;
                let expected = row.expected(caller);
                if reply.code != expected {
                    wrong.push(format!(
                        "{} as {} on {addr}: {} ({}), expected {}",
                        row.path,
                        caller.title(),
                        code_name(reply.code),
                        reply.message,
                        code_name(expected),
                    ));
                }
                if caller == Caller::OtherOrganization {
                    for id in fixture.ours.iter().filter(|id| reply.contains(id)) {
                        wrong.push(format!(
                            "{} as the other organization answered with our {id}",
                            row.path
                        ));
                    }
                    assert!(
                        !reply.message.contains(OURS),
                        "{}: {}",
                        row.path,
                        reply.message
                    );
                }
            }
        }
    }
    eprintln!("access matrix: {calls} calls, codes {seen:?}");
    assert!(
        wrong.is_empty(),
        "{} of {calls} calls answered otherwise:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
    fixture.app.stop().await.unwrap();
}

#[test]
fn the_access_table_names_every_rpc_of_both_services_with_its_shape() {
    let pool = prost_reflect::DescriptorPool::decode(stowage_proto::FILE_DESCRIPTOR_SET).unwrap();
    let described: BTreeSet<String> = pool
        .services()
        .flat_map(|service| {
            service
                .methods()
                .map(|method| format!("/{}/{}", service.full_name(), method.name()))
                .collect::<Vec<_>>()
        })
        .collect();
    let tabled: BTreeSet<String> = TABLE
        .iter()
        .filter(|row| row.service().starts_with("stowage."))
        .map(|row| row.path.to_owned())
        .collect();
    assert_eq!(described, tabled);
    assert_eq!(
        TABLE.len(),
        described.len() + 4,
        "health and reflection rows"
    );
}

#[test]
fn the_access_reference_in_docs_is_what_the_matrix_asserts() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/access.md");
    let rendered = access::render();
    if std::env::var_os("STOWAGE_BLESS_ACCESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/access.md is not what integration/src/access.rs renders; regenerate it with \
         STOWAGE_BLESS_ACCESS=1 and review the difference"
    );
}

#[tokio::test]
async fn a_request_id_of_ours_gives_the_other_organization_nothing_of_ours() {
    let app = spawn_app_configured(|_| {}).await.unwrap();
    let ours = app.token(OURS, &[Role::OrgAdmin]);
    let theirs = app.token(THEIRS, &[Role::OrgAdmin]);
    let request = pb::CreateBindingRequest {
        request_id: "shared-id".into(),
        ..memory_binding("ours")
    };
    let mine = app
        .bindings(Some(&ours))
        .await
        .create_binding(request.clone())
        .await
        .unwrap()
        .into_inner();
    let replay = app
        .bindings(Some(&theirs))
        .await
        .create_binding(request)
        .await;
    match replay {
        Ok(binding) => {
            let binding = binding.into_inner();
            assert_ne!(binding.id, mine.id);
            assert_eq!(binding.organization_id, THEIRS);
        }
        Err(status) => assert_ne!(status.code(), Code::Internal, "{status:?}"),
    }
    app.stop().await.unwrap();
}

#[tokio::test]
async fn a_caller_without_the_role_is_denied_whatever_the_request_holds() {
    let app = spawn_app_configured(|c| c.migration.migration.enabled = false)
        .await
        .unwrap();
    let member = app.token(OURS, &[Role::Member]);
    let mut wrong = Vec::new();
    for row in TABLE.iter().filter(|row| row.needs > Some(Role::Member)) {
        let addr = if row.service().starts_with("stowage.migration.") {
            app.migration_addr
        } else {
            app.archive_addr
        };
        let pool =
            prost_reflect::DescriptorPool::decode(stowage_proto::FILE_DESCRIPTOR_SET).unwrap();
        let method = pool
            .get_service_by_name(row.service())
            .and_then(|s| s.methods().find(|m| m.name() == row.method()))
            .unwrap();
        let reply = Call {
            path: row.path,
            shape: Shape::of(method.is_client_streaming(), method.is_server_streaming()),
            messages: vec![Vec::new()],
            token: Some(&member),
            deadline: Duration::from_secs(10),
            max_messages: 1,
        }
        .send(app.channel(addr).await)
        .await;
        if reply.code != Code::PermissionDenied {
            wrong.push(format!(
                "{}: {} ({})",
                row.path,
                code_name(reply.code),
                reply.message
            ));
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
    app.stop().await.unwrap();
}
