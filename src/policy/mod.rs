//! The compiled, immutable policy: who is first-party, which vendor owns a URL,
//! which vendors a route allows, and [`Policy::decide`] for every construct that
//! makes a browser load something.
//!
//! Built once per rules load by the rules layer's `compile` (the rules layer
//! compiles *into* these types; nothing here knows about rule files); shared
//! read-only (`Arc`) between requests and swapped whole on reload.

pub mod category;
pub mod consent;
pub mod host;
mod page;
pub mod pin;
pub mod signatures;

use std::collections::HashMap;
use std::fmt;

use globset::GlobMatcher;
use serde::Deserialize;
use url::Url;

pub use category::{Category, ConsentSet};
pub use consent::global_privacy_control;
pub use host::{FirstParty, HostPattern, HostPatternError};
pub use page::WebRtc;
pub use pin::AssetPin;

/// `enforce` rewrites pages; `report` leaves them unchanged but records every decision.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Enforce,
    Report,
}

impl Mode {
    /// Closed set, for the `mode` metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Enforce => "enforce",
            Mode::Report => "report",
        }
    }
}

/// How an allowed vendor is loaded.
#[derive(Debug, Deserialize, Clone, Copy, PartialEq, Eq, Default)]
#[serde(rename_all = "snake_case")]
pub enum Serve {
    /// Rewritten to `<prefix>/<vendor>/<host>/<path>` and proxied server-side.
    #[default]
    FirstParty,
    /// Left pointing at the vendor's host.
    Direct,
}

/// Index of a vendor in [`Policy::vendors`].
pub type VendorIdx = usize;

/// A vendor as the proxy uses it.
#[derive(Debug)]
pub struct Vendor {
    pub id: String,
    pub name: String,
    pub category: Category,
    pub baa: bool,
    pub serve: Serve,
    pub hosts: Vec<HostPattern>,
    /// `(host, path glob text, matcher)`.
    pub urls: Vec<(String, String, GlobMatcher)>,
    /// Upper-case HTTP methods the first-party proxy forwards.
    pub methods: Vec<String>,
    pub forward_cookies: Vec<String>,
    pub query_allow: Vec<String>,
    /// `[first_party] block_paths`: `(glob text, matcher over the lowercased, decoded path)`.
    pub block_paths: Vec<(String, GlobMatcher)>,
    /// `[first_party] pin`: paths whose body must hash to a listed SHA-256 (first match wins).
    pub pins: Vec<AssetPin>,
}

impl Vendor {
    /// Whether `path` (canonical: percent-decoded, lowercased, see `block_paths`) is one this
    /// vendor's rule answers locally.
    pub fn blocks_path(&self, path: &str) -> bool {
        self.block_paths.iter().any(|(_, m)| m.is_match(path))
    }

    /// The pin for `path` (canonical, as for [`Vendor::blocks_path`]), if one names it.
    pub fn pin_for(&self, path: &str) -> Option<&AssetPin> {
        self.pins.iter().find(|p| p.matches(path))
    }

    /// Whether the first-party proxy may forward to `host` for this vendor.
    pub fn owns_host(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| p.matches(host)) || self.urls.iter().any(|(h, _, _)| h == host)
    }
}

/// One `[[route]]`.
#[derive(Debug)]
pub struct Route {
    pub pattern: String,
    pub(crate) matcher: GlobMatcher,
    pub allow: Vec<VendorIdx>,
    pub mode: Mode,
    /// `phi = true`: every allowed vendor has `baa = true` (checked at load).
    pub phi: bool,
    pub csp: RouteCsp,
}

/// Validated `[route.csp]` additions.
#[derive(Debug, Default, Clone)]
pub struct RouteCsp {
    pub connect_src: Vec<String>,
    pub img_src: Vec<String>,
    pub script_src: Vec<String>,
    pub style_src: Vec<String>,
    pub font_src: Vec<String>,
    pub frame_src: Vec<String>,
    pub media_src: Vec<String>,
    /// `sha256-…` hashes; non-empty = inline event handlers kept on this route.
    pub unsafe_hashes: Vec<String>,
    /// WebRTC on this route; `None`: the site's setting.
    pub webrtc: Option<WebRtc>,
}

/// The compiled rules.
#[derive(Debug)]
pub struct Policy {
    /// Short hash of every rule file; `rules_info{version}`.
    pub version: String,
    pub site_name: String,
    pub first_party: Vec<HostPattern>,
    /// First-party path prefix, without trailing slash (e.g. `/_tw`).
    pub prefix: String,
    pub consent_cookie: String,
    pub consent_default: ConsentSet,
    /// Categories a `Sec-GPC: 1` request opts out of (`[consent] gpc_opt_out`);
    /// empty: Global Privacy Control is ignored.
    pub gpc_opt_out: Vec<Category>,
    /// Send a Content-Security-Policy with HTML responses.
    pub csp_enabled: bool,
    /// The site's WebRTC setting (routes may override it).
    pub webrtc: WebRtc,
    /// Send `X-DNS-Prefetch-Control: off` with rewritten HTML.
    pub dns_prefetch_off: bool,
    pub routes: Vec<Route>,
    pub vendors: Vec<Vendor>,
    pub(crate) exact_hosts: HashMap<String, VendorIdx>,
    /// Longest suffix first.
    pub(crate) suffix_hosts: Vec<(String, VendorIdx)>,
    /// host -> (specificity, matcher, vendor), most specific first.
    pub(crate) url_claims: HashMap<String, Vec<(usize, GlobMatcher, VendorIdx)>>,
    pub(crate) signatures: signatures::Signatures,
}

/// What a page may load, fixed at the start of a request.
#[derive(Debug, Clone)]
pub struct PageContext {
    pub page_url: Url,
    pub first_party: FirstParty,
    /// Index into [`Policy::routes`]; `None` when no route matches (nothing allowed).
    pub route: Option<usize>,
    pub mode: Mode,
    pub consent: ConsentSet,
    /// The CSP nonce for this response: added to every script the rewriter keeps.
    /// `None`: no nonce attributes are added (no CSP, or the origin's own nonce is reused).
    pub csp_nonce: Option<String>,
    /// Remove inline event handlers and `javascript:` URLs (a strict CSP blocks them).
    pub strip_inline_handlers: bool,
    /// The run-time shim's `<script>` element, inserted first in `<head>` (and first
    /// in srcdoc documents) by the rewriter; `None`: no shim on this page.
    pub shim_tag: Option<String>,
}

/// How a response's scripts meet its CSP; decided before the page context is built.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum ScriptNonce {
    /// No CSP is sent: no nonce attributes, inline handlers stay.
    #[default]
    NoCsp,
    /// The CSP names the origin's own nonce: scripts the origin nonced satisfy
    /// both policies, and no nonce attributes are added.
    Origin,
    /// The CSP names this fresh nonce: the rewriter adds it to every script it keeps.
    Fresh(String),
}

/// The construct through which a page loads something. Closed set: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Construct {
    Script,
    InlineScript,
    Img,
    Source,
    Link,
    Iframe,
    Srcdoc,
    Object,
    Embed,
    Media,
    Track,
    InputImage,
    FormAction,
    Ping,
    /// `attributionsrc` (Attribution Reporting): background requests with the
    /// listed hosts' cookies, counted apart from `ping` so the new vector shows up.
    AttributionSrc,
    MetaRefresh,
    Base,
    Background,
    SvgHref,
    StyleAttr,
    StyleBlock,
    EventHandler,
    Noscript,
}

impl Construct {
    pub fn as_str(self) -> &'static str {
        match self {
            Construct::Script => "script",
            Construct::InlineScript => "inline_script",
            Construct::Img => "img",
            Construct::Source => "source",
            Construct::Link => "link",
            Construct::Iframe => "iframe",
            Construct::Srcdoc => "srcdoc",
            Construct::Object => "object",
            Construct::Embed => "embed",
            Construct::Media => "media",
            Construct::Track => "track",
            Construct::InputImage => "input_image",
            Construct::FormAction => "form_action",
            Construct::Ping => "ping",
            Construct::AttributionSrc => "attributionsrc",
            Construct::MetaRefresh => "meta_refresh",
            Construct::Base => "base",
            Construct::Background => "background",
            Construct::SvgHref => "svg_href",
            Construct::StyleAttr => "style_attr",
            Construct::StyleBlock => "style_block",
            Construct::EventHandler => "event_handler",
            Construct::Noscript => "noscript",
        }
    }

    /// Constructs whose URL is executed as script: `data:`/`blob:` there is code, not data.
    fn executes(self) -> bool {
        matches!(self, Construct::Script | Construct::Iframe | Construct::Object | Construct::Embed)
    }
}

/// Why something was removed. Closed set: a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Reason {
    /// A third party no vendor rule names.
    Unvetted,
    /// A named vendor the page's route does not allow.
    NotAllowedOnRoute,
    /// An allowed vendor whose category the visitor has not granted.
    NoConsent,
    /// An inline script or handler matching a vendor signature that is not allowed.
    InlineSignature,
    /// A scheme that can carry code or reach outside HTTP (`javascript:`, `data:` scripts, …).
    UnsafeUrl,
    /// A `<base>` pointing off-site.
    OffsiteBase,
    /// Content that could not be parsed with certainty (noscript/srcdoc fragments ending mid-tag).
    Unparseable,
    /// An inline event handler or `javascript:` URL, which the page's strict CSP would block.
    CspInline,
}

impl Reason {
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Unvetted => "unvetted",
            Reason::NotAllowedOnRoute => "not_allowed_on_route",
            Reason::NoConsent => "no_consent",
            Reason::InlineSignature => "inline_signature",
            Reason::UnsafeUrl => "unsafe_url",
            Reason::OffsiteBase => "offsite_base",
            Reason::Unparseable => "unparseable",
            Reason::CspInline => "csp_inline",
        }
    }
}

/// The verdict for one URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Leave the URL as it is (first-party, benign scheme, or a `direct` vendor).
    Keep,
    /// Replace the URL with this first-party path.
    FirstParty(String),
    Remove(Reason),
}

/// The outcome recorded in a [`Finding`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Kept,
    FirstParty,
    Removed(Reason),
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Kept => "kept",
            Outcome::FirstParty => "first_party",
            Outcome::Removed(_) => "removed",
        }
    }
}

/// One decision about a third party (first-party loads produce no finding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// Rule id, or `None` for an unknown third party.
    pub vendor: Option<String>,
    pub category: Option<Category>,
    pub construct: Construct,
    pub outcome: Outcome,
    /// Host of the URL (empty for inline constructs); for `--explain` and logs,
    /// never a metric label.
    pub host: String,
}

impl Finding {
    /// A removal that no vendor rule is behind (unknown host, unsafe URL, unparseable content).
    pub fn unattributed(construct: Construct, reason: Reason, host: String) -> Finding {
        Finding { vendor: None, category: None, construct, outcome: Outcome::Removed(reason), host }
    }

    pub fn vendor_label(&self) -> &str {
        self.vendor.as_deref().unwrap_or("unknown")
    }

    /// One JSON object, for `tagwarden rewrite --explain`.
    pub fn to_json(&self) -> String {
        let reason = match self.outcome {
            Outcome::Removed(r) => serde_json::Value::from(r.as_str()),
            _ => serde_json::Value::Null,
        };
        serde_json::json!({
            "vendor": self.vendor_label(),
            "category": self.category.map(Category::as_str).unwrap_or("unknown"),
            "construct": self.construct.as_str(),
            "outcome": self.outcome.as_str(),
            "reason": reason,
            "host": self.host,
        })
        .to_string()
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {} {}", self.vendor_label(), self.construct.as_str(), self.outcome.as_str(), self.host)
    }
}

// === impl Policy: decisions ===

impl Policy {
    pub fn vendor(&self, idx: VendorIdx) -> &Vendor {
        &self.vendors[idx]
    }

    pub fn vendor_by_id(&self, id: &str) -> Option<(VendorIdx, &Vendor)> {
        self.vendors.iter().enumerate().find(|(_, v)| v.id == id)
    }

    /// The vendor that owns `host` + `path`, if any.
    pub fn vendor_for(&self, host: &str, path: &str) -> Option<VendorIdx> {
        if let Some(claims) = self.url_claims.get(host)
            && let Some((_, _, idx)) = claims.iter().find(|(_, m, _)| m.is_match(path))
        {
            return Some(*idx);
        }
        if let Some(idx) = self.exact_hosts.get(host) {
            return Some(*idx);
        }
        self.suffix_hosts
            .iter()
            .find(|(s, _)| {
                host.len() > s.len() + 1
                    && host.ends_with(s.as_str())
                    && host.as_bytes()[host.len() - s.len() - 1] == b'.'
            })
            .map(|(_, idx)| *idx)
    }

    /// The route for a request path (first match wins).
    pub fn route_for(&self, path: &str) -> Option<usize> {
        self.routes.iter().position(|r| r.matcher.is_match(path))
    }

    /// Fixes what a page may load: first-party hosts, route, mode and consent,
    /// for a page sent without a CSP (the CLI, tests).
    pub fn page(&self, page_url: &Url, consent: ConsentSet) -> PageContext {
        self.page_with_csp(page_url, consent, ScriptNonce::NoCsp)
    }

    /// The page context of one response, built once with everything the
    /// rewriter, the `Link`/`Refresh` filter and the CSP header read from it.
    pub fn page_with_csp(&self, page_url: &Url, consent: ConsentSet, nonce: ScriptNonce) -> PageContext {
        let route = self.route_for(page_url.path());
        let mode = route.map_or(Mode::Enforce, |r| self.routes[r].mode);
        // A strict CSP blocks inline handlers and `javascript:` URLs anyway: removing them
        // keeps violation reports meaningful. A route that lists handler hashes keeps them,
        // and report routes pass unchanged.
        let strip_inline_handlers = nonce != ScriptNonce::NoCsp
            && mode == Mode::Enforce
            && route.is_none_or(|r| self.routes[r].csp.unsafe_hashes.is_empty());
        let csp_nonce = match nonce {
            ScriptNonce::Fresh(n) => Some(n),
            ScriptNonce::NoCsp | ScriptNonce::Origin => None,
        };
        PageContext {
            first_party: FirstParty::new(page_url.host_str().unwrap_or_default(), &self.first_party),
            page_url: page_url.clone(),
            route,
            mode,
            consent,
            csp_nonce,
            strip_inline_handlers,
            shim_tag: None,
        }
    }

    fn vendor_allowed(&self, page: &PageContext, idx: VendorIdx) -> Result<(), Reason> {
        let allowed = page.route.is_some_and(|r| self.routes[r].allow.contains(&idx));
        if !allowed {
            return Err(Reason::NotAllowedOnRoute);
        }
        if !page.consent.grants(self.vendors[idx].category) {
            return Err(Reason::NoConsent);
        }
        Ok(())
    }

    /// Whether [`Policy::decide`] keeps `value` (a decoded attribute value or CSS URL)
    /// without a finding, known without parsing it: a value whose first bytes after
    /// C0 controls and spaces (which the URL parser strips) are `data:` in any case
    /// parses as a `data:` URL whatever follows, and `decide` keeps `data:` for every
    /// construct that does not execute it. Inline images run to kilobytes, and
    /// parsing one percent-encodes all of it (issue 12: ~4 % of rewriting the corpus).
    /// A tab or newline inside the scheme only sends the value to the parser.
    pub fn keeps_without_parsing(construct: Construct, value: &str) -> bool {
        let v = value.trim_start_matches(|c: char| c <= ' ').as_bytes();
        !construct.executes() && v.len() >= 5 && v[..5].eq_ignore_ascii_case(b"data:")
    }

    /// Decides one absolute URL found in `construct`. First-party URLs produce no finding.
    pub fn decide(&self, page: &PageContext, construct: Construct, url: &Url) -> (Decision, Option<Finding>) {
        let host = host::normalize_host(url.host_str().unwrap_or_default());
        match url.scheme() {
            "http" | "https" => {}
            "data" | "blob" if !construct.executes() => return (Decision::Keep, None),
            "about" if url.path() == "blank" || url.path() == "srcdoc" => {
                return (Decision::Keep, None);
            }
            _ => {
                let finding = Finding::unattributed(construct, Reason::UnsafeUrl, url.scheme().to_string());
                return (Decision::Remove(Reason::UnsafeUrl), Some(finding));
            }
        }
        if host.is_empty() {
            let finding = Finding::unattributed(construct, Reason::UnsafeUrl, host);
            return (Decision::Remove(Reason::UnsafeUrl), Some(finding));
        }
        if page.first_party.contains(&host) {
            return (Decision::Keep, None);
        }
        let Some(idx) = self.vendor_for(&host, url.path()) else {
            let finding = Finding::unattributed(construct, Reason::Unvetted, host);
            return (Decision::Remove(Reason::Unvetted), Some(finding));
        };
        let vendor = &self.vendors[idx];
        let (decision, outcome) = match self.vendor_allowed(page, idx) {
            Err(reason) => (Decision::Remove(reason), Outcome::Removed(reason)),
            Ok(()) => match vendor.serve {
                Serve::Direct => (Decision::Keep, Outcome::Kept),
                Serve::FirstParty => {
                    (Decision::FirstParty(self.first_party_url(vendor, &host, url)), Outcome::FirstParty)
                }
            },
        };
        let finding =
            Finding { vendor: Some(vendor.id.clone()), category: Some(vendor.category), construct, outcome, host };
        (decision, Some(finding))
    }

    /// `<prefix>/<vendor>/<host>[:port]/<path>?<query>#<fragment>`.
    pub fn first_party_url(&self, vendor: &Vendor, host: &str, url: &Url) -> String {
        let mut out = format!("{}/{}/{}", self.prefix, vendor.id, host);
        if let Some(port) = url.port() {
            out.push_str(&format!(":{port}"));
        }
        out.push_str(url.path());
        if let Some(q) = url.query() {
            out.push('?');
            out.push_str(q);
        }
        if let Some(f) = url.fragment() {
            out.push('#');
            out.push_str(f);
        }
        out
    }

    /// Vendors whose inline signatures match `text`, with the decision for each.
    /// Returns `None` when no signature matches.
    pub fn decide_inline(&self, page: &PageContext, construct: Construct, text: &str) -> Option<(bool, Vec<Finding>)> {
        if self.signatures.is_empty() {
            return None;
        }
        let vendors = self.signatures.matching_vendors(text.as_bytes());
        if vendors.is_empty() {
            return None;
        }
        let mut keep = true;
        let findings = vendors
            .into_iter()
            .map(|idx| {
                let v = &self.vendors[idx];
                let outcome = match self.vendor_allowed(page, idx) {
                    Ok(()) => Outcome::Kept,
                    Err(Reason::NotAllowedOnRoute) => Outcome::Removed(Reason::InlineSignature),
                    Err(r) => Outcome::Removed(r),
                };
                if outcome != Outcome::Kept {
                    keep = false;
                }
                Finding {
                    vendor: Some(v.id.clone()),
                    category: Some(v.category),
                    construct,
                    outcome,
                    host: String::new(),
                }
            })
            .collect::<Vec<_>>();
        // One removed vendor removes the whole script: report every vendor as removed.
        let findings = if keep {
            findings
        } else {
            findings
                .into_iter()
                .map(|mut f| {
                    if f.outcome == Outcome::Kept {
                        f.outcome = Outcome::Removed(Reason::InlineSignature);
                    }
                    f
                })
                .collect()
        };
        Some((keep, findings))
    }
}
