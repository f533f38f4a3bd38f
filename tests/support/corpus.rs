//! The shared corpus of real pages (`../shared/corpus/pages/*.html`, from Mozilla
//! Readability's test pages), each with the URL of its own site.

use std::path::{Path, PathBuf};

use url::Url;

/// One corpus page: its file name, its HTML and the URL it was served at.
#[derive(Debug)]
pub struct Page {
    pub name: String,
    pub html: String,
    /// From `<link rel=canonical>`, else `<meta property=og:url>`.
    pub url: Url,
}

pub fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/pages")
}

/// Every page, sorted by file name. Panics if the corpus is missing or a page
/// names no URL: a corpus test that runs over nothing proves nothing.
pub fn pages() -> Vec<Page> {
    let dir = dir();
    let entries = std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("corpus {}: {e}", dir.display()));
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "html"))
        .collect();
    paths.sort();
    assert!(!paths.is_empty(), "no pages in {}", dir.display());
    paths.iter().map(|p| load(p)).collect()
}

fn load(path: &Path) -> Page {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let html = String::from_utf8(bytes).unwrap_or_else(|_| panic!("{name}: corpus pages are UTF-8"));
    let url = site_url(&html).unwrap_or_else(|| panic!("{name}: no absolute <link rel=canonical> or og:url"));
    Page { name, html, url }
}

/// The page's own URL: `<link rel=canonical href>`, else `<meta property=og:url content>`.
pub fn site_url(html: &str) -> Option<Url> {
    let doc = scraper::Html::parse_document(html);
    let canonical = scraper::Selector::parse("link[rel~=canonical][href]").ok()?;
    let og = scraper::Selector::parse("meta[property='og:url'][content]").ok()?;
    let absolute = |s: &str| Url::parse(s.trim()).ok().filter(|u| matches!(u.scheme(), "http" | "https"));
    doc.select(&canonical)
        .filter_map(|e| e.value().attr("href"))
        .find_map(absolute)
        .or_else(|| doc.select(&og).filter_map(|e| e.value().attr("content")).find_map(absolute))
}
