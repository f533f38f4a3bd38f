//! `tagwarden diff`: what a rule change would do to saved pages, before it ships.
//!
//! Each page is rewritten under the old and the new rules (the rewriter's
//! findings, as `rewrite --explain` prints them, with the site's default consent
//! and the CSP context the proxy uses), and every third-party construct whose
//! decision changes is reported, with the Content-Security-Policy directives that
//! change. Pure over bytes and policies; the command line reads the files.

use std::collections::BTreeMap;
use std::sync::Arc;

use url::Url;

use crate::policy::{Finding, Outcome, Policy, ScriptNonce};
use crate::rewrite::rewrite_document;

/// The nonce named in both CSPs, so that only the rules make them differ.
const NONCE: &str = "NONCE";

/// One kind of construct whose decision changes, and how many times on the page.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Change {
    /// Vendor id or `unknown`; `old → new` when the rules attribute it differently.
    pub vendor: String,
    pub construct: &'static str,
    /// Host of the URL; empty for inline constructs.
    pub host: String,
    /// `kept`, `first_party`, `removed (<reason>)`, or `absent` (not reached under those rules).
    pub before: String,
    pub after: String,
    pub count: usize,
}

/// One CSP directive whose value changes (`None`: not sent).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CspChange {
    /// The directive name; `[hosts]` marks the second, host-only script policy.
    pub directive: String,
    pub before: Option<String>,
    pub after: Option<String>,
}

/// What changes on one page.
#[derive(Debug, Clone, Default)]
pub struct PageDiff {
    pub changes: Vec<Change>,
    pub csp: Vec<CspChange>,
}

impl PageDiff {
    pub fn is_empty(&self) -> bool {
        self.changes.is_empty() && self.csp.is_empty()
    }

    /// Constructs that change, counting repeats.
    pub fn constructs_changed(&self) -> usize {
        self.changes.iter().map(|c| c.count).sum()
    }
}

/// Compares the decisions of `old` and `new` on one page served at `url`. An error
/// is the rewriter's, under either rule set (`kind()` of [`crate::rewrite::RewriteError`]).
pub fn page(old: &Arc<Policy>, new: &Arc<Policy>, url: &Url, html: &[u8]) -> Result<PageDiff, String> {
    let before = findings(old, url, html)?;
    let after = findings(new, url, html)?;
    Ok(PageDiff { changes: changes(&before, &after), csp: csp_changes(&csp(old, url), &csp(new, url)) })
}

fn findings(policy: &Arc<Policy>, url: &Url, html: &[u8]) -> Result<Vec<Finding>, String> {
    let nonce = if policy.csp_enabled { ScriptNonce::Fresh(NONCE.to_string()) } else { ScriptNonce::NoCsp };
    let page = policy.page_with_csp(url, policy.consent_default, nonce);
    rewrite_document(policy, &page, html, None)
        .map(|(_, f)| f)
        .map_err(|e| format!("rewrite failed ({}): {e}", e.kind()))
}

fn outcome(o: Outcome) -> String {
    match o {
        Outcome::Removed(r) => format!("removed ({})", r.as_str()),
        other => other.as_str().to_string(),
    }
}

/// Pairs the findings of the two runs by construct and host, in document order,
/// and counts the pairs whose vendor or outcome differs.
fn changes(before: &[Finding], after: &[Finding]) -> Vec<Change> {
    type Key = (&'static str, String);
    let group = |fs: &[Finding]| {
        let mut m: BTreeMap<Key, Vec<(String, String)>> = BTreeMap::new();
        for f in fs {
            m.entry((f.construct.as_str(), f.host.clone()))
                .or_default()
                .push((f.vendor_label().to_string(), outcome(f.outcome)));
        }
        m
    };
    let (b, a) = (group(before), group(after));
    let mut counted: BTreeMap<(String, &'static str, String, String, String), usize> = BTreeMap::new();
    let keys: std::collections::BTreeSet<&Key> = b.keys().chain(a.keys()).collect();
    let absent = ("".to_string(), "absent".to_string());
    for key in keys {
        let (bs, as_) = (b.get(key).map_or(&[][..], Vec::as_slice), a.get(key).map_or(&[][..], Vec::as_slice));
        for i in 0..bs.len().max(as_.len()) {
            let (bv, bo) = bs.get(i).unwrap_or(&absent);
            let (av, ao) = as_.get(i).unwrap_or(&absent);
            if bv == av && bo == ao {
                continue;
            }
            let vendor = match (bv.as_str(), av.as_str()) {
                ("", v) | (v, "") => v.to_string(),
                (x, y) if x == y => x.to_string(),
                (x, y) => format!("{x} → {y}"),
            };
            *counted.entry((vendor, key.0, key.1.clone(), bo.clone(), ao.clone())).or_default() += 1;
        }
    }
    counted
        .into_iter()
        .map(|((vendor, construct, host, before, after), count)| Change {
            vendor,
            construct,
            host,
            before,
            after,
            count,
        })
        .collect()
}

/// The page's CSP directives under `policy`: name → value (empty without a CSP).
fn csp(policy: &Arc<Policy>, url: &Url) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    if !policy.csp_enabled {
        return out;
    }
    let page = policy.page_with_csp(url, policy.consent_default, ScriptNonce::Fresh(NONCE.to_string()));
    let policies = crate::csp::policies_for(policy, &page, NONCE);
    for (header, suffix) in [(&policies.main, ""), (&policies.script_hosts, " [hosts]")] {
        for directive in header.split(';').map(str::trim).filter(|d| !d.is_empty()) {
            let (name, value) = directive.split_once(' ').unwrap_or((directive, ""));
            out.insert(format!("{name}{suffix}"), value.trim().to_string());
        }
    }
    out
}

fn csp_changes(before: &BTreeMap<String, String>, after: &BTreeMap<String, String>) -> Vec<CspChange> {
    let names: std::collections::BTreeSet<&String> = before.keys().chain(after.keys()).collect();
    names
        .into_iter()
        .filter(|n| before.get(*n) != after.get(*n))
        .map(|n| CspChange { directive: n.clone(), before: before.get(n).cloned(), after: after.get(n).cloned() })
        .collect()
}

/// The page's own address: `<link rel=canonical href>`, else `<meta property=og:url content>`
/// (absolute http(s) only).
pub fn canonical_url(html: &[u8]) -> Option<Url> {
    use std::cell::RefCell;
    let canonical: RefCell<Option<Url>> = RefCell::new(None);
    let og: RefCell<Option<Url>> = RefCell::new(None);
    let absolute = |s: &str| Url::parse(s.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    let settings = lol_html::Settings::new()
        .append_element_content_handler(lol_html::element!("link[rel~=canonical][href]", |el| {
            let mut c = canonical.borrow_mut();
            if c.is_none() {
                *c = el.get_attribute("href").as_deref().and_then(absolute);
            }
            Ok(())
        }))
        .append_element_content_handler(lol_html::element!("meta[property='og:url'][content]", |el| {
            let mut o = og.borrow_mut();
            if o.is_none() {
                *o = el.get_attribute("content").as_deref().and_then(absolute);
            }
            Ok(())
        }));
    let mut rewriter = lol_html::HtmlRewriter::new(settings, |_: &[u8]| {});
    rewriter.write(html).ok()?;
    rewriter.end().ok()?;
    canonical.into_inner().or_else(|| og.into_inner())
}

/// The text report of one page (empty when nothing changes).
pub fn render_page(name: &str, url: &Url, diff: &PageDiff) -> String {
    let mut out = String::new();
    if diff.is_empty() {
        return out;
    }
    out.push_str(&format!("{name} ({url})\n"));
    for c in &diff.changes {
        let host = if c.host.is_empty() { "-" } else { &c.host };
        out.push_str(&format!("  {} {} {host}: {} → {}", c.vendor, c.construct, c.before, c.after));
        if c.count > 1 {
            out.push_str(&format!(" (×{})", c.count));
        }
        out.push('\n');
    }
    for c in &diff.csp {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_string());
        out.push_str(&format!("  csp {}: {} → {}\n", c.directive, show(&c.before), show(&c.after)));
    }
    out
}

/// One page as a JSON object.
pub fn page_json(name: &str, url: &Url, diff: &PageDiff) -> serde_json::Value {
    serde_json::json!({
        "page": name,
        "url": url.as_str(),
        "changes": diff.changes.iter().map(|c| serde_json::json!({
            "vendor": c.vendor, "construct": c.construct, "host": c.host,
            "before": c.before, "after": c.after, "count": c.count,
        })).collect::<Vec<_>>(),
        "csp": diff.csp.iter().map(|c| serde_json::json!({
            "directive": c.directive, "before": c.before, "after": c.after,
        })).collect::<Vec<_>>(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::{Category, Construct, Reason};

    fn finding(vendor: Option<&str>, construct: Construct, host: &str, outcome: Outcome) -> Finding {
        Finding {
            vendor: vendor.map(str::to_string),
            category: vendor.map(|_| Category::Analytics),
            construct,
            outcome,
            host: host.to_string(),
        }
    }

    #[test]
    fn equal_decisions_are_not_changes_and_repeats_are_counted() {
        let removed = Outcome::Removed(Reason::NotAllowedOnRoute);
        let before = [
            finding(Some("ga"), Construct::Script, "ga.example", removed),
            finding(Some("ga"), Construct::Script, "ga.example", removed),
            finding(None, Construct::Img, "px.example", Outcome::Removed(Reason::Unvetted)),
        ];
        let after = [
            finding(Some("ga"), Construct::Script, "ga.example", Outcome::FirstParty),
            finding(Some("ga"), Construct::Script, "ga.example", Outcome::FirstParty),
            finding(None, Construct::Img, "px.example", Outcome::Removed(Reason::Unvetted)),
        ];
        let changes = changes(&before, &after);
        assert_eq!(changes.len(), 1, "{changes:?}");
        let c = &changes[0];
        assert_eq!((c.vendor.as_str(), c.construct, c.host.as_str()), ("ga", "script", "ga.example"));
        assert_eq!(
            (c.before.as_str(), c.after.as_str(), c.count),
            ("removed (not_allowed_on_route)", "first_party", 2)
        );
    }

    #[test]
    fn a_newly_attributed_host_names_both_vendors_and_a_missing_construct_is_absent() {
        let before = [finding(None, Construct::Script, "cdn.example", Outcome::Removed(Reason::Unvetted))];
        let after = [
            finding(Some("acme"), Construct::Script, "cdn.example", Outcome::FirstParty),
            finding(Some("acme"), Construct::Iframe, "cdn.example", Outcome::FirstParty),
        ];
        let changes = changes(&before, &after);
        assert_eq!(changes.len(), 2, "{changes:?}");
        assert_eq!(changes[0].vendor, "acme");
        assert_eq!(changes[0].before, "absent");
        assert_eq!(changes[1].vendor, "unknown → acme");
    }

    #[test]
    fn csp_changes_name_added_removed_and_changed_directives() {
        let map = |pairs: &[(&str, &str)]| pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let before = map(&[("script-src", "'self'"), ("img-src", "'self'"), ("frame-src", "'none'")]);
        let after = map(&[("script-src", "'self' a.example"), ("img-src", "'self'"), ("connect-src", "'self'")]);
        let names: Vec<String> = csp_changes(&before, &after).into_iter().map(|c| c.directive).collect();
        assert_eq!(names, ["connect-src", "frame-src", "script-src"]);
    }

    #[test]
    fn the_canonical_link_wins_over_og_url() {
        let html = br#"<meta property="og:url" content="https://og.example/a"><link rel="canonical" href="https://c.example/b">"#;
        assert_eq!(canonical_url(html).unwrap().as_str(), "https://c.example/b");
        let og = br#"<meta property="og:url" content="https://og.example/a"><link rel=canonical href="/relative">"#;
        assert_eq!(canonical_url(og).unwrap().as_str(), "https://og.example/a");
        assert!(canonical_url(b"<p>none</p>").is_none());
    }
}
