//! Following a run. Each watcher polls PostgreSQL (the run row by key, then outcomes by
//! sequence), so watchers on any replica see runs worked on any other, and a slow watcher
//! only falls behind itself: the runner never waits for one. Outcome numbers are taken
//! under the run's row lock, in commit order, so a cursor never skips an outcome.

use std::time::{Duration, Instant};

use async_stream::try_stream;
use futures::Stream;
use stowage_shared::auth::Principal;
use stowage_shared::db::RowLock;
use uuid::Uuid;

use super::runs::{Run, RunItem};
use crate::{
    db,
    error::{Error, Result},
};

/// How often a watcher looks; also the most updates a second it sends (10).
const POLL: Duration = Duration::from_millis(100);
/// Outcomes read per query.
const OUTCOME_PAGE: i64 = 500;

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The run when the stream starts.
    Snapshot(Run),
    /// The run after a change of state, counters or bytes.
    Update(Run),
    Outcome(RunItem),
    Heartbeat,
}

#[derive(Clone, Debug)]
pub struct Watcher {
    pool: deadpool_postgres::Pool,
    heartbeat: Duration,
}

impl Watcher {
    pub fn new(pool: deadpool_postgres::Pool, heartbeat: Duration) -> Self {
        Self { pool, heartbeat }
    }

    /// The run's events after outcome `resume_after`, each with the cursor to resume
    /// from after it. Ends when the run is terminal and every outcome was sent.
    pub async fn watch(
        &self,
        caller: &Principal,
        run_id: Uuid,
        resume_after: i64,
    ) -> Result<impl Stream<Item = Result<(i64, Event)>> + Send + 'static> {
        let first = self.run(Some(&caller.organization), run_id).await?;
        let pool = self.pool.clone();
        let heartbeat = self.heartbeat;
        let mut cursor = resume_after.max(0);
        Ok(try_stream! {
            let mut shown = first.clone();
            yield (cursor, Event::Snapshot(first));
            let mut last_sent = Instant::now();
            loop {
                let run = {
                    let client = pool.get().await?;
                    db::runs::RUNS.get(&client, None, run_id, RowLock::No)
                        .await?
                        .ok_or_else(|| Error::NotFound(format!("run {run_id}")))?
                };
                // Everything numbered up to run.last_outcome has committed.
                while cursor < run.last_outcome {
                    let outcomes = {
                        let client = pool.get().await?;
                        db::items::outcomes_after(&client, run_id, cursor, OUTCOME_PAGE).await?
                    };
                    if outcomes.is_empty() {
                        break;
                    }
                    for item in outcomes {
                        cursor = item.outcome_seq.unwrap_or(cursor);
                        yield (cursor, Event::Outcome(item));
                    }
                    last_sent = Instant::now();
                }
                if changed(&shown, &run) {
                    shown = run.clone();
                    yield (cursor, Event::Update(run.clone()));
                    last_sent = Instant::now();
                }
                if run.state.is_terminal() && cursor >= run.last_outcome {
                    break;
                }
                if last_sent.elapsed() >= heartbeat {
                    yield (cursor, Event::Heartbeat);
                    last_sent = Instant::now();
                }
                tokio::time::sleep(POLL).await;
            }
        })
    }

    async fn run(&self, org: Option<&str>, id: Uuid) -> Result<Run> {
        let client = self.pool.get().await?;
        db::runs::RUNS
            .get(&client, org, id, RowLock::No)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run {id}")))
    }
}

/// Whether a dashboard would show something new.
fn changed(shown: &Run, now: &Run) -> bool {
    shown.state != now.state
        || shown.counts != now.counts
        || shown.bytes_total != now.bytes_total
        || shown.bytes_migrated != now.bytes_migrated
        || shown.cancel_requested != now.cancel_requested
        || shown.sources != now.sources
}
