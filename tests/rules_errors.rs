//! Rule loading: every kind of mistake in `site.toml` or a vendor file is an
//! error that names the file, the line and column of the offending text, and
//! the key path; a load reports every mistake, not just the first; the shipped
//! rules load; `tagwarden check` prints a summary or `file:line:col: message`
//! lines and exits accordingly.
//!
//! Each test starts from a small valid rules directory (three vendors, two
//! routes) in a tempdir and injects exactly one mistake.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::common;
use support::rules_dir::RulesDir;

use std::path::Path;
use std::process::Command;

use tagwarden::rules::schema::VendorFile;
use tagwarden::rules::{RuleError, RuleErrors, SourceFile, load_dir, read_dir};

const SITE: &str = r#"[site]
name = "test-clinic"
first_party = []
first_party_prefix = "/_tw"
mode = "enforce"

[consent]
cookie = "tw_consent"
default = ["essential", "support"]

[[route]]
path = "/patient/**"
allow = ["zendesk"]

[[route]]
path = "/**"
allow = ["zendesk", "acme_analytics"]
"#;

const ZENDESK: &str = r#"id = "zendesk"
name = "Zendesk Web Widget"
category = "support"
baa = true
hosts = ["static.zdassets.com", "*.zendesk.com"]
inline_signatures = ['zESettings']
"#;

const ACME_ANALYTICS: &str = r#"id = "acme_analytics"
name = "Acme Analytics"
category = "analytics"
hosts = ["cdn.acme-analytics.example"]
urls = ["shared.example/acme/**"]
inline_signatures = ['acmeTrack\(']
"#;

const BEACON: &str = r#"id = "beacon"
name = "Beacon Ads"
category = "advertising"
hosts = ["px.beacon.example"]
"#;

/// The valid rules directory these tests start from.
fn valid() -> RulesDir {
    RulesDir::with(&[
        ("site.toml", SITE),
        ("vendors/zendesk.toml", ZENDESK),
        ("vendors/acme_analytics.toml", ACME_ANALYTICS),
        ("vendors/beacon.toml", BEACON),
    ])
}

/// 1-based line and column (in characters) of the one occurrence of `needle` in `text`.
fn position_of(text: &str, needle: &str) -> (usize, usize) {
    assert_eq!(text.matches(needle).count(), 1, "`{needle}` must occur once in:\n{text}");
    let offset = text.find(needle).unwrap();
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before[before.rfind('\n').map_or(0, |i| i + 1)..].chars().count() + 1;
    (line, column)
}

/// Asserts file, line and column (those of `needle` in the file's text) and that the
/// message contains every one of `words` (key path first).
fn assert_error(err: &RuleError, rules: &RulesDir, rel: &str, needle: &str, words: &[&str]) {
    let text = std::fs::read_to_string(rules.file(rel)).unwrap();
    let (line, column) = position_of(&text, needle);
    assert_eq!(err.file, rules.file(rel), "file of: {err}");
    assert_eq!((err.line, err.column), (line, column), "position of `{needle}` in {rel}, for: {err}");
    for w in words {
        assert!(err.message.contains(w), "message should name `{w}`: {err}");
    }
}

// === the starting point ===

#[test]
fn the_starting_rules_directory_is_valid() {
    let rules = valid();
    let policy = load_dir(rules.path()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(policy.vendors.len(), 3);
    assert_eq!(policy.routes.len(), 2);
}

#[test]
fn the_shipped_rules_load() {
    let policy = common::shipped_policy();
    assert!(policy.vendor_by_id("zendesk").is_some());
    assert!(!policy.routes.is_empty());
}

// === syntax and unknown keys ===

#[test]
fn toml_syntax_error_points_at_where_the_parser_gave_up() {
    let rules = valid();
    let text = rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"advertising");
    let err = rules.only_error();
    // The unterminated string runs to the end of its line, where the error is.
    let (line, column) = position_of(&text, "category = \"advertising");
    let line_len = "category = \"advertising".len();
    assert_eq!(err.file, rules.file("vendors/beacon.toml"));
    assert_eq!((err.line, err.column), (line, column + line_len), "{err}");
}

#[test]
fn duplicate_key_is_an_error_at_the_second_occurrence_naming_the_key() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"advertising\"\nname = \"Again\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "name = \"Again\"", &["name"]);
}

#[test]
fn value_of_the_wrong_type_is_an_error_at_the_value_naming_the_key() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "hosts = \"px.beacon.example\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"px.beacon.example\"", &["hosts"]);
}

#[test]
fn missing_required_key_is_an_error_naming_the_key() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "category = \"advertising\"\n", "");
    let err = rules.only_error();
    assert_eq!(err.file, rules.file("vendors/beacon.toml"));
    assert!(err.line >= 1 && err.column >= 1, "{err}");
    assert!(err.message.contains("`category`"), "{err}");
}

#[test]
fn unknown_key_in_site_section_is_an_error_at_the_key() {
    let rules = valid();
    rules.edit("site.toml", "name = \"test-clinic\"", "name = \"test-clinic\"\nnmae = \"typo\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "nmae", &["site.nmae"]);
}

#[test]
fn unknown_key_in_vendor_file_is_an_error_at_the_key() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"advertising\"\nbba = true");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "bba", &["bba"]);
}

#[test]
fn unknown_key_in_vendor_first_party_section_is_an_error_at_the_key() {
    let rules = valid();
    let text = format!("{ZENDESK}\n[first_party]\nmethods = [\"GET\"]\nforward_cookie = []\n");
    rules.write("vendors/zendesk.toml", &text);
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/zendesk.toml", "forward_cookie ", &["first_party.forward_cookie"]);
}

#[test]
fn unknown_key_in_route_is_an_error_at_the_key() {
    let rules = valid();
    rules.edit("site.toml", "allow = [\"zendesk\"]\n", "alow = [\"zendesk\"]\n");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "alow", &["route[0].alow"]);
}

// === vendor identity ===

#[test]
fn vendor_id_must_equal_the_file_name() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "id = \"beacon\"", "id = \"beacon_ads\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"beacon_ads\"", &["id:", "beacon_ads", "beacon"]);
}

#[test]
fn second_file_reusing_a_vendor_id_is_an_error_at_its_id() {
    // Two files cannot share a stem, so a reused id shows up as a name mismatch.
    let rules = valid();
    rules.write("vendors/zendesk_chat.toml", &ZENDESK.replace("*.zendesk.com", "*.zopim.com"));
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/zendesk_chat.toml", "\"zendesk\"", &["id:", "zendesk_chat"]);
}

#[test]
fn duplicate_vendor_id_in_compiled_sources_is_an_error_at_the_second_id() {
    // rules::compile also refuses duplicates when sources come from elsewhere than a directory.
    let rules = valid();
    let mut sources = read_dir(rules.path()).unwrap_or_else(|e| panic!("{e}"));
    let text = BEACON.replace("px.beacon.example", "px2.beacon.example");
    let vendor: VendorFile = toml::from_str(&text).unwrap();
    let path = rules.file("vendors/beacon_copy.toml");
    sources.vendors.push((SourceFile { path: path.clone(), text: text.clone() }, vendor));
    let errors = match tagwarden::rules::compile(&sources) {
        Ok(_) => panic!("duplicate id compiled"),
        Err(RuleErrors(errors)) => errors,
    };
    assert_eq!(errors.len(), 1, "{}", RuleErrors(errors.clone()));
    let (line, column) = position_of(&text, "\"beacon\"");
    assert_eq!(errors[0].file, path);
    assert_eq!((errors[0].line, errors[0].column), (line, column), "{}", errors[0]);
    assert!(errors[0].message.starts_with("id:"), "{}", errors[0]);
    assert!(errors[0].message.contains("duplicate vendor id `beacon`"), "{}", errors[0]);
}

#[test]
fn vendor_id_must_be_lowercase_letters_digits_and_underscore() {
    let rules = valid();
    std::fs::remove_file(rules.file("vendors/beacon.toml")).unwrap();
    rules.write("vendors/Beacon.toml", &BEACON.replace("id = \"beacon\"", "id = \"Beacon\""));
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/Beacon.toml", "\"Beacon\"", &["id:", "Beacon"]);
}

// === routes ===

#[test]
fn unknown_vendor_in_route_allow_is_an_error_at_the_id() {
    let rules = valid();
    rules.edit("site.toml", "allow = [\"zendesk\", \"acme_analytics\"]", "allow = [\"zendesk\", \"intercom\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"intercom\"", &["route[1].allow[1]", "intercom"]);
}

#[test]
fn invalid_route_glob_is_an_error_at_the_path() {
    let rules = valid();
    rules.edit("site.toml", "path = \"/patient/**\"", "path = \"/a/[\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"/a/[\"", &["route[0].path", "glob"]);
}

#[test]
fn relative_route_path_is_an_error_at_the_path() {
    let rules = valid();
    rules.edit("site.toml", "path = \"/patient/**\"", "path = \"patient/**\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"patient/**\"", &["route[0].path", "must start with `/`"]);
}

#[test]
fn missing_route_is_an_error_about_site_toml() {
    let rules = valid();
    let routes_start = SITE.find("[[route]]").unwrap();
    rules.write("site.toml", &SITE[..routes_start]);
    let err = rules.only_error();
    assert_eq!(err.file, rules.file("site.toml"));
    // A missing section has no position: 0:0 means "the file as a whole".
    assert_eq!((err.line, err.column), (0, 0), "{err}");
    assert!(err.message.starts_with("route:"), "{err}");
}

#[test]
fn invalid_consent_cookie_name_is_an_error_at_the_value() {
    let rules = valid();
    rules.edit("site.toml", "cookie = \"tw_consent\"", "cookie = \"tw consent\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"tw consent\"", &["consent.cookie"]);
}

// === vendor contents ===

#[test]
fn invalid_inline_signature_regex_is_an_error_at_the_pattern() {
    let rules = valid();
    rules.edit("vendors/acme_analytics.toml", "'acmeTrack\\('", "'acmeTrack\\(', '(unclosed'");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "'(unclosed'", &["inline_signatures[1]", "regex"]);
}

#[test]
fn unknown_category_is_an_error_listing_the_valid_ones() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"ads\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"ads\"", &["category:", "`ads`", "advertising", "support"]);
}

#[test]
fn unknown_consent_category_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("site.toml", "default = [\"essential\", \"support\"]", "default = [\"essential\", \"suport\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"suport\"", &["consent.default[1]", "suport"]);
}

#[test]
fn unknown_or_essential_gpc_opt_out_category_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("site.toml", "[consent]\n", "[consent]\ngpc_opt_out = [\"analytics\", \"adverts\", \"essential\"]\n");
    let errors = rules.errors();
    assert_eq!(errors.len(), 2, "{}", RuleErrors(errors.clone()));
    assert_error(&errors[0], &rules, "site.toml", "\"adverts\"", &["consent.gpc_opt_out[1]", "unknown category"]);
    assert_error(
        &errors[1],
        &rules,
        "site.toml",
        "\"essential\"]\n",
        &["consent.gpc_opt_out[2]", "cannot be opted out"],
    );
}

#[test]
fn bad_host_pattern_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "hosts = [\"px.beacon.example/pixel\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"px.beacon.example/pixel\"", &["hosts[0]"]);
}

#[test]
fn wildcard_in_the_middle_of_a_host_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "hosts = [\"px.*.example\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"px.*.example\"", &["hosts[0]"]);
}

#[test]
fn bad_first_party_host_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("site.toml", "first_party = []", "first_party = [\"clinic.example\", \"https://cdn.clinic.example\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "site.toml", "\"https://cdn.clinic.example\"", &["site.first_party[1]"]);
}

#[test]
fn url_pattern_with_a_wildcard_host_is_an_error_at_the_entry() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "urls = [\"*.beacon.example/px\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/beacon.toml", "\"*.beacon.example/px\"", &["urls[0]", "exact host"]);
}

#[test]
fn vendor_without_hosts_or_urls_is_an_error_about_its_file() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]\n", "");
    let err = rules.only_error();
    assert_eq!(err.file, rules.file("vendors/beacon.toml"));
    assert_eq!((err.line, err.column), (0, 0), "{err}");
    assert!(err.message.starts_with("hosts:"), "{err}");
}

#[test]
fn invalid_vendor_allowed_on_a_route_is_reported_once() {
    // The vendor file exists; its mistake is the error, not an "unknown vendor" in each route.
    let rules = valid();
    rules.edit("vendors/acme_analytics.toml", "category = \"analytics\"", "category = \"analytix\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "\"analytix\"", &["category:"]);
}

// === overlapping claims between vendors ===

#[test]
fn same_host_claimed_by_two_vendors_is_an_error() {
    let rules = valid();
    // acme_analytics sorts before beacon: the error is reported in the first file.
    rules.edit(
        "vendors/acme_analytics.toml",
        "hosts = [\"cdn.acme-analytics.example\"]",
        "hosts = [\"px.beacon.example\"]",
    );
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "\"px.beacon.example\"", &["hosts[0]", "beacon"]);
}

#[test]
fn suffix_host_covering_another_vendors_exact_host_is_an_error() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "hosts = [\"help.zendesk.com\"]");
    let err = rules.only_error();
    // beacon sorts before zendesk; its exact host lies under zendesk's `*.zendesk.com`.
    assert_error(
        &err,
        &rules,
        "vendors/beacon.toml",
        "\"help.zendesk.com\"",
        &["hosts[0]", "*.zendesk.com", "zendesk"],
    );
}

#[test]
fn suffix_host_in_an_earlier_vendor_covering_a_later_vendors_exact_host_is_an_error() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "hosts = [\"*.zdassets.com\"]");
    let err = rules.only_error();
    assert_error(
        &err,
        &rules,
        "vendors/beacon.toml",
        "\"*.zdassets.com\"",
        &["hosts[0]", "static.zdassets.com", "zendesk"],
    );
}

#[test]
fn url_claim_conflicts_with_a_later_vendors_whole_host_claim() {
    let rules = valid();
    // acme_analytics (first) claims shared.example/acme/**; zendesk (later) claims all of shared.example.
    rules.edit("vendors/zendesk.toml", "\"*.zendesk.com\"", "\"*.zendesk.com\", \"shared.example\"");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "\"shared.example/acme/**\"", &["urls[0]", "zendesk"]);
}

#[test]
fn whole_host_claim_conflicts_with_a_later_vendors_url_claim() {
    let rules = valid();
    // acme_analytics (first) claims all of shared.example; beacon (later) claims a path on it.
    rules.edit(
        "vendors/acme_analytics.toml",
        "hosts = [\"cdn.acme-analytics.example\"]",
        "hosts = [\"shared.example\"]",
    );
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "urls = [\"shared.example/px/**\"]");
    let err = rules.only_error();
    // acme_analytics now also claims its own shared.example/acme/**, which is fine: one vendor.
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "\"shared.example\"", &["hosts[0]", "beacon"]);
}

#[test]
fn identical_url_pattern_in_two_vendors_is_an_error() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "urls = [\"shared.example/acme/**\"]");
    let err = rules.only_error();
    assert_error(&err, &rules, "vendors/acme_analytics.toml", "\"shared.example/acme/**\"", &["urls[0]", "beacon"]);
}

#[test]
fn different_paths_on_a_shared_host_are_not_a_conflict() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "hosts = [\"px.beacon.example\"]", "urls = [\"shared.example/beacon/**\"]");
    let policy = load_dir(rules.path()).unwrap_or_else(|e| panic!("{e}"));
    let (acme, _) = policy.vendor_by_id("acme_analytics").unwrap();
    let (beacon, _) = policy.vendor_by_id("beacon").unwrap();
    assert_eq!(policy.vendor_for("shared.example", "/acme/a.js"), Some(acme));
    assert_eq!(policy.vendor_for("shared.example", "/beacon/p.gif"), Some(beacon));
    assert_eq!(policy.vendor_for("shared.example", "/other"), None);
}

// === several mistakes ===

#[test]
fn every_semantic_mistake_in_one_load_is_reported() {
    let rules = valid();
    rules.edit("site.toml", "path = \"/patient/**\"", "path = \"/a/[\"");
    rules.edit("site.toml", "allow = [\"zendesk\", \"acme_analytics\"]", "allow = [\"zendesk\", \"intercom\"]");
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"ads\"");
    rules.edit("vendors/acme_analytics.toml", "'acmeTrack\\('", "'(unclosed'");
    let errors = rules.errors();
    let summary = RuleErrors(errors.clone()).to_string();
    assert_eq!(errors.len(), 4, "{summary}");
    for (rel, needle) in [
        ("site.toml", "\"/a/[\""),
        ("site.toml", "\"intercom\""),
        ("vendors/beacon.toml", "\"ads\""),
        ("vendors/acme_analytics.toml", "'(unclosed'"),
    ] {
        let text = std::fs::read_to_string(rules.file(rel)).unwrap();
        let (line, column) = position_of(&text, needle);
        assert!(
            errors.iter().any(|e| e.file == rules.file(rel) && e.line == line && e.column == column),
            "no error at {rel}:{line}:{column} (`{needle}`) in:\n{summary}"
        );
    }
}

#[test]
fn every_file_with_a_syntax_or_key_mistake_is_reported() {
    let rules = valid();
    rules.edit("site.toml", "name = \"test-clinic\"", "nmae = \"test-clinic\"\nname = \"x\"");
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"advertising");
    rules.edit("vendors/zendesk.toml", "baa = true", "bba = true");
    let errors = rules.errors();
    let summary = RuleErrors(errors.clone()).to_string();
    assert_eq!(errors.len(), 3, "{summary}");
    for rel in ["site.toml", "vendors/beacon.toml", "vendors/zendesk.toml"] {
        assert!(errors.iter().any(|e| e.file == rules.file(rel)), "no error for {rel} in:\n{summary}");
    }
}

// === tagwarden check ===

fn check(dir: &Path) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden")).arg("check").arg("--rules").arg(dir).output().unwrap()
}

#[test]
fn check_prints_one_summary_line_and_exits_0_on_the_shipped_rules() {
    let out = check(&common::repo().join("rules"));
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert_eq!(out.status.code(), Some(0), "stderr: {}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(stdout.lines().count(), 1, "{stdout}");
    assert!(stdout.starts_with("ok: site demo-clinic"), "{stdout}");
    assert!(stdout.contains("vendors") && stdout.contains("routes"), "{stdout}");
    assert!(out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stderr));
}

#[test]
fn check_exits_1_with_located_errors_on_stderr_for_a_broken_dir() {
    let rules = valid();
    rules.edit("vendors/beacon.toml", "category = \"advertising\"", "category = \"ads\"");
    rules.edit("site.toml", "allow = [\"zendesk\"]\n", "allow = [\"zendeks\"]\n");
    let out = check(rules.path());
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
    let lines: Vec<&str> = stderr.lines().collect();
    // One `file:line:col: message` line per error, then the count.
    assert_eq!(lines.len(), 3, "{stderr}");
    let beacon = rules.file("vendors/beacon.toml");
    let site = rules.file("site.toml");
    let (bl, bc) = position_of(&std::fs::read_to_string(&beacon).unwrap(), "\"ads\"");
    let (sl, sc) = position_of(&std::fs::read_to_string(&site).unwrap(), "\"zendeks\"");
    let beacon_prefix = format!("{}:{bl}:{bc}: category:", beacon.display());
    let site_prefix = format!("{}:{sl}:{sc}: route[0].allow[0]:", site.display());
    assert!(lines[..2].iter().any(|l| l.starts_with(&beacon_prefix)), "no `{beacon_prefix}` line in:\n{stderr}");
    assert!(lines[..2].iter().any(|l| l.starts_with(&site_prefix)), "no `{site_prefix}` line in:\n{stderr}");
    assert!(lines[2].starts_with("2 error(s)"), "{stderr}");
}
