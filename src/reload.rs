//! Hot reload of the rules directory: on SIGHUP, and when the files change
//! (polled, which also sees Kubernetes ConfigMap symlink swaps), the rules are
//! loaded and validated in full and swapped atomically; on any error the last
//! good rules keep serving, and the failure is counted and logged.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;

use crate::metrics::Metrics;
use crate::policy::Policy;
use crate::rules;

/// Loads `dir` and swaps it in if it differs from the current rules.
/// Returns whether a new version was installed.
pub fn reload_once(dir: &std::path::Path, policy: &ArcSwap<Policy>, metrics: &Metrics) -> bool {
    match rules::load_dir(dir) {
        Ok(p) => {
            if p.version == policy.load().version {
                return false;
            }
            let version = p.version.clone();
            policy.store(Arc::new(p));
            metrics.set_rules(&version);
            metrics.rules_reloads.with_label_values(&["ok"]).inc();
            tracing::info!(%version, "rules reloaded");
            true
        }
        Err(errs) => {
            metrics.rules_reloads.with_label_values(&["error"]).inc();
            // Rule files are ours, not visitor data: their locations are safe to log.
            tracing::error!(errors = errs.0.len(), first = %errs.0[0], "rules reload failed; keeping the last good rules");
            false
        }
    }
}

/// Polls every `interval` and reloads on SIGHUP, until `shutdown`.
pub async fn watch_rules(
    dir: PathBuf,
    policy: Arc<crate::proxy::Shared>,
    interval: Duration,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
    let mut last_error_version: Option<String> = None;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(interval) => {
                // Only retry a broken tree when its content changed, to log each failure once.
                match rules::read_dir(&dir) {
                    Ok(src) if src.version != policy.policy.load().version => {
                        reload_once(&dir, &policy.policy, &policy.metrics);
                    }
                    Ok(_) => {}
                    Err(_) => {
                        let v = format!("{:?}", std::fs::read_dir(&dir).ok().map(|d| d.count()));
                        if last_error_version.as_deref() != Some(&v) {
                            reload_once(&dir, &policy.policy, &policy.metrics);
                            last_error_version = Some(v);
                        }
                    }
                }
            }
            _ = crate::serve::next_signal(&mut hup) => {
                tracing::info!("SIGHUP: reloading rules");
                reload_once(&dir, &policy.policy, &policy.metrics);
            }
            _ = shutdown.changed() => return,
        }
    }
}
