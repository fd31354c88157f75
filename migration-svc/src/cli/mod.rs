//! Client subcommands: start a run (of the whole organization or a scope, and follow it), follow a run with a live progress bar
//! fed by `WatchRun` (rejoining with its cursor if the stream drops), and print a run.
//! Each ends with a summary line (or, with `--output json`, one JSON object) on stdout;
//! the bar is drawn only on a terminal. A followed run's end state is the exit status
//! (see [`exit_code`]), so scripts can trust it.

mod scope;

use std::{process::ExitCode, time::Duration};

use indicatif::{ProgressBar, ProgressStyle};
use serde_json::json;
use stowage_proto::migration::v1::{
    self as pb, migration_service_client::MigrationServiceClient, run_event::Event,
};
use stowage_shared::{
    auth::Role,
    cli::{ClientArgs, Output, authorized, connect},
};
use tonic::transport::Channel;

pub use self::scope::ScopeArgs;
use crate::config::Config;

/// Times a dropped watch stream is rejoined before giving up.
const REJOINS: u32 = 5;

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum ModeArg {
    DryRun,
    Live,
}

#[derive(Debug, clap::Subcommand)]
pub enum RunCommand {
    /// Queue a run to the organization's active binding, then follow it.
    Start {
        /// The target binding (must be the active one).
        #[arg(long)]
        target: String,
        /// There is no default: choose dry-run or live.
        #[arg(long, value_enum)]
        mode: ModeArg,
        /// Why (audited).
        #[arg(long)]
        reason: String,
        #[arg(long, default_value_t = 0)]
        objects_per_second: i64,
        #[arg(long, default_value_t = 0)]
        bytes_per_second: i64,
        #[command(flatten)]
        scope: ScopeArgs,
        /// Return once queued instead of following the run.
        #[arg(long)]
        no_watch: bool,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Follow a run with a progress bar until it ends.
    Watch {
        #[arg(long)]
        run: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Print a run.
    Get {
        #[arg(long)]
        run: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

impl RunCommand {
    /// What the command prints (`--output`).
    pub fn output(&self) -> Output {
        match self {
            Self::Start { client, .. } | Self::Watch { client, .. } | Self::Get { client, .. } => {
                client.output
            }
        }
    }
}

async fn client(
    config: &Config,
    args: &ClientArgs,
) -> anyhow::Result<(MigrationServiceClient<Channel>, String)> {
    let (channel, authorization) = connect(args, &config.common, Role::OrgAdmin).await?;
    Ok((MigrationServiceClient::new(channel), authorization))
}

/// The exit status of a command that followed a run to its end: 0 COMPLETED,
/// 3 COMPLETED_WITH_ERRORS, 4 FAILED, 5 CANCELLED (1 is an error of the command itself,
/// 2 a usage error).
pub fn exit_code(state: pb::RunState) -> u8 {
    match state {
        pb::RunState::Completed => 0,
        pb::RunState::CompletedWithErrors => 3,
        pb::RunState::Failed => 4,
        pb::RunState::Cancelled => 5,
        // The stream ended before the run did: the command could not tell the outcome.
        pb::RunState::Unspecified
        | pb::RunState::Queued
        | pb::RunState::Planning
        | pb::RunState::Running => 1,
    }
}

/// Runs a client subcommand; its exit status is [`exit_code`] of a followed run, else 0.
pub async fn run(config: &Config, command: RunCommand) -> anyhow::Result<ExitCode> {
    match command {
        RunCommand::Start {
            target,
            mode,
            reason,
            objects_per_second,
            bytes_per_second,
            scope,
            no_watch,
            client: args,
        } => {
            let (mut runs, authorization) = client(config, &args).await?;
            let mode = match mode {
                ModeArg::DryRun => pb::MigrationMode::DryRun,
                ModeArg::Live => pb::MigrationMode::Live,
            };
            let request = pb::StartRunRequest {
                target_binding_id: target,
                mode: mode.into(),
                reason,
                limit: Some(pb::ThroughputLimit {
                    bytes_per_second,
                    objects_per_second,
                }),
                request_id: String::new(),
                scope: Some(scope.request()),
                from_dry_run_id: String::new(),
                accept_drift: false,
            };
            let run = runs
                .start_run(authorized(request, &authorization)?)
                .await?
                .into_inner();
            eprintln!("run {} queued", run.id);
            if no_watch {
                finish(args.output, &run);
                return Ok(ExitCode::SUCCESS);
            }
            let state = watch(&mut runs, &authorization, &run.id, args.output).await?;
            Ok(ExitCode::from(exit_code(state)))
        }
        RunCommand::Watch { run, client: args } => {
            let (mut runs, authorization) = client(config, &args).await?;
            let state = watch(&mut runs, &authorization, &run, args.output).await?;
            Ok(ExitCode::from(exit_code(state)))
        }
        RunCommand::Get { run, client: args } => {
            let (mut runs, authorization) = client(config, &args).await?;
            let run = runs
                .get_run(authorized(pb::GetRunRequest { id: run }, &authorization)?)
                .await?
                .into_inner();
            finish(args.output, &run);
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Follows a run until it ends, rejoining a dropped stream from its last cursor; the
/// run's last state seen.
/// The progress bar of a watched run.
fn progress_bar() -> anyhow::Result<ProgressBar> {
    let bar = ProgressBar::new(0).with_style(
        ProgressStyle::with_template(
            "{spinner} {msg:28} [{bar:40}] {pos}/{len} items {elapsed} eta {eta}",
        )?
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(120));
    Ok(bar)
}

/// Shows one watch event; returns the run it carried, if any.
fn show_event(bar: &ProgressBar, event: Option<Event>) -> Option<pb::Run> {
    match event {
        Some(Event::Snapshot(run) | Event::Update(run)) => {
            show(bar, &run);
            Some(*run)
        }
        Some(Event::Outcome(item)) if item.state() == pb::ItemState::Failed => {
            // On stderr whether or not the bar is drawn.
            bar.suspend(|| {
                eprintln!(
                    "failed {}: {:?} {}",
                    item.artifact_id,
                    item.cause(),
                    item.cause_detail
                );
            });
            None
        }
        Some(Event::Outcome(_) | Event::Heartbeat(_)) | None => None,
    }
}

async fn watch(
    runs: &mut MigrationServiceClient<Channel>,
    authorization: &str,
    id: &str,
    output: Output,
) -> anyhow::Result<pb::RunState> {
    // Drawn only for people: a script reads the summary line or the JSON.
    let bar = if output.progress() {
        progress_bar()?
    } else {
        ProgressBar::hidden()
    };
    let mut cursor = 0;
    let mut rejoins = 0;
    let mut last = None;
    loop {
        let request = pb::WatchRunRequest {
            id: id.to_owned(),
            resume_after: cursor,
        };
        let mut stream = runs
            .watch_run(authorized(request, authorization)?)
            .await?
            .into_inner();
        let ended = loop {
            match stream.message().await {
                Ok(Some(event)) => {
                    cursor = event.cursor;
                    if let Some(run) = show_event(&bar, event.event) {
                        last = Some(run);
                    }
                }
                Ok(None) => break true,
                Err(status) if status.code() == tonic::Code::Unavailable && rejoins < REJOINS => {
                    rejoins += 1;
                    bar.suspend(|| {
                        eprintln!("stream dropped ({}); rejoining", status.message());
                    });
                    tokio::time::sleep(Duration::from_millis(500 * u64::from(rejoins))).await;
                    break false;
                }
                Err(status) => return Err(status.into()),
            }
        };
        if ended {
            break;
        }
    }
    bar.finish_and_clear();
    Ok(summarize(output, id, last))
}

/// The summary line (or JSON) of a watched run as it was last seen; its state.
fn summarize(output: Output, id: &str, last: Option<pb::Run>) -> pb::RunState {
    let state = last
        .as_ref()
        .map_or(pb::RunState::Unspecified, pb::Run::state);
    match last {
        Some(run) => finish(output, &run),
        None => output.finish(
            &format!("run {id}: the stream ended before any state"),
            &json!({ "id": id, "state": null }),
        ),
    }
    if state == pb::RunState::Failed {
        eprintln!("run {id} FAILED");
    }
    state
}

fn show(bar: &ProgressBar, run: &pb::Run) {
    let c = run.items.unwrap_or_default();
    bar.set_length((c.queued + c.running + c.migrated + c.skipped + c.failed).max(0) as u64);
    bar.set_position((c.migrated + c.skipped + c.failed).max(0) as u64);
    bar.set_message(format!(
        "{} {} MiB",
        state_name(run.state()),
        run.bytes_migrated >> 20
    ));
}

fn state_name(state: pb::RunState) -> String {
    state
        .as_str_name()
        .trim_start_matches("RUN_STATE_")
        .to_ascii_lowercase()
}

/// Prints `run`: its details and a summary line, or one JSON object.
fn finish(output: Output, run: &pb::Run) {
    if output == Output::Text {
        print_run(run);
    }
    output.finish(&summary(run), &run_json(run));
}

/// `run ID completed: 9 migrated, 1 skipped, 0 failed; 123 of 456 bytes`.
fn summary(run: &pb::Run) -> String {
    let c = run.items.unwrap_or_default();
    format!(
        "run {} {}: {} migrated, {} skipped, {} failed; {} of {} bytes",
        run.id,
        state_name(run.state()),
        c.migrated,
        c.skipped,
        c.failed,
        run.bytes_migrated,
        run.bytes_total
    )
}

fn run_json(run: &pb::Run) -> serde_json::Value {
    let c = run.items.unwrap_or_default();
    let failure = (run.failure_cause() != pb::RunFailureCause::Unspecified).then(|| {
        json!({
            "cause": run.failure_cause().as_str_name().trim_start_matches("RUN_FAILURE_CAUSE_"),
            "detail": run.failure_detail,
        })
    });
    json!({
        "id": run.id,
        "state": run.state().as_str_name().trim_start_matches("RUN_STATE_"),
        "mode": run.mode().as_str_name().trim_start_matches("MIGRATION_MODE_"),
        "target_binding_id": run.target_binding_id,
        "reason": run.reason,
        "items": {
            "queued": c.queued,
            "running": c.running,
            "migrated": c.migrated,
            "skipped": c.skipped,
            "failed": c.failed,
        },
        "bytes_migrated": run.bytes_migrated,
        "bytes_total": run.bytes_total,
        "sources": run.sources.iter().map(|source| json!({
            "binding_id": source.binding_id,
            "artifacts": source.artifacts,
            "bytes": source.bytes,
        })).collect::<Vec<_>>(),
        "failure": failure,
        "exit_code": exit_code(run.state()),
    })
}

fn print_run(run: &pb::Run) {
    let c = run.items.unwrap_or_default();
    println!("run        {}", run.id);
    println!("state      {}", state_name(run.state()));
    println!("mode       {}", run.mode().as_str_name());
    println!("target     {}", run.target_binding_id);
    println!("reason     {}", run.reason);
    println!(
        "items      {} migrated, {} skipped, {} failed, {} queued, {} running",
        c.migrated, c.skipped, c.failed, c.queued, c.running
    );
    println!("bytes      {} of {}", run.bytes_migrated, run.bytes_total);
    for source in &run.sources {
        println!(
            "source     {}: {} artifacts, {} bytes",
            source.binding_id, source.artifacts, source.bytes
        );
    }
    if run.failure_cause() != pb::RunFailureCause::Unspecified {
        println!(
            "failure    {}: {}",
            run.failure_cause().as_str_name(),
            run.failure_detail
        );
    }
}
