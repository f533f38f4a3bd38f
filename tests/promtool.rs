//! The metrics endpoint passes the real `promtool check metrics` linter (naming,
//! units, help text, types) after traffic has populated every metric family.
//! `.ci/run` installs promtool (Debian package `prometheus`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Stdio};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn exchange(addr: std::net::SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut out = Vec::new();
    s.read_to_end(&mut out).await.unwrap();
    String::from_utf8_lossy(&out).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_pass_promtool_check() {
    let mut config = tagwarden::config::Config {
        rules: std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules"),
        ..Default::default()
    };
    config.listen.address = "127.0.0.1:0".parse().unwrap();
    config.admin.address = "127.0.0.1:0".parse().unwrap();
    let running = tagwarden::serve::start(config).await.unwrap();
    let p = running.proxy_addr;
    for path in ["/", "/appointments", "/conditions/diabetes", "/static/app.js", "/missing"] {
        exchange(p, format!("GET {path} HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n").as_bytes())
            .await;
    }
    let report =
        br#"{"csp-report":{"effective-directive":"img-src","blocked-uri":"https://www.facebook.com/tr?id=1"}}"#;
    let mut req = format!(
        "POST /_tw/csp-report HTTP/1.1\r\nHost: clinic.example\r\nContent-Type: application/csp-report\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        report.len()
    )
    .into_bytes();
    req.extend_from_slice(report);
    exchange(p, &req).await;
    let scraped = exchange(running.admin_addr, b"GET /metrics HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n").await;
    let body = scraped.split_once("\r\n\r\n").unwrap().1.to_string();
    assert!(body.contains("tagwarden_csp_violations_total"), "{body}");
    let _ = running.shutdown.send(true);

    let mut child = match Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(c) => c,
        Err(e) => panic!("promtool is required (apt-get install prometheus): {e}"),
    };
    child.stdin.take().unwrap().write_all(body.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success() && report.trim().is_empty(), "promtool: {report}\n---\n{body}");
}
