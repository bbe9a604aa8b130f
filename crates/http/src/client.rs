//! The client's address, believed from `X-Forwarded-For` only when a trusted proxy says it.

use std::net::{IpAddr, SocketAddr};

use axum::extract::{ConnectInfo, FromRef, FromRequestParts};
use axum::http::header;
use axum::http::request::Parts;
use coss_identity::{IdentityError, Network};

use crate::Gate;

/// The proxies (addresses or CIDR networks, e.g. the nginx in front of COSS) whose
/// `X-Forwarded-For` is believed. Empty by default: the TCP peer is then the client, and the
/// header is ignored, since anyone can send it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<Network>);

impl TrustedProxies {
    /// No proxy: the TCP peer is the client.
    #[must_use]
    pub fn none() -> TrustedProxies {
        TrustedProxies(Vec::new())
    }

    /// Parses addresses and CIDR networks (`127.0.0.1`, `10.0.0.0/8`, `::1`).
    pub fn parse<S: AsRef<str>>(list: &[S]) -> Result<TrustedProxies, IdentityError> {
        list.iter()
            .map(|text| Network::parse(text.as_ref()))
            .collect::<Result<_, _>>()
            .map(TrustedProxies)
    }

    /// Whether `ip` is a trusted proxy.
    #[must_use]
    pub fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|network| network.contains(ip))
    }
}

/// The client's address: the TCP peer, unless the peer is a trusted proxy, in which case the
/// nearest address in `X-Forwarded-For` (read right to left: each proxy appends the address it
/// saw) that is not itself a trusted proxy. Where the header runs out, or holds something that
/// is not an address, the last address a trusted proxy vouched for is the client. `None` when
/// the connection's address is unknown (a test calling the router directly).
pub fn client_addr(parts: &Parts, proxies: &TrustedProxies) -> Option<IpAddr> {
    let peer = parts
        .extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip().to_canonical())?;
    if !proxies.trusts(peer) {
        return Some(peer);
    }
    let mut client = peer;
    for value in parts.headers.get_all("x-forwarded-for").iter().rev() {
        let Ok(text) = value.to_str() else {
            return Some(client);
        };
        for hop in text.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else {
                return Some(client);
            };
            client = ip.to_canonical();
            if !proxies.trusts(client) {
                return Some(client);
            }
        }
    }
    Some(client)
}

/// The client's address (see [`client_addr`]).
#[derive(Debug, Clone, Copy)]
pub struct ClientAddr(pub Option<IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddr
where
    Gate: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Ok(ClientAddr(client_addr(
            parts,
            &Gate::from_ref(state).proxies,
        )))
    }
}

/// Who is signing in, for the new-device email and the per-address throttle: the User-Agent
/// (first 200 characters) and the client's address.
#[derive(Debug, Clone)]
pub struct ClientInfo(pub coss_identity::Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo
where
    Gate: FromRef<S>,
{
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        Ok(ClientInfo(coss_identity::Client {
            user_agent: agent.chars().take(200).collect(),
            ip: client_addr(parts, &Gate::from_ref(state).proxies),
        }))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parts(peer: &str, forwarded: &[&str]) -> Parts {
        let mut request = axum::http::Request::builder().uri("/");
        for value in forwarded {
            request = request.header("x-forwarded-for", *value);
        }
        let (mut parts, ()) = request.body(()).unwrap().into_parts();
        parts
            .extensions
            .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        parts
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    #[test]
    fn a_forwarded_address_from_anyone_but_a_trusted_proxy_is_ignored() {
        let nginx = TrustedProxies::parse(&["10.0.0.0/8"]).unwrap();
        let spoofed = parts("203.0.113.9:4000", &["1.2.3.4"]);
        assert_eq!(client_addr(&spoofed, &nginx), ip("203.0.113.9"));
        let no_proxies = parts("10.0.0.2:4000", &["1.2.3.4"]);
        assert_eq!(
            client_addr(&no_proxies, &TrustedProxies::none()),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn behind_a_trusted_proxy_the_nearest_untrusted_hop_is_the_client() {
        let proxies = TrustedProxies::parse(&["10.0.0.0/8", "::1"]).unwrap();
        // The client put a fake address first; nginx appended the real one.
        let request = parts("10.0.0.2:4000", &["6.6.6.6, 198.51.100.7"]);
        assert_eq!(client_addr(&request, &proxies), ip("198.51.100.7"));
        // Two proxies, the header split over two lines.
        let chained = parts("[::1]:4000", &["6.6.6.6, 198.51.100.7", "10.1.1.1"]);
        assert_eq!(client_addr(&chained, &proxies), ip("198.51.100.7"));
        // Garbage to the left of trusted hops: the last vouched-for address.
        let garbage = parts("10.0.0.2:4000", &["nonsense, 10.0.0.9"]);
        assert_eq!(client_addr(&garbage, &proxies), ip("10.0.0.9"));
        // No header at all: the proxy itself.
        assert_eq!(
            client_addr(&parts("10.0.0.2:1", &[]), &proxies),
            ip("10.0.0.2")
        );
        // IPv4-mapped IPv6 peers are their IPv4 address.
        let mapped = parts("[::ffff:10.0.0.2]:4000", &["198.51.100.7"]);
        assert_eq!(client_addr(&mapped, &proxies), ip("198.51.100.7"));
    }
}

/// The address a client is counted under (rate limits, connection caps): IPv4 as is, IPv6 by
/// its /64 prefix, since one host holds a whole /64.
#[must_use]
pub fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(std::net::Ipv6Addr::from(prefix))
            }
        },
    }
}

/// Open connections per client address ([`client_key`]), capped: an address leaves the map
/// with its last connection, so the map holds only addresses with something open.
#[derive(Debug, Default, Clone)]
pub struct AddressSlots(std::sync::Arc<std::sync::Mutex<std::collections::HashMap<IpAddr, usize>>>);

/// One counted connection; gives its place back when dropped.
#[derive(Debug)]
pub struct AddressSlot {
    slots: AddressSlots,
    key: IpAddr,
}

impl AddressSlots {
    /// Takes a place for `ip`, unless it already holds `most`.
    #[must_use]
    pub fn take(&self, ip: IpAddr, most: usize) -> Option<AddressSlot> {
        let key = client_key(ip);
        let mut open = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let count = open.entry(key).or_default();
        if *count >= most {
            return None;
        }
        *count += 1;
        Some(AddressSlot {
            slots: self.clone(),
            key,
        })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        let mut open = self
            .slots
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(count) = open.get_mut(&self.key) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.key);
            }
        }
    }
}
