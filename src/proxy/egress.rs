//! Where first-party vendor traffic may connect (`[vendors]` in the config):
//! a vendor host is reached at its `resolve` pin, or through DNS — and a DNS
//! answer that names a loopback, private, link-local, metadata or otherwise
//! non-public address is refused, so a vendor rule with a wildcard
//! (`*.zendesk.com`) or a vendor's DNS cannot be used to reach the inside of
//! the network tagwarden runs in. Also the PEM CA loader shared with
//! `[upstream] ca_file`.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use pingora::protocols::tls::CaType;

use crate::config::VendorsConfig;

/// Port of a vendor host reached through DNS: vendors are always `https`/`wss`.
pub const VENDOR_TLS_PORT: u16 = 443;
/// Most host names whose DNS answers are kept (wildcard rules let clients name
/// any number of hosts; the oldest answer is dropped first).
pub const DNS_CACHE_ENTRIES: usize = 1024;

/// A PEM CA file that cannot be used; the message names the file.
#[derive(Debug, thiserror::Error)]
pub enum CaFileError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: rustls_pki_types::pem::Error,
    },
    #[error("{}: no PEM certificates", path.display())]
    Empty { path: PathBuf },
    #[error("{}: certificate {index} is not valid X.509", path.display())]
    Certificate { path: PathBuf, index: usize },
}

/// Reads PEM certificates that replace the system roots (`[upstream] ca_file`,
/// `[vendors] ca_file`). Every certificate is parsed here, at start-up, so a bad
/// file is a configuration error (pingora's own parser would panic on bad DER later).
pub fn load_ca_file(path: &Path) -> Result<Arc<CaType>, CaFileError> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let read = |source| CaFileError::Read { path: path.to_path_buf(), source };
    let certs: Vec<CertificateDer<'static>> =
        CertificateDer::pem_file_iter(path).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
    if certs.is_empty() {
        return Err(CaFileError::Empty { path: path.to_path_buf() });
    }
    let mut wrapped = Vec::new();
    for (i, der) in certs.into_iter().enumerate() {
        if x509_parser::parse_x509_certificate(der.as_ref()).is_err() {
            return Err(CaFileError::Certificate { path: path.to_path_buf(), index: i + 1 });
        }
        wrapped.push(pingora::utils::tls::WrappedX509::new(der.to_vec(), pingora::utils::tls::parse_x509));
    }
    Ok(Arc::from(wrapped))
}

// === Address classes ===

/// Why an address is not one a vendor host may resolve to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reserved {
    /// `127/8`, `::1`.
    Loopback,
    /// RFC 1918 (`10/8`, `172.16/12`, `192.168/16`), ULA `fc00::/7`, site-local `fec0::/10`.
    Private,
    /// `169.254/16` (cloud metadata `169.254.169.254` included), `fe80::/10`.
    LinkLocal,
    /// `0.0.0.0/8`, `::`.
    Unspecified,
    /// `224/4`, `ff00::/8`.
    Multicast,
    /// Carrier-grade NAT `100.64/10` (RFC 6598): inside a provider's network.
    SharedAddressSpace,
    /// Anything else not globally routable: benchmarking, documentation,
    /// protocol assignments, `240/4` and broadcast, discard, Teredo.
    OtherReserved,
}

/// `None` for a public unicast address; otherwise why it is refused. IPv6 forms
/// that carry an IPv4 address (mapped `::ffff:a.b.c.d`, compatible `::a.b.c.d`,
/// NAT64 `64:ff9b::/96`, 6to4 `2002::/16`) are judged by that address.
pub fn reserved(ip: IpAddr) -> Option<Reserved> {
    match ip {
        IpAddr::V4(v4) => reserved_v4(v4),
        IpAddr::V6(v6) => reserved_v6(v6),
    }
}

fn reserved_v4(ip: Ipv4Addr) -> Option<Reserved> {
    let [a, b, c, _] = ip.octets();
    Some(match (a, b, c) {
        (0, ..) => Reserved::Unspecified,
        (127, ..) => Reserved::Loopback,
        (10, ..) | (172, 16..=31, _) | (192, 168, _) => Reserved::Private,
        (169, 254, _) => Reserved::LinkLocal,
        (100, 64..=127, _) => Reserved::SharedAddressSpace,
        (224..=239, ..) => Reserved::Multicast,
        (240..=255, ..) | (192, 0, 0 | 2) | (198, 18 | 19, _) | (198, 51, 100) | (203, 0, 113) | (192, 88, 99) => {
            Reserved::OtherReserved
        }
        _ => return None,
    })
}

fn reserved_v6(ip: Ipv6Addr) -> Option<Reserved> {
    if ip.is_unspecified() {
        return Some(Reserved::Unspecified);
    }
    if ip.is_loopback() {
        return Some(Reserved::Loopback);
    }
    let s = ip.segments();
    let embedded = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    let inner = reserved_v4(embedded(s[6], s[7]));
    match s[..6] {
        // ::ffff:a.b.c.d (mapped) and 64:ff9b::a.b.c.d (NAT64) reach that IPv4 address.
        [0, 0, 0, 0, 0, 0xffff] | [0x64, 0xff9b, 0, 0, 0, 0] => return inner,
        // ::a.b.c.d (compatible): deprecated, never a vendor's.
        [0, 0, 0, 0, 0, 0] => return Some(inner.unwrap_or(Reserved::OtherReserved)),
        _ => {}
    }
    Some(match s[0] {
        0x2002 => return reserved_v4(embedded(s[1], s[2])),
        x if x & 0xfe00 == 0xfc00 => Reserved::Private,
        x if x & 0xffc0 == 0xfec0 => Reserved::Private,
        x if x & 0xffc0 == 0xfe80 => Reserved::LinkLocal,
        x if x & 0xff00 == 0xff00 => Reserved::Multicast,
        0x2001 if s[1] == 0 || s[1] == 0x0db8 => Reserved::OtherReserved,
        0x0100 if s[1..4] == [0, 0, 0] => Reserved::OtherReserved,
        _ => return None,
    })
}

// === Where a vendor host connects ===

/// Why no connection is made to a vendor host.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// DNS gave no address.
    NoAddress,
    /// DNS named a non-public address (any one refuses the host: a mixed answer
    /// is how DNS rebinding slips an inside address in).
    Reserved(Reserved),
}

/// The vendor connection settings, compiled from `[vendors]`.
#[derive(Debug)]
pub struct VendorEgress {
    pins: HashMap<String, SocketAddr>,
    /// Replaces the system roots for vendor certificates.
    pub ca: Option<Arc<CaType>>,
    dns: DnsCache,
}

impl VendorEgress {
    /// Loads `ca_file` (the only part that can fail here; the rest was validated with the config).
    pub fn from_config(cfg: &VendorsConfig) -> Result<VendorEgress, CaFileError> {
        let ca = cfg.ca_file.as_deref().map(load_ca_file).transpose()?;
        let pins = cfg.resolve.iter().map(|(h, a)| (h.clone(), *a)).collect();
        Ok(VendorEgress { pins, ca, dns: DnsCache::new(Duration::from_secs(cfg.dns_cache_seconds)) })
    }

    /// Where to connect for `host`: its pin, else its DNS answer if every address in it is public.
    pub async fn address(&self, host: &str) -> Result<SocketAddr, Refusal> {
        if let Some(pin) = self.pins.get(host) {
            return Ok(*pin);
        }
        let answers = match self.dns.get(host) {
            Some(a) => a,
            None => {
                let found: Vec<IpAddr> = tokio::net::lookup_host((host, VENDOR_TLS_PORT))
                    .await
                    .map(|addrs| addrs.map(|a| a.ip()).collect())
                    .unwrap_or_default();
                if !found.is_empty() {
                    self.dns.put(host, found.clone());
                }
                found
            }
        };
        decide(&answers)
    }
}

/// The address to use from a DNS answer, or why none may be used.
pub fn decide(answers: &[IpAddr]) -> Result<SocketAddr, Refusal> {
    if let Some(r) = answers.iter().find_map(|ip| reserved(*ip)) {
        return Err(Refusal::Reserved(r));
    }
    answers.first().map(|ip| SocketAddr::new(*ip, VENDOR_TLS_PORT)).ok_or(Refusal::NoAddress)
}

/// DNS answers for vendor hosts, kept for a fixed time and a fixed number of hosts.
#[derive(Debug)]
struct DnsCache {
    ttl: Duration,
    entries: Mutex<HashMap<String, (Instant, Vec<IpAddr>)>>,
}

impl DnsCache {
    fn new(ttl: Duration) -> DnsCache {
        DnsCache { ttl, entries: Mutex::new(HashMap::new()) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, Vec<IpAddr>)>> {
        self.entries.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn get(&self, host: &str) -> Option<Vec<IpAddr>> {
        let entries = self.lock();
        entries.get(host).filter(|(at, _)| at.elapsed() < self.ttl).map(|(_, a)| a.clone())
    }

    fn put(&self, host: &str, answers: Vec<IpAddr>) {
        if self.ttl.is_zero() {
            return;
        }
        let mut entries = self.lock();
        if entries.len() >= DNS_CACHE_ENTRIES && !entries.contains_key(host) {
            entries.retain(|_, (at, _)| at.elapsed() < self.ttl);
            if entries.len() >= DNS_CACHE_ENTRIES
                && let Some(oldest) = entries.iter().min_by_key(|(_, (at, _))| *at).map(|(h, _)| h.clone())
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(host.to_string(), (Instant::now(), answers));
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.lock().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn class(s: &str) -> Option<Reserved> {
        reserved(s.parse().unwrap())
    }

    #[test]
    fn public_addresses_pass() {
        for ip in ["104.16.51.111", "8.8.8.8", "100.128.0.1", "172.32.0.1", "2606:4700::6810:336f", "::ffff:8.8.8.8"] {
            assert_eq!(class(ip), None, "{ip}");
        }
    }

    #[test]
    fn loopback_private_link_local_and_metadata_addresses_are_refused() {
        let cases = [
            ("127.0.0.1", Reserved::Loopback),
            ("127.255.255.254", Reserved::Loopback),
            ("::1", Reserved::Loopback),
            ("10.0.0.1", Reserved::Private),
            ("172.16.0.1", Reserved::Private),
            ("172.31.255.255", Reserved::Private),
            ("192.168.1.1", Reserved::Private),
            ("fc00::1", Reserved::Private),
            ("fd12:3456::1", Reserved::Private),
            ("169.254.169.254", Reserved::LinkLocal),
            ("fe80::1", Reserved::LinkLocal),
            ("0.0.0.0", Reserved::Unspecified),
            ("::", Reserved::Unspecified),
            ("224.0.0.1", Reserved::Multicast),
            ("ff02::1", Reserved::Multicast),
            ("100.64.0.1", Reserved::SharedAddressSpace),
            ("100.127.255.255", Reserved::SharedAddressSpace),
            ("255.255.255.255", Reserved::OtherReserved),
            ("198.18.0.1", Reserved::OtherReserved),
            ("2001:db8::1", Reserved::OtherReserved),
        ];
        for (ip, want) in cases {
            assert_eq!(class(ip), Some(want), "{ip}");
        }
    }

    #[test]
    fn ipv6_forms_carrying_an_ipv4_address_are_judged_by_it() {
        assert_eq!(class("::ffff:127.0.0.1"), Some(Reserved::Loopback));
        assert_eq!(class("::ffff:169.254.169.254"), Some(Reserved::LinkLocal));
        assert_eq!(class("::ffff:10.1.2.3"), Some(Reserved::Private));
        assert_eq!(class("::127.0.0.1"), Some(Reserved::Loopback));
        assert_eq!(class("64:ff9b::a9fe:a9fe"), Some(Reserved::LinkLocal));
        assert_eq!(class("64:ff9b::808:808"), None);
        assert_eq!(class("2002:7f00:1::1"), Some(Reserved::Loopback));
        assert_eq!(class("2002:808:808::1"), None);
    }

    #[test]
    fn one_reserved_address_in_an_answer_refuses_the_host() {
        let public: IpAddr = "104.16.51.111".parse().unwrap();
        let inside: IpAddr = "10.0.0.5".parse().unwrap();
        assert_eq!(decide(&[public]), Ok(SocketAddr::new(public, 443)));
        assert_eq!(decide(&[public, inside]), Err(Refusal::Reserved(Reserved::Private)));
        assert_eq!(decide(&[]), Err(Refusal::NoAddress));
    }

    #[tokio::test]
    async fn a_pinned_host_connects_where_resolve_says_even_on_loopback() {
        let mut cfg = VendorsConfig::default();
        cfg.resolve.insert("static.zdassets.com".into(), "127.0.0.1:8443".parse().unwrap());
        let egress = VendorEgress::from_config(&cfg).unwrap();
        assert_eq!(egress.address("static.zdassets.com").await, Ok("127.0.0.1:8443".parse().unwrap()));
    }

    #[tokio::test]
    async fn a_host_that_resolves_to_loopback_is_refused() {
        // `localhost` comes from the system's hosts file: no network needed.
        let egress = VendorEgress::from_config(&VendorsConfig::default()).unwrap();
        assert_eq!(egress.address("localhost").await, Err(Refusal::Reserved(Reserved::Loopback)));
    }

    #[test]
    fn the_dns_cache_is_bounded_and_expires() {
        let cache = DnsCache::new(Duration::from_secs(60));
        for i in 0..DNS_CACHE_ENTRIES + 10 {
            cache.put(&format!("h{i}.example"), vec![IpAddr::from([8, 8, 8, 8])]);
        }
        assert_eq!(cache.len(), DNS_CACHE_ENTRIES);
        let off = DnsCache::new(Duration::ZERO);
        off.put("h.example", vec![IpAddr::from([8, 8, 8, 8])]);
        assert_eq!(off.get("h.example"), None);
    }
}
