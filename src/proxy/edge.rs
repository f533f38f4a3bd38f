//! The edge of the proxy: request-head limits, request-smuggling shapes, the
//! request body limit, and the forwarding headers (`X-Forwarded-For`/`-Proto`)
//! sent to the origin — trusted only from `[listen] trusted_proxies`.

use std::net::IpAddr;
use std::time::Duration;

use bytes::Bytes;
use pingora::http::RequestHeader;
use pingora::proxy::Session;

use super::{Ctx, Warden, header_str, status_error};
use crate::metrics::Rejection;

/// Whether a raw HTTP/1 request head carries a `Content-Length` field.
fn raw_head_has_content_length(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        line.contains(&b':') && name.trim_ascii().eq_ignore_ascii_case(b"content-length")
    })
}

/// Whether a raw HTTP/1 request line is `method SP request-target SP version`
/// exactly (RFC 9112 §3): one space between the parts, a token method, and a
/// target in origin-form (`/…`), absolute-form (`http(s)://…`) or asterisk-form
/// (`OPTIONS *`) made only of visible ASCII. The HTTP/1 parser is lenient here —
/// it takes `GET  /a`, `GET a` and a space or NUL inside the target and forwards
/// them re-encoded (`%20/a`, `a`, `/a%00`) — so what it parsed is not what was sent.
fn raw_request_line_is_strict(head: &[u8]) -> bool {
    let line = head.split(|b| *b == b'\n').next().unwrap_or_default();
    let Some(line) = line.strip_suffix(b"\r") else { return false };
    let mut parts = line.split(|b| *b == b' ');
    let (Some(method), Some(target), Some(_version), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let tchar = |b: &u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(b);
    if method.is_empty() || !method.iter().all(tchar) || target.is_empty() {
        return false;
    }
    if !target.iter().all(|b| (0x21..=0x7e).contains(b)) {
        return false;
    }
    let lower = target.to_ascii_lowercase();
    target.starts_with(b"/")
        || lower.starts_with(b"http://")
        || lower.starts_with(b"https://")
        || (target == b"*" && method == b"OPTIONS")
}

/// Whether the client connection is TLS (terminated here).
pub(super) fn is_tls(session: &Session) -> bool {
    session.digest().is_some_and(|d| d.ssl_digest.is_some())
}

impl Warden {
    /// Edge limits and request-smuggling shapes, before anything else runs.
    pub(super) fn check_request_head(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<()> {
        let limits = &self.shared.config.limits;
        // pingora leaves HTTP/1.1 keep-alive idle connections without a timeout.
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(limits.idle_timeout_seconds));
        }
        session.set_read_timeout(Some(Duration::from_secs(limits.request_read_timeout_seconds)));
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let raw_head = session.as_downstream().as_http1().map(|h1| h1.get_headers_raw_bytes());
        if raw_head.as_ref().is_some_and(|h| !raw_request_line_is_strict(h)) {
            self.shared.metrics.rejected(Rejection::Smuggling);
            return Err(status_error(400));
        }
        let req = session.req_header();
        let count = req.headers.len();
        let bytes: usize = req.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        if count > limits.max_request_headers || bytes > limits.max_request_header_bytes {
            self.shared.metrics.rejected(Rejection::HeaderLimits);
            return Err(status_error(431));
        }
        // Smuggling: a Transfer-Encoding other than exactly `chunked` is refused, and so is
        // Transfer-Encoding with Content-Length. pingora drops Content-Length from the parsed
        // header when both are sent, so the raw request head is what tells.
        let te: Vec<&str> = req.headers.get_all("transfer-encoding").iter().filter_map(|v| v.to_str().ok()).collect();
        if !te.is_empty() {
            let chunked_only = te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked");
            let both = raw_head.as_ref().is_none_or(|h| raw_head_has_content_length(h));
            if !chunked_only || both {
                self.shared.metrics.rejected(Rejection::Smuggling);
                return Err(status_error(400));
            }
        }
        if req.headers.get_all("content-length").iter().count() > 1 {
            self.shared.metrics.rejected(Rejection::Smuggling);
            return Err(status_error(400));
        }
        if let Some(len) = header_str(req, "content-length") {
            match len.trim().parse::<u64>() {
                Ok(n) if n as usize > limits.max_request_body_bytes => {
                    self.shared.metrics.rejected(Rejection::BodyTooLarge);
                    return Err(status_error(413));
                }
                Ok(_) => {}
                Err(_) => {
                    self.shared.metrics.rejected(Rejection::Smuggling);
                    return Err(status_error(400));
                }
            }
        }
        Ok(())
    }

    /// Counts request body bytes whatever the framing (a chunked body has no Content-Length to check up front).
    pub(super) fn count_request_body(&self, body: &Option<Bytes>, ctx: &mut Ctx) -> pingora::Result<()> {
        ctx.request_body_bytes += body.as_ref().map_or(0, |b| b.len());
        if ctx.request_body_bytes > self.shared.config.limits.max_request_body_bytes {
            self.shared.metrics.rejected(Rejection::BodyTooLarge);
            return Err(status_error(413));
        }
        Ok(())
    }

    /// `Host` (if configured), `X-Forwarded-For` and `X-Forwarded-Proto` for the origin.
    pub(super) fn forwarding_headers(
        &self,
        session: &Session,
        up: &mut RequestHeader,
        ctx: &Ctx,
    ) -> pingora::Result<()> {
        if let Some(h) = &self.shared.origin.host_header {
            up.insert_header("host", h.as_str())?;
        }
        let peer_ip = ctx.client_ip.map(|ip| ip.to_string()).unwrap_or_default();
        let trusted = ctx.client_ip.is_some_and(|ip| self.is_trusted(ip));
        let xff = match (trusted, header_str(session.req_header(), "x-forwarded-for")) {
            (true, Some(prev)) if !peer_ip.is_empty() => format!("{prev}, {peer_ip}"),
            (true, Some(prev)) => prev.to_string(),
            _ => peer_ip,
        };
        if xff.is_empty() {
            let _ = up.remove_header("x-forwarded-for");
        } else {
            up.insert_header("x-forwarded-for", xff)?;
        }
        let proto = ctx.page_url.as_ref().map_or("http", |u| u.scheme()).to_string();
        up.insert_header("x-forwarded-proto", proto)?;
        Ok(())
    }

    /// The visitor's address: the peer, or — when the peer is a trusted proxy —
    /// the nearest address in its `X-Forwarded-For` that is not itself a trusted
    /// proxy (per-client limits must not count the load balancer as one client).
    pub(super) fn visitor_ip(&self, session: &Session, peer: Option<IpAddr>) -> Option<IpAddr> {
        let peer = peer?;
        if !self.is_trusted(peer) {
            return Some(peer);
        }
        let forwarded = session.req_header().headers.get_all("x-forwarded-for");
        let hops: Vec<IpAddr> = forwarded
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .filter_map(|h| h.trim().parse::<IpAddr>().ok())
            .collect();
        Some(hops.into_iter().rev().find(|ip| !self.is_trusted(*ip)).unwrap_or(peer))
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.shared.trusted_proxies.iter().any(|net| net.contains(&ip))
    }

    /// The page's address as the browser sees it: `https` when the client
    /// connection is TLS (or a trusted proxy says so); the host from `Host`, or
    /// from the HTTP/2 `:authority`.
    pub(super) fn page_url(&self, session: &Session, client_ip: Option<IpAddr>) -> Option<url::Url> {
        let req = session.req_header();
        let host =
            header_str(req, "host").map(str::to_string).or_else(|| req.uri.authority().map(|a| a.to_string()))?;
        let proto = match client_ip {
            _ if is_tls(session) => "https",
            Some(ip) if self.is_trusted(ip) => header_str(req, "x-forwarded-proto").unwrap_or("http"),
            _ => "http",
        };
        let proto = if proto.eq_ignore_ascii_case("https") { "https" } else { "http" };
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        url::Url::parse(&format!("{proto}://{host}{pq}")).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::raw_request_line_is_strict;

    #[test]
    fn request_lines_in_the_three_forms_are_strict() {
        for line in ["GET /a?b=c HTTP/1.1", "GET http://clinic.example/a HTTP/1.1", "OPTIONS * HTTP/1.1"] {
            assert!(raw_request_line_is_strict(format!("{line}\r\nHost: a\r\n\r\n").as_bytes()), "{line}");
        }
    }

    #[test]
    fn request_lines_the_parser_would_re_encode_are_not_strict() {
        for line in [
            &b"GET  /a HTTP/1.1"[..],
            b"GET a HTTP/1.1",
            b"GET /a b HTTP/1.1",
            b"GET /a\x00b HTTP/1.1",
            b"GET * HTTP/1.1",
            b"GET\t/a HTTP/1.1",
            b"G(T /a HTTP/1.1",
            b"GET /\xffa HTTP/1.1",
        ] {
            let mut head = line.to_vec();
            head.extend_from_slice(b"\r\nHost: a\r\n\r\n");
            assert!(!raw_request_line_is_strict(&head), "{}", String::from_utf8_lossy(line));
        }
        assert!(!raw_request_line_is_strict(b"GET /a HTTP/1.1\nHost: a\n\n"), "bare LF");
    }
}
