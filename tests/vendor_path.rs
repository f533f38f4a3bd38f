#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Minimum necessary to the vendor, end to end: telemetry paths a vendor rule
//! blocks are answered here and never sent; the page the visitor is on (from
//! the same-origin `Referer`) is removed from the query and the body sent to
//! the vendor; nothing that identifies the visitor, the page or the site
//! travels in the headers. The vendor is reached over TLS by name, as in
//! production (`support/tls_vendor.rs`).

mod support;

use support::http::*;
use support::vendor_env::{ok_sink, rules, start};

/// The page the visitor is on; its path names a condition.
const PAGE: &str = "https://clinic.example/conditions/hiv-care?visit=42";
const REFERER: &str = "Referer: https://clinic.example/conditions/hiv-care?visit=42";

fn shipped() -> tempfile::TempDir {
    rules(|_, text| text, &[])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn telemetry_on_a_blocked_path_is_answered_204_and_never_sent() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    for target in [
        "/_tw/zendesk/clinic.zendesk.com/embeddable_blip?type=pageView&data=eyJ1cmwiOiJ4In0",
        "/_tw/zendesk/clinic.zendesk.com/embeddable_identify",
        "/_tw/zendesk/clinic.zendesk.com/Embeddable_Blip",
        "/_tw/zendesk/clinic.zendesk.com/embeddable%5Fblip",
        "/_tw/zendesk/clinic.zendesk.com//embeddable_blip",
    ] {
        let r = get(env.proxy, target, &[REFERER]).await;
        assert_eq!(r.status, 204, "{target}: {}", r.summary());
        assert!(r.after_head.is_empty(), "{target}");
    }
    assert_eq!(env.sink.count(), 0, "telemetry reached the vendor: {:?}", env.sink.requests());
    assert_eq!(env.first_party("zendesk", "blocked").await, 5);
    // Paths next to them are forwarded.
    let r = get(env.proxy, "/_tw/zendesk/clinic.zendesk.com/embeddable/config", &[]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(env.sink.count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_url_is_removed_from_the_query_sent_to_the_vendor() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let encoded = "https%3A%2F%2Fclinic.example%2Fconditions%2Fhiv-care%3Fvisit%3D42";
    let r = get(env.proxy, &format!("/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key={encoded}"), &[REFERER]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = env.sink.requests();
    assert_eq!(seen[0].target, "/ekr/snippet.js?key=https%3A%2F%2Fclinic.example%2F", "{seen:?}");
}

/// A POST whose body names the page in a JSON-escaped URL, a raw path and a percent-encoded
/// URL, sent chunked with the page URL split across chunks.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_page_path_and_query_are_removed_from_the_body_sent_to_the_vendor() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let body = format!(
        r#"{{"url":"{}","path":"/conditions/hiv-care","referrer":"{}","text":"my question"}}"#,
        PAGE.replace('/', "\\/"),
        PAGE.replace(':', "%3A").replace('/', "%2F").replace('?', "%3F").replace('=', "%3D"),
    );
    let (a, b) = body.split_at(body.find("hiv-care").unwrap() - 3);
    let mut req = format!(
        "POST /_tw/zendesk/clinic.zendesk.com/api/v2/requests.json HTTP/1.1\r\nHost: clinic.example\r\n{REFERER}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
    )
    .into_bytes();
    req.extend(chunk(a.as_bytes()));
    req.extend(chunk(b.as_bytes()));
    req.extend_from_slice(b"0\r\n\r\n");
    let r = parse_response(&exchange(env.proxy, &req).await, false);
    assert_eq!(r.status, 200, "{}", r.summary());
    let seen = env.sink.requests();
    let sent = String::from_utf8_lossy(&seen[0].body).to_string();
    assert_eq!(
        sent,
        r#"{"url":"https:\/\/clinic.example\/","path":"/","referrer":"https%3A%2F%2Fclinic.example%2F","text":"my question"}"#
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_form_body_with_a_content_length_is_scrubbed_and_sent_chunked() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let body = "app_id=x&referer=https%3A%2F%2Fclinic.example%2Fconditions%2Fhiv-care%3Fvisit%3D42&v=3";
    let req = format!(
        "POST /_tw/zendesk/clinic.zendesk.com/embeddable/ping HTTP/1.1\r\nHost: clinic.example\r\n{REFERER}\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = parse_response(&exchange(env.proxy, req.as_bytes()).await, false);
    assert_eq!(r.status, 200, "{}", r.summary());
    let s = &env.sink.requests()[0];
    assert_eq!(String::from_utf8_lossy(&s.body), "app_id=x&referer=https%3A%2F%2Fclinic.example%2F&v=3");
    assert!(!s.has_header("content-length"), "{:?}", s.headers);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_referer_from_another_site_names_no_page_of_this_one() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let body = "u=/conditions/hiv-care";
    let req = format!(
        "POST /_tw/zendesk/clinic.zendesk.com/x HTTP/1.1\r\nHost: clinic.example\r\nReferer: https://elsewhere.example/conditions/hiv-care\r\n\
         Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let r = parse_response(&exchange(env.proxy, req.as_bytes()).await, false);
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(String::from_utf8_lossy(&env.sink.requests()[0].body), body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_cookie_referer_origin_client_ip_or_forwarding_header_reaches_the_vendor() {
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let visitor = [
        "Cookie: session=abc123; tw_consent=essential,support; __zlcmid=vendor-id",
        REFERER,
        "Origin: https://clinic.example",
        "X-Forwarded-For: 6.6.6.6",
        "X-Forwarded-Host: clinic.example",
        "X-Forwarded-Proto: https",
        "Forwarded: for=6.6.6.6;proto=https",
        "X-Real-IP: 6.6.6.6",
        "True-Client-IP: 6.6.6.6",
        "CF-Connecting-IP: 6.6.6.6",
        "Authorization: Bearer patient-token",
    ];
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=k", &visitor).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    let s = &env.sink.requests()[0];
    for h in [
        "cookie",
        "referer",
        "origin",
        "x-forwarded-for",
        "x-forwarded-host",
        "x-forwarded-proto",
        "forwarded",
        "x-real-ip",
        "true-client-ip",
        "cf-connecting-ip",
        "authorization",
    ] {
        assert!(!s.has_header(h), "{h} reached the vendor: {:?}", s.headers);
    }
    let all = format!("{:?}", s.headers);
    assert!(!all.contains("6.6.6.6") && !all.contains("127.0.0.1") && !all.contains("hiv-care"), "{all}");
    assert_eq!(env.vendor.server_names(), ["static.zdassets.com"], "TLS with SNI = the vendor host");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forward_cookies_lets_only_the_cookies_it_lists_through() {
    let edit = |name: &str, text: String| {
        if name == "zendesk.toml" {
            text.replace("forward_cookies = []", "forward_cookies = [\"__zlcmid\"]")
        } else {
            text
        }
    };
    let env = start(rules(edit, &[]), ok_sink().await, |_| {}).await;
    let cookie = "Cookie: session=abc123; __zlcmid=vendor-id; tw_consent=essential,support";
    let r = get(env.proxy, "/_tw/zendesk/static.zdassets.com/ekr/snippet.js", &[cookie]).await;
    assert_eq!(r.status, 200, "{}", r.summary());
    assert_eq!(env.sink.requests()[0].header("cookie"), Some("__zlcmid=vendor-id"));
}

/// A rewritten vendor script has no length up front: it is sent chunked, so the
/// visitor's connection is kept for the next request (without framing the body
/// could only end by closing the connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rewritten_vendor_scripts_are_chunked_and_the_connection_is_kept() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let env = start(shipped(), ok_sink().await, |_| {}).await;
    let mut s = tokio::net::TcpStream::connect(env.proxy).await.unwrap();
    for round in 0..3 {
        let req = "GET /_tw/zendesk/static.zdassets.com/ekr/snippet.js HTTP/1.1\r\nHost: clinic.example\r\n\r\n";
        s.write_all(req.as_bytes()).await.unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        let complete = tokio::time::timeout(GUARD, async {
            while find(&got, b"\r\n0\r\n\r\n").is_none() {
                match s.read(&mut buf).await {
                    Ok(0) | Err(_) => return false,
                    Ok(n) => got.extend_from_slice(&buf[..n]),
                }
            }
            true
        })
        .await
        .expect("hang guard");
        let r = parse_response(&got, false);
        assert!(complete, "round {round}: the connection closed instead of ending the body: {}", r.summary());
        assert_eq!(r.status, 200);
        assert!(r.chunked() && r.text().contains("ok();"), "round {round}: {}", r.summary());
    }
    assert_eq!(env.sink.count(), 3);
}
