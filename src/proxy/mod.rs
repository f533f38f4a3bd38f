//! The pingora side: [`Warden`] implements `ProxyHttp`. Phases stay thin and
//! delegate to the pure core (policy, rewrite). Two kinds of request:
//!
//! - **origin**: forwarded to the configured origin; HTML responses stream through
//!   [`HtmlPipeline`] (decode → rewrite → encode, `html`), everything else passes byte for byte;
//! - **first-party vendor** (`<prefix>/<vendor>/<host>/<path>`, `vendor`): forwarded to a host
//!   the vendor's rule names — never a host the request supplies — after the
//!   visitor's consent is checked, with cookies, client IP and referer stripped.
//!
//! Request-head checks, smuggling, limits and forwarding headers live in `edge`,
//! the CSP report endpoint in `report`; each phase below only calls them.
//!
//! Failure: an HTML response that cannot be rewritten is never passed through.
//! Problems known from the headers become a 502 page; a rewriting error after
//! the first byte aborts the connection without the final chunk.

pub mod codec;
mod edge;
pub mod egress;
pub mod evidence;
mod head_deadline;
mod html;
mod links;
mod pinned;
mod rate;
pub mod redirect;
mod report;
mod scrub;
pub mod server;
mod shim;
pub mod tls;
mod vendor;
mod vendor_body;

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

pub use egress::{CaFileError, VendorEgress, load_ca_file};
pub use evidence::{Evidence, EvidenceError};
pub use html::{HtmlPipeline, charset_of, is_html};
pub use rate::ClientRateLimiter;
pub use report::{MAX_REPORT_BYTES, ReportLimiter};

use crate::config::Config;
use crate::metrics::{FirstPartyOutcome, Listener, Metrics};
use crate::policy::{Policy, VendorIdx};

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
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Where vendor hosts connect (`[vendors] resolve`, DNS, `ca_file`).
    pub egress: VendorEgress,
    /// The third-party inventory, vendor asset hashes and the evidence files.
    pub evidence: Evidence,
}

/// Why [`Shared::new`] failed: a file the config names cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum SharedError {
    /// `[vendors] ca_file`.
    #[error(transparent)]
    CaFile(#[from] CaFileError),
    /// `[inventory] file` or `[decision_log] file`.
    #[error(transparent)]
    Evidence(#[from] EvidenceError),
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
    /// `config`, first-party vendors reached over TLS as `[vendors]` says (pins
    /// from `resolve`, else DNS and port 443; `ca_file` or the system roots).
    /// Fails only on a `[vendors] ca_file`, `[inventory] file` or `[decision_log] file`
    /// that cannot be used.
    pub fn new(policy: Policy, config: Config, origin: Origin) -> Result<Shared, SharedError> {
        let metrics = Metrics::new();
        metrics.set_rules(&policy.version);
        metrics.vendors_loaded(&policy);
        let trusted_proxies =
            config.listen.trusted_proxies.iter().filter_map(|p| crate::config::parse_trusted_proxy(p)).collect();
        let egress = VendorEgress::from_config(&config.vendors)?;
        let evidence = Evidence::open(&config)?;
        Ok(Shared { policy: ArcSwap::from_pointee(policy), metrics, config, origin, trusted_proxies, egress, evidence })
    }
}

/// The pingora application.
#[derive(Debug, Clone)]
pub struct Warden {
    pub shared: Arc<Shared>,
    /// Rate limit for CSP violation reports (process-wide token bucket).
    pub reports: Arc<ReportLimiter>,
    /// Rate limit for the first-party vendor path, per client IP (`[limits] vendor_*`).
    pub vendor_rate: Arc<ClientRateLimiter>,
    /// `Strict-Transport-Security` for responses over TLS (`[tls] hsts_*`).
    hsts: Option<String>,
    /// Connections for pinned vendor assets, fetched whole (`[first_party] pin`).
    pinned: Arc<pinned::PinnedConnector>,
}

impl Warden {
    pub fn new(shared: Arc<Shared>) -> Warden {
        let l = &shared.config.limits;
        let vendor_rate =
            ClientRateLimiter::new(l.vendor_requests_per_second, l.vendor_burst, l.vendor_rate_max_clients);
        let hsts = shared.config.tls.as_ref().and_then(|t| t.hsts_header());
        Warden {
            shared,
            reports: Arc::new(ReportLimiter::default()),
            vendor_rate: Arc::new(vendor_rate),
            pinned: Arc::new(pinned::PinnedConnector::default()),
            hsts,
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
    /// A vendor's JS/CSS/JSON response being rewritten (first-party path).
    vendor_response: Option<vendor_body::VendorBodyPipeline>,
    accept_encoding: Option<String>,
    page_url: Option<url::Url>,
    client_ip: Option<IpAddr>,
    route_label: String,
    request_body_bytes: usize,
    /// The page's path and query, removed from a vendor request body as it streams.
    vendor_request_scrub: Option<scrub::BodyScrub>,
}

fn status_error(code: u16) -> Box<Error> {
    Error::new(ErrorType::HTTPStatus(code))
}

fn header_str<'a>(h: &'a RequestHeader, name: &str) -> Option<&'a str> {
    h.headers.get(name).and_then(|v| v.to_str().ok())
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
            vendor_response: None,
            accept_encoding: None,
            page_url: None,
            client_ip: None,
            route_label: String::new(),
            request_body_bytes: 0,
            vendor_request_scrub: None,
        }
    }

    /// Edge limits and request-smuggling shapes, before anything else runs.
    async fn early_request_filter(&self, session: &mut Session, ctx: &mut Ctx) -> pingora::Result<()> {
        self.shared.metrics.inflight_requests.inc();
        self.check_request_head(session, ctx)
    }

    /// Counts request body bytes whatever the framing (a chunked body has no Content-Length to check up front).
    async fn request_body_filter(
        &self,
        _session: &mut Session,
        body: &mut Option<Bytes>,
        end: bool,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        self.count_request_body(body, ctx)?;
        if let Some(scrub) = &mut ctx.vendor_request_scrub {
            let piece = body.as_deref().unwrap_or_default();
            *body = Some(Bytes::from(scrub.push(piece, end)));
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
        if path == crate::shim::path(&policy.prefix) {
            ctx.route_label = path.clone();
            return self.serve_shim(session).await.map(|()| true);
        }
        ctx.accept_encoding = header_str(session.req_header(), "accept-encoding").map(str::to_string);
        ctx.page_url = self.page_url(session, ctx.client_ip);
        if path == policy.prefix || path.starts_with(&format!("{}/", policy.prefix)) {
            ctx.route_label = format!("{}/*", policy.prefix);
            if let Some(ip) = self.visitor_ip(session, ctx.client_ip)
                && !self.vendor_rate.allow(ip)
            {
                self.shared.metrics.rejected(crate::metrics::Rejection::VendorRateLimited);
                return Err(status_error(429));
            }
            return self.vendor_request(session, ctx, &policy, &path).await;
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
            Target::Vendor { vendor, host, .. } => self.vendor_peer(ctx, *vendor, host).await?,
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
            Target::Origin => self.forwarding_headers(session, up, ctx),
            Target::Vendor { vendor, host, path_and_query } => {
                self.scrub_vendor_request(up, ctx, *vendor, host, path_and_query)
            }
        }
    }

    async fn response_filter(
        &self,
        session: &mut Session,
        resp: &mut ResponseHeader,
        ctx: &mut Ctx,
    ) -> pingora::Result<()> {
        if let Some(hsts) = &self.hsts
            && edge::is_tls(session)
            && !resp.headers.contains_key("strict-transport-security")
        {
            resp.insert_header("strict-transport-security", hsts.as_str())?;
        }
        if let Target::Vendor { vendor, host, path_and_query } = &ctx.target {
            vendor::filter_vendor_response(resp)?;
            // A HEAD answer has no body to hash (its empty hash would read as a change).
            let script = session.req_header().method == http::Method::GET
                && vendor_body::is_script_or_style(resp.headers.get("content-type").and_then(|v| v.to_str().ok()));
            if let Some(site) = &ctx.page_url {
                let policy = ctx.policy.clone();
                let v = policy.vendor(*vendor);
                let path = path_and_query.split('?').next().unwrap_or_default();
                let asset = (v.id.clone(), host.clone(), path.to_string());
                ctx.vendor_response = vendor_body::VendorBodyPipeline::start(
                    resp,
                    site,
                    &policy.prefix,
                    v,
                    ctx.accept_encoding.as_deref(),
                )?;
                if let Some(p) = ctx.vendor_response.as_mut().filter(|_| script) {
                    p.hash_as(asset);
                }
                // A rewritten body's length is unknown up front: chunked, so the visitor's
                // connection is kept (unframed, the body could only end by closing it).
                if ctx.vendor_response.is_some() && session.req_header().method != http::Method::HEAD {
                    resp.insert_header("transfer-encoding", "chunked")?;
                }
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
        match ctx.vendor_response.as_mut() {
            Some(p) => vendor_body::rewrite_vendor_body(p, body, end, &self.shared)?,
            None => self.rewrite_body(body, end, ctx)?,
        }
        Ok(None)
    }

    async fn fail_to_proxy(&self, session: &mut Session, e: &Error, ctx: &mut Ctx) -> FailToProxy {
        let code = match e.etype() {
            ErrorType::HTTPStatus(c) => *c,
            ErrorType::Custom(vendor::REFUSED_ADDRESS | pinned::REFUSED_PIN) => 502,
            ErrorType::ConnectTimedout | ErrorType::ReadTimedout | ErrorType::WriteTimedout => 504,
            _ => match e.esource() {
                pingora::ErrorSource::Upstream => 502,
                // A request body that breaks its framing (a bad chunk size) is the client's
                // error: 400, as for a bad head. A dead connection gets nothing.
                pingora::ErrorSource::Downstream => match e.etype() {
                    ErrorType::ReadError | ErrorType::WriteError | ErrorType::ConnectionClosed => 0,
                    _ => 400,
                },
                _ => 500,
            },
        };
        let refused = matches!(e.etype(), ErrorType::Custom(vendor::REFUSED_ADDRESS | pinned::REFUSED_PIN));
        if let Target::Vendor { vendor, .. } = ctx.target
            && code >= 500
            && !refused
        {
            let id = ctx.policy.vendor(vendor).id.clone();
            self.shared.metrics.first_party(&id, FirstPartyOutcome::UpstreamError);
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
        let elapsed = ctx.started.elapsed();
        metrics.request(Listener::Proxy, code, Some(elapsed.as_secs_f64()));
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
