//! Golden fixtures: `tests/golden/fixtures/<name>.src.html` rewritten at every chunk
//! plan (`support::common::chunk_plans`) must equal `<name>.expected.html` byte for byte and
//! record exactly the findings in `<name>.expected.findings` (one JSON object per
//! line, as `tagwarden rewrite --explain` prints them) — or, for documents that must
//! be refused, fail with the error in `<name>.expected.err`.
//!
//! The first line of a fixture is a header comment:
//! `<!-- fixture: <what it shows> | url: <page URL> | rules: shipped|golden | charset: <label> | max_inline_bytes: <n> -->`
//! Everything but the description is optional: the page URL defaults to
//! `https://clinic.example/patient/intake`, the rules to the shipped ones (`golden` is
//! `tests/golden/rules/site.toml` with the shipped vendors), the charset to none (BOM
//! and `<meta charset>` decide) and the limits to the defaults. A UTF-16 fixture
//! writes its header in UTF-16.
//!
//! `TAGWARDEN_BLESS=1` rewrites the expected files from the whole-document run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::path::PathBuf;
use std::sync::Arc;

use support::common::*;
use tagwarden::policy::Policy;
use tagwarden::rewrite::{HtmlStream, RewriteError, RewriteOptions, rewrite_document};

const DEFAULT_URL: &str = "https://clinic.example/patient/intake";

/// Every fixture; each has a test below.
const FIXTURES: &[&str] = &[
    "attributionsrc",
    "base-offsite",
    "consent-not-granted",
    "first-party-untouched",
    "gtag",
    "inline-over-limit",
    "meta-pixel",
    "report-mode",
    "srcdoc",
    "srcset",
    "style-urls",
    "unknown-third-parties",
    "utf16-bom",
    "windows-1252-meta-charset",
    "zendesk-snippet",
];

fn fixtures_dir() -> PathBuf {
    repo().join("tests/golden/fixtures")
}

fn blessing() -> bool {
    std::env::var("TAGWARDEN_BLESS").is_ok_and(|v| v == "1")
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Rules {
    Shipped,
    Golden,
}

struct Fixture {
    name: String,
    src: Vec<u8>,
    url: String,
    rules: Rules,
    charset: Option<String>,
    opts: RewriteOptions,
}

impl Fixture {
    fn load(name: &str) -> Fixture {
        assert!(FIXTURES.contains(&name), "{name} is not listed in FIXTURES");
        let src = read(&fixtures_dir().join(format!("{name}.src.html")));
        let text = match encoding_rs::Encoding::for_bom(&src) {
            Some((enc, bom)) => enc.decode_without_bom_handling(&src[bom..]).0.into_owned(),
            None => String::from_utf8_lossy(&src).into_owned(),
        };
        let first = text.lines().next().unwrap_or_default();
        let header = first
            .strip_prefix("<!-- fixture:")
            .and_then(|h| h.strip_suffix("-->"))
            .unwrap_or_else(|| panic!("{name}: first line must be `<!-- fixture: … -->`, got `{first}`"));
        let mut fixture = Fixture {
            name: name.to_string(),
            src: src.clone(),
            url: DEFAULT_URL.to_string(),
            rules: Rules::Shipped,
            charset: None,
            opts: RewriteOptions::default(),
        };
        for field in header.split(" | ").skip(1) {
            let (key, value) = field.split_once(':').unwrap_or_else(|| panic!("{name}: bad header field `{field}`"));
            let value = value.trim();
            match key.trim() {
                "url" => fixture.url = value.to_string(),
                "rules" => {
                    fixture.rules = match value {
                        "shipped" => Rules::Shipped,
                        "golden" => Rules::Golden,
                        other => panic!("{name}: unknown rules `{other}`"),
                    }
                }
                "charset" => fixture.charset = Some(value.to_string()),
                "max_inline_bytes" => fixture.opts.max_inline_bytes = value.parse().unwrap(),
                other => panic!("{name}: unknown header field `{other}`"),
            }
        }
        fixture
    }

    fn policy(&self) -> Arc<Policy> {
        match self.rules {
            Rules::Shipped => shipped_policy(),
            Rules::Golden => golden_policy(),
        }
    }

    /// Rewrites the fixture with the given chunk sizes (cycled).
    fn run(&self, policy: &Arc<Policy>, sizes: &[usize]) -> Outcome {
        let ctx = page(policy, &self.url);
        let fail = |e: RewriteError| Outcome::Refused(format!("{}: {e}\n", e.kind()));
        let mut stream = match HtmlStream::new(policy.clone(), ctx, self.opts, self.charset.as_deref()) {
            Ok(s) => s,
            Err(e) => return fail(e),
        };
        let mut out = Vec::new();
        let mut rest = self.src.as_slice();
        let mut i = 0;
        while !rest.is_empty() {
            let n = sizes[i % sizes.len()].clamp(1, rest.len());
            match stream.write(&rest[..n]) {
                Ok(bytes) => out.extend(bytes),
                Err(e) => return fail(e),
            }
            rest = &rest[n..];
            i += 1;
        }
        match stream.end() {
            Ok(bytes) => out.extend(bytes),
            Err(e) => return fail(e),
        }
        let findings = stream.take_findings().iter().map(|f| format!("{}\n", f.to_json())).collect();
        Outcome::Rewritten { html: out, findings }
    }

    fn expected_path(&self, ext: &str) -> PathBuf {
        fixtures_dir().join(format!("{}.expected.{ext}", self.name))
    }

    fn write_expected(&self, outcome: &Outcome) {
        let (html, findings, err) =
            (self.expected_path("html"), self.expected_path("findings"), self.expected_path("err"));
        for stale in [&html, &findings, &err] {
            let _ = std::fs::remove_file(stale);
        }
        match outcome {
            Outcome::Rewritten { html: out, findings: f } => {
                std::fs::write(&html, out).unwrap();
                std::fs::write(&findings, f).unwrap();
            }
            Outcome::Refused(e) => std::fs::write(&err, e).unwrap(),
        }
        eprintln!("TAGWARDEN_BLESS=1: wrote expected files for {}", self.name);
    }

    fn expected(&self) -> Outcome {
        let err = self.expected_path("err");
        if err.exists() {
            return Outcome::Refused(String::from_utf8(read(&err)).unwrap());
        }
        let html = self.expected_path("html");
        assert!(html.exists(), "{}: no expected file; run with TAGWARDEN_BLESS=1 to create it", self.name);
        Outcome::Rewritten {
            html: read(&html),
            findings: String::from_utf8(read(&self.expected_path("findings"))).unwrap(),
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Rewritten {
        html: Vec<u8>,
        findings: String,
    },
    /// `<kind>: <message>`: the document must not be served.
    Refused(String),
}

impl Outcome {
    fn html(&self) -> &[u8] {
        match self {
            Outcome::Rewritten { html, .. } => html,
            Outcome::Refused(e) => panic!("expected output, got refusal {e}"),
        }
    }

    fn findings(&self) -> &str {
        match self {
            Outcome::Rewritten { findings, .. } => findings,
            Outcome::Refused(e) => panic!("expected findings, got refusal {e}"),
        }
    }
}

/// The shipped vendors with `tests/golden/rules/site.toml`.
fn golden_policy() -> Arc<Policy> {
    let dir = tempfile::tempdir().unwrap();
    let vendors = dir.path().join("vendors");
    std::fs::create_dir(&vendors).unwrap();
    for entry in std::fs::read_dir(repo().join("rules/vendors")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, vendors.join(path.file_name().unwrap())).unwrap();
    }
    std::fs::copy(repo().join("tests/golden/rules/site.toml"), dir.path().join("site.toml")).unwrap();
    match tagwarden::rules::load_dir(dir.path()) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("golden rules do not load:\n{e}"),
    }
}

fn describe(outcome: &Outcome) -> String {
    match outcome {
        Outcome::Rewritten { html, findings } => {
            format!("--- html ---\n{}\n--- findings ---\n{findings}", String::from_utf8_lossy(html))
        }
        Outcome::Refused(e) => format!("refused: {e}"),
    }
}

/// Runs one fixture at every chunk plan against its expected files; returns the outcome.
fn check_fixture(name: &str) -> (Fixture, Outcome) {
    let fixture = Fixture::load(name);
    let policy = fixture.policy();
    let whole = fixture.run(&policy, &[usize::MAX]);
    if blessing() {
        fixture.write_expected(&whole);
    }
    let expected = fixture.expected();
    for (plan, sizes) in chunk_plans() {
        let actual = fixture.run(&policy, &sizes);
        assert!(
            actual == expected,
            "{name} [{plan}] differs from the expected files\n=== expected ===\n{}\n=== actual ===\n{}",
            describe(&expected),
            describe(&actual)
        );
    }
    (fixture, whole)
}

#[test]
fn every_fixture_file_is_listed() {
    let mut names: Vec<String> = std::fs::read_dir(fixtures_dir())
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().and_then(|n| n.strip_suffix(".src.html")).map(String::from))
        .collect();
    names.sort();
    assert_eq!(names, FIXTURES);
}

#[test]
fn zendesk_snippet_is_served_first_party() {
    let (_, out) = check_fixture("zendesk-snippet");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(
        html.contains(
            "src=\"/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=8c6a1f0e-0000-4000-8000-000000000000\""
        ),
        "{html}"
    );
    assert!(html.contains("zE('webWidget', 'setLocale', 'en');"), "{html}");
    assert!(!html.contains("https://static.zdassets.com"), "{html}");
}

#[test]
fn meta_pixel_is_removed_including_its_noscript_beacon() {
    let (_, out) = check_fixture("meta-pixel");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("fbq(") && !html.contains("facebook"), "{html}");
    assert!(out.findings().contains("\"vendor\":\"meta_pixel\""), "{}", out.findings());
}

#[test]
fn gtag_is_removed() {
    let (_, out) = check_fixture("gtag");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("googletagmanager") && !html.contains("gtag("), "{html}");
    assert!(html.contains("<script src=\"/assets/app.js\"></script>"), "{html}");
}

#[test]
fn offsite_style_urls_become_data_urls() {
    let (_, out) = check_fixture("style-urls");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("evil.example") && !html.contains("tracker.invalid"), "{html}");
    assert!(html.contains("url(\"data:,\")"), "{html}");
    assert!(html.contains("url('/img/logo.svg')"), "{html}");
}

#[test]
fn srcset_candidates_are_filtered_individually() {
    let (_, out) = check_fixture("srcset");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(html.contains("/_tw/zendesk/static.zdassets.com/img/doctor@3x.jpg 3x"), "{html}");
    assert!(!html.contains("evil.example") && !html.contains("tracker.invalid"), "{html}");
}

#[test]
fn attributionsrc_is_decided_like_ping_and_counted_as_its_own_construct() {
    let (_, out) = check_fixture("attributionsrc");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("evil.example") && !html.contains("attributionsrc=\"https"), "{html}");
    for kept in [
        // A kept pixel keeps its first-party registration URL, and an empty attributionsrc.
        "<img src=\"/img/ok.gif\" alt=\"\" attributionsrc=\"/patient/register\">",
        "<img src=\"/img/ok.gif\" alt=\"\" attributionsrc>",
        // A proxied vendor image is no registration: its attributionsrc goes.
        "<img alt=\"\" src=\"/_tw/zendesk/static.zdassets.com/img/logo.png\">",
        "<a href=\"/patient/next\" attributionsrc=\"/patient/a\">Next</a>",
        // The link to a tracker stays a link, no longer a registration.
        "<a href=\"https://ads.tracker.invalid/landing\">Offer</a>",
    ] {
        assert!(html.contains(kept), "no {kept} in:\n{html}");
    }
    let counted = out.findings().lines().filter(|l| l.contains("\"construct\":\"attributionsrc\"")).count();
    assert_eq!(counted, 5, "{}", out.findings());
}

#[test]
fn offsite_base_is_removed() {
    let (_, out) = check_fixture("base-offsite");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("<base"), "{html}");
    assert!(out.findings().contains("\"reason\":\"offsite_base\""), "{}", out.findings());
}

#[test]
fn srcdoc_documents_are_cleaned() {
    let (_, out) = check_fixture("srcdoc");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("evil.example") && !html.contains("facebook"), "{html}");
    assert!(html.contains("/img/map.png"), "{html}");
}

#[test]
fn report_mode_passes_bytes_through_and_records_findings() {
    let (fixture, out) = check_fixture("report-mode");
    assert_eq!(out.html(), fixture.src.as_slice(), "report mode must not change a byte");
    for expected in ["\"vendor\":\"google_analytics\"", "\"vendor\":\"zendesk\"", "\"host\":\"px.tracker.invalid\""] {
        assert!(out.findings().contains(expected), "no {expected} in:\n{}", out.findings());
    }
}

#[test]
fn allowed_vendor_without_consent_is_removed_with_reason_no_consent() {
    let (_, out) = check_fixture("consent-not-granted");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    assert!(!html.contains("googletagmanager") && !html.contains("google-analytics"), "{html}");
    assert!(html.contains("/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=abc"), "{html}");
    let no_consent: Vec<&str> = out.findings().lines().filter(|l| l.contains("\"reason\":\"no_consent\"")).collect();
    assert!(!no_consent.is_empty(), "{}", out.findings());
    assert!(no_consent.iter().all(|l| l.contains("\"vendor\":\"google_analytics\"")), "{no_consent:?}");
}

#[test]
fn first_party_page_is_left_byte_for_byte() {
    let (fixture, out) = check_fixture("first-party-untouched");
    assert_eq!(out.html(), fixture.src.as_slice());
    assert_eq!(out.findings(), "");
}

#[test]
fn unknown_third_parties_are_removed_from_every_construct() {
    let (_, out) = check_fixture("unknown-third-parties");
    let html = String::from_utf8_lossy(out.html()).into_owned();
    let loads = html.lines().filter(|l| l.contains("evil.example") || l.contains("tracker.invalid"));
    // Only the outbound link stays (a navigation, not a load).
    assert_eq!(loads.count(), 0, "{html}");
    assert!(html.contains("Fallback text") && html.contains("Text stays"), "{html}");
}

#[test]
fn windows_1252_page_is_rewritten_in_its_own_encoding() {
    let (_, out) = check_fixture("windows-1252-meta-charset");
    let html = out.html();
    // é, “ ” and € stay single windows-1252 bytes.
    assert!(html.windows(6).any(|w| w == b"R\xe9sum\xe9"), "{}", String::from_utf8_lossy(html));
    assert!(html.windows(3).any(|w| w == b"\x93qu"), "{}", String::from_utf8_lossy(html));
    let text = encoding_rs::WINDOWS_1252.decode(html).0;
    assert!(text.contains("/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=abc"), "{text}");
    assert!(!text.contains("evil.example"), "{text}");
}

#[test]
fn proxied_vendor_url_keeps_the_query_encoding_of_a_windows_1252_page() {
    // A browser encodes a URL's query in the document's encoding (`é` is `%E9` in
    // windows-1252); the first-party URL must send the vendor the same query.
    let policy = shipped_policy();
    let ctx = page(&policy, DEFAULT_URL);
    let html =
        b"<meta charset=windows-1252><script src=\"https://static.zdassets.com/ekr/snippet.js?key=caf\xe9\"></script>";
    let (out, _) = rewrite_document(&policy, &ctx, html, None).unwrap();
    let out = encoding_rs::WINDOWS_1252.decode(&out).0.into_owned();
    assert!(out.contains("/_tw/zendesk/static.zdassets.com/ekr/snippet.js?key=caf%E9\""), "{out}");
}

#[test]
fn utf16_document_is_refused() {
    let (_, out) = check_fixture("utf16-bom");
    assert!(matches!(&out, Outcome::Refused(e) if e.starts_with("unsupported_encoding:")), "{out:?}");
}

#[test]
fn inline_script_over_the_limit_fails_closed() {
    let (_, out) = check_fixture("inline-over-limit");
    assert!(matches!(&out, Outcome::Refused(e) if e.starts_with("inline_too_large:")), "{out:?}");
}

#[test]
fn inline_script_over_the_default_one_mib_limit_fails_closed() {
    let policy = shipped_policy();
    let ctx = page(&policy, DEFAULT_URL);
    let limit = RewriteOptions::default().max_inline_bytes;
    assert_eq!(limit, 1 << 20);
    let html = format!("<!doctype html><script>{}</script><p>after</p>", "/".repeat(limit + 1));
    let err = rewrite_document(&policy, &ctx, html.as_bytes(), None).map(|_| ()).unwrap_err();
    assert_eq!(err, RewriteError::InlineTooLarge(limit));
}

#[test]
fn inline_script_at_the_default_limit_is_kept() {
    let policy = shipped_policy();
    let ctx = page(&policy, DEFAULT_URL);
    let limit = RewriteOptions::default().max_inline_bytes;
    let html = format!("<!doctype html><script>{}</script><p>after</p>", "/".repeat(limit));
    let (out, _) = rewrite_document(&policy, &ctx, html.as_bytes(), None).unwrap();
    assert_eq!(out, html.as_bytes());
}
