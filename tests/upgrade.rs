//! Zero-downtime binary upgrade (issue 10): steady load through the real
//! `tagwarden` binary while a second copy takes its listening sockets
//! (`serve --upgrade`, then SIGQUIT to the old one). Every request must
//! succeed — before, during and after — and the new process must be the one
//! serving once the old has drained and exited.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

mod support;
use support::common::repo;
use support::http::*;

/// Starts `tagwarden serve` and returns it with the proxy address it printed.
fn serve(config: &std::path::Path, upgrade: bool) -> (Child, std::sync::mpsc::Receiver<SocketAddr>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagwarden"));
    cmd.arg("serve").arg("--config").arg(config);
    if upgrade {
        cmd.arg("--upgrade");
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::null()).spawn().expect("tagwarden starts");
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("tagwarden listening on http://") {
                let addr = rest.split('/').next().unwrap().parse().unwrap();
                let _ = tx.send(addr);
            }
        }
    });
    (child, rx)
}

fn signal(child: &Child, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(child.id().to_string()).status().unwrap().success();
    assert!(ok, "kill -{sig}");
}

/// Waits (bounded) for a child to exit; its status.
fn wait_exit(child: &mut Child, within: Duration) -> std::process::ExitStatus {
    let end = std::time::Instant::now() + within;
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        assert!(std::time::Instant::now() < end, "process did not exit within {within:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// One `Connection: close` GET; whether a complete 200 came back.
async fn one_request(addr: SocketAddr) -> bool {
    let attempt = async {
        let mut s = TcpStream::connect(addr).await.ok()?;
        s.write_all(&request("GET", "/", &["Accept: text/html"])).await.ok()?;
        let mut raw = Vec::new();
        read_to_close(&mut s, &mut raw).await;
        let r = parse_response_checked(&raw)?;
        (r.status == 200 && r.complete && r.text().contains("end of page")).then_some(())
    };
    tokio::time::timeout(GUARD, attempt).await.ok().flatten().is_some()
}

fn parse_response_checked(raw: &[u8]) -> Option<Resp> {
    find(raw, b"\r\n\r\n")?;
    Some(parse_response(raw, false))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_fails_no_request() {
    let origin = TestServer::start_accepting(usize::MAX, |_req, sock| {
        let page = format!(
            "<!doctype html><html><head><title>Clinic</title></head><body>{TRACKERS}<p>end of page</p></body></html>"
        );
        send_and_close(
            sock,
            chunked_response("200 OK", &[("content-type", "text/html; charset=utf-8")], page.as_bytes(), 64),
        )
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagwarden.toml");
    let socket = dir.path().join("upgrade.sock");
    std::fs::write(
        &config,
        format!(
            "rules = {rules:?}\n[listen]\naddress = \"127.0.0.1:0\"\nupgrade_socket = {socket:?}\n\
             [admin]\naddress = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{origin}\"\n\
             [limits]\nshutdown_grace_seconds = 10\n",
            rules = repo().join("rules").display().to_string(),
            socket = socket.display().to_string(),
            origin = origin.addr,
        ),
    )
    .unwrap();

    let (mut old, old_addr) = serve(&config, false);
    let addr = old_addr.recv_timeout(GUARD).expect("the old process starts");
    assert!(one_request(addr).await, "the old process serves");

    let (ok, failed, after_exit) =
        (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let (stop, old_gone) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicBool::new(false)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (ok, failed, after_exit, stop, old_gone) =
            (ok.clone(), failed.clone(), after_exit.clone(), stop.clone(), old_gone.clone());
        clients.push(tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if one_request(addr).await {
                    ok.fetch_add(1, Ordering::SeqCst);
                    if old_gone.load(Ordering::SeqCst) {
                        after_exit.fetch_add(1, Ordering::SeqCst);
                    }
                } else {
                    failed.fetch_add(1, Ordering::SeqCst);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The new binary waits for the sockets; SIGQUIT makes the old one send them and drain.
    let (mut new, new_addr) = serve(&config, true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&old, "QUIT");
    let new_at = tokio::task::spawn_blocking(move || new_addr.recv_timeout(GUARD)).await.unwrap();
    assert_eq!(new_at.expect("the new process starts on the inherited sockets"), addr);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut old, Duration::from_secs(30))).await.unwrap();
    assert!(status.success(), "the old process exits cleanly after draining: {status:?}");
    old_gone.store(true, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(700)).await;
    stop.store(true, Ordering::SeqCst);
    for c in clients {
        c.await.unwrap();
    }

    let (ok, failed, after_exit) =
        (ok.load(Ordering::SeqCst), failed.load(Ordering::SeqCst), after_exit.load(Ordering::SeqCst));
    eprintln!("upgrade under load: {ok} requests succeeded, {failed} failed, {after_exit} after the old process exited");
    assert_eq!(failed, 0, "{failed} failed requests across the upgrade ({ok} succeeded)");
    assert!(after_exit > 0, "no request was served by the new process after the old one exited");
    assert!(ok > 200, "too little load to mean anything: {ok} requests");
    signal(&new, "TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut new, Duration::from_secs(30))).await.unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn a_stray_sigquit_without_a_new_process_keeps_serving() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let origin = rt.block_on(TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"ok")));
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tagwarden.toml");
    std::fs::write(
        &config,
        format!(
            "rules = {rules:?}\n[listen]\naddress = \"127.0.0.1:0\"\nupgrade_socket = {socket:?}\n\
             [admin]\naddress = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{origin}\"\n",
            rules = repo().join("rules").display().to_string(),
            socket = dir.path().join("upgrade.sock").display().to_string(),
            origin = origin.addr,
        ),
    )
    .unwrap();
    let (mut child, addr) = serve(&config, false);
    let addr = addr.recv_timeout(GUARD).unwrap();
    signal(&child, "QUIT");
    // The hand-off retries for ~5 s, finds nobody, and the process keeps serving.
    std::thread::sleep(Duration::from_secs(7));
    assert!(child.try_wait().unwrap().is_none(), "a SIGQUIT with no new process took the proxy down");
    let served = rt.block_on(async {
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(&request("GET", "/", &[])).await.unwrap();
        let mut raw = Vec::new();
        read_to_close(&mut s, &mut raw).await;
        parse_response(&raw, false).status
    });
    assert_eq!(served, 200);
    signal(&child, "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}
