//! Who the client is when palaverd sits behind an ingress or load balancer (issue 13): the
//! client IP from `Forwarded` / `X-Forwarded-For`, believed only when the socket's peer is a
//! trusted proxy (`PALAVER_TRUSTED_PROXIES`), and the host the client asked for.
//!
//! Owns parsing those headers and the trust decision. It must not decide what the address is
//! used for (logs today; the callers decide) nor refuse a request over a malformed header: a
//! header it cannot read is simply not believed.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::header::{FORWARDED, HOST};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use ipnet::IpNet;

use super::Shared;

/// One entry of `PALAVER_TRUSTED_PROXIES`: a CIDR (`10.0.0.0/8`) or a single address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrustedProxy(IpNet);

impl FromStr for TrustedProxy {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if let Ok(net) = IpNet::from_str(s) {
            return Ok(Self(net.trunc()));
        }
        IpAddr::from_str(s).map(|ip| Self(IpNet::from(ip))).map_err(|_| format!("{s:?} is neither a CIDR (10.0.0.0/8) nor an IP address"))
    }
}

/// The trusted proxies, as configured: a comma-separated list (empty: none).
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<TrustedProxy>);

impl FromStr for TrustedProxies {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',').filter(|e| !e.trim().is_empty()).map(TrustedProxy::from_str).collect::<Result<_, _>>().map(Self)
    }
}

impl TrustedProxies {
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|p| p.0.contains(&ip))
    }

    /// The client's address: the socket peer, unless the peer is trusted; then the hops the
    /// proxies recorded are walked from the nearest, and the first address that is not a
    /// trusted proxy is the client. An unreadable hop ends the walk at the last proxy
    /// reached: nothing a client wrote before it is believed.
    pub fn client_ip(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let mut ip = peer.to_canonical();
        if !self.contains(ip) {
            return ip;
        }
        for hop in forwarded_for(headers).into_iter().rev() {
            match hop {
                Some(addr) => {
                    ip = addr.to_canonical();
                    if !self.contains(ip) {
                        return ip;
                    }
                }
                None => return ip,
            }
        }
        ip
    }

    /// The authority (`host[:port]`) the client asked for: `X-Forwarded-Host` from a trusted
    /// peer (or `Forwarded: host=`), else `Host`.
    pub fn host<'a>(&self, peer: Option<IpAddr>, headers: &'a HeaderMap) -> Option<&'a str> {
        let forwarded = || {
            let from_forwarded =
                headers.get_all(FORWARDED).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).find_map(|e| pair(e, "host"));
            from_forwarded
                .or_else(|| headers.get("x-forwarded-host").and_then(|v| v.to_str().ok()).and_then(|v| v.split(',').next()).map(str::trim))
        };
        let trusted = peer.is_some_and(|p| self.contains(p));
        trusted.then(forwarded).flatten().or_else(|| headers.get(HOST).and_then(|v| v.to_str().ok()))
    }
}

/// The `for=` hops of `Forwarded` (RFC 7239) if the request has one, else those of
/// `X-Forwarded-For`, nearest last. `None`: a hop that is not an address (`unknown`, an
/// obfuscated identifier, garbage).
fn forwarded_for(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let values = |name| headers.get_all(name).iter().map(|v| v.to_str().ok()).collect::<Vec<_>>();
    let forwarded = values(FORWARDED.as_str());
    if !forwarded.is_empty() {
        return forwarded
            .into_iter()
            .flat_map(|v| match v {
                Some(v) => v.split(',').map(|e| pair(e, "for").and_then(parse_hop)).collect(),
                None => vec![None],
            })
            .collect();
    }
    values("x-forwarded-for")
        .into_iter()
        .flat_map(|v| match v {
            Some(v) => v.split(',').map(|h| parse_hop(h.trim())).collect(),
            None => vec![None],
        })
        .collect()
}

/// The value of `key` in one `Forwarded` element (`for=192.0.2.1;proto=https`), unquoted.
fn pair<'a>(element: &'a str, key: &str) -> Option<&'a str> {
    element.split(';').find_map(|kv| {
        let (k, v) = kv.split_once('=')?;
        k.trim().eq_ignore_ascii_case(key).then(|| v.trim().trim_matches('"'))
    })
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1` or `[2001:db8::1]:4711`.
fn parse_hop(s: &str) -> Option<IpAddr> {
    if let Ok(ip) = IpAddr::from_str(s) {
        return Some(ip);
    }
    if let Ok(sa) = SocketAddr::from_str(s) {
        return Some(sa.ip());
    }
    s.strip_prefix('[').and_then(|r| r.strip_suffix(']')).and_then(|v6| IpAddr::from_str(v6).ok())
}

/// The client's address for logs; `None` when the request did not come through palaverd's
/// listener (no socket address).
pub struct ClientIp(pub Option<IpAddr>);

impl FromRequestParts<Shared> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, st: &Shared) -> Result<Self, Self::Rejection> {
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        Ok(Self(peer.map(|p| st.cfg.http.trusted_proxies.client_ip(p, &parts.headers))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn trusted(list: &[&str]) -> TrustedProxies {
        list.join(",").parse().unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_cannot_forge_its_address() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9"), ("forwarded", "for=198.51.100.1")]);
        assert_eq!(t.client_ip(ip("192.0.2.50"), &h), ip("192.0.2.50"));
        assert_eq!(TrustedProxies::default().client_ip(ip("10.1.2.3"), &h), ip("10.1.2.3"), "nothing trusted by default");
    }

    #[test]
    fn a_trusted_chain_is_walked_to_the_first_untrusted_hop() {
        let t = trusted(&["10.0.0.0/8", "127.0.0.1"]);
        // The client may prepend anything; only what trusted proxies appended counts.
        let h = headers(&[("x-forwarded-for", "1.1.1.1, 203.0.113.9, 10.0.0.7")]);
        assert_eq!(t.client_ip(ip("127.0.0.1"), &h), ip("203.0.113.9"));
        let split = headers(&[("x-forwarded-for", "1.1.1.1"), ("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &split), ip("203.0.113.9"), "all header lines, ports dropped");
        let all_proxies = headers(&[("x-forwarded-for", "10.0.0.9, 10.0.0.8")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &all_proxies), ip("10.0.0.9"));
        assert_eq!(t.client_ip(ip("10.0.0.1"), &HeaderMap::new()), ip("10.0.0.1"), "no header: the proxy itself");
    }

    #[test]
    fn forwarded_wins_over_x_forwarded_for_and_garbage_stops_the_walk() {
        let t = trusted(&["10.0.0.0/8", "::1"]);
        let h = headers(&[
            ("x-forwarded-for", "198.51.100.1"),
            ("forwarded", r#"for=192.0.2.60;proto=https, for="[2001:db8:cafe::17]:4711";by=10.0.0.2"#),
        ]);
        assert_eq!(t.client_ip(ip("::1"), &h), ip("2001:db8:cafe::17"));
        let garbage = headers(&[("x-forwarded-for", "203.0.113.9, not-an-ip, 10.0.0.5")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &garbage), ip("10.0.0.5"), "nothing before an unreadable hop is believed");
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(t.client_ip(ip("10.0.0.1"), &unknown), ip("10.0.0.1"));
    }

    #[test]
    fn ipv4_mapped_peers_match_ipv4_ranges() {
        let t = trusted(&["127.0.0.0/8"]);
        let h = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(t.client_ip(ip("::ffff:127.0.0.1"), &h), ip("203.0.113.9"));
    }

    #[test]
    fn the_requested_host_is_forwarded_only_by_a_trusted_peer() {
        let t = trusted(&["10.0.0.0/8"]);
        let h = headers(&[("host", "palaver.chat.svc"), ("x-forwarded-host", "chat.example.com")]);
        assert_eq!(t.host(Some(ip("10.0.0.1")), &h), Some("chat.example.com"));
        assert_eq!(t.host(Some(ip("192.0.2.1")), &h), Some("palaver.chat.svc"));
        assert_eq!(t.host(None, &h), Some("palaver.chat.svc"));
    }

    #[test]
    fn proxies_parse_as_cidrs_or_addresses() {
        assert!("10.0.0.0/8".parse::<TrustedProxy>().is_ok());
        assert!("10.1.2.3/8".parse::<TrustedProxy>().is_ok(), "host bits are ignored");
        assert!(" fd00::/8 ".parse::<TrustedProxy>().is_ok());
        assert!("192.0.2.1".parse::<TrustedProxy>().is_ok());
        let e = "10.0.0.0/33".parse::<TrustedProxy>().unwrap_err();
        assert!(e.contains("neither a CIDR"), "{e}");
        assert!("example.com".parse::<TrustedProxy>().is_err());
        assert!("".parse::<TrustedProxies>().unwrap().0.is_empty(), "an empty setting trusts nobody");
        assert_eq!("10.0.0.0/8, 192.0.2.1,".parse::<TrustedProxies>().unwrap().0.len(), 2);
        assert!("10.0.0.0/8,bogus".parse::<TrustedProxies>().is_err());
    }
}
