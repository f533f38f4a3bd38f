//! Hot reload of the rules directory: on SIGHUP, and when the files change
//! (polled, which also sees Kubernetes ConfigMap symlink swaps), the rules are
//! loaded and validated in full and swapped atomically; on any error the last
//! good rules keep serving, and the failure is counted and logged.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::metrics::{Metrics, ReloadResult};
use crate::policy::Policy;
use crate::rules;

/// Loads `dir` and swaps it in if it differs from the current rules.
/// Returns whether a new version was installed.
///
/// One tree is read, never a mix of two versions that happens to validate: a rules
/// path that is a symlink (re-pointed at each release) is read through where it
/// points when the load starts, and rules that do not match the files both before
/// and after they were read (a tree swapped mid-read, as a ConfigMap's `..data`)
/// are not installed — the change is there for the next poll or SIGHUP to load whole.
pub fn reload_once(dir: &Path, policy: &ArcSwap<Policy>, metrics: &Metrics) -> bool {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let before = rules::fingerprint(&dir);
    match rules::load_dir(&dir) {
        Ok(p) if p.version != before || p.version != rules::fingerprint(&dir) => {
            tracing::info!("rules changed while being read; not installed, the next poll loads them");
            false
        }
        Ok(p) => {
            if p.version == policy.load().version {
                return false;
            }
            let version = p.version.clone();
            metrics.vendors_loaded(&p);
            policy.store(Arc::new(p));
            metrics.set_rules(&version);
            metrics.reload(ReloadResult::Ok);
            tracing::info!(%version, "rules reloaded");
            true
        }
        Err(errs) => {
            metrics.reload(ReloadResult::Error);
            // Rule files are ours, not visitor data: their locations are safe to log.
            let first = errs.0.first().map(ToString::to_string).unwrap_or_default();
            tracing::error!(errors = errs.0.len(), %first, "rules reload failed; keeping the last good rules");
            false
        }
    }
}

/// Change detection for the polling watcher. It keys on a hash of the files'
/// contents ([`rules::fingerprint`]), not on whether they parse: every edit is
/// tried exactly once — a fix, and a second mistake after the fix, alike — and a
/// tree that stays broken is neither retried nor counted again on every poll.
#[derive(Debug)]
pub struct RulesWatch {
    dir: PathBuf,
    /// Fingerprint of the tree last tried (or loaded at start).
    last_tried: String,
}

impl RulesWatch {
    /// Watches `dir`, whose rules with `version` are serving now.
    pub fn new(dir: PathBuf, version: &str) -> RulesWatch {
        RulesWatch { dir, last_tried: version.to_string() }
    }

    /// Reloads if the files changed since the last attempt; `None` when they did not.
    pub fn poll(&mut self, policy: &ArcSwap<Policy>, metrics: &Metrics) -> Option<bool> {
        let now = rules::fingerprint(&self.dir);
        if now == self.last_tried {
            return None;
        }
        self.last_tried = now;
        Some(reload_once(&self.dir, policy, metrics))
    }

    /// Reloads whatever the files hold (SIGHUP), and remembers them as tried.
    pub fn force(&mut self, policy: &ArcSwap<Policy>, metrics: &Metrics) -> bool {
        self.last_tried = rules::fingerprint(&self.dir);
        reload_once(&self.dir, policy, metrics)
    }
}

/// Polls every `interval` and reloads on SIGHUP, until `shutdown`.
pub async fn watch_rules(
    dir: PathBuf,
    shared: Arc<crate::proxy::Shared>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut watch = RulesWatch::new(dir, &shared.policy.load().version);
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {
                watch.poll(&shared.policy, &shared.metrics);
            }
            _ = next_signal(&mut hup) => {
                tracing::info!("SIGHUP: reloading rules");
                watch.force(&shared.policy, &shared.metrics);
            }
            _ = shutdown.changed() => return,
        }
    }
}

/// Waits for the next delivery of a signal; never returns if it could not be installed.
pub async fn next_signal(signal: &mut Option<tokio::signal::unix::Signal>) {
    match signal.as_mut() {
        Some(s) => {
            s.recv().await;
        }
        None => std::future::pending::<()>().await,
    }
}
