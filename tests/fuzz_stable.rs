#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Fuzz-style tests on stable Rust, deterministic and bounded, run by
//! `cargo test`: byte-level mutations (splices of `tests/fuzz/html.dict`
//! entries, flips, duplications, truncations) from a seeded `StdRng`, driving
//!
//! - the rewriter differential: each input, at a random chunk size, is refused,
//!   or rewritten to output in which the independent oracle (`support::loads`,
//!   html5ever + cssparser) finds no load outside the page's site, and which the
//!   whole-document rewrite reproduces byte for byte (chunk invariance);
//! - the rule loader: a mutated `site.toml` loads or is refused, never panics;
//! - the CSP report parser: any body gives at most `max` violations, never panics.
//!
//! This is not libFuzzer (no coverage feedback); `tests/fuzz/` holds the real
//! target, `tests/fuzz/ci.sh` runs it time-boxed where cargo-fuzz and nightly
//! are installed. `TAGWARDEN_FUZZ_SEED` picks the seed (default fixed),
//! `TAGWARDEN_FUZZ_CASES` the number of rewriter inputs (default 2000).

mod support;

use std::sync::{Arc, OnceLock};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use support::common::*;
use support::loads;
use tagwarden::policy::Policy;
use tagwarden::rewrite::rewrite_chunked;

const PAGE: &str = "https://clinic.example/patient/intake";

fn seed() -> u64 {
    std::env::var("TAGWARDEN_FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x7a67_7761_7264_656e)
}

fn cases(default: usize) -> usize {
    std::env::var("TAGWARDEN_FUZZ_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

fn policy() -> Arc<Policy> {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY.get_or_init(shipped_policy).clone()
}

/// The libFuzzer dictionary's entries (`name="value"` lines, escapes undone).
fn dictionary() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(repo().join("tests/fuzz/html.dict")).unwrap();
    text.lines()
        .filter_map(|l| {
            let v = l.split_once('"')?.1.strip_suffix('"')?;
            Some(v.replace("\\\"", "\"").replace("\\\\", "\\").into_bytes())
        })
        .filter(|v| !v.is_empty())
        .collect()
}

/// One mutation of `input`.
fn mutate(rng: &mut StdRng, input: &mut Vec<u8>, dict: &[Vec<u8>]) {
    let at = |rng: &mut StdRng, len: usize| rng.random_range(0..=len);
    match rng.random_range(0..6) {
        0 | 1 => {
            let entry = &dict[rng.random_range(0..dict.len())];
            let i = at(rng, input.len());
            input.splice(i..i, entry.iter().copied());
        }
        2 if !input.is_empty() => {
            let i = rng.random_range(0..input.len());
            input[i] ^= 1 << rng.random_range(0..8);
        }
        3 if !input.is_empty() => {
            let i = rng.random_range(0..input.len());
            let j = (i + rng.random_range(1..32)).min(input.len());
            let piece = input[i..j].to_vec();
            let k = at(rng, input.len());
            input.splice(k..k, piece);
        }
        4 if input.len() > 1 => {
            let i = rng.random_range(0..input.len());
            let j = (i + rng.random_range(1..16)).min(input.len());
            input.drain(i..j);
        }
        _ => input.push(rng.random()),
    }
}

/// A document from 1–8 dictionary entries and 1–12 mutations, at most 4 KiB.
fn document(rng: &mut StdRng, dict: &[Vec<u8>]) -> Vec<u8> {
    let mut doc = Vec::new();
    for _ in 0..rng.random_range(1..=8) {
        doc.extend_from_slice(&dict[rng.random_range(0..dict.len())]);
    }
    for _ in 0..rng.random_range(1..=12) {
        mutate(rng, &mut doc, dict);
    }
    doc.truncate(4096);
    doc
}

#[test]
fn mutated_documents_are_refused_or_rewritten_without_third_party_loads_at_any_chunk_size() {
    let dict = dictionary();
    assert!(dict.len() > 20, "html.dict has {} entries", dict.len());
    let policy = policy();
    let ctx = page(&policy, PAGE);
    let page_url = url::Url::parse(PAGE).unwrap();
    let own = same_site("clinic.example");
    let mut rng = StdRng::seed_from_u64(seed());
    let mut failures = Vec::new();
    let (mut refused, total) = (0, cases(2000));
    for case in 0..total {
        let doc = document(&mut rng, &dict);
        let size = rng.random_range(1..=257);
        let Ok((out, _)) = rewrite_chunked(&policy, &ctx, &doc, None, &[size]) else {
            refused += 1;
            continue;
        };
        let whole = rewrite_chunked(&policy, &ctx, &doc, None, &[usize::MAX]).map(|(w, _)| w);
        if whole.as_ref().ok() != Some(&out) {
            failures.push(format!(
                "case {case}: chunk size {size} changed the output: {:?}",
                String::from_utf8_lossy(&doc)
            ));
            continue;
        }
        let html = String::from_utf8_lossy(&out);
        let offsite = loads::offsite_loads_any_scripting(&html, &page_url, |h| own(h));
        if !offsite.is_empty() {
            let found: Vec<String> = offsite.iter().map(|l| l.to_string()).collect();
            failures.push(format!("case {case}: {found:?} in the output of {:?}", String::from_utf8_lossy(&doc)));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {total} inputs failed (seed {}):\n{}",
        failures.len(),
        seed(),
        failures.iter().take(5).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(refused < total, "every input was refused: the generator tests nothing");
}

#[test]
fn mutated_rule_files_load_or_are_refused_never_panic() {
    let site = std::fs::read_to_string(repo().join("rules/site.toml")).unwrap();
    let dict: Vec<Vec<u8>> = ["=", "\"", "[", "]]", "\n", "hosts = [", "*.", "{", "\\u0000", "#", "'''", "0x", "-1"]
        .iter()
        .map(|s| s.as_bytes().to_vec())
        .collect();
    let mut rng = StdRng::seed_from_u64(seed());
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
    for e in std::fs::read_dir(repo().join("rules/vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), dir.path().join("vendors").join(e.file_name())).unwrap();
    }
    let mut loaded = 0;
    for _ in 0..cases(2000) / 10 {
        let mut text = site.clone().into_bytes();
        for _ in 0..rng.random_range(1..=4) {
            mutate(&mut rng, &mut text, &dict);
        }
        std::fs::write(dir.path().join("site.toml"), &text).unwrap();
        match std::panic::catch_unwind(|| tagwarden::rules::load_dir(dir.path())) {
            Ok(Ok(_)) => loaded += 1,
            Ok(Err(_)) => {}
            Err(_) => panic!("the rule loader panicked on:\n{}", String::from_utf8_lossy(&text)),
        }
    }
    assert!(loaded > 0 || cases(2000) < 10, "no mutated file loaded: the mutations test nothing but the parser");
}

#[test]
fn any_csp_report_body_gives_at_most_max_violations_and_never_panics() {
    let seeds: &[&[u8]] = &[
        br#"{"csp-report":{"effective-directive":"script-src-elem","blocked-uri":"https://evil.example/a.js"}}"#,
        br#"[{"type":"csp-violation","body":{"effectiveDirective":"img-src","blockedURL":"https://t.example/p?x=1"}}]"#,
        br#"[{"type":"csp-violation","body":{}}, {"type":"other"}]"#,
    ];
    let dict: Vec<Vec<u8>> =
        ["{", "}", "[", "]", ",", "\"", ":", "null", "1e999", "\\u0000", "\"body\":", "\"csp-report\":"]
            .iter()
            .map(|s| s.as_bytes().to_vec())
            .collect();
    let mut rng = StdRng::seed_from_u64(seed());
    for _ in 0..cases(2000) {
        let mut body = seeds[rng.random_range(0..seeds.len())].to_vec();
        if rng.random_bool(0.5) {
            // Many reports in one body.
            let one = body.clone();
            body = format!("[{}]", vec![String::from_utf8_lossy(&one).trim_matches(['[', ']']); 40].join(","))
                .into_bytes();
        }
        for _ in 0..rng.random_range(0..=6) {
            mutate(&mut rng, &mut body, &dict);
        }
        let max = rng.random_range(0..8);
        let found = tagwarden::csp::parse_reports(&body, max);
        assert!(
            found.len() <= max,
            "{} violations over a max of {max} from {:?}",
            found.len(),
            String::from_utf8_lossy(&body)
        );
    }
}
