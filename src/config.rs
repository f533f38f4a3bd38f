//! The server configuration file (`tagwarden serve --config FILE`): listeners,
//! the upstream origin, the admin listener, timeouts and limits. TOML, strict:
//! unknown keys are errors with file, line and column. Command-line flags
//! override the file; the defaults follow Envoy's edge best-practice figures
//! where there is one (noted on each field). `deploy/tagwarden.toml` is the
//! commented example.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use serde::Deserialize;

mod listen;
mod tls;
pub use listen::ListenConfig;
pub use tls::{CertificateConfig, Http2Config, TlsConfig};
mod evidence;
pub use evidence::{DecisionLogConfig, InventoryConfig, MAX_INVENTORY_ENTRIES};

/// The whole file. A missing key takes its value from [`Config::default`], so the
/// empty file, `Config::default()` and the command line without `--config` agree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub listen: ListenConfig,
    /// Absent: the built-in demo clinic origin.
    pub upstream: Option<UpstreamConfig>,
    pub admin: AdminConfig,
    pub limits: Limits,
    pub rewrite: RewriteConfig,
    pub vendors: VendorsConfig,
    /// TLS termination (`[listen] tls_address`). Absent: no TLS listener.
    pub tls: Option<TlsConfig>,
    pub http2: Http2Config,
    /// Rules directory. Default `rules`.
    pub rules: PathBuf,
    pub inventory: InventoryConfig,
    pub decision_log: DecisionLogConfig,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: ListenConfig::default(),
            upstream: None,
            admin: AdminConfig::default(),
            limits: Limits::default(),
            rewrite: RewriteConfig::default(),
            vendors: VendorsConfig::default(),
            tls: None,
            http2: Http2Config::default(),
            rules: PathBuf::from("rules"),
            inventory: InventoryConfig::default(),
            decision_log: DecisionLogConfig::default(),
        }
    }
}

/// `[upstream]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpstreamConfig {
    /// Origin base URL: `http://host:port` or `https://host:port`.
    pub url: String,
    /// `Host` header sent to the origin. Default: the client's `Host`.
    #[serde(default)]
    pub host_header: Option<String>,
    /// TLS server name for https origins. Default: the URL's host.
    #[serde(default)]
    pub sni: Option<String>,
    /// Verify the origin's certificate chain and name (https). Default true.
    #[serde(default = "yes")]
    pub verify_cert: bool,
    /// PEM file with the CA(s) that sign the origin certificate; replaces the system
    /// roots for the origin. Parsed at start-up: a bad file stops `serve`. Default: system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// TCP (+TLS) connect timeout. Default 5 s (Envoy cluster `connect_timeout` 5 s at the edge).
    #[serde(default = "five")]
    pub connect_timeout_seconds: u64,
    /// Longest wait for each read from the origin (headers or body). Default 60 s.
    #[serde(default = "sixty")]
    pub read_timeout_seconds: u64,
    /// Longest wait for each write to the origin. Default 60 s.
    #[serde(default = "sixty")]
    pub write_timeout_seconds: u64,
}

impl UpstreamConfig {
    /// An origin at `url` with every other key at the default the file would give
    /// it (`--upstream` without an `[upstream]` section).
    pub fn new(url: String) -> UpstreamConfig {
        UpstreamConfig {
            url,
            host_header: None,
            sni: None,
            verify_cert: yes(),
            ca_file: None,
            connect_timeout_seconds: five(),
            read_timeout_seconds: sixty(),
            write_timeout_seconds: sixty(),
        }
    }
}

fn yes() -> bool {
    true
}
fn five() -> u64 {
    5
}
fn sixty() -> u64 {
    60
}

/// `[vendors]`: connections of the first-party vendor path, kept apart from the
/// origin's so a slow vendor is cut off on its own budget (a widget asset is not
/// worth the minute an origin page may take), and so where vendor traffic may go
/// is said in one place. Vendor connections are always TLS (SNI = the vendor
/// host, certificate verified); there is no key to turn that off.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorsConfig {
    /// TCP + TLS connect timeout to a vendor host. Default 5 s.
    #[serde(default = "five")]
    pub connect_timeout_seconds: u64,
    /// Longest wait for each read from a vendor (headers or body). Default 15 s.
    #[serde(default = "fifteen")]
    pub read_timeout_seconds: u64,
    /// Longest wait for each write to a vendor. Default 15 s.
    #[serde(default = "fifteen")]
    pub write_timeout_seconds: u64,
    /// Exact vendor host names pinned to an `ip:port`, like curl's `--resolve`
    /// (staging vendors, egress gateways, tests). A pinned host skips DNS and the
    /// private-address refusal: naming it here is the operator's decision. The
    /// TLS server name and certificate check still use the host name. Only the
    /// syntax is checked at start-up (rules reload, so a host need not belong to a
    /// vendor rule yet). Default: none.
    #[serde(default)]
    pub resolve: BTreeMap<String, SocketAddr>,
    /// PEM file with the CA(s) vendor certificates must chain to; replaces the
    /// system roots for every vendor host. Parsed at start-up: a bad file stops
    /// `serve`. Default: the system roots.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// How long a vendor host's DNS answer is reused, whatever its record TTL
    /// (the system resolver does not report one). At most 300 so a vendor's
    /// address change is followed within minutes; 0 turns the cache off. The
    /// cache also has a fixed entry bound, since wildcard hosts (`*.zendesk.com`)
    /// let clients name any number of host names. Default 60 s.
    #[serde(default = "sixty")]
    pub dns_cache_seconds: u64,
}

/// Largest `[vendors] dns_cache_seconds`.
pub const MAX_DNS_CACHE_SECONDS: u64 = 300;

fn fifteen() -> u64 {
    15
}

impl Default for VendorsConfig {
    fn default() -> Self {
        VendorsConfig {
            connect_timeout_seconds: five(),
            read_timeout_seconds: fifteen(),
            write_timeout_seconds: fifteen(),
            resolve: BTreeMap::new(),
            ca_file: None,
            dns_cache_seconds: sixty(),
        }
    }
}

/// `[admin]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// Admin listener (`/metrics`, `/healthz`, `/readyz`). Default `127.0.0.1:9901`: loopback, so
    /// metrics are not exposed to the internet by accident.
    #[serde(default = "default_admin")]
    pub address: SocketAddr,
}

fn default_admin() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9901))
}

impl Default for AdminConfig {
    fn default() -> Self {
        AdminConfig { address: default_admin() }
    }
}

/// `[limits]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Total size of request headers. Default 60 KiB (Envoy `max_request_headers_kb: 60`). Over: 431.
    #[serde(default = "default_header_bytes")]
    pub max_request_header_bytes: usize,
    /// Number of request headers. Default 100 (Envoy `max_headers_count: 100`). Over: 431.
    #[serde(default = "default_header_count")]
    pub max_request_headers: usize,
    /// Request body size. Default 10 MiB. Over: 413.
    #[serde(default = "default_body")]
    pub max_request_body_bytes: usize,
    /// Idle keep-alive connection timeout. Default 300 s (Envoy edge `stream_idle_timeout: 300s`).
    #[serde(default = "default_idle")]
    pub idle_timeout_seconds: u64,
    /// Time a connection has to send its whole first request head (slowloris). Default 20 s
    /// (HAProxy's usual `timeout http-request` is 10 s; nginx's header timeout 60 s). Over: closed.
    #[serde(default = "default_head_timeout")]
    pub request_head_timeout_seconds: u64,
    /// Time to read a request body chunk from a client. Default 60 s.
    #[serde(default = "sixty")]
    pub request_read_timeout_seconds: u64,
    /// On SIGTERM/SIGINT: stop accepting, then wait this long for in-flight requests. Default 20 s.
    #[serde(default = "default_grace")]
    pub shutdown_grace_seconds: u64,
    /// Open client connections on the proxy listener. Default 10,000 (below a 64 Ki descriptor
    /// limit with room for the origin and vendor side). Over: a 503 and the connection closed.
    #[serde(default = "default_max_connections")]
    pub max_connections: usize,
    /// Open client connections from one IP address. Default 256 (a NAT or a hospital's proxy
    /// shares one address; one client should not hold the rest). Over: a 503 and closed.
    #[serde(default = "default_max_connections_per_ip")]
    pub max_connections_per_ip: usize,
    /// Requests per second one client IP may make on the first-party vendor path (`/_tw/…`),
    /// refilling a token bucket of `vendor_burst`. Default 50; 0 turns the limit off. Over: 429.
    #[serde(default = "default_vendor_rate")]
    pub vendor_requests_per_second: f64,
    /// The bucket's size: requests a client may make at once. Default 200 (a page's widgets
    /// load their scripts and assets together; a hospital NAT shares one address).
    #[serde(default = "default_vendor_burst")]
    pub vendor_burst: u32,
    /// Client addresses whose buckets are kept; beyond, the one heard from longest ago is
    /// forgotten. Default 10,000 (a few hundred KiB).
    #[serde(default = "default_max_connections")]
    pub vendor_rate_max_clients: usize,
}

fn default_header_bytes() -> usize {
    60 * 1024
}
fn default_header_count() -> usize {
    100
}
fn default_body() -> usize {
    10 << 20
}
fn default_idle() -> u64 {
    300
}
fn default_grace() -> u64 {
    20
}
fn default_max_connections() -> usize {
    10_000
}
fn default_max_connections_per_ip() -> usize {
    256
}
fn default_head_timeout() -> u64 {
    20
}
fn default_vendor_rate() -> f64 {
    50.0
}
fn default_vendor_burst() -> u32 {
    200
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_request_header_bytes: default_header_bytes(),
            max_request_headers: default_header_count(),
            max_request_body_bytes: default_body(),
            idle_timeout_seconds: default_idle(),
            request_head_timeout_seconds: default_head_timeout(),
            request_read_timeout_seconds: sixty(),
            shutdown_grace_seconds: default_grace(),
            max_connections: default_max_connections(),
            max_connections_per_ip: default_max_connections_per_ip(),
            vendor_requests_per_second: default_vendor_rate(),
            vendor_burst: default_vendor_burst(),
            vendor_rate_max_clients: default_max_connections(),
        }
    }
}

/// `[rewrite]`
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewriteConfig {
    /// lol_html memory bound per document. Default 4 MiB.
    #[serde(default = "default_mem")]
    pub max_memory_bytes: usize,
    /// Largest inline script/style/noscript held for a decision. Default 1 MiB.
    #[serde(default = "default_inline")]
    pub max_inline_bytes: usize,
}

fn default_mem() -> usize {
    4 << 20
}
fn default_inline() -> usize {
    1 << 20
}

impl Default for RewriteConfig {
    fn default() -> Self {
        RewriteConfig { max_memory_bytes: default_mem(), max_inline_bytes: default_inline() }
    }
}

/// A server configuration that cannot be used: `tagwarden serve` prints it and
/// exits non-zero, before binding anything.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file cannot be read.
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a key or value the schema refuses (unknown keys included), located.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Syntax { path: PathBuf, line: usize, column: usize, message: String },
    /// A value the schema accepts but tagwarden cannot use; `key` is its key path.
    #[error("{}{key}: {message}", path.as_ref().map(|p| format!("{}: ", p.display())).unwrap_or_default())]
    Invalid { path: Option<PathBuf>, key: &'static str, message: String },
}

impl Config {
    /// Reads and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        let syntax = |e: &toml::de::Error, key: Option<String>| {
            let (line, column) = crate::rules::line_col(&text, e.span().unwrap_or(0..0).start);
            let message = e.message().lines().next().unwrap_or("invalid TOML");
            let message = match key {
                Some(key) => format!("{key}: {message}"),
                None => message.to_string(),
            };
            ConfigError::Syntax { path: path.to_path_buf(), line, column, message }
        };
        let document = toml::Deserializer::parse(&text).map_err(|e| syntax(&e, None))?;
        // serde_path_to_error names the key a value error is under (`limits.max_request_headers`);
        // toml's own error only gives its position.
        let cfg: Config = serde_path_to_error::deserialize(document).map_err(|e| {
            let key = e.path().to_string();
            syntax(e.inner(), (key != ".").then_some(key))
        })?;
        cfg.validate().map_err(|e| match e {
            ConfigError::Invalid { key, message, .. } => {
                ConfigError::Invalid { path: Some(path.to_path_buf()), key, message }
            }
            other => other,
        })?;
        Ok(cfg)
    }

    /// Checks values serde cannot.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |key, message| ConfigError::Invalid { path: None, key, message };
        if let Some(up) = &self.upstream {
            let u = url::Url::parse(&up.url).map_err(|e| invalid("upstream.url", e.to_string()))?;
            if !matches!(u.scheme(), "http" | "https") || u.host_str().is_none() {
                return Err(invalid("upstream.url", format!("`{}` must be http(s)://host[:port]", up.url)));
            }
        }
        let l = &self.limits;
        if l.request_head_timeout_seconds == 0 {
            return Err(invalid("limits.request_head_timeout_seconds", "must be at least 1".to_string()));
        }
        if l.max_connections == 0 || l.max_connections_per_ip == 0 {
            return Err(invalid("limits.max_connections", "connection caps must be at least 1".to_string()));
        }
        if !l.vendor_requests_per_second.is_finite() || l.vendor_requests_per_second < 0.0 {
            return Err(invalid(
                "limits.vendor_requests_per_second",
                "must be a number ≥ 0 (0 turns it off)".to_string(),
            ));
        }
        if self.vendors.dns_cache_seconds > MAX_DNS_CACHE_SECONDS {
            return Err(invalid(
                "vendors.dns_cache_seconds",
                format!("{} is over the cap of {MAX_DNS_CACHE_SECONDS}", self.vendors.dns_cache_seconds),
            ));
        }
        for host in self.vendors.resolve.keys() {
            if !is_dns_name(host) {
                return Err(invalid(
                    "vendors.resolve",
                    format!("`{host}` is not a lowercase host name (letters, digits, `-`, dots; no port, no IP)"),
                ));
            }
        }
        match (&self.tls, self.listen.tls_address, self.listen.redirect_address) {
            (Some(tls), _, _) => tls.validate().map_err(|(key, message)| invalid(key, message))?,
            (None, Some(_), _) => return Err(invalid("listen.tls_address", "needs a [tls] section".to_string())),
            (None, None, Some(_)) => {
                return Err(invalid("listen.redirect_address", "needs a [tls] section to redirect to".to_string()));
            }
            (None, None, None) => {}
        }
        self.inventory.validate().map_err(|(key, message)| invalid(key, message))?;
        for p in &self.listen.trusted_proxies {
            parse_trusted_proxy(p)
                .ok_or_else(|| invalid("listen.trusted_proxies", format!("`{p}` is not an IP address or CIDR")))?;
        }
        Ok(())
    }
}

/// Whether `host` is a host name as a browser would send it to the vendor path:
/// lowercase ASCII labels of letters, digits and `-` (punycode for IDN), no
/// empty label (so no trailing dot), at most 253 bytes, and a last label that is
/// not all digits or hex-looking, so no IPv4 literal in any of the forms
/// `getaddrinfo` still accepts (`2130706433`, `0177.0.0.1`, `0x7f.1`).
pub fn is_dns_name(host: &str) -> bool {
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.len() <= 63
            && !l.starts_with('-')
            && !l.ends_with('-')
            && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
    };
    let last = host.rsplit('.').next().unwrap_or_default();
    let numeric = last.bytes().all(|b| b.is_ascii_digit()) || last.starts_with("0x");
    host.len() <= 253 && host.split('.').all(label_ok) && !numeric
}

/// A `[listen] trusted_proxies` entry: a CIDR (`10.0.0.0/8`) or one address
/// (`192.0.2.7`, `::1`, a host-length network).
pub fn parse_trusted_proxy(s: &str) -> Option<IpNet> {
    s.parse::<IpNet>().ok().or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trusted_proxies_are_cidrs_or_addresses() {
        let net = parse_trusted_proxy("10.0.0.0/8").unwrap();
        assert!(net.contains(&"10.1.2.3".parse::<IpAddr>().unwrap()));
        assert!(!net.contains(&"11.0.0.1".parse::<IpAddr>().unwrap()));
        let one = parse_trusted_proxy("::1").unwrap();
        assert!(one.contains(&"::1".parse::<IpAddr>().unwrap()));
        assert!(!one.contains(&"::2".parse::<IpAddr>().unwrap()));
        assert!(parse_trusted_proxy("10.0.0.0/33").is_none());
        assert!(parse_trusted_proxy("example.com").is_none());
    }

    #[test]
    fn unknown_keys_are_located_errors() {
        let dir = std::env::temp_dir().join(format!("tw-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("bad.toml");
        std::fs::write(&path, "[listen]\naddress = \"127.0.0.1:1\"\n\n[limits]\nmax_headers = 5\n").unwrap();
        let err = Config::load(&path).unwrap_err();
        let ConfigError::Syntax { line, column, message, .. } = &err else { panic!("{err}") };
        assert_eq!((*line, *column), (5, 1), "{err}");
        assert!(message.contains("max_headers"), "{err}");
    }

    #[test]
    fn a_wrong_value_names_its_key_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "[listen]\naddress = \"127.0.0.1:1\"\n\n[limits]\nmax_request_headers = \"many\"\n")
            .unwrap();
        let err = Config::load(&path).unwrap_err();
        let ConfigError::Syntax { line, message, .. } = &err else { panic!("{err}") };
        assert_eq!(*line, 5, "{err}");
        assert!(message.starts_with("limits.max_request_headers: "), "{err}");
    }

    #[test]
    fn the_shipped_example_config_loads() {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/tagwarden.toml");
        let cfg = Config::load(&path).unwrap();
        assert_eq!(cfg.limits.max_request_headers, 100);
        assert!(cfg.upstream.is_some());
    }

    #[test]
    fn the_default_config_is_the_empty_file() {
        let parsed: Config = toml::from_str("").unwrap();
        assert_eq!(Config::default().rules, PathBuf::from("rules"));
        assert_eq!(format!("{:?}", Config::default()), format!("{parsed:?}"));
    }

    #[test]
    fn an_upstream_url_alone_gets_the_files_defaults() {
        let parsed: Config = toml::from_str("[upstream]\nurl = \"http://origin.example\"\n").unwrap();
        let flag = UpstreamConfig::new("http://origin.example".into());
        assert_eq!(format!("{:?}", parsed.upstream), format!("{:?}", Some(flag)));
    }

    #[test]
    fn vendor_resolve_pins_parse_as_host_to_socket_address() {
        let cfg: Config = toml::from_str(
            "[vendors]\nresolve = { \"static.zdassets.com\" = \"127.0.0.1:8443\", \"ekr.zdassets.com\" = \"[::1]:443\" }\nca_file = \"ca.pem\"\ndns_cache_seconds = 30\n",
        )
        .unwrap();
        cfg.validate().unwrap();
        assert_eq!(cfg.vendors.resolve["static.zdassets.com"], "127.0.0.1:8443".parse().unwrap());
        assert_eq!(cfg.vendors.resolve["ekr.zdassets.com"], "[::1]:443".parse().unwrap());
        assert_eq!(cfg.vendors.ca_file, Some(PathBuf::from("ca.pem")));
        assert_eq!(cfg.vendors.dns_cache_seconds, 30);
    }

    #[test]
    fn a_resolve_pin_without_a_port_is_a_located_error() {
        let err =
            toml::from_str::<Config>("[vendors]\nresolve = { \"static.zdassets.com\" = \"127.0.0.1\" }\n").unwrap_err();
        assert!(err.to_string().contains("socket address"), "{err}");
    }

    #[test]
    fn a_resolve_pin_for_something_that_is_not_a_host_name_is_refused() {
        for bad in ["Static.zdassets.com", "static.zdassets.com.", "127.0.0.1", "h:443", "*.zendesk.com", ""] {
            let mut cfg = Config::default();
            cfg.vendors.resolve.insert(bad.to_string(), "127.0.0.1:443".parse().unwrap());
            let err = cfg.validate().expect_err(bad).to_string();
            assert!(err.starts_with("vendors.resolve: "), "{err}");
        }
    }

    #[test]
    fn dns_cache_seconds_is_capped_at_300() {
        let mut cfg = Config::default();
        cfg.vendors.dns_cache_seconds = 300;
        cfg.validate().unwrap();
        cfg.vendors.dns_cache_seconds = 301;
        assert!(cfg.validate().unwrap_err().to_string().contains("vendors.dns_cache_seconds"));
    }

    #[test]
    fn dns_names_exclude_every_ipv4_literal_form() {
        for ok in ["static.zdassets.com", "a-b.c9.example", "xn--80ak6aa92e.com", "localhost"] {
            assert!(is_dns_name(ok), "{ok}");
        }
        for bad in
            ["2130706433", "0177.0.0.1", "0x7f.1", "127.0.0.1", "a..b", "a.b.", "-a.b", "a_b.c", "A.b", "a%2fb", "a\\b"]
        {
            assert!(!is_dns_name(bad), "{bad}");
        }
    }

    #[test]
    fn empty_file_gives_edge_defaults() {
        let cfg: Config = toml::from_str("").unwrap();
        assert_eq!(cfg.listen.address, "127.0.0.1:8080".parse().unwrap());
        assert_eq!(cfg.admin.address, "127.0.0.1:9901".parse().unwrap());
        assert_eq!(cfg.limits.max_request_header_bytes, 60 * 1024);
        assert_eq!(cfg.limits.max_request_headers, 100);
        assert!(cfg.upstream.is_none());
    }
}
