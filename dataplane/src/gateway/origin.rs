//! Which web pages may open a WebSocket to palaverd (issue 13): a browser sends `Origin` with
//! every upgrade, so a page on another site cannot ride a user's token unless its origin is
//! allowed (`PALAVER_ALLOWED_ORIGINS`). Same-origin is always allowed (the web app served by
//! palaverd, or behind the same ingress host), and so are clients that send no `Origin` at all
//! (SDKs, bots, mobile apps: not browsers).
//!
//! Owns the origin decision. It must not authenticate: a token is checked after this.

use std::net::SocketAddr;
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::ORIGIN;
use axum::http::request::Parts;

use super::Shared;
use crate::error::ApiError;

/// One entry of `PALAVER_ALLOWED_ORIGINS`: `scheme://host[:port]`, or `*` for any origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AllowedOrigin {
    Any,
    Exact(String),
}

impl FromStr for AllowedOrigin {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s == "*" {
            return Ok(Self::Any);
        }
        let bad = || format!("{s:?} is not an origin: expected scheme://host[:port] without a path, or *");
        let (scheme, authority) = s.split_once("://").ok_or_else(bad)?;
        let valid_scheme = !scheme.is_empty() && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c));
        let valid_authority = !authority.is_empty() && authority.chars().all(|c| c.is_ascii_alphanumeric() || "-.:[]_".contains(c));
        if !valid_scheme || !valid_authority {
            return Err(bad());
        }
        Ok(Self::Exact(s.to_ascii_lowercase()))
    }
}

/// `PALAVER_ALLOWED_ORIGINS`: a comma-separated list (empty: same-origin only).
#[derive(Debug, Clone, Default)]
pub struct AllowedOrigins(Vec<AllowedOrigin>);

impl FromStr for AllowedOrigins {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').filter(|e| !e.trim().is_empty()).map(AllowedOrigin::from_str).collect::<Result<_, _>>().map(Self)
    }
}

impl AllowedOrigins {
    /// Whether a request with this `Origin` (if any) to this authority may proceed.
    pub fn allow(&self, origin: Option<&str>, host: Option<&str>) -> bool {
        allowed(origin, host, &self.0)
    }
}

fn allowed(origin: Option<&str>, host: Option<&str>, list: &[AllowedOrigin]) -> bool {
    let Some(origin) = origin else { return true };
    let origin = origin.trim().to_ascii_lowercase();
    if list.iter().any(|a| matches!(a, AllowedOrigin::Any) || *a == AllowedOrigin::Exact(origin.clone())) {
        return true;
    }
    // Browsers leave default ports out of Origin, and a Host header of the same page does too.
    let authority = origin.split_once("://").map(|(_, a)| a);
    authority.is_some_and(|a| host.is_some_and(|h| h.eq_ignore_ascii_case(a)))
}

/// Passes when the request's origin is allowed; otherwise `forbidden` (403 JSON).
pub struct OriginChecked;

impl FromRequestParts<Shared> for OriginChecked {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        let origin = match parts.headers.get(ORIGIN) {
            None => None,
            Some(v) => Some(v.to_str().map_err(|_| ApiError::forbidden("Origin header is not ASCII"))?),
        };
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let host = st.cfg.http.trusted_proxies.host(peer, &parts.headers);
        if st.cfg.http.allowed_origins.allow(origin, host) {
            Ok(Self)
        } else {
            let origin = origin.unwrap_or_default();
            tracing::info!(origin, host, "websocket upgrade refused: origin not allowed");
            Err(ApiError::forbidden(format!(
                "origin {origin} may not open a WebSocket here: it is not this site and not in PALAVER_ALLOWED_ORIGINS"
            )))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(s: &[&str]) -> Vec<AllowedOrigin> {
        s.join(",").parse::<AllowedOrigins>().unwrap().0
    }

    #[test]
    fn no_origin_is_not_a_browser_and_passes() {
        assert!(allowed(None, Some("chat.example.com"), &[]));
    }

    #[test]
    fn same_origin_passes_by_default_and_other_sites_do_not() {
        assert!(allowed(Some("https://chat.example.com"), Some("chat.example.com"), &[]));
        assert!(allowed(Some("http://127.0.0.1:8081"), Some("127.0.0.1:8081"), &[]));
        assert!(allowed(Some("HTTPS://Chat.Example.com"), Some("chat.example.COM"), &[]));
        assert!(!allowed(Some("https://evil.example"), Some("chat.example.com"), &[]));
        assert!(!allowed(Some("http://127.0.0.1:9999"), Some("127.0.0.1:8081"), &[]), "another port is another origin");
        assert!(!allowed(Some("null"), Some("chat.example.com"), &[]));
        assert!(!allowed(Some("https://chat.example.com"), None, &[]));
    }

    #[test]
    fn listed_origins_and_the_wildcard_pass() {
        let l = list(&["https://app.example.com", "http://localhost:5173"]);
        assert!(allowed(Some("https://app.example.com"), Some("chat.example.com"), &l));
        assert!(allowed(Some("http://localhost:5173"), Some("chat.example.com"), &l));
        assert!(!allowed(Some("https://app.example.com.evil"), Some("chat.example.com"), &l));
        assert!(allowed(Some("https://anything.example"), Some("chat.example.com"), &list(&["*"])));
    }

    #[test]
    fn origins_are_validated_when_configured() {
        assert_eq!("HTTPS://App.Example.com".parse::<AllowedOrigin>(), Ok(AllowedOrigin::Exact("https://app.example.com".into())));
        assert!("".parse::<AllowedOrigins>().unwrap().0.is_empty());
        assert!("https://a.example, bogus".parse::<AllowedOrigins>().is_err());
        for bad in ["app.example.com", "https://app.example.com/", "https://", "https://a b", "*.example.com"] {
            assert!(bad.parse::<AllowedOrigin>().is_err(), "{bad} should be refused");
        }
    }
}
