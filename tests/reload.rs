//! Rule reloads: a valid change is swapped in whole, a broken one leaves the last
//! good rules serving, and each is counted.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use arc_swap::ArcSwap;
use tagwarden::metrics::Metrics;
use tagwarden::reload::reload_once;

fn copy_rules(to: &Path) {
    let from = Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
    std::fs::create_dir_all(to.join("vendors")).unwrap();
    std::fs::copy(from.join("site.toml"), to.join("site.toml")).unwrap();
    for e in std::fs::read_dir(from.join("vendors")).unwrap() {
        let e = e.unwrap();
        std::fs::copy(e.path(), to.join("vendors").join(e.file_name())).unwrap();
    }
}

fn counter(m: &Metrics, result: &str) -> u64 {
    m.rules_reloads.with_label_values(&[result]).get()
}

#[test]
fn a_valid_change_is_swapped_in_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let policy = ArcSwap::from_pointee(tagwarden::rules::load_dir(dir.path()).unwrap());
    let metrics = Metrics::new();
    let before = policy.load().version.clone();
    assert!(!reload_once(dir.path(), &policy, &metrics), "unchanged rules are not reinstalled");

    let site = std::fs::read_to_string(dir.path().join("site.toml")).unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        // Intercom has no BAA: only the non-PHI route may allow it.
        site.replace("path = \"/**\"\nallow = [\"zendesk\"]", "path = \"/**\"\nallow = [\"zendesk\", \"intercom\"]"),
    )
    .unwrap();
    assert!(reload_once(dir.path(), &policy, &metrics));
    let after = policy.load();
    assert_ne!(after.version, before);
    let (intercom, _) = after.vendor_by_id("intercom").unwrap();
    assert!(after.routes.iter().all(|r| r.allow.contains(&intercom) != r.phi));
    assert_eq!(counter(&metrics, "ok"), 1);
    assert!(metrics.render().contains(&format!("tagwarden_rules_info{{version=\"{}\"}} 1", after.version)));
}

#[test]
fn a_broken_change_keeps_the_last_good_rules() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let policy = ArcSwap::from_pointee(tagwarden::rules::load_dir(dir.path()).unwrap());
    let metrics = Metrics::new();
    let good = policy.load().version.clone();
    std::fs::write(
        dir.path().join("vendors/zendesk.toml"),
        "id = \"zendesk\"\nname = \"Z\"\ncategory = \"nonsense\"\nhosts = [\"a.example\"]\n",
    )
    .unwrap();
    assert!(!reload_once(dir.path(), &policy, &metrics));
    assert_eq!(policy.load().version, good, "last good rules still serve");
    assert_eq!(counter(&metrics, "error"), 1);
    assert_eq!(counter(&metrics, "ok"), 0);
}

async fn admin_rules(admin: std::net::SocketAddr) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(admin).await.unwrap();
    s.write_all(b"GET /rules HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").await.unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).await.unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_proxy_picks_up_edited_rules() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let mut config = tagwarden::config::Config { rules: dir.path().to_path_buf(), ..Default::default() };
    config.listen.address = "127.0.0.1:0".parse().unwrap();
    config.admin.address = "127.0.0.1:0".parse().unwrap();
    let running = tagwarden::serve::start(config).await.unwrap();
    assert!(!admin_rules(running.admin_addr).await.contains("intercom\"]"));
    let site = std::fs::read_to_string(dir.path().join("site.toml")).unwrap();
    std::fs::write(
        dir.path().join("site.toml"),
        // Intercom has no BAA: only the non-PHI route may allow it.
        site.replace("path = \"/**\"\nallow = [\"zendesk\"]", "path = \"/**\"\nallow = [\"zendesk\", \"intercom\"]"),
    )
    .unwrap();
    // Bounded wait for the watcher (it polls every 2 s): a hang guard, not a timing assertion.
    let mut picked_up = false;
    for _ in 0..100 {
        if admin_rules(running.admin_addr).await.contains("\"allow\":[\"zendesk\",\"intercom\"]") {
            picked_up = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(picked_up, "the edited rules were not loaded");
    assert_eq!(running.shared.metrics.rules_reloads.with_label_values(&["ok"]).get(), 1);
    let _ = running.shutdown.send(true);
}

/// Polls `done` until it holds: a hang guard around the watcher's own interval.
async fn eventually(what: &str, done: impl Fn() -> bool) {
    for _ in 0..500 {
        if done() {
            return;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    panic!("never happened: {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_broken_edit_is_counted_even_after_a_fix_in_between() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let config = tagwarden::config::Config { rules: dir.path().to_path_buf(), ..Default::default() };
    let policy = tagwarden::rules::load_dir(dir.path()).unwrap();
    let origin = tagwarden::proxy::Origin::plain("127.0.0.1:9".parse().unwrap());
    let shared = std::sync::Arc::new(tagwarden::proxy::Shared::new(policy, config, origin).unwrap());
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let interval = std::time::Duration::from_millis(20);
    tokio::spawn(tagwarden::reload::watch_rules(dir.path().to_path_buf(), shared.clone(), interval, stopped));
    let reloads = |result: &str| shared.metrics.rules_reloads.with_label_values(&[result]).get();
    let zendesk = dir.path().join("vendors/zendesk.toml");
    let good = std::fs::read_to_string(&zendesk).unwrap();

    std::fs::write(&zendesk, good.replace("category =", "categroy =")).unwrap();
    eventually("the first broken edit is counted", || reloads("error") == 1).await;
    std::fs::write(&zendesk, good.replace("name = \"", "name = \"Fixed ")).unwrap();
    eventually("the fix is loaded", || reloads("ok") == 1).await;
    std::fs::write(&zendesk, good.replace("hosts =", "hostz =")).unwrap();
    eventually("the second broken edit is counted", || reloads("error") == 2).await;
    let _ = stop.send(true);
}

#[test]
fn a_tree_that_stays_broken_is_tried_once_not_on_every_poll() {
    let dir = tempfile::tempdir().unwrap();
    copy_rules(dir.path());
    let policy = ArcSwap::from_pointee(tagwarden::rules::load_dir(dir.path()).unwrap());
    let metrics = Metrics::new();
    let mut watch = tagwarden::reload::RulesWatch::new(dir.path().to_path_buf(), &policy.load().version);
    assert_eq!(watch.poll(&policy, &metrics), None, "the serving rules are not reloaded");
    // Valid TOML, invalid rules: the files parse, the policy does not compile.
    let zendesk = dir.path().join("vendors/zendesk.toml");
    let good = std::fs::read_to_string(&zendesk).unwrap();
    std::fs::write(&zendesk, good.replace("category = \"support\"", "category = \"nonsense\"")).unwrap();
    assert_eq!(watch.poll(&policy, &metrics), Some(false));
    assert_eq!(watch.poll(&policy, &metrics), None);
    assert_eq!(watch.poll(&policy, &metrics), None);
    assert_eq!(counter(&metrics, "error"), 1, "one broken edit, one failure");
}
