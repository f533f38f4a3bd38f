//! The demo's support vendor: a faithful mock of the Zendesk Web Widget's
//! vendor side, so `tagwarden` with no arguments (and no network) shows an
//! allowed widget working first-party. The browser suite uses the same mock.
//!
//! tagwarden reaches it the way it would reach a staging vendor, through
//! configuration a user would also write: `[vendors] resolve` pins the
//! vendor's host names to this loopback listener and `[vendors] ca_file` trusts
//! the throwaway CA made at start-up (never written anywhere but a temporary
//! file; it signs nothing but this mock's certificate).
//!
//! Its shape follows the Zendesk Web Widget's public embeddable-framework
//! source and Zendesk's CSP page (`src/demo/widget/`): a loader that reads its
//! key back from its own `<script id="ze-snippet">` and XHRs a hard-coded host
//! for its compose JSON; a src-less iframe it writes and appends the scripts
//! that JSON names to (no nonce); URLs built at run time from JSON config (a
//! bare host); a chunk from a hard-coded base; a stylesheet with `@font-face`;
//! a ticket POST; telemetry carrying the page URL and title
//! (`/embeddable_blip`); a WebSocket whose host comes from config and whose
//! messages name images. Every request it receives is recorded (host by SNI,
//! method, target, headers, body) so the suite — and a curious newcomer, at
//! `/_demo/vendor-log` on the demo origin — can see what the vendor was told.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;
use tokio_rustls::rustls;
use tokio_tungstenite::tungstenite::{Message, handshake::derive_accept_key, protocol::Role};

/// Host names the mock answers for: the Zendesk Web Widget's (owned by the
/// shipped `zendesk` rule) and an Intercom Messenger's (owned by `intercom`,
/// which the shipped site does not allow: a second shape for the test suite).
pub const HOSTS: &[&str] = &[
    "static.zdassets.com",
    "ekr.zdassets.com",
    "clinic.zendesk.com",
    "widget-mediator.zendesk.com",
    "widget.intercom.io",
    "js.intercomcdn.com",
    "api-iam.intercom.io",
    "nexus-websocket-a.intercom.io",
];

/// Hosts whose upgrades the mock answers as a chat WebSocket.
const WEBSOCKET_HOSTS: &[&str] = &["widget-mediator.zendesk.com", "nexus-websocket-a.intercom.io"];

const SNIPPET_JS: &str = include_str!("widget/snippet.js");
const COMPOSE_JSON: &str = include_str!("widget/compose.json");
const WIDGET_JS: &str = include_str!("widget/web_widget.js");
const CHUNK_JS: &str = include_str!("widget/chunk-chat.js");
const WIDGET_CSS: &str = include_str!("widget/widget.css");
const INTERCOM_LOADER_JS: &str = include_str!("widget/intercom-loader.js");
const INTERCOM_FRAME_JS: &str = include_str!("widget/intercom-frame.js");
/// The ping's answer: where the Messenger's WebSocket is (a host from JSON).
const INTERCOM_PING_JSON: &str = r#"{"type":"messenger_ping","app":{"id":"demoapp","name":"Demo Clinic"},"realtime":{"endpoints":["wss://nexus-websocket-a.intercom.io/pubsub/5-demo?X-Nexus-New-Client=true"]}}"#;

/// A 1×1 transparent PNG (the agent's avatar).
const PNG: &[u8] = &[
    0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0x00, 0x00, 0x00, 0x0d, 0x49, 0x48, 0x44, 0x52, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x00, 0x00, 0x01, 0x08, 0x06, 0x00, 0x00, 0x00, 0x1f, 0x15, 0xc4, 0x89, 0x00, 0x00, 0x00, 0x0d, 0x49,
    0x44, 0x41, 0x54, 0x78, 0x9c, 0x63, 0x00, 0x01, 0x00, 0x00, 0x05, 0x00, 0x01, 0x0d, 0x0a, 0x2d, 0xb4, 0x00, 0x00,
    0x00, 0x00, 0x49, 0x45, 0x4e, 0x44, 0xae, 0x42, 0x60, 0x82,
];

/// Most requests kept in the log (oldest dropped first).
const LOG_CAP: usize = 1000;

/// One request the vendor received.
#[derive(Debug, Clone)]
pub struct VendorRequest {
    /// TLS SNI: the vendor host tagwarden connected for.
    pub host: String,
    pub method: String,
    pub target: String,
    /// Names lower-cased, in arrival order.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Text frames the client sent, for a WebSocket.
    pub frames: Vec<String>,
}

impl VendorRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

impl std::fmt::Display for VendorRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} https://{}{}", self.method, self.host, self.target)
    }
}

/// What the vendor received, in order.
#[derive(Debug, Clone, Default)]
pub struct VendorLog(Arc<Mutex<Vec<VendorRequest>>>);

impl VendorLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<VendorRequest>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    fn push(&self, r: VendorRequest) -> usize {
        let mut l = self.lock();
        if l.len() >= LOG_CAP {
            l.remove(0);
        }
        l.push(r);
        l.len() - 1
    }
    fn add_frame(&self, idx: usize, text: &str) {
        if let Some(r) = self.lock().get_mut(idx) {
            r.frames.push(text.to_string());
        }
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }
    pub fn snapshot(&self) -> Vec<VendorRequest> {
        self.lock().clone()
    }
    /// Requests `from..to` (indices as [`VendorLog::len`] counted them).
    pub fn slice(&self, from: usize, to: usize) -> Vec<VendorRequest> {
        let l = self.lock();
        l[from.min(l.len())..to.min(l.len())].to_vec()
    }
    /// One line per request with its headers, for `/_demo/vendor-log`.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for r in self.lock().iter() {
            out.push_str(&format!("{r}\n"));
            for (n, v) in &r.headers {
                out.push_str(&format!("    {n}: {v}\n"));
            }
            if !r.body.is_empty() {
                out.push_str(&format!("    body: {}\n", String::from_utf8_lossy(&r.body)));
            }
            for f in &r.frames {
                out.push_str(&format!("    frame: {f}\n"));
            }
        }
        out
    }
}

/// A static response the mock also serves: (host, path, content type, body).
pub type ExtraRoute = (&'static str, &'static str, &'static str, &'static str);

/// The running mock.
#[derive(Debug)]
pub struct DemoVendor {
    pub addr: SocketAddr,
    /// PEM of the CA that signed the mock's certificate (for `[vendors] ca_file`).
    pub ca_pem: String,
    pub log: VendorLog,
}

/// Why the mock could not start.
#[derive(Debug, thiserror::Error)]
pub enum DemoVendorError {
    #[error("demo vendor certificate: {0}")]
    Certificate(#[from] rcgen::Error),
    #[error("demo vendor TLS: {0}")]
    Tls(#[from] rustls::Error),
    #[error("demo vendor listener: {0}")]
    Io(#[from] std::io::Error),
}

impl DemoVendor {
    /// Binds `listen` (use port 0) and serves until the runtime stops.
    pub async fn start(listen: SocketAddr) -> Result<DemoVendor, DemoVendorError> {
        Self::start_with(listen, &[]).await
    }

    /// The same, also answering `extra` (the test suite adds a compromised
    /// vendor script this way).
    pub async fn start_with(listen: SocketAddr, extra: &[ExtraRoute]) -> Result<DemoVendor, DemoVendorError> {
        let extra: Arc<Vec<ExtraRoute>> = Arc::new(extra.to_vec());
        let (ca_pem, config) = throwaway_tls(HOSTS)?;
        let listener = TcpListener::bind(listen).await?;
        let addr = listener.local_addr()?;
        let log = VendorLog::default();
        let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
        let l = log.clone();
        tokio::spawn(async move {
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                };
                let (acceptor, log, extra) = (acceptor.clone(), l.clone(), extra.clone());
                tokio::spawn(async move {
                    let Ok(Ok(tls)) = tokio::time::timeout(Duration::from_secs(10), acceptor.accept(tcp)).await else {
                        return;
                    };
                    let host = tls.get_ref().1.server_name().unwrap_or_default().to_string();
                    let _ = tokio::time::timeout(Duration::from_secs(300), serve(tls, host, log, &extra)).await;
                });
            }
        });
        Ok(DemoVendor { addr, ca_pem, log })
    }
}

/// A throwaway CA (its PEM) and a server config whose certificate that CA signs
/// for `hosts`: the demo vendor's, and any loopback stand-in for a vendor (the
/// test suites use it too). Made in memory at start-up; the key never leaves it.
pub fn throwaway_tls(hosts: &[&str]) -> Result<(String, rustls::ServerConfig), DemoVendorError> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "tagwarden vendor CA (throwaway)");
    let ca = ca_params.self_signed(&ca_key)?;
    let leaf_key = KeyPair::generate()?;
    let names: Vec<String> = hosts.iter().map(|h| h.to_string()).collect();
    let leaf = CertificateParams::new(names)?.signed_by(&leaf_key, &ca, &ca_key)?;
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(leaf_key.serialize_der().into());
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(vec![leaf.der().clone()], key)?;
    Ok((ca.pem(), config))
}

async fn serve<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, host: String, log: VendorLog, extra: &[ExtraRoute]) {
    loop {
        let Some((method, target, headers, body)) = read_request(&mut s).await else { return };
        let req = VendorRequest { host: host.clone(), method, target, headers, body, frames: Vec::new() };
        let idx = log.push(req.clone());
        let upgrade = req.header("upgrade").is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
        if upgrade && WEBSOCKET_HOSTS.contains(&host.as_str()) {
            websocket(s, &req, &log, idx).await;
            return;
        }
        let path = req.target.split('?').next().unwrap_or_default();
        let (status, ctype, body) = match extra.iter().find(|(h, p, _, _)| *h == host && *p == path) {
            Some((_, _, ctype, body)) => (200, *ctype, body.as_bytes().to_vec()),
            None => respond(&req),
        };
        // A tracking cookie, as vendors set: tagwarden must drop it.
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: {ctype}\r\ncontent-length: {}\r\nset-cookie: __zlcmid=demo-tracking-id; Path=/; Secure\r\n\r\n",
            if status < 300 { "OK" } else { "Not Found" },
            body.len()
        );
        if s.write_all(head.as_bytes()).await.is_err() || s.write_all(&body).await.is_err() {
            return;
        }
    }
}

fn respond(req: &VendorRequest) -> (u16, &'static str, Vec<u8>) {
    const JS: &str = "application/javascript; charset=utf-8";
    const JSON: &str = "application/json; charset=utf-8";
    let path = req.target.split('?').next().unwrap_or_default();
    match (req.host.as_str(), req.method.as_str(), path) {
        ("static.zdassets.com", "GET", "/ekr/snippet.js") => (200, JS, SNIPPET_JS.into()),
        ("ekr.zdassets.com", "GET", p) if p.starts_with("/compose/") => (200, JSON, COMPOSE_JSON.into()),
        ("static.zdassets.com", "GET", "/web_widget/latest/web_widget.js") => (200, JS, WIDGET_JS.into()),
        ("static.zdassets.com", "GET", "/web_widget/latest/chunk-chat.js") => (200, JS, CHUNK_JS.into()),
        ("static.zdassets.com", "GET", "/web_widget/latest/widget.css") => (200, "text/css", WIDGET_CSS.into()),
        ("static.zdassets.com", "GET", "/web_widget/latest/zd-font.woff2") => (200, "font/woff2", vec![0u8; 16]),
        ("static.zdassets.com", "GET", "/avatars/agent.png") => (200, "image/png", PNG.to_vec()),
        ("clinic.zendesk.com", "GET", "/embeddable/config") => {
            (200, JSON, br#"{"chatHost":"widget-mediator.zendesk.com","brand":"Demo Clinic"}"#.to_vec())
        }
        ("clinic.zendesk.com", "POST", "/api/v2/requests.json") => (201, JSON, br#"{"request":{"id":4242}}"#.to_vec()),
        ("widget.intercom.io", "GET", p) if p.starts_with("/widget/") => (200, JS, INTERCOM_LOADER_JS.into()),
        ("js.intercomcdn.com", "GET", "/frame-modern.js") => (200, JS, INTERCOM_FRAME_JS.into()),
        ("api-iam.intercom.io", "POST", "/messenger/web/ping") => (200, JSON, INTERCOM_PING_JSON.into()),
        _ => (404, "text/plain", b"not found\n".to_vec()),
    }
}

async fn websocket<S: AsyncRead + AsyncWrite + Unpin>(mut s: S, req: &VendorRequest, log: &VendorLog, idx: usize) {
    let Some(key) = req.header("sec-websocket-key") else { return };
    let head = format!(
        "HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: {}\r\n\r\n",
        derive_accept_key(key.as_bytes())
    );
    if s.write_all(head.as_bytes()).await.is_err() {
        return;
    }
    let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(s, Role::Server, None).await;
    while let Some(Ok(msg)) = ws.next().await {
        if let Message::Text(text) = msg {
            log.add_frame(idx, text.as_str());
            let said: serde_json::Value = serde_json::from_str(text.as_str()).unwrap_or_default();
            let reply = serde_json::json!({
                "type": "chat.msg",
                "text": format!("agent: we got \"{}\"", said["text"].as_str().unwrap_or_default()),
                "avatar": "https://static.zdassets.com/avatars/agent.png",
            });
            if ws.send(Message::text(reply.to_string())).await.is_err() {
                return;
            }
        }
    }
}

/// One HTTP/1.1 request: the head, and a Content-Length or chunked body.
async fn read_request<S: AsyncRead + Unpin>(s: &mut S) -> Option<(String, String, Vec<(String, String)>, Vec<u8>)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let end = loop {
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p;
        }
        if buf.len() > 64 * 1024 {
            return None;
        }
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let (method, target) = (first.next()?.to_string(), first.next()?.to_string());
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let chunked = headers.iter().any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let mut rest = buf[end + 4..].to_vec();
    if chunked {
        // Read until the terminating zero-size chunk, then decode.
        while !rest.windows(5).any(|w| w == b"0\r\n\r\n") {
            if rest.len() > 1024 * 1024 {
                return None;
            }
            let n = s.read(&mut chunk).await.ok()?;
            if n == 0 {
                return None;
            }
            rest.extend_from_slice(&chunk[..n]);
        }
        return Some((method, target, headers, dechunk(&rest)));
    }
    let len: usize = headers.iter().find(|(n, _)| n == "content-length").and_then(|(_, v)| v.parse().ok()).unwrap_or(0);
    if len > 1024 * 1024 {
        return None;
    }
    while rest.len() < len {
        let n = s.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    rest.truncate(len);
    Some((method, target, headers, rest))
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(p) = b.windows(2).position(|w| w == b"\r\n") {
        let size =
            std::str::from_utf8(&b[..p]).ok().and_then(|h| usize::from_str_radix(h.split(';').next()?.trim(), 16).ok());
        let Some(size) = size.filter(|s| *s > 0) else { break };
        let start = p + 2;
        if b.len() < start + size {
            break;
        }
        out.extend_from_slice(&b[start..start + size]);
        b = b.get(start + size + 2..).unwrap_or_default();
    }
    out
}
