//! `migration-svc`: serve (default), apply schema migrations, mint a development token, or
//! act as a client: start, watch and print migration runs.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context;
use clap::{Parser, Subcommand};
use migration_svc::{cli::RunCommand, config::Config, startup::App};
use stowage_shared::{cli::TokenArgs, shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Migrates an organization's artifacts between storage bindings"
)]
struct Cli {
    /// TOML configuration file; `STOWAGE__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "STOWAGE_CONFIG")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gRPC server (the default).
    Serve,
    /// Apply the database schema migrations and exit.
    Migrate,
    /// Print a bearer token signed with the configured key (development).
    Token(TokenArgs),
    /// Start, watch or print migration runs (a client of a running server).
    #[command(subcommand)]
    Run(RunCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = telemetry::init("migration-svc", &config.common.log)?;
            let app = App::build(config).await.context("starting migration-svc")?;
            app.run_until_stopped(shutdown::signal()).await?;
        }
        Command::Migrate => {
            let _telemetry = telemetry::init("migration-svc", &config.common.log)?;
            migration_svc::startup::migrate(&config).await?;
        }
        Command::Token(args) => {
            println!(
                "{}",
                stowage_shared::cli::mint_token(&config.common.auth, &args)?
            );
        }
        Command::Run(command) => return migration_svc::cli::run(&config, command).await,
    }
    Ok(ExitCode::SUCCESS)
}
