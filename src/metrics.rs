//! Every metric tagwarden exports, defined in one place. Names follow
//! `tagwarden_<name>_<unit>[_total]` in base units; every label value comes from
//! a closed enum or a rule id (`vendor` is a vendor id or `unknown`), never from
//! request data, so label sets stay bounded whatever clients send.

use prometheus::{
    Encoder, Histogram, HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
    TextEncoder,
};

use crate::policy::{Finding, Mode, Outcome};

/// `vendor` label for a third party no rule names (never the host itself).
pub const UNKNOWN_VENDOR: &str = "unknown";
/// `category` label when no vendor rule is behind a finding.
pub const UNKNOWN_CATEGORY: &str = "unknown";

/// Defines a closed set of label values: an enum whose `as_str` is the label.
macro_rules! label_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident => $label:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum $name {
            $($(#[$vdoc])* $variant),+
        }

        impl $name {
            /// The label value.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $label),+
                }
            }
        }
    };
}

label_enum! {
    /// `listener` of `http_requests_total` and `request_duration_seconds`.
    Listener { Proxy => "proxy", Admin => "admin" }
}

label_enum! {
    /// `outcome` of `html_documents_total`.
    DocumentOutcome {
        /// Enforce mode: the document went through the rewriter to its end.
        Rewritten => "rewritten",
        /// Report mode: passed unchanged, analysed to its end.
        Passed => "passed",
        /// Rewriting (enforce) or analysis (report) failed mid-document.
        Aborted => "aborted",
        /// Refused from its headers (coding, charset, range): a 502 page.
        Refused => "refused",
    }
}

label_enum! {
    /// `outcome` of `first_party_requests_total`.
    FirstPartyOutcome {
        Forwarded => "forwarded",
        /// No consent for the vendor's category: 204, nothing left.
        NoConsent => "no_consent",
        /// Unknown vendor, a host it does not own, a vendor no route allows, a method it does not take,
        /// a host segment or path that is not canonical (encoded, dot segments, IP literal…).
        Rejected => "rejected",
        /// A path the vendor rule's `block_paths` names (telemetry): 204, nothing left.
        Blocked => "blocked",
        /// The vendor host resolved to a loopback, private, link-local or other non-public address
        /// and `[vendors] resolve` does not name it: 502, no connection made.
        PrivateAddress => "private_address",
        UpstreamError => "upstream_error",
    }
}

label_enum! {
    /// `reason` of `requests_rejected_total`.
    Rejection {
        HeaderLimits => "header_limits",
        Smuggling => "smuggling",
        BodyTooLarge => "body_too_large",
        RangeOnHtml => "range_on_html",
        /// `[limits] max_connections` reached: the connection is closed with a 503.
        TooManyConnections => "too_many_connections",
        /// `[limits] max_connections_per_ip` reached for the client's address.
        TooManyConnectionsPerIp => "too_many_connections_per_ip",
        /// `[limits] vendor_requests_per_second` exceeded by one client IP on the vendor path: 429.
        VendorRateLimited => "vendor_rate_limited",
        /// `[limits] request_head_timeout_seconds` passed before a started request head ended.
        RequestHeadTimeout => "request_head_timeout",
    }
}

label_enum! {
    /// `result` of `rules_reloads_total`.
    ReloadResult { Ok => "ok", Error => "error" }
}

label_enum! {
    /// `outcome` of `csp_reports_total`.
    ReportOutcome {
        Counted => "counted",
        /// Every violation in it is counted from the page's other policy's report.
        Duplicate => "duplicate",
        RateLimited => "rate_limited",
        TooLarge => "too_large",
        Malformed => "malformed",
        /// Not a POST.
        Rejected => "rejected",
    }
}

label_enum! {
    /// `kind` of `inventory_entries`: whether a vendor rule is behind an entry.
    InventoryKind { Vendor => "vendor", Unknown => "unknown" }
}

label_enum! {
    /// `reason` of `vendor_assets_refused_total`: a response on a `[first_party] pin` path
    /// that was not served (502).
    AssetRefusal {
        /// Its SHA-256 is none of the pinned ones.
        NotPinned => "not_pinned",
        /// Larger than the pinned-body cap: it cannot be held to be hashed.
        TooLarge => "too_large",
        /// Not a script or stylesheet, a range, or a content coding that cannot be decoded.
        Unverifiable => "unverifiable",
        /// A redirect: the pinned path would not be what runs.
        Redirect => "redirect",
    }
}

impl AssetRefusal {
    /// Every reason, to start the counters at 0.
    pub const ALL: [AssetRefusal; 4] =
        [AssetRefusal::NotPinned, AssetRefusal::TooLarge, AssetRefusal::Unverifiable, AssetRefusal::Redirect];
}

label_enum! {
    /// `sink` of `evidence_write_errors_total`.
    EvidenceSink { DecisionLog => "decision_log", Inventory => "inventory" }
}

/// The process's metrics and the registry they live in.
#[derive(Debug, Clone)]
pub struct Metrics {
    registry: Registry,
    pub http_requests: IntCounterVec,
    pub request_duration: HistogramVec,
    pub html_documents: IntCounterVec,
    pub elements_removed: IntCounterVec,
    pub elements_first_party: IntCounterVec,
    pub first_party_requests: IntCounterVec,
    pub rewrite_errors: IntCounterVec,
    pub rewrite_duration: Histogram,
    pub rules_reloads: IntCounterVec,
    pub rules_info: IntGaugeVec,
    pub rules_loaded_timestamp: IntGauge,
    pub requests_rejected: IntCounterVec,
    pub inflight_requests: IntGauge,
    pub csp_violations: IntCounterVec,
    pub csp_reports: IntCounterVec,
    pub bytes_rewritten: IntCounter,
    pub tls_reloads: IntCounterVec,
    pub tls_certificate_expiry: IntGaugeVec,
    pub inventory_entries: IntGaugeVec,
    pub inventory_unknown_hosts: IntCounter,
    pub inventory_folded: IntCounter,
    pub vendor_asset_changes: IntCounterVec,
    pub vendor_assets_refused: IntCounterVec,
    pub evidence_write_errors: IntCounterVec,
}

/// Registers a metric built from the static definitions below. A failure is a
/// programming error (malformed or duplicate name) and panics at start-up, never
/// on request data.
fn register<C: prometheus::core::Collector + Clone + 'static>(
    registry: &Registry,
    name: &str,
    metric: Result<C, prometheus::Error>,
) -> C {
    let metric = metric.unwrap_or_else(|e| panic!("metric {name}: {e}"));
    registry.register(Box::new(metric.clone())).unwrap_or_else(|e| panic!("metric {name}: {e}"));
    metric
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    register(registry, name, IntCounterVec::new(Opts::new(name, help).namespace("tagwarden"), labels))
}

fn gauge(registry: &Registry, name: &str, help: &str) -> IntGauge {
    register(registry, name, IntGauge::with_opts(Opts::new(name, help).namespace("tagwarden")))
}

fn histogram_opts(name: &str, help: &str, buckets: Vec<f64>) -> HistogramOpts {
    HistogramOpts::new(name, help).namespace("tagwarden").buckets(buckets)
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Creates and registers every metric. Panics only on a programming error in
    /// the definitions below (duplicate or malformed names), at start-up.
    pub fn new() -> Metrics {
        let registry = Registry::new();
        let http_requests = counter(
            &registry,
            "http_requests_total",
            "HTTP requests answered, by listener and status code.",
            &["listener", "code"],
        );
        let request_duration = register(
            &registry,
            "request_duration_seconds",
            HistogramVec::new(
                histogram_opts(
                    "request_duration_seconds",
                    "Time from request start to the end of the response.",
                    vec![0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0],
                ),
                &["listener"],
            ),
        );
        let html_documents = counter(
            &registry,
            "html_documents_total",
            "HTML documents seen, by mode (enforce|report) and outcome (rewritten|passed|aborted|refused).",
            &["mode", "outcome"],
        );
        let elements_removed = counter(
            &registry,
            "elements_removed_total",
            "Loads removed from pages (report mode: that would have been removed), by vendor, category, construct and reason.",
            &["vendor", "category", "construct", "reason"],
        );
        let elements_first_party = counter(
            &registry,
            "elements_first_party_total",
            "Allowed vendor loads rewritten to the first-party path.",
            &["vendor", "construct"],
        );
        let first_party_requests = counter(
            &registry,
            "first_party_requests_total",
            "Requests to the first-party vendor path, by vendor and outcome.",
            &["vendor", "outcome"],
        );
        let rewrite_errors = counter(
            &registry,
            "rewrite_errors_total",
            "HTML rewriting errors (the response failed closed).",
            &["kind"],
        );
        let rewrite_duration = register(
            &registry,
            "rewrite_duration_seconds",
            Histogram::with_opts(histogram_opts(
                "rewrite_duration_seconds",
                "CPU time spent rewriting one HTML document (sum over its chunks).",
                vec![0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0],
            )),
        );
        let rules_reloads =
            counter(&registry, "rules_reloads_total", "Rule reloads, by result (ok|error).", &["result"]);
        let rules_info = register(
            &registry,
            "rules_info",
            IntGaugeVec::new(
                Opts::new("rules_info", "The loaded rules version (value is always 1).").namespace("tagwarden"),
                &["version"],
            ),
        );
        let rules_loaded_timestamp =
            gauge(&registry, "rules_loaded_timestamp_seconds", "Unix time the current rules were loaded.");
        let requests_rejected = counter(
            &registry,
            "requests_rejected_total",
            "Requests refused before proxying, by reason (header_limits|smuggling|body_too_large|range_on_html|too_many_connections|too_many_connections_per_ip|vendor_rate_limited|request_head_timeout).",
            &["reason"],
        );
        let inflight_requests = gauge(&registry, "inflight_requests", "Requests being served on the proxy listener.");
        let bytes_rewritten = register(
            &registry,
            "html_rewritten_bytes_total",
            IntCounter::with_opts(
                Opts::new("html_rewritten_bytes_total", "Decoded HTML bytes passed through the rewriter.")
                    .namespace("tagwarden"),
            ),
        );
        let csp_violations = counter(
            &registry,
            "csp_violations_total",
            "CSP violations reported by browsers, by directive and vendor (rule id or unknown).",
            &["directive", "vendor"],
        );
        let csp_reports = counter(
            &registry,
            "csp_reports_total",
            "CSP report requests, by outcome (counted|duplicate|rate_limited|too_large|malformed|rejected; duplicate = every violation in it is counted from the page's other policy).",
            &["outcome"],
        );
        let tls_reloads = counter(
            &registry,
            "tls_certificate_reloads_total",
            "Certificate/key pairs re-read after their files changed, by result (ok|error; error = the last good pair keeps serving).",
            &["result"],
        );
        let tls_certificate_expiry = register(
            &registry,
            "tls_certificate_expiry_timestamp_seconds",
            IntGaugeVec::new(
                Opts::new(
                    "tls_certificate_expiry_timestamp_seconds",
                    "notAfter of the leaf certificate being served, by configured certificate name.",
                )
                .namespace("tagwarden"),
                &["certificate"],
            ),
        );
        let inventory_entries = register(
            &registry,
            "inventory_entries",
            IntGaugeVec::new(
                Opts::new(
                    "inventory_entries",
                    "Entries in the third-party inventory (/inventory), by kind (vendor|unknown).",
                )
                .namespace("tagwarden"),
                &["kind"],
            ),
        );
        let inventory_unknown_hosts = register(
            &registry,
            "inventory_unknown_hosts_total",
            IntCounter::with_opts(
                Opts::new(
                    "inventory_unknown_hosts_total",
                    "Inventory entries added for a third party no vendor rule names (a new unknown domain on a route).",
                )
                .namespace("tagwarden"),
            ),
        );
        let inventory_folded = register(
            &registry,
            "inventory_folded_total",
            IntCounter::with_opts(
                Opts::new(
                    "inventory_folded_total",
                    "Inventory entries folded into the `other` bucket to stay within [inventory] max_entries.",
                )
                .namespace("tagwarden"),
            ),
        );
        let vendor_asset_changes = counter(
            &registry,
            "vendor_asset_changes_total",
            "First-party vendor scripts and stylesheets whose SHA-256 differs from the one seen before on the same path, by vendor.",
            &["vendor"],
        );
        let vendor_assets_refused = counter(
            &registry,
            "vendor_assets_refused_total",
            "Responses on a pinned vendor path refused with a 502, by vendor and reason (not_pinned|too_large|unverifiable|redirect).",
            &["vendor", "reason"],
        );
        let evidence_write_errors = counter(
            &registry,
            "evidence_write_errors_total",
            "Lines the decision log or the inventory file could not write, by sink (decision_log|inventory).",
            &["sink"],
        );
        for kind in [InventoryKind::Vendor, InventoryKind::Unknown] {
            inventory_entries.with_label_values(&[kind.as_str()]).set(0);
        }
        Metrics {
            inventory_entries,
            inventory_unknown_hosts,
            inventory_folded,
            vendor_asset_changes,
            vendor_assets_refused,
            evidence_write_errors,
            tls_reloads,
            tls_certificate_expiry,
            csp_violations,
            csp_reports,
            registry,
            http_requests,
            request_duration,
            html_documents,
            elements_removed,
            elements_first_party,
            first_party_requests,
            rewrite_errors,
            rewrite_duration,
            rules_reloads,
            rules_info,
            rules_loaded_timestamp,
            requests_rejected,
            inflight_requests,
            bytes_rewritten,
        }
    }

    /// Counts one answered request and its duration.
    pub fn request(&self, listener: Listener, code: u16, seconds: Option<f64>) {
        self.http_requests.with_label_values(&[listener.as_str(), &code.to_string()]).inc();
        if let Some(s) = seconds {
            self.request_duration.with_label_values(&[listener.as_str()]).observe(s);
        }
    }

    /// Counts one HTML document by mode and outcome.
    pub fn document(&self, mode: Mode, outcome: DocumentOutcome) {
        self.html_documents.with_label_values(&[mode.as_str(), outcome.as_str()]).inc();
    }

    /// Counts one rewriting error; `kind` is [`crate::rewrite::RewriteError::kind`].
    pub fn rewrite_error(&self, kind: &'static str) {
        self.rewrite_errors.with_label_values(&[kind]).inc();
    }

    /// Counts one request to the first-party vendor path; `vendor` is a rule id or [`UNKNOWN_VENDOR`].
    pub fn first_party(&self, vendor: &str, outcome: FirstPartyOutcome) {
        self.first_party_requests.with_label_values(&[vendor, outcome.as_str()]).inc();
    }

    /// Counts one request refused before proxying.
    pub fn rejected(&self, reason: Rejection) {
        self.requests_rejected.with_label_values(&[reason.as_str()]).inc();
    }

    /// Counts one rules reload.
    pub fn reload(&self, result: ReloadResult) {
        self.rules_reloads.with_label_values(&[result.as_str()]).inc();
    }

    /// Counts one CSP report request.
    pub fn csp_report(&self, outcome: ReportOutcome) {
        self.csp_reports.with_label_values(&[outcome.as_str()]).inc();
    }

    /// Counts one reported violation; `directive` comes from the closed set in
    /// [`crate::csp`], `vendor` is a rule id or [`UNKNOWN_VENDOR`].
    pub fn csp_violation(&self, directive: &'static str, vendor: &str) {
        self.csp_violations.with_label_values(&[directive, vendor]).inc();
    }

    /// Counts one rewriter finding.
    pub fn record_finding(&self, f: &Finding) {
        let vendor = f.vendor_label();
        match f.outcome {
            Outcome::Removed(reason) => {
                let category = f.category.map_or(UNKNOWN_CATEGORY, |c| c.as_str());
                self.elements_removed
                    .with_label_values(&[vendor, category, f.construct.as_str(), reason.as_str()])
                    .inc();
            }
            Outcome::FirstParty => {
                self.elements_first_party.with_label_values(&[vendor, f.construct.as_str()]).inc();
            }
            Outcome::Kept => {}
        }
    }

    /// Sets the inventory gauges after an update: `(vendor, unknown)` entries.
    pub fn inventory(&self, entries: (usize, usize), new_unknown: u64, folded: u64) {
        let gauge = |kind: InventoryKind, n: usize| {
            self.inventory_entries.with_label_values(&[kind.as_str()]).set(i64::try_from(n).unwrap_or(i64::MAX))
        };
        gauge(InventoryKind::Vendor, entries.0);
        gauge(InventoryKind::Unknown, entries.1);
        self.inventory_unknown_hosts.inc_by(new_unknown);
        self.inventory_folded.inc_by(folded);
    }

    /// Counts one vendor asset whose hash changed; `vendor` is a rule id.
    pub fn asset_changed(&self, vendor: &str) {
        self.vendor_asset_changes.with_label_values(&[vendor]).inc();
    }

    /// Counts one response on a pinned path refused; `vendor` is a rule id.
    pub fn asset_refused(&self, vendor: &str, reason: AssetRefusal) {
        self.vendor_assets_refused.with_label_values(&[vendor, reason.as_str()]).inc();
    }

    /// Counts one evidence line (or batch) that could not be written.
    pub fn evidence_write_error(&self, sink: EvidenceSink) {
        self.evidence_write_errors.with_label_values(&[sink.as_str()]).inc();
    }

    /// Starts the per-vendor asset counters of the loaded rules at 0 (refusals: for
    /// vendors that pin), so a first change or refusal is an increase Prometheus can
    /// see (a series born at 1 is not).
    pub fn vendors_loaded(&self, policy: &crate::policy::Policy) {
        for v in &policy.vendors {
            self.vendor_asset_changes.with_label_values(&[v.id.as_str()]);
            if !v.pins.is_empty() {
                for reason in AssetRefusal::ALL {
                    self.vendor_assets_refused.with_label_values(&[v.id.as_str(), reason.as_str()]);
                }
            }
        }
    }

    /// Marks `version` as the loaded rules.
    pub fn set_rules(&self, version: &str) {
        self.rules_info.reset();
        self.rules_info.with_label_values(&[version]).set(1);
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.rules_loaded_timestamp.set(i64::try_from(now).unwrap_or(i64::MAX));
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut buf = Vec::new();
        let _ = TextEncoder::new().encode(&self.registry.gather(), &mut buf);
        String::from_utf8(buf).unwrap_or_default()
    }
}
