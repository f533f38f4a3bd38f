//! The CSP violation report endpoint (`<prefix>/csp-report`) and its
//! process-wide rate limit. Report bodies are attacker-controlled: they are
//! bounded, parsed by [`crate::csp::parse_reports`], and reduced to closed label sets.

use std::sync::Mutex;
use std::time::Instant;

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::{Warden, header_str};
use crate::metrics::{ReportOutcome, UNKNOWN_VENDOR};
use crate::policy::Policy;
use crate::rewrite::lock;

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

impl Warden {
    /// `<prefix>/csp-report`: counts violations by directive and vendor (a rule id or
    /// `unknown`, never the reported host: report contents are attacker-controlled),
    /// logs them with query strings removed, and always answers 204.
    pub(super) async fn csp_report(&self, session: &mut Session, policy: &Policy) -> pingora::Result<()> {
        let metrics = &self.shared.metrics;
        let method_ok = session.req_header().method == http::Method::POST;
        let ct = header_str(session.req_header(), "content-type").unwrap_or_default().to_ascii_lowercase();
        let type_ok = ct.starts_with("application/csp-report")
            || ct.starts_with("application/reports+json")
            || ct.starts_with("application/json");
        let mut outcome = ReportOutcome::Counted;
        if !method_ok {
            outcome = ReportOutcome::Rejected;
        } else if !type_ok {
            outcome = ReportOutcome::Malformed;
        } else if !self.reports.allow() {
            outcome = ReportOutcome::RateLimited;
        }
        let mut body = Vec::new();
        if outcome == ReportOutcome::Counted {
            loop {
                match session.read_request_body().await {
                    Ok(Some(chunk)) => {
                        if body.len() + chunk.len() > MAX_REPORT_BYTES {
                            outcome = ReportOutcome::TooLarge;
                            break;
                        }
                        body.extend_from_slice(&chunk);
                    }
                    Ok(None) => break,
                    Err(_) => {
                        outcome = ReportOutcome::Malformed;
                        break;
                    }
                }
            }
        }
        if outcome == ReportOutcome::Counted {
            let violations = crate::csp::parse_reports(&body, MAX_VIOLATIONS_PER_REPORT);
            if violations.is_empty() {
                outcome = ReportOutcome::Malformed;
            }
            let source = crate::csp::ReportSource::from_query(session.req_header().uri.query());
            let counted: Vec<_> = violations.iter().filter(|v| crate::csp::counts(v, source)).collect();
            if counted.is_empty() && !violations.is_empty() {
                outcome = ReportOutcome::Duplicate;
            }
            for v in counted {
                let vendor = v.blocked.as_ref().and_then(|u| {
                    let host = crate::policy::host::normalize_host(u.host_str()?);
                    policy.vendor_for(&host, u.path()).map(|i| policy.vendor(i).id.clone())
                });
                let vendor = vendor.as_deref().unwrap_or(UNKNOWN_VENDOR);
                metrics.csp_violation(v.directive, vendor);
                let blocked = v.blocked.as_ref().map(url::Url::as_str).or(v.keyword).unwrap_or("");
                tracing::info!(directive = v.directive, vendor, blocked, "CSP violation");
            }
        }
        metrics.csp_report(outcome);
        let status = if method_ok { 204 } else { 405 };
        let mut h = ResponseHeader::build(status, Some(2))?;
        h.insert_header("cache-control", "no-store")?;
        if !matches!(outcome, ReportOutcome::Counted | ReportOutcome::Duplicate) {
            session.set_keepalive(None);
        }
        session.write_response_header(Box::new(h), true).await?;
        Ok(())
    }
}
