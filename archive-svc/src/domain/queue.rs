//! The archive queue's workers, one set per replica: each claims due jobs the tick
//! enqueued (`FOR UPDATE SKIP LOCKED`, under a lease, so replicas archive disjoint jobs)
//! and archives up to `concurrency` of them at once. A job archived, deleted or no longer
//! due leaves the queue; a failed attempt waits out a backoff that doubles with each
//! attempt, so one failing job never blocks the rest, and after `attempts` tries it leaves
//! the queue until the next tick finds it due again. On shutdown a replica stops claiming
//! and finishes what it holds; a job it could not finish stays hot (its transaction rolls
//! back) and its lease expires for another replica.

use std::time::Duration;

use futures::{StreamExt, stream::FuturesUnordered};
use stowage_shared::{api::RequestId, shutdown::Drain};
use uuid::Uuid;

use super::{
    archive::{ArchiveRequest, Archiver, Mode},
    audit::{Actor, Audit},
    payload::Compression,
};
use crate::{
    db::{self, queue::Claimed},
    error::{Error, Result},
};

/// How a replica works through the queue.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueSettings {
    /// Jobs one replica archives at once.
    pub concurrency: usize,
    /// Attempts at one job before it leaves the queue.
    pub attempts: u32,
    /// The wait after a first failed attempt; it doubles with each further one.
    pub backoff: Duration,
    /// How long a claim lasts; a job still claimed by a dead replica is claimed again
    /// after it.
    pub lease: Duration,
    /// How often an idle replica looks for queued jobs.
    pub poll: Duration,
}

/// What became of one attempt.
#[derive(Clone, Debug, PartialEq, Eq)]
enum Attempt {
    Archived,
    /// Not to be tried again: deleted, not due any more, already archived.
    Dropped(String),
    /// Tried again after the backoff.
    Retry {
        error: String,
        backoff: Duration,
    },
    /// The last attempt failed.
    GaveUp(String),
}

#[derive(Clone, Debug)]
pub struct QueueWorkers {
    pool: deadpool_postgres::Pool,
    archiver: Archiver,
    settings: QueueSettings,
    owner: String,
}

impl QueueWorkers {
    pub fn new(pool: deadpool_postgres::Pool, archiver: Archiver, settings: QueueSettings) -> Self {
        Self {
            pool,
            archiver,
            settings,
            owner: format!("archive-svc/{}", Uuid::now_v7()),
        }
    }

    /// Claims and archives until the drain starts; then finishes what it holds.
    pub async fn run(self, drain: Drain) {
        let mut in_flight = FuturesUnordered::new();
        loop {
            let room = self.settings.concurrency.saturating_sub(in_flight.len());
            if room > 0 && !drain.is_draining() {
                match self.claim(room).await {
                    Ok(claimed) => in_flight.extend(claimed.into_iter().map(|job| self.work(job))),
                    Err(error) => tracing::warn!(%error, "could not claim queued archive jobs"),
                }
            }
            if drain.is_draining() {
                while in_flight.next().await.is_some() {}
                return;
            }
            let full = in_flight.len() >= self.settings.concurrency;
            tokio::select! {
                Some(()) = in_flight.next(), if !in_flight.is_empty() => {}
                () = tokio::time::sleep(self.settings.poll), if !full => {}
                () = drain.draining() => {}
            }
        }
    }

    async fn claim(&self, room: usize) -> Result<Vec<Claimed>> {
        let client = self.pool.get().await?;
        let limit = i64::try_from(room).unwrap_or(i64::MAX);
        db::queue::claim(&client, &self.owner, self.settings.lease, limit).await
    }

    /// One attempt at a claimed job, and its result recorded in the queue.
    async fn work(&self, job: Claimed) {
        let actor = Actor::scheduler();
        let request = ArchiveRequest {
            mode: Mode::Scheduled,
            compression: Compression::Zstd,
            audit: Audit {
                actor: &actor,
                action: "archive",
                reason: Some("retention schedule"),
            },
            request_id: &RequestId::none(),
            worker: Some(&self.owner),
        };
        let attempt = match self
            .archiver
            .archive_if_free(None, job.job_id, &request)
            .await
        {
            Ok(Some(_)) => Attempt::Archived,
            // Someone else writes the job's blob now: after a backoff, it is seen again.
            Ok(None) => Attempt::Retry {
                error: "another archive, move or sweep of the job is in flight".into(),
                backoff: self.settings.backoff,
            },
            Err(error) => {
                let attempt = judge(&error, job.attempts, &self.settings);
                if attempt.is_failure() {
                    metrics::counter!("archive_jobs_failed_total").increment(1);
                    let job = Some((job.job_id, job.tenant_id.as_str()));
                    request.audit.record_failure(&self.pool, job, &error).await;
                }
                attempt
            }
        };
        if let Err(error) = self.settle(&job, &attempt).await {
            // The lease runs out and the job is claimed again.
            tracing::warn!(job = %job.job_id, %error, "could not record an archive attempt");
        }
    }

    async fn settle(&self, job: &Claimed, attempt: &Attempt) -> Result<()> {
        let client = self.pool.get().await?;
        let (id, owner) = (job.job_id, self.owner.as_str());
        match attempt {
            Attempt::Archived => db::queue::finish(&client, id, owner).await,
            Attempt::Dropped(why) => {
                tracing::info!(job = %id, %why, "queued job not archived");
                db::queue::finish(&client, id, owner).await
            }
            Attempt::Retry { error, backoff } => {
                tracing::warn!(job = %id, %error, attempts = job.attempts, ?backoff,
                    "archive attempt failed; trying again later");
                db::queue::retry_later(&client, id, owner, error, *backoff).await
            }
            Attempt::GaveUp(error) => {
                tracing::error!(job = %id, %error, attempts = job.attempts,
                    "archive attempts exhausted; the job waits for the next tick");
                db::queue::finish(&client, id, owner).await
            }
        }
    }
}

impl Attempt {
    /// A failure of the job's own (recorded and counted), not a job that left the queue.
    fn is_failure(&self) -> bool {
        matches!(self, Attempt::Retry { .. } | Attempt::GaveUp(_))
    }
}

/// What a failed attempt (the `attempts`th) means: a job that is gone, not due or already
/// archived is dropped; anything else is tried again after a doubling backoff, until the
/// attempts are used up.
fn judge(error: &Error, attempts: i32, settings: &QueueSettings) -> Attempt {
    if matches!(error, Error::NotFound(_) | Error::FailedPrecondition(_)) {
        return Attempt::Dropped(error.to_string());
    }
    let attempts = u32::try_from(attempts).unwrap_or(0).max(1);
    if attempts >= settings.attempts {
        return Attempt::GaveUp(error.to_string());
    }
    let backoff = settings
        .backoff
        .saturating_mul(2u32.saturating_pow(attempts - 1));
    Attempt::Retry {
        error: error.to_string(),
        backoff,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> QueueSettings {
        QueueSettings {
            concurrency: 4,
            attempts: 3,
            backoff: Duration::from_secs(60),
            lease: Duration::from_secs(900),
            poll: Duration::from_secs(5),
        }
    }

    #[test]
    fn a_job_gone_or_not_due_leaves_the_queue_at_once() {
        let gone = Error::NotFound("job".into());
        assert!(matches!(judge(&gone, 1, &settings()), Attempt::Dropped(_)));
        let not_due = Error::FailedPrecondition("within its window".into());
        assert!(matches!(
            judge(&not_due, 1, &settings()),
            Attempt::Dropped(_)
        ));
    }

    #[test]
    fn a_failing_job_backs_off_doubling_then_gives_up() {
        let store = Error::Internal("store down".into());
        let backoff = |attempts| match judge(&store, attempts, &settings()) {
            Attempt::Retry { backoff, .. } => Some(backoff.as_secs()),
            _ => None,
        };
        assert_eq!((backoff(1), backoff(2)), (Some(60), Some(120)));
        assert!(matches!(judge(&store, 3, &settings()), Attempt::GaveUp(_)));
    }
}
