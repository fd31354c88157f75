//! gRPC-Web for browsers: the tonic-web translation (HTTP/1.1 and HTTP/2, binary and
//! text framing) and the CORS policy in front of it. Only the configured origins get
//! CORS headers; with none configured, browsers on other origins are refused.

use std::time::Duration;

use http::{HeaderName, HeaderValue, Method};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Request headers a gRPC-Web client sends besides the CORS-safelisted ones.
const ALLOW_HEADERS: [&str; 6] = [
    "authorization",
    "content-type",
    "grpc-timeout",
    "traceparent",
    "x-grpc-web",
    "x-user-agent",
];

/// Response headers a gRPC-Web client must read: the status travels in them when a call
/// fails before its first message.
const EXPOSE_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// How long a browser may cache a preflight answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(10 * 60);

/// A configured origin that is not a valid header value.
#[derive(Debug, thiserror::Error)]
#[error("grpc.cors_origins: {origin:?} is not a valid origin (e.g. \"https://dash.example.com\")")]
pub struct BadOrigin {
    pub origin: String,
}

/// The CORS layer for `origins` (`scheme://host[:port]`, compared exactly; `*` allows any).
pub fn cors_layer(origins: &[String]) -> Result<CorsLayer, BadOrigin> {
    let allow_origin = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        let parsed = origins
            .iter()
            .map(|origin| parse_origin(origin))
            .collect::<Result<Vec<_>, _>>()?;
        AllowOrigin::list(parsed)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow_origin)
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers(ALLOW_HEADERS.map(HeaderName::from_static))
        .expose_headers(EXPOSE_HEADERS.map(HeaderName::from_static))
        .max_age(PREFLIGHT_MAX_AGE))
}

fn parse_origin(origin: &str) -> Result<HeaderValue, BadOrigin> {
    let bad = || BadOrigin {
        origin: origin.to_owned(),
    };
    let trimmed = origin.trim_end_matches('/');
    let (scheme, host) = trimmed.split_once("://").ok_or_else(bad)?;
    if !matches!(scheme, "http" | "https") || host.is_empty() || host.contains('/') {
        return Err(bad());
    }
    HeaderValue::from_str(trimmed).map_err(|_| bad())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_origin_with_a_trailing_slash_is_taken_without_it() {
        assert_eq!(
            parse_origin("http://localhost:8080/").unwrap(),
            "http://localhost:8080"
        );
    }

    #[test]
    fn an_origin_without_a_scheme_or_with_a_path_is_refused() {
        for origin in [
            "localhost:8080",
            "ftp://host",
            "http://host/path",
            "http://",
        ] {
            assert!(parse_origin(origin).is_err(), "{origin}");
        }
    }

    fn grpc(toml: &str) -> crate::config::GrpcConfig {
        use figment::providers::Format;
        figment::Figment::from(figment::providers::Toml::string(toml))
            .extract()
            .unwrap()
    }

    #[test]
    fn the_grpc_section_allows_no_origin_unless_it_names_some() {
        assert!(grpc("listen = \"127.0.0.1:0\"").cors_origins.is_empty());
        let named = grpc("listen = \"127.0.0.1:0\"\ncors_origins = [\"http://localhost:8080\"]");
        assert_eq!(named.cors_origins, ["http://localhost:8080"]);
    }

    #[test]
    fn no_origins_build_a_layer_that_allows_none() {
        assert!(cors_layer(&[]).is_ok());
        assert!(cors_layer(&["*".to_owned()]).is_ok());
        assert!(cors_layer(&["nonsense".to_owned()]).is_err());
    }
}
