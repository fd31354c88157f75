//! `migration-svc`: serve (default), apply schema migrations, mint a development token, or
//! act as a client: start, watch and print migration runs.

use std::process::ExitCode;

use anyhow::Context;
use clap::{CommandFactory, Parser, Subcommand};
use migration_svc::{cli::RunCommand, config::Config, startup::App};
use stowage_shared::{
    cli::{self, ConfigArg, ServiceCommand},
    config::ServiceConfig,
    shutdown, telemetry,
};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "Migrates an organization's artifacts between storage bindings"
)]
struct Cli {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    #[command(flatten)]
    Service(ServiceCommand),
    /// Start, watch or print migration runs (a client of a running server).
    #[command(subcommand)]
    Run(RunCommand),
}

#[tokio::main]
async fn main() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(Command::Service(ServiceCommand::Completions { shell })) = cli.command {
        cli::print_completions(shell, Cli::command());
        return Ok(ExitCode::SUCCESS);
    }
    let config = Config::load(cli.config.config.as_deref()).context("loading configuration")?;
    match cli
        .command
        .unwrap_or(Command::Service(ServiceCommand::Serve))
    {
        Command::Service(ServiceCommand::Token(args)) => {
            cli::print_token(&config.common.auth, &args)?
        }
        Command::Service(ServiceCommand::Migrate) => {
            let _telemetry = telemetry::init("migration-svc", &config.common.log)?;
            migration_svc::startup::migrate(&config).await?;
        }
        Command::Service(ServiceCommand::Completions { shell }) => {
            cli::print_completions(shell, Cli::command())
        }
        Command::Service(ServiceCommand::Serve) => {
            let _telemetry = telemetry::init("migration-svc", &config.common.log)?;
            let app = App::build(config).await.context("starting migration-svc")?;
            app.run_until_stopped(shutdown::signal()).await?;
        }
        Command::Run(command) => {
            let output = command.output();
            return Ok(migration_svc::cli::run(&config, command)
                .await
                .unwrap_or_else(|error| output.fail(error.as_ref())));
        }
    }
    Ok(ExitCode::SUCCESS)
}
