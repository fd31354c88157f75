//! `archive-svc`: serve (default), apply schema migrations, mint a development token, seed
//! demo data, or act as a client: restore a job, archive one now.

use std::process::ExitCode;

use anyhow::Context;
use archive_svc::{config::Config, domain::jobs::JobStatus, seed, startup::App};
use clap::Subcommand;
use stowage_shared::{
    cli::{self, ClientArgs},
    config::ServiceConfig,
};

const ABOUT: &str = "Archives finished scan jobs to cold storage and restores them";

/// archive-svc's own subcommands, beside those every service has.
#[derive(Debug, Subcommand)]
enum Command {
    /// Fill the scan tables with realistic jobs and rows (demos, benchmarks).
    Seed {
        #[arg(long, default_value = "demo")]
        tenant: String,
        #[arg(long, default_value_t = 1)]
        jobs: u32,
        /// Per-file rows per job (about 60% scan items, 40% file records).
        #[arg(long, default_value_t = 10_000)]
        rows: u64,
        /// CANCELLED, FAILED, SCAN_COMPLETE, COMPLETED, SCANNING, …
        #[arg(long, default_value = "COMPLETED")]
        status: String,
        #[arg(long, default_value_t = 30.0)]
        terminal_days_ago: f64,
    },
    /// Restore a job's rows, with a progress bar.
    Restore {
        #[arg(long)]
        job: String,
        #[command(flatten)]
        client: ClientArgs,
    },
    /// Archive a job now (SUPER_ADMIN).
    Archive {
        #[arg(long)]
        job: String,
        #[arg(long, default_value = "manual archive from the command line")]
        reason: String,
        #[command(flatten)]
        client: ClientArgs,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let Some((command, file)) = cli::service_main::<App, Command>(ABOUT)
        .await
        .map_err(anyhow::Error::from_boxed)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let config = Config::load(file.as_deref()).context("loading configuration")?;
    match command {
        Command::Seed {
            tenant,
            jobs,
            rows,
            status,
            terminal_days_ago,
        } => {
            let status: JobStatus = status
                .to_ascii_uppercase()
                .parse()
                .map_err(anyhow::Error::msg)?;
            let pool = archive_svc::startup::migrated_pool(&config).await?;
            let spec = seed::SeedSpec {
                tenant,
                jobs,
                rows,
                status,
                terminal_days_ago,
            };
            for id in seed::seed(&pool, &spec).await? {
                println!("{id}");
            }
        }
        Command::Restore { job, client } => {
            if let Err(error) = archive_svc::cli::restore(&config, &client, &job).await {
                return Ok(client.output.fail(error.as_ref()));
            }
        }
        Command::Archive {
            job,
            reason,
            client,
        } => {
            if let Err(error) = archive_svc::cli::archive(&config, &client, &job, &reason).await {
                return Ok(client.output.fail(error.as_ref()));
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
