//! Content-Security-Policy built from the allow-list.
//!
//! HTML rewriting cannot see what scripts do at run time: an allowed script (or
//! a tag manager) can inject a pixel, a script, a `fetch` or a beacon to any host.
//! Every HTML response therefore carries a CSP derived from the same policy, so
//! the browser blocks what the rewriter could not see:
//!
//! - `default-src 'self'`; explicit `script-src`, `img-src`, `connect-src`,
//!   `frame-src`, `font-src`, `style-src`, `media-src`, `worker-src`,
//!   `manifest-src`, `form-action`, `base-uri 'self'`, `object-src 'none'`.
//! - Sources: `'self'`, the site's first-party hosts (named ones, or the
//!   registrable domain and its subdomains), vendors the route allows *and* the
//!   visitor consented to that are served `direct` (first-party vendors are
//!   under `'self'`), and the route's `[route.csp]` additions.
//! - Scripts: a fresh nonce per response, which the rewriter adds to every script
//!   it keeps. No `'unsafe-inline'`, `'unsafe-eval'`, `data:` or `'strict-dynamic'`
//!   for scripts (strict-dynamic would trust whatever an allowed script injects).
//!   Styles keep `'unsafe-inline'`: style attributes are everywhere, and what CSS
//!   can load is still bounded by `img-src` and `font-src`.
//! - Inline event handlers and `javascript:` URLs are removed by the rewriter
//!   (the CSP would block them anyway); a route may keep them by listing their
//!   hashes in `[route.csp] unsafe_hashes` (`'unsafe-hashes' 'sha256-…'`).
//! - Origins that send their own CSP: ours is sent as an additional header, and
//!   browsers enforce both. If the origin's policy uses nonces, tagwarden reuses
//!   the origin's nonce in its own policy and leaves nonce attributes alone, so a
//!   script the origin nonced satisfies both policies and nothing else gains one.
//! - `report` routes get `Content-Security-Policy-Report-Only`.
//! - Violations go to `<prefix>/csp-report` on the site itself: `report-uri`
//!   always, `report-to` (+ `Reporting-Endpoints`) on https pages, where the
//!   Reporting API accepts an endpoint.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::policy::{HostPattern, PageContext, Policy};
use crate::policy::{Mode, Serve};

/// The CSP sent with tagwarden's own error pages: nothing loads.
pub const ERROR_PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Reporting API group name used in `report-to`.
pub const REPORT_GROUP: &str = "tagwarden";

/// A fresh random nonce (128 bits, base64). `None` only if the OS has no randomness.
pub fn new_nonce() -> Option<String> {
    let mut buf = [0u8; 16];
    getrandom::fill(&mut buf).ok()?;
    Some(base64::engine::general_purpose::STANDARD.encode(buf))
}

/// The header carrying the policy for a page in `mode`.
pub fn header_name(mode: Mode) -> &'static str {
    match mode {
        Mode::Enforce => "content-security-policy",
        Mode::Report => "content-security-policy-report-only",
    }
}

/// Nonces named in an origin's CSP header values (`'nonce-…'`).
pub fn origin_nonces<'a>(policies: impl Iterator<Item = &'a str>) -> Vec<String> {
    let mut out = Vec::new();
    for p in policies {
        for token in p.split([' ', ';', '\t']) {
            if let Some(n) = token.strip_prefix("'nonce-").and_then(|t| t.strip_suffix('\''))
                && !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+/=-_".contains(&b))
                && !out.iter().any(|o| o == n)
            {
                out.push(n.to_string());
            }
        }
    }
    out
}

fn push_pattern(list: &mut Vec<String>, p: &HostPattern) {
    let s = p.to_string();
    if !list.contains(&s) {
        list.push(s);
    }
}

/// The policy text for one page. `nonce` is the value named in `script-src`.
pub fn policy_for(policy: &Policy, page: &PageContext, nonce: &str) -> String {
    // First-party hosts beyond 'self'.
    let mut first_party = Vec::new();
    if policy.first_party.is_empty() {
        if let Some(reg) = page.first_party.registrable() {
            first_party.push(reg.to_string());
            first_party.push(format!("*.{reg}"));
        }
    } else {
        for p in &policy.first_party {
            push_pattern(&mut first_party, p);
        }
    }
    // Vendors served direct that this page may load.
    let mut direct = Vec::new();
    if let Some(r) = page.route {
        for idx in &policy.routes[r].allow {
            let v = policy.vendor(*idx);
            if v.serve == Serve::Direct && page.consent.grants(v.category) {
                for h in &v.hosts {
                    push_pattern(&mut direct, h);
                }
                for (host, _, _) in &v.urls {
                    push_pattern(&mut direct, &HostPattern::Exact(host.clone()));
                }
            }
        }
    }
    let extra = page.route.map(|r| policy.routes[r].csp.clone()).unwrap_or_default();
    let report_uri = format!("{}/csp-report", policy.prefix);

    let mut out = String::with_capacity(512);
    let mut directive = |name: &str, fixed: &[&str], extra: &[String]| {
        out.push_str(name);
        for f in fixed {
            out.push(' ');
            out.push_str(f);
        }
        for s in first_party.iter().chain(direct.iter()).chain(extra.iter()) {
            out.push(' ');
            out.push_str(s);
        }
        out.push_str("; ");
    };
    // Report-only routes leave the page unchanged (no nonces added), so their
    // policy allows inline scripts and reports what would be blocked by host.
    let nonce_src = if page.mode == Mode::Report { "'unsafe-inline'".to_string() } else { format!("'nonce-{nonce}'") };
    let mut script_fixed = vec!["'self'", nonce_src.as_str()];
    let hashes: Vec<String> = extra.unsafe_hashes.iter().map(|h| format!("'{h}'")).collect();
    if !hashes.is_empty() {
        script_fixed.push("'unsafe-hashes'");
        script_fixed.extend(hashes.iter().map(String::as_str));
    }
    directive("default-src", &["'self'"], &[]);
    directive("script-src", &script_fixed, &extra.script_src);
    directive("style-src", &["'self'", "'unsafe-inline'"], &extra.style_src);
    directive("img-src", &["'self'", "data:", "blob:"], &extra.img_src);
    directive("font-src", &["'self'", "data:"], &extra.font_src);
    directive("connect-src", &["'self'"], &extra.connect_src);
    directive("frame-src", &["'self'"], &extra.frame_src);
    directive("media-src", &["'self'", "blob:"], &extra.media_src);
    directive("worker-src", &["'self'", "blob:"], &[]);
    directive("manifest-src", &["'self'"], &[]);
    directive("form-action", &["'self'"], &[]);
    out.push_str("base-uri 'self'; object-src 'none'; ");
    let _ = write!(out, "report-uri {report_uri}");
    if page.page_url.scheme() == "https" {
        let _ = write!(out, "; report-to {REPORT_GROUP}");
    }
    out
}

/// The `Reporting-Endpoints` value for a page (https pages only).
pub fn reporting_endpoints(policy: &Policy, page: &PageContext) -> Option<String> {
    (page.page_url.scheme() == "https").then(|| format!("{REPORT_GROUP}=\"{}/csp-report\"", policy.prefix))
}

// === CSP violation reports ===

/// Directives a report may name, as metric label values (anything else is `other`).
const DIRECTIVES: &[&str] = &[
    "default-src",
    "script-src",
    "script-src-elem",
    "script-src-attr",
    "style-src",
    "style-src-elem",
    "style-src-attr",
    "img-src",
    "font-src",
    "connect-src",
    "frame-src",
    "child-src",
    "media-src",
    "worker-src",
    "manifest-src",
    "form-action",
    "base-uri",
    "object-src",
    "frame-ancestors",
];

/// One violation, reduced to what is safe to count and log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Violation {
    /// From [`DIRECTIVES`] or `other`.
    pub directive: &'static str,
    /// The blocked URL without query or fragment, if it was a URL.
    pub blocked: Option<url::Url>,
    /// `inline`, `eval`, `wasm-eval`, … when the blocked "URL" is a keyword.
    pub keyword: Option<&'static str>,
}

fn directive_label(d: &str) -> &'static str {
    let d = d.trim().to_ascii_lowercase();
    let name = d.split_whitespace().next().unwrap_or_default();
    DIRECTIVES.iter().find(|x| **x == name).copied().unwrap_or("other")
}

fn blocked(raw: &str) -> (Option<url::Url>, Option<&'static str>) {
    match raw.trim() {
        "inline" => (None, Some("inline")),
        "eval" => (None, Some("eval")),
        "wasm-eval" => (None, Some("wasm-eval")),
        "trusted-types-policy" | "trusted-types-sink" => (None, Some("trusted-types")),
        other => match url::Url::parse(other) {
            Ok(mut u) => {
                u.set_query(None);
                u.set_fragment(None);
                let _ = u.set_username("");
                let _ = u.set_password(None);
                (Some(u), None)
            }
            Err(_) => (None, None),
        },
    }
}

/// Parses a report body: `application/csp-report` (`{"csp-report": {…}}`) or
/// `application/reports+json` (`[{"type": "csp-violation", "body": {…}}, …]`).
/// At most `max` violations are returned; anything malformed is skipped.
pub fn parse_reports(body: &[u8], max: usize) -> Vec<Violation> {
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(body) else { return Vec::new() };
    let mut out = Vec::new();
    let mut push = |directive: Option<&str>, blocked_raw: Option<&str>| {
        if out.len() >= max {
            return;
        }
        let (blocked, keyword) = blocked(blocked_raw.unwrap_or_default());
        out.push(Violation { directive: directive_label(directive.unwrap_or_default()), blocked, keyword });
    };
    match &value {
        serde_json::Value::Object(m) => {
            if let Some(r) = m.get("csp-report") {
                let d = r.get("effective-directive").or_else(|| r.get("violated-directive")).and_then(|v| v.as_str());
                push(d, r.get("blocked-uri").and_then(|v| v.as_str()));
            }
        }
        serde_json::Value::Array(list) => {
            for item in list {
                if item.get("type").and_then(|t| t.as_str()) != Some("csp-violation") {
                    continue;
                }
                let Some(b) = item.get("body") else { continue };
                let d = b.get("effectiveDirective").or_else(|| b.get("violatedDirective")).and_then(|v| v.as_str());
                push(d, b.get("blockedURL").and_then(|v| v.as_str()));
            }
        }
        _ => {}
    }
    out
}

#[cfg(test)]
mod tests;
