//! The shipped rules and page contexts, chunk plans with a reproducible seed,
//! and the first-party test the oracle checks against.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use tagwarden::policy::{ConsentSet, PageContext, Policy};

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

pub fn shipped_policy() -> Arc<Policy> {
    match tagwarden::rules::load_dir(&repo().join("rules")) {
        Ok(p) => Arc::new(p),
        Err(e) => panic!("shipped rules do not load:\n{e}"),
    }
}

pub fn page(policy: &Policy, url: &str) -> PageContext {
    let url = url::Url::parse(url).expect("test page URL");
    policy.page(&url, policy.consent_default)
}

pub fn page_with_consent(policy: &Policy, url: &str, consent: ConsentSet) -> PageContext {
    let url = url::Url::parse(url).expect("test page URL");
    policy.page(&url, consent)
}

/// Chunk sizes drawn from a seed: `TAGWARDEN_CHUNK_SEED` pins the seed,
/// `TAGWARDEN_CHUNK_SIZE` pins one size (to reproduce a failure).
pub fn chunk_plans() -> Vec<(String, Vec<usize>)> {
    if let Ok(size) = std::env::var("TAGWARDEN_CHUNK_SIZE") {
        let n: usize = size.parse().expect("TAGWARDEN_CHUNK_SIZE is a number");
        return vec![(format!("TAGWARDEN_CHUNK_SIZE={n}"), vec![n])];
    }
    // Different per test and per run unless pinned; printed on failure.
    let seed: u64 =
        std::env::var("TAGWARDEN_CHUNK_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(rand::random);
    let mut rng = StdRng::seed_from_u64(seed);
    let mut plans = vec![("whole".to_string(), vec![usize::MAX]), ("1-byte".to_string(), vec![1])];
    let sizes: Vec<usize> = (0..16).map(|_| rng.random_range(1..=257)).collect();
    plans.push((format!("TAGWARDEN_CHUNK_SEED={seed}"), sizes));
    plans
}

/// The site's own hosts for the oracle: the page host's registrable domain and
/// its subdomains (a trailing-dot spelling is the same host).
pub fn same_site(page_host: &str) -> impl Fn(&str) -> bool + use<> {
    let page_host = page_host.to_string();
    let reg = psl::domain_str(&page_host).unwrap_or(&page_host).to_string();
    move |h: &str| {
        let h = h.strip_suffix('.').unwrap_or(h).to_ascii_lowercase();
        h == page_host || h == reg || h.ends_with(&format!(".{reg}"))
    }
}

pub fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}
