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
//! - Nonce propagation: a module fetch (`import()` from any script, a static
//!   `import` in a module, an import map's target) inherits the nonce of the
//!   script that made it, and a nonce-source allows a request *whatever its
//!   host*. Since tagwarden nonces every script it keeps, one nonced policy
//!   alone would let any kept script (the site's own, or a vetted vendor's)
//!   load code from any host. So every page gets a second policy, the
//!   *script-hosts* policy: `script-src 'self' 'unsafe-inline' <the same
//!   hosts>` with no nonce. A request must satisfy every policy, so scripts
//!   need the nonce (main policy) *and* an allowed host (script-hosts policy);
//!   inline scripts still need the nonce, because the main policy says so.
//!   `'strict-dynamic'` was the other way to think about it and is refused for
//!   the opposite reason: it would trust whatever a kept script inserts.
//!   Each refused request is counted once (see [`counts`]); the script-hosts
//!   policy reports to `<prefix>/csp-report?policy=script-hosts`.
//! - `report` routes get both policies as `Content-Security-Policy-Report-Only`.
//! - Violations go to `<prefix>/csp-report` on the site itself: `report-uri`
//!   always, `report-to` (+ `Reporting-Endpoints`) on https pages, where the
//!   Reporting API accepts an endpoint.

use std::fmt::Write as _;

use base64::Engine as _;

use crate::policy::{HostPattern, PageContext, Policy, WebRtc};
use crate::policy::{Mode, Serve};

/// The CSP sent with tagwarden's own error pages: nothing loads.
pub const ERROR_PAGE_POLICY: &str =
    "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// Reporting API group name used in `report-to`.
pub const REPORT_GROUP: &str = "tagwarden";

/// Reporting API group of the script-hosts policy.
pub const SCRIPT_HOSTS_GROUP: &str = "tagwarden-script-hosts";

/// Query on the report URL that marks a report as sent for the script-hosts policy.
pub const SCRIPT_HOSTS_QUERY: &str = "policy=script-hosts";

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

/// Host-sources a page may load from beyond `'self'`, shared by both policies
/// so that the script-hosts policy names exactly the hosts the main one does.
struct Sources {
    /// The site's own hosts (named ones, or the registrable domain and its subdomains).
    first_party: Vec<String>,
    /// Hosts of vendors served `direct` that this page may load (route + consent).
    direct: Vec<String>,
    /// The route's `[route.csp]` additions.
    extra: crate::policy::RouteCsp,
}

impl Sources {
    fn for_page(policy: &Policy, page: &PageContext) -> Sources {
        let first_party = page.first_party_sources(policy);
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
        Sources { first_party, direct, extra }
    }

    /// Appends `name fixed… first-party… direct… extra…; ` to `out`.
    fn directive(&self, out: &mut String, name: &str, fixed: &[&str], extra: &[String]) {
        out.push_str(name);
        for s in
            fixed.iter().copied().chain(self.first_party.iter().chain(&self.direct).chain(extra).map(String::as_str))
        {
            out.push(' ');
            out.push_str(s);
        }
        out.push_str("; ");
    }
}

/// The two policies tagwarden sends with a page (both enforcing, or both
/// report-only). A request must satisfy every policy the browser holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PagePolicies {
    /// Every directive; scripts need the nonce (or a listed hash).
    pub main: String,
    /// Scripts by host only: the nonce a module fetch inherits does not count here.
    pub script_hosts: String,
}

/// The policies for one page. `nonce` is the value named in the main policy's `script-src`.
pub fn policies_for(policy: &Policy, page: &PageContext, nonce: &str) -> PagePolicies {
    let sources = Sources::for_page(policy, page);
    PagePolicies {
        main: main_policy(policy, page, &sources, nonce),
        script_hosts: script_hosts_policy(policy, page, &sources),
    }
}

/// The main policy text for one page. `nonce` is the value named in `script-src`.
pub fn policy_for(policy: &Policy, page: &PageContext, nonce: &str) -> String {
    main_policy(policy, page, &Sources::for_page(policy, page), nonce)
}

fn main_policy(policy: &Policy, page: &PageContext, sources: &Sources, nonce: &str) -> String {
    let extra = &sources.extra;
    let mut out = String::with_capacity(512);
    // Report-only routes leave the page unchanged (no nonces added), so their
    // policy allows inline scripts and reports what would be blocked by host.
    let nonce_src = if page.mode == Mode::Report { "'unsafe-inline'".to_string() } else { format!("'nonce-{nonce}'") };
    let mut script_fixed = vec!["'self'", nonce_src.as_str()];
    let hashes: Vec<String> = extra.unsafe_hashes.iter().map(|h| format!("'{h}'")).collect();
    if !hashes.is_empty() {
        script_fixed.push("'unsafe-hashes'");
        script_fixed.extend(hashes.iter().map(String::as_str));
    }
    sources.directive(&mut out, "default-src", &["'self'"], &[]);
    sources.directive(&mut out, "script-src", &script_fixed, &extra.script_src);
    sources.directive(&mut out, "style-src", &["'self'", "'unsafe-inline'"], &extra.style_src);
    sources.directive(&mut out, "img-src", &["'self'", "data:", "blob:"], &extra.img_src);
    sources.directive(&mut out, "font-src", &["'self'", "data:"], &extra.font_src);
    sources.directive(&mut out, "connect-src", &["'self'"], &extra.connect_src);
    sources.directive(&mut out, "frame-src", &["'self'"], &extra.frame_src);
    sources.directive(&mut out, "media-src", &["'self'", "blob:"], &extra.media_src);
    sources.directive(&mut out, "worker-src", &["'self'", "blob:"], &[]);
    sources.directive(&mut out, "manifest-src", &["'self'"], &[]);
    sources.directive(&mut out, "form-action", &["'self'"], &[]);
    out.push_str("base-uri 'self'; object-src 'none'; ");
    if page.webrtc(policy) == WebRtc::Block {
        // CSP3's `webrtc` directive: enforced where implemented (not Chromium yet,
        // where the run-time shim refuses peer connections instead).
        out.push_str("webrtc 'block'; ");
    }
    let _ = write!(out, "report-uri {}/csp-report", policy.prefix);
    if page.page_url.scheme() == "https" {
        let _ = write!(out, "; report-to {REPORT_GROUP}");
    }
    out
}

/// The script-hosts policy: `script-src` by host alone, so that a script
/// fetched with a nonce it did not earn (a module `import` inherits its
/// importer's nonce) is still held to the allow-list. Inline scripts and
/// handlers pass here (`'unsafe-inline'`, meaningful because this policy names
/// no nonce or hash): the main policy holds them to the nonce. Eval stays
/// refused in both (no `'unsafe-eval'` anywhere); only the main policy's report
/// of it is counted. `worker-src` repeats the main policy's, because
/// `worker-src` falls back to `script-src`.
fn script_hosts_policy(policy: &Policy, page: &PageContext, sources: &Sources) -> String {
    let mut out = String::with_capacity(256);
    sources.directive(&mut out, "script-src", &["'self'", "'unsafe-inline'"], &sources.extra.script_src);
    sources.directive(&mut out, "worker-src", &["'self'", "blob:"], &[]);
    let _ = write!(out, "report-uri {}/csp-report?{SCRIPT_HOSTS_QUERY}", policy.prefix);
    if page.page_url.scheme() == "https" {
        let _ = write!(out, "; report-to {SCRIPT_HOSTS_GROUP}");
    }
    out
}

/// The `Reporting-Endpoints` value for a page (https pages only).
pub fn reporting_endpoints(policy: &Policy, page: &PageContext) -> Option<String> {
    (page.page_url.scheme() == "https").then(|| {
        let prefix = &policy.prefix;
        format!(
            "{REPORT_GROUP}=\"{prefix}/csp-report\", {SCRIPT_HOSTS_GROUP}=\"{prefix}/csp-report?{SCRIPT_HOSTS_QUERY}\""
        )
    })
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
    "webrtc",
    // Reported by tagwarden's run-time shim, not by the browser's CSP.
    "resource-hint",
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

/// Which of a page's two policies a report was sent for: the script-hosts
/// policy's report URL carries [`SCRIPT_HOSTS_QUERY`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReportSource {
    Main,
    ScriptHosts,
}

impl ReportSource {
    /// From the query of the report request.
    pub fn from_query(query: Option<&str>) -> ReportSource {
        match query {
            Some(q) if q.split('&').any(|p| p == SCRIPT_HOSTS_QUERY) => ReportSource::ScriptHosts,
            _ => ReportSource::Main,
        }
    }
}

/// Whether a violation is counted, so that one refused request is counted once
/// although both policies may refuse it and the browser then reports it twice.
///
/// Both policies name the same host-sources for scripts, and the main one only
/// adds ways to pass (nonce, hashes): every `http(s)` script URL the main policy
/// refuses, the script-hosts policy refuses too. So script URLs are counted from
/// the script-hosts policy's reports (the only ones that see an `import()` that
/// carried a nonce), and everything else — inline code, eval, `data:`/`blob:`
/// scripts and every other directive — from the main policy's.
pub fn counts(v: &Violation, source: ReportSource) -> bool {
    let script_url = matches!(v.directive, "script-src" | "script-src-elem")
        && v.blocked.as_ref().is_some_and(|u| matches!(u.scheme(), "http" | "https"));
    match source {
        ReportSource::Main => !script_url,
        ReportSource::ScriptHosts => script_url,
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
