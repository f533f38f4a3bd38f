#![allow(clippy::unwrap_used, clippy::expect_used)]
//! The live third-party inventory and the decision log, end to end: the shared
//! corpus (`../shared/corpus/pages`) proxied, each page at its own host and path,
//! gives the inventory in `tests/golden/inventory.json` (times set to 0;
//! `TAGWARDEN_BLESS=1` rewrites it) and one decision-log line per page; and,
//! for any page path and query (property test), neither the inventory, its file
//! nor the decision log ever contains a piece of them — even when the page's own
//! tracker URLs carry the path in their host and query.

mod support;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

use support::corpus;
use support::http::*;

const GOLDEN: &str = "tests/golden/inventory.json";

struct Env {
    running: Running,
    _origin: TestServer,
    inventory_file: PathBuf,
    decision_log: PathBuf,
    _dir: tempfile::TempDir,
}

/// The proxy over `origin` with the shipped rules, an inventory file and a decision log.
async fn start(origin: TestServer) -> Env {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config { rules: support::common::repo().join("rules"), ..Config::default() };
    config.inventory.file = Some(dir.path().join("inventory.jsonl"));
    config.decision_log.file = Some(dir.path().join("decisions.jsonl"));
    let policy = tagwarden::rules::load_dir(&config.rules).unwrap();
    let (inventory_file, decision_log) =
        (config.inventory.file.clone().unwrap(), config.decision_log.file.clone().unwrap());
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).unwrap());
    let (tx, rx) = tokio::sync::watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let running = start_with(shared, loopback, loopback, Duration::from_secs(5), tx, rx, None).await.unwrap();
    Env { running, _origin: origin, inventory_file, decision_log, _dir: dir }
}

/// `GET path_and_query` with `Host: host`, as a browser navigates.
async fn navigate(proxy: SocketAddr, host: &str, path_and_query: &str) -> Resp {
    let req = format!(
        "GET {path_and_query} HTTP/1.1\r\nHost: {host}\r\nAccept: text/html\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n"
    );
    parse_response(&exchange(proxy, req.as_bytes()).await, false)
}

async fn inventory(admin: SocketAddr) -> serde_json::Value {
    let r = get(admin, "/inventory", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    serde_json::from_str(&r.text()).unwrap()
}

/// The inventory with every time set to 0.
fn normalised(mut v: serde_json::Value) -> serde_json::Value {
    fn walk(v: &mut serde_json::Value) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m.iter_mut() {
                    if matches!(k.as_str(), "first_seen" | "last_seen" | "hash_since" | "time") {
                        *v = 0.into();
                    } else {
                        walk(v);
                    }
                }
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(walk),
            _ => {}
        }
    }
    walk(&mut v);
    v
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_inventory_after_proxying_the_corpus_matches_the_golden_file() {
    let pages = corpus::pages();
    let by_target: Arc<HashMap<(String, String), String>> = Arc::new(
        pages
            .iter()
            .map(|p| ((p.url.host_str().unwrap().to_string(), p.url.path().to_string()), p.html.clone()))
            .collect(),
    );
    assert_eq!(by_target.len(), pages.len(), "two corpus pages share a host and path");
    let origin = TestServer::start(move |req, sock| {
        let pages = by_target.clone();
        async move {
            let host = req.header("host").unwrap_or_default().to_string();
            let path = req.target.split('?').next().unwrap_or_default().to_string();
            let response = match pages.get(&(host, path)) {
                Some(html) => cl_response("200 OK", &[("content-type", "text/html; charset=utf-8")], html.as_bytes()),
                None => cl_response("404 Not Found", &[("content-type", "text/plain")], b"no such page"),
            };
            send_and_close(sock, response).await;
        }
    })
    .await;
    let env = start(origin).await;
    for p in &pages {
        let target = match p.url.query() {
            Some(q) => format!("{}?{q}", p.url.path()),
            None => p.url.path().to_string(),
        };
        let r = navigate(env.running.proxy_addr, p.url.host_str().unwrap(), &target).await;
        assert_eq!(r.status, 200, "{}: {}", p.name, r.summary());
    }
    let inv = inventory(env.running.admin_addr).await;
    let entries = inv["entries"].as_array().unwrap();
    assert!(entries.len() > 20, "{inv}");
    assert!(entries.iter().any(|e| e["vendor"] == "unknown"), "unknown third parties are listed");
    assert!(entries.iter().any(|e| e["vendor"] == "google_tag_manager"), "named vendors are listed");

    // One decision-log record per page, each with its route glob and no path.
    let log = read(&env.decision_log);
    assert_eq!(log.lines().count(), pages.len(), "{log}");
    for line in log.lines() {
        let record: serde_json::Value = serde_json::from_str(line).unwrap();
        assert_eq!(record["route"], "/**", "{line}");
    }
    // The inventory file has a line per (route, domain, vendor, decision, construct) in the table.
    let file = read(&env.inventory_file);
    let constructs: usize = entries.iter().map(|e| e["constructs"].as_object().unwrap().len()).sum();
    assert_eq!(file.lines().count(), constructs, "{file}");
    // Nothing of any page's path or query.
    let everything = format!("{inv}\n{file}\n{log}");
    for p in &pages {
        for piece in p.url.path().split('/').chain(p.url.query().into_iter()).filter(|s| s.len() > 6) {
            assert!(!everything.contains(piece), "{}: `{piece}` of its path or query is in the evidence", p.name);
        }
    }

    let actual = serde_json::to_string_pretty(&normalised(inv)).unwrap() + "\n";
    let golden = support::common::repo().join(GOLDEN);
    if std::env::var_os("TAGWARDEN_BLESS").is_some() {
        std::fs::write(&golden, &actual).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap_or_default();
    assert!(expected == actual, "{GOLDEN} differs (TAGWARDEN_BLESS=1 rewrites it); actual:\n{actual}");
    let _ = env.running.shutdown.send(true);
}

/// A page whose trackers carry the page's own path in their host and query, under the patient route.
fn tracker_page(path_and_query: &str, first_segment: &str) -> String {
    format!(
        r#"<!doctype html><html><head><script src="https://www.googletagmanager.com/gtm.js?id=GTM-1&page={path_and_query}"></script>
<script src="https://static.zdassets.com/ekr/snippet.js?key=k&u={path_and_query}"></script></head>
<body><img src="https://{first_segment}.tracker.example/p.gif?u={path_and_query}">
<iframe src="https://frames.example/embed{path_and_query}"></iframe></body></html>"#
    )
}

#[test]
fn no_page_path_or_query_ever_reaches_the_inventory_or_the_decision_log() {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let env = rt.block_on(async {
        let origin = TestServer::start(|req, sock| async move {
            let first = req.target.trim_start_matches('/').split(['/', '?']).nth(1).unwrap_or("x").to_string();
            let html = tracker_page(&req.target, &first);
            send_and_close(sock, cl_response("200 OK", &[("content-type", "text/html")], html.as_bytes())).await;
        })
        .await;
        start(origin).await
    });
    let config = ProptestConfig { cases: 24, failure_persistence: None, ..ProptestConfig::default() };
    proptest!(config, |(
        segments in prop::collection::vec("qx[a-z0-9]{8}", 1..4),
        name in "qx[a-z]{6}",
        value in "qx[a-z0-9]{8}",
    )| {
        let target = format!("/patient/{}?{name}={value}", segments.join("/"));
        let (status, inv) = rt.block_on(async {
            let r = navigate(env.running.proxy_addr, "clinic.example", &target).await;
            (r.status, inventory(env.running.admin_addr).await.to_string())
        });
        prop_assert_eq!(status, 200);
        let evidence = format!("{inv}\n{}\n{}", read(&env.inventory_file), read(&env.decision_log));
        prop_assert!(evidence.contains("/patient/**"), "the route glob is recorded");
        for piece in segments.iter().chain([&name, &value]) {
            prop_assert!(!evidence.contains(piece.as_str()), "`{}` of `{}` is in the evidence", piece, target);
        }
    });
    let inv = rt.block_on(inventory(env.running.admin_addr));
    let domains: Vec<&str> = inv["entries"].as_array().unwrap().iter().filter_map(|e| e["domain"].as_str()).collect();
    assert!(domains.contains(&"tracker.example"), "{domains:?}");
    let _ = env.running.shutdown.send(true);
}
