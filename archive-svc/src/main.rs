//! `archive-svc`: serve (default), apply schema migrations, or mint a development token.

use std::path::PathBuf;

use anyhow::Context;
use archive_svc::{config::Config, startup::App};
use clap::{Parser, Subcommand};
use stowage_shared::{cli::TokenArgs, shutdown, telemetry};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Archives finished scan jobs to cold storage and restores them"
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
    /// Run the gRPC server and the archive schedule (the default).
    Serve,
    /// Apply the database schema migrations and exit.
    Migrate,
    /// Print a bearer token signed with the configured key (development).
    Token(TokenArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let config = Config::load(cli.config.as_deref()).context("loading configuration")?;
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            let _telemetry = telemetry::init("archive-svc", &config.common.log)?;
            let app = App::build(config).await.context("starting archive-svc")?;
            app.run_until_stopped(shutdown::signal()).await?;
        }
        Command::Migrate => {
            let _telemetry = telemetry::init("archive-svc", &config.common.log)?;
            archive_svc::startup::migrate(&config).await?;
        }
        Command::Token(args) => {
            println!(
                "{}",
                stowage_shared::cli::mint_token(&config.common.auth, &args)?
            );
        }
    }
    Ok(())
}
