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
//! - the CSP report parser: any body gives at most `max` violations, never panics;
//! - the request-head checks, end to end: mutated request heads (`tests/fuzz/http.dict`
//!   fragments: framing headers, obs-fold, bare CR/LF, NUL, chunk sizes, embedded
//!   requests) each followed by an innocent request, through an in-process proxy to a
//!   strict recording origin: every case is refused, or reaches the origin as bytes
//!   its strict parser accepts, each request at most once, never an embedded one.
//!
//! This is not libFuzzer (no coverage feedback); `tests/fuzz/` holds the real
//! target, `tests/fuzz/ci.sh` runs it time-boxed where cargo-fuzz and nightly
//! are installed. `TAGWARDEN_FUZZ_SEED` picks the seed (default fixed),
//! `TAGWARDEN_FUZZ_CASES` the number of rewriter inputs (default 2000; request heads: a quarter).

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

// ---------------------------------------------------------------------------
// Request heads, end to end
// ---------------------------------------------------------------------------

/// `tests/fuzz/http.dict` (libFuzzer's format: `name="value"`, `\xHH` escapes).
fn http_dictionary() -> Vec<Vec<u8>> {
    let text = std::fs::read_to_string(repo().join("tests/fuzz/http.dict")).unwrap();
    let unescape = |v: &str| {
        let (b, mut out, mut i) = (v.as_bytes(), Vec::new(), 0);
        while i < b.len() {
            if b[i] == b'\\' && b.get(i + 1) == Some(&b'x') {
                out.push(u8::from_str_radix(std::str::from_utf8(&b[i + 2..i + 4]).unwrap(), 16).unwrap());
                i += 4;
            } else if b[i] == b'\\' {
                out.push(b[i + 1]);
                i += 2;
            } else {
                out.push(b[i]);
                i += 1;
            }
        }
        out
    };
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| Some(unescape(l.split_once('"')?.1.strip_suffix('"')?)))
        .collect()
}

/// One request-head case: `POST /fz<id>-<id>` with dictionary header lines and body
/// pieces, then mutations — byte-level ones in the request line (its target
/// stays the case's own), dictionary ones anywhere after it.
fn head_case(rng: &mut StdRng, dict: &[Vec<u8>], id: usize) -> Vec<u8> {
    let line = format!("POST /fz{id}-{id} HTTP/1.1\r\n");
    let mut rest = b"Host: clinic.example\r\n".to_vec();
    for _ in 0..rng.random_range(0..=4) {
        rest.extend_from_slice(&dict[rng.random_range(0..dict.len())]);
    }
    rest.extend_from_slice(b"\r\n");
    for _ in 0..rng.random_range(0..=3) {
        rest.extend_from_slice(&dict[rng.random_range(0..dict.len())]);
    }
    let mut line = line.into_bytes();
    if rng.random_bool(0.3) {
        let bytes: Vec<Vec<u8>> = [" ", "\t", "\r", "\n", "\0", "  ", "%00", "#", "?", "\x7f"].map(|s| s.into()).into();
        for _ in 0..rng.random_range(1..=3) {
            mutate(rng, &mut line, &bytes);
        }
    } else {
        for _ in 0..rng.random_range(1..=6) {
            mutate(rng, &mut rest, dict);
        }
    }
    line.extend_from_slice(&rest);
    line
}

/// The case of a numbered target `/<what><id>-<id>`, if any. The id is written
/// twice so that a mutation of the request line (a deleted digit) cannot turn
/// one case's target into another's.
fn case_target(target: &str, what: &str) -> Option<usize> {
    let path = target.rsplit_once("clinic.example").map_or(target, |(_, p)| p);
    let (a, b) = path.strip_prefix('/')?.strip_prefix(what)?.split_once('-')?;
    (a == b).then(|| a.parse().ok())?
}

/// Bytes 0x80–0xFF after a `:` on a line as `x`. RFC 9110 (§5.5) allows them in
/// field values (obs-text) and they play no part in framing, but the strict
/// origin's parser (shared with the smuggling suite) refuses any non-ASCII head.
fn obs_text_as_x(conn: &[u8]) -> Vec<u8> {
    let mut in_value = false;
    conn.iter()
        .map(|&b| {
            in_value = match b {
                b'\n' => false,
                b':' => true,
                _ => in_value,
            };
            if in_value && b >= 0x80 { b'x' } else { b }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mutated_request_heads_are_refused_or_forwarded_strictly_and_never_desync_the_origin() {
    use support::strict_origin::{RecordingOrigin, parse_strict};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    const WORKERS: usize = 4;
    let dict = http_dictionary();
    assert!(dict.len() > 30, "http.dict has {} entries", dict.len());
    let total = cases(2000) / 4;
    let mut rng = StdRng::seed_from_u64(seed());
    let inputs: Arc<Vec<Vec<u8>>> = Arc::new((0..total).map(|id| head_case(&mut rng, &dict, id)).collect());
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..WORKERS {
        let inputs = inputs.clone();
        tasks.spawn(async move {
            let origin = RecordingOrigin::start().await;
            let rules = repo().join("rules");
            let mut config = tagwarden::config::Config { rules: rules.clone(), ..Default::default() };
            config.limits.request_read_timeout_seconds = 1;
            let policy = tagwarden::rules::load_dir(&rules).unwrap();
            let origin_at = tagwarden::proxy::Origin::plain(origin.addr);
            let shared = Arc::new(tagwarden::proxy::Shared::new(policy, config, origin_at).unwrap());
            let (tx, rx) = tokio::sync::watch::channel(false);
            let lo: std::net::SocketAddr = "127.0.0.1:0".parse().unwrap();
            let grace = std::time::Duration::from_secs(1);
            let running = tagwarden::serve::start_with(shared, lo, lo, grace, tx, rx, None).await.unwrap();
            let mut statuses = Vec::new();
            for id in (worker..inputs.len()).step_by(WORKERS) {
                let mut bytes = inputs[id].clone();
                bytes.extend_from_slice(
                    format!("GET /second{id}-{id} HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n")
                        .as_bytes(),
                );
                let mut s = tokio::net::TcpStream::connect(running.proxy_addr).await.unwrap();
                let _ = s.write_all(&bytes).await;
                // End of input: a promised body that never comes fails at once.
                let _ = s.shutdown().await;
                let mut raw = Vec::new();
                let _ = tokio::time::timeout(std::time::Duration::from_secs(20), s.read_to_end(&mut raw)).await;
                let status = std::str::from_utf8(raw.get(9..12).unwrap_or_default()).ok().and_then(|s| s.parse().ok());
                statuses.push((id, status));
            }
            origin.settle().await;
            let _ = running.shutdown.send(true);
            (statuses, origin.received_since(&[]))
        });
    }
    let mut refused = vec![false; total];
    let mut seen = vec![(0usize, 0usize); total];
    let mut failures = Vec::new();
    while let Some(done) = tasks.join_next().await {
        let (statuses, conns) = done.unwrap();
        for (id, status) in statuses {
            refused[id] = status.is_some_and(|s: u16| (400..500).contains(&s));
        }
        for conn in conns {
            let reqs = match parse_strict(&obs_text_as_x(&conn)) {
                Ok((reqs, _)) => reqs,
                Err(e) => {
                    failures.push(format!("the origin got bytes its strict parser refuses ({e}): {conn:?}"));
                    continue;
                }
            };
            for r in reqs {
                if r.target.contains("smuggled") {
                    failures.push(format!("desync: the origin saw an embedded request {}", r.target));
                }
                if !r.headers.iter().any(|(n, _)| n == "x-forwarded-for") {
                    failures.push(format!("the origin saw {} without the proxy's X-Forwarded-For", r.target));
                }
                if let Some(id) = case_target(&r.target, "fz").filter(|id| *id < total) {
                    seen[id].0 += 1;
                }
                if let Some(id) = case_target(&r.target, "second").filter(|id| *id < total) {
                    seen[id].1 += 1;
                }
            }
        }
    }
    for id in 0..total {
        let (fz, second) = seen[id];
        if fz > 1 || second > 1 || (refused[id] && fz > 0) {
            failures.push(format!(
                "case {id}: origin saw it {fz}x and its second request {second}x, refused: {}; input {:?}",
                refused[id],
                String::from_utf8_lossy(&inputs[id])
            ));
        }
    }
    let forwarded = seen.iter().filter(|(fz, _)| *fz > 0).count();
    let refused_n = refused.iter().filter(|r| **r).count();
    let shown: Vec<String> = failures.iter().take(5).cloned().collect();
    assert!(failures.is_empty(), "{} failures (seed {}):\n{}", failures.len(), seed(), shown.join("\n"));
    assert!(forwarded > 0 && refused_n > 0, "forwarded {forwarded}, refused {refused_n}: the generator tests nothing");
    eprintln!("{total} request heads: {forwarded} forwarded, {refused_n} refused");
}
