//! What the fuzz targets check, as plain functions so `cargo test` can run them
//! over a few inputs without libFuzzer (see `tests` below and README.md).
#![forbid(unsafe_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tagwarden::policy::{PageContext, Policy};
use tagwarden::rewrite::rewrite_chunked;

/// The page every input is served at.
pub const PAGE: &str = "https://clinic.example/patient/intake";

/// The shipped rules (`<repo>/rules`) and the page context, built once per process.
pub fn shipped() -> &'static (Arc<Policy>, PageContext) {
    static SHIPPED: OnceLock<(Arc<Policy>, PageContext)> = OnceLock::new();
    SHIPPED.get_or_init(|| {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../rules");
        let policy = match tagwarden::rules::load_dir(&dir) {
            Ok(p) => Arc::new(p),
            Err(e) => panic!("shipped rules in {} do not load:\n{e}", dir.display()),
        };
        let Ok(url) = url::Url::parse(PAGE) else { panic!("{PAGE} is not a URL") };
        let page = policy.page(&url, policy.consent_default);
        (policy, page)
    })
}

/// `TAGWARDEN_FUZZ_SKIP=idempotence` (or `chunking`, or both, comma separated)
/// turns a check off, to keep fuzzing past a known failure.
fn skipped(check: &str) -> bool {
    static SKIP: OnceLock<Vec<String>> = OnceLock::new();
    SKIP.get_or_init(|| {
        std::env::var("TAGWARDEN_FUZZ_SKIP")
            .unwrap_or_default()
            .split(',')
            .map(|s| s.trim().to_string())
            .filter(|s| !s.is_empty())
            .collect()
    })
    .iter()
    .any(|s| s == check)
}

/// The `rewrite` target: the first byte picks a chunk size (1–256), the rest is
/// the document. Rewriting must not panic; when it succeeds, the whole-document
/// rewrite must give the same bytes (`chunking`), and rewriting the output again
/// must change nothing (`idempotence`).
pub fn check_rewrite(data: &[u8]) {
    let (policy, page) = shipped();
    let (size, doc) = match data.split_first() {
        Some((b, rest)) => (usize::from(*b) + 1, rest),
        None => (1, data),
    };
    let Ok((once, _)) = rewrite_chunked(policy, page, doc, None, &[size]) else {
        return;
    };
    if !skipped("chunking") {
        match rewrite_chunked(policy, page, doc, None, &[usize::MAX]) {
            Ok((whole, _)) => assert!(whole == once, "chunk size {size} changed the output"),
            Err(e) => panic!("chunk size {size} rewrote a document the whole-document rewrite refuses: {e}"),
        }
    }
    if !skipped("idempotence")
        && let Ok((twice, _)) = rewrite_chunked(policy, page, &once, None, &[size])
    {
        assert!(twice == once, "rewriting the output again changed it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every dictionary entry on its own and all of them in one document, at a
    /// few chunk sizes: a smoke test of the target without libFuzzer.
    #[test]
    fn target_accepts_the_dictionary_entries() {
        let dict = std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("html.dict")).unwrap_or_default();
        let entries: Vec<Vec<u8>> = dict
            .lines()
            .filter_map(|l| l.trim().strip_prefix('"').and_then(|l| l.strip_suffix('"')))
            .map(|e| e.replace("\\\"", "\"").replace("\\\\", "\\").into_bytes())
            .collect();
        assert!(entries.len() > 50, "html.dict has {} entries", entries.len());
        let all = entries.concat();
        for size in [0u8, 1, 15, 255] {
            for e in &entries {
                check_rewrite(&[&[size][..], e].concat());
            }
            check_rewrite(&[&[size][..], &all].concat());
        }
    }
}
