#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Script-change detection and pinning for first-party vendor assets, end to end
//! with the vendor reached over TLS by name (`support/tls_vendor.rs`): a script's
//! SHA-256 (as the vendor sent it, coding removed; never keyed by the query) is in
//! `/inventory` and a change is counted; a `[first_party] pin` path is served only
//! when its hash is pinned, and refused with a 502 before any byte of it otherwise;
//! a malformed pin is a located rule error.

mod support;

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use base64::Engine;
use sha2::{Digest, Sha256};
use support::http::*;
use support::vendor_env::{VendorEnv, ok_sink, rules, start};

const SNIPPET: &str = "/_tw/zendesk/static.zdassets.com/ekr/snippet.js";

fn sri(body: &[u8]) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(Sha256::digest(body)))
}

/// The shipped rules with `pin = …` added to zendesk's `[first_party]` (its last section).
fn pinned(pin: &str) -> tempfile::TempDir {
    let pin = pin.to_string();
    rules(move |name, text| if name == "zendesk.toml" { format!("{text}\npin = {pin}\n") } else { text }, &[])
}

fn pin_of(body: &[u8]) -> String {
    format!(r#"[{{ path = "/ekr/*.js", sha256 = ["{}", "{}"] }}]"#, sri(b"an older version"), sri(body))
}

async fn metric(env: &VendorEnv, key: &str) -> u64 {
    let text = get(env.admin, "/metrics", &[]).await.text();
    text.lines().find_map(|l| l.strip_prefix(&format!("{key} "))).and_then(|v| v.trim().parse().ok()).unwrap_or(0)
}

async fn assets(env: &VendorEnv) -> Vec<serde_json::Value> {
    let r = get(env.admin, "/inventory", &[]).await;
    let json: serde_json::Value = serde_json::from_str(&r.text()).unwrap();
    json["assets"].as_array().unwrap().clone()
}

/// A vendor sink answering each request with the next of `bodies` (the last one repeats).
async fn sink_serving(
    bodies: &'static [&'static [u8]],
    headers: &'static [(&'static str, &'static str)],
) -> TestServer {
    let n = Arc::new(AtomicUsize::new(0));
    TestServer::start(move |_req, sock| {
        let i = n.fetch_add(1, Ordering::SeqCst).min(bodies.len() - 1);
        async move { send_and_close(sock, cl_response("200 OK", headers, bodies[i])).await }
    })
    .await
}

const JS: &[(&str, &str)] = &[("content-type", "application/javascript")];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_changed_script_is_counted_and_its_current_hash_is_in_the_inventory() {
    let sink = sink_serving(&[b"widget(1);\n", b"widget(2);\n"], JS).await;
    let env = start(rules(|_, t| t, &[]), sink, |_| {}).await;
    for q in ["?key=a", "?key=b", "?key=c"] {
        let r = get(env.proxy, &format!("{SNIPPET}{q}"), &[]).await;
        assert_eq!(r.status, 200, "{}", r.summary());
    }
    assert_eq!(metric(&env, r#"tagwarden_vendor_asset_changes_total{vendor="zendesk"}"#).await, 1);
    let assets = assets(&env).await;
    assert_eq!(assets.len(), 1, "one asset whatever the query: {assets:?}");
    assert_eq!(assets[0]["vendor"], "zendesk");
    assert_eq!(assets[0]["host"], "static.zdassets.com");
    assert_eq!(assets[0]["path"], "/ekr/snippet.js");
    assert_eq!(assets[0]["sha256"], sri(b"widget(2);\n"));
    assert_eq!(assets[0]["changes"], 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_vendor_asset_counter_starts_at_zero_for_every_vendor() {
    let env = start(rules(|_, t| t, &[]), ok_sink().await, |_| {}).await;
    let text = get(env.admin, "/metrics", &[]).await.text();
    assert!(text.contains(r#"tagwarden_vendor_asset_changes_total{vendor="zendesk"} 0"#), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_script_whose_hash_is_pinned_is_served_whole() {
    let env = start(pinned(&pin_of(b"ok();\n")), ok_sink().await, |_| {}).await;
    let r = get(env.proxy, &format!("{SNIPPET}?key=k"), &["If-None-Match: \"v1\"", "Range: bytes=0-1"]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.text(), "ok();\n");
    assert_eq!(r.header("content-length"), Some("6"));
    let seen = env.sink.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].target, "/ekr/snippet.js?key=k");
    assert!(!seen[0].has_header("if-none-match") && !seen[0].has_header("range"), "{:?}", seen[0].headers);
    assert_eq!(assets(&env).await[0]["sha256"], sri(b"ok();\n"));
    assert_eq!(env.first_party("zendesk", "forwarded").await, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_script_is_hashed_as_the_vendor_sent_it_whatever_its_coding() {
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"ok();\n").unwrap();
    let body: &'static [u8] = Box::leak(gz.finish().unwrap().into_boxed_slice());
    let sink =
        sink_serving(Box::leak(Box::new([body])), &[("content-type", "text/javascript"), ("content-encoding", "gzip")])
            .await;
    let env = start(pinned(&pin_of(b"ok();\n")), sink, |_| {}).await;
    let r = get(env.proxy, SNIPPET, &["Accept-Encoding: identity"]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(r.text(), "ok();\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pinned_script_whose_hash_is_not_pinned_is_refused_with_a_502() {
    let env = start(pinned(&pin_of(b"ok();\n")), sink_serving(&[b"steal(document.cookie);\n"], JS).await, |_| {}).await;
    let r = get(env.proxy, SNIPPET, &[]).await;
    assert_eq!(r.status, 502, "{}", r.summary());
    assert!(!r.text().contains("steal"), "none of the refused script is sent: {}", r.text());
    let refused = r#"tagwarden_vendor_assets_refused_total{reason="not_pinned",vendor="zendesk"}"#;
    assert_eq!(metric(&env, refused).await, 1);
    assert_eq!(env.first_party("zendesk", "upstream_error").await, 0, "the vendor answered: not an upstream error");
    // What the vendor serves now is on record.
    assert_eq!(assets(&env).await[0]["sha256"], sri(b"steal(document.cookie);\n"));
    // Paths the pin does not name stream as before.
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/ekr/snippet.css", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redirect_or_a_non_script_on_a_pinned_path_is_refused() {
    let redirect = TestServer::fixed(cl_response("302 Found", &[("location", "/ekr/other.js")], b"")).await;
    let env = start(pinned(&pin_of(b"ok();\n")), redirect, |_| {}).await;
    assert_eq!(get(env.proxy, SNIPPET, &[]).await.status, 502);
    assert_eq!(metric(&env, r#"tagwarden_vendor_assets_refused_total{reason="redirect",vendor="zendesk"}"#).await, 1);

    let html = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/html")], b"ok();\n")).await;
    let env = start(pinned(&pin_of(b"ok();\n")), html, |_| {}).await;
    assert_eq!(get(env.proxy, SNIPPET, &[]).await.status, 502);
    let key = r#"tagwarden_vendor_assets_refused_total{reason="unverifiable",vendor="zendesk"}"#;
    assert_eq!(metric(&env, key).await, 1);
}

#[test]
fn a_malformed_pin_is_a_located_rule_error() {
    let dir = pinned(
        r#"[{ path = "ekr/snippet.js", sha256 = ["sha256-short", "sha384-abc"] }, { path = "/x.js", sha256 = [] }]"#,
    );
    let err = tagwarden::rules::load_dir(dir.path()).unwrap_err().to_string();
    let file = dir.path().join("vendors/zendesk.toml");
    let line = std::fs::read_to_string(&file).unwrap().lines().position(|l| l.starts_with("pin = ")).unwrap() + 1;
    for expected in [
        format!("zendesk.toml:{line}:17: first_party.pin[0].path: `ekr/snippet.js` must start with `/`"),
        format!("zendesk.toml:{line}:45: first_party.pin[0].sha256[0]: `sha256-short` is not"),
        format!("zendesk.toml:{line}:61: first_party.pin[0].sha256[1]: `sha384-abc` is not"),
        format!("zendesk.toml:{line}:87: first_party.pin[1].sha256: list at least one"),
    ] {
        assert!(err.contains(&expected), "missing `{expected}` in:\n{err}");
    }
    let unknown_key = pinned(r#"[{ path = "/x.js", sha256 = ["sha256-x"], sha = 1 }]"#);
    let err = tagwarden::rules::load_dir(unknown_key.path()).unwrap_err().to_string();
    assert!(err.contains(&format!("zendesk.toml:{line}:")) && err.contains("sha"), "{err}");
}
