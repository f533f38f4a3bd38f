//! The binary as an operator runs it: `tagwarden serve` (the README's run
//! command, on ephemeral ports) proxies the demo clinic with trackers removed
//! and exits cleanly on SIGTERM; `tagwarden rewrite` writes findings and fails
//! closed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_tagwarden");

fn repo() -> std::path::PathBuf {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A plain HTTP/1.1 GET; returns the raw response.
fn http_get(addr: &str, path: &str) -> String {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n").unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

struct Served {
    child: Child,
    proxy: String,
    admin: String,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `tagwarden serve` on ephemeral ports and reads the addresses it prints.
fn serve() -> Served {
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--admin", "127.0.0.1:0"])
        .current_dir(repo())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let (mut proxy, mut admin) = (None, None);
    for _ in 0..20 {
        let Some(Ok(line)) = lines.next() else { break };
        if proxy.is_none() && line.contains("open   http://") {
            proxy = line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_string);
        }
        if line.contains("metrics http://") {
            admin = line.split("http://").nth(1).and_then(|r| r.split('/').next()).map(str::to_string);
        }
        if proxy.is_some() && admin.is_some() {
            break;
        }
    }
    Served {
        child,
        proxy: proxy.expect("serve prints the proxy URL"),
        admin: admin.expect("serve prints the metrics URL"),
    }
}

#[test]
fn serve_without_an_upstream_proxies_the_demo_clinic_with_trackers_removed() {
    let served = serve();
    let page = http_get(&served.proxy, "/conditions/diabetes");
    assert!(page.starts_with("HTTP/1.1 200"), "{page}");
    for tracker in
        ["connect.facebook.net", "facebook.com/tr", "googletagmanager", "static.hotjar.com", "widget.intercom.io"]
    {
        assert!(!page.contains(tracker), "{tracker} still in the demo page");
    }
    assert!(page.contains("Living with type 2 diabetes"), "the page itself is intact");
    assert!(page.to_ascii_lowercase().contains("content-security-policy:"), "{page}");
    let booking = http_get(&served.proxy, "/appointments");
    assert!(booking.contains("/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key="), "{booking}");
    let metrics = http_get(&served.admin, "/metrics");
    assert!(metrics.contains("tagwarden_html_documents_total{mode=\"enforce\",outcome=\"rewritten\"} 2"), "{metrics}");
}

#[test]
fn serve_exits_cleanly_on_sigterm() {
    let mut served = serve();
    assert!(http_get(&served.proxy, "/").starts_with("HTTP/1.1 200"));
    // The shell builtin: no procps package needed on a minimal machine.
    let status = Command::new("sh").args(["-c", &format!("kill -TERM {}", served.child.id())]).status().unwrap();
    assert!(status.success());
    // Hang guard, not a timing assertion: the default drain bound is 20 s.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(code) = served.child.try_wait().unwrap() {
            assert!(code.success(), "exit status {code}");
            break;
        }
        assert!(Instant::now() < deadline, "tagwarden did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(TcpStream::connect(&served.proxy).is_err(), "listener closed after exit");
}

fn rewrite(args: &[&str], input: &[u8]) -> std::process::Output {
    let mut child = Command::new(BIN)
        .arg("rewrite")
        .args(args)
        .current_dir(repo())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(input).unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn rewrite_explain_writes_one_json_finding_per_line() {
    let html = br#"<script src="https://connect.facebook.net/en_US/fbevents.js"></script><img src="https://evil.example/p.gif"><p>hello</p>"#;
    let out = rewrite(&["--url", "https://clinic.example/patient/x", "--explain"], html);
    assert!(out.status.success());
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        !stdout.contains("facebook") && !stdout.contains("evil.example") && stdout.contains("<p>hello</p>"),
        "{stdout}"
    );
    let findings: Vec<serde_json::Value> =
        String::from_utf8(out.stderr).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(findings.len(), 2);
    assert_eq!(findings[0]["vendor"], "meta_pixel");
    assert_eq!(findings[0]["reason"], "not_allowed_on_route");
    assert_eq!(findings[1]["vendor"], "unknown");
    assert_eq!(findings[1]["reason"], "unvetted");
}

#[test]
fn rewrite_fails_closed_on_utf16_and_prints_no_html() {
    let mut input = vec![0xFF, 0xFE];
    for c in "<img src=https://evil.example/x>".encode_utf16() {
        input.extend_from_slice(&c.to_le_bytes());
    }
    let out = rewrite(&["--url", "https://clinic.example/"], &input);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing of the document is written");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unsupported_encoding"));
}

#[test]
fn rewrite_consent_flag_changes_the_decision() {
    let html = br#"<script src="https://static.zdassets.com/ekr/snippet.js?key=k"></script>"#;
    let granted = rewrite(&["--url", "https://clinic.example/", "--consent", "support"], html);
    assert!(String::from_utf8_lossy(&granted.stdout).contains("/_tw/zendesk/static.zdassets.com/ekr/snippet.js"));
    let denied = rewrite(&["--url", "https://clinic.example/", "--consent", "essential", "--explain"], html);
    assert!(!String::from_utf8_lossy(&denied.stdout).contains("zdassets"));
    assert!(String::from_utf8_lossy(&denied.stderr).contains("no_consent"));
}
