//! The shipped dashboard and alerts (`deploy/grafana/tagwarden.json`,
//! `deploy/prometheus/alerts.yml`): `promtool check rules` and `promtool test rules`
//! (`alerts_test.yml`) pass, and every `tagwarden_…` metric their PromQL queries is
//! in the `/metrics` of a running tagwarden after traffic that exercises each
//! family (HTML pages, a refused coding, a vendor path, a CSP report, a smuggling
//! attempt, a failed reload).
//!
//! `tests/run.sh` installs promtool (Debian package `prometheus`); without it the
//! promtool tests print why and pass, and the metric-name test still runs.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::start_with;

use support::http::*;

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn prometheus_dir() -> PathBuf {
    repo().join("deploy/prometheus")
}

/// Runs promtool with `args` in `deploy/prometheus`; `None` (with the reason
/// printed) when promtool is not installed.
fn promtool(args: &[&str]) -> Option<std::process::Output> {
    match Command::new("promtool").args(args).current_dir(prometheus_dir()).output() {
        Ok(out) => Some(out),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            println!("skipped: promtool is not installed (apt-get install prometheus; tests/run.sh does)");
            None
        }
        Err(e) => panic!("promtool: {e}"),
    }
}

fn assert_success(out: &std::process::Output) {
    let report = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "promtool failed:\n{report}");
}

#[test]
fn promtool_checks_the_alert_rules() {
    if let Some(out) = promtool(&["check", "rules", "alerts.yml"]) {
        assert_success(&out);
    }
}

#[test]
fn promtool_passes_the_alert_unit_tests() {
    if let Some(out) = promtool(&["test", "rules", "alerts_test.yml"]) {
        assert_success(&out);
    }
}

/// Every PromQL expression of the dashboard: each `expr` string anywhere in the JSON.
fn dashboard_exprs() -> Vec<String> {
    fn walk(v: &serde_json::Value, out: &mut Vec<String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    match v {
                        serde_json::Value::String(s) if k == "expr" => out.push(s.clone()),
                        _ => walk(v, out),
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter().for_each(|v| walk(v, out)),
            _ => {}
        }
    }
    let text = std::fs::read_to_string(repo().join("deploy/grafana/tagwarden.json")).unwrap();
    let json: serde_json::Value = serde_json::from_str(&text).unwrap();
    let mut out = Vec::new();
    walk(&json, &mut out);
    out
}

/// Every `expr:` of the alert rules, with its continuation lines (more indented).
fn alert_exprs() -> Vec<String> {
    let text = std::fs::read_to_string(prometheus_dir().join("alerts.yml")).unwrap();
    let indent = |l: &str| l.len() - l.trim_start().len();
    let mut out = Vec::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let Some(first) = line.trim_start().strip_prefix("expr:") else { continue };
        let mut expr = first.to_string();
        while let Some(next) = lines.peek() {
            if next.trim().is_empty() || indent(next) > indent(line) {
                expr.push('\n');
                expr.push_str(next);
                lines.next();
            } else {
                break;
            }
        }
        out.push(expr);
    }
    out
}

/// The `tagwarden_…` metric names in PromQL expressions.
fn metric_names(exprs: &[String]) -> BTreeSet<String> {
    let name = regex::Regex::new(r"\btagwarden_[a-z0-9_]+").unwrap();
    exprs.iter().flat_map(|e| name.find_iter(e).map(|m| m.as_str().to_string())).collect()
}

#[test]
fn the_dashboard_and_the_alerts_query_tagwarden_metrics() {
    let dashboard = dashboard_exprs();
    assert!(dashboard.len() >= 15, "dashboard expressions: {dashboard:?}");
    let alerts = alert_exprs();
    assert_eq!(alerts.len(), 10, "alert expressions: {alerts:?}");
    assert!(metric_names(&dashboard).len() >= 12, "{:?}", metric_names(&dashboard));
    assert!(alerts.iter().all(|e| e.contains("tagwarden_")), "{alerts:?}");
}

async fn scrape(admin: SocketAddr) -> String {
    let raw = exchange(admin, b"GET /metrics HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await;
    parse_response(&raw, false).text()
}

/// Sample names in a text exposition (`name{…} v` / `name v`).
fn exposed_names(body: &str) -> BTreeSet<String> {
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_string))
        .collect()
}

/// An origin answering a page full of trackers, except `/refused` (a coding
/// tagwarden cannot decode: a rewrite error, failed closed).
async fn origin() -> TestServer {
    TestServer::start(|req, sock| async move {
        let response = if req.target.starts_with("/refused") {
            cl_response("200 OK", &[("content-type", "text/html"), ("content-encoding", "compress")], b"x")
        } else {
            cl_response("200 OK", &[("content-type", "text/html; charset=utf-8")], &page())
        };
        send_and_close(sock, response).await;
    })
    .await
}

fn copy_rules(to: &Path) {
    let from = repo().join("rules");
    std::fs::create_dir_all(to.join("vendors")).unwrap();
    std::fs::copy(from.join("site.toml"), to.join("site.toml")).unwrap();
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("vendors").join(e.file_name())).unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_dashboard_and_the_alerts_query_is_exposed_after_traffic() {
    let rules = tempfile::tempdir().unwrap();
    copy_rules(rules.path());
    // A pin, so the pinned-asset refusal counters exist (they start at 0 for vendors that pin).
    let zendesk = rules.path().join("vendors/zendesk.toml");
    let text = std::fs::read_to_string(&zendesk).unwrap();
    let pin =
        r#"pin = [{ path = "/ekr/snippet.js", sha256 = ["sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="] }]"#;
    std::fs::write(&zendesk, format!("{text}\n{pin}\n")).unwrap();
    let origin = origin().await;
    // TLS on, so the certificate metrics exist (a throwaway self-signed pair).
    let key = rcgen::KeyPair::generate().unwrap();
    let cert = rcgen::CertificateParams::new(vec!["clinic.example".to_string()]).unwrap().self_signed(&key).unwrap();
    let (cert_file, key_file) = (rules.path().join("site.crt"), rules.path().join("site.key"));
    std::fs::write(&cert_file, cert.pem()).unwrap();
    std::fs::write(&key_file, key.serialize_pem()).unwrap();
    let mut config = Config { rules: rules.path().to_path_buf(), ..Config::default() };
    config.tls = Some(
        toml::from_str(&format!(
            "[[certificates]]\ncert_file = {cert_file:?}\nkey_file = {key_file:?}\nname = \"site\"\n"
        ))
        .unwrap(),
    );
    config.listen.tls_address = Some("127.0.0.1:0".parse().unwrap());
    let policy = tagwarden::rules::load_dir(rules.path()).unwrap();
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = start_with(shared, loopback, loopback, Duration::from_secs(5), tx, rx, None).await.unwrap();
    let proxy = running.proxy_addr;

    for path in ["/", "/patient/records", "/refused"] {
        get(proxy, path, &["Accept: text/html"]).await;
    }
    get(proxy, "/_tw/zendesk/evil.example/x", &["Accept: */*"]).await;
    let report =
        br#"{"csp-report":{"effective-directive":"img-src","blocked-uri":"https://www.facebook.com/tr?id=1"}}"#;
    let mut req = format!(
        "POST /_tw/csp-report HTTP/1.1\r\nHost: clinic.example\r\nContent-Type: application/csp-report\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        report.len()
    )
    .into_bytes();
    req.extend_from_slice(report);
    exchange(proxy, &req).await;
    exchange(
        proxy,
        b"POST / HTTP/1.1\r\nHost: clinic.example\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    // A rules edit with a mistake: the watcher (2 s poll) counts a failed reload.
    let site = rules.path().join("site.toml");
    let text = std::fs::read_to_string(&site).unwrap();
    std::fs::write(&site, format!("{text}\n[oops]\n")).unwrap();

    let wanted: BTreeSet<String> =
        metric_names(&dashboard_exprs()).into_iter().chain(metric_names(&alert_exprs())).collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let exposed = exposed_names(&scrape(running.admin_addr).await);
        let missing: Vec<&String> = wanted.iter().filter(|n| !exposed.contains(*n)).collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing.into_iter().cloned().collect::<Vec<_>>();
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let _ = running.shutdown.send(true);
    assert!(missing.is_empty(), "queried by deploy/ but not in /metrics: {missing:?}");
}
