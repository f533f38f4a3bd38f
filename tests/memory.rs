#![allow(clippy::unwrap_used, clippy::expect_used)]
//! A large HTML document streams through the proxy with bounded memory.
//!
//! Its own test binary, with a single test, so the process's peak RSS
//! (`VmHWM`) is not shared with other tests running in parallel.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};

/// Decoded HTML the origin generates.
const DOCUMENT_BYTES: usize = 200 << 20;
/// Allowed growth of the process's peak RSS while streaming it.
const MAX_GROWTH_KIB: u64 = 64 * 1024;
/// Hang guard for the whole exchange (not a timing assertion).
const GUARD: Duration = Duration::from_secs(600);

const PREFIX: &[u8] = b"<!doctype html><html><head><title>big</title></head><body>\n";
/// About 500 bytes: mostly text, one tracker image (element handling dominates
/// the cost in debug builds, so the markup is not denser than a real page's).
const UNIT: &[u8] =
    b"<p>text Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt \
ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco laboris nisi ut aliquip \
ex ea commodo consequat. Duis aute irure dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla \
pariatur. Excepteur sint occaecat cupidatat non proident, sunt in culpa qui officia deserunt mollit anim id est \
laborum. <img src=\"https://evil.example/p.gif\"></p>\n";
const SUFFIX: &[u8] = b"</body></html>\n";
const UNITS_PER_CHUNK: usize = 128;

/// Peak resident set size of this process, in KiB.
fn vm_hwm_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    let line = status.lines().find(|l| l.starts_with("VmHWM:")).expect("VmHWM line");
    line.split_whitespace().nth(1).and_then(|v| v.parse().ok()).expect("VmHWM value")
}

fn chunk(data: &[u8]) -> Vec<u8> {
    let mut out = format!("{:x}\r\n", data.len()).into_bytes();
    out.extend_from_slice(data);
    out.extend_from_slice(b"\r\n");
    out
}

fn chunks_in_document() -> usize {
    DOCUMENT_BYTES / (UNIT.len() * UNITS_PER_CHUNK)
}

/// An origin that generates the document on the fly, chunked, for every request.
async fn generating_origin() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        for _ in 0..4 {
            let Ok((mut sock, _)) = listener.accept().await else { return };
            tokio::spawn(async move {
                // Read the request head (bounded), then stream.
                let mut head = Vec::new();
                let mut buf = [0u8; 4096];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
                    match sock.read(&mut buf).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buf[..n]),
                    }
                }
                let mut out = b"HTTP/1.1 200 OK\r\ncontent-type: text/html; charset=utf-8\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n".to_vec();
                out.extend(chunk(PREFIX));
                if sock.write_all(&out).await.is_err() {
                    return;
                }
                let body = chunk(&UNIT.repeat(UNITS_PER_CHUNK));
                for _ in 0..chunks_in_document() {
                    if sock.write_all(&body).await.is_err() {
                        return;
                    }
                }
                let mut end = chunk(SUFFIX);
                end.extend_from_slice(b"0\r\n\r\n");
                let _ = sock.write_all(&end).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    addr
}

/// Incremental chunked decoder that keeps nothing but counters and a small tail.
#[derive(Default)]
struct Reader {
    head_done: bool,
    head: Vec<u8>,
    /// Pending chunk-size line.
    line: Vec<u8>,
    /// Data bytes left in the current chunk, then 2 for its CRLF.
    data_left: usize,
    crlf_left: usize,
    terminated: bool,
    body_bytes: u64,
    /// The last bytes of the body, so a needle split across reads is found.
    tail: Vec<u8>,
    leaks: usize,
    paragraphs: usize,
}

impl Reader {
    const TAIL: usize = 16;

    fn scan(&mut self, data: &[u8], needle: &regex::bytes::Regex, paragraph: &regex::bytes::Regex) {
        self.body_bytes += data.len() as u64;
        // Matches entirely inside `data`, plus those straddling the previous tail.
        let mut joint = std::mem::take(&mut self.tail);
        joint.extend_from_slice(&data[..data.len().min(Self::TAIL)]);
        let straddling = |re: &regex::bytes::Regex, joint: &[u8], tail_len: usize| {
            re.find_iter(joint).filter(|m| m.start() < tail_len && m.end() > tail_len).count()
        };
        let tail_len = joint.len() - data.len().min(Self::TAIL);
        self.leaks += needle.find_iter(data).count() + straddling(needle, &joint, tail_len);
        self.paragraphs += paragraph.find_iter(data).count() + straddling(paragraph, &joint, tail_len);
        joint.extend_from_slice(&data[data.len().min(Self::TAIL)..]);
        let keep = joint.len().min(Self::TAIL);
        self.tail = joint[joint.len() - keep..].to_vec();
    }

    fn feed(&mut self, mut data: &[u8], needle: &regex::bytes::Regex, paragraph: &regex::bytes::Regex) {
        if !self.head_done {
            self.head.extend_from_slice(data);
            let Some(end) = self.head.windows(4).position(|w| w == b"\r\n\r\n") else { return };
            let rest = self.head.split_off(end + 4);
            self.head_done = true;
            return self.feed(&rest, needle, paragraph);
        }
        while !data.is_empty() && !self.terminated {
            if self.data_left > 0 {
                let n = self.data_left.min(data.len());
                self.scan(&data[..n], needle, paragraph);
                self.data_left -= n;
                data = &data[n..];
                if self.data_left == 0 {
                    self.crlf_left = 2;
                }
            } else if self.crlf_left > 0 {
                let n = self.crlf_left.min(data.len());
                self.crlf_left -= n;
                data = &data[n..];
            } else {
                let Some(eol) = data.iter().position(|b| *b == b'\n') else {
                    self.line.extend_from_slice(data);
                    assert!(self.line.len() < 64, "bad chunk size line");
                    return;
                };
                self.line.extend_from_slice(&data[..eol]);
                data = &data[eol + 1..];
                let text = String::from_utf8_lossy(&self.line).trim().to_string();
                self.line.clear();
                let size = usize::from_str_radix(text.split(';').next().unwrap_or_default(), 16)
                    .unwrap_or_else(|_| panic!("bad chunk size {text:?}"));
                if size == 0 {
                    // `0\r\n` then the final `\r\n` (no trailers are sent).
                    self.terminated = true;
                } else {
                    self.data_left = size;
                }
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_html_streams_through_the_rewriter_with_bounded_memory() {
    let origin = generating_origin().await;
    let rules = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("rules");
    let config = Config { rules: rules.clone(), ..Config::default() };
    let shared = Arc::new(
        // No vendor traffic in this test.
        Shared::new(tagwarden::rules::load_dir(&rules).expect("rules"), config, Origin::plain(origin))
            .expect("no vendor CA to load"),
    );
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = tagwarden::serve::start_with(shared, loopback, loopback, Duration::from_secs(5), tx, rx, None)
        .await
        .expect("proxy starts");

    let needle = regex::bytes::Regex::new(r"evil\.example").unwrap();
    let paragraph = regex::bytes::Regex::new(r"<p>text ").unwrap();
    let before = vm_hwm_kib();
    let reader = tokio::time::timeout(GUARD, async {
        let mut s = TcpStream::connect(running.proxy_addr).await.unwrap();
        s.write_all(b"GET /big HTTP/1.1\r\nHost: clinic.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        let mut reader = Reader::default();
        let mut buf = vec![0u8; 64 * 1024];
        // Bounded: each round reads at least one byte; the proxy sends less than twice the document.
        let mut total = 0usize;
        while total < 2 * DOCUMENT_BYTES {
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    total += n;
                    reader.feed(&buf[..n], &needle, &paragraph);
                }
            }
        }
        reader
    })
    .await
    .expect("hang guard: the large document did not finish");
    let after = vm_hwm_kib();

    let head = String::from_utf8_lossy(&reader.head);
    assert!(reader.head_done && head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(reader.terminated, "the response was not terminated after {} body bytes", reader.body_bytes);
    assert_eq!(reader.leaks, 0, "evil.example survived the rewrite");
    let units = chunks_in_document() * UNITS_PER_CHUNK;
    assert_eq!(reader.paragraphs, units, "paragraphs lost or duplicated");
    let growth = after.saturating_sub(before);
    assert!(
        growth < MAX_GROWTH_KIB,
        "peak RSS grew by {growth} KiB (from {before} to {after} KiB) streaming {} MiB",
        DOCUMENT_BYTES >> 20
    );
}
