#![allow(clippy::unwrap_used, clippy::expect_used)]
//! End-to-end tests of the proxy, in-process: a real `Shared` with the shipped
//! rules, `serve::start_with` on ephemeral loopback ports, raw-TCP test origins
//! (so framing, trickling, resets and codings are exact) and a raw-TCP client
//! (so a missing final chunk or a closed connection is visible).
//!
//! Ordering between the origin and the client is always enforced with
//! channels (`Notify`), never with sleeps. Every `tokio::time::timeout` here
//! is a hang guard that turns "the proxy never answered" into a failure; no
//! test asserts how long anything took.

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

mod support;

use support::http::*;
use support::tls_vendor::TlsVendor;

// ---------------------------------------------------------------------------
// Bodies and codings
// ---------------------------------------------------------------------------

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn zlib(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
    out
}

fn gunzip(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    flate2::read::MultiGzDecoder::new(data).read_to_end(&mut out).expect("body is not valid gzip");
    out
}

fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

/// Deterministic pseudo-random bytes (incompressible, reproducible from `seed`).
fn noise(len: usize, seed: u64) -> Vec<u8> {
    use rand::{RngCore, SeedableRng};
    let mut bytes = vec![0u8; len];
    rand::rngs::StdRng::seed_from_u64(seed).fill_bytes(&mut bytes);
    bytes
}

// ---------------------------------------------------------------------------
// The proxy under test
// ---------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Env {
    proxy: SocketAddr,
    admin: SocketAddr,
    running: Running,
    origin: TestServer,
    sink: TestServer,
    /// The vendor hosts' TLS front, in front of `sink` (kept alive with the proxy).
    _vendor: TlsVendor,
}

/// A vendor sink that answers every request with a small script and a cookie.
async fn default_sink() -> TestServer {
    TestServer::fixed(cl_response(
        "200 OK",
        &[
            ("content-type", "application/javascript"),
            ("set-cookie", "__zlcmid=vendor-id; Path=/; Domain=clinic.example"),
        ],
        b"window.zE = function () {};\n",
    ))
    .await
}

async fn start(origin: TestServer, tweak: impl FnOnce(&mut Config)) -> Env {
    start_full(origin, default_sink().await, Duration::from_secs(10), tweak).await
}

async fn start_full(origin: TestServer, sink: TestServer, grace: Duration, tweak: impl FnOnce(&mut Config)) -> Env {
    start_with_rules(repo().join("rules"), origin, sink, grace, tweak).await
}

/// A copy of the shipped rules with `site.toml` edited by `edit`.
fn edited_rules(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo().join("rules");
    std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
    let site = std::fs::read_to_string(from.join("site.toml")).unwrap();
    std::fs::write(dir.path().join("site.toml"), edit(site)).unwrap();
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("vendors").join(e.file_name())).unwrap();
    }
    dir
}

async fn start_with_rules(
    rules: PathBuf,
    origin: TestServer,
    sink: TestServer,
    grace: Duration,
    tweak: impl FnOnce(&mut Config),
) -> Env {
    let vendor = TlsVendor::start(sink.addr).await;
    let mut config = Config { rules: rules.clone(), ..Config::default() };
    vendor.configure(&mut config.vendors);
    tweak(&mut config);
    let policy = tagwarden::rules::load_dir(&rules).expect("shipped rules load");
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).expect("vendor CA loads"));
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = start_with(shared, loopback, loopback, grace, tx, rx, None).await.expect("proxy starts");
    Env { proxy: running.proxy_addr, admin: running.admin_addr, running, origin, sink, _vendor: vendor }
}

async fn html_origin(encoding: Option<&'static str>, body: Vec<u8>) -> TestServer {
    let mut headers = vec![("content-type", "text/html; charset=utf-8"), ("etag", "\"v1-strong\"")];
    if let Some(e) = encoding {
        headers.push(("content-encoding", e));
    }
    TestServer::fixed(chunked_response("200 OK", &headers, &body, 4096)).await
}

/// Checks a rewritten HTML response: framing, codings, validators, content.
fn assert_rewritten_response(r: &Resp, client_gzip: bool) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw[..r.raw.len().min(500)]));
    assert!(r.complete, "response not complete");
    assert!(!r.has_header("content-length"), "rewritten HTML carries a Content-Length: {:?}", r.headers);
    if client_gzip {
        assert_eq!(r.header("content-encoding"), Some("gzip"), "headers: {:?}", r.headers);
        assert_rewritten(&gunzip(&r.body));
    } else {
        assert_eq!(r.header("content-encoding"), None, "headers: {:?}", r.headers);
        assert_rewritten(&r.body);
    }
}

// ---------------------------------------------------------------------------
// Content codings
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_origin_html_is_rewritten_and_sent_gzip_to_a_gzip_client() {
    let env = start(html_origin(Some("gzip"), gzip(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html", "Accept-Encoding: gzip"]).await;
    assert_rewritten_response(&r, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_origin_html_is_rewritten_and_sent_identity_to_a_client_without_accept_encoding() {
    let env = start(html_origin(Some("gzip"), gzip(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn br_origin_html_is_rewritten_and_sent_gzip_to_a_gzip_client() {
    let env = start(html_origin(Some("br"), br(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html", "Accept-Encoding: gzip, br"]).await;
    assert_rewritten_response(&r, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn br_origin_html_is_rewritten_and_sent_identity_to_a_client_without_accept_encoding() {
    let env = start(html_origin(Some("br"), br(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_zlib_origin_html_is_rewritten_and_sent_gzip_to_a_gzip_client() {
    let env = start(html_origin(Some("deflate"), zlib(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html", "Accept-Encoding: gzip, deflate"]).await;
    assert_rewritten_response(&r, true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deflate_zlib_origin_html_is_rewritten_and_sent_identity_to_a_client_without_accept_encoding() {
    let env = start(html_origin(Some("deflate"), zlib(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_origin_html_is_sent_identity_to_a_client_accepting_only_br() {
    let env = start(html_origin(Some("gzip"), gzip(&page())).await, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html", "Accept-Encoding: br"]).await;
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_in_a_coding_the_proxy_cannot_decode_is_a_502() {
    let origin = TestServer::fixed(cl_response(
        "200 OK",
        &[("content-type", "text/html"), ("content-encoding", "zstd")],
        b"(\xb5/\xfd not really zstd <script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>",
    ))
    .await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html", "Accept-Encoding: zstd, gzip"]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(!contains(&r.raw, "facebook"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_html_drops_the_origins_strong_etag() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html"]).await;
    assert_eq!(r.status, 200);
    assert!(
        r.header("etag").is_none_or(|e| e.starts_with("W/")),
        "a strong validator describes the origin's bytes, not the rewritten page: {:?}",
        r.header("etag")
    );
}

// ---------------------------------------------------------------------------
// Framing of the origin's response
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_origin_html_is_rewritten() {
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 777)).await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_origin_html_is_rewritten_without_a_content_length() {
    let origin = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/html")], &page())).await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
    assert!(r.chunked(), "expected chunked framing, headers: {:?}", r.headers);
}

// ---------------------------------------------------------------------------
// Non-HTML bodies pass byte for byte
// ---------------------------------------------------------------------------

/// Proxies `body` with `headers` and checks body hash, Content-Length and Content-Encoding.
async fn assert_passes_unchanged(headers: &[(&str, &str)], body: Vec<u8>, chunked: bool, client: &[&str]) {
    let response =
        if chunked { chunked_response("200 OK", headers, &body, 1000) } else { cl_response("200 OK", headers, &body) };
    let env = start(TestServer::fixed(response).await, |_| {}).await;
    let r = get(env.proxy, "/asset", client).await;
    assert_eq!(r.status, 200);
    assert!(r.complete, "incomplete response");
    assert_eq!(r.body.len(), body.len());
    assert_eq!(sha256(&r.body), sha256(&body), "body changed");
    let origin_ce = headers.iter().find(|(n, _)| *n == "content-encoding").map(|(_, v)| *v);
    assert_eq!(r.header("content-encoding"), origin_ce, "Content-Encoding changed: {:?}", r.headers);
    if !chunked {
        assert_eq!(r.header("content-length"), Some(body.len().to_string().as_str()), "Content-Length changed");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn png_body_passes_byte_for_byte() {
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(noise(200_000, 7));
    assert_passes_unchanged(&[("content-type", "image/png")], png, false, &["Accept: image/*"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn javascript_body_passes_byte_for_byte() {
    let js = format!(
        "document.write('{TRACKERS}');\n{}",
        "var x = '<img src=\"https://www.facebook.com/tr?id=2\">';\n".repeat(2000)
    );
    assert_passes_unchanged(&[("content-type", "application/javascript")], js.into_bytes(), true, &["Accept: */*"])
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_body_passes_byte_for_byte() {
    let json = format!(
        "{{\"html\": {}, \"items\": [{}]}}",
        serde_json::to_string(TRACKERS).unwrap(),
        (0..5000).map(|i| i.to_string()).collect::<Vec<_>>().join(",")
    );
    assert_passes_unchanged(&[("content-type", "application/json")], json.into_bytes(), false, &["Accept: */*"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gzip_encoded_javascript_passes_byte_for_byte_with_its_encoding() {
    let js = gzip(format!("console.log('{TRACKERS}');\n").repeat(500).as_bytes());
    assert_passes_unchanged(
        &[("content-type", "text/javascript"), ("content-encoding", "gzip")],
        js,
        false,
        &["Accept: */*", "Accept-Encoding: gzip"],
    )
    .await;
}

// ---------------------------------------------------------------------------
// HEAD, 304, Range
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn head_on_html_returns_headers_without_body_or_stale_content_length() {
    let full_len = page().len().to_string();
    let origin = TestServer::start(move |req, sock| {
        let mut resp = head("200 OK", &[("content-type", "text/html"), ("content-length", &full_len)]);
        if req.method != "HEAD" {
            resp.extend(page());
        }
        send_and_close(sock, resp)
    })
    .await;
    let env = start(origin, |_| {}).await;
    let raw = exchange(env.proxy, &request("HEAD", "/conditions/diabetes", &["Accept: text/html"])).await;
    let r = parse_response(&raw, true);
    assert_eq!(r.status, 200);
    assert_eq!(env.origin.requests()[0].method, "HEAD");
    assert!(r.after_head.is_empty(), "HEAD response has a body: {:?}", String::from_utf8_lossy(&r.after_head));
    // The origin's length describes the unrewritten page: passing it on would be a lie.
    assert!(!r.has_header("content-length"), "HEAD carries the origin's Content-Length: {:?}", r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_modified_from_origin_passes_without_body() {
    let origin =
        TestServer::fixed(head("304 Not Modified", &[("etag", "\"v1\""), ("content-type", "text/html")])).await;
    let env = start(origin, |_| {}).await;
    let raw = exchange(env.proxy, &request("GET", "/", &["Accept: text/html", "If-None-Match: \"v1\""])).await;
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 304);
    assert!(r.after_head.is_empty(), "304 with a body: {:?}", String::from_utf8_lossy(&r.after_head));
    assert_eq!(env.origin.requests()[0].header("if-none-match"), Some("\"v1\""));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn range_request_for_html_reaches_origin_without_range() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html,application/xhtml+xml", "Range: bytes=0-99", "If-Range: \"v1\""])
        .await;
    assert_eq!(r.status, 200);
    let seen = env.origin.requests();
    assert_eq!(seen.len(), 1);
    assert!(!seen[0].has_header("range"), "Range reached the origin: {:?}", seen[0].headers);
    assert!(!seen[0].has_header("if-range"), "If-Range reached the origin: {:?}", seen[0].headers);
    assert_rewritten_response(&r, false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn partial_content_html_from_origin_becomes_502() {
    let slice = b"<html><head><script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>";
    let origin = TestServer::fixed(cl_response(
        "206 Partial Content",
        &[("content-type", "text/html"), ("content-range", "bytes 0-86/5000")],
        slice,
    ))
    .await;
    let env = start(origin, |_| {}).await;
    // No `Accept: text/html`: the Range header is forwarded and the origin answers with a slice.
    let r = get(env.proxy, "/", &["Accept: */*", "Range: bytes=0-86"]).await;
    assert_eq!(r.status, 502, "{}", String::from_utf8_lossy(&r.raw));
    assert!(!contains(&r.raw, "facebook"), "the unrewritten slice leaked");
    assert!(r.text().contains("502"), "expected the 502 page, got {:?}", r.text());
}

// ---------------------------------------------------------------------------
// Streaming, resets, rewriting errors
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trickled_html_reaches_the_client_rewritten_before_the_origin_finishes() {
    let release = Arc::new(Notify::new());
    let finished = Arc::new(AtomicBool::new(false));
    let (rel, fin) = (release.clone(), finished.clone());
    let origin = TestServer::start(move |_req, mut sock| {
        let (rel, fin) = (rel.clone(), fin.clone());
        async move {
            let mut first = head("200 OK", &[("content-type", "text/html"), ("transfer-encoding", "chunked")]);
            first.extend(chunk(
                b"<!doctype html><html><head><script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script>\
                  </head><body><p>first part</p><p>",
            ));
            sock.write_all(&first).await.unwrap();
            rel.notified().await;
            let mut rest =
                chunk(b"second <img src=\"https://www.facebook.com/tr?id=1\"> part</p><p>the end</p></body></html>");
            rest.extend_from_slice(b"0\r\n\r\n");
            sock.write_all(&rest).await.unwrap();
            fin.store(true, Ordering::SeqCst);
            let _ = sock.shutdown().await;
        }
    })
    .await;
    let env = start(origin, |_| {}).await;
    let raw = tokio::time::timeout(GUARD, async {
        let mut s = TcpStream::connect(env.proxy).await.unwrap();
        s.write_all(&request("GET", "/", &["Accept: text/html"])).await.unwrap();
        let mut out = Vec::new();
        assert!(read_until(&mut s, &mut out, "first part").await, "closed before the first part");
        // The origin is still parked on `release`: this part was streamed, not buffered.
        assert!(!finished.load(Ordering::SeqCst));
        assert!(!contains(&out, "facebook"), "tracker in the streamed first part");
        release.notify_one();
        read_to_close(&mut s, &mut out).await;
        out
    })
    .await
    .expect("hang guard: the first part was not streamed before the origin finished");
    let r = parse_response(&raw, false);
    assert!(r.complete);
    assert!(finished.load(Ordering::SeqCst));
    let text = r.text();
    assert!(!text.contains("facebook"), "{text}");
    assert!(text.contains("<p>first part</p><p>second "), "{text}");
    assert!(text.contains(" part</p><p>the end</p></body></html>"), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origin_reset_mid_body_leaves_the_client_response_incomplete() {
    let release = Arc::new(Notify::new());
    let rel = release.clone();
    let origin = TestServer::start(move |_req, mut sock| {
        let rel = rel.clone();
        async move {
            let mut first = head("200 OK", &[("content-type", "text/html"), ("transfer-encoding", "chunked")]);
            first.extend(chunk(b"<!doctype html><html><body><p>part one</p>"));
            sock.write_all(&first).await.unwrap();
            rel.notified().await;
            // A chunk that announces 512 bytes, sends half a tracker tag, then RST.
            let _ = sock.write_all(b"200\r\n<p>more text <img src=\"https://www.facebook.com/tr?id").await;
            let _ = sock.flush().await;
            #[allow(deprecated)] // linger 0 does not block: it makes close() send RST
            sock.set_linger(Some(Duration::ZERO)).unwrap();
            drop(sock);
        }
    })
    .await;
    let env = start(origin, |_| {}).await;
    let raw = tokio::time::timeout(GUARD, async {
        let mut s = TcpStream::connect(env.proxy).await.unwrap();
        s.write_all(&request("GET", "/", &["Accept: text/html"])).await.unwrap();
        let mut out = Vec::new();
        assert!(read_until(&mut s, &mut out, "part one").await, "closed before the first part");
        release.notify_one();
        read_to_close(&mut s, &mut out).await;
        out
    })
    .await
    .expect("hang guard: the proxy kept the client connection open after the origin reset");
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200);
    assert!(r.chunked());
    assert!(!r.complete, "a reset origin produced a complete response: {:?}", String::from_utf8_lossy(&raw));
    assert!(!raw.ends_with(b"0\r\n\r\n"));
    // What arrived before the reset went through the rewriter; the half tag never leaves it.
    assert!(!contains(&raw, "facebook"), "unrewritten bytes leaked: {:?}", String::from_utf8_lossy(&raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_inline_script_mid_stream_aborts_the_response() {
    let release = Arc::new(Notify::new());
    let origin = inline_overflow_origin(release.clone()).await;
    let env = start(origin, |c| c.rewrite.max_inline_bytes = 1024).await;
    let raw = tokio::time::timeout(GUARD, async {
        let mut s = TcpStream::connect(env.proxy).await.unwrap();
        s.write_all(&request("GET", "/", &["Accept: text/html"])).await.unwrap();
        let mut out = Vec::new();
        assert!(read_until(&mut s, &mut out, "first part").await, "closed before the first part");
        release.notify_one();
        read_to_close(&mut s, &mut out).await;
        out
    })
    .await
    .expect("hang guard: the aborted response did not close the connection");
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200);
    assert!(!r.complete, "rewriting failed but the response was terminated: {:?}", String::from_utf8_lossy(&raw));
    assert!(!contains(&raw, "raw_inline"), "the unrewritten script leaked");
    assert!(!contains(&raw, "after the script"), "content after the failure leaked");
}

/// The value of one sample in a Prometheus exposition, 0 when absent.
fn sample(text: &str, series: &str) -> f64 {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok()).unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mid_stream_inline_overflow_is_counted_as_inline_too_large() {
    let mut body = b"<!doctype html><html><body><p>first part</p><script>".to_vec();
    body.extend(b"var raw_inline = 1;\n".repeat(400));
    body.extend_from_slice(b"</script><p>after the script</p></body></html>");
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &body, 512)).await;
    let env = start(origin, |c| c.rewrite.max_inline_bytes = 1024).await;
    let raw = exchange(env.proxy, &request("GET", "/", &["Accept: text/html"])).await;
    assert!(!contains(&raw, "raw_inline"), "the unrewritten script leaked");
    let text = scrape(env.admin).await;
    assert_eq!(sample(&text, r#"tagwarden_rewrite_errors_total{kind="inline_too_large"}"#), 1.0, "{text}");
    assert_eq!(sample(&text, r#"tagwarden_rewrite_errors_total{kind="handler"}"#), 0.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn corrupt_gzip_mid_stream_aborts_and_is_counted_as_content_decoding() {
    let mut body = gzip(&page());
    // Past the gzip header and the first deflate blocks: the damage shows mid-stream.
    let at = body.len() / 2;
    for b in &mut body[at..at + 64] {
        *b ^= 0x5a;
    }
    let origin = TestServer::fixed(chunked_response(
        "200 OK",
        &[("content-type", "text/html"), ("content-encoding", "gzip")],
        &body,
        1024,
    ))
    .await;
    let env = start(origin, |_| {}).await;
    let raw = exchange(env.proxy, &request("GET", "/", &["Accept: text/html"])).await;
    let r = parse_response(&raw, false);
    assert!(!r.complete || r.status == 502, "a corrupt body produced a complete response: {}", r.summary());
    let text = scrape(env.admin).await;
    assert_eq!(sample(&text, r#"tagwarden_rewrite_errors_total{kind="content_decoding"}"#), 1.0, "{text}");
    assert_eq!(sample(&text, r#"tagwarden_rewrite_errors_total{kind="handler"}"#), 0.0, "{text}");
}

fn utf16le(text: &str, bom: bool) -> Vec<u8> {
    let mut out = if bom { vec![0xFF, 0xFE] } else { Vec::new() };
    for u in text.encode_utf16() {
        out.extend_from_slice(&u.to_le_bytes());
    }
    out
}

const UTF16_PAGE: &str = "<html><body><img src=\"https://www.facebook.com/tr?id=1\"><p>utf-16 page</p></body></html>";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf16_bom_html_is_never_passed_through() {
    let body = utf16le(UTF16_PAGE, true);
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &body, 64)).await;
    let env = start(origin, |_| {}).await;
    let raw = exchange(env.proxy, &request("GET", "/", &["Accept: text/html"])).await;
    assert!(find(&raw, &body[..32]).is_none(), "raw UTF-16 body leaked: {raw:?}");
    if !raw.is_empty() {
        let r = parse_response(&raw, false);
        assert!(r.status >= 500 || !r.complete, "UTF-16 page delivered as a complete {} response", r.status);
    }
}

/// The BOM arrives with the headers (one write): nothing has been sent when
/// rewriting fails, so the client must get the 502 page (as for a charset
/// header) or, if pingora already wrote the head, an aborted 200.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf16_bom_html_is_refused_with_a_502_page_or_aborted() {
    let body = utf16le(UTF16_PAGE, true);
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &body, 64)).await;
    let env = start(origin, |_| {}).await;
    let raw = exchange(env.proxy, &request("GET", "/", &["Accept: text/html"])).await;
    assert!(!raw.is_empty(), "connection closed without a status line");
    let r = parse_response(&raw, false);
    match r.status {
        502 => assert!(r.complete && r.text().contains("502 Bad gateway"), "{:?}", r.text()),
        200 => assert!(!r.complete, "UTF-16 page terminated as if rewritten"),
        other => panic!("expected a 502 page or an aborted 200, got a complete {other}: {:?}", r.text()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn utf16_charset_header_is_a_502_before_any_byte() {
    let body = utf16le(UTF16_PAGE, false);
    let origin =
        TestServer::fixed(cl_response("200 OK", &[("content-type", "text/html; charset=utf-16")], &body)).await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 502, "{r:?}");
    assert!(r.complete);
    assert!(r.text().contains("502 Bad gateway"), "{:?}", r.text());
    assert!(find(&r.raw, &body[..32]).is_none(), "origin bytes leaked");
}

// ---------------------------------------------------------------------------
// Request smuggling and limits
// ---------------------------------------------------------------------------

async fn assert_rejected_before_origin(raw_request: &str, status: u16, tweak: impl FnOnce(&mut Config)) {
    let env = start(html_origin(None, page()).await, tweak).await;
    let raw = exchange(env.proxy, raw_request.as_bytes()).await;
    assert!(!raw.is_empty(), "no response at all");
    let r = parse_response(&raw, false);
    let seen = env.origin.requests();
    assert_eq!(r.status, status, "origin saw {seen:?}");
    assert!(seen.is_empty(), "the origin saw the request: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_is_400_and_never_reaches_origin() {
    assert_rejected_before_origin(
        "POST / HTTP/1.1\r\nHost: clinic.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_with_transfer_encoding_and_connection_close_is_400_and_never_reaches_origin() {
    assert_rejected_before_origin(
        "POST / HTTP/1.1\r\nHost: clinic.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_different_content_lengths_are_400_and_never_reach_origin() {
    assert_rejected_before_origin(
        "POST / HTTP/1.1\r\nHost: clinic.example\r\nContent-Length: 5\r\nContent-Length: 6\r\nConnection: close\r\n\r\nhello!",
        400,
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transfer_encoding_gzip_chunked_is_400_and_never_reaches_origin() {
    assert_rejected_before_origin(
        "POST / HTTP/1.1\r\nHost: clinic.example\r\nTransfer-Encoding: gzip, chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
        |_| {},
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_100_request_headers_is_431() {
    let mut req = String::from("GET / HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n");
    for i in 0..101 {
        req.push_str(&format!("X-Filler-{i}: v\r\n"));
    }
    req.push_str("\r\n");
    assert_rejected_before_origin(&req, 431, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn more_than_60_kib_of_request_headers_is_431() {
    let big = "a".repeat(31 * 1024);
    let req = format!(
        "GET / HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\nX-Big-1: {big}\r\nX-Big-2: {big}\r\n\r\n"
    );
    assert_rejected_before_origin(&req, 431, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn content_length_body_over_the_limit_is_413() {
    let body = "x".repeat(2000);
    let req = format!(
        "POST /form HTTP/1.1\r\nHost: clinic.example\r\nContent-Type: text/plain\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    assert_rejected_before_origin(&req, 413, |c| c.limits.max_request_body_bytes = 1000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chunked_body_over_the_limit_is_413() {
    let body = "x".repeat(2000);
    let req = format!(
        "POST /form HTTP/1.1\r\nHost: clinic.example\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n{}0\r\n\r\n",
        String::from_utf8(chunk(body.as_bytes())).unwrap()
    );
    let env = start(html_origin(None, page()).await, |c| c.limits.max_request_body_bytes = 1000).await;
    let raw = exchange(env.proxy, req.as_bytes()).await;
    assert!(!raw.is_empty(), "no response at all");
    let r = parse_response(&raw, false);
    let bodies: Vec<usize> = env.origin.requests().iter().map(|s| s.body.len()).collect();
    assert_eq!(r.status, 413, "origin received bodies of {bodies:?} bytes; limit is 1000");
    assert!(bodies.iter().all(|b| *b <= 1000), "origin received bodies of {bodies:?} bytes; limit is 1000");
}

// ---------------------------------------------------------------------------
// Forwarded headers
// ---------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spoofed_x_forwarded_for_is_replaced_by_the_peer_ip_when_the_peer_is_not_trusted() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html", "X-Forwarded-For: 6.6.6.6"]).await;
    assert_eq!(r.status, 200);
    let seen = env.origin.requests();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("127.0.0.1"), "{:?}", seen[0].headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn x_forwarded_for_is_appended_when_the_peer_is_a_trusted_proxy() {
    let env = start(html_origin(None, page()).await, |c| c.listen.trusted_proxies = vec!["127.0.0.1".into()]).await;
    let r = get(env.proxy, "/", &["Accept: text/html", "X-Forwarded-For: 203.0.113.7"]).await;
    assert_eq!(r.status, 200);
    let seen = env.origin.requests();
    assert_eq!(seen[0].header("x-forwarded-for"), Some("203.0.113.7, 127.0.0.1"), "{:?}", seen[0].headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn site_cookies_reach_the_origin_unchanged() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let cookie = "session=abc123; theme=dark; tw_consent=essential,support";
    let r = get(env.proxy, "/patient/records", &["Accept: text/html", &format!("Cookie: {cookie}")]).await;
    assert_eq!(r.status, 200);
    let seen = env.origin.requests();
    assert_eq!(seen[0].header("cookie"), Some(cookie), "{:?}", seen[0].headers);
}

// ---------------------------------------------------------------------------
// Response headers that load things (Link, Refresh)
// ---------------------------------------------------------------------------

const LINK_HEADER: &str = "<https://static.zdassets.com/ekr/snippet.js>; rel=preload; as=script, \
    <https://connect.facebook.net/en_US/fbevents.js>; rel=preload; as=script, </app.css>; rel=preload; as=style";

async fn link_origin() -> TestServer {
    TestServer::fixed(cl_response(
        "200 OK",
        &[("content-type", "text/html"), ("link", LINK_HEADER), ("refresh", "5; url=https://www.facebook.com/tr?id=1")],
        b"<html><body>ok</body></html>",
    ))
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_headers_follow_the_visitors_consent_and_removals_are_counted() {
    let env = start(link_origin().await, |_| {}).await;
    // The visitor withdrew `support` (granted by default): Zendesk may not load.
    let r = get(env.proxy, "/", &["Accept: text/html", "Cookie: tw_consent=essential"]).await;
    assert_eq!(r.status, 200);
    let link = r.header("link").unwrap_or_default();
    assert_eq!(link, "</app.css>; rel=preload; as=style", "{:?}", r.headers);
    assert!(!r.has_header("refresh"), "{:?}", r.headers);
    let text = scrape(env.admin).await;
    let removed = |vendor: &str, category: &str, construct: &str, reason: &str| {
        sample(
            &text,
            &format!(
                r#"tagwarden_elements_removed_total{{category="{category}",construct="{construct}",reason="{reason}",vendor="{vendor}"}}"#
            ),
        )
    };
    assert_eq!(removed("zendesk", "support", "link", "no_consent"), 1.0, "{text}");
    assert_eq!(removed("meta_pixel", "advertising", "link", "not_allowed_on_route"), 1.0, "{text}");
    assert_eq!(removed("meta_pixel", "advertising", "meta_refresh", "not_allowed_on_route"), 1.0, "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn link_headers_to_allowed_vendors_are_rewritten_first_party() {
    let env = start(link_origin().await, |_| {}).await;
    let r = get(env.proxy, "/", &["Accept: text/html"]).await;
    assert_eq!(
        r.header("link"),
        Some(
            "</_tw/zendesk/static.zdassets.com/ekr/snippet.js>; rel=preload; as=script, </app.css>; rel=preload; as=style"
        ),
        "{:?}",
        r.headers
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_mode_leaves_response_headers_unchanged_and_records_decisions() {
    let rules = edited_rules(|site| site.replace("mode = \"enforce\"", "mode = \"report\""));
    let origin = link_origin().await;
    let env =
        start_with_rules(rules.path().to_path_buf(), origin, default_sink().await, Duration::from_secs(10), |_| {})
            .await;
    let r = get(env.proxy, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("link"), Some(LINK_HEADER), "{:?}", r.headers);
    assert_eq!(r.header("refresh"), Some("5; url=https://www.facebook.com/tr?id=1"), "{:?}", r.headers);
    assert!(r.has_header("content-security-policy-report-only"), "{:?}", r.headers);
    let text = scrape(env.admin).await;
    assert!(
        text.contains(r#"construct="link",reason="not_allowed_on_route",vendor="meta_pixel"} 1"#),
        "report mode still records what it would remove: {text}"
    );
}

// ---------------------------------------------------------------------------
// First-party vendor path
// ---------------------------------------------------------------------------

const VENDOR_PATH: &str = "/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=k&email=x";
const VISITOR: [&str; 4] = [
    "Cookie: session=abc123",
    "Referer: https://clinic.example/patient/records",
    "X-Forwarded-For: 6.6.6.6",
    "Accept: */*",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_path_is_forwarded_to_the_vendor_host_without_visitor_data() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, VENDOR_PATH, &VISITOR).await;
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.raw));
    assert_eq!(r.text(), "window.zE = function () {};\n");
    let seen = env.sink.requests();
    assert_eq!(seen.len(), 1);
    let s = &seen[0];
    assert_eq!(s.header("host"), Some("static.zdassets.com"));
    assert_eq!(s.target, "/ekr/snippet.js?key=k", "query parameters not in query_allow must be dropped");
    for h in ["cookie", "referer", "x-forwarded-for"] {
        assert!(!s.has_header(h), "{h} reached the vendor: {:?}", s.headers);
    }
    assert_eq!(env.origin.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_set_cookie_is_stripped() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, VENDOR_PATH, &VISITOR).await;
    assert_eq!(r.status, 200);
    assert_eq!(env.sink.count(), 1);
    assert!(!r.has_header("set-cookie"), "vendor cookie reached the site's host: {:?}", r.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_documents_are_sandboxed_into_an_opaque_origin() {
    let sink = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/html")], b"<p>vendor frame</p>")).await;
    let env = start_full(html_origin(None, page()).await, sink, Duration::from_secs(10), |_| {}).await;
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/web_widget/frame.html", &[]).await;
    assert_eq!(r.status, 200);
    assert!(r.header("content-security-policy").is_some_and(|c| c.starts_with("sandbox ")), "{:?}", r.headers);
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    // Scripts are not sandboxed (a CSP sandbox has no effect on them, and they must run in the page).
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let js = get(env.proxy, "/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=k", &[]).await;
    assert_eq!(js.header("content-type"), Some("application/javascript"));
    assert!(!js.has_header("content-security-policy"), "{:?}", js.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_path_without_consent_is_204_and_nothing_leaves() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, VENDOR_PATH, &["Cookie: tw_consent=essential", "Accept: */*"]).await;
    assert_eq!(r.status, 204);
    assert!(r.after_head.is_empty());
    assert_eq!(env.sink.count(), 0, "{:?}", env.sink.requests());
    assert_eq!(env.origin.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_path_to_a_host_the_vendor_does_not_own_is_404() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/_tw/zendesk/evil.example/x", &["Accept: */*"]).await;
    assert_eq!(r.status, 404);
    assert_eq!(env.sink.count(), 0, "{:?}", env.sink.requests());
    assert_eq!(env.origin.count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_path_for_a_vendor_allowed_on_no_route_is_404() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/_tw/intercom/widget.intercom.io/x", &["Accept: */*"]).await;
    assert_eq!(r.status, 404);
    assert_eq!(env.sink.count(), 0, "{:?}", env.sink.requests());
    assert_eq!(env.origin.count(), 0);
}

// ---------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------

/// An origin that sends its page only after `release` is notified; `arrived` is
/// notified when a request has been received.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_vendor_is_cut_off_on_the_vendor_read_timeout_not_the_origins() {
    let silent = TestServer::start(|_req, mut sock| async move {
        // Read the request, answer nothing, keep the connection open.
        let _ = tokio::io::AsyncReadExt::read(&mut sock, &mut [0u8; 1]).await;
    })
    .await;
    let origin = html_origin(None, page()).await;
    // The origin may take 30 s per read (Origin::plain); vendors get 1 s.
    let env = start_full(origin, silent, Duration::from_secs(10), |c| c.vendors.read_timeout_seconds = 1).await;
    let r = tokio::time::timeout(Duration::from_secs(10), get(env.proxy, VENDOR_PATH, &VISITOR))
        .await
        .expect("the vendor request waited on the origin's read timeout");
    assert_eq!(r.status, 504, "{}", r.summary());
    let text = scrape(env.admin).await;
    assert!(text.contains(r#"first_party_requests_total{outcome="upstream_error",vendor="zendesk"} 1"#), "{text}");
}

async fn held_origin(arrived: Arc<Notify>, release: Arc<Notify>) -> TestServer {
    TestServer::start(move |_req, sock| {
        let (arrived, release) = (arrived.clone(), release.clone());
        async move {
            arrived.notify_one();
            release.notified().await;
            send_and_close(sock, cl_response("200 OK", &[("content-type", "text/html")], &page())).await;
        }
    })
    .await
}

/// Connects until the listener refuses, a bounded number of times: the
/// accept loop stops asynchronously after the shutdown signal.
async fn listener_refuses(addr: SocketAddr) -> bool {
    for _ in 0..500 {
        match TcpStream::connect(addr).await {
            Err(_) => return true,
            Ok(s) => drop(s),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_refuses_new_connections_and_completes_the_in_flight_request() {
    let (arrived, release) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let origin = held_origin(arrived.clone(), release.clone()).await;
    let env = start_full(origin, default_sink().await, Duration::from_secs(20), |_| {}).await;
    let proxy = env.proxy;
    let in_flight = tokio::spawn(async move { exchange(proxy, &request("GET", "/", &["Accept: text/html"])).await });
    tokio::time::timeout(GUARD, arrived.notified()).await.expect("hang guard: request never reached the origin");

    env.running.shutdown.send(true).unwrap();
    assert!(listener_refuses(proxy).await, "the proxy still accepts connections after shutdown");

    release.notify_one();
    let raw = in_flight.await.unwrap();
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200);
    assert!(r.complete, "the in-flight request was cut off: {:?}", String::from_utf8_lossy(&raw));
    assert_rewritten(&r.body);
    tokio::time::timeout(GUARD, env.running.done).await.expect("hang guard: done never finished").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_cuts_off_requests_still_running_after_the_grace_period() {
    let (arrived, never) = (Arc::new(Notify::new()), Arc::new(Notify::new()));
    let origin = held_origin(arrived.clone(), never.clone()).await;
    let env = start_full(origin, default_sink().await, Duration::from_millis(200), |_| {}).await;
    let proxy = env.proxy;
    let in_flight = tokio::spawn(async move { exchange(proxy, &request("GET", "/", &["Accept: text/html"])).await });
    tokio::time::timeout(GUARD, arrived.notified()).await.expect("hang guard: request never reached the origin");

    env.running.shutdown.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), env.running.done)
        .await
        .expect("hang guard: done did not finish after the grace period")
        .unwrap();
    // The client connection was closed with it (the exchange returns on close).
    let raw = in_flight.await.unwrap();
    assert!(raw.is_empty() || !parse_response(&raw, false).complete, "{:?}", String::from_utf8_lossy(&raw));
}

// ---------------------------------------------------------------------------
// Metrics
// ---------------------------------------------------------------------------

/// One sample line of a Prometheus text exposition: name, labels, value.
type Sample = (String, Vec<(String, String)>, f64);

fn samples(text: &str) -> Vec<Sample> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').unwrap();
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n, rest.trim_end_matches('}')),
                None => (series, ""),
            };
            let labels = labels
                .split("\",")
                .filter(|kv| !kv.is_empty())
                .map(|kv| {
                    let (k, v) = kv.split_once('=').unwrap();
                    (k.to_string(), v.trim_matches('"').to_string())
                })
                .collect();
            (name.to_string(), labels, value.parse().unwrap())
        })
        .collect()
}

async fn scrape(admin: SocketAddr) -> String {
    let raw = exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200);
    r.text()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_count_rewritten_documents_and_removed_elements() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let r = get(env.proxy, "/conditions/diabetes", &["Accept: text/html"]).await;
    assert_rewritten_response(&r, false);
    let metrics = samples(&scrape(env.admin).await);
    let documents = metrics
        .iter()
        .find(|(n, l, _)| {
            n == "tagwarden_html_documents_total"
                && l.contains(&("mode".into(), "enforce".into()))
                && l.contains(&("outcome".into(), "rewritten".into()))
        })
        .map(|(_, _, v)| *v);
    assert!(documents.is_some_and(|v| v >= 1.0), "html_documents_total: {documents:?}");
    assert!(
        metrics.iter().any(|(n, l, v)| n == "tagwarden_elements_removed_total"
            && l.contains(&("vendor".into(), "meta_pixel".into()))
            && *v >= 1.0),
        "no meta_pixel removal counted"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_never_carry_the_path_or_query() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let path = "/conditions/secret-diagnosis?patient=12345";
    let r = get(env.proxy, path, &["Accept: text/html"]).await;
    assert_eq!(r.status, 200);
    // A first-party request with a query, and a rejected one, too.
    let _ =
        get(env.proxy, "/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=k&email=patient@example.com", &[]).await;
    let _ = get(env.proxy, "/_tw/secret-vendor/evil.example/x?patient=12345", &[]).await;
    let text = scrape(env.admin).await;
    let metrics = samples(&text);
    assert!(!metrics.is_empty());
    for (name, labels, _) in &metrics {
        for (k, v) in labels {
            assert!(
                !v.contains('?') && !v.contains("secret") && !v.contains("patient") && !v.contains("conditions"),
                "{name}{{{k}=\"{v}\"}} carries request data"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Content-Security-Policy
// ---------------------------------------------------------------------------

/// The nonce named in a policy's `script-src`.
fn policy_nonce(policy: &str) -> Option<String> {
    policy.split(' ').find_map(|t| t.strip_prefix("'nonce-").and_then(|t| t.strip_suffix('\'')).map(str::to_string))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn html_carries_a_strict_csp_whose_nonce_is_on_every_kept_script() {
    let body = format!(
        "<html><head><script>var site = 1;</script>{TRACKERS}<script src=\"/app.js\"></script></head><body onload=\"init()\"><a href=\"javascript:go()\">x</a></body></html>"
    );
    let env = start(html_origin(None, body.into_bytes()).await, |_| {}).await;
    let r = get(env.proxy, "/patient/intake", &[]);
    let r = r.await;
    let csp = r.header("content-security-policy").expect("CSP header").to_string();
    assert!(csp.starts_with("default-src 'self'"), "{csp}");
    for required in ["object-src 'none'", "base-uri 'self'", "report-uri /_tw/csp-report", "form-action 'self'"] {
        assert!(csp.contains(required), "{required} missing: {csp}");
    }
    for forbidden in ["unsafe-eval", "strict-dynamic", "connect.facebook.net", "zdassets"] {
        assert!(!csp.contains(forbidden), "{forbidden} in {csp}");
    }
    assert!(!csp.split("; ").find(|d| d.starts_with("script-src")).unwrap().contains("'unsafe-inline'"), "{csp}");
    let nonce = policy_nonce(&csp).expect("a nonce in script-src");
    let html = r.text();
    let scripts = html.matches("<script").count();
    assert_eq!(scripts, 4, "the run-time shim, inline, zendesk, app.js: {html}");
    assert_eq!(html.matches(&format!("nonce=\"{nonce}\"")).count(), 4, "{html}");
    // The run-time shim is the first script, nonced.
    let first = &html[html.find("<script").unwrap()..];
    assert!(
        first.starts_with(&format!(
            "<script src=\"/_tw/shim.js?v={}\" nonce=\"{nonce}\" data-tw-shim",
            tagwarden::shim::version()
        )),
        "{html}"
    );
    assert_eq!(r.header("x-dns-prefetch-control"), Some("off"));
    assert!(!html.contains("onload=") && !html.contains("javascript:"), "inline handlers removed: {html}");
    // The script-hosts policy: the same page, scripts by host only (module fetches
    // inherit a nonce, so a nonce must not be enough on its own).
    let all: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-security-policy"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(all.len(), 2, "{all:?}");
    let hosts = all[1];
    assert!(hosts.starts_with("script-src 'self' 'unsafe-inline' "), "{hosts}");
    assert!(hosts.ends_with("report-uri /_tw/csp-report?policy=script-hosts"), "{hosts}");
    assert!(!hosts.contains("nonce") && !hosts.contains("unsafe-eval") && !hosts.contains("zdassets"), "{hosts}");
    // A second response gets a different nonce.
    let again = get(env.proxy, "/patient/intake", &[]).await;
    assert_ne!(policy_nonce(again.header("content-security-policy").unwrap()), Some(nonce));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_run_time_shim_is_served_first_party_and_immutable_under_its_version() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let versioned = format!("/_tw/shim.js?v={}", tagwarden::shim::version());
    let r = get(env.proxy, &versioned, &[]).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/javascript; charset=utf-8"));
    assert_eq!(r.header("cache-control"), Some("public, max-age=31536000, immutable"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.text(), tagwarden::shim::SHIM_JS);
    // Another version (an old page after a deploy) still gets the script, never cached long.
    let stale = get(env.proxy, "/_tw/shim.js?v=000000000000", &[]).await;
    assert_eq!((stale.status, stale.header("cache-control")), (200, Some("no-cache")));
    assert_eq!(env.origin.count(), 0, "served by tagwarden, not the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_csp_is_kept_and_its_nonce_reused() {
    let body = b"<html><head><script nonce=\"origin123\">var a;</script><script>var b;</script></head></html>".to_vec();
    let origin = TestServer::fixed(chunked_response(
        "200 OK",
        &[("content-type", "text/html"), ("content-security-policy", "script-src 'nonce-origin123'")],
        &body,
        4096,
    ))
    .await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &[]).await;
    let policies: Vec<&str> = r
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("content-security-policy"))
        .map(|(_, v)| v.as_str())
        .collect();
    assert_eq!(policies.len(), 3, "origin's policy and our two: {policies:?}");
    assert!(policies.iter().any(|p| p.starts_with("script-src 'self' 'unsafe-inline' ")), "{policies:?}");
    assert!(policies.contains(&"script-src 'nonce-origin123'"));
    let ours = policies.iter().find(|p| p.starts_with("default-src")).unwrap();
    assert_eq!(policy_nonce(ours).as_deref(), Some("origin123"));
    let html = r.text();
    assert!(html.contains("<script nonce=\"origin123\">var a;"), "{html}");
    assert!(html.contains("<script>var b;"), "no nonce granted to a script the origin did not nonce: {html}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn error_pages_carry_a_csp_too() {
    let origin = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/html; charset=utf-16")], b"x")).await;
    let env = start(origin, |_| {}).await;
    let r = get(env.proxy, "/", &[]).await;
    assert_eq!(r.status, 502);
    assert_eq!(r.header("content-security-policy"), Some(tagwarden::csp::ERROR_PAGE_POLICY));
}

async fn post_report(addr: SocketAddr, content_type: &str, body: &[u8]) -> Resp {
    post_report_to(addr, "/_tw/csp-report", content_type, body).await
}

async fn post_report_to(addr: SocketAddr, target: &str, content_type: &str, body: &[u8]) -> Resp {
    let mut req = format!(
        "POST {target} HTTP/1.1\r\nHost: clinic.example\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    parse_response(&exchange(addr, &req).await, false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn violation_reports_are_counted_by_directive_and_vendor_and_answered_204() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let legacy = br#"{"csp-report":{"document-uri":"http://clinic.example/patient?name=jane","effective-directive":"img-src","blocked-uri":"https://www.facebook.com/tr?id=1&cd=diabetes"}}"#;
    assert_eq!(post_report(env.proxy, "application/csp-report", legacy).await.status, 204);
    let modern = br#"[{"type":"csp-violation","body":{"effectiveDirective":"connect-src","blockedURL":"https://www.google-analytics.com/g/collect?v=2"}}]"#;
    assert_eq!(post_report(env.proxy, "application/reports+json", modern).await.status, 204);
    let text = scrape(env.admin).await;
    assert!(text.contains(r#"tagwarden_csp_violations_total{directive="img-src",vendor="meta_pixel"} 1"#), "{text}");
    assert!(
        text.contains(r#"tagwarden_csp_violations_total{directive="connect-src",vendor="google_analytics"} 1"#),
        "{text}"
    );
    assert_eq!(env.origin.count(), 0, "reports never reach the origin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_url_refused_by_both_policies_is_counted_once() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    // An injected gtag <script>: no nonce and an unlisted host, so the browser
    // reports it once for each policy.
    let body = br#"{"csp-report":{"effective-directive":"script-src-elem","blocked-uri":"https://www.googletagmanager.com/gtag/js?id=G-X"}}"#;
    assert_eq!(post_report(env.proxy, "application/csp-report", body).await.status, 204);
    let hosts = "/_tw/csp-report?policy=script-hosts";
    assert_eq!(post_report_to(env.proxy, hosts, "application/csp-report", body).await.status, 204);
    // An inline script without the nonce: only the main policy refuses it.
    let inline = br#"{"csp-report":{"effective-directive":"script-src-elem","blocked-uri":"inline"}}"#;
    assert_eq!(post_report(env.proxy, "application/csp-report", inline).await.status, 204);
    let text = scrape(env.admin).await;
    assert!(
        text.contains(r#"tagwarden_csp_violations_total{directive="script-src-elem",vendor="google_analytics"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"tagwarden_csp_violations_total{directive="script-src-elem",vendor="unknown"} 1"#),
        "{text}"
    );
    assert!(text.contains(r#"tagwarden_csp_reports_total{outcome="duplicate"} 1"#), "{text}");
    assert!(text.contains(r#"tagwarden_csp_reports_total{outcome="counted"} 2"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_reports_do_not_grow_label_sets() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    // 60 reports, each naming a fresh random host and a made-up directive.
    for i in 0..60 {
        let body = format!(
            r#"{{"csp-report":{{"effective-directive":"x-{i}-directive","blocked-uri":"https://h{i}.attacker-{i}.example/p?q={i}"}}}}"#
        );
        assert_eq!(post_report(env.proxy, "application/csp-report", body.as_bytes()).await.status, 204);
    }
    // Malformed and oversized bodies.
    assert_eq!(post_report(env.proxy, "application/csp-report", b"{not json").await.status, 204);
    let huge = vec![b'['; tagwarden::proxy::MAX_REPORT_BYTES + 10];
    assert_eq!(post_report(env.proxy, "application/reports+json", &huge).await.status, 204);
    let text = scrape(env.admin).await;
    let violation_series: Vec<&str> =
        text.lines().filter(|l| l.starts_with("tagwarden_csp_violations_total{")).collect();
    assert_eq!(violation_series, [r#"tagwarden_csp_violations_total{directive="other",vendor="unknown"} 60"#]);
    assert!(!text.contains("attacker"), "no reported host reaches a label");
    assert!(text.contains(r#"tagwarden_csp_reports_total{outcome="malformed"} 1"#), "{text}");
    assert!(text.contains(r#"tagwarden_csp_reports_total{outcome="too_large"} 1"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_report_flood_is_rate_limited() {
    let env = start(html_origin(None, page()).await, |_| {}).await;
    let body = br#"{"csp-report":{"effective-directive":"img-src","blocked-uri":"https://evil.example/x"}}"#;
    for _ in 0..130 {
        assert_eq!(post_report(env.proxy, "application/csp-report", body).await.status, 204);
    }
    let text = scrape(env.admin).await;
    let limited = text
        .lines()
        .find_map(|l| l.strip_prefix(r#"tagwarden_csp_reports_total{outcome="rate_limited"} "#))
        .and_then(|n| n.parse::<u64>().ok())
        .unwrap_or(0);
    assert!(limited >= 1, "a burst over the bucket is dropped: {text}");
}

// ---------------------------------------------------------------------------
// Global Privacy Control
// ---------------------------------------------------------------------------

/// A page loading Google Analytics, on a copy of the shipped rules that allows it
/// on every route, for a visitor whose cookie grants analytics.
const GA_PAGE: &str = r#"<!doctype html><html><head><script async src="https://www.google-analytics.com/analytics.js"></script></head><body><p>hi</p></body></html>"#;
const ANALYTICS_COOKIE: &str = "Cookie: tw_consent=essential,support,analytics";

fn rules_allowing_analytics() -> tempfile::TempDir {
    edited_rules(|site| {
        site.replacen(
            "path = \"/**\"\nallow = [\"zendesk\"]",
            "path = \"/**\"\nallow = [\"zendesk\", \"google_analytics\"]",
            1,
        )
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sec_gpc_removes_an_analytics_vendor_the_cookie_grants_and_refuses_its_vendor_path() {
    let rules = rules_allowing_analytics();
    let origin = html_origin(None, GA_PAGE.as_bytes().to_vec()).await;
    let env =
        start_with_rules(rules.path().to_path_buf(), origin, default_sink().await, Duration::from_secs(10), |_| {})
            .await;

    let without = get(env.proxy, "/about", &["Accept: text/html", ANALYTICS_COOKIE]).await;
    assert_eq!(without.status, 200);
    assert!(
        without.text().contains("/_tw/google_analytics/www.google-analytics.com/analytics.js"),
        "{}",
        without.text()
    );

    let with = get(env.proxy, "/about", &["Accept: text/html", ANALYTICS_COOKIE, "Sec-GPC: 1"]).await;
    assert_eq!(with.status, 200);
    assert!(!with.text().contains("google-analytics"), "GPC must remove analytics: {}", with.text());
    assert!(with.text().contains("<p>hi</p>"));
    // Caches must keep one visitor's consent-dependent page from another.
    let vary: Vec<&str> =
        with.headers.iter().filter(|(n, _)| n.eq_ignore_ascii_case("vary")).map(|(_, v)| v.as_str()).collect();
    assert!(vary.iter().any(|v| v.contains("Sec-GPC") && v.contains("Cookie")), "{vary:?}");

    let vendor = get(
        env.proxy,
        "/_tw/google_analytics/www.google-analytics.com/analytics.js",
        &[ANALYTICS_COOKIE, "Sec-GPC: 1", "Accept: */*"],
    )
    .await;
    assert_eq!(vendor.status, 204, "{}", vendor.summary());
    assert_eq!(env.sink.count(), 0, "{:?}", env.sink.requests());
}
