//! The destination guard (SSRF): which resolved addresses sluice may connect to.
//!
//! Checked on the address actually connected to, after DNS resolution, so a name that
//! resolves (or re-resolves) to an internal address is caught.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// Why an address is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Denied {
    Loopback,
    Private,
    LinkLocal,
    UniqueLocal,
    Unspecified,
    Multicast,
    Reserved,
}

impl Denied {
    /// A short name for logs and error bodies.
    pub fn as_str(self) -> &'static str {
        match self {
            Denied::Loopback => "loopback",
            Denied::Private => "private",
            Denied::LinkLocal => "link-local",
            Denied::UniqueLocal => "unique-local",
            Denied::Unspecified => "unspecified",
            Denied::Multicast => "multicast",
            Denied::Reserved => "reserved",
        }
    }
}

/// Decides whether sluice may connect to an address, given the operator's allow list.
#[derive(Clone, Debug, Default)]
pub struct Guard {
    allow: Vec<IpNet>,
}

impl Guard {
    /// A guard that lets the listed networks through even when they are internal.
    pub fn new(allow: Vec<IpNet>) -> Guard {
        Guard { allow }
    }

    /// `Ok` when `ip` may be connected to.
    pub fn check(&self, ip: IpAddr) -> Result<(), Denied> {
        if self.allow.iter().any(|n| n.contains(&ip)) {
            return Ok(());
        }
        // An IPv4-mapped or -embedded IPv6 address is judged as the IPv4 address it carries,
        // and the allow list is consulted for that form too.
        if let IpAddr::V6(v6) = ip {
            if let Some(v4) = embedded_v4(v6) {
                return self.check(IpAddr::V4(v4));
            }
        }
        match classify(ip) {
            Some(why) => Err(why),
            None => Ok(()),
        }
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible (`::a.b.c.d`),
/// NAT64 (`64:ff9b::/96`) or 6to4 (`2002::/16`) address. (The local-use NAT64 prefix,
/// `64:ff9b:1::/48`, embeds it where the operator's prefix length says: refused whole.)
fn embedded_v4(v6: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = v6.segments();
    let tail = || Ipv4Addr::new((s[6] >> 8) as u8, s[6] as u8, (s[7] >> 8) as u8, s[7] as u8);
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    if s[..6] == [0, 0, 0, 0, 0, 0] && !(s[6] == 0 && s[7] <= 1) {
        return Some(tail());
    }
    if s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
        return Some(tail());
    }
    if s[0] == 0x2002 {
        return Some(Ipv4Addr::new(
            (s[1] >> 8) as u8,
            s[1] as u8,
            (s[2] >> 8) as u8,
            s[2] as u8,
        ));
    }
    None
}

fn classify(ip: IpAddr) -> Option<Denied> {
    match ip {
        IpAddr::V4(v4) => {
            let o = v4.octets();
            if v4.is_unspecified() || o[0] == 0 {
                Some(Denied::Unspecified)
            } else if v4.is_loopback() {
                Some(Denied::Loopback)
            } else if v4.is_private() || (o[0] == 100 && (o[1] & 0xc0) == 64) {
                // RFC 1918 and the RFC 6598 carrier-grade NAT space.
                Some(Denied::Private)
            } else if v4.is_link_local() {
                // 169.254.0.0/16, including cloud metadata services.
                Some(Denied::LinkLocal)
            } else if v4.is_multicast() {
                Some(Denied::Multicast)
            } else if v4.is_broadcast()
                || o[0] >= 240
                || (o[0] == 192 && o[1] == 0 && o[2] == 0)
                || (o[0] == 198 && (o[1] & 0xfe) == 18)
            {
                Some(Denied::Reserved)
            } else {
                None
            }
        }
        IpAddr::V6(v6) => {
            let s0 = v6.segments()[0];
            if v6.is_unspecified() {
                Some(Denied::Unspecified)
            } else if v6.is_loopback() {
                Some(Denied::Loopback)
            } else if (s0 & 0xffc0) == 0xfe80 {
                Some(Denied::LinkLocal)
            } else if (s0 & 0xfe00) == 0xfc00 || (s0 & 0xffc0) == 0xfec0 {
                // fc00::/7 unique-local, and the deprecated fec0::/10 site-local.
                Some(Denied::UniqueLocal)
            } else if v6.is_multicast() {
                Some(Denied::Multicast)
            } else if v6.segments()[..3] == [0x64, 0xff9b, 1] {
                // RFC 8215's local-use NAT64 prefix, 64:ff9b:1::/48: the operator's own
                // translator, which reaches whatever IPv4 address its prefix length embeds
                // where (RFC 6052 §2.2), internal ones included; never a global address.
                Some(Denied::Reserved)
            } else {
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_table() {
        let g = Guard::default();
        for (ip, expect) in [
            ("93.184.216.34", Ok(())),
            ("2606:2800:220:1::1", Ok(())),
            ("127.0.0.1", Err(Denied::Loopback)),
            ("127.255.0.9", Err(Denied::Loopback)),
            ("10.1.2.3", Err(Denied::Private)),
            ("172.16.0.1", Err(Denied::Private)),
            ("172.31.255.255", Err(Denied::Private)),
            ("172.32.0.1", Ok(())),
            ("192.168.1.1", Err(Denied::Private)),
            ("100.64.0.1", Err(Denied::Private)),
            ("169.254.169.254", Err(Denied::LinkLocal)),
            ("0.0.0.0", Err(Denied::Unspecified)),
            ("0.1.2.3", Err(Denied::Unspecified)),
            ("224.0.0.1", Err(Denied::Multicast)),
            ("255.255.255.255", Err(Denied::Reserved)),
            ("::1", Err(Denied::Loopback)),
            ("::", Err(Denied::Unspecified)),
            ("fe80::1", Err(Denied::LinkLocal)),
            ("fd00::1", Err(Denied::UniqueLocal)),
            ("fc12::1", Err(Denied::UniqueLocal)),
            ("ff02::1", Err(Denied::Multicast)),
            ("::ffff:127.0.0.1", Err(Denied::Loopback)),
            ("::ffff:169.254.169.254", Err(Denied::LinkLocal)),
            ("::ffff:93.184.216.34", Ok(())),
            ("::127.0.0.1", Err(Denied::Loopback)),
            ("64:ff9b::10.0.0.1", Err(Denied::Private)),
            ("2002:7f00:1::", Err(Denied::Loopback)),
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(g.check(ip), expect, "{ip}");
        }
    }

    /// RFC 8215's local-use NAT64 prefix (`64:ff9b:1::/48`, not globally reachable) is
    /// where an operator's own NAT64 lives: a translator there reaches the IPv4 address a
    /// /96 (or shorter, RFC 6052 §2.2) prefix embeds, internal ones included.
    #[test]
    fn local_use_nat64_is_refused() {
        let g = Guard::default();
        for ip in [
            "64:ff9b:1::a9fe:a9fe",      // /96 within the /48: 169.254.169.254
            "64:ff9b:1::7f00:1",         // /96: 127.0.0.1
            "64:ff9b:1:a00:0:100::",     // /48 layout (RFC 6052): 10.0.0.1
            "64:ff9b:1:ffff::5db8:d822", // even a public v4: not a global address
        ] {
            let ip: IpAddr = ip.parse().unwrap();
            assert!(g.check(ip).is_err(), "{ip}");
        }
        // The well-known prefix with a public address stays reachable.
        assert_eq!(g.check("64:ff9b::5db8:d822".parse().unwrap()), Ok(()));
    }

    #[test]
    fn allow_list_overrides_including_mapped_forms() {
        let g = Guard::new(vec!["127.0.0.0/8".parse().unwrap()]);
        assert_eq!(g.check("127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(g.check("::ffff:127.0.0.1".parse().unwrap()), Ok(()));
        assert_eq!(g.check("::1".parse().unwrap()), Err(Denied::Loopback));
        assert_eq!(g.check("10.0.0.1".parse().unwrap()), Err(Denied::Private));
    }
}
