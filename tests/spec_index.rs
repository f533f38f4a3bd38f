//! The rewriter's table of fetch-triggering attributes and `rel` keywords
//! (`tagwarden::rewrite::fetch_attrs`) held against the HTML Standard's own indexes,
//! kept as data extracts in `tests/spec/`:
//!
//! - every attribute whose value the standard's attribute index says is a URL (a
//!   list of URLs, image candidates) is in the table or listed as fetching nothing,
//!   with the reason; nothing is listed as fetching nothing that the index lacks;
//! - every keyword of the standard's link-type index is decided, and those the
//!   standard calls external resources load;
//! - every table entry is enforced by the rewriter, and what it lists as fetching
//!   nothing is left alone;
//! - declarative shadow roots (`<template shadowrootmode>`) are live, not inert, and
//!   their content is rewritten.
//!
//! When the standard adds an attribute, re-extract the index (its header says from
//! where) and this test names what the table has not decided yet.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::common::*;
use support::loads;
use tagwarden::rewrite::fetch_attrs::{self, FETCH_ATTRS, FetchAttr, Gate, LINK_RELS, NOT_FETCHED, Namespace, Value};
use tagwarden::rewrite::rewrite_document;

const PAGE: &str = "https://clinic.example/patient/intake";

/// One row of `tests/spec/html-attribute-index.tsv`.
struct IndexRow {
    attribute: String,
    /// Element names; `*` for the index's "HTML elements".
    elements: Vec<String>,
    value: String,
}

/// The non-comment lines of a `tests/spec` extract, split on tabs into `columns` fields.
fn extract(name: &str, columns: usize) -> Vec<Vec<String>> {
    let text = String::from_utf8(read(&repo().join("tests/spec").join(name))).expect("extracts are UTF-8");
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let fields: Vec<String> = l.split('\t').map(|f| f.trim().to_string()).collect();
            assert_eq!(fields.len(), columns, "{name}: expected {columns} tab-separated fields in `{l}`");
            fields
        })
        .collect()
}

fn attribute_index() -> Vec<IndexRow> {
    extract("html-attribute-index.tsv", 3)
        .into_iter()
        .map(|f| IndexRow {
            attribute: f[0].clone(),
            elements: f[1]
                .split(';')
                .map(|e| {
                    let e = e.split(" (").next().unwrap_or_default().trim();
                    if e == "HTML elements" { "*".to_string() } else { e.to_string() }
                })
                .collect(),
            value: f[2].clone(),
        })
        .collect()
}

/// The index says the value is a URL, a list of URLs or image candidates (which are URLs).
fn carries_urls(value: &str) -> bool {
    value.contains("URL") || value.contains("image candidate")
}

#[test]
fn every_url_valued_attribute_in_the_html_index_is_decided() {
    let index = attribute_index();
    let url_rows: Vec<&IndexRow> = index.iter().filter(|r| carries_urls(&r.value)).collect();
    // An emptied or mangled extract must not pass as "nothing undecided".
    assert!(index.len() > 150 && url_rows.len() >= 15, "{} rows, {} URL-valued", index.len(), url_rows.len());
    let mut undecided = Vec::new();
    for row in url_rows {
        for element in &row.elements {
            let fetched = fetch_attrs::fetch_attr(Namespace::Html, element, &row.attribute).is_some();
            let not_fetched = fetch_attrs::not_fetched(Namespace::Html, element, &row.attribute).is_some();
            if !fetched && !not_fetched {
                undecided.push(format!("`{}` on `{element}` (value: {})", row.attribute, row.value));
            }
        }
    }
    assert!(
        undecided.is_empty(),
        "URL-valued attributes in the HTML Standard's index that src/rewrite/fetch_attrs.rs neither lists in \
         FETCH_ATTRS nor in NOT_FETCHED (with the reason):\n{}",
        undecided.join("\n")
    );
}

#[test]
fn what_the_table_calls_unfetched_is_a_url_valued_attribute_of_the_index() {
    let index = attribute_index();
    let mut unknown = Vec::new();
    for entry in NOT_FETCHED.iter().filter(|e| e.namespace == Namespace::Html) {
        assert!(!entry.reason.trim().is_empty(), "{} has no reason", entry.attribute);
        for element in entry.elements {
            let listed = index.iter().any(|r| {
                r.attribute == entry.attribute && carries_urls(&r.value) && r.elements.iter().any(|e| e == element)
            });
            if !listed {
                unknown.push(format!("`{}` on `{element}`", entry.attribute));
            }
        }
    }
    assert!(unknown.is_empty(), "NOT_FETCHED names attributes the index has no URL value for:\n{}", unknown.join("\n"));
}

#[test]
fn every_link_type_in_the_html_index_is_decided_and_external_resources_load() {
    let types = extract("html-link-types.tsv", 5);
    assert!(types.len() >= 25, "{} link types", types.len());
    let mut wrong = Vec::new();
    for t in &types {
        let (keyword, on_link) = (&t[0], &t[1]);
        match LINK_RELS.iter().find(|r| r.keyword == keyword) {
            None => wrong.push(format!("`{keyword}` ({on_link} on link) is not in LINK_RELS")),
            Some(r) if on_link == "External Resource" && !r.loads => {
                wrong.push(format!("`{keyword}` is an external resource link but LINK_RELS says it does not load"))
            }
            Some(r) if r.source.trim().is_empty() => wrong.push(format!("`{keyword}` has no source")),
            Some(_) => {}
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A minimal document in which `entry`, on `element`, names a third-party URL.
fn document_for(entry: &FetchAttr, element: &str) -> String {
    const EVIL: &str = "https://evil.example/x";
    let element = match (element, entry.namespace) {
        ("*", Namespace::Html) => "div",
        ("*", Namespace::Svg) => "g",
        (e, _) => e,
    };
    let (attribute, value) = match entry.value {
        Value::Url | Value::AttributionSrc { .. } => (entry.attribute, EVIL.to_string()),
        Value::UrlList => (entry.attribute, format!("/ok {EVIL}")),
        Value::Srcset => (entry.attribute, format!("/ok.png 1x, {EVIL} 2x")),
        Value::Css if entry.attribute == "*" => ("fill", format!("url({EVIL}#a)")),
        Value::Css => (entry.attribute, format!("background:url({EVIL})")),
        Value::RefreshContent => (entry.attribute, format!("0;url={EVIL}")),
        Value::BaseHref => (entry.attribute, "https://evil.example/".to_string()),
        Value::Document => (entry.attribute, format!("&lt;img src={EVIL}&gt;")),
        Value::AnimationValues => (entry.attribute, format!("/ok;{EVIL}")),
    };
    let gate = match entry.gate {
        Gate::Always => "",
        Gate::LinkRelLoads => " rel=\"stylesheet\"",
        Gate::HttpEquivRefresh => " http-equiv=\"refresh\"",
        Gate::AnimatesHref => " attributeName=\"href\"",
    };
    let tag = format!("<{element}{gate} {attribute}=\"{value}\"></{element}>");
    match entry.namespace {
        Namespace::Html => tag,
        Namespace::Svg => format!("<svg>{tag}</svg>"),
    }
}

#[test]
fn every_table_entry_is_enforced_by_the_rewriter() {
    let policy = shipped_policy();
    let ctx = page(&policy, PAGE);
    let mut unenforced = Vec::new();
    for entry in FETCH_ATTRS {
        assert!(!entry.source.trim().is_empty(), "`{}` has no source", entry.attribute);
        for element in entry.elements {
            let doc = document_for(entry, element);
            let (out, findings) = rewrite_document(&policy, &ctx, doc.as_bytes(), None).unwrap();
            let out = String::from_utf8(out).unwrap();
            // A srcdoc document's loads are recorded under their own constructs.
            let recorded = findings.iter().any(|f| f.construct == entry.construct || entry.value == Value::Document);
            if out.contains("evil.example") || !recorded {
                unenforced.push(format!("{doc}\n  -> {out} (finding for {}: {recorded})", entry.construct.as_str()));
            }
        }
    }
    assert!(unenforced.is_empty(), "table entries the rewriter does not enforce:\n{}", unenforced.join("\n"));
}

#[test]
fn what_the_table_calls_unfetched_is_left_alone() {
    let policy = shipped_policy();
    let ctx = page(&policy, PAGE);
    for entry in NOT_FETCHED {
        let element = match (entry.elements[0], entry.namespace) {
            ("*", _) => "span",
            (e, _) => e,
        };
        let tag = format!("<{element} {}=\"https://evil.example/x\">t</{element}>", entry.attribute);
        let doc = match entry.namespace {
            Namespace::Html => tag,
            Namespace::Svg => format!("<svg>{tag}</svg>"),
        };
        let (out, findings) = rewrite_document(&policy, &ctx, doc.as_bytes(), None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), doc, "`{}`: {}", entry.attribute, entry.reason);
        assert!(findings.is_empty(), "{doc}: {findings:?}");
    }
}

#[test]
fn declarative_shadow_root_content_is_live_and_rewritten() {
    let policy = shipped_policy();
    let ctx = page(&policy, PAGE);
    let page_url = url::Url::parse(PAGE).unwrap();
    let own = same_site("clinic.example");
    for doc in [
        "<div><template shadowrootmode=open><img src=https://evil.example/open.gif></template></div>",
        "<div><template shadowrootmode=CLOSED><link rel=stylesheet href=https://evil.example/c.css></template></div>",
        "<div><template shadowrootmode=open><p><template shadowrootmode=open>\
         <img attributionsrc src=https://evil.example/nested.gif></template></p></template></div>",
    ] {
        // The independent parser agrees the content is live: it loads before rewriting.
        assert!(!loads::offsite_loads(doc, &page_url, true, |h| own(h)).is_empty(), "{doc} loads nothing");
        let (out, _) = rewrite_document(&policy, &ctx, doc.as_bytes(), None).unwrap();
        let out = String::from_utf8(out).unwrap();
        assert!(!out.contains("evil.example"), "{doc}\n  -> {out}");
        assert!(out.contains("shadowrootmode"), "the shadow root itself stays: {out}");
    }
}
