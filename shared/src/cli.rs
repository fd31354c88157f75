//! Command-line pieces both binaries share: `--config`, the subcommands every service has
//! (`serve`, `migrate`, `token`, which mints a development token from the configured
//! signing key, `completions`), how client subcommands reach a server, and how they report:
//! a summary line or one JSON object (`--output json`), a failure's gRPC code on stderr.

use crate::error::code_name;
use std::{
    io::IsTerminal,
    path::{Path, PathBuf},
    process::ExitCode,
    time::Duration,
};

use clap::{CommandFactory, FromArgMatches};
use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::{
    auth::{AuthError, Role, TokenMinter},
    config::{AuthConfig, ClientConfig, Common, ServiceConfig},
    shutdown,
    startup::{self, ServiceBinary},
    telemetry,
};

/// `--config FILE` (or `STOWAGE_CONFIG`), for every subcommand.
#[derive(Debug, Clone, clap::Args)]
pub struct ConfigArg {
    /// TOML configuration file; `STOWAGE__SECTION__KEY` variables override it.
    #[arg(long, global = true, env = "STOWAGE_CONFIG")]
    pub config: Option<PathBuf>,
}

/// The subcommands every service has.
#[derive(Debug, Clone, clap::Subcommand)]
pub enum ServiceCommand {
    /// Run the gRPC server and the service's background work (the default).
    Serve,
    /// Apply the database schema migrations and exit.
    Migrate,
    /// Print a bearer token signed with the configured key (development).
    Token(TokenArgs),
    /// Print a shell completion script, e.g. `completions bash > /etc/bash_completion.d/NAME`.
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// A service binary's command line: `--config`, then one of the subcommands every service
/// has or one of the binary's own, `C` (none: `serve`).
#[derive(Debug, clap::Parser)]
#[command(version)]
struct CommandLine<C: clap::Subcommand> {
    #[command(flatten)]
    config: ConfigArg,
    #[command(subcommand)]
    command: Option<Subcommand<C>>,
}

#[derive(Debug, clap::Subcommand)]
enum Subcommand<C: clap::Subcommand> {
    #[command(flatten)]
    Service(ServiceCommand),
    #[command(flatten)]
    Own(C),
}

/// The command line of service binary `B`, described by `about`, with its own subcommands
/// `C`.
fn command_line<B: ServiceBinary, C: clap::Subcommand>(about: &'static str) -> clap::Command {
    CommandLine::<C>::command().name(B::NAME).about(about)
}

/// A service binary's `main`: parses the command line, runs a subcommand every service has
/// (`serve` when none is given) and returns `None`, or returns the binary's own
/// subcommand with the `--config` file for the binary to run.
pub async fn service_main<B: ServiceBinary, C: clap::Subcommand>(
    about: &'static str,
) -> Result<Option<(C, Option<PathBuf>)>, BoxError> {
    let matches = command_line::<B, C>(about).get_matches();
    let cli = CommandLine::<C>::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    let file = cli.config.config;
    match cli
        .command
        .unwrap_or(Subcommand::Service(ServiceCommand::Serve))
    {
        Subcommand::Own(command) => Ok(Some((command, file))),
        Subcommand::Service(command) => {
            run_service::<B>(command, file.as_deref(), || command_line::<B, C>(about)).await?;
            Ok(None)
        }
    }
}

async fn run_service<B: ServiceBinary>(
    command: ServiceCommand,
    file: Option<&Path>,
    cli: impl FnOnce() -> clap::Command,
) -> Result<(), BoxError> {
    if let ServiceCommand::Completions { shell } = command {
        print_completions(shell, cli())?;
        return Ok(());
    }
    let config = B::Config::load(file).map_err(|e| format!("loading configuration: {e}"))?;
    match command {
        ServiceCommand::Completions { .. } => {}
        ServiceCommand::Token(args) => print_token(&config.common().auth, &args)?,
        ServiceCommand::Migrate => {
            let _telemetry = telemetry::init(B::NAME, &config.common().log)?;
            startup::migrated_pool(config.common(), B::SCHEMA).await?;
        }
        ServiceCommand::Serve => {
            let _telemetry = telemetry::init(B::NAME, &config.common().log)?;
            let service = B::build(config)
                .await
                .map_err(|e| format!("starting {}: {e}", B::NAME))?;
            service.run_until_stopped(shutdown::signal()).await?;
        }
    }
    Ok(())
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// `completions SHELL`: the completion script of `command` (the binary's whole CLI).
fn print_completions(
    shell: clap_complete::Shell,
    mut command: clap::Command,
) -> std::io::Result<()> {
    use std::io::Write;
    let name = command.get_name().to_owned();
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut command, name, &mut script);
    match std::io::stdout().write_all(&script) {
        // `completions bash | head` closes the pipe early: not a failure.
        Err(error) if error.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `token`: prints a bearer token for development and scripts.
#[derive(Debug, Clone, clap::Args)]
pub struct TokenArgs {
    /// Organization (tenant) the token is scoped to.
    #[arg(long)]
    pub org: String,
    /// Role to grant: MEMBER, ORG_ADMIN or SUPER_ADMIN (repeatable).
    #[arg(long = "role", default_value = "MEMBER")]
    pub roles: Vec<String>,
    /// Subject (user or service) the token names.
    #[arg(long, default_value = "developer")]
    pub subject: String,
    /// Lifetime, e.g. `12h`, `30m`.
    #[arg(long, default_value = "12h", value_parser = crate::config::humantime_secs::parse)]
    pub ttl: Duration,
}

/// `token`: prints a token on stdout (nothing else, so scripts can capture it).
pub fn print_token(auth: &AuthConfig, args: &TokenArgs) -> Result<(), AuthError> {
    println!("{}", mint_token(auth, args)?);
    Ok(())
}

pub fn mint_token(auth: &AuthConfig, args: &TokenArgs) -> Result<String, AuthError> {
    let roles = args
        .roles
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<Role>, _>>()?;
    TokenMinter::from_config(auth)?.mint(&args.subject, &args.org, &roles, args.ttl)
}

/// How a client subcommand reaches a server.
#[derive(Debug, Clone, clap::Args)]
pub struct ClientArgs {
    /// Server address: `http(s)://host:port`, or `host:port` for plaintext (as grpcurl
    /// takes it).
    #[arg(long, env = "STOWAGE_SERVER")]
    pub server: Option<String>,
    /// Bearer token; without one, a token is minted from the configured signing key.
    #[arg(long, env = "STOWAGE_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Organization (tenant) of a minted token.
    #[arg(long = "as-org", default_value = "demo")]
    pub org: String,
    /// PEM root certificate(s) the server's certificate must chain to; implies TLS for a
    /// `host:port` server. Without it, an `https://` server is checked against the system's
    /// trust store.
    #[arg(long, env = "STOWAGE_CA", value_name = "FILE")]
    pub ca: Option<PathBuf>,
    /// PEM client certificate chain, for a server that requires mutual TLS (with `--key`).
    #[arg(
        long,
        env = "STOWAGE_CLIENT_CERT",
        value_name = "FILE",
        requires = "key"
    )]
    pub cert: Option<PathBuf>,
    /// PEM private key of `--cert`.
    #[arg(
        long,
        env = "STOWAGE_CLIENT_KEY",
        value_name = "FILE",
        requires = "cert"
    )]
    pub key: Option<PathBuf>,
    /// `text`: details and a final summary line; `json`: one JSON object on stdout.
    #[arg(long, value_enum, default_value_t = Output::Text)]
    pub output: Output,
}

/// What a client subcommand prints on stdout.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum Output {
    /// Details, then one summary line.
    #[default]
    Text,
    /// One JSON object (on failure `{"error": {"code": …, "message": …}}`), for scripts.
    Json,
}

impl Output {
    /// Whether to draw a progress bar: text output to a terminal (stderr) only.
    pub fn progress(self) -> bool {
        self == Self::Text && std::io::stderr().is_terminal()
    }

    /// Prints a command's result: `summary` as text, or `json` as one line.
    pub fn finish(self, summary: &str, json: &serde_json::Value) {
        match self {
            Self::Text => println!("{summary}"),
            Self::Json => println!("{json}"),
        }
    }

    /// Reports a failed client command and returns its exit status, 1: the gRPC code (or
    /// `UNAVAILABLE` for a server that cannot be reached) and message on stderr and, with
    /// `json`, as an error object on stdout.
    pub fn fail(self, error: &(dyn std::error::Error + 'static)) -> ExitCode {
        let name = grpc_code(error).map(code_name);
        let message = match find::<tonic::Status>(error) {
            Some(status) => status.message().to_owned(),
            None => error_chain(error),
        };
        match name {
            Some(name) => eprintln!("error: {name}: {message}"),
            None => eprintln!("error: {message}"),
        }
        if self == Self::Json {
            println!(
                "{}",
                serde_json::json!({ "error": { "code": name, "message": message } })
            );
        }
        ExitCode::FAILURE
    }
}

fn find<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut next = Some(error);
    while let Some(error) = next {
        if let Some(found) = error.downcast_ref::<T>() {
            return Some(found);
        }
        next = error.source();
    }
    None
}

fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut next = error.source();
    while let Some(source) = next {
        let more = source.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        next = source.source();
    }
    text
}

/// The gRPC code of a failed call in `error`'s chain; `UNAVAILABLE` when the server could
/// not be reached.
pub fn grpc_code(error: &(dyn std::error::Error + 'static)) -> Option<tonic::Code> {
    if let Some(status) = find::<tonic::Status>(error) {
        return Some(status.code());
    }
    find::<ClientError>(error).and_then(|error| match error {
        ClientError::Connect { .. } => Some(tonic::Code::Unavailable),
        _ => None,
    })
}

impl ClientArgs {
    /// These arguments with what they leave out taken from `[client]` in the configuration.
    fn or_config(&self, config: &ClientConfig) -> Self {
        let mut args = self.clone();
        args.server = args.server.or_else(|| config.server.clone());
        if args.ca.is_none() {
            args.ca = config.ca.clone();
        }
        if args.cert.is_none() && args.key.is_none() {
            args.cert = config.cert.clone();
            args.key = config.key.clone();
        }
        args
    }

    /// Whether any TLS setting was given (a `host:port` server is then reached over TLS).
    fn wants_tls(&self) -> bool {
        self.ca.is_some() || self.cert.is_some()
    }

    /// The client TLS settings: `--ca` (else the system roots) and `--cert`/`--key`.
    fn tls_config(&self) -> Result<ClientTlsConfig, ClientError> {
        let read = |path: &PathBuf| {
            std::fs::read(path).map_err(|source| ClientError::Read {
                path: path.clone(),
                source,
            })
        };
        let mut config = match &self.ca {
            Some(ca) => ClientTlsConfig::new().ca_certificate(Certificate::from_pem(read(ca)?)),
            None => ClientTlsConfig::new().with_native_roots(),
        };
        if let (Some(cert), Some(key)) = (&self.cert, &self.key) {
            config = config.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        Ok(config)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error(transparent)]
    Auth(#[from] AuthError),
    #[error("cannot reach {server}: {source}")]
    Connect {
        server: String,
        source: tonic::transport::Error,
    },
    #[error("invalid server address {0:?}")]
    Address(String),
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("TLS settings for {server}: {source}")]
    Tls {
        server: String,
        source: tonic::transport::Error,
    },
    #[error("{0}")]
    Token(String),
}

/// A channel to the server and an `authorization` value for `role`. The server and TLS
/// files come from `args`, else `[client]`, else the configured local server.
pub async fn connect(
    args: &ClientArgs,
    common: &Common,
    role: Role,
) -> Result<(tonic::transport::Channel, String), ClientError> {
    let args = &args.or_config(&common.client);
    let default_server = local_server(&common.grpc);
    let token = match &args.token {
        Some(token) => token.clone(),
        None => TokenMinter::from_config(&common.auth)?.mint(
            "cli",
            &args.org,
            &[role],
            Duration::from_secs(3600),
        )?,
    };
    let server = server_url(
        args.server.as_deref().unwrap_or(&default_server),
        args.wants_tls(),
    );
    let mut endpoint = tonic::transport::Endpoint::from_shared(server.clone())
        .map_err(|_| ClientError::Address(server.clone()))?;
    if server.starts_with("https://") {
        endpoint = endpoint
            .tls_config(args.tls_config()?)
            .map_err(|source| ClientError::Tls {
                server: server.clone(),
                source,
            })?;
    }
    let channel = endpoint
        .tcp_nodelay(true)
        .connect()
        .await
        .map_err(|source| ClientError::Connect { server, source })?;
    Ok((channel, format!("Bearer {token}")))
}

/// A server address as a URL: `host:port` without a scheme is plaintext HTTP/2, or TLS
/// when `tls` (a CA or client certificate was given).
pub fn server_url(server: &str, tls: bool) -> String {
    let server = server.trim();
    if server.contains("://") {
        server.to_owned()
    } else if tls {
        format!("https://{server}")
    } else {
        format!("http://{server}")
    }
}

/// `message` as a request carrying `authorization` (from [`connect`]).
pub fn authorized<T>(message: T, authorization: &str) -> Result<tonic::Request<T>, ClientError> {
    let mut request = tonic::Request::new(message);
    let value = authorization
        .parse()
        .map_err(|_| ClientError::Token("the token is not a valid header value".into()))?;
    request.metadata_mut().insert("authorization", value);
    Ok(request)
}

/// The local server a client subcommand talks to by default: the configured port, over
/// TLS as `localhost` when the configuration has `[grpc] tls`.
pub fn local_server(grpc: &crate::config::GrpcConfig) -> String {
    match grpc.tls {
        Some(_) => format!("https://localhost:{}", grpc.listen.port()),
        None => format!("http://127.0.0.1:{}", grpc.listen.port()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_address_without_a_scheme_is_plaintext() {
        assert_eq!(
            server_url("127.0.0.1:50051", false),
            "http://127.0.0.1:50051"
        );
        assert_eq!(
            server_url("db.internal:50051", false),
            "http://db.internal:50051"
        );
        assert_eq!(server_url("https://svc:443", false), "https://svc:443");
        assert_eq!(server_url(" http://[::1]:1 ", false), "http://[::1]:1");
    }

    #[test]
    fn a_status_anywhere_in_the_chain_names_its_code() {
        #[derive(Debug, thiserror::Error)]
        #[error("restoring")]
        struct Outer(#[source] tonic::Status);
        let error = Outer(tonic::Status::not_found("no such job"));
        assert_eq!(grpc_code(&error), Some(tonic::Code::NotFound));
        assert_eq!(code_name(tonic::Code::NotFound), "NOT_FOUND");
        let other = ClientError::Token("bad".into());
        assert_eq!(grpc_code(&other), None);
    }

    #[test]
    fn an_address_without_a_scheme_is_tls_when_a_ca_or_certificate_is_given() {
        assert_eq!(server_url("svc:443", true), "https://svc:443");
        assert_eq!(server_url("http://svc:80", true), "http://svc:80");
    }
}
