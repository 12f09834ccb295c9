//! The client's IP address, as consents, audit entries and the sign-up limits record it. Behind
//! a reverse proxy every connection comes from the proxy; `CANVASS_TRUSTED_PROXIES` names the
//! proxies whose `X-Forwarded-For` is believed. The header is read from the right: each hop a
//! trusted proxy added is passed over, and the first address that is not a trusted proxy is the
//! client. Anything to its left was written by the client itself and may be made up.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};

use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use ipnet::IpNet;

use super::AppState;

/// The address a request came from, through any trusted proxies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientIp(pub IpAddr);

impl ClientIp {
    /// The client behind `peer` (the connection's other end), believing `X-Forwarded-For`
    /// only as far as `trusted` proxies wrote it.
    pub fn resolve(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> Self {
        let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
        let mut client = peer;
        if !is_trusted(&client) {
            return Self(client);
        }
        let hops: Vec<&str> = headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // A hop we cannot read: the last one we could is as far as we can trust.
                break;
            };
            client = ip;
            if !is_trusted(&client) {
                break;
            }
        }
        Self(client)
    }

    /// The scheme the client asked with: `https` when a trusted proxy in front says so
    /// (`X-Forwarded-Proto`, its last value), else `http`, the only one canvass serves itself.
    pub fn scheme(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> &'static str {
        let forwarded = trusted.iter().any(|net| net.contains(&peer))
            && headers
                .get_all("x-forwarded-proto")
                .iter()
                .next_back()
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.rsplit(',').next())
                .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"));
        if forwarded { "https" } else { "http" }
    }

    /// The key the sign-up limits count under: the address, or for IPv6 its /64, which one
    /// household or server usually holds whole.
    pub fn limit_key(self) -> IpAddr {
        match self.0 {
            IpAddr::V4(ip) => IpAddr::V4(ip),
            IpAddr::V6(ip) => {
                let network = u128::from(ip) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(network))
            }
        }
    }
}

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = StatusCode;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, StatusCode> {
        let ConnectInfo(peer) = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .copied()
            .ok_or(StatusCode::INTERNAL_SERVER_ERROR)?;
        Ok(Self::resolve(
            peer.ip(),
            &parts.headers,
            &state.trusted_proxies,
        ))
    }
}

/// Parses `CANVASS_TRUSTED_PROXIES`: comma-separated addresses or CIDR networks.
pub fn parse_trusted_proxies(list: &str) -> Result<Vec<IpNet>, String> {
    list.split(',')
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| {
            item.parse::<IpNet>()
                .or_else(|_| item.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| format!("'{item}' is not an IP address or a CIDR network"))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        headers
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_client_is_the_first_untrusted_hop_from_the_right() {
        let trusted = parse_trusted_proxies("10.0.0.0/8, 127.0.0.1").unwrap();
        let resolve =
            |peer: &str, xff: &[&str]| ClientIp::resolve(ip(peer), &headers(xff), &trusted).0;
        // Straight from the internet: the header is the client's own words.
        assert_eq!(resolve("203.0.113.9", &["198.51.100.1"]), ip("203.0.113.9"));
        // Through the proxy: what the proxy saw.
        assert_eq!(resolve("127.0.0.1", &["198.51.100.1"]), ip("198.51.100.1"));
        // A made-up entry to the left of what the proxy wrote is not believed.
        assert_eq!(
            resolve("127.0.0.1", &["6.6.6.6, 198.51.100.1, 10.1.2.3"]),
            ip("198.51.100.1")
        );
        assert_eq!(
            resolve("10.9.9.9", &["6.6.6.6", "198.51.100.1"]),
            ip("198.51.100.1")
        );
        // No header, or nonsense: the proxy's own address.
        assert_eq!(resolve("127.0.0.1", &[]), ip("127.0.0.1"));
        assert_eq!(resolve("127.0.0.1", &["not-an-ip"]), ip("127.0.0.1"));
        // No proxies trusted: the header is never read.
        let none = ClientIp::resolve(ip("127.0.0.1"), &headers(&["198.51.100.1"]), &[]);
        assert_eq!(none.0, ip("127.0.0.1"));
    }

    #[test]
    fn ipv6_clients_are_limited_by_their_64() {
        let key = |s: &str| ClientIp(ip(s)).limit_key();
        assert_eq!(key("2001:db8:1:2::1"), key("2001:db8:1:2:ffff::9"));
        assert_ne!(key("2001:db8:1:2::1"), key("2001:db8:1:3::1"));
        assert_eq!(key("192.0.2.1"), ip("192.0.2.1"));
    }

    #[test]
    fn a_bad_proxy_list_is_refused() {
        assert!(parse_trusted_proxies("10.0.0.0/33").is_err());
        assert!(parse_trusted_proxies("proxy.example.org").is_err());
        assert_eq!(parse_trusted_proxies("").unwrap(), Vec::new());
    }
}
