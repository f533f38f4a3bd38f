#![allow(clippy::unwrap_used, clippy::expect_used)]
//! SSRF and open relay, on loopback only: the first-party path selects a vendor
//! and one of the hosts its rule names — a request never supplies where
//! tagwarden connects. Every shape below that tries to name another place
//! (hosts outside the rule, IP literals in every spelling, userinfo, encoded
//! slashes and dot segments, backslashes, trailing dots, case, IDN look-alikes,
//! absolute-form targets, `Host` tricks, CONNECT, a vendor host whose DNS
//! answer is loopback, a vendor redirect to an inside address) is refused or
//! kept on its fixed destination, and a canary listening on loopback — on an
//! ephemeral port named in the attacks, and on 127.0.0.1:443 / [::1]:443 where
//! the process may bind them (where a DNS-resolved vendor host would connect)
//! — sees no connection at all.
//!
//! The vendor host that resolves to loopback is `localhost`, named by a test
//! vendor rule: its answer (127.0.0.1, ::1) comes from the system's hosts file,
//! unchanged, with no network. 10/8, 169.254.169.254 and the other ranges have
//! no offline name, so the classifier that refuses them is unit-tested in
//! `src/proxy/egress.rs` (the same function refuses `localhost` here).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use tokio::net::TcpListener;

mod support;

use support::http::*;
use support::vendor_env::{VendorEnv, ok_sink, rules, start};

const CANARY_VENDOR: &str = r#"
id = "canary"
name = "A vendor rule naming a host that resolves to loopback (SSRF suite)"
category = "support"
# Allowed on every route, the PHI routes included (the BAA guard).
baa = true
hosts = ["localhost"]
"#;

/// Listeners that count every connection made to them.
struct Canary {
    port: u16,
    hits: Arc<AtomicUsize>,
    /// Which of 127.0.0.1:443 and [::1]:443 could be bound (root, nothing else there).
    on_443: Vec<SocketAddr>,
}

impl Canary {
    async fn start() -> Canary {
        let hits = Arc::new(AtomicUsize::new(0));
        let main = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = main.local_addr().unwrap().port();
        let mut listeners = vec![main];
        let mut on_443 = Vec::new();
        for addr in ["127.0.0.1:443", "[::1]:443"] {
            if let Ok(l) = TcpListener::bind(addr).await {
                on_443.push(l.local_addr().unwrap());
                listeners.push(l);
            }
        }
        for l in listeners {
            let hits = hits.clone();
            tokio::spawn(async move {
                while let Ok((s, _)) = l.accept().await {
                    hits.fetch_add(1, Ordering::SeqCst);
                    drop(s);
                }
            });
        }
        Canary { port, hits, on_443 }
    }

    fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

async fn env_with_canary_vendor() -> VendorEnv {
    let site = |name: &str, text: String| {
        if name == "site.toml" {
            text.replace("allow = [\"zendesk\"]", "allow = [\"zendesk\", \"canary\"]")
        } else {
            text
        }
    };
    start(rules(site, &[("canary.toml", CANARY_VENDOR)]), ok_sink().await, |_| {}).await
}

/// First-party paths that try to name somewhere else than a host of the vendor's rule.
fn vendor_path_attacks(canary: u16) -> Vec<(&'static str, String)> {
    // Cyrillic `а` in place of the second `a`: what a look-alike registrant would buy.
    let lookalike = "static.zd\u{430}ssets.com";
    let punycode = url::Url::parse(&format!("https://{lookalike}/")).unwrap().host_str().unwrap().to_string();
    let encoded_idn: String =
        lookalike.bytes().map(|b| if b.is_ascii() { (b as char).to_string() } else { format!("%{b:02X}") }).collect();
    let c = canary;
    let cases: Vec<(&str, String)> = vec![
        ("host outside the rule", "/_tw/zendesk/evil.example/x".into()),
        ("rule host as a prefix", "/_tw/zendesk/static.zdassets.com.evil.example/x".into()),
        ("unknown vendor", "/_tw/nobody/static.zdassets.com/x".into()),
        ("IPv4 literal", "/_tw/zendesk/127.0.0.1/x".into()),
        ("IPv4 literal with port", format!("/_tw/zendesk/127.0.0.1:{c}/x")),
        ("IPv6 literal", "/_tw/zendesk/[::1]/x".into()),
        ("IPv6 literal with port", format!("/_tw/zendesk/[::1]:{c}/x")),
        ("IPv4-mapped IPv6", "/_tw/zendesk/[::ffff:127.0.0.1]/x".into()),
        ("decimal IPv4", "/_tw/zendesk/2130706433/x".into()),
        ("octal IPv4", "/_tw/zendesk/0177.0.0.1/x".into()),
        ("hex IPv4", "/_tw/zendesk/0x7f.1/x".into()),
        ("hex IPv4, one number", "/_tw/zendesk/0x7f000001/x".into()),
        ("metadata address", "/_tw/zendesk/169.254.169.254/latest/meta-data/".into()),
        ("IP literal on the canary vendor", "/_tw/canary/127.0.0.1/x".into()),
        ("port on a rule host", format!("/_tw/zendesk/static.zdassets.com:{c}/x")),
        ("userinfo before a rule host", "/_tw/zendesk/user:pw@static.zdassets.com/x".into()),
        ("rule host as userinfo", format!("/_tw/zendesk/static.zdassets.com@127.0.0.1:{c}/x")),
        ("encoded slash in the host", "/_tw/zendesk/static.zdassets.com%2F..%2F127.0.0.1/x".into()),
        ("encoded slash, lowercase", "/_tw/zendesk/static.zdassets.com%2f@127.0.0.1/x".into()),
        ("encoded colon in the host", format!("/_tw/zendesk/127.0.0.1%3A{c}/x")),
        ("encoded dot segment as the host", "/_tw/zendesk/%2e%2e/127.0.0.1/x".into()),
        ("encoded dot segments in the path", "/_tw/zendesk/static.zdassets.com/a/%2e%2e/%2E%2E/x".into()),
        ("raw dot segments in the path", "/_tw/zendesk/static.zdassets.com/a/../../x".into()),
        ("encoded backslash in the host", "/_tw/zendesk/127.0.0.1%5cstatic.zdassets.com/x".into()),
        ("encoded backslashes in the path", "/_tw/zendesk/static.zdassets.com/%5c%5c127.0.0.1/x".into()),
        ("trailing dot", "/_tw/zendesk/static.zdassets.com./x".into()),
        ("trailing dot on the canary host", "/_tw/canary/localhost./x".into()),
        ("mixed-case host", "/_tw/zendesk/Static.ZDassets.com/x".into()),
        ("mixed-case canary host", "/_tw/canary/LOCALHOST/x".into()),
        ("mixed-case vendor id", "/_tw/ZENDESK/static.zdassets.com/x".into()),
        ("IDN look-alike, punycode", format!("/_tw/zendesk/{punycode}/x")),
        ("IDN look-alike, percent-encoded UTF-8", format!("/_tw/zendesk/{encoded_idn}/x")),
        ("empty host", "/_tw/zendesk//x".into()),
    ];
    cases
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_first_party_path_naming_another_host_is_refused_and_the_canary_sees_nothing() {
    let canary = Canary::start().await;
    let env = env_with_canary_vendor().await;
    let cases = vendor_path_attacks(canary.port);
    let mut let_through = Vec::new();
    for (what, target) in &cases {
        let r = get(env.proxy, target, &["Accept: */*"]).await;
        if !matches!(r.status, 400 | 404) {
            let_through.push(format!("{what} ({target}): {}", r.status));
        }
    }
    assert!(let_through.is_empty(), "{} of {} not refused: {let_through:#?}", let_through.len(), cases.len());
    assert_eq!(env.sink.count(), 0, "{:?}", env.sink.requests());
    assert_eq!(env.origin.count(), 0, "{:?}", env.origin.requests());
    assert_eq!(canary.hits(), 0, "the canary was reached");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_host_that_resolves_to_loopback_is_refused_before_any_connection() {
    let canary = Canary::start().await;
    let env = env_with_canary_vendor().await;
    let r = get(env.proxy, "/_tw/canary/localhost/latest/meta-data/", &["Accept: */*"]).await;
    assert_eq!(r.status, 502, "{}", r.summary());
    assert_eq!(env.first_party("canary", "private_address").await, 1);
    assert_eq!(env.first_party("canary", "upstream_error").await, 0);
    assert_eq!(canary.hits(), 0, "connected to loopback (canary on {:?} and port {})", canary.on_443, canary.port);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resolve_pin_is_the_one_way_to_reach_a_private_address() {
    // The TLS front of the suite is itself on 127.0.0.1: pinned, so reached.
    let env = env_with_canary_vendor().await;
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/x", &["Accept: */*"]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(env.sink.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vendor_redirect_to_an_inside_address_is_passed_back_not_followed() {
    let canary = Canary::start().await;
    let location = format!("http://127.0.0.1:{}/latest/meta-data/", canary.port);
    let sink = TestServer::fixed(cl_response("302 Found", &[("location", &location)], b"")).await;
    let site = |name: &str, text: String| {
        if name == "site.toml" {
            text.replace("allow = [\"zendesk\"]", "allow = [\"zendesk\", \"canary\"]")
        } else {
            text
        }
    };
    let env = start(rules(site, &[("canary.toml", CANARY_VENDOR)]), sink, |_| {}).await;
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/x", &[]).await;
    assert_eq!(r.status, 302, "{}", r.summary());
    assert_eq!(r.header("location"), Some(location.as_str()));
    assert_eq!(env.sink.count(), 1);
    assert_eq!(canary.hits(), 0, "tagwarden followed the redirect");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn absolute_form_host_header_tricks_and_connect_never_reach_the_place_they_name() {
    let canary = Canary::start().await;
    let env = env_with_canary_vendor().await;
    let c = canary.port;
    // Absolute-form on the first-party path: how a forward proxy is asked. Refused.
    for target in [
        format!("http://127.0.0.1:{c}/_tw/zendesk/static.zdassets.com/x"),
        "http://static.zdassets.com/_tw/zendesk/static.zdassets.com/x".to_string(),
    ] {
        let r = parse_response(&exchange(env.proxy, &request("GET", &target, &[])).await, false);
        assert_eq!(r.status, 400, "{target}: {}", r.summary());
    }
    // CONNECT: no tunnels.
    let connect = format!("CONNECT 127.0.0.1:{c} HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\n\r\n");
    let raw = exchange(env.proxy, connect.as_bytes()).await;
    let r = parse_response(&raw, false);
    assert!((400..500).contains(&r.status), "CONNECT: {}", r.summary());
    // The vendor host comes from the path, never from Host.
    let host_trick =
        format!("GET /_tw/zendesk/static.zdassets.com/x HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\nConnection: close\r\n\r\n");
    let r = parse_response(&exchange(env.proxy, host_trick.as_bytes()).await, false);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(env.sink.requests()[0].header("host"), Some("static.zdassets.com"));
    assert_eq!(env.vendor.server_names(), ["static.zdassets.com"]);
    // Off the first-party path, absolute-form and Host only ever reach the configured origin.
    for raw in [
        format!("GET http://127.0.0.1:{c}/ HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\nConnection: close\r\n\r\n"),
        format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{c}\r\nConnection: close\r\n\r\n"),
        "GET http://169.254.169.254/latest/meta-data/ HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n"
            .to_string(),
    ] {
        let r = parse_response(&exchange(env.proxy, raw.as_bytes()).await, false);
        assert!(r.status == 200 || (400..500).contains(&r.status), "{raw:?}: {}", r.summary());
        if r.status == 200 {
            assert_eq!(r.text(), "from the configured origin\n");
        }
    }
    assert_eq!(canary.hits(), 0, "the canary was reached");
}
