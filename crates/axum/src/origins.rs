//! Which browser origins may use the server: the WebSocket upgrade and every request
//! that is not a plain read (POST, a CORS preflight, ...) are refused with 403
//! `origin_not_allowed` when they carry an `Origin` that is not allowed, and CORS
//! answers only allowed origins.
//!
//! Allowed: the server's own origin (the `Origin`'s host and port are the request's
//! `Host`: the web app this server serves), the origins an operator lists
//! (`--allowed-origin`), and, in development, any port of `localhost`, `127.0.0.1` and
//! `[::1]` (a Vite dev server). Development means the listener is on a loopback address
//! unless [`LoopbackOrigins`] says otherwise. A request without `Origin` (curl, Node,
//! any non-browser client) is not a browser acting for someone else and is not checked:
//! the check protects browsers' users from other sites, it is not authentication.

use crate::app::AppState;
use crate::http::ApiError;
use crate::wire::codes;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri, header, request};
use axum::response::{IntoResponse, Response};
use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The hosts whose origins (any port) are allowed in development.
const LOOPBACK_HOSTS: [&str; 3] = ["localhost", "127.0.0.1", "[::1]"];
/// How long a browser may cache a preflight's answer.
const PREFLIGHT_MAX_AGE: Duration = Duration::from_secs(600);
/// How much of a refused `Origin` a refusal quotes.
const QUOTE_MAX: usize = 200;

/// A web origin: `http` or `https`, a host, a port (default ports are implied).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    https: bool,
    /// Lowercase; an IPv6 address keeps its brackets.
    host: String,
    port: u16,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum OriginError {
    #[error("{0:?} is not an origin: expected scheme://host[:port], e.g. https://app.example.com")]
    Malformed(String),
    #[error("{0:?}: an origin's scheme is http or https")]
    Scheme(String),
    #[error("{0:?}: an origin has no path, query or user (scheme://host[:port] only)")]
    NotBare(String),
}

impl Origin {
    fn default_port(https: bool) -> u16 {
        if https { 443 } else { 80 }
    }

    /// Whether this origin is `host[:port]`, a `Host` header (or HTTP/2 authority):
    /// the origin of the page is this server as the client addressed it. The scheme is
    /// not compared: behind a proxy that terminates TLS the server speaks HTTP for an
    /// `https` page; a missing port is the origin's scheme's default.
    fn is_host(&self, host: &str) -> bool {
        let Ok(authority) = host.parse::<axum::http::uri::Authority>() else {
            return false;
        };
        authority.as_str() == host
            && authority.host().eq_ignore_ascii_case(&self.host)
            && authority
                .port_u16()
                .unwrap_or(Self::default_port(self.https))
                == self.port
    }

    fn is_loopback(&self) -> bool {
        LOOPBACK_HOSTS.contains(&self.host.as_str())
    }
}

impl FromStr for Origin {
    type Err = OriginError;

    fn from_str(raw: &str) -> Result<Self, Self::Err> {
        let malformed = || OriginError::Malformed(raw.to_owned());
        let uri: Uri = raw.parse().map_err(|_| malformed())?;
        let https = match uri.scheme_str() {
            Some(s) if s.eq_ignore_ascii_case("https") => true,
            Some(s) if s.eq_ignore_ascii_case("http") => false,
            Some(_) => return Err(OriginError::Scheme(raw.to_owned())),
            None => return Err(malformed()),
        };
        let authority = uri.authority().ok_or_else(malformed)?;
        // `http://host` parses with the path "/"; anything more is not an origin.
        let rest = uri.path_and_query().map_or("", |pq| pq.as_str());
        if authority.as_str().contains('@') || !(rest.is_empty() || rest == "/") {
            return Err(OriginError::NotBare(raw.to_owned()));
        }
        if authority.host().is_empty() {
            return Err(malformed());
        }
        Ok(Self {
            https,
            host: authority.host().to_ascii_lowercase(),
            port: authority.port_u16().unwrap_or(Self::default_port(https)),
        })
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.host)?;
        if self.port != Self::default_port(self.https) {
            write!(f, ":{}", self.port)?;
        }
        Ok(())
    }
}

/// Whether the loopback origins (`http://localhost:*`, `http://127.0.0.1:*`,
/// `http://[::1]:*`) are allowed.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LoopbackOrigins {
    /// Development is when the server listens on a loopback address: only this machine
    /// reaches it, so its dev servers may too.
    #[default]
    WhenListeningOnLoopback,
    Allowed,
    Refused,
}

/// The allowed origins of one server.
#[derive(Clone, Debug)]
pub(crate) struct OriginPolicy {
    listed: Vec<Origin>,
    loopback: bool,
}

impl OriginPolicy {
    pub fn new(
        listed: Vec<Origin>,
        loopback: LoopbackOrigins,
        listening_on_loopback: bool,
    ) -> Self {
        let loopback = match loopback {
            LoopbackOrigins::WhenListeningOnLoopback => listening_on_loopback,
            LoopbackOrigins::Allowed => true,
            LoopbackOrigins::Refused => false,
        };
        Self { listed, loopback }
    }

    /// Whether a request with this `Origin`, addressed to `host`, may go on.
    pub fn allows(&self, origin: &HeaderValue, host: Option<&str>) -> bool {
        // `null` (sandboxed frames, file: pages, some redirects) and anything that is
        // not an origin are never allowed.
        let Some(origin) = origin.to_str().ok().and_then(|o| o.parse::<Origin>().ok()) else {
            return false;
        };
        host.is_some_and(|host| origin.is_host(host))
            || (self.loopback && origin.is_loopback())
            || self.listed.contains(&origin)
    }

    /// CORS for the allowed origins: GET and POST, with `content-type` and
    /// `authorization`; no credentials (Hearth's are bearer tokens, never cookies).
    pub fn cors(self: &Arc<Self>) -> CorsLayer {
        let policy = self.clone();
        CorsLayer::new()
            .allow_origin(AllowOrigin::predicate(
                move |origin: &HeaderValue, parts: &request::Parts| {
                    policy.allows(origin, host(&parts.headers, &parts.uri))
                },
            ))
            .allow_methods([Method::GET, Method::POST])
            .allow_headers([header::CONTENT_TYPE, header::AUTHORIZATION])
            .expose_headers([header::RETRY_AFTER])
            .max_age(PREFLIGHT_MAX_AGE)
    }
}

/// The host the client addressed: `Host` (HTTP/1.1), or the URI's authority (HTTP/2).
fn host<'a>(headers: &'a HeaderMap, uri: &'a Uri) -> Option<&'a str> {
    headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .or_else(|| uri.authority().map(|a| a.as_str()))
}

/// Middleware: a WebSocket upgrade, or any request but a plain GET or HEAD, whose
/// `Origin` is present and not allowed gets 403 `origin_not_allowed`, counted in
/// `hearth_refused_total{reason="origin"}`.
pub(crate) async fn check(
    axum::extract::State(app): axum::extract::State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let Some(origin) = request.headers().get(header::ORIGIN) else {
        return next.run(request).await;
    };
    let plain_read = (request.method() == Method::GET || request.method() == Method::HEAD)
        && !request.headers().contains_key(header::UPGRADE);
    if plain_read
        || app
            .origins
            .allows(origin, host(request.headers(), request.uri()))
    {
        return next.run(request).await;
    }
    app.metrics.refused(REFUSAL_REASON);
    let quoted: String = String::from_utf8_lossy(origin.as_bytes())
        .chars()
        .take(QUOTE_MAX)
        .collect();
    ApiError::new(
        StatusCode::FORBIDDEN,
        codes::ORIGIN_NOT_ALLOWED,
        format!(
            "origin {quoted:?} is not allowed: this server takes requests from its own origin and those it is configured with (--allowed-origin)"
        ),
    )
    .into_response()
}

/// The `reason` label of `hearth_refused_total` for a refused origin.
pub(crate) const REFUSAL_REASON: &str = "origin";

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(listed: &[&str], loopback: bool) -> OriginPolicy {
        OriginPolicy {
            listed: listed.iter().map(|o| o.parse().unwrap()).collect(),
            loopback,
        }
    }

    fn allows(policy: &OriginPolicy, origin: &str, host: &str) -> bool {
        policy.allows(&HeaderValue::from_str(origin).unwrap(), Some(host))
    }

    #[test]
    fn origins_parse_to_scheme_host_and_port() {
        let o: Origin = "HTTPS://App.Example.com:443/".parse().unwrap();
        assert_eq!(o.to_string(), "https://app.example.com");
        let o: Origin = "http://[::1]:5173".parse().unwrap();
        assert_eq!(o.to_string(), "http://[::1]:5173");
        assert!(o.is_loopback());
        for bad in [
            "app.example.com",
            "ftp://app.example.com",
            "https://app.example.com/path",
            "https://user@app.example.com",
            "https://app.example.com?q",
            "null",
            "",
        ] {
            assert!(bad.parse::<Origin>().is_err(), "{bad}");
        }
    }

    #[test]
    fn own_origin_is_the_host_the_request_names() {
        let p = policy(&[], false);
        assert!(allows(&p, "http://127.0.0.1:8787", "127.0.0.1:8787"));
        assert!(allows(&p, "https://hearth.example", "hearth.example"));
        assert!(allows(&p, "http://Hearth.Example", "hearth.example:80"));
        assert!(!allows(&p, "http://127.0.0.1:8788", "127.0.0.1:8787"));
        assert!(!allows(&p, "https://hearth.example", "hearth.example:8443"));
        assert!(!allows(&p, "https://evil.example", "hearth.example"));
        assert!(!allows(&p, "null", "hearth.example"));
        assert!(!allows(&p, "http://localhost:5173", "127.0.0.1:8787"));
        assert!(
            !p.allows(&HeaderValue::from_static("http://127.0.0.1:8787"), None),
            "no Host: nothing to be the same origin as"
        );
    }

    #[test]
    fn loopback_origins_only_in_development_and_listed_ones_always() {
        let dev = policy(&["https://app.example"], true);
        let prod = policy(&["https://app.example"], false);
        for origin in [
            "http://localhost:5173",
            "http://127.0.0.1:3000",
            "http://[::1]:8080",
        ] {
            assert!(allows(&dev, origin, "hearth.example"), "{origin}");
            assert!(!allows(&prod, origin, "hearth.example"), "{origin}");
        }
        assert!(!allows(&dev, "http://127.0.0.2:3000", "hearth.example"));
        assert!(!allows(
            &dev,
            "http://localhost.evil.example",
            "hearth.example"
        ));
        for p in [&dev, &prod] {
            assert!(allows(p, "https://app.example", "hearth.example"));
            assert!(allows(p, "https://app.example:443", "hearth.example"));
            assert!(!allows(p, "http://app.example", "hearth.example"));
            assert!(!allows(p, "https://app.example:8443", "hearth.example"));
        }
    }

    #[test]
    fn development_is_a_loopback_listener_unless_told() {
        use LoopbackOrigins::*;
        assert!(OriginPolicy::new(vec![], WhenListeningOnLoopback, true).loopback);
        assert!(!OriginPolicy::new(vec![], WhenListeningOnLoopback, false).loopback);
        assert!(OriginPolicy::new(vec![], Allowed, false).loopback);
        assert!(!OriginPolicy::new(vec![], Refused, true).loopback);
    }
}
