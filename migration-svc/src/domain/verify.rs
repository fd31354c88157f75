//! Integrity sweeps: every live artifact of an organization (or a sample, within a byte
//! budget) is read from the binding it is recorded against, decrypted and checked against
//! its digest, and reported OK, MISSING, CORRUPT or UNVERIFIABLE (a store that could not be
//! read is never counted as OK). Nothing is changed but the evidence: the sweep's audit
//! entry, and a security event when an artifact is missing or corrupt, in one transaction.

use async_stream::try_stream;
use futures::{Stream, TryStreamExt};
use serde_json::json;
use stowage_shared::{
    auth::{Principal, Role},
    blob::BlobKey,
};
use uuid::Uuid;

use super::{
    copy::CopyError,
    evidence,
    model::{artifacts::Artifact, evidence::AuditEntry, runs::ItemCause},
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
/// Artifact ids a security event names, of each kind.
const NAMED: i64 = 100;

/// What to sweep.
#[derive(Clone, Debug)]
pub struct VerifyArtifacts {
    /// Only artifacts on this binding.
    pub binding: Option<Uuid>,
    /// About this percentage of the artifacts, picked by id (1 to 100).
    pub sample_percent: u8,
    /// At most this many stored bytes read.
    pub byte_budget: Option<i64>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Ok,
    Missing,
    Corrupt,
    Unverifiable,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Missing => "missing",
            Verdict::Corrupt => "corrupt",
            Verdict::Unverifiable => "unverifiable",
        }
    }

    /// A failed read of an artifact, judged as a migration judges a failed source read.
    fn of(error: CopyError) -> Self {
        match error.item_cause() {
            Some(ItemCause::SourceNotFound) => Verdict::Missing,
            Some(ItemCause::SourceUnreadable | ItemCause::ChecksumMismatch) => Verdict::Corrupt,
            _ => Verdict::Unverifiable,
        }
    }
}

/// One checked artifact.
#[derive(Clone, Debug, PartialEq)]
pub struct Checked {
    pub artifact_id: Uuid,
    pub binding_id: Uuid,
    pub verdict: Verdict,
    pub detail: String,
}

/// A sweep's totals.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub ok: i64,
    pub missing: i64,
    pub corrupt: i64,
    pub unverifiable: i64,
    pub bytes_read: i64,
    pub budget_exhausted: bool,
}

impl Summary {
    /// Counts an artifact of `stored_bytes` read; returns how many have that verdict now.
    fn add(&mut self, verdict: Verdict, stored_bytes: i64) -> i64 {
        self.bytes_read += stored_bytes;
        let count = match verdict {
            Verdict::Ok => &mut self.ok,
            Verdict::Missing => &mut self.missing,
            Verdict::Corrupt => &mut self.corrupt,
            Verdict::Unverifiable => &mut self.unverifiable,
        };
        *count += 1;
        *count
    }
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
            // The first NAMED missing and the first NAMED corrupt, for the security event.
            let mut failed: Vec<(Verdict, Uuid)> = Vec::new();
            let mut after = None;
            'pages: loop {
                let page = this.page(&caller.organization, command.binding, after).await?;
                let Some(last) = page.last() else { break };
                after = Some(last.id);
                for artifact in page.iter().filter(|a| sampled(a.id, command.sample_percent)) {
                    if command
                        .byte_budget
                        .is_some_and(|budget| summary.bytes_read + artifact.stored_bytes > budget)
                    {
                        summary.budget_exhausted = true;
                        break 'pages;
                    }
                    let checked = this.check(artifact).await;
                    let nth = summary.add(checked.verdict, artifact.stored_bytes);
                    metrics::counter!(VERIFIED, "result" => checked.verdict.as_str()).increment(1);
                    if matches!(checked.verdict, Verdict::Missing | Verdict::Corrupt) && nth <= NAMED {
                        failed.push((checked.verdict, checked.artifact_id));
                    }
                    yield Report::Artifact(checked);
                }
            }
            this.record(&caller, &command, &summary, &failed).await?;
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

    /// Reads `artifact` to its end through the digest check.
    async fn check(&self, artifact: &Artifact) -> Checked {
        let (verdict, detail) = match self.read(artifact).await {
            Ok(()) => (Verdict::Ok, String::new()),
            Err(Failure::Read(error)) => {
                let detail = error.to_string();
                (Verdict::of(error), detail)
            }
            Err(Failure::Store(error)) => (Verdict::Unverifiable, error.to_string()),
        };
        Checked {
            artifact_id: artifact.id,
            binding_id: artifact.binding_id,
            verdict,
            detail,
        }
    }

    async fn read(&self, artifact: &Artifact) -> Result<(), Failure> {
        let (_, store) = self
            .stores
            .open(&artifact.organization_id, artifact.binding_id)
            .await
            .map_err(Failure::Store)?;
        let key = BlobKey::new(artifact.object_key.clone())
            .map_err(|e| Failure::Store(Error::Corrupt(format!("artifact object key: {e}"))))?;
        let read = |error| Failure::Read(CopyError::Source(error));
        let mut content = store
            .get(&key, Some(artifact.expected()))
            .await
            .map_err(read)?;
        while content.try_next().await.map_err(read)?.is_some() {}
        Ok(())
    }

    /// The sweep's audit entry and, if it found artifacts missing or corrupt, its security
    /// event, in one transaction.
    async fn record(
        &self,
        caller: &Principal,
        command: &VerifyArtifacts,
        summary: &Summary,
        failed: &[(Verdict, Uuid)],
    ) -> Result<()> {
        let mut client = self.pool.get().await?;
        let tx = client.transaction().await?;
        let mut entry = AuditEntry::new(caller, "VerifyArtifacts").detail(json!({
            "sample_percent": command.sample_percent,
            "byte_budget": command.byte_budget,
            "ok": summary.ok,
            "missing": summary.missing,
            "corrupt": summary.corrupt,
            "unverifiable": summary.unverifiable,
            "bytes_read": summary.bytes_read,
            "budget_exhausted": summary.budget_exhausted,
        }));
        if let Some(binding) = command.binding {
            entry = entry.binding(binding);
        }
        evidence::audit(&tx, &entry).await?;
        if !failed.is_empty() {
            let named = |wanted| -> Vec<Uuid> {
                failed
                    .iter()
                    .filter(|(verdict, _)| *verdict == wanted)
                    .map(|(_, id)| *id)
                    .collect()
            };
            let detail = json!({
                "missing": summary.missing,
                "corrupt": summary.corrupt,
                "missing_artifacts": named(Verdict::Missing),
                "corrupt_artifacts": named(Verdict::Corrupt),
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

/// Why an artifact could not be read: its object (judged by [`Verdict::of`]), or its
/// store, which could not even be opened (unverifiable).
enum Failure {
    Read(CopyError),
    Store(Error),
}

/// Whether the artifact `id` is in a sample of `percent` of them: a fixed pick by id, so
/// two sweeps of the same sample check the same artifacts.
fn sampled(id: Uuid, percent: u8) -> bool {
    percent >= 100 || (id.as_u128() % 100) < u128::from(percent)
}

#[cfg(test)]
mod tests {
    use stowage_shared::blob::{BlobError, ObjectError};

    use super::*;

    #[test]
    fn a_failed_read_is_missing_corrupt_or_unverifiable_never_ok() {
        let source = |error| Verdict::of(CopyError::Source(error));
        assert_eq!(
            source(ObjectError::Blob(BlobError::NotFound("k".into()))),
            Verdict::Missing
        );
        let mismatch = ObjectError::ChecksumMismatch {
            expected: "a".into(),
            actual: "b".into(),
        };
        assert_eq!(source(mismatch), Verdict::Corrupt);
        let denied = ObjectError::Blob(BlobError::PermissionDenied("k".into()));
        assert_eq!(source(denied), Verdict::Unverifiable);
    }

    #[test]
    fn a_sample_is_a_fixed_share_of_ids() {
        let ids: Vec<Uuid> = (0..1000u128).map(Uuid::from_u128).collect();
        assert!(ids.iter().all(|id| sampled(*id, 100)));
        assert!(!ids.iter().any(|id| sampled(*id, 0)));
        assert_eq!(ids.iter().filter(|id| sampled(**id, 10)).count(), 100);
    }
}
