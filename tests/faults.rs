#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Faults, on loopback: an origin that resets mid-headers, sends garbage,
//! truncates a gzip or brotli body; a client that reads slowly; a rule reload
//! that fails in the middle of traffic; shutdown with requests in flight.
//! Pass: no tracker byte of the origin's page ever reaches the client
//! unrewritten, and every request finishes (rewritten) or fails visibly (an
//! error status, an incomplete body, a closed connection). Resets mid-body, an
//! origin that never answers and the drain on shutdown are in `tests/proxy.rs`;
//! slowloris heads in `tests/limits.rs`; multi-gigabyte responses in
//! `tests/faults_big.rs`; 10,000 idle connections and descriptor exhaustion in
//! `tests/faults_fds.rs`.
//!
//! Every wait is a bounded hang guard; no test asserts how long anything took.

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

mod support;

use support::http::*;

/// What must never reach a client from [`page`]: the trackers' hosts.
/// (`//host`: the first-party path `/_tw/zendesk/static.zdassets.com/…` names the host too.)
const TRACKER_HOSTS: &[&str] = &["//connect.facebook.net", "//www.facebook.com/tr", "//static.zdassets.com"];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn start_on(rules: &Path, origin: SocketAddr) -> Running {
    let config = Config { rules: rules.to_path_buf(), ..Config::default() };
    let policy = tagwarden::rules::load_dir(rules).expect("rules load");
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin)).expect("config"));
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    start_with(shared, loopback, loopback, Duration::from_secs(2), tx, rx, None).await.expect("proxy starts")
}

async fn start(origin: &TestServer) -> Running {
    start_on(&repo().join("rules"), origin.addr).await
}

fn assert_no_tracker(raw: &[u8]) {
    for host in TRACKER_HOSTS {
        assert!(!contains(raw, host), "{host} reached the client: {:?}", String::from_utf8_lossy(raw));
    }
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn br(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &data[..], &mut out, &Default::default()).unwrap();
    out
}

/// The page with its trackers early, padded so a cut lands after them.
fn page_with_early_trackers() -> Vec<u8> {
    let mut p = format!("<!doctype html><html><head>{TRACKERS}</head><body>").into_bytes();
    for i in 0..2000 {
        p.extend_from_slice(format!("<p>Paragraph {i} about clinic hours and parking.</p>\n").as_bytes());
    }
    p.extend_from_slice(b"</body></html>");
    p
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_reset_mid_headers_is_a_502_with_none_of_its_bytes() {
    let origin = TestServer::start(|_req, mut sock| async move {
        let _ = sock.write_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nX-Half: conn").await;
        let _ = sock.set_zero_linger(); // RST, not FIN
    })
    .await;
    let running = start(&origin).await;
    let r = get(running.proxy_addr, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 502, "{}", r.summary());
    assert!(!r.has_header("x-half"), "a header of the cut response reached the client");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_origin_that_sends_garbage_is_a_502_and_the_garbage_is_not_forwarded() {
    let origin =
        TestServer::fixed(b"\x00\xffNOT-HTTP <script src=https://connect.facebook.net/x.js></script>\r\n\r\n".to_vec())
            .await;
    let running = start(&origin).await;
    let raw = exchange(running.proxy_addr, &request("GET", "/", &["Accept: text/html"])).await;
    assert_eq!(parse_response(&raw, false).status, 502, "{:?}", String::from_utf8_lossy(&raw));
    assert!(!contains(&raw, "NOT-HTTP"));
    assert_no_tracker(&raw);
}

async fn assert_truncated_coding_is_never_passed_through(encoding: &'static str, encoded: Vec<u8>) {
    let cut = encoded[..encoded.len() / 2].to_vec();
    let origin = TestServer::start(move |_req, sock| {
        let mut resp = head("200 OK", &[("content-type", "text/html; charset=utf-8"), ("content-encoding", encoding)]);
        resp.extend_from_slice(&cut);
        send_and_close(sock, resp)
    })
    .await;
    let running = start(&origin).await;
    let raw = exchange(running.proxy_addr, &request("GET", "/", &["Accept: text/html"])).await;
    let r = parse_response(&raw, false);
    assert_no_tracker(&raw);
    assert!(
        r.status >= 500 || !r.complete || r.body.is_empty() || r.header("content-encoding").is_none(),
        "a truncated {encoding} body was passed on as complete: {}",
        r.summary()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_gzip_page_never_reaches_the_client_unrewritten_or_as_complete() {
    assert_truncated_coding_is_never_passed_through("gzip", gzip(&page_with_early_trackers())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_brotli_page_never_reaches_the_client_unrewritten_or_as_complete() {
    assert_truncated_coding_is_never_passed_through("br", br(&page_with_early_trackers())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_reading_in_small_slow_pieces_gets_the_whole_rewritten_page() {
    let body = page();
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &body, 4096)).await;
    let running = start(&origin).await;
    let mut s = TcpStream::connect(running.proxy_addr).await.unwrap();
    s.write_all(&request("GET", "/", &["Accept: text/html"])).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 512];
        loop {
            tokio::task::yield_now().await;
            match s.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await
    .expect("hang guard");
    let r = parse_response(&raw, false);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.complete, "incomplete");
    assert_rewritten(&r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_rule_reload_during_traffic_keeps_every_response_on_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    let from = repo().join("rules");
    std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
    std::fs::copy(from.join("site.toml"), dir.path().join("site.toml")).unwrap();
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("vendors").join(e.file_name())).unwrap();
    }
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 1024)).await;
    let running = start_on(dir.path(), origin.addr).await;
    let shared = running.shared.clone();
    let mut traffic = tokio::task::JoinSet::new();
    for _ in 0..8 {
        let proxy = running.proxy_addr;
        traffic.spawn(async move {
            let mut statuses = Vec::new();
            for _ in 0..5 {
                let r = get(proxy, "/", &["Accept: text/html"]).await;
                assert_no_tracker(&r.raw);
                if r.status == 200 {
                    assert!(r.complete, "incomplete response");
                    assert_rewritten(&r.body);
                }
                statuses.push(r.status);
            }
            statuses
        });
    }
    // Break the rules mid-traffic and reload: refused, the last good rules stay.
    std::fs::write(dir.path().join("site.toml"), "this is = not [valid toml").unwrap();
    assert!(
        !tagwarden::reload::reload_once(dir.path(), &shared.policy, &shared.metrics),
        "a broken reload was accepted"
    );
    while let Some(done) = traffic.join_next().await {
        let statuses = done.unwrap();
        assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    }
    let r = get(running.proxy_addr, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 200);
    assert_rewritten(&r.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_under_load_finishes_or_cleanly_fails_every_request_and_leaks_nothing() {
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 512)).await;
    let running = start(&origin).await;
    let mut clients = tokio::task::JoinSet::new();
    for _ in 0..24 {
        let proxy = running.proxy_addr;
        clients.spawn(async move {
            // A refused connection after shutdown is a clean failure too.
            let Ok(mut s) = TcpStream::connect(proxy).await else { return Vec::new() };
            let _ = s.write_all(&request("GET", "/", &["Accept: text/html"])).await;
            let mut out = Vec::new();
            let _ = tokio::time::timeout(GUARD, read_to_close(&mut s, &mut out)).await;
            out
        });
    }
    tokio::task::yield_now().await;
    let _ = running.shutdown.send(true);
    // How many finish depends on the schedule; each one that did is whole and rewritten.
    while let Some(done) = clients.join_next().await {
        let raw = done.unwrap();
        assert_no_tracker(&raw);
        if raw.is_empty() {
            continue;
        }
        let r = parse_response(&raw, false);
        if r.status == 200 && r.complete {
            assert_rewritten(&r.body);
        }
    }
    tokio::time::timeout(GUARD, running.done).await.expect("the server never finished draining").unwrap();
}
