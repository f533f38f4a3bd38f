#![allow(clippy::unwrap_used)]

use super::*;
use crate::policy::{ConsentSet, ScriptNonce};

fn rules(site: &str, vendors: &[(&str, &str)]) -> Policy {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("site.toml"), site).unwrap();
    std::fs::create_dir(dir.path().join("vendors")).unwrap();
    for (name, text) in vendors {
        std::fs::write(dir.path().join("vendors").join(format!("{name}.toml")), text).unwrap();
    }
    crate::rules::load_dir(dir.path()).unwrap()
}

const ZENDESK: &str = r#"
id = "zendesk"
name = "Zendesk"
category = "support"
hosts = ["static.zdassets.com", "*.zendesk.com"]
"#;

const MAPS: &str = r#"
id = "maps"
name = "Maps"
category = "essential"
serve = "direct"
hosts = ["maps.example.net"]
urls = ["tiles.example.net/v1/**"]
"#;

const SITE: &str = r#"
[site]
name = "t"
[consent]
default = ["essential", "support"]
[[route]]
path = "/map/**"
allow = ["maps", "zendesk"]
[route.csp]
connect_src = ["https://api.clinic.example"]
unsafe_hashes = ["sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="]
[[route]]
path = "/**"
allow = ["zendesk"]
"#;

fn page(p: &Policy, url: &str) -> PageContext {
    p.page(&url::Url::parse(url).unwrap(), ConsentSet::parse_list("support"))
}

#[test]
fn first_party_vendors_need_no_host_entries() {
    let p = rules(SITE, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let text = policy_for(&p, &page(&p, "http://www.clinic.example/patient/1"), "N0nce");
    assert_eq!(
        text,
        "default-src 'self' clinic.example *.clinic.example; \
         script-src 'self' 'nonce-N0nce' clinic.example *.clinic.example; \
         style-src 'self' 'unsafe-inline' clinic.example *.clinic.example; \
         img-src 'self' data: blob: clinic.example *.clinic.example; \
         font-src 'self' data: clinic.example *.clinic.example; \
         connect-src 'self' clinic.example *.clinic.example; \
         frame-src 'self' clinic.example *.clinic.example; \
         media-src 'self' blob: clinic.example *.clinic.example; \
         worker-src 'self' blob: clinic.example *.clinic.example; \
         manifest-src 'self' clinic.example *.clinic.example; \
         form-action 'self' clinic.example *.clinic.example; \
         base-uri 'self'; object-src 'none'; webrtc 'block'; report-uri /_tw/csp-report"
    );
}

#[test]
fn direct_vendors_route_additions_and_hashes_on_https() {
    let p = rules(SITE, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let text = policy_for(&p, &page(&p, "https://www.clinic.example/map/x"), "N");
    assert!(text.contains(
        "script-src 'self' 'nonce-N' 'unsafe-hashes' 'sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=' clinic.example *.clinic.example maps.example.net tiles.example.net;"
    ), "{text}");
    assert!(
        text.contains("connect-src 'self' clinic.example *.clinic.example maps.example.net tiles.example.net https://api.clinic.example;"),
        "{text}"
    );
    assert!(text.ends_with("report-uri /_tw/csp-report; report-to tagwarden"), "{text}");
    assert_eq!(
        reporting_endpoints(&p, &page(&p, "https://www.clinic.example/")).unwrap(),
        "tagwarden=\"/_tw/csp-report\", tagwarden-script-hosts=\"/_tw/csp-report?policy=script-hosts\""
    );
    assert!(
        !text.contains("unsafe-eval") && !text.contains("strict-dynamic") && !text.contains("script-src 'self' data:")
    );
}

#[test]
fn a_direct_vendor_without_consent_gets_no_entry() {
    let maps_ads = MAPS.replace("essential", "advertising");
    let p = rules(SITE, &[("zendesk", ZENDESK), ("maps", &maps_ads)]);
    let text = policy_for(&p, &page(&p, "https://www.clinic.example/map/x"), "N");
    assert!(!text.contains("maps.example.net"), "{text}");
}

#[test]
fn report_routes_get_the_report_only_header_without_nonce() {
    let site = SITE
        .replace("path = \"/**\"\nallow = [\"zendesk\"]", "path = \"/**\"\nallow = [\"zendesk\"]\nmode = \"report\"");
    let p = rules(&site, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let url = url::Url::parse("https://www.clinic.example/about").unwrap();
    let pg = p.page_with_csp(&url, ConsentSet::parse_list("support"), ScriptNonce::Fresh("N0nce".into()));
    assert_eq!(pg.mode, Mode::Report);
    assert_eq!(header_name(pg.mode), "content-security-policy-report-only");
    assert!(pg.csp_nonce.is_some() && !pg.strip_inline_handlers);
    assert!(policy_for(&p, &pg, "N0nce").contains("script-src 'self' 'unsafe-inline' "));
}

#[test]
fn origin_nonce_is_reused_and_no_nonce_attributes_are_added() {
    let p = rules(SITE, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let url = url::Url::parse("https://www.clinic.example/x").unwrap();
    let pg = p.page_with_csp(&url, ConsentSet::parse_list("support"), ScriptNonce::Origin);
    assert_eq!(pg.csp_nonce, None);
    assert!(pg.strip_inline_handlers);
}

#[test]
fn fresh_nonces_are_random_base64() {
    let a = new_nonce().unwrap();
    let b = new_nonce().unwrap();
    assert_ne!(a, b);
    assert_eq!(base64::engine::general_purpose::STANDARD.decode(&a).unwrap().len(), 16);
}

#[test]
fn both_report_formats_parse_and_queries_are_dropped() {
    let legacy = br#"{"csp-report":{"document-uri":"https://c.example/p?ssn=1","violated-directive":"img-src","effective-directive":"img-src","blocked-uri":"https://www.facebook.com/tr?id=1&cd[condition]=diabetes"}}"#;
    let v = parse_reports(legacy, 8);
    assert_eq!(v.len(), 1);
    assert_eq!(v[0].directive, "img-src");
    assert_eq!(v[0].blocked.as_ref().unwrap().as_str(), "https://www.facebook.com/tr");
    let modern = br#"[{"type":"csp-violation","body":{"effectiveDirective":"connect-src","blockedURL":"https://www.google-analytics.com/g/collect?v=2"}},
                     {"type":"deprecation","body":{}},
                     {"type":"csp-violation","body":{"effectiveDirective":"script-src-attr","blockedURL":"inline"}},
                     {"type":"csp-violation","body":{"effectiveDirective":"<script>x</script>","blockedURL":"https://evil.example/"}}]"#;
    let v = parse_reports(modern, 8);
    assert_eq!(v.len(), 3);
    assert_eq!(v[0].directive, "connect-src");
    assert_eq!(v[1].keyword, Some("inline"));
    assert_eq!(v[2].directive, "other");
    assert!(parse_reports(b"not json", 8).is_empty());
    let many = format!(
        "[{}]",
        vec![
            r#"{"type":"csp-violation","body":{"effectiveDirective":"img-src","blockedURL":"https://a.example/"}}"#;
            100
        ]
        .join(",")
    );
    assert_eq!(parse_reports(many.as_bytes(), 16).len(), 16);
}

#[test]
fn script_hosts_policy_names_the_same_hosts_and_no_nonce() {
    let p = rules(SITE, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let both = policies_for(&p, &page(&p, "http://www.clinic.example/patient/1"), "N0nce");
    assert_eq!(both.main, policy_for(&p, &page(&p, "http://www.clinic.example/patient/1"), "N0nce"));
    assert_eq!(
        both.script_hosts,
        "script-src 'self' 'unsafe-inline' clinic.example *.clinic.example; \
         worker-src 'self' blob: clinic.example *.clinic.example; \
         report-uri /_tw/csp-report?policy=script-hosts"
    );
}

#[test]
fn script_hosts_policy_on_https_with_direct_vendors_and_additions() {
    let site =
        SITE.replace("connect_src = [", "script_src = [\"https://cdn.clinic-partner.example\"]\nconnect_src = [");
    let p = rules(&site, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let both = policies_for(&p, &page(&p, "https://www.clinic.example/map/x"), "N");
    assert_eq!(
        both.script_hosts,
        "script-src 'self' 'unsafe-inline' clinic.example *.clinic.example maps.example.net tiles.example.net \
         https://cdn.clinic-partner.example; \
         worker-src 'self' blob: clinic.example *.clinic.example maps.example.net tiles.example.net; \
         report-uri /_tw/csp-report?policy=script-hosts; report-to tagwarden-script-hosts"
    );
    // Every host-source of the main policy's script-src is in the script-hosts policy's.
    let main_script = both.main.split("; ").find(|d| d.starts_with("script-src ")).unwrap();
    let hosts_script = both.script_hosts.split("; ").find(|d| d.starts_with("script-src ")).unwrap();
    for src in main_script.split(' ').skip(1).filter(|s| !s.starts_with('\'')) {
        assert!(hosts_script.split(' ').any(|h| h == src), "{src} missing from {hosts_script}");
    }
    for policy in [&both.main, &both.script_hosts] {
        assert!(!policy.contains("unsafe-eval") && !policy.contains("strict-dynamic"), "{policy}");
    }
    assert!(!both.script_hosts.contains("nonce-"), "{}", both.script_hosts);
}

#[test]
fn report_routes_get_both_policies_report_only() {
    let site = SITE
        .replace("path = \"/**\"\nallow = [\"zendesk\"]", "path = \"/**\"\nallow = [\"zendesk\"]\nmode = \"report\"");
    let p = rules(&site, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    let url = url::Url::parse("http://www.clinic.example/about").unwrap();
    let pg = p.page_with_csp(&url, ConsentSet::parse_list("support"), ScriptNonce::Fresh("N0nce".into()));
    let both = policies_for(&p, &pg, "N0nce");
    assert!(both.script_hosts.starts_with("script-src 'self' 'unsafe-inline' clinic.example"), "{}", both.script_hosts);
}

fn violation(directive: &'static str, blocked: &str) -> Violation {
    let (blocked, keyword) = super::blocked(blocked);
    Violation { directive, blocked, keyword }
}

#[test]
fn script_urls_count_from_the_script_hosts_policy_and_the_rest_from_the_main_one() {
    use ReportSource::{Main, ScriptHosts};
    // Refused by both policies (no nonce, unlisted host): counted once.
    let injected = violation("script-src-elem", "https://www.googletagmanager.com/gtag/js");
    assert!(!counts(&injected, Main) && counts(&injected, ScriptHosts));
    assert!(counts(&violation("script-src", "http://t.example/x.js"), ScriptHosts));
    // Inline code and eval: the main policy's report only (the script-hosts policy
    // allows inline code, and its eval report repeats the main one's).
    for keyword in ["inline", "eval"] {
        let v = violation("script-src-elem", keyword);
        assert!(counts(&v, Main) && !counts(&v, ScriptHosts), "{keyword}");
    }
    // data: scripts are refused by both; counted from the main policy.
    let data = violation("script-src-elem", "data:text/javascript,1");
    assert!(counts(&data, Main) && !counts(&data, ScriptHosts));
    // Other directives only ever come from the main policy.
    for d in ["img-src", "connect-src", "worker-src"] {
        let v = violation(d, "https://t.example/x");
        assert!(counts(&v, Main) && !counts(&v, ScriptHosts), "{d}");
    }
}

#[test]
fn the_report_source_is_read_from_the_query() {
    assert_eq!(ReportSource::from_query(None), ReportSource::Main);
    assert_eq!(ReportSource::from_query(Some("policy=script-hosts")), ReportSource::ScriptHosts);
    assert_eq!(ReportSource::from_query(Some("a=1&policy=script-hosts")), ReportSource::ScriptHosts);
    assert_eq!(ReportSource::from_query(Some("policy=script-hostsx")), ReportSource::Main);
}

#[test]
fn webrtc_block_is_sent_unless_the_route_allows_its_vendors() {
    let site = SITE.replace("unsafe_hashes = [", "webrtc = \"allowed_vendors\"\nunsafe_hashes = [");
    let p = rules(&site, &[("zendesk", ZENDESK), ("maps", MAPS)]);
    assert!(!policy_for(&p, &page(&p, "https://www.clinic.example/map/x"), "N").contains("webrtc"));
    assert!(policy_for(&p, &page(&p, "https://www.clinic.example/other"), "N").contains("; webrtc 'block'; "));
}
