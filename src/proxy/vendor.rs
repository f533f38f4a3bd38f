//! The first-party vendor path, `<prefix>/<vendor>/<host>/<path>`: which vendor
//! and host a request selects (never a host the request supplies), whether the
//! method and the visitor's consent allow it, and what is scrubbed on the way
//! out (visitor and page identifiers, cookies not listed) and back (vendor
//! cookies; vendor documents sandboxed into an opaque origin).

use std::net::SocketAddr;

use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::html::is_html;
use super::{Ctx, Target, Warden, status_error};
use crate::metrics::{FirstPartyOutcome, UNKNOWN_VENDOR};
use crate::policy::{Policy, VendorIdx};

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
        let query = session.req_header().uri.query().map(str::to_string);
        let target = match self.vendor_target(policy, path, query.as_deref()) {
            Ok(t) => t,
            Err((outcome, vendor)) => {
                metrics.first_party(&vendor, outcome);
                return Err(status_error(404));
            }
        };
        let Target::Vendor { vendor, .. } = &target else { return Err(status_error(404)) };
        let v = policy.vendor(*vendor);
        let method = session.req_header().method.as_str().to_string();
        if !v.methods.contains(&method) {
            metrics.first_party(&v.id, FirstPartyOutcome::Rejected);
            return Err(status_error(405));
        }
        let consent = policy.consent_from_cookie_header(
            session.req_header().headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()),
        );
        if !consent.grants(v.category) {
            // Nothing leaves: the browser gets an empty answer.
            metrics.first_party(&v.id, FirstPartyOutcome::NoConsent);
            let mut h = ResponseHeader::build(204, None)?;
            h.insert_header("cache-control", "no-store")?;
            session.write_response_header(Box::new(h), true).await?;
            return Ok(true);
        }
        ctx.target = target;
        Ok(false)
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
        let host = parts.next().unwrap_or_default().to_ascii_lowercase();
        let tail = parts.next().unwrap_or_default();
        let Some((idx, vendor)) = policy.vendor_by_id(vendor_id) else {
            return Err((FirstPartyOutcome::Rejected, UNKNOWN_VENDOR.into()));
        };
        // No open relay: the host must be one the vendor's rule names, and a bare host (no port, no userinfo).
        if host.is_empty() || host.contains([':', '@']) || !vendor.owns_host(&host) {
            return Err((FirstPartyOutcome::Rejected, vendor.id.clone()));
        }
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

    /// The vendor host's address: DNS, or the test override.
    pub(super) async fn vendor_peer(&self, host: &str) -> pingora::Result<HttpPeer> {
        let port = self.shared.vendor_port;
        let addr = match self.shared.vendor_resolve_override {
            Some(ip) => SocketAddr::new(ip, port),
            None => {
                tokio::net::lookup_host((host, port)).await.ok().and_then(|mut a| a.next()).ok_or_else(|| {
                    Error::explain(ErrorType::ConnectNoRoute, "vendor host does not resolve").into_up()
                })?
            }
        };
        Ok(HttpPeer::new(addr, self.shared.vendor_tls, host.to_string()))
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
        for h in [
            "referer",
            "origin",
            "x-forwarded-for",
            "x-forwarded-proto",
            "x-real-ip",
            "forwarded",
            "authorization",
            "via",
        ] {
            let _ = up.remove_header(h);
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
