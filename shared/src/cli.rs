//! Command-line pieces both binaries share: the `token` subcommand that mints a
//! development token from the configured signing key.

use std::time::Duration;

use crate::{
    auth::{AuthError, Role, TokenMinter},
    config::AuthConfig,
};

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

pub fn mint_token(auth: &AuthConfig, args: &TokenArgs) -> Result<String, AuthError> {
    let roles = args
        .roles
        .iter()
        .map(|r| r.parse())
        .collect::<Result<Vec<Role>, _>>()?;
    TokenMinter::from_config(auth)?.mint(&args.subject, &args.org, &roles, args.ttl)
}
