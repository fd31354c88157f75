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
use tokio::sync::broadcast::{self, error::RecvError};
use uuid::Uuid;

use self::feed::{Feeds, OUTCOME_PAGE, POLL, Tick};
use super::runs::{Run, RunItem};
use crate::{db, error::Result};

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    /// The run when the stream starts (boxed, as the next: an event is moved through
    /// every adapter of a stream, and outcomes, the most of them, are a quarter the size).
    Snapshot(Box<Run>),
    /// The run after a change of state, counters or bytes.
    Update(Box<Run>),
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
        let mut follower = Follower::new(self.clone(), first.clone(), resume_after.max(0));
        Ok(try_stream! {
            yield (follower.cursor, Event::Snapshot(Box::new(first)));
            loop {
                while let Some(page) = follower.catch_up().await? {
                    for item in page {
                        yield (follower.sent(&item), Event::Outcome(item));
                    }
                }
                for item in follower.fed() {
                    yield (follower.sent(&item), Event::Outcome(item));
                }
                if let Some(run) = follower.update() {
                    yield (follower.cursor, Event::Update(Box::new(run)));
                }
                if follower.done() {
                    break;
                }
                if follower.wait().await? {
                    follower.last_sent = Instant::now();
                    yield (follower.cursor, Event::Heartbeat);
                }
            }
        })
    }

    async fn run(&self, org: Option<&str>, id: Uuid) -> Result<Run> {
        let client = self.pool.get().await?;
        db::runs::RUNS.find(&client, org, id, RowLock::No).await
    }

    async fn outcomes_after(&self, run_id: Uuid, cursor: i64) -> Result<Vec<RunItem>> {
        let client = self.pool.get().await?;
        db::items::outcomes_after(&client, run_id, cursor, OUTCOME_PAGE).await
    }
}

/// One watcher's position: what it sent, and what it knows the database holds.
struct Follower {
    watcher: Watcher,
    run_id: Uuid,
    feed: broadcast::Receiver<Arc<Tick>>,
    /// The last outcome sent.
    cursor: i64,
    /// The run as last sent to the watcher, and as last seen.
    shown: Run,
    known: Run,
    /// The database is read up to this outcome; the feed brings those after it.
    until: i64,
    /// The feed's look to send next (after catching up to where it starts).
    tick: Option<Arc<Tick>>,
    last_sent: Instant,
}

impl Follower {
    fn new(watcher: Watcher, first: Run, cursor: i64) -> Self {
        Self {
            feed: watcher.feeds.join(first.id, first.last_outcome),
            watcher,
            run_id: first.id,
            cursor,
            until: first.last_outcome,
            shown: first.clone(),
            known: first,
            tick: None,
            last_sent: Instant::now(),
        }
    }

    /// The next page of outcomes from the database, while behind what it holds for us.
    async fn catch_up(&mut self) -> Result<Option<Vec<RunItem>>> {
        let until = self
            .tick
            .as_ref()
            .map_or(self.until, |tick| self.until.max(tick.from));
        if self.cursor >= until {
            return Ok(None);
        }
        let page = self
            .watcher
            .outcomes_after(self.run_id, self.cursor)
            .await?;
        Ok((!page.is_empty()).then_some(page))
    }

    /// Records `item` as sent; returns the cursor after it.
    fn sent(&mut self, item: &RunItem) -> i64 {
        self.cursor = item.outcome_seq.unwrap_or(self.cursor);
        self.last_sent = Instant::now();
        self.cursor
    }

    /// The outcomes of the feed's last look not sent yet, and the run as it saw it.
    fn fed(&mut self) -> Vec<RunItem> {
        let Some(tick) = self.tick.take() else {
            return Vec::new();
        };
        self.known = tick.run.clone();
        let fresh: Vec<RunItem> = tick
            .outcomes
            .iter()
            .filter(|item| item.outcome_seq > Some(self.cursor))
            .cloned()
            .collect();
        self.until = fresh
            .last()
            .and_then(|item| item.outcome_seq)
            .unwrap_or(self.cursor);
        fresh
    }

    /// The run, if it changed since it was last sent.
    fn update(&mut self) -> Option<Run> {
        if !changed(&self.shown, &self.known) {
            return None;
        }
        self.shown = self.known.clone();
        self.last_sent = Instant::now();
        Some(self.known.clone())
    }

    fn done(&self) -> bool {
        self.known.state.is_terminal() && self.cursor >= self.known.last_outcome
    }

    /// Waits for the feed's next look; true if a heartbeat is due first. A watcher that
    /// fell behind the feed, or whose feed stopped, reads the run itself (and joins a new
    /// feed if the run goes on).
    async fn wait(&mut self) -> Result<bool> {
        let wait = self
            .watcher
            .heartbeat
            .saturating_sub(self.last_sent.elapsed());
        match tokio::time::timeout(wait, self.feed.recv()).await {
            Err(_) => return Ok(true),
            Ok(Ok(tick)) => self.tick = Some(tick),
            Ok(Err(RecvError::Lagged(_))) => self.reread().await?,
            Ok(Err(RecvError::Closed)) => {
                self.reread().await?;
                if !self.known.state.is_terminal() {
                    tokio::time::sleep(POLL).await;
                    self.feed = self.watcher.feeds.join(self.run_id, self.until);
                }
            }
        }
        Ok(false)
    }

    async fn reread(&mut self) -> Result<()> {
        self.known = self.watcher.run(None, self.run_id).await?;
        self.until = self.known.last_outcome;
        Ok(())
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
