//! `[listen]`: the client listeners — plain, TLS, redirect — and the sockets a
//! binary upgrade hands over.

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;

/// `[listen]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenConfig {
    /// Proxy listener. Default `127.0.0.1:8080`.
    #[serde(default = "default_listen")]
    pub address: SocketAddr,
    /// Load balancers in front (exact IPs or CIDRs). Their `X-Forwarded-For` and
    /// `X-Forwarded-Proto` are trusted; everyone else's are replaced. Default none
    /// (Envoy: `xff_num_trusted_hops: 0`).
    #[serde(default)]
    pub trusted_proxies: Vec<String>,
    /// TLS listener (needs `[tls]`): HTTP/2 and HTTP/1.1 by ALPN. Default none.
    #[serde(default)]
    pub tls_address: Option<SocketAddr>,
    /// Plain listener that answers every request with a `308` to `https://` (the
    /// request's host when a certificate covers it, else `421`). Default none.
    #[serde(default)]
    pub redirect_address: Option<SocketAddr>,
    /// The port the redirect's `https://` URL names. Default none (443): the
    /// public port, whatever `tls_address` binds behind a load balancer or NAT.
    #[serde(default)]
    pub redirect_https_port: Option<u16>,
    /// Accept prior-knowledge HTTP/2 (h2c) on `address`, for a load balancer
    /// that speaks it. HTTP/1.1 keeps working beside it. Default false.
    #[serde(default)]
    pub h2c: bool,
    /// Unix socket for a zero-downtime binary upgrade: `serve --upgrade` waits
    /// there for the running process's listening sockets (sent on SIGQUIT).
    /// Default `/tmp/tagwarden-upgrade.sock`.
    #[serde(default = "default_upgrade_socket")]
    pub upgrade_socket: PathBuf,
}

fn default_upgrade_socket() -> PathBuf {
    PathBuf::from("/tmp/tagwarden-upgrade.sock")
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 8080))
}

impl Default for ListenConfig {
    fn default() -> Self {
        ListenConfig {
            address: default_listen(),
            trusted_proxies: Vec::new(),
            tls_address: None,
            redirect_address: None,
            redirect_https_port: None,
            h2c: false,
            upgrade_socket: default_upgrade_socket(),
        }
    }
}
