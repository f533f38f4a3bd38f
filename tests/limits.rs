#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Configurable limits (`[limits]`), on loopback: the cap on open client
//! connections, in all and per client IP address (over a cap: `503` and closed
//! before any request is read, never reaching the origin), and the per-client
//! rate limit on the first-party vendor path (over it: `429`, never reaching
//! the vendor), and the request-head deadline (slowloris: a head still
//! arriving when it passes is cut). Each is counted in `tagwarden_requests_rejected_total{reason}`.
//!
//! Every wait here is a bounded hang guard; no test asserts how long anything took.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

mod support;

use support::http::*;
use support::vendor_env;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn start(origin: &TestServer, tweak: impl FnOnce(&mut Config)) -> Running {
    let rules = repo().join("rules");
    let mut config = Config { rules: rules.clone(), ..Config::default() };
    tweak(&mut config);
    let policy = tagwarden::rules::load_dir(&rules).expect("shipped rules load");
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).expect("config"));
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    start_with(shared, loopback, loopback, Duration::from_secs(1), tx, rx, None).await.expect("proxy starts")
}

async fn ok_origin() -> TestServer {
    TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"ok")).await
}

/// `requests_rejected_total` for `reason`, from the admin listener.
async fn rejected(admin: SocketAddr, reason: &str) -> u64 {
    let raw = exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
    let text = parse_response(&raw, false).text();
    let prefix = format!("tagwarden_requests_rejected_total{{reason=\"{reason}\"}} ");
    text.lines().find_map(|l| l.strip_prefix(&prefix)).map_or(0, |v| v.trim().parse().unwrap())
}

/// A connection from `source` that has been served one keep-alive request, so the
/// proxy has certainly accepted (and is holding) it.
async fn held_connection(proxy: SocketAddr, source: &str) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    let mut s = socket.connect(proxy).await.unwrap();
    s.write_all(b"GET /held HTTP/1.1\r\nHost: clinic.example\r\n\r\n").await.unwrap();
    let mut out = Vec::new();
    let answered = tokio::time::timeout(GUARD, read_until(&mut s, &mut out, "\r\n\r\nok")).await;
    assert!(answered.is_ok_and(|ok| ok), "the held connection was not served: {:?}", String::from_utf8_lossy(&out));
    s
}

/// What a new connection from `source` gets for one request.
async fn one_request_from(proxy: SocketAddr, source: &str) -> Vec<u8> {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(format!("{source}:0").parse().unwrap()).unwrap();
    tokio::time::timeout(GUARD, async {
        let mut s = socket.connect(proxy).await.unwrap();
        let _ = s.write_all(&request("GET", "/new", &[])).await;
        let mut out = Vec::new();
        read_to_close(&mut s, &mut out).await;
        out
    })
    .await
    .expect("hang guard: the proxy neither answered nor closed")
}

fn is_503_or_closed(raw: &[u8]) -> bool {
    raw.is_empty() || raw.starts_with(b"HTTP/1.1 503")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_over_max_connections_gets_503_never_reaches_the_origin_and_is_counted() {
    let origin = ok_origin().await;
    let running = start(&origin, |c| c.limits.max_connections = 2).await;
    let _a = held_connection(running.proxy_addr, "127.0.0.1").await;
    let _b = held_connection(running.proxy_addr, "127.0.0.2").await;
    let raw = one_request_from(running.proxy_addr, "127.0.0.3").await;
    assert!(is_503_or_closed(&raw), "{:?}", String::from_utf8_lossy(&raw));
    assert!(origin.requests().iter().all(|r| r.target == "/held"), "{:?}", origin.requests());
    assert_eq!(rejected(running.admin_addr, "too_many_connections").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_closed_connection_frees_its_place() {
    let origin = ok_origin().await;
    let running = start(&origin, |c| c.limits.max_connections = 1).await;
    drop(held_connection(running.proxy_addr, "127.0.0.1").await);
    // The proxy notices the close on its own schedule: retry, bounded.
    for _ in 0..200 {
        let raw = one_request_from(running.proxy_addr, "127.0.0.1").await;
        if raw.starts_with(b"HTTP/1.1 200") {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the place of a closed connection was never freed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_connection_from_one_ip_over_the_per_ip_cap_gets_503_and_other_ips_are_served() {
    let origin = ok_origin().await;
    let running = start(&origin, |c| c.limits.max_connections_per_ip = 1).await;
    let _held = held_connection(running.proxy_addr, "127.0.0.1").await;
    let raw = one_request_from(running.proxy_addr, "127.0.0.1").await;
    assert!(is_503_or_closed(&raw), "{:?}", String::from_utf8_lossy(&raw));
    assert_eq!(rejected(running.admin_addr, "too_many_connections_per_ip").await, 1);
    let other = parse_response(&one_request_from(running.proxy_addr, "127.0.0.2").await, false);
    assert_eq!(other.status, 200, "{}", other.summary());
    assert_eq!(rejected(running.admin_addr, "too_many_connections").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_load_balancer_is_not_held_to_the_per_ip_cap() {
    // Every visitor arrives through the load balancer's address: capping it per IP
    // would cap the whole site. The total cap still applies.
    let origin = ok_origin().await;
    let running = start(&origin, |c| {
        c.limits.max_connections_per_ip = 1;
        c.listen.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let _held = held_connection(running.proxy_addr, "127.0.0.1").await;
    let raw = parse_response(&one_request_from(running.proxy_addr, "127.0.0.1").await, false);
    assert_eq!(raw.status, 200, "{}", raw.summary());
    assert_eq!(rejected(running.admin_addr, "too_many_connections_per_ip").await, 0);
    // An address that is not the load balancer is still capped.
    let _other = held_connection(running.proxy_addr, "127.0.0.2").await;
    let raw = one_request_from(running.proxy_addr, "127.0.0.2").await;
    assert!(is_503_or_closed(&raw), "{:?}", String::from_utf8_lossy(&raw));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_trusted_load_balancer_the_vendor_rate_limit_counts_each_visitor() {
    let env = vendor_env::start(vendor_env::rules(|_, t| t, &[]), vendor_env::ok_sink().await, |c| {
        c.limits.vendor_requests_per_second = 0.001;
        c.limits.vendor_burst = 2;
        c.listen.trusted_proxies = vec!["127.0.0.1".into()];
    })
    .await;
    let path = "/_tw/zendesk/static.zdassets.com/ekr/snippet.js";
    let mut statuses = Vec::new();
    for visitor in ["198.51.100.7", "198.51.100.7", "198.51.100.7", "203.0.113.9"] {
        let xff = format!("X-Forwarded-For: {visitor}");
        statuses.push(get(env.proxy, path, &[xff.as_str()]).await.status);
    }
    // The first visitor's third request is over its burst; the second visitor is not
    // charged for the first one's requests although both came through one address.
    assert_eq!(statuses, [200, 200, 429, 200]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vendor_path_requests_over_a_clients_burst_get_429_and_never_reach_the_vendor() {
    let env = vendor_env::start(vendor_env::rules(|_, t| t, &[]), vendor_env::ok_sink().await, |c| {
        // One token back per 1000 s: nothing refills during the test, however slow the machine.
        c.limits.vendor_requests_per_second = 0.001;
        c.limits.vendor_burst = 3;
    })
    .await;
    let path = "/_tw/zendesk/static.zdassets.com/ekr/snippet.js";
    let statuses: Vec<u16> = {
        let mut v = Vec::new();
        for _ in 0..5 {
            v.push(get(env.proxy, path, &[]).await.status);
        }
        v
    };
    assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 3, "{statuses:?}");
    assert!(statuses[3..].iter().all(|s| *s == 429), "{statuses:?}");
    assert_eq!(env.sink.count(), 3, "the vendor saw refused requests");
    assert_eq!(rejected(env.admin, "vendor_rate_limited").await, 2);
    // The site's own pages are not limited.
    assert_eq!(get(env.proxy, "/about", &[]).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_head_still_trickling_in_at_the_deadline_is_cut_and_counted() {
    let origin = ok_origin().await;
    let running = start(&origin, |c| c.limits.request_head_timeout_seconds = 1).await;
    let mut s = TcpStream::connect(running.proxy_addr).await.unwrap();
    s.write_all(b"GET /slow HTTP/1.1\r\nHost: clinic.example\r\nX-Slow: 1").await.unwrap();
    let mut out = Vec::new();
    // Hang guard: without the deadline pingora waits 60 s per read, forever in all.
    tokio::time::timeout(GUARD, read_to_close(&mut s, &mut out)).await.expect("the stalled head was never cut");
    assert_eq!(origin.count(), 0, "the origin saw a request");
    assert_eq!(rejected(running.admin_addr, "request_head_timeout").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_head_deadline_does_not_bound_a_body_that_follows_a_complete_head() {
    let origin = ok_origin().await;
    let running = start(&origin, |c| c.limits.request_head_timeout_seconds = 1).await;
    let mut s = TcpStream::connect(running.proxy_addr).await.unwrap();
    s.write_all(b"POST /form HTTP/1.1\r\nHost: clinic.example\r\nContent-Length: 5\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    // Past the head deadline (the body's own read timeout is 60 s).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let _ = s.write_all(b"hello").await;
    let mut out = Vec::new();
    tokio::time::timeout(GUARD, read_to_close(&mut s, &mut out)).await.expect("hang guard");
    assert_eq!(parse_response(&out, false).status, 200, "{:?}", String::from_utf8_lossy(&out));
    assert_eq!(rejected(running.admin_addr, "request_head_timeout").await, 0);
}

#[test]
fn the_shipped_config_documents_every_limit() {
    let shipped = std::fs::read_to_string(repo().join("deploy/tagwarden.toml")).unwrap();
    for key in [
        "max_connections",
        "max_connections_per_ip",
        "vendor_requests_per_second",
        "vendor_burst",
        "vendor_rate_max_clients",
    ] {
        assert!(
            shipped.lines().any(|l| l.starts_with(&format!("{key} ="))),
            "{key} missing from deploy/tagwarden.toml"
        );
    }
}
