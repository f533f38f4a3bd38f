//! A recording origin for differential tests (the smuggling suite): it keeps
//! every byte each connection received and answers each request its own strict
//! RFC 9112 parser finds (CRLF only, token names, no obs-fold, no CTLs in values,
//! exactly one framing), so a test can parse what the proxy sent and compare it
//! with what the client meant.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::http::find;

/// Hang guard for an idle origin connection (not a timing assertion).
const GUARD: Duration = Duration::from_secs(20);
/// Most bytes the origin keeps per connection.
const MAX_BYTES: usize = 1 << 20;

/// A request as the origin's strict parser read it.
#[derive(Debug)]
pub struct OriginRequest {
    pub method: String,
    pub target: String,
    pub headers: Vec<(String, String)>,
}

/// Splits `buf` into complete requests, strictly (RFC 9112, no leniency): CRLF
/// line ends only, token names, no obs-fold, no CTLs in values, one framing.
/// Returns the requests and how many bytes they used; `Err` on any violation.
pub fn parse_strict(buf: &[u8]) -> Result<(Vec<OriginRequest>, usize), String> {
    let mut out = Vec::new();
    let mut at = 0;
    while at < buf.len() {
        let rest = &buf[at..];
        let Some(end) = find(rest, b"\r\n\r\n") else { break };
        let head = &rest[..end];
        if head.iter().enumerate().any(|(i, b)| {
            (*b == b'\n' && (i == 0 || head[i - 1] != b'\r')) || (*b == b'\r' && head.get(i + 1) != Some(&b'\n'))
        }) {
            return Err("bare CR or LF in a head".into());
        }
        let text = std::str::from_utf8(head).map_err(|_| "non-UTF-8 head".to_string())?;
        let mut lines = text.split("\r\n");
        let line = lines.next().unwrap_or_default();
        let parts: Vec<&str> = line.split(' ').collect();
        if parts.len() != 3 || !matches!(parts[2], "HTTP/1.1" | "HTTP/1.0") || parts[0].is_empty() {
            return Err(format!("bad request line {line:?}"));
        }
        let mut headers = Vec::new();
        for l in lines {
            let (n, v) = l.split_once(':').ok_or_else(|| format!("header without colon {l:?}"))?;
            let tchar = |c: char| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c);
            if n.is_empty() || !n.chars().all(tchar) {
                return Err(format!("bad header name {n:?}"));
            }
            if v.chars().any(|c| (c.is_ascii_control() && c != '\t') || !c.is_ascii()) {
                return Err(format!("control byte in {n} value"));
            }
            headers.push((n.to_ascii_lowercase(), v.trim_matches([' ', '\t']).to_string()));
        }
        let get = |name: &str| headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_str()).collect::<Vec<_>>();
        let (te, cl) = (get("transfer-encoding"), get("content-length"));
        let mut pos = end + 4;
        if !te.is_empty() {
            if te != ["chunked"] || !cl.is_empty() {
                return Err(format!("ambiguous framing: te {te:?} cl {cl:?}"));
            }
            match parse_chunked(&rest[pos..])? {
                Some(n) => pos += n,
                None => break,
            }
        } else if !cl.is_empty() {
            if cl.len() != 1 || cl[0].is_empty() || !cl[0].bytes().all(|b| b.is_ascii_digit()) {
                return Err(format!("bad content-length {cl:?}"));
            }
            let n: usize = cl[0].parse().map_err(|_| "content-length overflow".to_string())?;
            if rest.len() < pos + n {
                break;
            }
            pos += n;
        }
        out.push(OriginRequest { method: parts[0].into(), target: parts[1].into(), headers });
        at += pos;
    }
    Ok((out, at))
}

/// The length of a complete chunked body (through the trailers), `None` if incomplete.
fn parse_chunked(body: &[u8]) -> Result<Option<usize>, String> {
    let mut at = 0;
    loop {
        let Some(eol) = find(&body[at..], b"\r\n") else { return Ok(None) };
        let line = &body[at..at + eol];
        let size_text = line.split(|b| *b == b';').next().unwrap_or_default();
        if size_text.is_empty() || !size_text.iter().all(u8::is_ascii_hexdigit) || size_text.len() > 15 {
            return Err(format!("bad chunk size {:?}", String::from_utf8_lossy(line)));
        }
        let size = usize::from_str_radix(std::str::from_utf8(size_text).unwrap(), 16).unwrap();
        at += eol + 2;
        if size == 0 {
            loop {
                let Some(eol) = find(&body[at..], b"\r\n") else { return Ok(None) };
                at += eol + 2;
                if eol == 0 {
                    return Ok(Some(at));
                }
            }
        }
        if body.len() < at + size + 2 {
            return Ok(None);
        }
        if &body[at + size..at + size + 2] != b"\r\n" {
            return Err("chunk data not followed by CRLF".into());
        }
        at += size + 2;
    }
}

/// The bytes one origin connection received, and whether it is over.
#[derive(Default)]
pub struct Recorded {
    bytes: Vec<u8>,
    closed: bool,
}

pub type Conns = Arc<Mutex<Vec<Arc<Mutex<Recorded>>>>>;

/// Records every byte received per connection; answers each strictly parsed request.
pub struct RecordingOrigin {
    pub addr: SocketAddr,
    conns: Conns,
}

impl RecordingOrigin {
    pub async fn start() -> RecordingOrigin {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let conns: Conns = Arc::default();
        let all = conns.clone();
        tokio::spawn(async move {
            for _ in 0..1024 {
                let Ok((sock, _)) = listener.accept().await else { return };
                let record = Arc::new(Mutex::new(Recorded::default()));
                all.lock().unwrap().push(record.clone());
                tokio::spawn(async move {
                    serve(sock, &record).await;
                    record.lock().unwrap().closed = true;
                });
            }
        });
        RecordingOrigin { addr, conns }
    }

    /// Waits (bounded) until no connection holds a request still arriving: each is
    /// closed or ends on a request boundary. The client can see its answer before
    /// the proxy has finished writing to the origin; the next shape must not start then.
    pub async fn settle(&self) {
        for _ in 0..1000 {
            let settled = self.conns.lock().unwrap().iter().all(|c| {
                let c = c.lock().unwrap();
                c.closed || parse_strict(&c.bytes).map_or(true, |(_, used)| used == c.bytes.len())
            });
            if settled {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Every connection's bytes since `before` (from [`RecordingOrigin::lengths`]).
    pub fn received_since(&self, before: &[usize]) -> Vec<Vec<u8>> {
        let conns = self.conns.lock().unwrap();
        let bytes = conns
            .iter()
            .enumerate()
            .map(|(i, c)| c.lock().unwrap().bytes[before.get(i).copied().unwrap_or(0)..].to_vec());
        bytes.filter(|b| !b.is_empty()).collect()
    }
}

async fn serve(mut sock: TcpStream, record: &Mutex<Recorded>) {
    let mut answered = 0;
    let mut buf = [0u8; 16 * 1024];
    loop {
        let n = match tokio::time::timeout(GUARD, sock.read(&mut buf)).await {
            Ok(Ok(n)) if n > 0 => n,
            _ => return,
        };
        let all = {
            let mut r = record.lock().unwrap();
            r.bytes.extend_from_slice(&buf[..n]);
            if r.bytes.len() > MAX_BYTES {
                return;
            }
            r.bytes.clone()
        };
        let Ok((reqs, _)) = parse_strict(&all) else { return };
        for _ in answered..reqs.len() {
            let resp = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";
            if sock.write_all(resp).await.is_err() {
                return;
            }
        }
        answered = reqs.len();
    }
}
