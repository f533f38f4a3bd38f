#![allow(clippy::unwrap_used)]

use super::*;
use crate::policy::ConsentSet;

fn policy(site_extra: &str) -> Policy {
    let dir = tempfile::tempdir().unwrap();
    let site = format!(
        "[site]\nname = \"t\"\n{site_extra}\n[consent]\ndefault = [\"essential\", \"support\"]\n\
         [[route]]\npath = \"/video/**\"\nallow = [\"zendesk\", \"ads\"]\n[route.csp]\nwebrtc = \"allowed_vendors\"\n\
         [[route]]\npath = \"/**\"\nallow = [\"zendesk\"]\n"
    );
    std::fs::write(dir.path().join("site.toml"), site).unwrap();
    std::fs::create_dir(dir.path().join("vendors")).unwrap();
    std::fs::write(
        dir.path().join("vendors/zendesk.toml"),
        "id = \"zendesk\"\nname = \"Zendesk\"\ncategory = \"support\"\nhosts = [\"static.zdassets.com\", \"*.zendesk.com\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("vendors/ads.toml"),
        "id = \"ads\"\nname = \"Ads\"\ncategory = \"advertising\"\nserve = \"direct\"\nhosts = [\"ads.example\"]\n",
    )
    .unwrap();
    crate::rules::load_dir(dir.path()).unwrap()
}

fn page(p: &Policy, url: &str, consent: &str) -> PageContext {
    p.page(&url::Url::parse(url).unwrap(), ConsentSet::parse_list(consent))
}

#[test]
fn config_names_first_party_hosts_consented_vendors_and_the_webrtc_setting() {
    let p = policy("");
    let json: serde_json::Value =
        serde_json::from_str(&config_json(&p, &page(&p, "https://www.clinic.example/a", "support"))).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "prefix": "/_tw",
            "self": ["clinic.example", "*.clinic.example"],
            "vendors": [{"id": "zendesk", "hosts": ["static.zdassets.com", "*.zendesk.com"], "first_party": true}],
            "webrtc": "block",
        })
    );
}

#[test]
fn a_route_can_allow_webrtc_to_its_vendors_and_consent_still_applies() {
    let p = policy("");
    let without: serde_json::Value =
        serde_json::from_str(&config_json(&p, &page(&p, "https://clinic.example/video/1", "support"))).unwrap();
    assert_eq!(without["webrtc"], "allowed_vendors");
    assert_eq!(without["vendors"].as_array().unwrap().len(), 1, "advertising not consented: {without}");
    let with: serde_json::Value =
        serde_json::from_str(&config_json(&p, &page(&p, "https://clinic.example/video/1", "support,advertising")))
            .unwrap();
    assert_eq!(with["vendors"][1], serde_json::json!({"id": "ads", "hosts": ["ads.example"], "first_party": false}));
}

#[test]
fn the_site_setting_applies_where_the_route_is_silent() {
    let p = policy("[csp]\nwebrtc = \"allowed_vendors\"");
    let json: serde_json::Value =
        serde_json::from_str(&config_json(&p, &page(&p, "https://clinic.example/", "support"))).unwrap();
    assert_eq!(json["webrtc"], "allowed_vendors");
}

#[test]
fn the_tag_is_versioned_nonced_and_its_attribute_escaped() {
    let p = policy("");
    let t = tag(&p, &page(&p, "https://clinic.example/", "support"), Some("N0nce+/="));
    assert!(
        t.starts_with(&format!(
            "<script src=\"/_tw/shim.js?v={}\" nonce=\"N0nce+/=\" data-tw-shim data-tw=\"{{&quot;",
            version()
        )),
        "{t}"
    );
    assert!(!t[..t.len() - "</script>".len()].contains(['<', '>'].as_slice()) || t.matches('<').count() == 2, "{t}");
    assert!(t.ends_with("\"></script>"), "{t}");
    assert_eq!(version().len(), 12);
}
