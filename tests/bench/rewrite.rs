//! Rewriting throughput over the shared corpus (`../shared/corpus/pages`): every
//! page rewritten as its own document in 16 KiB chunks, per iteration. Two
//! benchmarks in one group so their ratio reads off one run:
//!
//! - `lol_html_no_handlers`: lol_html's `Send` rewriter with no handlers, output
//!   discarded (lol_html then barely tokenizes: an upper bound, not a floor);
//! - `lol_html_noop_element_handler`: the same with one no-op `element!("*")`
//!   handler, so every start tag is parsed — the floor any rewriter that looks
//!   at every element pays;
//! - `tagwarden`: the full rewriter with the shipped rules, each page served at
//!   its own URL (`<link rel=canonical>` / `og:url`).
//!
//! After criterion's report it prints P3 of issue 12 — tagwarden's bytes/s over
//! lol_html's with the empty `*` handler — from its own interleaved rounds (the
//! median of each), so a busy machine slows both sides alike.
//!
//! Run: `cargo bench --bench rewrite`. `P3_ONLY=1` skips criterion and prints
//! only P3; `P3_PAGE=liberation-1` measures P3 on the pages whose name contains
//! that text (the page `tests/bench/wrk.sh` serves for P1), and then also the
//! milliseconds per pass of each side.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_debug_implementations)]

// Only part of the corpus support is used by the bench.
#[allow(dead_code)]
#[path = "../support/corpus.rs"]
mod corpus;

use std::hint::black_box;
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group};
use tagwarden::policy::{PageContext, Policy};
use tagwarden::rewrite::rewrite_chunked;

const CHUNK: usize = 16 * 1024;

fn shipped_policy() -> Arc<Policy> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    match tagwarden::rules::load_dir(&dir) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    }
}

fn lol_html_no_handlers(html: &[u8]) {
    let mut rewriter = lol_html::send::HtmlRewriter::new(lol_html::send::Settings::new_send(), |c: &[u8]| {
        black_box(c);
    });
    for chunk in html.chunks(CHUNK) {
        rewriter.write(chunk).unwrap();
    }
    rewriter.end().unwrap();
}

fn lol_html_noop_element_handler(html: &[u8]) {
    let settings = lol_html::send::Settings::new_send().append_element_content_handler(lol_html::element!(
        "*",
        |el: &mut lol_html::send::Element<'_, '_>| {
            black_box(el.tag_name());
            Ok(())
        }
    ));
    let mut rewriter = lol_html::send::HtmlRewriter::new(settings, |c: &[u8]| {
        black_box(c);
    });
    for chunk in html.chunks(CHUNK) {
        rewriter.write(chunk).unwrap();
    }
    rewriter.end().unwrap();
}

/// The shipped policy, the corpus pages each with its page context, and their total size.
fn corpus_with_contexts() -> (Arc<Policy>, Vec<(corpus::Page, PageContext)>, usize) {
    let policy = shipped_policy();
    let pages: Vec<(corpus::Page, PageContext)> = corpus::pages()
        .into_iter()
        .map(|p| {
            let ctx = policy.page(&p.url, policy.consent_default);
            (p, ctx)
        })
        .collect();
    let bytes = pages.iter().map(|(p, _)| p.html.len()).sum();
    (policy, pages, bytes)
}

fn bench(c: &mut Criterion) {
    let (policy, pages, bytes) = corpus_with_contexts();

    let mut group = c.benchmark_group("rewrite");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("lol_html_no_handlers", |b| {
        b.iter(|| {
            for (page, _) in &pages {
                lol_html_no_handlers(page.html.as_bytes());
            }
        })
    });
    group.bench_function("lol_html_noop_element_handler", |b| {
        b.iter(|| {
            for (page, _) in &pages {
                lol_html_noop_element_handler(page.html.as_bytes());
            }
        })
    });
    group.bench_function("tagwarden", |b| {
        b.iter(|| {
            for (page, ctx) in &pages {
                let out = rewrite_chunked(&policy, ctx, page.html.as_bytes(), None, &[CHUNK]).unwrap();
                black_box(out);
            }
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20).measurement_time(Duration::from_secs(3)).warm_up_time(Duration::from_secs(1));
    targets = bench
}

/// P3: the two measured in alternation, ROUNDS times each over the whole corpus.
fn p3() {
    const ROUNDS: usize = 15;
    let (policy, mut pages, mut bytes) = corpus_with_contexts();
    let only = std::env::var("P3_PAGE").ok();
    if let Some(only) = &only {
        pages.retain(|(p, _)| p.name.contains(only.as_str()));
        bytes = pages.iter().map(|(p, _)| p.html.len()).sum();
        assert!(!pages.is_empty(), "no corpus page named like {only:?}");
    }
    let (mut floor, mut ours) = (Vec::new(), Vec::new());
    for _ in 0..ROUNDS {
        let start = Instant::now();
        for (page, _) in &pages {
            lol_html_noop_element_handler(page.html.as_bytes());
        }
        floor.push(start.elapsed());
        let start = Instant::now();
        for (page, ctx) in &pages {
            black_box(rewrite_chunked(&policy, ctx, page.html.as_bytes(), None, &[CHUNK]).unwrap());
        }
        ours.push(start.elapsed());
    }
    floor.sort();
    ours.sort();
    if only.is_some() {
        println!(
            "one pass: rewriter {:.3} ms, lol_html with an empty `*` handler {:.3} ms",
            ours[ROUNDS / 2].as_secs_f64() * 1e3,
            floor[ROUNDS / 2].as_secs_f64() * 1e3
        );
    }
    let mib_s = |d: Duration| bytes as f64 / d.as_secs_f64() / (1 << 20) as f64;
    let (floor, ours) = (mib_s(floor[ROUNDS / 2]), mib_s(ours[ROUNDS / 2]));
    println!(
        "P3 rewriter / lol_html with an empty `*` handler = {:.2} (goal >= 0.6): {ours:.0} MiB/s vs {floor:.0} MiB/s, \
         median of {ROUNDS} interleaved rounds over {bytes} bytes in {CHUNK}-byte chunks",
        ours / floor
    );
}

fn main() {
    benches();
    Criterion::default().configure_from_args().final_summary();
    // `cargo bench -- <filter>` runs only criterion's matching benchmarks.
    if std::env::var_os("P3_ONLY").is_some() || std::env::args().skip(1).all(|a| a.starts_with('-')) {
        p3();
    }
}
