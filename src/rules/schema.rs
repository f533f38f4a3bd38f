//! The rule-file schema: exactly what SREs write in `rules/site.toml` and
//! `rules/vendors/<id>.toml`. Every struct denies unknown keys so a typo is an
//! error with a location, never a silently ignored setting.
//!
//! These types are the *file* layer only; [`crate::policy::Policy`] is the
//! validated, compiled form the proxy uses.

use serde::Deserialize;
use toml::Spanned;

/// Read from the files as they are; the compiled policy owns their meaning.
pub use crate::policy::{Mode, Serve};

/// `rules/site.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteFile {
    pub site: SiteSection,
    #[serde(default)]
    pub consent: ConsentSection,
    #[serde(default)]
    pub csp: CspSection,
    /// Ordered routes; the first whose `path` glob matches the request path wins.
    #[serde(default, rename = "route")]
    pub routes: Vec<RouteSection>,
}

/// `[site]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SiteSection {
    /// Site name, used in logs and `rules_info`.
    pub name: Spanned<String>,
    /// Hosts that are the site itself: exact (`clinic.example`) or suffix
    /// (`*.clinic.example`). Empty (the default) means the registrable domain
    /// of the page's host and all its subdomains (public suffix list).
    #[serde(default)]
    pub first_party: Vec<Spanned<String>>,
    /// Path prefix under which allowed vendors are served first-party. Default `/_tw`.
    #[serde(default = "default_prefix")]
    pub first_party_prefix: Spanned<String>,
    /// `enforce` (default) or `report`.
    #[serde(default)]
    pub mode: Mode,
}

fn default_prefix() -> Spanned<String> {
    Spanned::new(0..0, "/_tw".to_string())
}

/// `[csp]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CspSection {
    /// Send a Content-Security-Policy built from the allow-list with every HTML
    /// response (report-only on `report` routes). Default true.
    #[serde(default = "yes")]
    pub enabled: bool,
    /// WebRTC peer connections (ICE servers reach hosts no CSP directive
    /// governs): `block` (default) refuses `RTCPeerConnection` in the run-time
    /// shim and sends `webrtc 'block'`; `allowed_vendors` keeps only ICE servers on
    /// first-party hosts or hosts of vendors the route allows and the visitor
    /// consented to. A route may override it in `[route.csp]`.
    #[serde(default)]
    pub webrtc: crate::policy::WebRtc,
    /// `X-DNS-Prefetch-Control: off` on rewritten HTML responses, so the browser
    /// does not resolve the host names of off-site links on its own. Default true.
    #[serde(default = "yes")]
    pub dns_prefetch_off: bool,
}

impl Default for CspSection {
    fn default() -> Self {
        CspSection { enabled: true, webrtc: crate::policy::WebRtc::default(), dns_prefetch_off: true }
    }
}

fn yes() -> bool {
    true
}

/// `[consent]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentSection {
    /// Cookie holding the visitor's granted categories, comma separated. Default `tw_consent`.
    #[serde(default = "default_cookie")]
    pub cookie: Spanned<String>,
    /// Categories granted when the cookie is absent. Default `["essential"]`.
    #[serde(default = "default_granted")]
    pub default: Vec<Spanned<String>>,
    /// Categories a request with `Sec-GPC: 1` (Global Privacy Control) opts out
    /// of, whatever the cookie grants. Default `["advertising", "marketing",
    /// "analytics", "session_replay"]`; `[]` ignores GPC. `essential` cannot be listed.
    #[serde(default = "default_gpc_opt_out")]
    pub gpc_opt_out: Vec<Spanned<String>>,
}

impl Default for ConsentSection {
    fn default() -> Self {
        Self { cookie: default_cookie(), default: default_granted(), gpc_opt_out: default_gpc_opt_out() }
    }
}

fn default_gpc_opt_out() -> Vec<Spanned<String>> {
    crate::policy::consent::GPC_OPT_OUT_DEFAULT.iter().map(|c| Spanned::new(0..0, c.as_str().to_string())).collect()
}

fn default_cookie() -> Spanned<String> {
    Spanned::new(0..0, "tw_consent".to_string())
}

fn default_granted() -> Vec<Spanned<String>> {
    vec![Spanned::new(0..0, "essential".to_string())]
}

/// `[[route]]`
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RouteSection {
    /// Path glob: `*` matches within one segment, `**` across segments.
    pub path: Spanned<String>,
    /// Vendor ids allowed on pages under this path.
    #[serde(default)]
    pub allow: Vec<Spanned<String>>,
    /// Overrides `[site] mode` for this route.
    #[serde(default)]
    pub mode: Option<Mode>,
    /// Pages under this path carry protected health information: every vendor in
    /// `allow` must have signed a Business Associate Agreement (`baa = true` in its
    /// rule), or loading fails. Default false.
    #[serde(default)]
    pub phi: Option<Spanned<bool>>,
    /// Additions to this route's Content-Security-Policy.
    #[serde(default)]
    pub csp: RouteCspSection,
}

/// `[route.csp]`: sources added to one route's Content-Security-Policy, for the
/// site's own APIs and CDNs that are not first-party hosts. Each entry is a CSP
/// host-source (`https://api.clinic.example`, `*.cdn.example`, `cdn.example:8443`).
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RouteCspSection {
    #[serde(default)]
    pub connect_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub img_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub script_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub style_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub font_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub frame_src: Vec<Spanned<String>>,
    #[serde(default)]
    pub media_src: Vec<Spanned<String>>,
    /// Opt-in for inline event handlers (`onclick="…"`): by default tagwarden removes
    /// them (a strict CSP would block them anyway). Listing `sha256-…` hashes keeps
    /// handlers on this route and allows exactly those through `'unsafe-hashes'`.
    #[serde(default)]
    pub unsafe_hashes: Vec<Spanned<String>>,
    /// This route's WebRTC setting (`block` | `allowed_vendors`); default: the site's `[csp] webrtc`.
    #[serde(default)]
    pub webrtc: Option<crate::policy::WebRtc>,
}

/// `rules/vendors/<id>.toml`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VendorFile {
    /// Stable identifier: lowercase `[a-z0-9_]`, used in routes, metrics and first-party paths.
    pub id: Spanned<String>,
    /// Display name.
    pub name: String,
    /// One of the closed set of categories (see [`crate::policy::Category`]).
    pub category: Spanned<String>,
    /// Whether the vendor has signed a Business Associate Agreement.
    #[serde(default)]
    pub baa: bool,
    /// Hosts the vendor owns outright: exact (`static.zdassets.com`) or
    /// suffix (`*.zendesk.com`: strict subdomains only; list the apex separately).
    #[serde(default)]
    pub hosts: Vec<Spanned<String>>,
    /// `host/path-glob` patterns for hosts that serve several vendors
    /// (e.g. `www.googletagmanager.com/gtm.js`, `www.facebook.com/tr/**`).
    #[serde(default)]
    pub urls: Vec<Spanned<String>>,
    /// Regexes: an inline `<script>` whose text matches any of these loads this vendor.
    #[serde(default)]
    pub inline_signatures: Vec<Spanned<String>>,
    /// How the vendor is served when a route allows it: `first_party` (default) or `direct`.
    #[serde(default)]
    pub serve: Serve,
    /// What the first-party proxy forwards.
    #[serde(default)]
    pub first_party: FirstPartySection,
}

/// `[first_party]` in a vendor file.
#[derive(Debug, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FirstPartySection {
    /// HTTP methods forwarded. Default `["GET"]`.
    #[serde(default)]
    pub methods: Vec<Spanned<String>>,
    /// Cookie names forwarded to the vendor. Default none.
    #[serde(default)]
    pub forward_cookies: Vec<String>,
    /// Query parameter names kept, values as sent; all others are dropped.
    #[serde(default)]
    pub query_allow: Vec<String>,
    /// Path globs on the vendor's hosts answered locally with a 204 and never
    /// sent (telemetry, error reporters, identify calls). `*` matches within one
    /// segment, `**` across segments; matched case-insensitively against the
    /// percent-decoded path. Default none.
    #[serde(default)]
    pub block_paths: Vec<Spanned<String>>,
    /// Script and stylesheet pins: `pin = [{ path = "/ekr/snippet.js", sha256 = ["sha256-…"] }]`.
    /// A response on a matching path (globs as for `block_paths`) is held whole and served only
    /// when the SHA-256 of its body, as the vendor sends it (content coding removed), is one of
    /// `sha256`; anything else is refused with a 502. Default none.
    #[serde(default)]
    pub pin: Vec<PinSection>,
}

/// One `[first_party] pin` entry.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinSection {
    /// Path glob on the vendor's hosts, starting with `/`.
    pub path: Spanned<String>,
    /// Accepted hashes, SRI form: `sha256-<base64>` (at least one).
    pub sha256: Vec<Spanned<String>>,
}
