//! Reloads while the rule tree is being swapped: whatever moment a reload reads
//! the files, it installs one whole version — never site.toml of one release
//! with the vendor files of the other (a mix that validates, and that nobody wrote).
//! The layout: the rules path as a symlink re-pointed at each release. (A
//! Kubernetes ConfigMap volume, whose files are symlinks through a re-pointed
//! `..data`, is covered by the reload's before-and-after fingerprint check, which
//! no test here can exercise without racing the swap.)
//!
//! The swapping runs in a thread while the test reloads; no test asserts how
//! long anything took.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use arc_swap::ArcSwap;
use tagwarden::metrics::Metrics;
use tagwarden::reload::reload_once;

/// Two small releases of the rules, `a` and `b` under `root`, differing in two
/// files (site.toml and vendors/zendesk.toml), so a read that straddles a swap
/// gives a third version that validates. Returns their versions.
fn two_releases(root: &Path) -> (String, String) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    for v in ["a", "b"] {
        let to = root.join(v);
        std::fs::create_dir_all(to.join("vendors")).unwrap();
        let site = std::fs::read_to_string(from.join("site.toml")).unwrap();
        std::fs::write(to.join("site.toml"), format!("{site}\n# release {v}\n")).unwrap();
        let zendesk = std::fs::read_to_string(from.join("vendors/zendesk.toml")).unwrap();
        std::fs::write(to.join("vendors/zendesk.toml"), format!("{zendesk}\n# release {v}\n")).unwrap();
    }
    let version = |v: &str| tagwarden::rules::load_dir(&root.join(v)).unwrap().version;
    (version("a"), version("b"))
}

/// Re-points the symlink `link` between `a` and `b` (by rename, atomically) until `stop`,
/// pausing `pause` after each swap.
fn swapping(link: std::path::PathBuf, stop: Arc<AtomicBool>, pause: Duration) -> std::thread::JoinHandle<usize> {
    std::thread::spawn(move || {
        let next = link.with_file_name("rules.next");
        let mut swaps = 0;
        while !stop.load(Ordering::Relaxed) {
            let target = if swaps % 2 == 0 { "b" } else { "a" };
            let _ = std::fs::remove_file(&next);
            std::os::unix::fs::symlink(target, &next).unwrap();
            std::fs::rename(&next, &link).unwrap();
            swaps += 1;
            std::thread::sleep(pause);
        }
        swaps
    })
}

/// Reloads `rules` `rounds` times while `link` is swapped; every installed version
/// must be one of the two releases.
fn reload_during_swaps(
    rules: &Path,
    link: std::path::PathBuf,
    releases: (String, String),
    rounds: usize,
    pause: Duration,
) {
    let policy = ArcSwap::from_pointee(tagwarden::rules::load_dir(rules).unwrap());
    let metrics = Metrics::new();
    let stop = Arc::new(AtomicBool::new(false));
    let swapper = swapping(link, stop.clone(), pause);
    let mut mixed = Vec::new();
    let mut installed = 0;
    for _ in 0..rounds {
        installed += usize::from(reload_once(rules, &policy, &metrics));
        let v = policy.load().version.clone();
        if v != releases.0 && v != releases.1 {
            mixed.push(v);
        }
    }
    stop.store(true, Ordering::Relaxed);
    let swaps = swapper.join().unwrap();
    assert!(mixed.is_empty(), "{} of {rounds} reloads installed a mix of two releases: {mixed:?}", mixed.len());
    assert!(swaps > 1 && installed > 0, "nothing was swapped ({swaps}) or installed ({installed})");
}

#[test]
fn a_rules_symlink_re_pointed_during_reloads_never_installs_a_mix() {
    let root = tempfile::tempdir().unwrap();
    let releases = two_releases(root.path());
    let link = root.path().join("rules");
    std::os::unix::fs::symlink("a", &link).unwrap();
    // Swapping as fast as it can: most reads straddle a swap.
    reload_during_swaps(&link, link.clone(), releases, 100, Duration::ZERO);
}
