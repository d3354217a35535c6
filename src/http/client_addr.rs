//! The client's address, for per-address rate limits.
//!
//! The peer of the TCP connection is the client, unless the peer is one of the configured
//! trusted proxies (`TRUSTED_PROXIES`, e.g. the Kubernetes ingress): then the client is the
//! right-most address of `X-Forwarded-For` that is not itself a trusted proxy (each proxy
//! appends the address it saw, so everything left of that is what the client claimed and
//! is ignored). With no trusted proxy configured, `X-Forwarded-For` is never read: a client
//! cannot pick its own address.
//!
//! IPv6 clients are keyed by their /64: one host usually holds a whole /64, so keying by
//! the full address would give it 2^64 allowances.

use std::net::IpAddr;

use ipnet::IpNet;
use poem::Request;

/// The proxies whose `X-Forwarded-For` is believed.
#[derive(Debug, Clone, Default)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses a comma-separated list of addresses (`10.0.0.7`, `::1`) and CIDRs
    /// (`10.0.0.0/8`); blank means none.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in raw.split(',').map(str::trim).filter(|i| !i.is_empty()) {
            let net = match item.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => item.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!("{item:?} is neither an address nor a CIDR (e.g. 10.0.0.0/8)")
                })?,
            };
            nets.push(net);
        }
        Ok(Self(nets))
    }

    /// True when `ip` is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|n| n.contains(&ip))
    }

    /// The client of a request that came from `peer` with these `X-Forwarded-For` values.
    pub fn client(&self, peer: IpAddr, forwarded_for: &[&str]) -> IpAddr {
        let peer = canonical(peer);
        if !self.contains(peer) {
            return peer;
        }
        let mut client = peer;
        let hops = forwarded_for
            .iter()
            .flat_map(|h| h.split(','))
            .map(str::trim)
            .collect::<Vec<_>>();
        for hop in hops.into_iter().rev() {
            let Ok(ip) = hop.parse::<IpAddr>() else {
                // Garbage in the header: the last hop we could read is the client.
                break;
            };
            client = canonical(ip);
            if !self.contains(client) {
                break;
            }
        }
        client
    }

    /// The client of `req`, as the rate-limit key (`203.0.113.7`, `2001:db8:1:2::/64`).
    pub fn client_key(&self, req: &Request) -> String {
        let peer = req
            .remote_addr()
            .as_socket_addr()
            .map(|a| a.ip())
            .unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let headers: Vec<&str> = req
            .headers()
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .collect();
        key(self.client(peer, &headers))
    }
}

/// IPv4-mapped IPv6 addresses (`::ffff:1.2.3.4`) as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

/// The rate-limit key of a client address: IPv4 as is, IPv6 by its /64.
fn key(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => {
            let s = v6.segments();
            let net = std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
            format!("{net}/64")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_read_only_from_a_trusted_peer() {
        let none = TrustedProxies::parse("").unwrap();
        assert_eq!(
            none.client(ip("10.0.0.5"), &["203.0.113.7"]),
            ip("10.0.0.5")
        );
        let t = TrustedProxies::parse("10.0.0.0/8, 192.168.1.1").unwrap();
        assert_eq!(
            t.client(ip("172.16.0.1"), &["203.0.113.7"]),
            ip("172.16.0.1")
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), &["203.0.113.7"]),
            ip("203.0.113.7")
        );
        // The client's own claims, left of the last untrusted hop, are ignored.
        assert_eq!(
            t.client(ip("10.0.0.5"), &["1.1.1.1, 203.0.113.7, 192.168.1.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            t.client(ip("10.0.0.5"), &["1.1.1.1", "203.0.113.7"]),
            ip("203.0.113.7")
        );
        // No header, or only proxies: the left-most proxy.
        assert_eq!(t.client(ip("10.0.0.5"), &[]), ip("10.0.0.5"));
        assert_eq!(t.client(ip("10.0.0.5"), &["10.1.1.1"]), ip("10.1.1.1"));
        // Garbage stops the walk at the last readable hop.
        assert_eq!(
            t.client(ip("10.0.0.5"), &["203.0.113.7, junk"]),
            ip("10.0.0.5")
        );
        assert_eq!(
            t.client(ip("::ffff:10.0.0.5"), &["203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_64() {
        assert_eq!(key(ip("2001:db8:1:2:3:4:5:6")), "2001:db8:1:2::/64");
        assert_eq!(key(ip("2001:db8:1:2::9")), "2001:db8:1:2::/64");
        assert_eq!(key(ip("203.0.113.7")), "203.0.113.7");
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(TrustedProxies::parse("10.0.0.0/8,nope").is_err());
        assert!(TrustedProxies::parse("10.0.0.0/33").is_err());
        assert!(TrustedProxies::parse(" ").unwrap().0.is_empty());
    }
}
