//! The in-process stack the browser talks to: one origin (evasion vectors,
//! corpus pages, the demo site, the runtime-injection page), tagwarden in
//! front of it — built the way `tagwarden serve` builds itself except that
//! first-party vendor traffic goes to a loopback sink over plain HTTP — and,
//! in front of tagwarden, the load balancer's role: a port that passes plain
//! HTTP through and terminates TLS (the browser upgrades `http://` to
//! `https://` on the same port for HSTS-preloaded hosts such as
//! `www.nytimes.com`; tagwarden's own listener is HTTP/1.1 only, as in
//! production, where the load balancer terminates TLS).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use pingora::apps::http_app::{HttpServer, ServeHttp};
use pingora::protocols::http::ServerSession;
use tagwarden::config::Config;
use tagwarden::proxy::server::serve_app;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::respond::response;
use tagwarden::serve::{Running, start_with};

/// The runtime-injection page: its only script is first-party (so the rewriter
/// keeps it), and that script adds trackers after the HTML has gone by.
pub const RUNTIME_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Runtime injection</title>
</head>
<body>
<h1>Runtime injection</h1>
<p>The only script on this page is first-party; it adds trackers at run time.</p>
<script src="/static/inject.js"></script>
</body>
</html>
"#;

/// `/static/inject.js`: what an allowed first-party script can still do.
pub const INJECT_JS: &str = r#"// First-party script (allowed): inserts trackers at run time.
(function () {
  var img = document.createElement("img");
  img.src = "https://www.facebook.com/tr?id=1";
  img.width = 1; img.height = 1;
  document.body.appendChild(img);
  var s = document.createElement("script");
  s.async = true;
  s.src = "https://www.googletagmanager.com/gtag/js?id=G-X";
  document.head.appendChild(s);
  fetch("https://www.google-analytics.com/g/collect?v=2").catch(function () {});
  navigator.sendBeacon("https://analytics.tiktok.com/api/v2/pixel");
})();
"#;

/// The module-import page: kept scripts (inline classic and module, a timer
/// callback, a first-party external script, a vetted vendor script served
/// first-party, an import map) try to load code from unlisted hosts with
/// `import()` / `import`. Each such fetch inherits the nonce of the script that
/// made it; the script-hosts policy must refuse it all the same. First-party
/// modules and first-party dynamic imports must still load: the first-party
/// module sets `data-imports="ready"` once `/static/dyn.js` and the import-mapped
/// `site-lib` both loaded.
pub const IMPORTS_PAGE: &str = r#"<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Module imports</title>
<script type="importmap">{"imports": {"tracker-lib": "https://map.tracker.example/lib.js", "site-lib": "/static/site-lib.js"}}</script>
</head>
<body>
<h1>Module imports</h1>
<script>import("https://classic.tracker.example/d.js").catch(function () {});</script>
<script>setTimeout(function () { import("https://timer.tracker.example/t.js").catch(function () {}); }, 0);</script>
<script type="module">import("https://module.tracker.example/m.js").catch(() => {});</script>
<script type="module">import "https://static.tracker.example/s.js";</script>
<script type="module">import("tracker-lib").catch(() => {});</script>
<script src="/static/imports.js"></script>
<script src="https://static.zdassets.com/ekr/vendor-import.js"></script>
<script type="module" src="/static/first-party-module.js"></script>
</body>
</html>
"#;

/// [`IMPORTS_PAGE`] without the vendor script (for the report-only stack, which
/// leaves the page unchanged, so the vendor loader would not be served first-party).
pub fn imports_page_without_vendor() -> String {
    IMPORTS_PAGE.lines().filter(|l| !l.contains("zdassets")).map(|l| format!("{l}\n")).collect()
}

/// `/static/imports.js`: a first-party classic script that imports a tracker.
pub const IMPORTS_JS: &str = r#"// First-party script (allowed): dynamic import of a third-party module.
import("https://ext.tracker.example/e.js").catch(function () {});
"#;

/// `/static/first-party-module.js`: first-party dynamic and import-mapped imports.
pub const FIRST_PARTY_MODULE_JS: &str = r#"// First-party module: these imports must keep working under the CSP.
Promise.all([import("/static/dyn.js"), import("site-lib")]).then(([a, b]) => {
  document.documentElement.dataset.imports = a.ok === "dyn" && b.ok === "lib" ? "ready" : "wrong";
}, (e) => { document.documentElement.dataset.imports = "failed: " + e; });
"#;

/// One request the origin answered.
#[derive(Debug, Clone)]
pub struct OriginHit {
    pub host: Option<String>,
    pub target: String,
}

#[derive(Debug, Clone, Default)]
pub struct OriginLog(Arc<Mutex<Vec<OriginHit>>>);

impl OriginLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<OriginHit>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn slice(&self, from: usize, to: usize) -> Vec<OriginHit> {
        self.lock()[from..to].to_vec()
    }
}

/// Documents the origin serves, by path.
#[derive(Debug, Default)]
pub struct Documents(pub BTreeMap<String, String>);

impl Documents {
    /// Every `*.html` in `dir` as `<prefix><file name>`.
    pub fn add_dir(&mut self, prefix: &str, dir: &Path) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
        for e in entries.filter_map(Result::ok) {
            let p = e.path();
            if p.extension().is_some_and(|x| x == "html") {
                let name = p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
                let html = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
                self.0.insert(format!("{prefix}{name}"), html);
            }
        }
    }
}

#[derive(Debug)]
pub struct Stack {
    /// What the browser connects to: the front (plain HTTP or TLS), which
    /// forwards to tagwarden.
    pub front: SocketAddr,
    /// tagwarden's own listener.
    pub proxy: SocketAddr,
    pub origin_log: OriginLog,
    pub running: Running,
}

/// Where the vetted vendor is: tagwarden reaches it through `[vendors] resolve`
/// (its host names pinned to `addr`) and `[vendors] ca_file`, as a user would.
#[derive(Debug, Clone)]
pub struct VendorEndpoint {
    pub addr: SocketAddr,
    pub ca_file: std::path::PathBuf,
}

/// Starts the origin and tagwarden (shipped rules, enforce mode) in front of it.
pub async fn start(rules: &Path, docs: Documents, vendor: &VendorEndpoint) -> Result<Stack, String> {
    let (shutdown_tx, shutdown_rx) = watch::channel(false);
    let origin_l = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| format!("origin: {e}"))?;
    let origin_addr = origin_l.local_addr().map_err(|e| e.to_string())?;
    let origin_log = OriginLog::default();
    let (docs, log) = (Arc::new(docs), origin_log.clone());
    let origin = Arc::new(HttpServer::new_app(TestOrigin { docs, log }));
    tokio::spawn(serve_app(origin_l, origin, shutdown_rx.clone(), Duration::from_secs(1)));

    let policy = tagwarden::rules::load_dir(rules).map_err(|e| format!("rules in {}:\n{e}", rules.display()))?;
    let mut config = Config { rules: rules.to_path_buf(), ..Config::default() };
    for host in tagwarden::demo::vendor::HOSTS {
        config.vendors.resolve.insert((*host).to_string(), vendor.addr);
    }
    config.vendors.ca_file = Some(vendor.ca_file.clone());
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin_addr)).map_err(|e| e.to_string())?);
    let loopback = SocketAddr::from(([127, 0, 0, 1], 0));
    let running = start_with(shared, loopback, loopback, Duration::from_secs(1), shutdown_tx, shutdown_rx, None)
        .await
        .map_err(|e| e.to_string())?;
    let front_l = TcpListener::bind(("127.0.0.1", 0)).await.map_err(|e| format!("front: {e}"))?;
    let front = front_l.local_addr().map_err(|e| e.to_string())?;
    tokio::spawn(run_front(front_l, running.proxy_addr, tls_acceptor()?));
    Ok(Stack { front, proxy: running.proxy_addr, origin_log, running })
}

/// A throwaway self-signed certificate and key made for this test suite only
/// (`openssl req -x509 -newkey ec`, P-256, CN "tagwarden browser test
/// (throwaway)"). Not a secret: it protects nothing, and the browser is told to
/// ignore certificate errors (`Security.setIgnoreCertificateErrors`).
const FRONT_CERT: &str = "-----BEGIN CERTIFICATE-----
MIIBxTCCAWugAwIBAgIUGiOmVm86b5strizb6s3C5kCnLKUwCgYIKoZIzj0EAwIw
LTErMCkGA1UEAwwidGFnd2FyZGVuIGJyb3dzZXIgdGVzdCAodGhyb3dhd2F5KTAe
Fw0yNjExMjExMjAwNDFaFw0zNjExMTgxMjAwNDFaMC0xKzApBgNVBAMMInRhZ3dh
cmRlbiBicm93c2VyIHRlc3QgKHRocm93YXdheSkwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAATKt/bNkMJ/uoj/knV/3zQEP1sV7Ys6Bu/EUyaYhm+3LWqrtv1M6Mc2
H911YR1xXT6lEaludtYqEARzryVEcF2Fo2kwZzAdBgNVHQ4EFgQUaUePtjSjFUKa
p4Ue9ng96bu5IGMwHwYDVR0jBBgwFoAUaUePtjSjFUKap4Ue9ng96bu5IGMwDwYD
VR0TAQH/BAUwAwEB/zAUBgNVHREEDTALgglsb2NhbGhvc3QwCgYIKoZIzj0EAwID
SAAwRQIgcMBQdRrtF/MdIPWYaaEVJOwHWS5jsfQObgFMbAswEw8CIQDUfOjvPOMC
PIfgvqf5pSyXwhVW7Wp+b9bUC0kC9arcdg==
-----END CERTIFICATE-----
";
const FRONT_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQgpHOENz+dGjhrqCTw
QtqBXQS7fUrj/HL3YQaaU3Aix+uhRANCAATKt/bNkMJ/uoj/knV/3zQEP1sV7Ys6
Bu/EUyaYhm+3LWqrtv1M6Mc2H911YR1xXT6lEaludtYqEARzryVEcF2F
-----END PRIVATE KEY-----
";

fn tls_acceptor() -> Result<tokio_rustls::TlsAcceptor, String> {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject;
    use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let cert = CertificateDer::from_pem_slice(FRONT_CERT.as_bytes()).map_err(|e| format!("front cert: {e}"))?;
    let key = PrivateKeyDer::from_pem_slice(FRONT_KEY.as_bytes()).map_err(|e| format!("front key: {e}"))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("front TLS: {e}"))?
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .map_err(|e| format!("front TLS: {e}"))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

/// The load balancer's role: a TLS ClientHello (first byte 22) is terminated
/// here, anything else passes through; either way the bytes go to tagwarden.
async fn run_front(listener: TcpListener, backend: SocketAddr, tls: tokio_rustls::TlsAcceptor) {
    loop {
        let Ok((client, _)) = listener.accept().await else { continue };
        let tls = tls.clone();
        tokio::spawn(async move {
            let mut client = client;
            let mut first = [0u8; 1];
            let Ok(n) = client.peek(&mut first).await else { return };
            let Ok(mut upstream) = TcpStream::connect(backend).await else { return };
            if n == 1 && first[0] == 22 {
                if let Ok(mut tls) = tls.accept(client).await {
                    let _ = tokio::io::copy_bidirectional(&mut tls, &mut upstream).await;
                }
            } else {
                let _ = tokio::io::copy_bidirectional(&mut client, &mut upstream).await;
            }
        });
    }
}

/// The test origin: records each request, then answers from the documents,
/// the runtime pages, or the demo clinic.
struct TestOrigin {
    docs: Arc<Documents>,
    log: OriginLog,
}

#[async_trait::async_trait]
impl ServeHttp for TestOrigin {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let host = req.headers.get("host").and_then(|v| v.to_str().ok()).map(str::to_string);
        let target = req.uri.path_and_query().map_or_else(|| req.uri.to_string(), |pq| pq.as_str().to_string());
        self.log.lock().push(OriginHit { host, target });
        respond(&self.docs, &req.method, req.uri.path())
    }
}

fn respond(docs: &Documents, method: &http::Method, path: &str) -> http::Response<Vec<u8>> {
    const HTML: &str = "text/html; charset=utf-8";
    if let Some((content_type, body)) = super::runtime::respond(path) {
        return response(200, content_type, body);
    }
    if path == super::widget::INTERCOM_PATH {
        return response(200, HTML, super::widget::INTERCOM_PAGE);
    }
    match path {
        "/runtime/" => response(200, HTML, RUNTIME_PAGE),
        "/static/inject.js" => response(200, "text/javascript", INJECT_JS),
        "/runtime/imports" => response(200, HTML, IMPORTS_PAGE),
        "/runtime/imports-site" => response(200, HTML, imports_page_without_vendor()),
        "/static/imports.js" => response(200, "text/javascript", IMPORTS_JS),
        "/static/first-party-module.js" => response(200, "text/javascript", FIRST_PARTY_MODULE_JS),
        "/static/dyn.js" => response(200, "text/javascript", "export const ok = \"dyn\";\n"),
        "/static/site-lib.js" => response(200, "text/javascript", "export const ok = \"lib\";\n"),
        p => match docs.0.get(p) {
            Some(html) => response(200, HTML, html.as_str()),
            // Everything else is the demo clinic (which 404s what it does not know).
            None => tagwarden::demo::page(method, p),
        },
    }
}
