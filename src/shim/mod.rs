//! The run-time shim: a small first-party script that tagwarden serves at
//! `<prefix>/shim.js` and inserts, nonced, first in `<head>` of every page it
//! rewrites in enforce mode (and first in every `srcdoc` document).
//!
//! It maps the URLs of allowed vendors served first-party to
//! `<prefix>/<vendor>/<host>/…` wherever a script hands one to the browser at
//! run time — `fetch`, `XMLHttpRequest.open`, `WebSocket`, `EventSource`,
//! `navigator.sendBeacon`, the `src`/`href`/`srcset` setters and `setAttribute`
//! of script, img, link, iframe, source and media elements, markup inserted as
//! HTML, and `window.open` — so a widget that builds its URLs from JSON config
//! still talks only to the site. Other hosts are left as they are: the CSP
//! refuses them, and its report names the vendor.
//!
//! It covers what the Content-Security-Policy cannot: connections no directive
//! governs. Resource hints (`preconnect`, `dns-prefetch`, `prefetch`,
//! `prerender`, `preload`, `modulepreload`) added at run time to a host that is
//! neither first-party nor an allowed vendor lose their `href` before the
//! browser sees them (a hint to an allowed vendor served first-party is pointed
//! at the first-party path); WebRTC peer connections are refused (`block`) or
//! keep only ICE servers on allowed hosts (`allowed_vendors`). It installs
//! itself into every same-origin child frame as soon as the frame can be
//! reached (insertion, `contentWindow`/`contentDocument`, the parser's frames
//! through a mutation observer, `window.open`) and into `srcdoc` documents.
//! Each refusal is reported to `<prefix>/csp-report` with the directive
//! `resource-hint` or `webrtc`, counted like a CSP violation.
//!
//! What it cannot promise: it is JavaScript in the page, so a script that runs
//! before it (none the rewriter keeps: it is first) or a realm it never sees
//! (a cross-origin frame, which carries its own policy) is out of its reach. It
//! loosens no CSP directive; the CSP stays the boundary.
//!
//! The per-page configuration (prefix, first-party hosts, allowed vendors'
//! hosts, the WebRTC setting) travels in the element's `data-tw` attribute, so
//! the script itself is one immutable, cacheable file.

use std::sync::LazyLock;

use sha2::Digest as _;

use crate::policy::{HostPattern, PageContext, Policy, Serve};

/// The shim's source.
pub const SHIM_JS: &str = include_str!("shim.js");

/// Short content hash of [`SHIM_JS`]: the `v` query that makes the URL immutable.
pub fn version() -> &'static str {
    static VERSION: LazyLock<String> = LazyLock::new(|| {
        let digest = sha2::Sha256::digest(SHIM_JS.as_bytes());
        digest.iter().take(6).map(|b| format!("{b:02x}")).collect()
    });
    &VERSION
}

/// The path tagwarden answers with [`SHIM_JS`] (without the version query).
pub fn path(prefix: &str) -> String {
    format!("{prefix}/shim.js")
}

/// The per-page configuration the shim reads from its `data-tw` attribute.
pub fn config_json(policy: &Policy, page: &PageContext) -> String {
    let vendors: Vec<serde_json::Value> = page
        .allowed_vendors(policy)
        .map(|v| {
            let mut hosts: Vec<String> = v.hosts.iter().map(HostPattern::to_string).collect();
            for (host, _, _) in &v.urls {
                if !hosts.contains(host) {
                    hosts.push(host.clone());
                }
            }
            serde_json::json!({ "id": v.id, "hosts": hosts, "first_party": v.serve == Serve::FirstParty })
        })
        .collect();
    serde_json::json!({
        "prefix": policy.prefix,
        "self": page.first_party_sources(policy),
        "vendors": vendors,
        "webrtc": page.webrtc(policy).as_str(),
    })
    .to_string()
}

/// The `<script>` element for a page; `nonce` is the one in force (tagwarden's,
/// or the origin's when its own CSP names one).
pub fn tag(policy: &Policy, page: &PageContext, nonce: Option<&str>) -> String {
    let nonce_attr = nonce.map(|n| format!(" nonce=\"{}\"", escape_attr(n))).unwrap_or_default();
    format!(
        "<script src=\"{}?v={}\"{nonce_attr} data-tw-shim data-tw=\"{}\"></script>",
        escape_attr(&path(&policy.prefix)),
        version(),
        escape_attr(&config_json(policy, page))
    )
}

fn escape_attr(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 16);
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '"' => out.push_str("&quot;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests;
