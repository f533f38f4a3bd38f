//! Pinned vendor assets (`[first_party] pin`): a `GET` on a pinned path is not
//! streamed. tagwarden fetches the vendor's response itself (same peer, TLS
//! checks, scrubbed request head as any vendor request; no validators or ranges,
//! so the whole body comes back), holds it — at most [`MAX_PINNED_BYTES`] —
//! hashes it as the vendor sent it (content coding removed) and answers with
//! the rewritten body only when that hash is pinned. Anything else is a 502
//! before a byte of it is sent, counted in
//! `tagwarden_vendor_assets_refused_total{vendor,reason}`: a compromised vendor CDN
//! cannot ship new code to the site's pages, and the visitor's browser gets a
//! clean error instead of a truncated script.
//!
//! Holding the body is why this is not the streaming path: pingora sends the
//! response head as soon as the upstream's arrives, before any body filter
//! could see the bytes the hash depends on.

use std::time::Duration;

use bytes::Bytes;
use pingora::connectors::http::v1::Connector;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::vendor::filter_vendor_response;
use super::vendor_body::{VendorBodyPipeline, is_script_or_style};
use super::{Ctx, Target, Warden, status_error};
use crate::metrics::AssetRefusal;
use crate::policy::AssetPin;

/// `ErrorType::Custom` of a pinned-path response refused: a 502, counted as an asset
/// refusal (not an upstream error: the vendor answered).
pub(super) const REFUSED_PIN: &str = "pinned vendor asset refused";

/// Largest pinned body held to be hashed (as received, before decoding; and again after).
pub const MAX_PINNED_BYTES: usize = 8 << 20;

/// Request headers never sent on a pinned fetch: validators and ranges (the whole
/// body must come back to be hashed) and hop-by-hop or body framing (a GET has none).
const DROPPED: &[&str] = &[
    "if-none-match",
    "if-modified-since",
    "if-match",
    "if-unmodified-since",
    "range",
    "if-range",
    "upgrade",
    "connection",
    "keep-alive",
    "te",
    "transfer-encoding",
    "content-length",
    "expect",
];

/// The connection pool of pinned fetches (pingora's own HTTP/1 connector).
pub struct PinnedConnector(Connector);

impl std::fmt::Debug for PinnedConnector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PinnedConnector")
    }
}

impl Default for PinnedConnector {
    fn default() -> Self {
        PinnedConnector(Connector::new(None))
    }
}

fn refused() -> Box<Error> {
    Error::explain(ErrorType::Custom(REFUSED_PIN), "pinned vendor asset refused")
}

impl Warden {
    /// Fetches, checks and answers a `GET` on a pinned path (`ctx.target` is the vendor request).
    pub(super) async fn serve_pinned(&self, session: &mut Session, ctx: &Ctx, pin: &AssetPin) -> pingora::Result<()> {
        let Target::Vendor { vendor, host, path_and_query } = &ctx.target else { return Err(status_error(500)) };
        let policy = ctx.policy.clone();
        let v = policy.vendor(*vendor);
        let metrics = &self.shared.metrics;
        let refuse = |reason: AssetRefusal| {
            metrics.asset_refused(&v.id, reason);
            tracing::warn!(vendor = %v.id, reason = reason.as_str(), "pinned vendor asset refused");
            refused()
        };

        let mut up = session.req_header().clone();
        self.scrub_vendor_request(&mut up, ctx, *vendor, host, path_and_query)?;
        for h in DROPPED {
            let _ = up.remove_header(*h);
        }
        // Codings the decoder reads (a browser may offer zstd, which it does not).
        up.insert_header("accept-encoding", "gzip, br")?;

        let vendors = &self.shared.config.vendors;
        let mut peer = self.vendor_peer(ctx, *vendor, host).await?;
        let connect = Duration::from_secs(vendors.connect_timeout_seconds);
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect * 2);
        // The vendor's failures are upstream errors (502, or 504 on a timeout), as on the streaming path.
        let (mut http, _reused) = self.pinned.0.get_http_session(&peer).await.map_err(|e| e.into_up())?;
        http.read_timeout = Some(Duration::from_secs(vendors.read_timeout_seconds));
        http.write_timeout = Some(Duration::from_secs(vendors.write_timeout_seconds));
        http.write_request_header(Box::new(up)).await.map_err(|e| e.into_up())?;
        http.finish_body().await.map_err(|e| e.into_up())?;
        http.read_response().await.map_err(|e| e.into_up())?;
        let mut resp = http.resp_header().cloned().ok_or_else(|| status_error(502))?;
        let status = resp.status.as_u16();
        if (300..400).contains(&status) {
            return Err(refuse(AssetRefusal::Redirect));
        }
        let declared = resp.headers.get("content-length").and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
        if declared.is_some_and(|n| n > MAX_PINNED_BYTES) {
            return Err(refuse(AssetRefusal::TooLarge));
        }
        let mut raw = Vec::new();
        while let Some(chunk) = http.read_body_bytes().await.map_err(|e| e.into_up())? {
            if raw.len() + chunk.len() > MAX_PINNED_BYTES {
                return Err(refuse(AssetRefusal::TooLarge));
            }
            raw.extend_from_slice(&chunk);
        }
        self.pinned.0.release_http_session(http, &peer, Some(Duration::from_secs(60))).await;

        filter_vendor_response(&mut resp)?;
        let body = if (200..300).contains(&status) && status != 204 {
            // Only a script or stylesheet in a coding we can read can be checked.
            let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
            if status == 206 || !is_script_or_style(ct) {
                return Err(refuse(AssetRefusal::Unverifiable));
            }
            let site = ctx.page_url.as_ref().ok_or_else(|| status_error(400))?;
            let Some(mut pipeline) =
                VendorBodyPipeline::start(&mut resp, site, &policy.prefix, v, ctx.accept_encoding.as_deref())?
            else {
                return Err(refuse(AssetRefusal::Unverifiable));
            };
            let path = path_and_query.split('?').next().unwrap_or_default();
            pipeline.hash_as((v.id.clone(), host.clone(), path.to_string()));
            let out = pipeline.feed(&raw, true).map_err(|_| refuse(AssetRefusal::Unverifiable))?;
            let Some(((id, host, path), digest)) = pipeline.take_digest() else {
                return Err(refuse(AssetRefusal::Unverifiable));
            };
            // Recorded whatever the verdict: /inventory shows what the vendor serves now.
            self.shared.evidence.asset(&id, &host, &path, digest, metrics);
            if !pin.accepts(&digest) {
                return Err(refuse(AssetRefusal::NotPinned));
            }
            out
        } else {
            // Errors and empty answers carry no code a page runs.
            Bytes::from(raw)
        };
        write_whole(session, resp, body).await
    }
}

/// Sends `resp` with `body` as one `Content-Length` response.
async fn write_whole(session: &mut Session, mut resp: ResponseHeader, body: Bytes) -> pingora::Result<()> {
    let _ = resp.remove_header("transfer-encoding");
    let _ = resp.remove_header("connection");
    let _ = resp.remove_header("keep-alive");
    resp.insert_header("content-length", body.len().to_string())?;
    session.write_response_header(Box::new(resp), false).await?;
    session.write_response_body(Some(body), true).await
}
