//! Tables that would otherwise grow without bound (idempotency records, the items of ended
//! runs, evidence) are pruned by age. Each [`Rule`] deletes its oldest rows past the age
//! it keeps, a bounded batch per statement and so per transaction: a prune never holds
//! long locks, never bloats one transaction, and stops at once when the service drains.
//! Evidence is kept longest: [`RetentionConfig::validate`] refuses a configuration that
//! would drop evidence before what it speaks of.

use std::time::Duration;

use deadpool_postgres::Pool;
use serde::Deserialize;

use crate::{config::humantime_secs, db::DbError, shutdown::Drain};

/// `[retention]`: how long rows are kept, and how the pruner works through them.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionConfig {
    /// Idempotency records (`request_id` replies): a request id repeated later than this
    /// is a new request.
    #[serde(with = "humantime_secs")]
    pub requests: Duration,
    /// The items of ended runs (migration-svc); the run, its counts and its evidence stay.
    #[serde(with = "humantime_secs")]
    pub run_items: Duration,
    /// Audit entries, domain and security events. Kept longest.
    #[serde(with = "humantime_secs")]
    pub evidence: Duration,
    /// How often the pruner looks for rows past their age.
    #[serde(with = "humantime_secs")]
    pub interval: Duration,
    /// Rows one statement deletes.
    pub batch: i64,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        const DAY: u64 = 24 * 3600;
        Self {
            requests: Duration::from_secs(7 * DAY),
            run_items: Duration::from_secs(90 * DAY),
            evidence: Duration::from_secs(400 * DAY),
            interval: Duration::from_secs(3600),
            batch: 5_000,
        }
    }
}

impl RetentionConfig {
    /// Evidence must outlive what it is evidence of, and a batch must delete something.
    pub fn validate(&self) -> Result<(), String> {
        if self.evidence < self.run_items || self.evidence < self.requests {
            return Err(format!(
                "retention.evidence ({}s) must be at least retention.run_items ({}s) and \
                 retention.requests ({}s): evidence is kept longest",
                self.evidence.as_secs(),
                self.run_items.as_secs(),
                self.requests.as_secs()
            ));
        }
        if self.batch < 1 {
            return Err("retention.batch must be at least 1".into());
        }
        if self.interval.is_zero() {
            return Err("retention.interval must be more than 0s".into());
        }
        Ok(())
    }
}

/// One table's pruning: `delete` removes at most `$2` rows older than `$1` seconds and
/// returns how many it removed.
#[derive(Clone, Debug)]
pub struct Rule {
    pub name: &'static str,
    pub keep: Duration,
    pub delete: String,
}

impl Rule {
    /// Rows of `table` whose `at_column` is older than `keep`.
    pub fn older_than(table: &'static str, at_column: &str, keep: Duration) -> Self {
        Self {
            name: table,
            keep,
            delete: format!(
                "delete from {table} where ctid in (
                     select ctid from {table}
                     where {at_column} < now() - make_interval(secs => $1)
                     limit $2)"
            ),
        }
    }
}

/// What one pass removed, per rule.
pub type Pruned = Vec<(&'static str, u64)>;

/// Deletes rows past their age, rule by rule, batch by batch.
#[derive(Clone)]
pub struct Pruner {
    pool: Pool,
    rules: Vec<Rule>,
    batch: i64,
    interval: Duration,
}

/// Batches one rule deletes in one pass before the next rule gets its turn.
const MAX_BATCHES_PER_PASS: usize = 1_000;

impl Pruner {
    pub fn new(pool: Pool, rules: Vec<Rule>, config: &RetentionConfig) -> Self {
        Self {
            pool,
            rules,
            batch: config.batch,
            interval: config.interval,
        }
    }

    /// One pass over every rule, until each has nothing left past its age (or has
    /// deleted `MAX_BATCHES_PER_PASS` batches); stops between batches when draining.
    pub async fn prune(&self, drain: &Drain) -> Result<Pruned, DbError> {
        let client = self.pool.get().await?;
        let mut pruned = Vec::with_capacity(self.rules.len());
        for rule in &self.rules {
            let statement = client.prepare_cached(&rule.delete).await?;
            let mut deleted = 0;
            for _ in 0..MAX_BATCHES_PER_PASS {
                if drain.is_draining() {
                    break;
                }
                let seconds = rule.keep.as_secs_f64();
                let rows = client.execute(&statement, &[&seconds, &self.batch]).await?;
                deleted += rows;
                if rows < self.batch as u64 {
                    break;
                }
            }
            if deleted > 0 {
                tracing::info!(
                    table = rule.name,
                    deleted,
                    "pruned rows past their retention"
                );
            }
            pruned.push((rule.name, deleted));
        }
        Ok(pruned)
    }

    /// Prunes every `interval` until the service drains.
    pub async fn run(self, drain: Drain) {
        loop {
            if let Err(error) = self.prune(&drain).await {
                tracing::warn!(%error, "pruning failed; trying again at the next interval");
            }
            tokio::select! {
                () = tokio::time::sleep(self.interval) => {}
                () = drain.draining() => return,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evidence_is_kept_longest() {
        assert!(RetentionConfig::default().validate().is_ok());
        let short_evidence = RetentionConfig {
            evidence: Duration::from_secs(60),
            ..Default::default()
        };
        let refused = short_evidence.validate().unwrap_err();
        assert!(refused.contains("retention.evidence"), "{refused}");
        let no_batch = RetentionConfig {
            batch: 0,
            ..Default::default()
        };
        assert!(no_batch.validate().is_err());
    }

    #[test]
    fn a_rule_deletes_a_bounded_batch_of_old_rows() {
        let rule = Rule::older_than("x.request_log", "created_at", Duration::from_secs(60));
        assert!(rule.delete.contains("limit $2"));
        assert!(rule.delete.contains("make_interval(secs => $1)"));
        assert!(rule.delete.starts_with("delete from x.request_log"));
    }
}
