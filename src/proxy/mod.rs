//! The pingora side: [`Warden`] implements `ProxyHttp`. Phases stay thin and
//! delegate to the pure core (policy, rewrite). Two kinds of request:
//!
//! - **origin**: forwarded to the configured origin; HTML responses stream through
//!   [`HtmlPipeline`] (decode → rewrite → encode), everything else passes byte for byte;
//! - **first-party vendor** (`<prefix>/<vendor>/<host>/<path>`): forwarded to a host
//!   the vendor's rule names — never a host the request supplies — after the
//!   visitor's consent is checked, with cookies, client IP and referer stripped.
//!
//! Failure: an HTML response that cannot be rewritten is never passed through.
//! Problems known from the headers become a 502 page; a rewriting error after
//! the first byte aborts the connection without the final chunk.

pub mod codec;
mod links;
pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use async_trait::async_trait;
use bytes::Bytes;
use pingora::http::{RequestHeader, ResponseHeader};
use pingora::prelude::HttpPeer;
use pingora::proxy::{FailToProxy, ProxyHttp, Session};
use pingora::{Error, ErrorType};

use crate::config::Config;
use crate::metrics::Metrics;
use crate::policy::Mode;
use crate::policy::{Policy, VendorIdx};
use crate::rewrite::{HtmlStream, RewriteError, RewriteOptions, lock};
use codec::{Decoder, Encoder};

/// Where requests go.
#[derive(Debug, Clone)]
pub struct Origin {
    pub addr: SocketAddr,
    pub tls: bool,
    pub sni: String,
    /// `Host` sent upstream; `None` keeps the client's.
    pub host_header: Option<String>,
    pub verify_cert: bool,
    pub connect_timeout: Duration,
    pub read_timeout: Duration,
    pub write_timeout: Duration,
    /// CA certificates that replace the system roots for this origin (`[upstream] ca_file`).
    pub ca: Option<Arc<pingora::protocols::tls::CaType>>,
}

/// Everything the proxy shares between requests.
#[derive(Debug)]
pub struct Shared {
    pub policy: ArcSwap<Policy>,
    pub metrics: Metrics,
    pub config: Config,
    pub origin: Origin,
    pub trusted_proxies: Vec<(IpAddr, u8)>,
    /// Port for first-party vendor upstreams (443 in production; tests point it at a loopback sink).
    pub vendor_port: u16,
    /// Resolve every vendor host to this address instead of DNS (tests only).
    pub vendor_resolve_override: Option<IpAddr>,
    /// Use TLS to vendors (true in production).
    pub vendor_tls: bool,
}

impl Origin {
    /// A plain-HTTP origin (the built-in demo, loopback test origins): 5 s to
    /// connect, 30 s per read or write.
    pub fn plain(addr: SocketAddr) -> Origin {
        Origin {
            addr,
            tls: false,
            sni: String::new(),
            host_header: None,
            verify_cert: false,
            connect_timeout: Duration::from_secs(5),
            read_timeout: Duration::from_secs(30),
            write_timeout: Duration::from_secs(30),
            ca: None,
        }
    }
}

impl Shared {
    /// Shared state for a proxy: the rules' metrics set, trusted proxies from
    /// `config`, first-party vendors reached over TLS on port 443 through DNS.
    pub fn new(policy: Policy, config: Config, origin: Origin) -> Shared {
        let metrics = Metrics::new();
        metrics.set_rules(&policy.version);
        let trusted_proxies =
            config.listen.trusted_proxies.iter().filter_map(|p| crate::config::parse_cidr(p)).collect();
        Shared {
            policy: ArcSwap::from_pointee(policy),
            metrics,
            config,
            origin,
            trusted_proxies,
            vendor_port: 443,
            vendor_resolve_override: None,
            vendor_tls: true,
        }
    }

    /// Sends first-party vendor requests to plain HTTP on 127.0.0.1:`port`,
    /// whatever the vendor host (tests, where vendors are loopback sinks).
    pub fn with_loopback_vendors(mut self, port: u16) -> Shared {
        self.vendor_port = port;
        self.vendor_resolve_override = Some(IpAddr::from([127, 0, 0, 1]));
        self.vendor_tls = false;
        self
    }
}

/// The pingora application.
#[derive(Debug, Clone)]
pub struct Warden {
    pub shared: Arc<Shared>,
    /// Rate limit for CSP violation reports (process-wide token bucket).
    pub reports: Arc<ReportLimiter>,
}

impl Warden {
    pub fn new(shared: Arc<Shared>) -> Warden {
        Warden { shared, reports: Arc::new(ReportLimiter::default()) }
    }
}

/// Largest CSP report body read (bytes); the rest is not read.
pub const MAX_REPORT_BYTES: usize = 64 * 1024;
/// Most violations counted from one report body.
const MAX_VIOLATIONS_PER_REPORT: usize = 16;

/// A token bucket: `burst` reports at once, `per_second` sustained. Reports
/// over the rate are answered 204 like any other and counted as dropped, so
/// a flood costs neither memory nor label cardinality.
#[derive(Debug)]
pub struct ReportLimiter {
    state: Mutex<(f64, Instant)>,
    burst: f64,
    per_second: f64,
}

impl Default for ReportLimiter {
    fn default() -> Self {
        ReportLimiter { state: Mutex::new((100.0, Instant::now())), burst: 100.0, per_second: 20.0 }
    }
}

impl ReportLimiter {
    pub fn allow(&self) -> bool {
        let mut st = lock(&self.state);
        let now = Instant::now();
        let refill = now.duration_since(st.1).as_secs_f64() * self.per_second;
        st.0 = (st.0 + refill).min(self.burst);
        st.1 = now;
        if st.0 >= 1.0 {
            st.0 -= 1.0;
            true
        } else {
            false
        }
    }
}

/// What a request is.
#[derive(Debug, Default)]
enum Target {
    #[default]
    Origin,
    Vendor {
        vendor: VendorIdx,
        host: String,
        /// Path and filtered query to send upstream.
        path_and_query: String,
    },
}

/// Per-request state.
#[derive(Debug)]
pub struct Ctx {
    policy: Arc<Policy>,
    started: Instant,
    target: Target,
    html: Option<Mutex<HtmlPipeline>>,
    accept_encoding: Option<String>,
    page_url: Option<url::Url>,
    client_ip: Option<IpAddr>,
    route_label: String,
    request_body_bytes: usize,
}

/// decode → rewrite → encode for one HTML response.
#[derive(Debug)]
pub struct HtmlPipeline {
    decoder: Option<Decoder>,
    stream: HtmlStream,
    encoder: Option<Encoder>,
    mode: Mode,
    cpu: Duration,
    failed: bool,
}

impl HtmlPipeline {
    /// Feeds one body chunk; returns what to send.
    fn feed(&mut self, chunk: &[u8], end: bool, metrics: &Metrics) -> Result<Vec<u8>, RewriteError> {
        let start = Instant::now();
        let result = self.feed_inner(chunk, end, metrics);
        self.cpu += start.elapsed();
        for f in self.stream.take_findings() {
            metrics.record_finding(&f);
        }
        if result.is_err() {
            self.failed = true;
        }
        result
    }

    fn feed_inner(&mut self, chunk: &[u8], end: bool, metrics: &Metrics) -> Result<Vec<u8>, RewriteError> {
        let mut rewritten = Vec::new();
        let stream = &mut self.stream;
        let decoder = self.decoder.as_mut().ok_or(RewriteError::Poisoned)?;
        metrics.bytes_rewritten.inc_by(chunk.len() as u64);
        decoder.decode(chunk, &mut |piece| {
            rewritten.extend(stream.write(piece)?);
            Ok::<(), RewriteError>(())
        })?;
        if end {
            let rest = self.decoder.take().ok_or(RewriteError::Poisoned)?.finish()?;
            rewritten.extend(stream.write(&rest)?);
            rewritten.extend(stream.end()?);
        }
        let encoder = self.encoder.as_mut().ok_or(RewriteError::Poisoned)?;
        let mut out = encoder.encode(rewritten)?;
        if end {
            let enc = self.encoder.take().ok_or(RewriteError::Poisoned)?;
            out.extend(enc.finish()?);
        }
        Ok(out)
    }
}

/// Whether a raw HTTP/1 request head carries a `Content-Length` field.
fn raw_head_has_content_length(head: &[u8]) -> bool {
    head.split(|b| *b == b'\n').skip(1).any(|line| {
        let name = line.split(|b| *b == b':').next().unwrap_or_default();
        line.contains(&b':') && name.trim_ascii().eq_ignore_ascii_case(b"content-length")
    })
}

fn status_error(code: u16) -> Box<Error> {
    Error::new(ErrorType::HTTPStatus(code))
}

fn header_str<'a>(h: &'a RequestHeader, name: &str) -> Option<&'a str> {
    h.headers.get(name).and_then(|v| v.to_str().ok())
}

/// Whether a response is HTML a browser would render: text/html,
/// application/xhtml+xml, or no Content-Type at all (browsers sniff; we rewrite).
pub fn is_html(content_type: Option<&str>) -> bool {
    match content_type {
        None => true,
        Some(ct) => {
            let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
            mime.is_empty() || mime == "text/html" || mime == "application/xhtml+xml"
        }
    }
}

/// The `charset` parameter of a Content-Type value.
pub fn charset_of(content_type: &str) -> Option<String> {
    content_type.split(';').skip(1).find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case("charset").then(|| v.trim().trim_matches('"').to_string())
    })
}

impl Warden {
    /// `<prefix>/csp-report`: counts violations by directive and vendor (a rule id or
    /// `unknown`, never the reported host: report contents are attacker-controlled),
    /// logs them with query strings removed, and always answers 204.
    async fn csp_report(&self, session: &mut Session, policy: &Policy) -> pingora::Result<()> {
        let metrics = &self.shared.metrics;
        let method_ok = session.req_header().method == http::Method::POST;
        let ct = header_str(session.req_header(), "content-type").unwrap_or_default().to_ascii_lowercase();
        let type_ok = ct.starts_with("application/csp-report")
            || ct.starts_with("application/reports+json")
            || ct.starts_with("application/json");
        let mut outcome = "counted";
        if !method_ok {
            outcome = "rejected";
        } else if !type_ok {
            outcome = "malformed";
        } else if !self.reports.allow() {
            outcome = "rate_limited";
        }
        let mut body = Vec::new();
        if outcome == "counted" {
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > MAX_REPORT_BYTES {
                            outcome = "too_large";
                            break;
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        outcome = "malformed";
                        break;
                    }
                }
            }
        }
        if outcome == "counted" {
            let violations = crate::csp::parse_reports(&body, MAX_VIOLATIONS_PER_REPORT);
            if violations.is_empty() {
                outcome = "malformed";
            }
            for v in violations {
                let vendor = v.blocked.as_ref().and_then(|u| {
                    let host = crate::policy::host::normalize_host(u.host_str()?);
                    policy.vendor_for(&host, u.path()).map(|i| policy.vendor(i).id.clone())
                });
                let vendor = vendor.as_deref().unwrap_or("unknown");
                metrics.csp_violations.with_label_values(&[v.directive, vendor]).inc();
                let blocked = v.blocked.as_ref().map(url::Url::as_str).or(v.keyword).unwrap_or("");
                tracing::info!(directive = v.directive, vendor, blocked, "CSP violation");
            }
        }
        metrics.csp_reports.with_label_values(&[outcome]).inc();
        let status = if method_ok { 204 } else { 405 };
        let mut h = ResponseHeader::build(status, Some(2))?;
        h.insert_header("cache-control", "no-store")?;
        if outcome != "counted" {
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(h), true).await?;
        Ok(())
    }

    fn is_trusted(&self, ip: IpAddr) -> bool {
        self.shared.trusted_proxies.iter().any(|(n, l)| crate::config::cidr_contains(*n, *l, ip))
    }

    /// Splits `<prefix>/<vendor>/<host>/<rest>`; decides whether it may be forwarded.
    fn vendor_target(
        &self,
        policy: &Policy,
        path: &str,
        query: Option<&str>,
    ) -> Result<Target, (&'static str, String)> {
        let rest = path.strip_prefix(&policy.prefix).and_then(|r| r.strip_prefix('/')).unwrap_or_default();
        let mut parts = rest.splitn(3, '/');
        let vendor_id = parts.next().unwrap_or_default();
        let host = parts.next().unwrap_or_default().to_ascii_lowercase();
        let tail = parts.next().unwrap_or_default();
        let Some((idx, vendor)) = policy.vendor_by_id(vendor_id) else {
            return Err(("rejected", "unknown".into()));
        };
        // No open relay: the host must be one the vendor's rule names, and a bare host (no port, no userinfo).
        if host.is_empty() || host.contains([':', '@']) || !vendor.owns_host(&host) {
            return Err(("rejected", vendor.id.clone()));
        }
        let allowed_somewhere = policy.routes.iter().any(|r| r.allow.contains(&idx));
        if !allowed_somewhere {
            return Err(("rejected", vendor.id.clone()));
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

    fn page_url(&self, session: &Session, client_ip: Option<IpAddr>) -> Option<url::Url> {
        let req = session.req_header();
        let host = header_str(req, "host").map(str::to_string).or_else(|| req.uri.host().map(str::to_string))?;
        let proto = match client_ip {
            Some(ip) if self.is_trusted(ip) => header_str(req, "x-forwarded-proto").unwrap_or("http"),
            _ => "http",
        };
        let proto = if proto.eq_ignore_ascii_case("https") { "https" } else { "http" };
        let pq = req.uri.path_and_query().map_or("/", |p| p.as_str());
        url::Url::parse(&format!("{proto}://{host}{pq}")).ok()
    }

    fn start_html(&self, session: &Session, ctx: &mut Ctx, resp: &mut ResponseHeader) -> pingora::Result<()> {
        let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        let metrics = &self.shared.metrics;
        let policy = ctx.policy.clone();
        let consent = policy.consent_from_cookie_header(
            session.req_header().headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()),
        );
        let Some(page_url) = ctx.page_url.clone() else {
            return Err(status_error(400));
        };
        let mut page = policy.page(&page_url, consent);
        let mode = page.mode;
        let origin_csp: Vec<String> = resp
            .headers
            .get_all("content-security-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let csp_nonce = crate::csp::prepare_page(&policy, &mut page, &origin_csp);
        let csp_header = csp_nonce
            .map(|n| (crate::csp::policy_for(&policy, &page, &n), crate::csp::reporting_endpoints(&policy, &page)));
        let refuse = |kind: &'static str| {
            metrics.rewrite_errors.with_label_values(&[kind]).inc();
            metrics.html_documents.with_label_values(&[mode.as_str(), "refused"]).inc();
            Error::explain(ErrorType::HTTPStatus(502), "HTML response cannot be rewritten")
        };
        if resp.status.as_u16() == 206 {
            metrics.requests_rejected.with_label_values(&["range_on_html"]).inc();
            return Err(refuse("range_on_html"));
        }
        let ce = resp.headers.get("content-encoding").and_then(|v| v.to_str().ok()).map(str::to_string);
        let Some(decoder) = Decoder::for_content_encoding(ce.as_deref()) else {
            return Err(refuse("unsupported_content_encoding"));
        };
        let opts = RewriteOptions {
            max_memory_bytes: self.shared.config.rewrite.max_memory_bytes,
            max_inline_bytes: self.shared.config.rewrite.max_inline_bytes,
        };
        let charset = ct.as_deref().and_then(charset_of);
        let stream = match HtmlStream::new(policy.clone(), page.clone(), opts, charset.as_deref()) {
            Ok(s) => s,
            Err(e) => return Err(refuse(e.kind())),
        };
        for f in links::filter_headers(&policy, &page, resp) {
            metrics.record_finding(&f);
        }
        if let Some((value, endpoints)) = csp_header {
            // Added beside any policy of the origin's: browsers enforce every policy sent.
            resp.append_header(crate::csp::header_name(mode), value)?;
            if let Some(e) = endpoints {
                resp.insert_header("reporting-endpoints", e)?;
            }
        }
        let encoder = match mode {
            // Report mode passes the origin's bytes: keep its coding and length.
            Mode::Report => None,
            Mode::Enforce => Some(Encoder::for_accept_encoding(ctx.accept_encoding.as_deref())),
        };
        if let Some(enc) = &encoder {
            let _ = resp.remove_header("content-length");
            let _ = resp.remove_header("accept-ranges");
            // The rewritten body is not the origin's representation, and depends on the rules.
            let _ = resp.remove_header("etag");
            match enc.content_encoding() {
                Some(ce) => resp.insert_header("content-encoding", ce)?,
                None => {
                    let _ = resp.remove_header("content-encoding");
                }
            }
            resp.append_header("vary", "Accept-Encoding")?;
            if session.req_header().method != http::Method::HEAD {
                resp.insert_header("transfer-encoding", "chunked")?;
            }
        }
        // Report mode: analyse decoded bytes, forward the originals (see response_body_filter).
        let encoder = encoder.unwrap_or(Encoder::Identity);
        ctx.html = Some(Mutex::new(HtmlPipeline {
            decoder: Some(decoder),
            stream,
            encoder: Some(encoder),
            mode,
            cpu: Duration::ZERO,
            failed: false,
        }));
        Ok(())
    }
}

#[async_trait]
impl ProxyHttp for Warden {
    type CTX = Ctx;

    fn new_ctx(&self) -> Ctx {
        Ctx {
            policy: self.shared.policy.load_full(),
            started: Instant::now(),
            target: Target::Origin,
            html: None,
            accept_encoding: None,
            page_url: None,
            client_ip: None,
            route_label: String::new(),
            request_body_bytes: 0,
        }
    }

    /// Edge limits and request-smuggling shapes, before anything else runs.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<()> {
        self.shared.metrics.inflight_requests.inc();
        let limits = &self.shared.config.limits;
        // pingora leaves HTTP/1.1 keep-alive idle connections without a timeout.
        if session.get_keepalive().is_some() {
            session.set_keepalive(Some(limits.idle_timeout_seconds));
        }
        session.set_read_timeout(Some(Duration::from_secs(limits.request_read_timeout_seconds)));
        ctx.client_ip = session.client_addr().and_then(|a| a.as_inet()).map(|a| a.ip());
        let req = session.req_header();
        let count = req.headers.len();
        let bytes: usize = req.headers.iter().map(|(n, v)| n.as_str().len() + v.len() + 4).sum();
        if count > limits.max_request_headers || bytes > limits.max_request_header_bytes {
            self.shared.metrics.requests_rejected.with_label_values(&["header_limits"]).inc();
            return Err(status_error(431));
        }
        // Smuggling: a Transfer-Encoding other than exactly `chunked` is refused, and so is
        // Transfer-Encoding with Content-Length. pingora drops Content-Length from the parsed
        // header when both are sent, so the raw request head is what tells.
        let te: Vec<&str> = req.headers.get_all("transfer-encoding").iter().filter_map(|v| v.to_str().ok()).collect();
        if !te.is_empty() {
            let chunked_only = te.len() == 1 && te[0].trim().eq_ignore_ascii_case("chunked");
            let both = session
                .as_downstream()
                .as_http1()
                .is_none_or(|h1| raw_head_has_content_length(&h1.get_headers_raw_bytes()));
            if !chunked_only || both {
                self.shared.metrics.requests_rejected.with_label_values(&["smuggling"]).inc();
                return Err(status_error(400));
            }
        }
        if req.headers.get_all("content-length").iter().count() > 1 {
            self.shared.metrics.requests_rejected.with_label_values(&["smuggling"]).inc();
            return Err(status_error(400));
        }
        if let Some(len) = header_str(req, "content-length") {
            match len.trim().parse::<u64>() {
                Ok(n) if n as usize > limits.max_request_body_bytes => {
                    self.shared.metrics.requests_rejected.with_label_values(&["body_too_large"]).inc();
                    return Err(status_error(413));
                }
                Ok(_) => {}
                Err(_) => {
                    self.shared.metrics.requests_rejected.with_label_values(&["smuggling"]).inc();
                    return Err(status_error(400));
                }
            }
        }
        Ok(())
    }

    /// Counts request body bytes whatever the framing (a chunked body has no Content-Length to check up front).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        _end: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        ctx.request_body_bytes += body.as_ref().map_or(0, |b| b.len());
        if ctx.request_body_bytes > self.shared.config.limits.max_request_body_bytes {
            self.shared.metrics.requests_rejected.with_label_values(&["body_too_large"]).inc();
            return Err(status_error(413));
        }
        Ok(())
    }

    async fn request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<bool> {
        let policy = ctx.policy.clone();
        let path = session.req_header().uri.path().to_string();
        if path == format!("{}/csp-report", policy.prefix) {
            ctx.route_label = path.clone();
            return self.csp_report(session, &policy).await.map(|()| true);
        }
        ctx.accept_encoding = header_str(session.req_header(), "accept-encoding").map(str::to_string);
        ctx.page_url = self.page_url(session, ctx.client_ip);
        let metrics = &self.shared.metrics;
        if path == policy.prefix || path.starts_with(&format!("{}/", policy.prefix)) {
            ctx.route_label = format!("{}/*", policy.prefix);
            let query = session.req_header().uri.query().map(str::to_string);
            let target = match self.vendor_target(&policy, &path, query.as_deref()) {
                Ok(t) => t,
                Err((outcome, vendor)) => {
                    metrics.first_party_requests.with_label_values(&[&vendor, outcome]).inc();
                    return Err(status_error(404));
                }
            };
            let Target::Vendor { vendor, .. } = &target else { return Err(status_error(404)) };
            let v = policy.vendor(*vendor);
            let method = session.req_header().method.as_str().to_string();
            if !v.methods.contains(&method) {
                metrics.first_party_requests.with_label_values(&[&v.id, "rejected"]).inc();
                return Err(status_error(405));
            }
            let consent = policy.consent_from_cookie_header(
                session.req_header().headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()),
            );
            if !consent.grants(v.category) {
                // Nothing leaves: the browser gets an empty answer.
                metrics.first_party_requests.with_label_values(&[&v.id, "no_consent"]).inc();
                let mut h = ResponseHeader::build(204, None)?;
                h.insert_header("cache-control", "no-store")?;
                session.write_response_header(Box::new(h), true).await?;
                return Ok(true);
            }
            ctx.target = target;
            return Ok(false);
        }
        ctx.route_label =
            policy.route_for(&path).map_or_else(|| "none".to_string(), |r| policy.routes[r].pattern.clone());
        // A browser navigation never needs a slice of HTML; a slice could not be rewritten.
        let wants_html = header_str(session.req_header(), "accept").is_some_and(|a| a.contains("text/html"));
        if wants_html {
            let _ = session.req_header_mut().remove_header("range");
            let _ = session.req_header_mut().remove_header("if-range");
        }
        Ok(false)
    }

    async fn upstream_peer(&self, _session: &mut Session, ctx: &mut Ctx) -> pingora::Result<Box<HttpPeer>> {
        let origin = &self.shared.origin;
        let vendors = &self.shared.config.vendors;
        let (connect, read, write) = match &ctx.target {
            Target::Origin => (origin.connect_timeout, origin.read_timeout, origin.write_timeout),
            Target::Vendor { .. } => (
                Duration::from_secs(vendors.connect_timeout_seconds),
                Duration::from_secs(vendors.read_timeout_seconds),
                Duration::from_secs(vendors.write_timeout_seconds),
            ),
        };
        let mut peer = match &ctx.target {
            Target::Origin => {
                let mut p = HttpPeer::new(origin.addr, origin.tls, origin.sni.clone());
                p.options.verify_cert = origin.verify_cert;
                p.options.verify_hostname = origin.verify_cert;
                p.options.ca = origin.ca.clone();
                p
            }
            Target::Vendor { host, .. } => {
                let port = self.shared.vendor_port;
                let addr = match self.shared.vendor_resolve_override {
                    Some(ip) => SocketAddr::new(ip, port),
                    None => tokio::net::lookup_host((host.as_str(), port))
                        .await
                        .ok()
                        .and_then(|mut a| a.next())
                        .ok_or_else(|| {
                            Error::explain(ErrorType::ConnectNoRoute, "vendor host does not resolve").into_up()
                        })?,
                };
                HttpPeer::new(addr, self.shared.vendor_tls, host.clone())
            }
        };
        peer.options.connection_timeout = Some(connect);
        peer.options.total_connection_timeout = Some(connect * 2);
        peer.options.read_timeout = Some(read);
        peer.options.write_timeout = Some(write);
        peer.options.idle_timeout = Some(Duration::from_secs(60));
        Ok(Box::new(peer))
    }

    async fn upstream_request_filter(
        &self,
        session: &mut Session,
        up: &mut RequestHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        match &ctx.target {
            Target::Origin => {
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
            }
            Target::Vendor { vendor, host, path_and_query } => {
                let v = ctx.policy.vendor(*vendor);
                let uri: http::Uri = path_and_query.parse().map_err(|_| status_error(400))?;
                up.set_uri(uri);
                up.insert_header("host", host.as_str())?;
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
                self.shared.metrics.first_party_requests.with_label_values(&[&v.id, "forwarded"]).inc();
            }
        }
        Ok(())
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let Target::Vendor { .. } = ctx.target {
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
            return Ok(());
        }
        let status = resp.status.as_u16();
        if session.was_upgraded() || status == 101 {
            return Ok(());
        }
        let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
        if !is_html(ct) || status == 204 || status == 304 || (100..200).contains(&status) {
            return Ok(());
        }
        if (300..400).contains(&status) && resp.headers.get("content-type").is_none() {
            return Ok(());
        }
        self.start_html(session, ctx, resp)
    }

    fn response_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<Option<Duration>> {
        let Some(pipeline) = &ctx.html else { return Ok(None) };
        let mut p = lock(pipeline);
        let metrics = &self.shared.metrics;
        let input = body.take().unwrap_or_default();
        match p.mode {
            Mode::Report => {
                // The page passes unchanged; the analysis only records decisions.
                if !p.failed {
                    let _ = p.feed(&input, end, metrics);
                }
                *body = Some(input);
            }
            Mode::Enforce => match p.feed(&input, end, metrics) {
                Ok(out) => *body = Some(Bytes::from(out)),
                Err(e) => {
                    metrics.rewrite_errors.with_label_values(&[e.kind()]).inc();
                    metrics.html_documents.with_label_values(&["enforce", "aborted"]).inc();
                    tracing::warn!(kind = e.kind(), route = %ctx.route_label, "HTML rewriting failed; response aborted");
                    // Never the raw rest: before the first byte this is a 502 page, after it
                    // the connection closes without the final chunk.
                    return Err(Error::explain(ErrorType::HTTPStatus(502), "rewrite aborted"));
                }
            },
        }
        if end {
            metrics.rewrite_duration.observe(p.cpu.as_secs_f64());
            let outcome = match (p.mode, p.failed) {
                (Mode::Enforce, _) => "rewritten",
                (Mode::Report, false) => "passed",
                (Mode::Report, true) => "aborted",
            };
            metrics.html_documents.with_label_values(&[p.mode.as_str(), outcome]).inc();
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                pingora::ErrorSource::Downstream => 0,
                _ => 500,
            },
        };
        if let Target::Vendor { vendor, .. } = ctx.target
            && code >= 500
        {
            let id = ctx.policy.vendor(vendor).id.clone();
            self.shared.metrics.first_party_requests.with_label_values(&[&id, "upstream_error"]).inc();
        }
        if code > 0 && session.response_written().is_none() {
            let body = error_page(code);
            if let Ok(mut h) = ResponseHeader::build(code, Some(4)) {
                let _ = h.insert_header("content-type", "text/html; charset=utf-8");
                let _ = h.insert_header("content-length", body.len().to_string());
                let _ = h.insert_header("cache-control", "no-store");
                let _ = h.insert_header("connection", "close");
                let _ = h.insert_header("content-security-policy", crate::csp::ERROR_PAGE_POLICY);
                session.set_keepalive(None);
                if session.write_response_header(Box::new(h), false).await.is_ok() {
                    let _ = session.write_response_body(Some(Bytes::from(body)), true).await;
                }
            }
        }
        FailToProxy { error_code: code, can_reuse_downstream: false }
    }

    async fn logging(&self, session: &mut Session, e: Option<&Error>, ctx: &mut Ctx) {
        let metrics = &self.shared.metrics;
        metrics.inflight_requests.dec();
        let code = session.response_written().map_or(0, |r| r.status.as_u16());
        metrics.http_requests.with_label_values(&["proxy", &code.to_string()]).inc();
        let elapsed = ctx.started.elapsed();
        metrics.request_duration.with_label_values(&["proxy"]).observe(elapsed.as_secs_f64());
        // The route glob, never the path or query: those can carry PHI.
        let method = session.req_header().method.as_str().to_string();
        match e {
            None => {
                tracing::info!(%method, route = %ctx.route_label, status = code, ms = elapsed.as_millis() as u64, "request")
            }
            Some(e) => {
                tracing::warn!(%method, route = %ctx.route_label, status = code, error = e.etype().as_str(), "request failed")
            }
        }
    }

    fn suppress_error_log(&self, _session: &Session, _ctx: &Ctx, _error: &Error) -> bool {
        // Our own `logging` line covers it, without pingora's request summary (which includes the URI).
        true
    }

    fn request_summary(&self, session: &Session, _ctx: &Ctx) -> String {
        format!("{} <path elided>", session.req_header().method)
    }
}

/// A plain error page, no third parties, no detail.
pub fn error_page(code: u16) -> String {
    let title = match code {
        400 => "Bad request",
        404 => "Not found",
        405 => "Method not allowed",
        413 => "Request too large",
        431 => "Request headers too large",
        502 => "Bad gateway",
        504 => "Gateway timeout",
        _ => "Error",
    };
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{code} {title}</title></head><body><h1>{code} {title}</h1></body></html>\n"
    )
}
