//! What one page may do beyond its markup: the WebRTC setting in force, the
//! site's own hosts as host-sources, and the vendors it may load — read by the
//! CSP and by the run-time shim from the same [`PageContext`].

use super::{PageContext, Policy, Vendor, VendorIdx};

/// What a page may do with WebRTC peer connections, whose ICE servers (STUN/TURN)
/// are connections no CSP directive governs in today's browsers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WebRtc {
    /// No peer connections (the run-time shim refuses to construct one; the CSP
    /// says `webrtc 'block'` for browsers that implement it).
    #[default]
    Block,
    /// ICE servers only on first-party hosts and hosts of vendors the page may load.
    AllowedVendors,
}

impl WebRtc {
    pub fn as_str(self) -> &'static str {
        match self {
            WebRtc::Block => "block",
            WebRtc::AllowedVendors => "allowed_vendors",
        }
    }
}

impl PageContext {
    /// The WebRTC setting in force: the route's, else the site's.
    pub fn webrtc(&self, policy: &Policy) -> WebRtc {
        self.route.and_then(|r| policy.routes[r].csp.webrtc).unwrap_or(policy.webrtc)
    }

    /// The site's own hosts as host patterns (`clinic.example`, `*.clinic.example`):
    /// the ones the rules name, or the page host's registrable domain and its subdomains.
    pub fn first_party_sources(&self, policy: &Policy) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if policy.first_party.is_empty() {
            if let Some(reg) = self.first_party.registrable() {
                out.push(reg.to_string());
                out.push(format!("*.{reg}"));
            }
        } else {
            for p in &policy.first_party {
                let s = p.to_string();
                if !out.contains(&s) {
                    out.push(s);
                }
            }
        }
        out
    }

    /// Vendors this page may load: allowed on its route and consented to.
    pub fn allowed_vendors<'p>(&self, policy: &'p Policy) -> impl Iterator<Item = &'p Vendor> + use<'p> {
        let allow: &'p [VendorIdx] = match self.route {
            Some(r) => &policy.routes[r].allow,
            None => &[],
        };
        let consent = self.consent;
        allow.iter().map(|i| policy.vendor(*i)).filter(move |v| consent.grants(v.category))
    }
}
