//! The live third-party inventory: every third party the HTML served through the
//! proxy referenced, as its registrable domain (`www.googletagmanager.com` →
//! `googletagmanager.com`), with the vendor rule behind it (or `unknown`), the
//! decision (`removed` | `kept` | `first_party`), the construct kinds and removal
//! reasons with their counts, first and last seen (unix seconds) and the route
//! glob. Never the page's path or query, the full host, or anything else from
//! the body: the compliance view of "which third parties did the patient portal
//! reference, and were they removed?", not a record of who read which page.
//!
//! Bounded: at most `max_entries` entries (`[inventory] max_entries`, default
//! [`DEFAULT_MAX_ENTRIES`]). When a new entry arrives at a full table, the entry
//! with the fewest references (an `unknown` one before any a vendor rule names,
//! then the one seen longest ago) is folded into the `other` bucket, so pages full
//! of random hosts churn among the rare entries while the third parties real
//! traffic carries stay; one call folds at most [`MAX_FOLDS_PER_RECORD`] entries
//! (the rest of a flood is counted straight into `other`). Reset on restart.
//!
//! Script-change detection for first-party vendor assets lives in [`assets`];
//! `/inventory` on the admin listener shows both ([`Inventory::to_json`]).
//!
//! Evidence: [`Inventory::record`] returns one JSON line for each `(route, domain,
//! vendor, decision, construct)` seen for the first time (since start, or since
//! its entry was last folded into `other`); `[inventory] file` appends them
//! (see [`JsonLinesFile`]).

pub mod assets;

use std::collections::{BTreeMap, HashMap};
use std::io::Write;
use std::path::Path;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::policy::host::registrable_domain;
use crate::policy::{Finding, Outcome, Reason};

/// Default `[inventory] max_entries`.
pub const DEFAULT_MAX_ENTRIES: usize = 1_000;
/// Entries one [`Inventory::record`] call may fold into `other` to make room; new
/// entries beyond it go straight into `other`. Each fold scans the table, so this
/// bounds the time one hostile chunk (thousands of made-up hosts) holds the lock.
pub const MAX_FOLDS_PER_RECORD: u64 = 32;
/// The `domain` of an inline script a vendor signature matched (no URL, so no host).
pub const INLINE: &str = "(inline)";

/// Unix seconds of `t` (0 before the epoch).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

/// What one inventory entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntryKey {
    /// The route glob of the pages (`None`: no route matched).
    pub route: Option<String>,
    /// Registrable domain of the third party (the host itself for IP literals and
    /// single-label hosts), or [`INLINE`].
    pub domain: String,
    /// Vendor rule id; `None`: unknown.
    pub vendor: Option<String>,
    /// `removed` | `kept` | `first_party`.
    pub decision: &'static str,
}

/// References counted under one [`EntryKey`] (or in the `other` bucket).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Tally {
    pub count: u64,
    /// Construct kind (`script`, `img`, …) → references.
    pub constructs: BTreeMap<&'static str, u64>,
    /// Removal reason (`unvetted`, `no_consent`, …) → references.
    pub reasons: BTreeMap<&'static str, u64>,
    pub first_seen: u64,
    pub last_seen: u64,
}

impl Tally {
    fn add(&mut self, construct: &'static str, reason: Option<&'static str>, n: u64, now: u64) {
        if self.count == 0 {
            self.first_seen = now;
        }
        self.count += n;
        self.last_seen = self.last_seen.max(now);
        *self.constructs.entry(construct).or_default() += n;
        if let Some(r) = reason {
            *self.reasons.entry(r).or_default() += n;
        }
    }

    fn merge(&mut self, other: &Tally) {
        if other.count == 0 {
            return;
        }
        self.first_seen = if self.count == 0 { other.first_seen } else { self.first_seen.min(other.first_seen) };
        self.last_seen = self.last_seen.max(other.last_seen);
        self.count += other.count;
        for (k, v) in &other.constructs {
            *self.constructs.entry(k).or_default() += v;
        }
        for (k, v) in &other.reasons {
            *self.reasons.entry(k).or_default() += v;
        }
    }

    fn json(&self) -> serde_json::Value {
        serde_json::json!({
            "count": self.count,
            "constructs": self.constructs,
            "reasons": self.reasons,
            "first_seen": self.first_seen,
            "last_seen": self.last_seen,
        })
    }
}

/// What one [`Inventory::record`] changed, for metrics and the file sink.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Recorded {
    /// JSON lines: one per `(route, domain, vendor, decision, construct)` seen for the first time.
    pub new_lines: Vec<String>,
    /// Entries for an unknown third party that were added.
    pub new_unknown: u64,
    /// Entries folded into `other` to make room.
    pub evicted: u64,
    /// Entries now in the table, by whether a vendor rule is behind them: `(vendor, unknown)`.
    pub entries: (usize, usize),
}

/// The third-party domain a finding is about; `None` for findings that name no
/// third party (unsafe schemes, unparseable content, inline handlers).
fn domain_of(f: &Finding) -> Option<String> {
    if matches!(f.outcome, Outcome::Removed(Reason::UnsafeUrl)) && f.vendor.is_none() {
        return None;
    }
    if f.host.is_empty() {
        return f.vendor.as_ref().map(|_| INLINE.to_string());
    }
    Some(registrable_domain(&f.host).unwrap_or(&f.host).to_string())
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<EntryKey, Tally>,
    other: Tally,
    /// Entries folded into `other` since start.
    evicted: u64,
    /// Entries a vendor rule is behind (the rest are unknown).
    vendor_entries: usize,
}

/// The bounded inventory, shared by every request.
#[derive(Debug)]
pub struct Inventory {
    state: Mutex<State>,
    max_entries: usize,
    /// Script-change detection for first-party vendor assets.
    pub assets: assets::AssetLedger,
}

impl Default for Inventory {
    fn default() -> Self {
        Inventory::new(DEFAULT_MAX_ENTRIES)
    }
}

impl Inventory {
    /// An empty inventory holding at most `max_entries` entries (at least 1) and as many asset paths.
    pub fn new(max_entries: usize) -> Inventory {
        let max_entries = max_entries.max(1);
        Inventory { state: Mutex::new(State::default()), max_entries, assets: assets::AssetLedger::new(max_entries) }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves counts that are still counts.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Adds the findings of (part of) one HTML document served under `route`.
    pub fn record(&self, route: Option<&str>, findings: &[Finding], now: u64) -> Recorded {
        // Aggregate first so the lock is taken once and each key is looked up once.
        let mut batch: BTreeMap<(EntryKey, &'static str, Option<&'static str>), u64> = BTreeMap::new();
        for f in findings {
            let Some(domain) = domain_of(f) else { continue };
            let reason = match f.outcome {
                Outcome::Removed(r) => Some(r.as_str()),
                Outcome::Kept | Outcome::FirstParty => None,
            };
            let key = EntryKey {
                route: route.map(str::to_string),
                domain,
                vendor: f.vendor.clone(),
                decision: f.outcome.as_str(),
            };
            *batch.entry((key, f.construct.as_str(), reason)).or_default() += 1;
        }
        let mut out = Recorded::default();
        let mut state = self.lock();
        for ((key, construct, reason), n) in batch {
            if !state.entries.contains_key(&key) {
                if state.entries.len() >= self.max_entries {
                    if out.evicted >= MAX_FOLDS_PER_RECORD {
                        state.other.add(construct, reason, n, now);
                        continue;
                    }
                    evict_one(&mut state);
                    out.evicted += 1;
                }
                if key.vendor.is_some() {
                    state.vendor_entries += 1;
                } else {
                    out.new_unknown += 1;
                }
            }
            let tally = state.entries.entry(key.clone()).or_default();
            if !tally.constructs.contains_key(construct) {
                out.new_lines.push(reference_line(&key, construct, reason, now));
            }
            tally.add(construct, reason, n, now);
        }
        out.entries = (state.vendor_entries, state.entries.len() - state.vendor_entries);
        out
    }

    /// Entries in the table (not counting `other`).
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The `other` bucket: what was folded out of the table.
    pub fn other(&self) -> Tally {
        self.lock().other.clone()
    }

    /// `/inventory`: the entries (sorted by route, domain, vendor, decision), the
    /// `other` bucket, and the current hash of every first-party vendor asset.
    pub fn to_json(&self) -> serde_json::Value {
        let (entries, other, evicted) = {
            let state = self.lock();
            let mut entries: Vec<(EntryKey, Tally)> =
                state.entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            (entries, state.other.clone(), state.evicted)
        };
        let entries: Vec<serde_json::Value> = entries
            .iter()
            .map(|(k, t)| {
                let mut v = t.json();
                v["route"] = k.route.clone().into();
                v["domain"] = k.domain.clone().into();
                v["vendor"] = k.vendor.as_deref().unwrap_or(crate::metrics::UNKNOWN_VENDOR).into();
                v["decision"] = k.decision.into();
                v
            })
            .collect();
        let mut other = other.json();
        other["entries_folded"] = evicted.into();
        serde_json::json!({
            "max_entries": self.max_entries,
            "entries": entries,
            "other": other,
            "assets": self.assets.to_json(),
        })
    }
}

/// Folds the least-referenced entry into `other`: unknown before vendor entries,
/// fewest references, then seen longest ago. O(entries), only when the table is
/// full, and at most [`MAX_FOLDS_PER_RECORD`] times per call.
fn evict_one(state: &mut State) {
    let victim =
        state.entries.iter().min_by_key(|(k, t)| (k.vendor.is_some(), t.count, t.last_seen)).map(|(k, _)| k.clone());
    if let Some(k) = victim
        && let Some(t) = state.entries.remove(&k)
    {
        if k.vendor.is_some() {
            state.vendor_entries -= 1;
        }
        state.other.merge(&t);
        state.evicted += 1;
    }
}

fn reference_line(key: &EntryKey, construct: &str, reason: Option<&str>, now: u64) -> String {
    serde_json::json!({
        "time": now,
        "kind": "reference",
        "route": key.route,
        "domain": key.domain,
        "vendor": key.vendor.as_deref().unwrap_or(crate::metrics::UNKNOWN_VENDOR),
        "decision": key.decision,
        "construct": construct,
        "reason": reason,
    })
    .to_string()
}

/// An append-only JSON-lines file (`[inventory] file`): each line is one
/// `write` under a mutex, so lines from concurrent requests never interleave.
/// Unbuffered on purpose: a line is on disk (in the page cache) when the
/// request that caused it ends, and lines are rare (first sightings only).
#[derive(Debug)]
pub struct JsonLinesFile {
    file: Mutex<std::fs::File>,
}

impl JsonLinesFile {
    /// Opens (creating it if needed) `path` for appending.
    pub fn open(path: &Path) -> std::io::Result<JsonLinesFile> {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(path)?;
        Ok(JsonLinesFile { file: Mutex::new(file) })
    }

    /// Appends `lines`, each followed by a newline, in one write.
    pub fn append(&self, lines: &[String]) -> std::io::Result<()> {
        if lines.is_empty() {
            return Ok(());
        }
        let mut buf = String::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
        for l in lines {
            buf.push_str(l);
            buf.push('\n');
        }
        let mut file = self.file.lock().map_err(|_| std::io::Error::other("inventory file lock poisoned"))?;
        file.write_all(buf.as_bytes())
    }
}

#[cfg(test)]
mod tests;
