//! WatchRun under load: live runs of COUNT small objects (`file` → `file`, on a private
//! cluster that counts statements) followed by 0, 10, 100 and WATCHERS concurrent
//! WatchRun streams from the start, spread over connections of 100 streams each. For each
//! run: its throughput, the statements PostgreSQL executed per second while it ran, and
//! the delay from an item's recorded end (its `end_time`, set by the statement that
//! records it) to its delivery to each watcher (p50, p99, max). Every watcher must get
//! every outcome, in order, or the benchmark fails.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use stowage_integration::app::Bearer;
use stowage_proto::migration::v1::{
    self as pb, migration_service_client::MigrationServiceClient, run_event,
};
use tokio::task::JoinHandle;

use super::{database_work::Counted, migration_bench::Clients};

/// Streams per connection (HTTP/2 servers commonly allow 100 to 200).
const STREAMS_PER_CONNECTION: usize = 100;
/// How long watchers may take to finish after their run ended.
const DRAIN: Duration = Duration::from_secs(120);
/// Delays are counted in buckets of a millisecond, up to a minute.
const BUCKETS: usize = 60_000;

pub async fn run(watchers: usize, count: usize) -> Result<()> {
    let mut counted = Counted::start("watchers", "watchers", count).await?;
    let mut rounds = vec![0, 10, 100, watchers];
    rounds.retain(|n| *n <= watchers);
    rounds.dedup();
    println!(
        "\n| watchers | run, objects/s | vs no watchers | statements/s | delivery p50 | p99 | max |"
    );
    println!("|---|---|---|---|---|---|---|");
    let mut alone = None;
    for (round, n) in rounds.into_iter().enumerate() {
        let measured = follow_a_run(&mut counted, n, count, round).await?;
        let rate = count as f64 / measured.elapsed.as_secs_f64();
        let base = *alone.get_or_insert(rate);
        let statements = measured.statements as f64 / measured.elapsed.as_secs_f64();
        let (p50, p99, max) = match &measured.delays {
            Some(delays) => (
                format!("{} ms", delays.quantile(0.50)),
                format!("**{} ms**", delays.quantile(0.99)),
                format!("{} ms", delays.quantile(1.0)),
            ),
            None => ("–".into(), "–".into(), "–".into()),
        };
        println!(
            "| {n} | {rate:.0} | {:.2}× | {statements:.0} | {p50} | {p99} | {max} |",
            rate / base
        );
    }
    counted.server.stop().await?;
    Ok(())
}

struct Followed {
    elapsed: Duration,
    /// Statements executed from StartRun to the run's end.
    statements: i64,
    delays: Option<Delays>,
}

/// One live run to a fresh directory, followed by `watchers` streams from its start.
async fn follow_a_run(
    counted: &mut Counted,
    watchers: usize,
    count: usize,
    round: usize,
) -> Result<Followed> {
    let mut connections = Vec::new();
    for _ in 0..watchers.div_ceil(STREAMS_PER_CONNECTION) {
        let channel = counted.server.endpoint.connect().await?;
        connections.push(Clients::new(&channel, &counted.minter, "watchers")?.runs);
    }
    counted.reset().await?;
    let mut followers: Vec<JoinHandle<Result<Delays>>> = Vec::new();
    let run = counted
        .migrate(&format!("target-{round}"), count, |run_id| {
            for i in 0..watchers {
                let runs = connections[i / STREAMS_PER_CONNECTION].clone();
                followers.push(tokio::spawn(follow(runs, run_id.to_owned(), count)));
            }
        })
        .await?;
    let statements = counted
        .statements()
        .await?
        .iter()
        .map(|(calls, _)| calls)
        .sum();
    let mut delays: Option<Delays> = None;
    for follower in followers {
        let got = tokio::time::timeout(DRAIN, follower)
            .await
            .context("a watcher did not finish after its run ended")???;
        match &mut delays {
            Some(delays) => delays.merge(&got),
            None => delays = Some(got),
        }
    }
    Ok(Followed {
        elapsed: run.elapsed,
        statements,
        delays,
    })
}

/// Follows a run from its start; fails unless it got `count` outcomes in order.
async fn follow(
    mut runs: MigrationServiceClient<Bearer>,
    run_id: String,
    count: usize,
) -> Result<Delays> {
    let request = pb::WatchRunRequest {
        id: run_id,
        resume_after: 0,
    };
    let mut events = runs.watch_run(request).await?.into_inner();
    let mut delays = Delays::default();
    let (mut last, mut outcomes) = (0, 0);
    while let Some(event) = events.message().await? {
        let Some(run_event::Event::Outcome(item)) = event.event else {
            continue;
        };
        if item.outcome_sequence <= last || event.cursor != item.outcome_sequence {
            bail!("outcome {} came after {last}", item.outcome_sequence);
        }
        last = item.outcome_sequence;
        outcomes += 1;
        let end = item.end_time.context("an outcome without end_time")?;
        let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs_f64();
        let ended = end.seconds as f64 + f64::from(end.nanos) / 1e9;
        delays.add((now - ended) * 1000.0);
    }
    if outcomes != count {
        bail!("a watcher got {outcomes} of {count} outcomes");
    }
    Ok(delays)
}

/// A histogram of delays in milliseconds.
struct Delays {
    buckets: Vec<u64>,
}

impl Default for Delays {
    fn default() -> Self {
        Self {
            buckets: vec![0; BUCKETS],
        }
    }
}

impl Delays {
    fn add(&mut self, ms: f64) {
        let bucket = (ms.max(0.0) as usize).min(BUCKETS - 1);
        self.buckets[bucket] += 1;
    }

    fn merge(&mut self, other: &Delays) {
        for (mine, theirs) in self.buckets.iter_mut().zip(&other.buckets) {
            *mine += theirs;
        }
    }

    /// The delay (in whole milliseconds, rounded up) that a share `q` of deliveries took
    /// at most.
    fn quantile(&self, q: f64) -> usize {
        let total: u64 = self.buckets.iter().sum();
        let wanted = ((total as f64) * q).ceil().max(1.0) as u64;
        let mut seen = 0;
        for (ms, n) in self.buckets.iter().enumerate() {
            seen += n;
            if seen >= wanted {
                return ms + 1;
            }
        }
        BUCKETS
    }
}
