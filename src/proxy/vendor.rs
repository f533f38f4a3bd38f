//! The first-party vendor path, `<prefix>/<vendor>/<host>/<path>`: which vendor
//! and host a request selects (never a host the request supplies), whether the
//! method and the visitor's consent allow it, and what is scrubbed on the way
//! out (visitor and page identifiers, cookies not listed, the page's path and
//! query, telemetry paths answered locally) and back (vendor cookies; vendor
//! documents sandboxed into an opaque origin). Where the connection goes is
//! `egress`'s.

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::egress::Refusal;
use super::html::is_html;
use super::scrub::PageScrub;
use super::{Ctx, Target, Warden, header_str, status_error};
use crate::metrics::{FirstPartyOutcome, UNKNOWN_VENDOR};
use crate::policy::{Policy, VendorIdx};

/// `ErrorType::Custom` of a vendor connection refused for its address: a 502, counted as
/// `private_address` (not `upstream_error`: nothing was asked of the vendor).
pub(super) const REFUSED_ADDRESS: &str = "vendor address refused";

/// Request headers that identify the visitor, the page or the site, never sent to a vendor
/// (with every `x-forwarded-*`; cookies are filtered by the rule's `forward_cookies`).
const VISITOR_HEADERS: &[&str] = &[
    "referer",
    "origin",
    "forwarded",
    "x-real-ip",
    "true-client-ip",
    "cf-connecting-ip",
    "fastly-client-ip",
    "x-client-ip",
    "x-cluster-client-ip",
    "authorization",
    "via",
];

/// Whether `tail` (the path on the vendor host, still percent-encoded) is one tagwarden
/// forwards: no dot segments and no backslashes, raw or percent-encoded, since a vendor's
/// server (or a CDN before it) may resolve them into a path the rule never meant.
fn tail_is_canonical(tail: &str) -> bool {
    let lower = tail.to_ascii_lowercase();
    !lower.contains('\\')
        && !lower.contains("%5c")
        && lower.split('/').all(|seg| {
            let decoded = seg.replace("%2e", ".");
            decoded != "." && decoded != ".."
        })
}

/// The path as `block_paths` globs see it: percent-decoded, lowercased, repeated slashes folded.
fn block_path_form(tail: &str) -> String {
    let decoded = percent_encoding::percent_decode_str(tail).decode_utf8_lossy().to_lowercase();
    let mut out = String::with_capacity(decoded.len() + 1);
    for seg in decoded.split('/').filter(|s| !s.is_empty()) {
        out.push('/');
        out.push_str(seg);
    }
    if out.is_empty() || decoded.ends_with('/') {
        out.push('/');
    }
    out
}

impl Warden {
    /// Selects the vendor and host, and checks method and consent. `Ok(true)`: answered
    /// here (no consent: 204, nothing leaves); `Ok(false)`: forward to the vendor.
    pub(super) async fn vendor_request(
        &self,
        session: &mut Session,
        ctx: &mut Ctx,
        policy: &Policy,
        path: &str,
    ) -> pingora::Result<bool> {
        let metrics = &self.shared.metrics;
        // Absolute-form (`GET https://host/…`) is how a forward proxy is asked: never on this path.
        if !session.req_header().raw_path().starts_with(b"/") {
            metrics.first_party(UNKNOWN_VENDOR, FirstPartyOutcome::Rejected);
            return Err(status_error(400));
        }
        let query = session.req_header().uri.query().map(str::to_string);
        let target = match self.vendor_target(policy, path, query.as_deref()) {
            Ok(t) => t,
            Err((outcome, vendor)) => {
                metrics.first_party(&vendor, outcome);
                return Err(status_error(404));
            }
        };
        let Target::Vendor { vendor, host, path_and_query } = target else { return Err(status_error(404)) };
        let v = policy.vendor(vendor);
        let method = session.req_header().method.as_str().to_string();
        if !v.methods.contains(&method) {
            metrics.first_party(&v.id, FirstPartyOutcome::Rejected);
            return Err(status_error(405));
        }
        let vendor_path = path_and_query.split('?').next().unwrap_or_default();
        if v.blocks_path(&block_path_form(vendor_path)) {
            // Telemetry the rule names: answered here, nothing leaves.
            metrics.first_party(&v.id, FirstPartyOutcome::Blocked);
            return self.answer_empty(session).await.map(|()| true);
        }
        // A pinned script is fetched whole and checked before release (`pinned`).
        let pin =
            if method == "GET" { v.pins.iter().position(|p| p.matches(&block_path_form(vendor_path))) } else { None };
        let headers = &session.req_header().headers;
        let consent = policy.consent_for(
            headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()),
            headers.get("sec-gpc").is_some_and(|v| crate::policy::global_privacy_control(v.as_bytes())),
        );
        if !consent.grants(v.category) {
            // Nothing leaves: the browser gets an empty answer.
            metrics.first_party(&v.id, FirstPartyOutcome::NoConsent);
            return self.answer_empty(session).await.map(|()| true);
        }
        let page = self.referring_page(session, ctx, policy);
        let path_and_query = match (&page, path_and_query.split_once('?')) {
            (Some(page), Some((p, q))) => format!("{p}?{}", String::from_utf8_lossy(&page.apply(q.as_bytes()))),
            _ => path_and_query,
        };
        // WebSocket frames pass as they are; an HTTP body is scrubbed as it streams.
        let upgrade = method == "GET" && session.req_header().headers.contains_key("upgrade");
        ctx.vendor_request_scrub = page.filter(|_| !upgrade).map(|p| p.body());
        ctx.target = Target::Vendor { vendor, host, path_and_query };
        if let Some(i) = pin {
            return self.serve_pinned(session, ctx, &policy.vendor(vendor).pins[i]).await.map(|()| true);
        }
        Ok(false)
    }

    /// `204`, no body, not cached: what the browser gets when nothing may leave.
    async fn answer_empty(&self, session: &mut Session) -> pingora::Result<()> {
        let mut h = ResponseHeader::build(204, None)?;
        h.insert_header("cache-control", "no-store")?;
        session.write_response_header(Box::new(h), true).await
    }

    /// The site page this vendor request comes from: its same-origin `Referer` (same host
    /// and port as the request's own `Host`; the scheme is not compared, as a TLS-terminating
    /// load balancer hides it), unless that is a vendor document under the prefix itself.
    fn referring_page(&self, session: &Session, ctx: &Ctx, policy: &Policy) -> Option<PageScrub> {
        let own = ctx.page_url.as_ref()?;
        let referer = url::Url::parse(header_str(session.req_header(), "referer")?).ok()?;
        let same_site = referer.host_str() == own.host_str() && referer.port() == own.port();
        let under_prefix = referer.path().starts_with(&format!("{}/", policy.prefix));
        if !same_site || under_prefix {
            return None;
        }
        PageScrub::for_page(&referer)
    }

    /// Splits `<prefix>/<vendor>/<host>/<rest>`; decides whether it may be forwarded.
    fn vendor_target(
        &self,
        policy: &Policy,
        path: &str,
        query: Option<&str>,
    ) -> Result<Target, (FirstPartyOutcome, String)> {
        let rest = path.strip_prefix(&policy.prefix).and_then(|r| r.strip_prefix('/')).unwrap_or_default();
        let mut parts = rest.splitn(3, '/');
        let vendor_id = parts.next().unwrap_or_default();
        let host = parts.next().unwrap_or_default();
        let tail = parts.next().unwrap_or_default();
        let Some((idx, vendor)) = policy.vendor_by_id(vendor_id) else {
            return Err((FirstPartyOutcome::Rejected, UNKNOWN_VENDOR.into()));
        };
        // No open relay: the host must be one the vendor's rule names, spelled as a browser
        // spells it (lowercase, no port, userinfo, encoding, trailing dot or IP literal), and
        // the path may not climb out of itself.
        if !crate::config::is_dns_name(host) || !vendor.owns_host(host) || !tail_is_canonical(tail) {
            return Err((FirstPartyOutcome::Rejected, vendor.id.clone()));
        }
        let host = host.to_string();
        let allowed_somewhere = policy.routes.iter().any(|r| r.allow.contains(&idx));
        if !allowed_somewhere {
            return Err((FirstPartyOutcome::Rejected, vendor.id.clone()));
        }
        let kept: Vec<&str> = query
            .unwrap_or_default()
            .split('&')
            .filter(|kv| !kv.is_empty())
            .filter(|kv| {
                let name = kv.split('=').next().unwrap_or_default();
                vendor.query_allow.iter().any(|a| a == name)
            })
            .collect();
        let mut path_and_query = format!("/{tail}");
        if !kept.is_empty() {
            path_and_query.push('?');
            path_and_query.push_str(&kept.join("&"));
        }
        Ok(Target::Vendor { vendor: idx, host, path_and_query })
    }

    /// The vendor host over TLS (SNI = the host, certificate and name verified against
    /// `[vendors] ca_file` or the system roots), at its `resolve` pin or its public DNS address.
    pub(super) async fn vendor_peer(&self, ctx: &Ctx, vendor: VendorIdx, host: &str) -> pingora::Result<HttpPeer> {
        let egress = &self.shared.egress;
        let addr = match egress.address(host).await {
            Ok(addr) => addr,
            Err(Refusal::NoAddress) => {
                return Err(Error::explain(ErrorType::ConnectNoRoute, "vendor host does not resolve").into_up());
            }
            Err(Refusal::Reserved(_)) => {
                self.shared.metrics.first_party(&ctx.policy.vendor(vendor).id, FirstPartyOutcome::PrivateAddress);
                return Err(Error::explain(
                    ErrorType::Custom(REFUSED_ADDRESS),
                    "vendor host resolves to a non-public address",
                ));
            }
        };
        let mut peer = HttpPeer::new(addr, true, host.to_string());
        peer.options.verify_cert = true;
        peer.options.verify_hostname = true;
        peer.options.ca = egress.ca.clone();
        Ok(peer)
    }

    /// Points the request at the vendor and strips what identifies the visitor or the page.
    pub(super) fn scrub_vendor_request(
        &self,
        up: &mut RequestHeader,
        ctx: &Ctx,
        vendor: VendorIdx,
        host: &str,
        path_and_query: &str,
    ) -> pingora::Result<()> {
        let v = ctx.policy.vendor(vendor);
        let uri: http::Uri = path_and_query.parse().map_err(|_| status_error(400))?;
        up.set_uri(uri);
        up.insert_header("host", host)?;
        // Nothing that identifies the visitor or the page goes to the vendor.
        let forwarded: Vec<String> =
            up.headers.keys().map(|n| n.as_str().to_string()).filter(|n| n.starts_with("x-forwarded-")).collect();
        for h in VISITOR_HEADERS.iter().copied().chain(forwarded.iter().map(String::as_str)) {
            let _ = up.remove_header(h);
        }
        if ctx.vendor_request_scrub.is_some() {
            // The scrubbed body's length is not known up front: pingora sends it chunked.
            let _ = up.remove_header("content-length");
        }
        let cookies: Vec<String> = up
            .headers
            .get_all("cookie")
            .iter()
            .filter_map(|c| c.to_str().ok())
            .flat_map(|c| c.split(';').map(|p| p.trim().to_string()).collect::<Vec<_>>())
            .filter(|p| v.forward_cookies.iter().any(|f| p.split('=').next() == Some(f.as_str())))
            .collect();
        let _ = up.remove_header("cookie");
        if !cookies.is_empty() {
            up.insert_header("cookie", cookies.join("; "))?;
        }
        self.shared.metrics.first_party(&v.id, FirstPartyOutcome::Forwarded);
        Ok(())
    }
}

/// A vendor's response headers: no cookies on the site's host, no sniffing, and
/// vendor documents sandboxed.
pub(super) fn filter_vendor_response(resp: &mut ResponseHeader) -> pingora::Result<()> {
    // Vendors may not set cookies on the site's host.
    let _ = resp.remove_header("set-cookie");
    resp.insert_header("x-content-type-options", "nosniff")?;
    // A vendor document served from the site's own origin would be same-origin
    // with the site (cookies, storage, DOM of other frames): sandbox it into an
    // opaque origin. Vendor scripts are not affected (they run in the page anyway).
    let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
    if ct.is_none_or(|ct| is_html(Some(ct)) || ct.to_ascii_lowercase().contains("svg") || ct.contains("xml")) {
        resp.append_header(
            "content-security-policy",
            "sandbox allow-scripts allow-forms allow-popups; base-uri 'none'; object-src 'none'",
        )?;
    }
    Ok(())
}
