//! The shared corpus of real pages (`../shared/corpus/pages`), each rewritten with
//! the shipped rules as served at its own URL (`<link rel=canonical>` or `og:url`,
//! like `tagwarden rewrite --url`), whole and at random chunk sizes:
//!
//! - nothing outside the page's own site is loaded afterwards (independent
//!   html5ever oracle, scripting on and off);
//! - chunk boundaries never change a byte;
//! - the visible text is unchanged;
//! - the output matches the SHA-256 recorded in `tests/golden/corpus.sha256`
//!   (`TAGWARDEN_BLESS=1` rewrites that file).
//!
//! `TAGWARDEN_CHUNK_SEED` / `TAGWARDEN_CHUNK_SIZE` pin the chunking (see `support::common::chunk_plans`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeMap, HashSet};
use std::fmt::Write as _;
use std::sync::OnceLock;

use sha2::{Digest, Sha256};
use support::common::{self, *};
use support::{corpus, loads};
use tagwarden::rewrite::{RewriteError, rewrite_chunked};
use url::Url;

const GOLDEN: &str = "tests/golden/corpus.sha256";

/// One page rewritten whole and under every chunk plan.
struct Run {
    page: corpus::Page,
    whole: Result<Vec<u8>, RewriteError>,
    /// `(plan, output)`.
    chunked: Vec<(String, Result<Vec<u8>, RewriteError>)>,
}

impl Run {
    fn whole(&self) -> &[u8] {
        match &self.whole {
            Ok(out) => out,
            Err(e) => panic!("{}: whole-document rewrite failed: {e}", self.page.name),
        }
    }

    fn whole_str(&self) -> &str {
        std::str::from_utf8(self.whole()).unwrap_or_else(|e| panic!("{}: output is not UTF-8: {e}", self.page.name))
    }
}

/// Rewrites every page once per plan; shared by all tests in this file.
fn runs() -> &'static [Run] {
    static RUNS: OnceLock<Vec<Run>> = OnceLock::new();
    RUNS.get_or_init(|| {
        let policy = shipped_policy();
        corpus::pages()
            .into_iter()
            .map(|page| {
                let ctx = common::page(&policy, page.url.as_str());
                let rewrite = |sizes: &[usize]| {
                    rewrite_chunked(&policy, &ctx, page.html.as_bytes(), None, sizes).map(|(out, _)| out)
                };
                let whole = rewrite(&[usize::MAX]);
                let chunked = chunk_plans()
                    .into_iter()
                    .filter(|(plan, _)| plan != "whole")
                    .map(|(plan, sizes)| {
                        let out = rewrite(&sizes);
                        (plan, out)
                    })
                    .collect();
                Run { page, whole, chunked }
            })
            .collect()
    })
}

/// Loads outside the page's own site, scripting on and off.
fn offsite(html: &str, page_url: &Url) -> Vec<String> {
    let own = same_site(page_url.host_str().unwrap_or_default());
    let mut out = Vec::new();
    for scripting in [true, false] {
        for l in loads::loads(html, page_url, scripting) {
            if own(l.url.host_str().unwrap_or_default()) {
                continue;
            }
            out.push(format!("scripting={scripting}: {l}"));
        }
    }
    out
}

/// Text a reader sees: text nodes outside elements whose text is not rendered,
/// with whitespace runs collapsed.
fn visible_text(html: &str) -> String {
    const HIDDEN: &[&str] = &["head", "title", "script", "style", "noscript", "template", "iframe"];
    let doc = loads::parse_html(html, true);
    let mut text = String::new();
    for node in doc.tree.root().descendants() {
        let Some(t) = node.value().as_text() else {
            continue;
        };
        let hidden = node.ancestors().any(|a| a.value().as_element().is_some_and(|e| HIDDEN.contains(&e.name())));
        if !hidden {
            text.push_str(&t.text);
        }
    }
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Where two strings first differ, with some context, for failure messages.
fn first_difference(a: &str, b: &str) -> String {
    let at = a.chars().zip(b.chars()).take_while(|(x, y)| x == y).count();
    let around = |s: &str| s.chars().skip(at.saturating_sub(60)).take(160).collect::<String>();
    format!("at char {at}:\n  before: …{}…\n  after:  …{}…", around(a), around(b))
}

#[test]
fn every_page_names_its_own_url_and_loads_third_parties_before_rewriting() {
    // Otherwise the no-offsite-load test below would prove nothing.
    for page in corpus::pages() {
        assert!(!offsite(&page.html, &page.url).is_empty(), "{} loads nothing off-site to begin with", page.name);
    }
}

#[test]
fn every_page_rewrites_without_error_at_every_chunk_plan() {
    let mut failures = Vec::new();
    for run in runs() {
        if let Err(e) = &run.whole {
            failures.push(format!("{} [whole]: {e}", run.page.name));
        }
        for (plan, out) in &run.chunked {
            if let Err(e) = out {
                failures.push(format!("{} [{plan}]: {e}", run.page.name));
            }
        }
    }
    assert!(failures.is_empty(), "real pages refused:\n{}", failures.join("\n"));
}

#[test]
fn no_page_loads_anything_outside_its_own_site_after_rewriting() {
    let mut failures = Vec::new();
    for run in runs() {
        // Identical bytes load identical things: run the oracle once per distinct output.
        let mut seen: HashSet<&[u8]> = HashSet::new();
        let outputs = std::iter::once(("whole", &run.whole)).chain(run.chunked.iter().map(|(p, o)| (p.as_str(), o)));
        for (plan, out) in outputs {
            let Ok(out) = out else { continue };
            if !seen.insert(out) {
                continue;
            }
            let html = String::from_utf8_lossy(out);
            for leak in offsite(&html, &run.page.url) {
                failures.push(format!("{} ({}) [{plan}] {leak}", run.page.name, run.page.url));
            }
        }
    }
    assert!(failures.is_empty(), "{} off-site loads after rewriting:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn chunked_output_is_byte_identical_to_whole_document_output() {
    let mut failures = Vec::new();
    for run in runs() {
        let whole = run.whole();
        for (plan, out) in &run.chunked {
            match out {
                Ok(out) if out == whole => {}
                Ok(out) => failures.push(format!(
                    "{} [{plan}] differs {}",
                    run.page.name,
                    first_difference(&String::from_utf8_lossy(whole), &String::from_utf8_lossy(out))
                )),
                Err(e) => failures.push(format!("{} [{plan}]: {e}", run.page.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn visible_text_is_unchanged_by_rewriting() {
    let mut failures = Vec::new();
    for run in runs() {
        let before = visible_text(&run.page.html);
        let after = visible_text(run.whole_str());
        assert!(before.len() > 200, "{}: too little visible text to compare", run.page.name);
        if before != after {
            failures.push(format!("{}: {}", run.page.name, first_difference(&before, &after)));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rewriting_a_rewritten_page_changes_nothing() {
    let policy = shipped_policy();
    let mut failures = Vec::new();
    for run in runs() {
        let ctx = page(&policy, run.page.url.as_str());
        let once = run.whole();
        match rewrite_chunked(&policy, &ctx, once, None, &[usize::MAX]) {
            Ok((twice, _)) if twice == once => {}
            Ok((twice, _)) => failures.push(format!(
                "{}: {}",
                run.page.name,
                first_difference(&String::from_utf8_lossy(once), &String::from_utf8_lossy(&twice))
            )),
            Err(e) => failures.push(format!("{}: second rewrite failed: {e}", run.page.name)),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn rewritten_pages_match_the_recorded_sha256() {
    let actual: BTreeMap<String, String> = runs()
        .iter()
        .map(|run| {
            let hex = Sha256::digest(run.whole()).iter().fold(String::new(), |mut s, b| {
                let _ = write!(s, "{b:02x}");
                s
            });
            (run.page.name.clone(), hex)
        })
        .collect();
    let path = repo().join(GOLDEN);
    if std::env::var("TAGWARDEN_BLESS").is_ok_and(|v| v == "1") {
        let text: String = actual.iter().map(|(name, hex)| format!("{hex}  {name}\n")).collect();
        std::fs::write(&path, text).unwrap();
        eprintln!("TAGWARDEN_BLESS=1: wrote {} ({} pages)", path.display(), actual.len());
        return;
    }
    let recorded_text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{}: {e}; run with TAGWARDEN_BLESS=1 to record", path.display()));
    let recorded: BTreeMap<String, String> = recorded_text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (hex, name) = l.split_once("  ").unwrap_or_else(|| panic!("{GOLDEN}: bad line `{l}`"));
            (name.to_string(), hex.to_string())
        })
        .collect();
    let mut diffs = Vec::new();
    for name in actual.keys().chain(recorded.keys()).collect::<std::collections::BTreeSet<_>>() {
        match (recorded.get(name), actual.get(name)) {
            (Some(r), Some(a)) if r == a => {}
            (Some(r), Some(a)) => diffs.push(format!("{name}: recorded {r}, now {a}")),
            (Some(_), None) => diffs.push(format!("{name}: recorded, but no longer in the corpus")),
            (None, Some(a)) => diffs.push(format!("{name}: not recorded (now {a})")),
            (None, None) => {}
        }
    }
    assert!(
        diffs.is_empty(),
        "rewritten output changed; inspect with `tagwarden rewrite --url <canonical>` and rerun with \
         TAGWARDEN_BLESS=1 if intended:\n{}",
        diffs.join("\n")
    );
}
