//! Which addresses glint may fetch image sources from (SSRF protection).
//!
//! A source URL is chosen by whoever may create Images, but glint fetches it from the
//! controller's place in the network, and the answer becomes image data that person can
//! download. So by default glint refuses addresses only that place can reach: loopback,
//! link-local (the cloud metadata service at 169.254.169.254), unspecified, multicast and
//! broadcast addresses, and the cluster's own ranges when the operator names them.
//!
//! Rules, first match wins:
//! 1. `--source-deny-cidrs`: always refused.
//! 2. `--source-allow-cidrs`: allowed, even inside a default-refused range.
//! 3. loopback, when `--source-allow-loopback` (for tests) is set: allowed.
//! 4. the default rules and `--cluster-cidrs`: refused.
//! 5. everything else: allowed.
//!
//! The check runs on every address DNS returns for a name (any refused address refuses the
//! name) and on IP literals; the HTTP client then connects only to the addresses checked, so
//! a second DNS answer (rebinding) never reaches a socket. Redirects are checked the same way.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use ipnet::IpNet;

/// An address range such as `10.96.0.0/12` or `fe80::/10`; a bare address is a range of one.
/// The arithmetic is ipnet's; this adds the bare-address form and errors that say what to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr(IpNet);

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Self {
        Self(IpNet::new_assert(
            IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        ))
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Self {
        let [a, b, c, d, e, f, g, h] = segments;
        Self(IpNet::new_assert(
            IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        ))
    }

    /// Whether `address` lies in the range (IPv4 ranges never hold IPv6 addresses).
    pub fn contains(&self, address: IpAddr) -> bool {
        self.0.contains(&address)
    }
}

impl std::fmt::Display for Cidr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address
            .parse()
            .map_err(|_| format!("{text:?} is not an address range like 10.0.0.0/8 or fd00::/8"))?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => Some(bits),
            Some(prefix) => prefix.parse::<u8>().ok(),
        };
        prefix
            .and_then(|prefix| IpNet::new(network, prefix).ok())
            .map(Self)
            .ok_or_else(|| format!("{text:?}: the prefix length must be 0 to {bits}"))
    }
}

/// Why an address is refused, in words that name the rule.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{address} is refused by {rule}")]
pub struct Refusal {
    pub address: IpAddr,
    pub rule: String,
}

/// Ranges refused unless allowed, with the words a refusal names them by.
const DEFAULT_REFUSED: &[(&str, Cidr)] = &[
    ("the default rule for loopback", Cidr::v4(127, 0, 0, 0, 8)),
    (
        "the default rule for loopback",
        Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
    ),
    (
        "the default rule for link-local addresses (cloud metadata)",
        Cidr::v4(169, 254, 0, 0, 16),
    ),
    (
        "the default rule for link-local addresses (cloud metadata)",
        Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
    ),
    (
        "the default rule for unspecified addresses",
        Cidr::v4(0, 0, 0, 0, 8),
    ),
    (
        "the default rule for unspecified addresses",
        Cidr::v6([0; 8], 128),
    ),
    (
        "the default rule for multicast addresses",
        Cidr::v4(224, 0, 0, 0, 4),
    ),
    (
        "the default rule for multicast addresses",
        Cidr::v6([0xff00, 0, 0, 0, 0, 0, 0, 0], 8),
    ),
    (
        "the default rule for broadcast",
        Cidr::v4(255, 255, 255, 255, 32),
    ),
];

/// The operator's source rules.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourcePolicy {
    /// `--source-allow-cidrs`.
    pub allow: Vec<Cidr>,
    /// `--source-deny-cidrs`.
    pub deny: Vec<Cidr>,
    /// `--cluster-cidrs`: the cluster's service and pod ranges.
    pub cluster: Vec<Cidr>,
    /// `--source-allow-loopback`: for tests, whose sources are served on 127.0.0.1.
    pub allow_loopback: bool,
    /// Whether `file://` sources may be read: only by the CLI, on the user's own machine. The
    /// controller refuses them (a file on the controller's node is not the user's).
    pub allow_files: bool,
    /// Where conversions by glint (spec.source.convertTo) may write, and how much.
    pub scratch: super::convert::ScratchSpace,
}

impl SourcePolicy {
    /// Allows `address`, or says which rule refuses it.
    pub fn check(&self, address: IpAddr) -> Result<(), Refusal> {
        // ::ffff:169.254.169.254 reaches the same host as 169.254.169.254.
        let address = match address {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
            v4 => v4,
        };
        let refuse = |rule: String| Err(Refusal { address, rule });
        if let Some(cidr) = self.deny.iter().find(|cidr| cidr.contains(address)) {
            return refuse(format!("--source-deny-cidrs {cidr}"));
        }
        if self.allow.iter().any(|cidr| cidr.contains(address)) {
            return Ok(());
        }
        if self.allow_loopback && address.is_loopback() {
            return Ok(());
        }
        if let Some((rule, cidr)) = DEFAULT_REFUSED
            .iter()
            .find(|(_, cidr)| cidr.contains(address))
        {
            return refuse(format!(
                "{rule} ({cidr}); an operator can allow it with --source-allow-cidrs"
            ));
        }
        if let Some(cidr) = self.cluster.iter().find(|cidr| cidr.contains(address)) {
            return refuse(format!(
                "the cluster's own range {cidr} (--cluster-cidrs); an operator can allow it with --source-allow-cidrs"
            ));
        }
        Ok(())
    }

    /// Checks every address; the first refusal wins.
    pub fn check_all(&self, addresses: &[IpAddr]) -> Result<(), Refusal> {
        addresses
            .iter()
            .try_for_each(|address| self.check(*address))
    }
}

/// Parses a comma-separated list of ranges (the flags' format).
pub fn parse_cidrs(text: &str) -> Result<Vec<Cidr>, String> {
    text.split(',')
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .map(Cidr::from_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    fn cidrs(text: &str) -> Vec<Cidr> {
        parse_cidrs(text).unwrap()
    }

    #[test]
    fn ranges_parse_and_contain_what_they_should() {
        let rows = [
            ("10.0.0.0/8", "10.255.1.2", true),
            ("10.0.0.0/8", "11.0.0.1", false),
            ("127.0.0.2", "127.0.0.2", true),
            ("127.0.0.2", "127.0.0.1", false),
            ("0.0.0.0/0", "203.0.113.9", true),
            ("fe80::/10", "fe80::1", true),
            ("fe80::/10", "fec0::1", false),
            ("fe80::/10", "169.254.0.1", false),
            ("::/0", "2001:db8::1", true),
        ];
        for (range, address, inside) in rows {
            let cidr: Cidr = range.parse().unwrap();
            assert_eq!(cidr.contains(ip(address)), inside, "{range} ∋ {address}");
        }
        for bad in ["10.0.0.0/33", "fe80::/129", "example.com", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad:?} must not parse");
        }
        assert_eq!(cidrs(" 10.0.0.0/8, fd00::/8 ,").len(), 2);
    }

    #[test]
    fn the_defaults_refuse_what_only_the_controller_can_reach() {
        let policy = SourcePolicy::default();
        let rows = [
            ("127.0.0.1", Some("loopback")),
            ("127.9.9.9", Some("loopback")),
            ("::1", Some("loopback")),
            ("169.254.169.254", Some("link-local")),
            ("::ffff:169.254.169.254", Some("link-local")),
            ("fe80::1", Some("link-local")),
            ("0.0.0.0", Some("unspecified")),
            ("::", Some("unspecified")),
            ("224.0.0.1", Some("multicast")),
            ("ff02::1", Some("multicast")),
            ("255.255.255.255", Some("broadcast")),
            ("203.0.113.7", None),
            ("10.1.2.3", None),
            ("2001:db8::1", None),
        ];
        for (address, refused_as) in rows {
            let verdict = policy.check(ip(address));
            match refused_as {
                None => assert!(verdict.is_ok(), "{address}: {verdict:?}"),
                Some(words) => {
                    let refusal = verdict.expect_err(address);
                    assert!(refusal.rule.contains(words), "{address}: {}", refusal.rule);
                }
            }
        }
    }

    #[test]
    fn operator_rules_deny_first_then_allow_then_defaults() {
        let policy = SourcePolicy {
            allow: cidrs("169.254.10.0/24, 10.96.5.0/24"),
            deny: cidrs("127.0.0.2/32, 10.96.5.7"),
            cluster: cidrs("10.96.0.0/12"),
            allow_loopback: true,
            allow_files: false,
            scratch: Default::default(),
        };
        let rows = [
            ("127.0.0.1", None),
            ("127.0.0.2", Some("--source-deny-cidrs 127.0.0.2/32")),
            ("169.254.10.1", None),
            ("169.254.169.254", Some("link-local")),
            ("10.96.0.1", Some("--cluster-cidrs")),
            ("10.96.5.1", None),
            ("10.96.5.7", Some("--source-deny-cidrs 10.96.5.7/32")),
        ];
        for (address, refused_by) in rows {
            let verdict = policy.check(ip(address));
            match refused_by {
                None => assert!(verdict.is_ok(), "{address}: {verdict:?}"),
                Some(words) => {
                    let refusal = verdict.expect_err(address);
                    assert!(refusal.to_string().contains(words), "{address}: {refusal}");
                    assert!(refusal.to_string().starts_with(address), "{refusal}");
                }
            }
        }
    }

    #[test]
    fn one_refused_address_among_several_refuses_them_all() {
        let policy = SourcePolicy::default();
        let answer = [ip("203.0.113.7"), ip("169.254.169.254")];
        let refusal = policy.check_all(&answer).unwrap_err();
        assert_eq!(refusal.address, ip("169.254.169.254"));
        assert!(policy.check_all(&[ip("203.0.113.7")]).is_ok());
    }
}
