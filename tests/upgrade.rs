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
fn serve(
    config: &std::path::Path,
    upgrade: bool,
    env: &[(&str, &std::ffi::OsStr)],
) -> (Child, std::sync::mpsc::Receiver<SocketAddr>) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_tagwarden"));
    cmd.envs(env.iter().copied());
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

fn signal(pid: u32, sig: &str) {
    let ok = Command::new("kill").arg(format!("-{sig}")).arg(pid.to_string()).status().unwrap().success();
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

/// Steady load: 8 clients, one `Connection: close` request after another.
struct Load {
    ok: Arc<AtomicUsize>,
    failed: Arc<AtomicUsize>,
    after_switch: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    switched: Arc<AtomicBool>,
    clients: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(addr: SocketAddr) -> Load {
        let mut load = Load {
            ok: Arc::default(),
            failed: Arc::default(),
            after_switch: Arc::default(),
            stop: Arc::default(),
            switched: Arc::default(),
            clients: Vec::new(),
        };
        for _ in 0..8 {
            let (ok, failed, after, stop, switched) = (
                load.ok.clone(),
                load.failed.clone(),
                load.after_switch.clone(),
                load.stop.clone(),
                load.switched.clone(),
            );
            load.clients.push(tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if one_request(addr).await {
                        ok.fetch_add(1, Ordering::SeqCst);
                        if switched.load(Ordering::SeqCst) {
                            after.fetch_add(1, Ordering::SeqCst);
                        }
                    } else {
                        failed.fetch_add(1, Ordering::SeqCst);
                    }
                }
            }));
        }
        load
    }

    /// Marks the moment the old process is gone.
    fn switched(&self) {
        self.switched.store(true, Ordering::SeqCst);
    }

    /// Stops the clients; checks nothing failed and the new process served.
    async fn finish(self, what: &str) {
        tokio::time::sleep(Duration::from_millis(700)).await;
        self.stop.store(true, Ordering::SeqCst);
        for c in self.clients {
            c.await.unwrap();
        }
        let (ok, failed, after) = (
            self.ok.load(Ordering::SeqCst),
            self.failed.load(Ordering::SeqCst),
            self.after_switch.load(Ordering::SeqCst),
        );
        eprintln!("{what}: {ok} requests succeeded, {failed} failed, {after} after the old process exited");
        assert_eq!(failed, 0, "{failed} failed requests across the upgrade ({ok} succeeded)");
        assert!(after > 0, "no request was served by the new process after the old one exited");
        assert!(ok > 20, "too little load to mean anything: {ok} requests");
    }
}

async fn small_page_origin() -> TestServer {
    TestServer::start_accepting(usize::MAX, |_req, sock| {
        let page = format!(
            "<!doctype html><html><head><title>Clinic</title></head><body>{TRACKERS}<p>end of page</p></body></html>"
        );
        send_and_close(
            sock,
            chunked_response("200 OK", &[("content-type", "text/html; charset=utf-8")], page.as_bytes(), 64),
        )
    })
    .await
}

fn write_config(dir: &std::path::Path, origin: SocketAddr) -> std::path::PathBuf {
    let config = dir.join("tagwarden.toml");
    std::fs::write(
        &config,
        format!(
            "rules = {rules:?}\n[listen]\naddress = \"127.0.0.1:0\"\nupgrade_socket = {socket:?}\n\
             [admin]\naddress = \"127.0.0.1:0\"\n[upstream]\nurl = \"http://{origin}\"\n\
             [limits]\nshutdown_grace_seconds = 10\n",
            rules = repo().join("rules").display().to_string(),
            socket = dir.join("upgrade.sock").display().to_string(),
        ),
    )
    .unwrap();
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_under_load_fails_no_request() {
    let origin = small_page_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), origin.addr);

    let (mut old, old_addr) = serve(&config, false, &[]);
    let addr = old_addr.recv_timeout(GUARD).expect("the old process starts");
    assert!(one_request(addr).await, "the old process serves");
    let load = Load::start(addr);
    tokio::time::sleep(Duration::from_millis(500)).await;

    // The new binary waits for the sockets; SIGQUIT makes the old one send them and drain.
    let (mut new, new_addr) = serve(&config, true, &[]);
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(old.id(), "QUIT");
    let new_at = tokio::task::spawn_blocking(move || new_addr.recv_timeout(GUARD)).await.unwrap();
    assert_eq!(new_at.expect("the new process starts on the inherited sockets"), addr);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut old, Duration::from_secs(30))).await.unwrap();
    assert!(status.success(), "the old process exits cleanly after draining: {status:?}");
    load.switched();
    load.finish("upgrade (SIGQUIT) under load").await;
    signal(new.id(), "TERM");
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut new, Duration::from_secs(30))).await.unwrap();
    assert!(status.success(), "{status:?}");
}

/// The next sd_notify datagram, as text.
fn next_notification(sock: &std::os::unix::net::UnixDatagram) -> String {
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("an sd_notify datagram within the guard");
    String::from_utf8_lossy(&buf[..n]).to_string()
}

fn main_pid(notification: &str) -> Option<u32> {
    notification.lines().find_map(|l| l.strip_prefix("MAINPID=")).and_then(|p| p.parse().ok())
}

/// Whether `pid` still runs (gone or a zombie: no).
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit_once(')').is_some_and(|(_, rest)| !rest.trim_start().starts_with('Z')))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr2_upgrades_in_place_and_tells_systemd_the_new_main_pid() {
    let origin = small_page_origin().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), origin.addr);
    let notify_path = dir.path().join("notify.sock");
    let notify = std::os::unix::net::UnixDatagram::bind(&notify_path).unwrap();
    notify.set_read_timeout(Some(GUARD)).unwrap();

    let (mut old, old_addr) = serve(&config, false, &[("NOTIFY_SOCKET", notify_path.as_os_str())]);
    let addr = old_addr.recv_timeout(GUARD).expect("the old process starts");
    let ready = next_notification(&notify);
    assert!(ready.contains("READY=1"), "{ready:?}");
    assert_eq!(main_pid(&ready), Some(old.id()));
    let load = Load::start(addr);
    tokio::time::sleep(Duration::from_millis(500)).await;

    signal(old.id(), "USR2");
    // The old process names its successor as the main process, the successor says it is ready.
    let (first, second) =
        tokio::task::spawn_blocking(move || (next_notification(&notify), next_notification(&notify))).await.unwrap();
    let successor = main_pid(&first).expect("MAINPID of the successor");
    assert_ne!(successor, old.id());
    assert_eq!(main_pid(&second), Some(successor), "{first:?} then {second:?}");
    assert!(first.contains("READY=1") || second.contains("READY=1"), "{first:?} {second:?}");
    let new_at = tokio::task::spawn_blocking(move || old_addr.recv_timeout(GUARD)).await.unwrap();
    assert_eq!(new_at.expect("the successor starts on the inherited sockets"), addr);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut old, Duration::from_secs(30))).await.unwrap();
    assert!(status.success(), "{status:?}");
    load.switched();
    load.finish("upgrade (SIGUSR2) under load").await;
    assert!(alive(successor));
    signal(successor, "TERM");
    for _ in 0..300 {
        if !alive(successor) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!alive(successor), "the successor did not stop on SIGTERM");
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
    let (mut child, addr) = serve(&config, false, &[]);
    let addr = addr.recv_timeout(GUARD).unwrap();
    signal(child.id(), "QUIT");
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
    signal(child.id(), "TERM");
    assert!(wait_exit(&mut child, Duration::from_secs(30)).success());
}
