//! Planning: a queued run is claimed under a lease, its target checked, and the
//! organization's live artifacts in its scope and not on the target walked in keyset
//! pages, each page one transaction that records its items (live) or its plan (dry run);
//! a dry run's plan then gets its digest.

use std::{collections::BTreeMap, fmt::Write};

use futures::TryStreamExt;
use stowage_shared::digest::RecordDigest;
use uuid::Uuid;

use super::{Runner, ensure_target_active};
use crate::{
    db,
    domain::{
        model::runs::{Mode, Run, SourceReport},
        runs::lifecycle::Ending,
    },
    error::{Error, Result},
};

/// Artifacts and bytes planned so far, by source binding.
type Sources = BTreeMap<Uuid, (i64, i64)>;

impl Runner {
    /// Plans the next queued run, if any; returns whether there was one.
    pub(super) async fn plan_next(&self) -> Result<bool> {
        let claimed = {
            let client = self.pool.get().await?;
            db::runs::claim_for_planning(&client, &self.owner, self.config.lease_ttl).await?
        };
        let Some(run) = claimed else {
            return Ok(false);
        };
        if run.cancel_requested {
            self.end(&run, Ending::Cancelled).await?;
            return Ok(true);
        }
        let inactive = {
            let client = self.pool.get().await?;
            ensure_target_active(&client, &run).await?
        };
        if let Some(failure) = inactive {
            tracing::warn!(run = %run.id, detail = %failure.detail, "run failed at planning");
            self.fail(&run, failure).await?;
            return Ok(true);
        }
        if !self.plan(&run).await? {
            return Ok(true);
        }
        match run.mode {
            Mode::DryRun => {
                let digest = self.plan_digest(&run).await?;
                let client = self.pool.get().await?;
                db::plans::set_digest(&client, run.id, &digest).await?;
                self.end(&run, Ending::Completed).await?;
            }
            Mode::Live => {
                let client = self.pool.get().await?;
                db::runs::start_running(&client, run.id, &self.owner).await?;
            }
        }
        tracing::info!(run = %run.id, "run planned");
        Ok(true)
    }

    /// Pages through the candidates, continuing where an earlier planner stopped. Returns
    /// false if the lease was lost to another replica.
    async fn plan(&self, run: &Run) -> Result<bool> {
        let mut sources: Sources = run
            .sources
            .iter()
            .map(|s| (s.binding_id, (s.artifacts, s.bytes)))
            .collect();
        let live = run.mode == Mode::Live;
        let mut client = self.pool.get().await?;
        let mut cursor = db::runs::plan_cursor(&client, run.id).await?;
        loop {
            let tx = client.transaction().await?;
            let page =
                db::items::plan_page(&tx, run, cursor, self.config.plan_page.max(1), live).await?;
            let Some(last) = page.last else {
                return Ok(true);
            };
            let (items, bytes) = add_page(&mut sources, &page.sources);
            let queued = if live { items } else { 0 };
            let saved = db::runs::save_plan_page(
                &tx,
                run.id,
                &self.owner,
                self.config.lease_ttl,
                last,
                &report(&sources),
                queued,
                bytes,
            )
            .await?;
            let Some(cancel_requested) = saved else {
                tracing::warn!(run = %run.id, "lost the planning lease to another replica");
                return Ok(false);
            };
            tx.commit().await?;
            if cancel_requested {
                self.end(run, Ending::Cancelled).await?;
                return Ok(false);
            }
            cursor = Some(last);
        }
    }
}

impl Runner {
    /// The digest of a dry run's plan (see [`plan_digest`]), read back in id order.
    async fn plan_digest(&self, run: &Run) -> Result<String> {
        let client = self.pool.get().await?;
        let rows = db::plans::rows(&client, run.id).await?;
        let mut rows = std::pin::pin!(rows);
        let mut digest = plan_digest(run)?;
        // One line per planned artifact, written into the same buffer each time.
        let mut line = String::new();
        while let Some((artifact, binding, size, sha256)) = rows.try_next().await? {
            line.clear();
            let _ = writeln!(line, "{artifact} {binding} {size} {sha256}");
            digest.add(line.as_bytes());
        }
        Ok(digest.finish_hex())
    }
}

/// A plan's digest before its rows: what is planned for where (target and scope), so two
/// plans of the same artifacts for different targets or scopes differ.
fn plan_digest(run: &Run) -> Result<RecordDigest> {
    let mut digest = RecordDigest::default();
    // an error, never an empty scope: plans of different scopes would share a digest
    let scope = serde_json::to_string(&run.scope)
        .map_err(|e| Error::Internal(format!("run {} scope: {e}", run.id)))?;
    digest.add(
        format!(
            "stowage plan v1\ntarget {}\nscope {scope}\n",
            run.target_binding_id
        )
        .as_bytes(),
    );
    Ok(digest)
}

/// Adds a page's `(binding, artifacts, bytes)` to the plan; returns the page's totals.
fn add_page(sources: &mut Sources, page: &[(Uuid, i64, i64)]) -> (i64, i64) {
    let (mut items, mut bytes) = (0, 0);
    for &(binding, n, b) in page {
        let entry = sources.entry(binding).or_default();
        entry.0 += n;
        entry.1 += b;
        items += n;
        bytes += b;
    }
    (items, bytes)
}

/// The plan as reported, by source binding.
fn report(sources: &Sources) -> Vec<SourceReport> {
    sources
        .iter()
        .map(|(binding, (n, b))| SourceReport {
            binding_id: *binding,
            artifacts: *n,
            bytes: *b,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn a_page_adds_to_its_bindings_and_reports_in_binding_order() {
        let (a, b) = (Uuid::from_u128(1), Uuid::from_u128(2));
        let mut sources = Sources::new();
        assert_eq!(add_page(&mut sources, &[(b, 2, 20), (a, 1, 10)]), (3, 30));
        assert_eq!(add_page(&mut sources, &[(b, 1, 5)]), (1, 5));
        let report = report(&sources);
        assert_eq!(report.len(), 2);
        assert_eq!((report[0].binding_id, report[0].artifacts), (a, 1));
        assert_eq!((report[1].artifacts, report[1].bytes), (3, 25));
    }

    proptest! {
        #[test]
        fn the_report_sums_every_page(pages in prop::collection::vec(
            prop::collection::vec((0u128..4, 0i64..100, 0i64..10_000), 0..5), 0..6,
        )) {
            let mut sources = Sources::new();
            let (mut items, mut bytes) = (0, 0);
            for page in &pages {
                let page: Vec<_> = page.iter().map(|&(b, n, s)| (Uuid::from_u128(b), n, s)).collect();
                let (n, b) = add_page(&mut sources, &page);
                items += n;
                bytes += b;
            }
            let report = report(&sources);
            prop_assert_eq!(report.iter().map(|s| s.artifacts).sum::<i64>(), items);
            prop_assert_eq!(report.iter().map(|s| s.bytes).sum::<i64>(), bytes);
        }
    }
}
