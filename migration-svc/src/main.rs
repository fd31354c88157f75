//! `migration-svc`: serve (default), apply schema migrations, mint a development token, or
//! act as a client: start, watch and print migration runs.

use std::process::ExitCode;

use anyhow::Context;
use clap::Subcommand;
use migration_svc::{cli::RunCommand, config::Config, startup::App};
use stowage_shared::{cli, config::ServiceConfig};

const ABOUT: &str = "Migrates an organization's artifacts between storage bindings";

/// migration-svc's own subcommands, beside those every service has.
#[derive(Debug, Subcommand)]
enum Command {
    /// Start, watch or print migration runs (a client of a running server).
    #[command(subcommand)]
    Run(RunCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let Some((Command::Run(command), file)) = cli::service_main::<App, Command>(ABOUT)
        .await
        .map_err(anyhow::Error::from_boxed)?
    else {
        return Ok(ExitCode::SUCCESS);
    };
    let config = Config::load(file.as_deref()).context("loading configuration")?;
    let output = command.output();
    Ok(migration_svc::cli::run(&config, command)
        .await
        .unwrap_or_else(|error| output.fail(error.as_ref())))
}
