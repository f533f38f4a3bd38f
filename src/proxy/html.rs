//! HTML responses: the decode → rewrite → encode pipeline ([`HtmlPipeline`]),
//! set up from the response head by `start_html` (page context, CSP header,
//! `Link`/`Refresh` filtering, codings) and fed chunk by chunk. Fails closed:
//! problems known from the head become a 502 page; a rewriting error after the
//! first byte aborts the response without its final chunk.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use pingora::http::ResponseHeader;
use pingora::proxy::Session;
use pingora::{Error, ErrorType};

use super::codec::{Decoder, Encoder};
use super::{Ctx, Shared, Warden, links, status_error};
use crate::decision_log::DocumentRecord;
use crate::metrics::{DocumentOutcome, Metrics, Rejection};
use crate::policy::{Mode, Policy, ScriptNonce};
use crate::rewrite::{HtmlStream, RewriteError, RewriteOptions, lock};

/// decode → rewrite → encode for one HTML response.
#[derive(Debug)]
pub struct HtmlPipeline {
    decoder: Option<Decoder>,
    stream: HtmlStream,
    encoder: Option<Encoder>,
    mode: Mode,
    cpu: Duration,
    failed: bool,
    /// The page's route glob, for the inventory (never the path).
    route: Option<String>,
    /// This document's decision-log record, when `[decision_log] file` is set.
    record: Option<DocumentRecord>,
}

impl HtmlPipeline {
    /// Feeds one body chunk; returns what to send.
    fn feed(&mut self, chunk: &[u8], end: bool, shared: &Shared) -> Result<Vec<u8>, RewriteError> {
        let metrics = &shared.metrics;
        let start = Instant::now();
        let result = self.feed_inner(chunk, end, metrics);
        self.cpu += start.elapsed();
        let findings = self.stream.take_findings();
        for f in &findings {
            metrics.record_finding(f);
            if let Some(r) = &mut self.record {
                r.add(f);
            }
        }
        shared.evidence.references(self.route.as_deref(), &findings, metrics);
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
            let out = stream.write(piece)?;
            // Usually one piece per chunk: keep its buffer rather than copy it.
            if rewritten.is_empty() {
                rewritten = out;
            } else {
                rewritten.extend_from_slice(&out);
            }
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

/// The nonce this response's CSP names, and how the page's scripts meet it:
/// the origin's own nonce when its CSP has one, else a fresh one. `None`: no CSP
/// (disabled in the rules, or the OS has no randomness).
fn script_nonce(policy: &Policy, origin_csp: &[String]) -> Option<(String, ScriptNonce)> {
    if !policy.csp_enabled {
        return None;
    }
    match crate::csp::origin_nonces(origin_csp.iter().map(String::as_str)).into_iter().next() {
        Some(n) => Some((n, ScriptNonce::Origin)),
        None => {
            let n = crate::csp::new_nonce()?;
            Some((n.clone(), ScriptNonce::Fresh(n)))
        }
    }
}

impl Warden {
    pub(super) fn start_html(
        &self,
        session: &Session,
        ctx: &mut Ctx,
        resp: &mut ResponseHeader,
    ) -> pingora::Result<()> {
        let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok()).map(str::to_string);
        let metrics = &self.shared.metrics;
        let policy = ctx.policy.clone();
        let headers = &session.req_header().headers;
        let consent = policy.consent_for(
            headers.get_all("cookie").iter().filter_map(|v| v.to_str().ok()),
            headers.get("sec-gpc").is_some_and(|v| crate::policy::global_privacy_control(v.as_bytes())),
        );
        let Some(page_url) = ctx.page_url.clone() else {
            return Err(status_error(400));
        };
        let origin_csp: Vec<String> = resp
            .headers
            .get_all("content-security-policy")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(str::to_string)
            .collect();
        let csp_nonce = script_nonce(&policy, &origin_csp);
        let script_nonce = csp_nonce.as_ref().map_or(ScriptNonce::NoCsp, |(_, s)| s.clone());
        let mut page = policy.page_with_csp(&page_url, consent, script_nonce);
        let mode = page.mode;
        if mode == Mode::Enforce {
            page.shim_tag = Some(crate::shim::tag(&policy, &page, csp_nonce.as_ref().map(|(n, _)| n.as_str())));
        }
        let csp_header = csp_nonce.map(|(n, _)| {
            (crate::csp::policies_for(&policy, &page, &n), crate::csp::reporting_endpoints(&policy, &page))
        });
        let refuse = |kind: &'static str| {
            metrics.rewrite_error(kind);
            metrics.document(mode, DocumentOutcome::Refused);
            Error::explain(ErrorType::HTTPStatus(502), "HTML response cannot be rewritten")
        };
        if resp.status.as_u16() == 206 {
            metrics.rejected(Rejection::RangeOnHtml);
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
        let route = page.route.map(|r| policy.routes[r].pattern.clone());
        let mut record =
            self.shared.evidence.logs_decisions().then(|| DocumentRecord::start(&policy, &page, SystemTime::now()));
        let header_findings = links::filter_headers(&policy, &page, resp);
        for f in &header_findings {
            metrics.record_finding(f);
            if let Some(r) = &mut record {
                r.add(f);
            }
        }
        self.shared.evidence.references(route.as_deref(), &header_findings, metrics);
        if let Some((policies, endpoints)) = csp_header {
            // Added beside any policy of the origin's: browsers enforce every policy sent.
            resp.append_header(crate::csp::header_name(mode), policies.main)?;
            resp.append_header(crate::csp::header_name(mode), policies.script_hosts)?;
            if let Some(e) = endpoints {
                resp.insert_header("reporting-endpoints", e)?;
            }
        }
        if mode == Mode::Enforce && policy.dns_prefetch_off {
            // The browser's own prefetching of off-site link hosts: no request, but a DNS query.
            resp.insert_header("x-dns-prefetch-control", "off")?;
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
            // The page depends on the visitor's consent: the cookie and Global Privacy Control.
            resp.append_header("vary", "Cookie, Sec-GPC")?;
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
            route,
            record,
        }));
        Ok(())
    }

    /// Feeds one body chunk through the pipeline (enforce) or beside it (report).
    pub(super) fn rewrite_body(&self, body: &mut Option<Bytes>, end: bool, ctx: &mut Ctx) -> pingora::Result<()> {
        let Some(pipeline) = &ctx.html else { return Ok(()) };
        let mut p = lock(pipeline);
        let metrics = &self.shared.metrics;
        let input = body.take().unwrap_or_default();
        match p.mode {
            Mode::Report => {
                // The page passes unchanged; the analysis only records decisions.
                if !p.failed {
                    let _ = p.feed(&input, end, &self.shared);
                }
                *body = Some(input);
            }
            Mode::Enforce => match p.feed(&input, end, &self.shared) {
                Ok(out) => *body = Some(Bytes::from(out)),
                Err(e) => {
                    metrics.rewrite_error(e.kind());
                    metrics.document(Mode::Enforce, DocumentOutcome::Aborted);
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
                (Mode::Enforce, _) => DocumentOutcome::Rewritten,
                (Mode::Report, false) => DocumentOutcome::Passed,
                (Mode::Report, true) => DocumentOutcome::Aborted,
            };
            metrics.document(p.mode, outcome);
            if let Some(record) = p.record.take().filter(|_| !p.failed) {
                self.shared.evidence.document(&record, metrics);
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> Policy {
        crate::rules::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap()
    }

    #[test]
    fn an_origin_nonce_is_named_and_no_nonce_is_added() {
        let origin = ["script-src 'self' 'nonce-abc123=='; object-src 'none'".to_string()];
        assert_eq!(script_nonce(&shipped(), &origin), Some(("abc123==".to_string(), ScriptNonce::Origin)));
    }

    #[test]
    fn without_an_origin_nonce_a_fresh_one_is_added() {
        let Some((named, ScriptNonce::Fresh(added))) = script_nonce(&shipped(), &[]) else {
            panic!("no fresh nonce");
        };
        assert_eq!(named, added);
    }
}
