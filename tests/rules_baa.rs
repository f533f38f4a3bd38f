//! The BAA guard: a route that says `phi = true` may only allow vendors whose rule
//! says `baa = true`. Any other allowed vendor is a load error (so `tagwarden check`
//! fails) located at the vendor id in the route's `allow`, naming the key path,
//! the vendor and the missing `baa`. The shipped rules mark the patient routes.
//!
//! Each test starts from a small valid rules directory in a tempdir (the
//! `tests/rules_errors.rs` fixture, reduced) and changes one thing.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::Path;
use std::process::Command;

use support::rules_dir::RulesDir;

use tagwarden::rules::{RuleErrors, load_dir};

const SITE: &str = r#"[site]
name = "test-clinic"

[[route]]
path = "/patient/**"
allow = ["zendesk"]
phi = true

[[route]]
path = "/**"
allow = ["zendesk", "acme_analytics"]
"#;

const ZENDESK: &str = r#"id = "zendesk"
name = "Zendesk Web Widget"
category = "support"
baa = true
hosts = ["static.zdassets.com"]
"#;

const ACME_ANALYTICS: &str = r#"id = "acme_analytics"
name = "Acme Analytics"
category = "analytics"
hosts = ["cdn.acme-analytics.example"]
"#;

/// The valid rules directory these tests start from.
fn valid() -> RulesDir {
    RulesDir::with(&[
        ("site.toml", SITE),
        ("vendors/zendesk.toml", ZENDESK),
        ("vendors/acme_analytics.toml", ACME_ANALYTICS),
    ])
}

/// 1-based line and column of the one occurrence of `needle` in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(text.matches(needle).count(), 1, "`{needle}` must occur once in:\n{text}");
    let before = &text[..text.find(needle).unwrap()];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, column)
}

#[test]
fn a_phi_route_allowing_only_baa_vendors_loads() {
    let rules = valid();
    let policy = load_dir(rules.path()).unwrap_or_else(|e| panic!("{e}"));
    assert!(policy.routes[0].phi, "route[0] says phi = true");
    assert!(!policy.routes[1].phi, "phi defaults to false");
}

#[test]
fn a_phi_route_allowing_a_vendor_without_baa_is_an_error_at_the_vendor_id() {
    let rules = valid();
    rules.edit("site.toml", "allow = [\"zendesk\"]\nphi", "allow = [\"zendesk\", \"acme_analytics\" ]\nphi");
    let errors = rules.errors();
    assert_eq!(errors.len(), 1, "{}", RuleErrors(errors.clone()));
    let err = &errors[0];
    let text = std::fs::read_to_string(rules.file("site.toml")).unwrap();
    assert_eq!(err.file, rules.file("site.toml"));
    assert_eq!((err.line, err.column), position_of(&text, "\"acme_analytics\" ]"), "{err}");
    for word in ["route[0].allow[1]", "`acme_analytics`", "baa = true", "phi = true", "acme_analytics.toml"] {
        assert!(err.message.contains(word), "message should name `{word}`: {err}");
    }
}

#[test]
fn a_vendor_saying_baa_false_is_refused_on_a_phi_route_like_one_saying_nothing() {
    let rules = valid();
    rules.edit("vendors/zendesk.toml", "baa = true", "baa = false");
    let errors = rules.errors();
    assert_eq!(errors.len(), 1, "{}", RuleErrors(errors.clone()));
    assert!(errors[0].message.starts_with("route[0].allow[0]: vendor `zendesk` has no BAA"), "{}", errors[0]);
}

#[test]
fn every_vendor_without_baa_on_every_phi_route_is_reported() {
    let rules = valid();
    rules.edit("vendors/zendesk.toml", "baa = true\n", "");
    rules.edit("site.toml", "path = \"/**\"\n", "path = \"/**\"\nphi = true\n");
    let errors = rules.errors();
    let keys: Vec<&str> = errors.iter().map(|e| e.message.split(':').next().unwrap()).collect();
    assert_eq!(keys, ["route[0].allow[0]", "route[1].allow[0]", "route[1].allow[1]"], "{}", RuleErrors(errors.clone()));
}

#[test]
fn phi_false_allows_vendors_without_baa() {
    let rules = valid();
    rules.edit("site.toml", "path = \"/**\"\n", "path = \"/**\"\nphi = false\n");
    load_dir(rules.path()).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn phi_must_be_a_boolean() {
    let rules = valid();
    rules.edit("site.toml", "phi = true", "phi = \"yes\"");
    let errors = rules.errors();
    let text = std::fs::read_to_string(rules.file("site.toml")).unwrap();
    assert_eq!((errors[0].line, errors[0].column), position_of(&text, "\"yes\""), "{}", errors[0]);
    assert!(errors[0].message.starts_with("route[0].phi"), "{}", errors[0]);
}

#[test]
fn the_shipped_rules_mark_the_patient_routes_phi_and_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    let policy = load_dir(&dir).unwrap_or_else(|e| panic!("{e}"));
    let patient: Vec<_> = policy.routes.iter().filter(|r| r.pattern.starts_with("/patient")).collect();
    assert!(!patient.is_empty(), "the shipped rules have patient routes");
    for route in patient {
        assert!(route.phi, "{} must say phi = true", route.pattern);
        for idx in &route.allow {
            assert!(policy.vendor(*idx).baa, "{} allows {} without a BAA", route.pattern, policy.vendor(*idx).id);
        }
    }
}

#[test]
fn tagwarden_check_fails_with_the_located_baa_error() {
    let rules = valid();
    rules.edit("site.toml", "allow = [\"zendesk\"]\nphi", "allow = [\"acme_analytics\"]\nphi");
    let out =
        Command::new(env!("CARGO_BIN_EXE_tagwarden")).arg("check").arg("--rules").arg(rules.path()).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "check must fail: {stderr}");
    let text = std::fs::read_to_string(rules.file("site.toml")).unwrap();
    let (line, column) = position_of(&text, "\"acme_analytics\"]\nphi");
    let located = format!(
        "{}:{line}:{column}: route[0].allow[0]: vendor `acme_analytics` has no BAA",
        rules.file("site.toml").display()
    );
    assert!(stderr.contains(&located), "expected `{located}` in:\n{stderr}");
}
