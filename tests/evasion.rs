//! The evasion corpus (`tests/evasion/vectors`): every vector, rewritten with the
//! shipped rules at random chunk sizes, loads nothing from a host other than the
//! page's own — checked by an independent parser (html5ever + cssparser), with
//! scripting on and off. Zendesk must survive first-party where a vector says so.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::common::*;
use support::loads;
use tagwarden::policy::Construct;
use tagwarden::rewrite::rewrite_chunked;

const PAGE: &str = "https://clinic.example/patient/intake";

struct Vector {
    name: String,
    html: String,
    keep: Option<String>,
}

fn vectors() -> Vec<Vector> {
    let dir = repo().join("tests/evasion/vectors");
    let mut paths: Vec<_> = std::fs::read_dir(&dir).expect("vectors dir").map(|e| e.expect("entry").path()).collect();
    paths.sort();
    paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "html"))
        .map(|p| {
            let html = String::from_utf8(read(&p)).expect("vectors are UTF-8");
            let first = html.lines().next().unwrap_or_default();
            let keep = first
                .rsplit_once("| keep:")
                .map(|(_, k)| k.trim().trim_end_matches("-->").trim().to_string())
                .filter(|k| k != "-");
            Vector { name: p.file_name().unwrap_or_default().to_string_lossy().into_owned(), html, keep }
        })
        .collect()
}

#[test]
fn corpus_has_at_least_40_vectors() {
    assert!(vectors().len() >= 40);
}

#[test]
fn no_vector_loads_a_non_allowed_host() {
    let policy = shipped_policy();
    let page_ctx = page(&policy, PAGE);
    let page_url = url::Url::parse(PAGE).unwrap();
    let own = same_site("clinic.example");
    let zendesk = policy.vendor_by_id("zendesk").expect("zendesk vendor").1;
    let mut failures = Vec::new();
    let mut refused = Vec::new();
    for v in vectors() {
        for (plan, sizes) in chunk_plans() {
            let out = match rewrite_chunked(&policy, &page_ctx, v.html.as_bytes(), None, &sizes) {
                Ok((out, _)) => String::from_utf8(out).expect("UTF-8 out"),
                Err(e) => {
                    // Failing closed serves nothing: safe, but listed so the count stays visible.
                    refused.push(format!("{} [{plan}]: {e}", v.name));
                    continue;
                }
            };
            for scripting in [true, false] {
                for l in loads::loads(&out, &page_url, scripting) {
                    let host = l.url.host_str().unwrap_or_default();
                    if !own(host) {
                        failures.push(format!("{} [{plan}, scripting={scripting}]: {} {}", v.name, l.construct, l.url));
                        continue;
                    }
                    // First-party vendor paths must name a host the vendor owns.
                    if let Some(rest) = l.url.path().strip_prefix("/_tw/zendesk/") {
                        let vhost = rest.split('/').next().unwrap_or_default();
                        if !zendesk.owns_host(vhost) {
                            failures.push(format!("{} [{plan}]: proxied to non-Zendesk host {vhost}", v.name));
                        }
                    }
                }
            }
            // Inline scripts left in the output must not carry a non-allowed vendor's signature.
            let doc = loads::parse_html(&out, true);
            let sel = scraper::Selector::parse("script").unwrap();
            for s in doc.select(&sel) {
                let text: String = s.text().collect();
                if let Some((false, f)) = policy.decide_inline(&page_ctx, Construct::InlineScript, &text) {
                    failures.push(format!(
                        "{} [{plan}]: inline script of {:?} kept",
                        v.name,
                        f.iter().map(|f| f.vendor_label().to_string()).collect::<Vec<_>>()
                    ));
                }
            }
            if let Some(keep) = &v.keep {
                let all: Vec<String> = [true, false]
                    .iter()
                    .flat_map(|s| loads::loads(&out, &page_url, *s))
                    .map(|l| l.url.to_string())
                    .collect();
                if !all.iter().any(|u| u.contains(keep.as_str())) {
                    failures.push(format!("{} [{plan}]: expected a load containing {keep:?}, got {all:?}", v.name));
                }
            }
        }
    }
    eprintln!("{} vector runs refused (fail closed):\n{}", refused.len(), refused.join("\n"));
    assert!(failures.is_empty(), "{} leaks:\n{}", failures.len(), failures.join("\n"));
}

#[test]
fn every_vector_tests_something() {
    // The original documents must leak (or carry a tracker signature), or the vector proves nothing.
    let policy = shipped_policy();
    let page_ctx = page(&policy, PAGE);
    let page_url = url::Url::parse(PAGE).unwrap();
    let own = same_site("clinic.example");
    for v in vectors() {
        let leaks = loads::offsite_loads_any_scripting(&v.html, &page_url, |h| own(h));
        let doc = loads::parse_html(&v.html, true);
        let sel = scraper::Selector::parse("script").unwrap();
        let signed = doc.select(&sel).any(|s| {
            let t: String = s.text().collect();
            matches!(policy.decide_inline(&page_ctx, Construct::InlineScript, &t), Some((false, _)))
        });
        assert!(!leaks.is_empty() || signed, "{} tests nothing", v.name);
    }
}
