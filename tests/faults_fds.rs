#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Connections and file descriptors, against tagwarden as a child process (its
//! own descriptor limit, its own CPU time and memory, read from `/proc`):
//!
//! - 10,000 idle client connections held at once: a real request still gets
//!   its rewritten page, and the request-head deadline closes every idle one
//!   (those that started a head are counted as `request_head_timeout`), giving
//!   back every descriptor.
//! - Descriptor exhaustion (`ulimit -n` in the child): `accept` fails with
//!   EMFILE while connections wait in the backlog; the accept loop backs off
//!   instead of spinning (a bound on CPU time and on logged failures, not a
//!   timing assertion), and serves again once descriptors are free.
//!
//! `TAGWARDEN_IDLE_CONNECTIONS` sets the number of idle connections (default
//! 10,000; the test raises its soft descriptor limit with `prlimit` when it is
//! lower, and fails if the hard limit is).

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

use support::child_proxy::{ChildProxy, eventually};
use support::http::*;

/// Idle connections per client address: under the default per-IP cap (256).
const PER_SOURCE: usize = 250;
/// Connections opened before waiting for the proxy to accept them.
const BATCH: usize = 100;
/// What an idle connection that started a request sends: a head that never ends.
const STARTED_HEAD: &[u8] = b"GET /slow HTTP/1.1\r\nHost: clinic.example\r\n";

fn page_origin() -> impl std::future::Future<Output = TestServer> {
    TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 4096))
}

/// One connection to `proxy` from `source` (any 127/8 address), optionally
/// having sent `first`.
async fn idle_connection(proxy: SocketAddr, source: [u8; 4], first: &'static [u8]) -> TcpStream {
    let socket = TcpSocket::new_v4().unwrap();
    socket.bind(SocketAddr::from((source, 0))).unwrap();
    let mut s = socket.connect(proxy).await.unwrap();
    if !first.is_empty() {
        s.write_all(first).await.unwrap();
    }
    s
}

/// Waits (bounded) for the proxy to close `s`: EOF or a reset, never data.
async fn closed_by_proxy(mut s: TcpStream) -> bool {
    let mut buf = [0u8; 512];
    match tokio::time::timeout(Duration::from_secs(120), s.read(&mut buf)).await {
        Ok(Ok(0)) | Ok(Err(_)) => true,
        Ok(Ok(_)) | Err(_) => false,
    }
}

/// Makes sure this process may open `needed` descriptors: raises the soft limit up to
/// the hard one with `prlimit` (util-linux) when it is lower; fails if the hard limit is.
fn allow_descriptors(needed: u64) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap();
    let line = limits.lines().find(|l| l.starts_with("Max open files")).unwrap();
    let parse = |v: &str| if v == "unlimited" { u64::MAX } else { v.parse().unwrap() };
    let cols: Vec<&str> = line.split_whitespace().collect();
    let (soft, hard) = (parse(cols[3]), parse(cols[4]));
    if soft >= needed {
        return;
    }
    assert!(hard >= needed, "this test needs {needed} open files; the hard limit is {hard} (ulimit -Hn)");
    let pid = std::process::id().to_string();
    let status = std::process::Command::new("prlimit")
        .args(["--pid", &pid, &format!("--nofile={needed}:{}", cols[4])])
        .status()
        .expect("prlimit (util-linux) raises the descriptor limit");
    assert!(status.success(), "prlimit could not raise the soft limit from {soft} to {needed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_idle_connections_leave_room_for_a_real_request_and_are_closed_by_the_head_deadline() {
    let n: usize = std::env::var("TAGWARDEN_IDLE_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(10_000);
    allow_descriptors(n as u64 + 1024);
    let origin = page_origin().await;
    // Room for the idle connections and the real one; the deadline long enough to open them all.
    let limits = format!("max_connections = {}\nrequest_head_timeout_seconds = 40", n + 100);
    let proxy = ChildProxy::start(origin.addr, &limits, None);
    // The fewest over a few samples: the rules poller opens files now and then.
    let mut fds_before = usize::MAX;
    for _ in 0..5 {
        fds_before = fds_before.min(proxy.open_fds());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let rss_before = proxy.status_kib("VmRSS");

    // Every other connection starts a head; the rest send nothing (a browser's preconnect).
    // Opened in batches the size of a small accept backlog (somaxconn may be 128): a
    // silent connection whose handshake overflowed the backlog would never reach the
    // proxy, and that is the kernel's doing, not the proxy's.
    let mut idle = Vec::with_capacity(n);
    let mut most = 0;
    while idle.len() < n {
        let mut opening = tokio::task::JoinSet::new();
        for i in idle.len()..n.min(idle.len() + BATCH) {
            let source = [127, 0, 1 + (i / PER_SOURCE / 250) as u8, 1 + (i / PER_SOURCE % 250) as u8];
            let first: &'static [u8] = if i % 2 == 0 { STARTED_HEAD } else { b"" };
            opening.spawn(idle_connection(proxy.proxy, source, first));
        }
        while let Some(s) = opening.join_next().await {
            idle.push(s.unwrap());
        }
        let accepted = eventually(GUARD, || {
            most = proxy.open_fds();
            most >= fds_before + idle.len()
        })
        .await;
        assert!(accepted, "the proxy holds {most} descriptors after {} connections", idle.len());
    }
    let (fds_held, rss_held) = (proxy.open_fds(), proxy.status_kib("VmRSS"));

    let r = get(proxy.proxy, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert!(r.complete, "incomplete page");
    assert_rewritten(&r.body);

    let mut closing = tokio::task::JoinSet::new();
    for s in idle {
        closing.spawn(closed_by_proxy(s));
    }
    let mut closed = 0;
    while let Some(c) = closing.join_next().await {
        closed += usize::from(c.unwrap());
    }
    assert_eq!(closed, n, "idle connections the proxy did not close");
    let counted = proxy.metric("tagwarden_requests_rejected_total{reason=\"request_head_timeout\"}").await;
    assert_eq!(counted as usize, n.div_ceil(2), "started heads counted as request_head_timeout");
    let released = eventually(GUARD, || proxy.open_fds() <= fds_before + 4).await;
    let rss_after = proxy.status_kib("VmRSS");
    eprintln!(
        "{n} idle connections: descriptors {fds_before} -> {fds_held} -> {}, RSS {rss_before} -> {rss_held} -> {rss_after} KiB",
        proxy.open_fds()
    );
    assert!(released, "descriptors not given back: {} (before: {fds_before})", proxy.open_fds());
    // Memory per idle connection stays small (pingora's read buffer, a task, the deadline).
    let per_conn = rss_held.saturating_sub(rss_before) * 1024 / n as u64;
    assert!(per_conn <= 40 * 1024, "{per_conn} bytes of RSS per idle connection");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_file_descriptors_the_accept_loop_backs_off_without_spinning_and_recovers() {
    const LIMIT: u64 = 64;
    let origin = page_origin().await;
    let proxy = ChildProxy::start(origin.addr, "", Some(LIMIT));
    let r = get(proxy.proxy, "/", &["Accept: text/html"]).await;
    assert_eq!(r.status, 200, "{}", r.summary());

    // Hold connections until the proxy is out of descriptors, and some more in the backlog.
    let free = (LIMIT as usize).saturating_sub(proxy.open_fds());
    let mut held = Vec::new();
    for _ in 0..free + 16 {
        held.push(idle_connection(proxy.proxy, [127, 0, 0, 1], STARTED_HEAD).await);
    }
    let exhausted = eventually(GUARD, || proxy.open_fds() as u64 >= LIMIT).await;
    assert!(exhausted, "never ran out of descriptors ({} open)", proxy.open_fds());
    assert!(eventually(GUARD, || proxy.log_lines_with("accept failed") > 0).await, "accept never failed (EMFILE)");

    // Out of descriptors for a few seconds: the accept loop may not spin. A busy loop
    // would burn a core (~100 ticks a second); backing off to 1 s costs next to nothing.
    let (ticks, failures) = (proxy.cpu_ticks(), proxy.log_lines_with("accept failed"));
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (ticks, failures) = (proxy.cpu_ticks() - ticks, proxy.log_lines_with("accept failed") - failures);
    eprintln!("out of descriptors for 4 s: {ticks} CPU ticks, {failures} failed accepts logged");
    assert!(ticks <= 40, "the proxy used {ticks} CPU ticks in 4 s while out of descriptors");
    assert!(failures <= 20, "{failures} failed accepts in 4 s: not backing off");

    // Descriptors freed: the proxy serves again.
    drop(held);
    let mut recovered = false;
    for _ in 0..100 {
        let r = get(proxy.proxy, "/", &["Accept: text/html"]).await;
        if r.status == 200 && r.complete {
            assert_rewritten(&r.body);
            recovered = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(recovered, "the proxy did not serve again once descriptors were free");
}
