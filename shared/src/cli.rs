//! Command-line pieces both binaries share: `--config`, the subcommands every service has
//! (`serve`, `migrate`, `token`, which mints a development token from the configured
//! signing key), and how client subcommands reach a server.

use std::{path::PathBuf, time::Duration};

use tonic::transport::{Certificate, ClientTlsConfig, Identity};

use crate::{
    auth::{AuthError, Role, TokenMinter},
    config::AuthConfig,
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
}

impl ClientArgs {
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

/// A channel to the server and an `authorization` value for `role`.
pub async fn connect(
    args: &ClientArgs,
    default_server: &str,
    auth: &AuthConfig,
    role: Role,
) -> Result<(tonic::transport::Channel, String), ClientError> {
    let token = match &args.token {
        Some(token) => token.clone(),
        None => TokenMinter::from_config(auth)?.mint(
            "cli",
            &args.org,
            &[role],
            Duration::from_secs(3600),
        )?,
    };
    let server = server_url(
        args.server.as_deref().unwrap_or(default_server),
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
    fn an_address_without_a_scheme_is_tls_when_a_ca_or_certificate_is_given() {
        assert_eq!(server_url("svc:443", true), "https://svc:443");
        assert_eq!(server_url("http://svc:80", true), "http://svc:80");
    }
}
