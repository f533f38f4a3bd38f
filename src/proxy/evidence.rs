//! What the proxy keeps as evidence, in one place: the live third-party
//! inventory (`/inventory`), first-party vendor asset hashes, and the optional
//! files (`[inventory] file`, `[decision_log] file`). The HTML pipeline and the
//! vendor path call in here; every write also counts (metrics) and a failed
//! write is logged and counted, never fails the request.
//!
//! Files are written synchronously on the request's thread: one `write` of a few
//! hundred bytes under a mutex per HTML document (decision log) or per first
//! sighting (inventory). That is the cost of an append to the page cache, not of
//! a disk flush; a slow disk shows up as request latency, and the counters say
//! so if lines are lost.

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::decision_log::{DecisionLog, DocumentRecord};
use crate::inventory::assets::AssetChange;
use crate::inventory::{Inventory, JsonLinesFile};
use crate::metrics::{EvidenceSink, Metrics};
use crate::policy::Finding;

/// An evidence file named in the config that cannot be opened: `serve` stops.
#[derive(Debug, thiserror::Error)]
#[error("{key} {}: {source}", path.display())]
pub struct EvidenceError {
    /// `inventory.file` or `decision_log.file`.
    pub key: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

/// The inventory and the evidence files.
#[derive(Debug)]
pub struct Evidence {
    pub inventory: Inventory,
    inventory_file: Option<JsonLinesFile>,
    decision_log: Option<DecisionLog>,
}

impl Evidence {
    /// The in-memory inventory, and the files `[inventory]` and `[decision_log]` name, opened for appending.
    pub fn open(config: &Config) -> Result<Evidence, EvidenceError> {
        let error = |key: &'static str, path: &Path| {
            let path = path.to_path_buf();
            move |source| EvidenceError { key, path, source }
        };
        let inventory_file = match &config.inventory.file {
            Some(p) => Some(JsonLinesFile::open(p).map_err(error("inventory.file", p))?),
            None => None,
        };
        let decision_log = match &config.decision_log.file {
            Some(p) => Some(DecisionLog::open(p).map_err(error("decision_log.file", p))?),
            None => None,
        };
        Ok(Evidence { inventory: Inventory::new(config.inventory.max_entries), inventory_file, decision_log })
    }

    /// Whether documents need a [`DocumentRecord`].
    pub fn logs_decisions(&self) -> bool {
        self.decision_log.is_some()
    }

    /// Adds findings of an HTML document under `route` (a glob) to the inventory.
    pub fn references(&self, route: Option<&str>, findings: &[Finding], metrics: &Metrics) {
        if findings.is_empty() {
            return;
        }
        let now = crate::inventory::unix_seconds(std::time::SystemTime::now());
        let r = self.inventory.record(route, findings, now);
        metrics.inventory(r.entries, r.new_unknown, r.evicted);
        self.append(&r.new_lines, metrics);
    }

    /// Records one vendor asset body's SHA-256; counts a change.
    pub fn asset(&self, vendor: &str, host: &str, path: &str, sha256: [u8; 32], metrics: &Metrics) {
        let now = crate::inventory::unix_seconds(std::time::SystemTime::now());
        let (change, line) = self.inventory.assets.record(vendor, host, path, sha256, now);
        if let AssetChange::Changed { .. } = change {
            metrics.asset_changed(vendor);
            // The vendor and its host are rule data; the path is the vendor's, not the page's.
            tracing::warn!(vendor, host, "first-party vendor asset changed");
        }
        if let Some(line) = line {
            self.append(&[line], metrics);
        }
    }

    /// Writes one document's record to the decision log, if there is one.
    pub fn document(&self, record: &DocumentRecord, metrics: &Metrics) {
        if let Some(log) = &self.decision_log
            && let Err(e) = log.write(record)
        {
            metrics.evidence_write_error(EvidenceSink::DecisionLog);
            tracing::warn!(error = %e, "decision log write failed");
        }
    }

    fn append(&self, lines: &[String], metrics: &Metrics) {
        if let Some(file) = &self.inventory_file
            && let Err(e) = file.append(lines)
        {
            metrics.evidence_write_error(EvidenceSink::Inventory);
            tracing::warn!(error = %e, "inventory file write failed");
        }
    }
}
