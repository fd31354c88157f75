//! Integrity sweeps: every live artifact of an organization (or a sample, within a byte
//! budget) is read from the binding it is recorded against, decrypted and checked against
//! its digest, and reported OK, MISSING, CORRUPT or UNVERIFIABLE (a store that could not be
//! read is never counted as OK). Nothing is changed but the evidence: the sweep's audit
//! entry, and a security event when an artifact is missing or corrupt, in one transaction.
//! Sweeps of every organization also run on an optional schedule
//! (`[migration] verify_schedule`).

use std::collections::HashMap;

use async_stream::try_stream;
use croner::Cron;
use futures::{Stream, TryStreamExt};
use serde_json::json;
use stowage_shared::{
    auth::{Principal, Role},
    blob::{BlobKey, EncryptedStore, ObjectError},
    schedule::{exclusively, on_schedule},
    shutdown::Drain,
    sweep::{Named, Sampling, Summary, Verdict},
};
use uuid::Uuid;

use super::{
    evidence,
    model::{artifacts::Artifact, evidence::AuditEntry},
    stores::Stores,
};
use crate::{
    db::{self, artifacts::ArtifactFilter},
    error::{Error, Result},
    metrics::VERIFIED,
};

/// The security event of a sweep that found artifacts missing or corrupt.
pub const INTEGRITY_CHECK_FAILED: &str = "storageIntegrityCheckFailed";
/// Artifacts read per page of the sweep.
const PAGE: i64 = 500;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct VerifyArtifacts {
    /// Only artifacts on this binding.
    pub binding: Option<Uuid>,
    pub sampling: Sampling,
}

/// One checked artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub artifact_id: Uuid,
    pub binding_id: Uuid,
    pub verdict: Verdict,
    pub detail: String,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Report {
    Artifact(Checked),
    /// The last report.
    Summary(Summary),
}

#[derive(Clone, Debug)]
pub struct Verifier {
    pool: deadpool_postgres::Pool,
    stores: Stores,
}

impl Verifier {
    pub fn new(pool: deadpool_postgres::Pool, stores: Stores) -> Self {
        Self { pool, stores }
    }

    /// Sweeps the caller's organization; the reports as each artifact is checked.
    pub fn verify(
        &self,
        caller: &Principal,
        command: VerifyArtifacts,
    ) -> Result<impl Stream<Item = Result<Report>> + Send + 'static> {
        caller.require(Role::OrgAdmin)?;
        let (this, caller) = (self.clone(), caller.clone());
        Ok(try_stream! {
            let mut summary = Summary::default();
            let mut named = Named::default();
            let mut opened = Opened::default();
            let mut after = None;
            'pages: loop {
                let page = this.page(&caller.organization, command.binding, after).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for artifact in page.iter().filter(|a| command.sampling.picks(a.id)) {
                    if !command.sampling.affords(&summary, artifact.stored_bytes) {
                        summary.budget_exhausted = true;
                        break 'pages;
                    }
                    let checked = this.check(artifact, &mut opened).await;
                    summary.add(checked.verdict, artifact.stored_bytes);
                    metrics::counter!(VERIFIED, "result" => checked.verdict.as_str()).increment(1);
                    named.note(checked.verdict, checked.artifact_id);
                    yield Report::Artifact(checked);
                }
            }
            this.record(&caller, &command, &summary, &named).await?;
            yield Report::Summary(summary);
        })
    }

    async fn page(
        &self,
        org: &str,
        binding: Option<Uuid>,
        after: Option<Uuid>,
    ) -> Result<Vec<Artifact>> {
        let client = self.pool.get().await?;
        let filter = ArtifactFilter {
            binding,
            purpose: None,
            show_deleted: false,
        };
        db::artifacts::list(&client, org, &filter, after, PAGE).await
    }

    /// Reads `artifact` to its end through the digest check; `opened` keeps the stores
    /// of the bindings read so far, so each is opened once per sweep.
    pub async fn check(&self, artifact: &Artifact, opened: &mut Opened) -> Checked {
        let (verdict, detail) = match self.read(artifact, opened).await {
            Ok(()) => (Verdict::Ok, String::new()),
            Err(Failure::Read(error)) => (Verdict::of(&error), error.to_string()),
            Err(Failure::Store(error)) => (Verdict::Unverifiable, error.to_string()),
        };
        Checked {
            artifact_id: artifact.id,
            binding_id: artifact.binding_id,
            verdict,
            detail,
        }
    }

    async fn read(&self, artifact: &Artifact, opened: &mut Opened) -> Result<(), Failure> {
        let store = match opened.get(&artifact.binding_id) {
            Some(store) => store.clone(),
            None => {
                let (_, store) = (self.stores)
                    .open(&artifact.organization_id, artifact.binding_id)
                    .await
                    .map_err(Failure::Store)?;
                opened.insert(artifact.binding_id, store.clone());
                store
            }
        };
        let key = BlobKey::new(artifact.object_key.clone())
            .map_err(|e| Failure::Store(Error::Corrupt(format!("artifact object key: {e}"))))?;
        let mut content = store
            .get(&key, Some(artifact.expected()))
            .await
            .map_err(Failure::Read)?;
        while content.try_next().await.map_err(Failure::Read)?.is_some() {}
        Ok(())
    }

    /// The sweep's audit entry and, if it found artifacts missing or corrupt, its security
    /// event, in one transaction.
    async fn record(
        &self,
        caller: &Principal,
        command: &VerifyArtifacts,
        summary: &Summary,
        named: &Named,
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut entry =
            AuditEntry::new(caller, "VerifyArtifacts").detail(summary.detail(&command.sampling));
        if let Some(binding) = command.binding {
            entry = entry.binding(binding);
        }
        evidence::audit(&tx, &entry).await?;
        if !named.is_empty() {
            let detail = json!({
                "missing": summary.missing,
                "corrupt": summary.corrupt,
                "missing_artifacts": named.missing,
                "corrupt_artifacts": named.corrupt,
            });
            tracing::error!(
                missing = summary.missing,
                corrupt = summary.corrupt,
                "an integrity sweep found artifacts missing or corrupt"
            );
            db::evidence::record_security_event(
                &tx,
                &caller.organization,
                INTEGRITY_CHECK_FAILED,
                None,
                command.binding,
                &detail,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// Advisory lock of a scheduled sweep: one replica sweeps at a time.
const SWEEP_LOCK: &str = "stowage.migration.integrity-sweep";

/// Sweeps every organization on a schedule (`[migration] verify_schedule`), as the
/// schedule's actor: one replica at each occurrence, the others skip it. Each
/// organization's sweep is audited in its own evidence, as a caller's is.
#[derive(Clone, Debug)]
pub struct SweepSchedule {
    verifier: Verifier,
    cron: Cron,
    sampling: Sampling,
}

impl SweepSchedule {
    pub fn new(verifier: Verifier, cron: Cron, sampling: Sampling) -> Self {
        Self {
            verifier,
            cron,
            sampling,
        }
    }

    pub async fn run(self, drain: Drain) {
        on_schedule(&self.cron, "integrity sweep", &drain, || self.sweep_now()).await;
    }

    /// One scheduled sweep of every organization now, unless another replica is running
    /// one: how many organizations were swept.
    pub async fn sweep_now(&self) -> Result<Option<usize>> {
        let pool = &self.verifier.pool;
        exclusively(pool, SWEEP_LOCK, || async {
            let organizations = db::organizations::all(&pool.get().await?).await?;
            for organization in &organizations {
                let schedule = Principal {
                    subject: "scheduler".into(),
                    organization: organization.clone(),
                    roles: [Role::OrgAdmin].into(),
                };
                let command = VerifyArtifacts {
                    binding: None,
                    sampling: self.sampling,
                };
                let reports = self.verifier.verify(&schedule, command)?;
                futures::pin_mut!(reports);
                while reports.try_next().await?.is_some() {}
            }
            Ok(organizations.len())
        })
        .await
    }
}

/// The stores a sweep has opened, by binding.
pub type Opened = HashMap<Uuid, EncryptedStore>;

/// Why an artifact could not be read: its object (judged by [`Verdict::of`]), or its
/// store, which could not even be opened (unverifiable).
enum Failure {
    Read(ObjectError),
    Store(Error),
}
