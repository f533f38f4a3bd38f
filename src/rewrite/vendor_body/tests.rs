#![allow(clippy::unwrap_used)]

use super::*;

fn map(site: &str) -> VendorUrlMap {
    let hosts = ["static.zdassets.com", "*.zdassets.com", "*.zendesk.com"]
        .iter()
        .map(|h| HostPattern::parse(h).unwrap())
        .collect();
    VendorUrlMap::new(&url::Url::parse(site).unwrap(), "/_tw", "zendesk", hosts).unwrap()
}

fn whole(input: &str) -> String {
    let mut r = VendorBody::new(map("https://clinic.example/appointments"));
    let mut out = r.write(input.as_bytes());
    out.extend(r.end());
    String::from_utf8(out).unwrap()
}

/// The same input fed in two pieces split at every byte.
fn split_everywhere(input: &str) -> String {
    let expected = whole(input);
    for at in 0..=input.len() {
        let mut r = VendorBody::new(map("https://clinic.example/appointments"));
        let mut out = r.write(&input.as_bytes()[..at]);
        out.extend(r.write(&input.as_bytes()[at..]));
        out.extend(r.end());
        assert_eq!(String::from_utf8(out).unwrap(), expected, "split at {at}");
    }
    // And one byte at a time.
    let mut r = VendorBody::new(map("https://clinic.example/appointments"));
    let mut out = Vec::new();
    for b in input.as_bytes() {
        out.extend(r.write(std::slice::from_ref(b)));
        assert!(r.buf.len() <= MAX_HELD + CONTEXT + 16, "held {} bytes", r.buf.len());
    }
    out.extend(r.end());
    assert_eq!(String::from_utf8(out).unwrap(), expected, "byte by byte");
    expected
}

#[test]
fn absolute_urls_of_the_vendors_hosts_go_first_party() {
    let js = r#"var u="https://ekr.zdassets.com/compose/"+key;x.open("GET",u);"#;
    assert_eq!(
        split_everywhere(js),
        r#"var u="https://clinic.example/_tw/zendesk/ekr.zdassets.com/compose/"+key;x.open("GET",u);"#
    );
}

#[test]
fn websocket_and_protocol_relative_urls() {
    let js = "new WebSocket('wss://widget-mediator.zendesk.com/socket?x=1'); s.src = '//static.zdassets.com/web_widget/x.js';";
    assert_eq!(
        split_everywhere(js),
        "new WebSocket('wss://clinic.example/_tw/zendesk/widget-mediator.zendesk.com/socket?x=1'); \
         s.src = '//clinic.example/_tw/zendesk/static.zdassets.com/web_widget/x.js';"
    );
}

#[test]
fn json_escaped_urls_stay_escaped() {
    let json = r#"{"base":"https:\/\/static.zdassets.com\/web_widget\/","rel":"\/\/ekr.zdassets.com\/x"}"#;
    assert_eq!(
        split_everywhere(json),
        r#"{"base":"https:\/\/clinic.example\/_tw\/zendesk\/static.zdassets.com\/web_widget\/","rel":"\/\/clinic.example\/_tw\/zendesk\/ekr.zdassets.com\/x"}"#
    );
}

#[test]
fn css_urls_and_an_http_site() {
    let mut r = VendorBody::new(map("http://127.0.0.1:8080/appointments"));
    let mut out =
        r.write(b"@font-face{src:url(https://static.zdassets.com/f.woff2)} a{b:url(\"//x.zendesk.com/i.png\")}");
    out.extend(r.end());
    assert_eq!(
        String::from_utf8(out).unwrap(),
        "@font-face{src:url(http://127.0.0.1:8080/_tw/zendesk/static.zdassets.com/f.woff2)} \
         a{b:url(\"//127.0.0.1:8080/_tw/zendesk/x.zendesk.com/i.png\")}"
    );
    assert_eq!(r.rewritten, 2);
}

#[test]
fn other_hosts_lookalikes_ports_and_comments_are_left_alone() {
    for js in [
        "fetch('https://www.google-analytics.com/collect')",
        "fetch('https://zdassets.com.evil.example/x')",
        "fetch('https://evilzendesk.com/x')",
        "fetch('https://static.zdassets.com:8443/x')",
        "a = b //static.zdassets.com is the CDN",
        "u = 'xhttps://static.zdassets.com/'",
        "u = 'https://user@static.zdassets.com/'",
        "",
        "//",
        "https:",
        "\\/\\/",
    ] {
        assert_eq!(split_everywhere(js), js, "{js}");
    }
}

#[test]
fn case_trailing_dots_and_end_of_input() {
    assert_eq!(
        split_everywhere("x='HTTPS://Static.ZDAssets.com./a'"),
        "x='https://clinic.example/_tw/zendesk/static.zdassets.com/a'"
    );
    assert_eq!(split_everywhere("https://ekr.zdassets.com"), "https://clinic.example/_tw/zendesk/ekr.zdassets.com");
}

#[test]
fn memory_stays_bounded_on_a_long_run_of_host_characters() {
    let mut r = VendorBody::new(map("https://clinic.example/"));
    let mut total = r.write(b"https://");
    for _ in 0..10_000 {
        total.extend(r.write(b"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
        assert!(r.buf.len() <= MAX_HELD + CONTEXT + 64, "held {} bytes", r.buf.len());
    }
    total.extend(r.end());
    assert_eq!(total.len(), 8 + 400_000);
}
