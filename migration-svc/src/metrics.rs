//! migration-svc's metrics: the catalog of every metric it records (described, and each
//! series at zero from start), the runs-by-state and items-by-state gauges read from
//! PostgreSQL, and the count of open `WatchRun` streams.

use std::time::Duration;

use deadpool_postgres::Pool;
use futures::{Stream, StreamExt};
use metrics::Unit;
use stowage_shared::{instruments::Metric, sweep::Verdict};

use crate::{
    db,
    domain::model::{
        cleanup::CleanupState,
        runs::{ItemState, RunState},
    },
    error::Result,
};

pub const RUNS: &str = "migration_runs";
pub const RUN_ITEMS: &str = "migration_unfinished_run_items";
pub const WATCHERS: &str = "migration_watch_streams";
pub const WATCH_FEEDS: &str = "migration_watch_feeds";
pub const VERIFIED: &str = "migration_verified_artifacts_total";
pub const CLEANED: &str = "migration_cleanup_items_total";

/// How often the state gauges are read from the database.
pub const CENSUS_PERIOD: Duration = Duration::from_secs(5);

fn terminal_runs() -> impl Iterator<Item = &'static str> {
    RunState::ALL
        .iter()
        .filter(|s| s.is_terminal())
        .map(|s| s.as_str())
}

fn item_outcomes() -> impl Iterator<Item = &'static str> {
    [ItemState::Migrated, ItemState::Skipped, ItemState::Failed]
        .into_iter()
        .map(ItemState::as_str)
}

/// Every metric migration-svc exports besides the shared gRPC and pool ones.
pub fn catalog() -> Vec<Metric> {
    vec![
        Metric::counter(
            "migration_artifacts_written_total",
            "Artifacts uploaded with PutArtifact, encrypted, read back and verified",
        ),
        Metric::counter(
            "migration_artifact_bytes_written_total",
            "Plaintext bytes of the artifacts uploaded with PutArtifact",
        )
        .unit(Unit::Bytes),
        Metric::histogram(
            "migration_item_seconds",
            "Time to copy one live-run item: read from its source, re-write to the target and \
             verify",
        )
        .unit(Unit::Seconds),
        Metric::counter(
            "migration_items_total",
            "Run items finished, by outcome state (migrated, skipped, failed)",
        )
        .per("state", item_outcomes()),
        Metric::counter(
            "migration_bytes_migrated_total",
            "Plaintext bytes of items migrated to their target",
        )
        .unit(Unit::Bytes),
        Metric::counter(
            "migration_runs_ended_total",
            "Runs ended, by final state (failed: fail-closed or a planning failure)",
        )
        .per("state", terminal_runs()),
        Metric::gauge(RUNS, "Runs in the database, by state")
            .per("state", RunState::ALL.iter().map(|s| s.as_str())),
        Metric::gauge(
            RUN_ITEMS,
            "Items of the runs not yet ended (queued, planning, running), by item state",
        )
        .per("state", ItemState::ALL.iter().map(|s| s.as_str())),
        Metric::gauge(WATCHERS, "WatchRun streams open on this replica"),
        Metric::counter(
            VERIFIED,
            "Artifacts an integrity sweep (VerifyArtifacts) checked, by result",
        )
        .per("result", Verdict::ALL.map(Verdict::as_str)),
        Metric::counter(
            CLEANED,
            "Migrated items a source cleanup (CleanupRun) looked at, by result",
        )
        .per("result", CleanupState::ALL.iter().map(|s| s.as_str())),
        Metric::gauge(
            WATCH_FEEDS,
            "Runs this replica polls for its WatchRun streams (one poller a run, however many streams)",
        ),
    ]
}

/// Sets the runs and items gauges from the database.
pub async fn census(pool: &Pool) -> Result<()> {
    let client = pool
        .get()
        .await
        .map_err(stowage_shared::db::DbError::from)?;
    let (runs, items) = db::runs::census(&client).await?;
    for state in RunState::ALL {
        let n = runs.iter().find(|(s, _)| s == state).map_or(0, |(_, n)| *n);
        metrics::gauge!(RUNS, "state" => state.as_str()).set(n as f64);
    }
    for (state, n) in items {
        metrics::gauge!(RUN_ITEMS, "state" => state.as_str()).set(n as f64);
    }
    Ok(())
}

/// `stream`, counted in the watchers gauge while it is open.
pub fn watched<S: Stream + Send>(stream: S) -> impl Stream<Item = S::Item> + Send {
    let open = Watching::start();
    stream.map(move |item| {
        let _open = &open;
        item
    })
}

struct Watching;

impl Watching {
    fn start() -> Self {
        metrics::gauge!(WATCHERS).increment(1.0);
        Self
    }
}

impl Drop for Watching {
    fn drop(&mut self) {
        metrics::gauge!(WATCHERS).decrement(1.0);
    }
}

/// Registers the catalog and keeps the state gauges current while the server serves.
pub fn install(foundation: &mut stowage_shared::startup::Foundation) {
    foundation.register_metrics(&catalog());
    let pool = foundation.pool.clone();
    foundation.run_alongside(stowage_shared::instruments::every(
        CENSUS_PERIOD,
        "migration_runs",
        move || {
            let pool = pool.clone();
            async move { census(&pool).await }
        },
    ));
}
