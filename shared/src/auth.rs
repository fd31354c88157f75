//! Bearer-token authentication: signed JWTs (HS256 or EdDSA) carry the caller's subject,
//! organization and roles. The interceptor verifies the token and puts the [`Principal`]
//! into the request; handlers ask it for roles and scope every query to its organization.

use std::{collections::BTreeSet, fmt, str::FromStr, sync::Arc, time::Duration};

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use tonic::{Request, Status, service::Interceptor};

use crate::{api::InvalidArgument, config::AuthConfig};

/// The longest bearer token accepted, in bytes. The server takes larger header lists (see
/// `server::MAX_HEADER_LIST_SIZE`) so that a longer token is refused here, as
/// UNAUTHENTICATED, rather than by HTTP/2.
pub const MAX_TOKEN_LEN: usize = 8 * 1024;

/// The longest `sub` or `org` claim accepted, in characters.
const MAX_CLAIM_CHARS: usize = 256;

/// What a caller may do. Roles nest: a super admin is an org admin is a member.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Role {
    Member,
    OrgAdmin,
    SuperAdmin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Member => "MEMBER",
            Role::OrgAdmin => "ORG_ADMIN",
            Role::SuperAdmin => "SUPER_ADMIN",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = AuthError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_uppercase().as_str() {
            "MEMBER" => Ok(Role::Member),
            "ORG_ADMIN" => Ok(Role::OrgAdmin),
            "SUPER_ADMIN" => Ok(Role::SuperAdmin),
            _ => Err(AuthError::UnknownRole(s.to_owned())),
        }
    }
}

/// The authenticated caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Principal {
    pub subject: String,
    /// Organization (tenant) whose data the caller sees.
    pub organization: String,
    pub roles: BTreeSet<Role>,
}

impl Principal {
    /// Whether the caller holds `role` or a role above it.
    pub fn has(&self, role: Role) -> bool {
        self.roles.iter().any(|held| *held >= role)
    }

    pub fn require(&self, role: Role) -> Result<(), AuthError> {
        if self.has(role) {
            Ok(())
        } else {
            Err(AuthError::MissingRole(role))
        }
    }

    pub fn is_super_admin(&self) -> bool {
        self.has(Role::SuperAdmin)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("missing bearer token: send `authorization: Bearer <token>`")]
    MissingToken,
    #[error("invalid bearer token: {0}")]
    InvalidToken(String),
    #[error("bearer token expired")]
    Expired,
    #[error("unknown role {0:?}")]
    UnknownRole(String),
    #[error("this call needs the {0} role")]
    MissingRole(Role),
    #[error("the bearer token carries no role; every call needs MEMBER, ORG_ADMIN or SUPER_ADMIN")]
    NoRole,
    #[error("auth is not configured: {0}")]
    Config(String),
}

impl From<AuthError> for Status {
    fn from(error: AuthError) -> Self {
        match error {
            AuthError::MissingToken
            | AuthError::InvalidToken(_)
            | AuthError::Expired
            | AuthError::UnknownRole(_) => Status::unauthenticated(error.to_string()),
            AuthError::MissingRole(_) | AuthError::NoRole => {
                Status::permission_denied(error.to_string())
            }
            AuthError::Config(_) => Status::internal("authentication is misconfigured"),
        }
    }
}

/// Token claims, as minted by [`TokenMinter`] and expected by [`Authenticator`].
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Claims {
    pub sub: String,
    pub org: String,
    pub roles: Vec<String>,
    pub exp: u64,
    pub iat: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iss: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
}

/// Verifies bearer tokens. Cheap to clone.
#[derive(Clone)]
pub struct Authenticator {
    inner: Arc<Verifier>,
}

struct Verifier {
    hs256: Option<DecodingKey>,
    ed25519: Option<DecodingKey>,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authenticator")
            .field("hs256", &self.inner.hs256.is_some())
            .field("ed25519", &self.inner.ed25519.is_some())
            .field("issuer", &self.inner.issuer)
            .finish()
    }
}

impl Authenticator {
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthError> {
        let hs256 = config.hs256_secret.as_ref().map(|secret| {
            let secret = secret.expose_secret().as_bytes();
            if secret.len() < 32 {
                Err(AuthError::Config(
                    "auth.hs256_secret must be at least 32 bytes".into(),
                ))
            } else {
                Ok(DecodingKey::from_secret(secret))
            }
        });
        let ed25519 = config.ed25519_public_key_pem.as_ref().map(|pem| {
            DecodingKey::from_ed_pem(pem.as_bytes())
                .map_err(|e| AuthError::Config(format!("auth.ed25519_public_key_pem: {e}")))
        });
        let verifier = Verifier {
            hs256: hs256.transpose()?,
            ed25519: ed25519.transpose()?,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        };
        if verifier.hs256.is_none() && verifier.ed25519.is_none() {
            return Err(AuthError::Config(
                "set auth.hs256_secret or auth.ed25519_public_key_pem".into(),
            ));
        }
        Ok(Self {
            inner: Arc::new(verifier),
        })
    }

    /// Verifies a raw token (length, signature, `exp`, issuer and audience when
    /// configured, claims). A verified token with no role is [`AuthError::NoRole`]: every
    /// call behind authentication needs at least MEMBER.
    pub fn verify(&self, token: &str) -> Result<Principal, AuthError> {
        if token.len() > MAX_TOKEN_LEN {
            return Err(AuthError::InvalidToken(format!(
                "longer than {MAX_TOKEN_LEN} bytes"
            )));
        }
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| AuthError::InvalidToken(e.to_string()))?;
        let key = match header.alg {
            Algorithm::HS256 => self.inner.hs256.as_ref(),
            Algorithm::EdDSA => self.inner.ed25519.as_ref(),
            _ => None,
        }
        .ok_or_else(|| {
            AuthError::InvalidToken(format!("algorithm {:?} not accepted", header.alg))
        })?;
        let mut validation = Validation::new(header.alg);
        validation.leeway = 30;
        validation.set_required_spec_claims(&["exp", "sub"]);
        match &self.inner.issuer {
            Some(issuer) => validation.set_issuer(&[issuer]),
            None => validation.iss = None,
        }
        match &self.inner.audience {
            Some(audience) => validation.set_audience(&[audience]),
            None => validation.validate_aud = false,
        }
        let claims = jsonwebtoken::decode::<Claims>(token, key, &validation)
            .map_err(|e| match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => AuthError::Expired,
                _ => AuthError::InvalidToken(e.to_string()),
            })?
            .claims;
        if claims.org.trim().is_empty() {
            return Err(AuthError::InvalidToken("claim `org` is empty".into()));
        }
        for (name, value) in [("sub", &claims.sub), ("org", &claims.org)] {
            if value.chars().count() > MAX_CLAIM_CHARS || value.chars().any(char::is_control) {
                return Err(AuthError::InvalidToken(format!(
                    "claim `{name}` must be at most {MAX_CLAIM_CHARS} characters with no \
                     control characters"
                )));
            }
        }
        let roles: BTreeSet<Role> = claims
            .roles
            .iter()
            .map(|r| r.parse())
            .collect::<Result<_, _>>()?;
        if roles.is_empty() {
            return Err(AuthError::NoRole);
        }
        Ok(Principal {
            subject: claims.sub,
            organization: claims.org,
            roles,
        })
    }

    /// A tonic interceptor that authenticates every call it wraps.
    pub fn interceptor(&self) -> AuthInterceptor {
        AuthInterceptor { auth: self.clone() }
    }
}

/// Reads `authorization: Bearer <token>`, verifies it, and stores the [`Principal`].
#[derive(Clone, Debug)]
pub struct AuthInterceptor {
    auth: Authenticator,
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or(AuthError::MissingToken)?;
        if header.as_encoded_bytes().len() > MAX_TOKEN_LEN + "Bearer ".len() {
            return Err(AuthError::InvalidToken(format!(
                "authorization header is longer than {MAX_TOKEN_LEN} bytes"
            ))
            .into());
        }
        let header = header
            .to_str()
            .map_err(|_| AuthError::InvalidToken("authorization header is not ASCII".into()))?;
        let token = header
            .strip_prefix("Bearer ")
            .or_else(|| header.strip_prefix("bearer "))
            .ok_or(AuthError::MissingToken)?
            .trim();
        let principal = self.auth.verify(token).inspect_err(|error| {
            tracing::debug!(%error, "rejected bearer token");
        })?;
        request.extensions_mut().insert(principal);
        Ok(request)
    }
}

/// The caller of an authenticated request.
pub fn principal<T>(request: &Request<T>) -> Result<Principal, AuthError> {
    request
        .extensions()
        .get::<Principal>()
        .cloned()
        .ok_or(AuthError::MissingToken)
}

/// A request admitted: its caller, then the caller's `role` where the method needs one,
/// then the request parsed into `C`. The role comes before the request, so a caller
/// without it learns nothing of whether its request was well formed.
pub fn admit<T, C>(request: Request<T>, role: Option<Role>) -> Result<(Principal, C), Status>
where
    C: TryFrom<T, Error = InvalidArgument>,
{
    let caller = principal(&request)?;
    if let Some(role) = role {
        caller.require(role)?;
    }
    let command = C::try_from(request.into_inner())?;
    Ok((caller, command))
}

/// Mints tokens for development and tests from the configured signing key.
pub struct TokenMinter {
    key: EncodingKey,
    algorithm: Algorithm,
    issuer: Option<String>,
    audience: Option<String>,
}

impl fmt::Debug for TokenMinter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TokenMinter")
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

impl TokenMinter {
    pub fn from_config(config: &AuthConfig) -> Result<Self, AuthError> {
        let (key, algorithm) = if let Some(pem) = &config.ed25519_private_key_pem {
            let key = EncodingKey::from_ed_pem(pem.expose_secret().as_bytes())
                .map_err(|e| AuthError::Config(format!("auth.ed25519_private_key_pem: {e}")))?;
            (key, Algorithm::EdDSA)
        } else if let Some(secret) = &config.hs256_secret {
            (
                EncodingKey::from_secret(secret.expose_secret().as_bytes()),
                Algorithm::HS256,
            )
        } else {
            return Err(AuthError::Config(
                "minting needs auth.hs256_secret or auth.ed25519_private_key_pem".into(),
            ));
        };
        Ok(Self {
            key,
            algorithm,
            issuer: config.issuer.clone(),
            audience: config.audience.clone(),
        })
    }

    pub fn mint(
        &self,
        subject: &str,
        organization: &str,
        roles: &[Role],
        ttl: Duration,
    ) -> Result<String, AuthError> {
        let now = jsonwebtoken::get_current_timestamp();
        let claims = Claims {
            sub: subject.to_owned(),
            org: organization.to_owned(),
            roles: roles.iter().map(|r| r.as_str().to_owned()).collect(),
            iat: now,
            exp: now + ttl.as_secs(),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
        };
        self.mint_claims(&claims)
    }

    /// Signs arbitrary claims (tests use it for expired or malformed tokens).
    pub fn mint_claims(&self, claims: &Claims) -> Result<String, AuthError> {
        jsonwebtoken::encode(&Header::new(self.algorithm), claims, &self.key)
            .map_err(|e| AuthError::Config(e.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use secrecy::SecretString;

    use super::*;

    fn config(secret: &str) -> AuthConfig {
        AuthConfig {
            hs256_secret: Some(SecretString::from(secret)),
            ..AuthConfig::default()
        }
    }

    const SECRET: &str = "0123456789abcdef0123456789abcdef";

    /// A command whose every request is malformed.
    #[derive(Debug)]
    struct Malformed;

    impl TryFrom<()> for Malformed {
        type Error = InvalidArgument;

        fn try_from((): ()) -> Result<Self, InvalidArgument> {
            Err(InvalidArgument::new("field", "is malformed"))
        }
    }

    fn request_of(role: Option<Role>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(role) = role {
            request.extensions_mut().insert(Principal {
                subject: "u".into(),
                organization: "o".into(),
                roles: BTreeSet::from([role]),
            });
        }
        request
    }

    #[test]
    fn admission_checks_the_caller_then_the_role_then_the_request() {
        let code = |request, role| {
            let admitted: Result<(Principal, Malformed), Status> = admit(request, role);
            admitted.unwrap_err().code()
        };
        let unauthenticated = code(request_of(None), Some(Role::Member));
        assert_eq!(unauthenticated, tonic::Code::Unauthenticated);
        let member = code(request_of(Some(Role::Member)), Some(Role::OrgAdmin));
        assert_eq!(member, tonic::Code::PermissionDenied);
        let admin = code(request_of(Some(Role::SuperAdmin)), Some(Role::OrgAdmin));
        assert_eq!(admin, tonic::Code::InvalidArgument);
        let anyone = code(request_of(Some(Role::Member)), None);
        assert_eq!(anyone, tonic::Code::InvalidArgument);
    }

    #[test]
    fn minted_tokens_verify_into_principals() {
        let minter = TokenMinter::from_config(&config(SECRET)).unwrap();
        let token = minter.mint("alice", "acme", &[Role::OrgAdmin], Duration::from_secs(60));
        let principal = Authenticator::from_config(&config(SECRET))
            .unwrap()
            .verify(&token.unwrap());
        let principal = principal.unwrap();
        assert_eq!(principal.organization, "acme");
        assert!(principal.has(Role::Member) && principal.has(Role::OrgAdmin));
        assert!(!principal.has(Role::SuperAdmin));
    }

    #[test]
    fn expired_and_foreign_tokens_are_rejected() {
        let minter = TokenMinter::from_config(&config(SECRET)).unwrap();
        let now = jsonwebtoken::get_current_timestamp();
        let expired = minter
            .mint_claims(&Claims {
                sub: "a".into(),
                org: "o".into(),
                roles: vec![],
                iat: now - 7200,
                exp: now - 3600,
                iss: None,
                aud: None,
            })
            .unwrap();
        let auth = Authenticator::from_config(&config(SECRET)).unwrap();
        assert!(matches!(auth.verify(&expired), Err(AuthError::Expired)));
        let other = TokenMinter::from_config(&config("another-secret-of-at-least-32-bytes!"))
            .unwrap()
            .mint("a", "o", &[], Duration::from_secs(60))
            .unwrap();
        assert!(matches!(
            auth.verify(&other),
            Err(AuthError::InvalidToken(_))
        ));
        assert!(matches!(
            auth.verify("not-a-jwt"),
            Err(AuthError::InvalidToken(_))
        ));
    }

    #[test]
    fn a_token_with_no_role_is_permission_denied() {
        let minter = TokenMinter::from_config(&config(SECRET)).unwrap();
        let token = minter.mint("a", "o", &[], Duration::from_secs(60)).unwrap();
        let auth = Authenticator::from_config(&config(SECRET)).unwrap();
        let error = auth.verify(&token).unwrap_err();
        assert!(matches!(error, AuthError::NoRole));
        assert_eq!(Status::from(error).code(), tonic::Code::PermissionDenied);
    }

    #[test]
    fn oversized_tokens_and_control_characters_in_claims_are_unauthenticated() {
        let auth = Authenticator::from_config(&config(SECRET)).unwrap();
        let error = auth.verify(&"a".repeat(MAX_TOKEN_LEN + 1)).unwrap_err();
        assert_eq!(Status::from(error).code(), tonic::Code::Unauthenticated);
        let minter = TokenMinter::from_config(&config(SECRET)).unwrap();
        let token = minter
            .mint("a", "o\0rg", &[Role::Member], Duration::from_secs(60))
            .unwrap();
        let error = auth.verify(&token).unwrap_err();
        assert_eq!(Status::from(error).code(), tonic::Code::Unauthenticated);
    }

    #[test]
    fn short_secrets_are_a_config_error() {
        assert!(matches!(
            Authenticator::from_config(&config("short")),
            Err(AuthError::Config(_))
        ));
    }
}
