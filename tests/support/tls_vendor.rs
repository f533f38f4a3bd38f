//! Vendors as tagwarden reaches them in production — over TLS, by host name,
//! certificate verified — for integration tests: a TLS front with a throwaway
//! CA (made per test with `rcgen`, written to a temporary file) that
//! terminates TLS for the vendor host names and hands the plaintext to a plain
//! loopback test server, so the sinks of `http.rs` record what the vendor got.
//! The proxy finds it the way a user's config would say it: `[vendors] resolve`
//! pins the hosts to the front, `[vendors] ca_file` trusts the CA.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use tagwarden::config::VendorsConfig;

/// Host names the front's certificate names (all owned by the shipped rules).
pub const VENDOR_HOSTS: &[&str] = &[
    "static.zdassets.com",
    "ekr.zdassets.com",
    "clinic.zendesk.com",
    "widget-mediator.zopim.com",
    "widget.intercom.io",
    "api-iam.intercom.io",
];

/// A TLS front for vendor hosts, in front of a plain loopback server.
pub struct TlsVendor {
    pub addr: SocketAddr,
    /// The throwaway CA's PEM file (for `[vendors] ca_file`).
    pub ca_file: PathBuf,
    /// The SNI of every handshake that completed, in order.
    pub server_names: Arc<Mutex<Vec<String>>>,
    _dir: tempfile::TempDir,
}

impl TlsVendor {
    /// Terminates TLS for [`VENDOR_HOSTS`] and forwards each connection's bytes to `backend`.
    pub async fn start(backend: SocketAddr) -> TlsVendor {
        let (ca_pem, config) = tagwarden::demo::vendor::throwaway_tls(VENDOR_HOSTS).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let ca_file = dir.path().join("vendor-ca.pem");
        std::fs::write(&ca_file, ca_pem).unwrap();
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let server_names = Arc::new(Mutex::new(Vec::new()));
        let names = server_names.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else { return };
                let (acceptor, names) = (acceptor.clone(), names.clone());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    names.lock().unwrap().push(tls.get_ref().1.server_name().unwrap_or_default().to_string());
                    let Ok(mut plain) = TcpStream::connect(backend).await else { return };
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                });
            }
        });
        TlsVendor { addr, ca_file, server_names, _dir: dir }
    }

    /// `[vendors]` pinning every vendor host to this front and trusting its CA.
    pub fn configure(&self, vendors: &mut VendorsConfig) {
        for h in VENDOR_HOSTS {
            vendors.resolve.insert((*h).to_string(), self.addr);
        }
        vendors.ca_file = Some(self.ca_file.clone());
    }

    pub fn server_names(&self) -> Vec<String> {
        self.server_names.lock().unwrap().clone()
    }
}
