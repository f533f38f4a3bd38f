//! Response headers that make a browser load something: `Link` (preload,
//! preconnect, …) and `Refresh`. On HTML responses they are decided like their
//! markup equivalents (`<link>` and meta refresh), with the same page context —
//! the visitor's consent included: entries for an allowed first-party vendor are
//! rewritten to the first-party path, entries the policy removes are dropped.
//! In report mode the headers are left as they are; the decisions are still returned.

use pingora::http::ResponseHeader;

use crate::policy::Mode;
use crate::policy::{Construct, Decision, Finding, PageContext, Policy};

/// Splits a `Link` header value into entries (commas inside `<…>` or quotes do not split).
fn split_links(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_angle, mut in_quote) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

/// Decides one raw header URL; a URL that does not parse is removed.
fn decide(policy: &Policy, page: &PageContext, construct: Construct, raw: &str, found: &mut Vec<Finding>) -> Decision {
    match page.page_url.join(raw.trim()) {
        Ok(u) => {
            let (decision, finding) = policy.decide(page, construct, &u);
            found.extend(finding);
            decision
        }
        Err(_) => Decision::Remove(crate::policy::Reason::UnsafeUrl),
    }
}

/// One `Link` entry after its decision: kept, pointed first-party, or `None` (dropped).
fn link_entry(policy: &Policy, page: &PageContext, entry: &str, found: &mut Vec<Finding>) -> Option<String> {
    let (url, params) = entry.strip_prefix('<').and_then(|r| r.split_once('>'))?;
    match decide(policy, page, Construct::Link, url, found) {
        Decision::Keep => Some(entry.to_string()),
        Decision::FirstParty(u) => Some(format!("<{u}>{params}")),
        Decision::Remove(_) => None,
    }
}

/// Decides the `Link` entries and the `Refresh` header of an HTML response for
/// `page`, and in enforce mode applies the decisions. Returns the findings for
/// the caller to record.
pub fn filter_headers(policy: &Policy, page: &PageContext, resp: &mut ResponseHeader) -> Vec<Finding> {
    let enforce = page.mode == Mode::Enforce;
    let mut found = Vec::new();
    let links: Vec<String> =
        resp.headers.get_all("link").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    if !links.is_empty() {
        let kept: Vec<String> =
            links.iter().flat_map(|v| split_links(v)).filter_map(|e| link_entry(policy, page, e, &mut found)).collect();
        if enforce {
            let _ = resp.remove_header("link");
            if !kept.is_empty() {
                let _ = resp.insert_header("link", kept.join(", "));
            }
        }
    }
    let refresh = resp.headers.get("refresh").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(r) = refresh
        && let Some(target) = crate::rewrite::urls::meta_refresh_url(&r)
        // A refresh to a vendor, even first-party, is a navigation the rules did not ask for.
        && decide(policy, page, Construct::MetaRefresh, target, &mut found) != Decision::Keep
        && enforce
    {
        let _ = resp.remove_header("refresh");
    }
    if enforce {
        // Speculation rules fetched from a header could name any host.
        let _ = resp.remove_header("speculation-rules");
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_values_split_outside_brackets() {
        assert_eq!(
            split_links("</a.css>; rel=preload, <https://e.example/x,y>; rel=\"preconnect, dns-prefetch\""),
            ["</a.css>; rel=preload", "<https://e.example/x,y>; rel=\"preconnect, dns-prefetch\""]
        );
    }
}
