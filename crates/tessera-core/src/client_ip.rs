//! Which address a request came from (`web.clientRemoteIP`): the peer's, unless the peer is a trusted
//! proxy, in which case the header the proxy sets is believed as far as the trusted hops go.

use std::net::IpAddr;
use std::str::FromStr;

/// An IP network such as `10.0.0.0/8` or `fd00::/8` (a bare address is a network of one).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    address: IpAddr,
    prefix: u8,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0:?} is not an IP network (expected CIDR notation such as 10.0.0.0/8 or fd00::/8)")]
pub struct NotANetwork(pub String);

impl FromStr for Network {
    type Err = NotANetwork;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let invalid = || NotANetwork(text.to_owned());
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.trim().parse().map_err(|_| invalid())?;
        let bits = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => bits,
            // Digits only: `u8::from_str` would take `+8`.
            Some(prefix) if !prefix.is_empty() && prefix.bytes().all(|b| b.is_ascii_digit()) => {
                prefix.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(invalid)?
            }
            Some(_) => return Err(invalid()),
        };
        Ok(Self { address, prefix })
    }
}

impl Network {
    pub fn contains(&self, candidate: IpAddr) -> bool {
        match (self.address, canonical(candidate)) {
            (IpAddr::V4(network), IpAddr::V4(ip)) => {
                same_prefix(network.to_bits().into(), ip.to_bits().into(), 32, self.prefix)
            }
            (IpAddr::V6(network), IpAddr::V6(ip)) => same_prefix(network.to_bits(), ip.to_bits(), 128, self.prefix),
            _ => false,
        }
    }
}

fn same_prefix(network: u128, ip: u128, bits: u8, prefix: u8) -> bool {
    let ignored = u32::from(bits - prefix);
    // A shift by the full width is an overflow in Rust: `/0` matches everything.
    network.checked_shr(ignored).unwrap_or(0) == ip.checked_shr(ignored).unwrap_or(0)
}

/// IPv4 peers on a dual-stack socket arrive as `::ffff:a.b.c.d`; they are IPv4 addresses.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// `web.clientRemoteIP`: the header a trusted proxy writes the client's address into, and the proxies
/// trusted to write it. Without trusted proxies the header is never believed (anyone could send it).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClientIpRule {
    pub header: Option<String>,
    pub trusted_proxies: Vec<Network>,
}

impl ClientIpRule {
    fn trusted(&self, ip: IpAddr) -> bool {
        self.trusted_proxies.iter().any(|network| network.contains(ip))
    }

    /// The client's address for a request from `peer` carrying `header_value` (the configured header's
    /// value, if present). A chain such as `X-Forwarded-For: client, proxy1, proxy2` grows to the right
    /// at each proxy, so it is read from the right: trusted hops are skipped and the first untrusted one
    /// is the client. Everything left of it was written by the client and proves nothing. A malformed
    /// hop ends the walk, and the peer's own address is the answer when no hop qualifies.
    pub fn client(&self, peer: IpAddr, header_value: Option<&str>) -> IpAddr {
        let peer = canonical(peer);
        let Some(chain) = header_value.filter(|_| self.header.is_some() && self.trusted(peer)) else {
            return peer;
        };
        for hop in chain.rsplit(',') {
            let Ok(ip) = hop.trim().parse::<IpAddr>() else { break };
            let ip = canonical(ip);
            if !self.trusted(ip) {
                return ip;
            }
        }
        peer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn rule(trusted: &[&str]) -> ClientIpRule {
        ClientIpRule {
            header: Some("X-Forwarded-For".into()),
            trusted_proxies: trusted.iter().map(|n| n.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn networks_parse_and_contain() {
        let private: Network = "10.0.0.0/8".parse().unwrap();
        assert!(private.contains(ip("10.200.1.2")));
        assert!(!private.contains(ip("11.0.0.1")));
        assert!(private.contains(ip("::ffff:10.1.2.3")), "a mapped IPv4 peer is IPv4");
        let single: Network = "192.0.2.7".parse().unwrap();
        assert!(single.contains(ip("192.0.2.7")) && !single.contains(ip("192.0.2.8")));
        let v6: Network = "fd00::/8".parse().unwrap();
        assert!(v6.contains(ip("fd12::1")) && !v6.contains(ip("fe80::1")) && !v6.contains(ip("10.0.0.1")));
        let everything: Network = "0.0.0.0/0".parse().unwrap();
        assert!(everything.contains(ip("203.0.113.9")));
        for bad in ["10.0.0.0/33", "10.0.0/8", "fd00::/129", "10.0.0.0/", "10.0.0.0/+8", "proxy", ""] {
            assert!(bad.parse::<Network>().is_err(), "{bad}");
        }
    }

    #[test]
    fn the_header_is_believed_only_from_a_trusted_proxy() {
        let rule = rule(&["10.0.0.0/8"]);
        assert_eq!(rule.client(ip("10.0.0.5"), Some("203.0.113.9")), ip("203.0.113.9"));
        assert_eq!(rule.client(ip("198.51.100.1"), Some("203.0.113.9")), ip("198.51.100.1"), "untrusted peer");
        assert_eq!(rule.client(ip("10.0.0.5"), None), ip("10.0.0.5"), "no header");
        let no_proxies = ClientIpRule { header: Some("X-Real-IP".into()), trusted_proxies: Vec::new() };
        assert_eq!(no_proxies.client(ip("10.0.0.5"), Some("203.0.113.9")), ip("10.0.0.5"));
        let no_header = ClientIpRule { header: None, ..rule.clone() };
        assert_eq!(no_header.client(ip("10.0.0.5"), Some("203.0.113.9")), ip("10.0.0.5"));
    }

    #[test]
    fn a_chain_is_read_from_the_right_past_trusted_hops_only() {
        let rule = rule(&["10.0.0.0/8"]);
        // The client prepended a forged address; the first untrusted hop from the right is the client.
        assert_eq!(rule.client(ip("10.0.0.5"), Some("1.1.1.1, 203.0.113.9, 10.0.0.7")), ip("203.0.113.9"));
        // A malformed hop ends the walk: nothing left of it is attributable to a trusted proxy.
        assert_eq!(rule.client(ip("10.0.0.5"), Some("203.0.113.9, junk, 10.0.0.7")), ip("10.0.0.5"));
        // Only trusted hops: the peer itself.
        assert_eq!(rule.client(ip("10.0.0.5"), Some("10.0.0.6, 10.0.0.7")), ip("10.0.0.5"));
        assert_eq!(rule.client(ip("10.0.0.5"), Some("")), ip("10.0.0.5"));
    }
}
