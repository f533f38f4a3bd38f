//! The proxy with its vendors reached as in production (TLS, by name, through
//! `[vendors] resolve` + `ca_file`), for the vendor-path suites: a copy of the
//! shipped rules (optionally edited), a plain test origin, a vendor sink behind
//! the TLS front, and the admin listener for metrics.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

use super::http::{TestServer, cl_response, get};
use super::tls_vendor::TlsVendor;

pub struct VendorEnv {
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
    pub origin: TestServer,
    pub sink: TestServer,
    pub vendor: TlsVendor,
    _running: Running,
    _rules: tempfile::TempDir,
}

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped rules; `edit(file name, text)` may change any file, `extra` adds vendor files.
pub fn rules(edit: impl Fn(&str, String) -> String, extra: &[(&str, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo().join("rules");
    std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
    let copy = |src: &Path, dst: &Path, name: &str| {
        std::fs::write(dst, edit(name, std::fs::read_to_string(src).unwrap())).unwrap();
    };
    copy(&from.join("site.toml"), &dir.path().join("site.toml"), "site.toml");
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        let name = e.file_name().to_string_lossy().to_string();
        copy(&e.path(), &dir.path().join("vendors").join(&name), &name);
    }
    for (name, text) in extra {
        std::fs::write(dir.path().join("vendors").join(name), text).unwrap();
    }
    dir
}

/// A sink that answers every request `200` with a small script.
pub async fn ok_sink() -> TestServer {
    TestServer::fixed(cl_response("200 OK", &[("content-type", "application/javascript")], b"ok();\n")).await
}

pub async fn start(rules: tempfile::TempDir, sink: TestServer, tweak: impl FnOnce(&mut Config)) -> VendorEnv {
    let origin =
        TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"from the configured origin\n"))
            .await;
    let vendor = TlsVendor::start(sink.addr).await;
    let mut config = Config { rules: rules.path().to_path_buf(), ..Config::default() };
    vendor.configure(&mut config.vendors);
    tweak(&mut config);
    let policy = tagwarden::rules::load_dir(rules.path()).expect("rules load");
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).expect("vendor CA loads"));
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running =
        start_with(shared, loopback, loopback, Duration::from_secs(5), tx, rx, None).await.expect("proxy starts");
    VendorEnv {
        proxy: running.proxy_addr,
        admin: running.admin_addr,
        origin,
        sink,
        vendor,
        _running: running,
        _rules: rules,
    }
}

impl VendorEnv {
    /// `tagwarden_first_party_requests_total{outcome, vendor}` (0 when absent).
    pub async fn first_party(&self, vendor: &str, outcome: &str) -> u64 {
        let text = get(self.admin, "/metrics", &[]).await.text();
        let key = format!(r#"tagwarden_first_party_requests_total{{outcome="{outcome}",vendor="{vendor}"}} "#);
        text.lines().find_map(|l| l.strip_prefix(&key)).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
    }
}
