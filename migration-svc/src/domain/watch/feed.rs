//! One poller per watched run per replica: every [`POLL`] it reads the run row and the
//! outcomes numbered since its last look, and broadcasts what changed to the run's
//! watchers. PostgreSQL sees the same queries whether one stream or a thousand follow a
//! run. The poller never waits for a watcher (one that falls behind the broadcast catches
//! up from the database itself), and it stops when its last watcher leaves, when the run
//! has ended and every outcome went out, or when the database fails (each watcher then
//! reads for itself, and sees the error).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use stowage_shared::db::RowLock;
use tokio::sync::broadcast;
use uuid::Uuid;

use super::changed;
use crate::{
    db,
    domain::model::runs::{Run, RunItem},
    error::Result,
    metrics::WATCH_FEEDS,
};

/// How often a poller looks; also the most updates a second a watcher gets (20).
pub(super) const POLL: Duration = Duration::from_millis(50);
/// Outcomes read per query.
pub(super) const OUTCOME_PAGE: i64 = 500;
/// Outcomes one look reads at most; the rest come with the next.
const TICK_OUTCOMES: usize = 5_000;
/// Looks a watcher may fall behind before it catches up from the database instead.
const BACKLOG: usize = 64;

/// What one look found: the run, and its outcomes numbered after `from`, in order.
#[derive(Debug)]
pub(super) struct Tick {
    pub(super) from: i64,
    pub(super) run: Run,
    pub(super) outcomes: Vec<RunItem>,
}

impl Tick {
    /// The last outcome number this look covers.
    fn to(&self) -> i64 {
        self.outcomes
            .last()
            .and_then(|item| item.outcome_seq)
            .unwrap_or(self.from)
    }
}

type Senders = HashMap<Uuid, broadcast::Sender<Arc<Tick>>>;

/// The runs this replica polls for its watchers.
#[derive(Clone, Debug)]
pub(super) struct Feeds {
    pool: deadpool_postgres::Pool,
    senders: Arc<Mutex<Senders>>,
}

impl Feeds {
    pub(super) fn new(pool: deadpool_postgres::Pool) -> Self {
        Self {
            pool,
            senders: Arc::default(),
        }
    }

    /// Joins the run's feed, starting its poller (from outcome `from` on) if none runs.
    pub(super) fn join(&self, run_id: Uuid, from: i64) -> broadcast::Receiver<Arc<Tick>> {
        let Ok(mut senders) = self.senders.lock() else {
            // A poisoned map: a feed of one's own, closed at once (the watcher reads the
            // database itself).
            return broadcast::channel(1).1;
        };
        if let Some(sender) = senders.get(&run_id) {
            return sender.subscribe();
        }
        let (sender, receiver) = broadcast::channel(BACKLOG);
        senders.insert(run_id, sender.clone());
        metrics::gauge!(WATCH_FEEDS).increment(1.0);
        tokio::spawn(self.clone().poll(run_id, from, sender));
        receiver
    }

    async fn poll(self, run_id: Uuid, mut cursor: i64, sender: broadcast::Sender<Arc<Tick>>) {
        let mut sent: Option<Run> = None;
        loop {
            let tick = match self.look(run_id, cursor).await {
                Ok(Some(tick)) => tick,
                Ok(None) => break,
                Err(error) => {
                    tracing::warn!(%error, run = %run_id, "a run's watchers could not be fed");
                    break;
                }
            };
            cursor = tick.to();
            let done = tick.run.state.is_terminal() && cursor >= tick.run.last_outcome;
            let news = !tick.outcomes.is_empty()
                || sent.as_ref().is_none_or(|run| changed(run, &tick.run));
            if news {
                sent = Some(tick.run.clone());
                // An error only means every watcher left; the next check sees it.
                let _ = sender.send(Arc::new(tick));
            }
            if done || self.leave_if_unwatched(run_id, &sender) {
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        self.remove(run_id, &sender);
    }

    /// The run and the outcomes numbered after `cursor` (up to [`TICK_OUTCOMES`]).
    async fn look(&self, run_id: Uuid, cursor: i64) -> Result<Option<Tick>> {
        let client = self.pool.get().await?;
        let Some(run) = db::runs::RUNS
            .get(&client, None, run_id, RowLock::No)
            .await?
        else {
            return Ok(None);
        };
        let mut tick = Tick {
            from: cursor,
            run,
            outcomes: Vec::new(),
        };
        // Everything numbered up to run.last_outcome has committed.
        while tick.to() < tick.run.last_outcome && tick.outcomes.len() < TICK_OUTCOMES {
            let page = db::items::outcomes_after(&client, run_id, tick.to(), OUTCOME_PAGE).await?;
            if page.is_empty() {
                break;
            }
            tick.outcomes.extend(page);
        }
        Ok(Some(tick))
    }

    /// Removes the feed if no one watches it any more (under the lock [`Feeds::join`]
    /// takes, so no watcher joins a feed that is stopping).
    fn leave_if_unwatched(&self, run_id: Uuid, sender: &broadcast::Sender<Arc<Tick>>) -> bool {
        let Ok(mut senders) = self.senders.lock() else {
            return true;
        };
        if sender.receiver_count() > 0 {
            return false;
        }
        remove_from(&mut senders, run_id, sender);
        true
    }

    fn remove(&self, run_id: Uuid, sender: &broadcast::Sender<Arc<Tick>>) {
        if let Ok(mut senders) = self.senders.lock() {
            remove_from(&mut senders, run_id, sender);
        }
    }
}

/// Removes `sender`'s entry, not a newer feed of the same run.
fn remove_from(senders: &mut Senders, run_id: Uuid, sender: &broadcast::Sender<Arc<Tick>>) {
    if senders
        .get(&run_id)
        .is_some_and(|current| current.same_channel(sender))
    {
        senders.remove(&run_id);
        metrics::gauge!(WATCH_FEEDS).decrement(1.0);
    }
}
