//! Script-change detection for first-party vendor assets (the PCI DSS 6.4.3 /
//! 11.6.1 idea applied to what tagwarden proxies): the SHA-256 of every vendor
//! script and stylesheet body served through `<prefix>/<vendor>/<host>/<path>`,
//! per vendor, host and path (never the query), as the vendor sent it (content
//! coding removed, before tagwarden points its URLs first-party; the form
//! `[first_party] pin` values take). A path whose hash differs from the one seen
//! before is a change (`tagwarden_vendor_asset_changes_total{vendor}`).
//!
//! Bounded: at most as many paths as `[inventory] max_entries`; paths first seen
//! beyond that are not tracked (a widget's real assets load with every page, so
//! they are in long before a client could fill the table with made-up paths).

use std::collections::BTreeMap;
use std::sync::Mutex;

use base64::Engine;

/// The SRI form of a SHA-256 digest: `sha256-<base64>`.
pub fn sri(digest: &[u8; 32]) -> String {
    format!("sha256-{}", base64::engine::general_purpose::STANDARD.encode(digest))
}

/// What recording one asset body found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AssetChange {
    /// The path's first body since start.
    First,
    /// The same hash as last time.
    Same,
    /// A different hash from last time (`previous`).
    Changed { previous: [u8; 32] },
    /// The table is full and this path is not in it.
    Untracked,
}

#[derive(Debug, Clone)]
struct Asset {
    sha256: [u8; 32],
    changes: u64,
    first_seen: u64,
    last_seen: u64,
    /// When the current hash was first seen.
    since: u64,
}

/// `(vendor id, host, path)` → the current hash of that asset.
#[derive(Debug)]
pub struct AssetLedger {
    assets: Mutex<BTreeMap<(String, String, String), Asset>>,
    max_assets: usize,
}

impl AssetLedger {
    pub fn new(max_assets: usize) -> AssetLedger {
        AssetLedger { assets: Mutex::new(BTreeMap::new()), max_assets: max_assets.max(1) }
    }

    /// Records the hash of one body of `vendor`'s `host` + `path` (no query).
    /// Returns what changed and, for a first sighting or a change, the evidence line.
    pub fn record(
        &self,
        vendor: &str,
        host: &str,
        path: &str,
        sha256: [u8; 32],
        now: u64,
    ) -> (AssetChange, Option<String>) {
        let mut assets = self.assets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let key = (vendor.to_string(), host.to_string(), path.to_string());
        let full = assets.len() >= self.max_assets;
        let change = match assets.get_mut(&key) {
            Some(a) if a.sha256 == sha256 => {
                a.last_seen = now;
                AssetChange::Same
            }
            Some(a) => {
                let previous = a.sha256;
                a.sha256 = sha256;
                a.changes += 1;
                a.last_seen = now;
                a.since = now;
                AssetChange::Changed { previous }
            }
            None if full => AssetChange::Untracked,
            None => {
                assets.insert(key, Asset { sha256, changes: 0, first_seen: now, last_seen: now, since: now });
                AssetChange::First
            }
        };
        let line = match &change {
            AssetChange::First | AssetChange::Changed { .. } => {
                let previous = match &change {
                    AssetChange::Changed { previous } => Some(sri(previous)),
                    _ => None,
                };
                Some(
                    serde_json::json!({
                        "time": now,
                        "kind": "asset",
                        "vendor": vendor,
                        "host": host,
                        "path": path,
                        "sha256": sri(&sha256),
                        "previous": previous,
                    })
                    .to_string(),
                )
            }
            AssetChange::Same | AssetChange::Untracked => None,
        };
        (change, line)
    }

    /// Paths tracked.
    pub fn len(&self) -> usize {
        self.assets.lock().unwrap_or_else(std::sync::PoisonError::into_inner).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The current hash of every tracked asset, sorted by vendor, host and path.
    pub fn to_json(&self) -> serde_json::Value {
        let assets = self.assets.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        assets
            .iter()
            .map(|((vendor, host, path), a)| {
                serde_json::json!({
                    "vendor": vendor,
                    "host": host,
                    "path": path,
                    "sha256": sri(&a.sha256),
                    "changes": a.changes,
                    "first_seen": a.first_seen,
                    "last_seen": a.last_seen,
                    "hash_since": a.since,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_different_hash_on_the_same_path_is_a_change_and_the_query_is_never_a_key() {
        let l = AssetLedger::new(10);
        assert_eq!(l.record("zendesk", "static.zdassets.com", "/ekr/snippet.js", [1; 32], 10).0, AssetChange::First);
        assert_eq!(l.record("zendesk", "static.zdassets.com", "/ekr/snippet.js", [1; 32], 11).0, AssetChange::Same);
        let (change, line) = l.record("zendesk", "static.zdassets.com", "/ekr/snippet.js", [2; 32], 12);
        assert_eq!(change, AssetChange::Changed { previous: [1; 32] });
        let line: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        assert_eq!(line["previous"], sri(&[1; 32]));
        assert_eq!(line["sha256"], sri(&[2; 32]));
        let json = l.to_json();
        assert_eq!(json[0]["changes"], 1);
        assert_eq!(json[0]["sha256"], sri(&[2; 32]));
        assert_eq!(json[0]["first_seen"], 10);
        assert_eq!(json[0]["hash_since"], 12);
    }

    #[test]
    fn paths_beyond_the_bound_are_not_tracked() {
        let l = AssetLedger::new(3);
        for i in 0..100 {
            l.record("zendesk", "static.zdassets.com", &format!("/r{i}.js"), [0; 32], 1);
        }
        assert_eq!(l.len(), 3);
        assert_eq!(l.record("zendesk", "static.zdassets.com", "/r99.js", [0; 32], 2).0, AssetChange::Untracked);
        assert_eq!(
            l.record("zendesk", "static.zdassets.com", "/r0.js", [9; 32], 2).0,
            AssetChange::Changed { previous: [0; 32] }
        );
    }

    #[test]
    fn sri_is_sha256_dash_base64() {
        assert_eq!(sri(&[0; 32]), "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    }
}
