//! `[inventory]` and `[decision_log]`: what tagwarden keeps as evidence of the
//! third parties its pages reference. Both are in memory or off by default; a
//! `file` is opened (created, appended to) at start-up, and one that cannot be
//! opened stops `serve`.

use std::path::PathBuf;

use serde::Deserialize;

/// Largest `[inventory] max_entries`.
pub const MAX_INVENTORY_ENTRIES: usize = 100_000;

/// `[inventory]`: the live third-party inventory served as `/inventory` on the admin listener.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InventoryConfig {
    /// Entries kept (route × registrable domain × vendor × decision); beyond, the least
    /// referenced entry is folded into the `other` bucket. The same bound applies to the
    /// vendor asset paths whose hashes are tracked. Default 1,000; at most 100,000.
    #[serde(default = "default_max_entries")]
    pub max_entries: usize,
    /// JSON-lines evidence file: one line when a `(route, domain, vendor, decision,
    /// construct)` is first seen (`"kind": "reference"`) and when a first-party vendor
    /// asset's hash is first seen or changes (`"kind": "asset"`). Never a page path,
    /// query or host below the registrable domain. Default: none (in memory only).
    #[serde(default)]
    pub file: Option<PathBuf>,
}

fn default_max_entries() -> usize {
    crate::inventory::DEFAULT_MAX_ENTRIES
}

impl Default for InventoryConfig {
    fn default() -> Self {
        InventoryConfig { max_entries: default_max_entries(), file: None }
    }
}

/// `[decision_log]`: the PHI-free audit log, one JSON line per HTML document.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DecisionLogConfig {
    /// JSON-lines file (see [`crate::decision_log`]): time, route glob, rules version, mode,
    /// whether a CSP nonce was added, and counts per vendor / construct / action. Default: none.
    #[serde(default)]
    pub file: Option<PathBuf>,
}

impl InventoryConfig {
    /// Checks what serde cannot: `(key, message)` on a value tagwarden cannot use.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.max_entries == 0 || self.max_entries > MAX_INVENTORY_ENTRIES {
            return Err((
                "inventory.max_entries",
                format!("{} must be between 1 and {MAX_INVENTORY_ENTRIES}", self.max_entries),
            ));
        }
        Ok(())
    }
}
