//! Raw HTTP/1.1 on both sides of the proxy, for integration tests: test origins
//! and vendor sinks that record every request and write exactly the bytes a test
//! wants, and a client that parses responses well enough to see a missing final
//! chunk or an early close. Shared by `tests/proxy.rs` and `tests/upstream.rs`.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// Hang guard for one exchange (not a timing assertion).
pub const GUARD: Duration = Duration::from_secs(30);
/// Most connections a test server accepts.
pub const MAX_CONNS: usize = 128;
/// Largest request head / body / response any helper reads.
pub const MAX_BYTES: usize = 64 << 20;

pub const TRACKERS: &str = r#"<script src="https://connect.facebook.net/en_US/fbevents.js"></script><img src="https://www.facebook.com/tr?id=1"> <script id="ze-snippet" src="https://static.zdassets.com/ekr/snippet.js?key=k"></script>"#;
pub const ZENDESK_FIRST_PARTY: &str = "/_tw/zendesk/static.zdassets.com/ekr/snippet.js";

// ---------------------------------------------------------------------------
// Test servers (origin and vendor sink)
// ---------------------------------------------------------------------------

/// A request as a test server received it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

/// A raw HTTP/1.1 server: records every request head (and body), then hands
/// the socket to the handler, which writes whatever bytes the test wants.
pub struct TestServer {
    pub addr: SocketAddr,
    pub seen: Arc<Mutex<Vec<Seen>>>,
}

impl TestServer {
    pub async fn start<F, Fut>(handler: F) -> TestServer
    where
        F: Fn(Seen, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        TestServer::start_accepting(MAX_CONNS, handler).await
    }

    /// As [`TestServer::start`], accepting at most `max_conns` connections.
    pub async fn start_accepting<F, Fut>(max_conns: usize, handler: F) -> TestServer
    where
        F: Fn(Seen, TcpStream) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        let handler = Arc::new(handler);
        tokio::spawn(async move {
            for _ in 0..max_conns {
                let Ok((mut sock, _)) = listener.accept().await else { return };
                let (recorded, handler) = (recorded.clone(), handler.clone());
                tokio::spawn(async move {
                    let Some(req) = read_request(&mut sock).await else { return };
                    recorded.lock().unwrap().push(req.clone());
                    handler(req, sock).await;
                });
            }
        });
        TestServer { addr, seen }
    }

    /// Answers every request with the same bytes, then closes.
    pub async fn fixed(response: Vec<u8>) -> TestServer {
        TestServer::start(move |_req, sock| send_and_close(sock, response.clone())).await
    }

    pub fn requests(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

pub async fn send_and_close(mut sock: TcpStream, bytes: Vec<u8>) {
    let _ = sock.write_all(&bytes).await;
    let _ = sock.shutdown().await;
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

pub fn contains(hay: &[u8], needle: &str) -> bool {
    find(hay, needle.as_bytes()).is_some()
}

/// Reads one request (head, then a Content-Length or chunked body).
pub async fn read_request<S: AsyncRead + Unpin>(sock: &mut S) -> Option<Seen> {
    let mut buf = Vec::new();
    let head_end = loop {
        if let Some(i) = find(&buf, b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_BYTES {
            return None;
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next()?.split(' ');
    let method = first.next()?.to_string();
    let target = first.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut seen = Seen { method, target, headers, body: Vec::new() };
    let mut rest = buf[head_end..].to_vec();
    let chunked = seen.header("transfer-encoding").is_some_and(|t| t.to_ascii_lowercase().contains("chunked"));
    let length: Option<usize> = seen.header("content-length").and_then(|l| l.parse().ok());
    // Bounded: every round reads at least one byte or returns.
    while rest.len() <= MAX_BYTES {
        if chunked {
            let d = dechunk(&rest);
            if d.complete {
                seen.body = d.body;
                return Some(seen);
            }
        } else {
            let want = length.unwrap_or(0);
            if rest.len() >= want {
                rest.truncate(want);
                seen.body = rest;
                return Some(seen);
            }
        }
        let mut chunk = [0u8; 8192];
        let n = sock.read(&mut chunk).await.ok()?;
        if n == 0 {
            seen.body = rest;
            return Some(seen);
        }
        rest.extend_from_slice(&chunk[..n]);
    }
    None
}

pub fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

/// A response head with `connection: close`.
pub fn head(status: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut h = headers.to_vec();
    h.push(("connection", "close"));
    raw_head(status, &h)
}

/// A response head with exactly these headers (e.g. a `101 Switching Protocols`).
pub fn raw_head(status: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut out = format!("HTTP/1.1 {status}\r\n");
    for (n, v) in headers {
        out.push_str(&format!("{n}: {v}\r\n"));
    }
    out.push_str("\r\n");
    out.into_bytes()
}

/// A complete Content-Length response.
pub fn cl_response(status: &str, headers: &[(&str, &str)], body: &[u8]) -> Vec<u8> {
    let len = body.len().to_string();
    let mut h = headers.to_vec();
    h.push(("content-length", &len));
    let mut out = head(status, &h);
    out.extend_from_slice(body);
    out
}

/// A complete chunked response, the body split into `pieces`-byte chunks.
pub fn chunked_response(status: &str, headers: &[(&str, &str)], body: &[u8], piece: usize) -> Vec<u8> {
    let mut h = headers.to_vec();
    h.push(("transfer-encoding", "chunked"));
    let mut out = head(status, &h);
    for c in body.chunks(piece) {
        out.extend(chunk(c));
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// A page with trackers, a Zendesk snippet, and enough text to span many chunks.
/// An HTML origin that sends a first part, waits for `release`, then an
/// 8 KB inline script (over a 1 KiB `[rewrite] max_inline_bytes`) and a tail:
/// the rewrite fails after the first bytes went out.
pub async fn inline_overflow_origin(release: Arc<tokio::sync::Notify>) -> TestServer {
    TestServer::start(move |_req, mut sock| {
        let release = release.clone();
        async move {
            let mut first = head("200 OK", &[("content-type", "text/html"), ("transfer-encoding", "chunked")]);
            first.extend(chunk(b"<!doctype html><html><body><p>first part</p><p>"));
            sock.write_all(&first).await.unwrap();
            release.notified().await;
            let mut rest = b"</p><script>".to_vec();
            rest.extend(b"var raw_inline = 1;\n".repeat(400));
            rest.extend_from_slice(b"</script><p>after the script</p></body></html>");
            let mut bytes = chunk(&rest);
            bytes.extend_from_slice(b"0\r\n\r\n");
            let _ = sock.write_all(&bytes).await;
            let _ = sock.shutdown().await;
        }
    })
    .await
}

pub fn page() -> Vec<u8> {
    let mut s = String::from(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>Clinic</title></head><body><h1>Diabetes care</h1>",
    );
    s.push_str(TRACKERS);
    for i in 0..1500 {
        s.push_str(&format!("<p>Paragraph {i}: book an appointment with our care team.</p>\n"));
    }
    s.push_str("<p>end of page</p></body></html>\n");
    s.into_bytes()
}

pub fn assert_rewritten(html: &[u8]) {
    let s = String::from_utf8_lossy(html);
    assert!(!s.contains("facebook"), "a tracker survived:\n{}", &s[..s.len().min(2000)]);
    assert!(
        s.contains(&format!("src=\"{ZENDESK_FIRST_PARTY}?key=k\"")),
        "Zendesk not rewritten first-party:\n{}",
        &s[..s.len().min(2000)]
    );
    assert!(!s.contains("src=\"https://static.zdassets.com"), "Zendesk still loaded third-party");
    assert!(s.contains("<p>end of page</p></body></html>"), "page truncated");
}

// ---------------------------------------------------------------------------
// Client side
// ---------------------------------------------------------------------------

/// A parsed HTTP/1.1 response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    /// Body with the transfer coding removed (content coding untouched).
    pub body: Vec<u8>,
    /// Chunked: the terminating `0\r\n\r\n` arrived. Content-Length: all bytes arrived.
    pub complete: bool,
    /// Raw bytes after the head.
    pub after_head: Vec<u8>,
    pub raw: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }

    pub fn chunked(&self) -> bool {
        self.header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked"))
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).to_string()
    }

    /// The first bytes of the raw response, for assertion messages.
    pub fn summary(&self) -> String {
        String::from_utf8_lossy(&self.raw[..self.raw.len().min(600)]).to_string()
    }
}

pub struct Dechunked {
    pub body: Vec<u8>,
    pub complete: bool,
}

/// Removes chunked framing; `complete` only if the last chunk and the final CRLF arrived.
pub fn dechunk(mut data: &[u8]) -> Dechunked {
    let mut body = Vec::new();
    // Bounded: each round consumes a chunk header or returns.
    while !data.is_empty() {
        let Some(eol) = find(data, b"\r\n") else { break };
        let line = String::from_utf8_lossy(&data[..eol]).to_string();
        let Ok(size) = usize::from_str_radix(line.split(';').next().unwrap_or_default().trim(), 16) else { break };
        data = &data[eol + 2..];
        if size == 0 {
            // Trailers (none expected) end with an empty line.
            let complete = data.starts_with(b"\r\n") || find(data, b"\r\n\r\n").is_some();
            return Dechunked { body, complete };
        }
        if data.len() < size {
            body.extend_from_slice(data);
            break;
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size..];
        if data.len() < 2 {
            break;
        }
        data = &data[2..];
    }
    Dechunked { body, complete: false }
}

pub fn parse_response(raw: &[u8], head_request: bool) -> Resp {
    let end = find(raw, b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no complete response head in {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..end]).to_string();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line.split(' ').nth(1).and_then(|s| s.parse().ok()).expect("status code");
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(n, v)| (n.trim().to_string(), v.trim().to_string())).collect();
    let after_head = raw[end + 4..].to_vec();
    let mut r =
        Resp { status, headers, body: Vec::new(), complete: true, after_head: after_head.clone(), raw: raw.to_vec() };
    if head_request || status == 204 || status == 304 || status < 200 {
        return r;
    }
    if r.chunked() {
        let d = dechunk(&after_head);
        r.body = d.body;
        r.complete = d.complete;
    } else if let Some(len) = r.header("content-length").and_then(|l| l.parse::<usize>().ok()) {
        r.complete = after_head.len() >= len;
        r.body = after_head[..after_head.len().min(len)].to_vec();
    } else {
        r.body = after_head;
    }
    r
}

/// Reads until the peer closes (EOF or reset) or `MAX_BYTES`.
pub async fn read_to_close(s: &mut TcpStream, out: &mut Vec<u8>) {
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < MAX_BYTES {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Reads until `needle` has arrived; false if the connection closed first.
pub async fn read_until(s: &mut TcpStream, out: &mut Vec<u8>, needle: &str) -> bool {
    let mut buf = vec![0u8; 64 * 1024];
    while out.len() < MAX_BYTES {
        if contains(out, needle) {
            return true;
        }
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return contains(out, needle),
            Ok(n) => out.extend_from_slice(&buf[..n]),
        }
    }
    false
}

/// Sends raw request bytes, returns every byte the proxy sent until it closed.
pub async fn exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    tokio::time::timeout(GUARD, async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        // The proxy may answer (and close) before reading all of a rejected request.
        let _ = s.write_all(request).await;
        let mut out = Vec::new();
        read_to_close(&mut s, &mut out).await;
        out
    })
    .await
    .expect("hang guard: the proxy neither finished the response nor closed the connection")
}

/// `GET` (or another method) with `Host: clinic.example`, extra header lines, `Connection: close`.
pub fn request(method: &str, path: &str, extra: &[&str]) -> Vec<u8> {
    let mut r = format!("{method} {path} HTTP/1.1\r\nHost: clinic.example\r\n");
    for h in extra {
        r.push_str(h);
        r.push_str("\r\n");
    }
    r.push_str("Connection: close\r\n\r\n");
    r.into_bytes()
}

pub async fn get(addr: SocketAddr, path: &str, extra: &[&str]) -> Resp {
    parse_response(&exchange(addr, &request("GET", path, extra)).await, false)
}
