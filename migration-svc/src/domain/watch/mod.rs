//! Following a run. The run's feed (one poller per watched run per replica, see [`feed`])
//! reads the run row and its new outcomes and broadcasts them to every watcher of the run,
//! so PostgreSQL sees the same queries for one watcher or a thousand. A watcher reads the
//! database itself only to catch up: the outcomes before it joined (a resumed stream), or
//! those it missed by falling behind the broadcast. Watchers on any replica see runs worked
//! on any other, and a slow watcher only falls behind itself: neither the runner nor the
//! feed waits for one. Outcome numbers are taken under the run's row lock, in commit order,
//! so a cursor never skips an outcome.

mod feed;

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_stream::try_stream;
use futures::Stream;
use stowage_shared::auth::Principal;
use stowage_shared::db::RowLock;
use tokio::sync::broadcast::error::RecvError;
use uuid::Uuid;

use self::feed::{Feeds, OUTCOME_PAGE, POLL, Tick};
use super::runs::{Run, RunItem};
use crate::{
    db,
    error::{Error, Result},
};

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
    feeds: Feeds,
    heartbeat: Duration,
}

impl Watcher {
    pub fn new(pool: deadpool_postgres::Pool, heartbeat: Duration) -> Self {
        Self {
            feeds: Feeds::new(pool.clone()),
            pool,
            heartbeat,
        }
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
        let this = self.clone();
        let mut cursor = resume_after.max(0);
        Ok(try_stream! {
            let mut feed = this.feeds.join(run_id, first.last_outcome);
            let mut shown = first.clone();
            // The run as last seen, and the outcome number up to which the database is
            // to be read (the feed brings those after it).
            let mut known = first.clone();
            let mut until = first.last_outcome;
            let mut tick: Option<Arc<Tick>> = None;
            yield (cursor, Event::Snapshot(first));
            let mut last_sent = Instant::now();
            loop {
                let until_now = tick.as_ref().map_or(until, |tick| until.max(tick.from));
                while cursor < until_now {
                    let page = this.outcomes_after(run_id, cursor).await?;
                    if page.is_empty() {
                        break;
                    }
                    for item in page {
                        cursor = item.outcome_seq.unwrap_or(cursor);
                        yield (cursor, Event::Outcome(item));
                    }
                    last_sent = Instant::now();
                }
                if let Some(tick) = tick.take() {
                    for item in &tick.outcomes {
                        let Some(seq) = item.outcome_seq.filter(|seq| *seq > cursor) else {
                            continue;
                        };
                        cursor = seq;
                        yield (cursor, Event::Outcome(item.clone()));
                        last_sent = Instant::now();
                    }
                    known = tick.run.clone();
                    until = cursor;
                }
                if changed(&shown, &known) {
                    shown = known.clone();
                    yield (cursor, Event::Update(known.clone()));
                    last_sent = Instant::now();
                }
                if known.state.is_terminal() && cursor >= known.last_outcome {
                    break;
                }
                let wait = this.heartbeat.saturating_sub(last_sent.elapsed());
                match tokio::time::timeout(wait, feed.recv()).await {
                    Err(_) => {
                        yield (cursor, Event::Heartbeat);
                        last_sent = Instant::now();
                    }
                    Ok(Ok(next)) => tick = Some(next),
                    Ok(Err(RecvError::Lagged(_))) => {
                        // Fell behind the broadcast: the database has what was missed.
                        known = this.run(None, run_id).await?;
                        until = known.last_outcome;
                    }
                    Ok(Err(RecvError::Closed)) => {
                        // The feed stopped (the run ended, or the database failed): a
                        // look of our own, then a new feed if the run goes on.
                        known = this.run(None, run_id).await?;
                        until = known.last_outcome;
                        if !known.state.is_terminal() {
                            tokio::time::sleep(POLL).await;
                            feed = this.feeds.join(run_id, until);
                        }
                    }
                }
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

    async fn outcomes_after(&self, run_id: Uuid, cursor: i64) -> Result<Vec<RunItem>> {
        let client = self.pool.get().await?;
        db::items::outcomes_after(&client, run_id, cursor, OUTCOME_PAGE).await
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
