//! `tagwarden diff`: a rule change previewed on the shared corpus of real pages.
//! The change allows one more vendor (Google Tag Manager on `/**`, with its
//! `tag_manager` category granted by default, so the allow takes effect); the text
//! report is compared with `tests/golden/diff/allow_google_tag_manager.txt`
//! (`TAGWARDEN_BLESS=1` rewrites it). Invalid rules fail with `check`'s located
//! errors; identical rules change nothing; `--json` carries the same totals.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A copy of the shipped rules with `site.toml` edited by `edit`.
fn edited_rules(edit: impl FnOnce(String) -> String) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let from = repo().join("rules");
    std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
    let site = std::fs::read_to_string(from.join("site.toml")).unwrap();
    std::fs::write(dir.path().join("site.toml"), edit(site)).unwrap();
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("vendors").join(e.file_name())).unwrap();
    }
    dir
}

fn allowing_google_tag_manager() -> tempfile::TempDir {
    edited_rules(|site| {
        let from = "path = \"/**\"\nallow = [\"zendesk\"]";
        assert_eq!(site.matches(from).count(), 1);
        site.replace(from, "path = \"/**\"\nallow = [\"zendesk\", \"google_tag_manager\"]").replace(
            "default = [\"essential\", \"support\"]",
            "default = [\"essential\", \"support\", \"tag_manager\"]",
        )
    })
}

fn diff(from: &Path, to: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tagwarden"))
        .arg("diff")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .args(extra)
        .arg(support::corpus::dir())
        .output()
        .unwrap()
}

#[test]
fn allowing_one_more_vendor_reports_every_changed_construct_on_the_corpus() {
    let to = allowing_google_tag_manager();
    let out = diff(&repo().join("rules"), to.path(), &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success(), "{}{stdout}", String::from_utf8_lossy(&out.stderr));
    let golden = repo().join("tests/golden/diff/allow_google_tag_manager.txt");
    if std::env::var("TAGWARDEN_BLESS").is_ok_and(|v| v == "1") {
        std::fs::create_dir_all(golden.parent().unwrap()).unwrap();
        std::fs::write(&golden, &stdout).unwrap();
    }
    let expected = std::fs::read_to_string(&golden).unwrap();
    assert_eq!(stdout, expected, "TAGWARDEN_BLESS=1 rewrites {}", golden.display());
    assert!(
        stdout.contains(
            "google_tag_manager iframe www.googletagmanager.com: removed (not_allowed_on_route) → first_party"
        )
    );
}

#[test]
fn identical_rules_change_nothing() {
    let rules = repo().join("rules");
    let out = diff(&rules, &rules, &[]);
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(out.status.success());
    let pages = std::fs::read_dir(support::corpus::dir()).unwrap().count();
    assert_eq!(
        stdout,
        format!("summary: {pages} pages, 0 changed, 0 constructs change decision, 0 CSP directives change, 0 errors\n")
    );
}

#[test]
fn json_output_carries_the_pages_and_the_same_totals() {
    let to = allowing_google_tag_manager();
    let out = diff(&repo().join("rules"), to.path(), &["--json"]);
    assert!(out.status.success());
    let doc: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let pages = doc["pages"].as_array().unwrap();
    let summary = &doc["summary"];
    assert_eq!(summary["pages_changed"].as_u64().unwrap() as usize, pages.len());
    let counted: u64 =
        pages.iter().flat_map(|p| p["changes"].as_array().unwrap()).map(|c| c["count"].as_u64().unwrap()).sum();
    assert_eq!(summary["constructs_changed"].as_u64().unwrap(), counted);
    assert!(counted > 0);
    assert_eq!(pages[0]["changes"][0]["after"], "first_party", "{}", pages[0]);
}

#[test]
fn invalid_new_rules_fail_with_located_errors_before_any_page_is_read() {
    let to = edited_rules(|site| site.replacen("allow = [\"zendesk\"]", "allow = [\"intercom\"]", 1));
    let out = diff(&repo().join("rules"), to.path(), &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(out.stdout.is_empty(), "no report on invalid rules");
    let site = to.path().join("site.toml");
    assert!(stderr.contains(&format!("{}:", site.display())), "{stderr}");
    assert!(stderr.contains("route[0].allow[0]: vendor `intercom` has no BAA"), "{stderr}");
    assert!(stderr.contains("(--to)"), "{stderr}");
}
