//! The PHI-free decision log: one JSON line per HTML document — when, which
//! route glob, which rules version, enforce or report, whether a CSP nonce was
//! added, and how many loads each vendor had per construct and action. Never the
//! page's path or query, hosts, or anything from the body: a record can be kept as
//! compliance evidence without becoming a record of who read which page.
//!
//! [`DocumentRecord`] is pure (built from the page context and the rewriter's
//! findings, at once or chunk by chunk); [`DecisionLog`] appends records to a file.
//! With `[decision_log] file` set, the proxy's HTML pipeline keeps one record per
//! document and writes it when the document ends (`proxy::evidence`); a document
//! that aborts or is abandoned has no record.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::policy::{Finding, Outcome, PageContext, Policy};

/// `(vendor id or unknown, construct, action, reason)` → count.
type Counts = BTreeMap<(String, &'static str, &'static str, Option<&'static str>), u64>;

/// One HTML document's decisions, without anything that identifies the page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DocumentRecord {
    /// Unix seconds.
    pub time: u64,
    /// The matched route's glob (`/patient/**`), or `None` when no route matched.
    pub route: Option<String>,
    pub rules_version: String,
    /// `enforce` or `report`.
    pub mode: &'static str,
    /// Whether the rewriter added a CSP nonce to the scripts it kept.
    pub csp_nonce: bool,
    counts: Counts,
}

impl DocumentRecord {
    pub fn new(policy: &Policy, page: &PageContext, findings: &[Finding], now: SystemTime) -> DocumentRecord {
        let mut record = DocumentRecord::start(policy, page, now);
        for f in findings {
            record.add(f);
        }
        record
    }

    /// A record with no decisions yet, for a document whose findings arrive chunk by
    /// chunk ([`DocumentRecord::add`]): its counts are bounded by the rules (vendor ids ×
    /// constructs × actions), however long the document.
    pub fn start(policy: &Policy, page: &PageContext, now: SystemTime) -> DocumentRecord {
        DocumentRecord {
            time: now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
            route: page.route.map(|r| policy.routes[r].pattern.clone()),
            rules_version: policy.version.clone(),
            mode: page.mode.as_str(),
            csp_nonce: page.csp_nonce.is_some(),
            counts: Counts::new(),
        }
    }

    /// Counts one finding.
    pub fn add(&mut self, f: &Finding) {
        let reason = match f.outcome {
            Outcome::Removed(r) => Some(r.as_str()),
            Outcome::Kept | Outcome::FirstParty => None,
        };
        let key = (f.vendor_label(), f.construct.as_str(), f.outcome.as_str(), reason);
        // Look up before allocating the vendor id: most findings repeat a key.
        match self.counts.iter_mut().find(|(k, _)| (k.0.as_str(), k.1, k.2, k.3) == key) {
            Some((_, n)) => *n += 1,
            None => {
                self.counts.insert((key.0.to_string(), key.1, key.2, key.3), 1);
            }
        }
    }

    /// The record as one line of JSON (no trailing newline).
    pub fn to_json_line(&self) -> String {
        let decisions: Vec<serde_json::Value> = self
            .counts
            .iter()
            .map(|((vendor, construct, action, reason), count)| {
                serde_json::json!({
                    "vendor": vendor, "construct": construct, "action": action, "reason": reason, "count": count,
                })
            })
            .collect();
        serde_json::json!({
            "time": self.time,
            "route": self.route,
            "rules_version": self.rules_version,
            "mode": self.mode,
            "csp_nonce": self.csp_nonce,
            "decisions": decisions,
        })
        .to_string()
    }
}

/// An append-only JSON-lines file of [`DocumentRecord`]s.
#[derive(Debug)]
pub struct DecisionLog {
    file: Mutex<std::fs::File>,
}

impl DecisionLog {
    /// Opens (creating it if needed) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<DecisionLog> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(DecisionLog { file: Mutex::new(file) })
    }

    /// Appends one record as one line (a single write, so concurrent records never interleave).
    pub fn write(&self, record: &DocumentRecord) -> std::io::Result<()> {
        let mut line = record.to_json_line();
        line.push('\n');
        let mut file = self.file.lock().map_err(|_| std::io::Error::other("decision log lock poisoned"))?;
        file.write_all(line.as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::policy::ConsentSet;

    fn shipped() -> std::sync::Arc<Policy> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        std::sync::Arc::new(crate::rules::load_dir(&dir).unwrap())
    }

    const PAGE: &str = r#"<html><head>
<script src="https://www.googletagmanager.com/gtm.js?id=GTM-1"></script>
<script src="https://static.zdassets.com/ekr/snippet.js?key=k"></script>
</head><body><img src="https://px.tracker.example/p.gif?u=secret-visitor">
<img src="https://px.tracker.example/q.gif"></body></html>"#;

    fn record(url: &str) -> DocumentRecord {
        let policy = shipped();
        let url = url::Url::parse(url).unwrap();
        let page = policy.page(&url, ConsentSet::from_categories([crate::policy::Category::Support]));
        let (_, findings) = crate::rewrite::rewrite_document(&policy, &page, PAGE.as_bytes(), None).unwrap();
        DocumentRecord::new(&policy, &page, &findings, UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000))
    }

    #[test]
    fn a_record_counts_per_vendor_construct_and_action_under_the_route_glob() {
        let r = record("https://clinic.example/patient/records/42?name=Jane");
        let json: serde_json::Value = serde_json::from_str(&r.to_json_line()).unwrap();
        assert_eq!(json["time"], 1_700_000_000);
        assert_eq!(json["route"], "/patient/**");
        assert_eq!(json["rules_version"], shipped().version.as_str());
        assert_eq!(json["mode"], "enforce");
        assert_eq!(json["csp_nonce"], false);
        let decisions = json["decisions"].as_array().unwrap();
        let find = |vendor: &str, construct: &str| {
            decisions.iter().find(|d| d["vendor"] == vendor && d["construct"] == construct).cloned()
        };
        assert_eq!(find("unknown", "img").unwrap()["count"], 2, "{json}");
        assert_eq!(find("unknown", "img").unwrap()["reason"], "unvetted");
        assert_eq!(find("zendesk", "script").unwrap()["action"], "first_party");
        assert_eq!(find("google_tag_manager", "script").unwrap()["action"], "removed");
    }

    #[test]
    fn a_record_never_carries_the_path_query_hosts_or_urls() {
        let line = record("https://clinic.example/patient/records/42?name=Jane").to_json_line();
        for secret in ["records", "42", "Jane", "clinic.example", "tracker.example", "secret-visitor", "gtm.js", "http"]
        {
            assert!(!line.contains(secret), "`{secret}` in {line}");
        }
    }

    #[test]
    fn records_are_appended_one_per_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("decisions.jsonl");
        let log = DecisionLog::open(&path).unwrap();
        log.write(&record("https://clinic.example/")).unwrap();
        log.write(&record("https://clinic.example/patient/x")).unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 2);
        assert!(lines.iter().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()));
    }
}
