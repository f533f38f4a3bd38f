//! Unit tests of the stream's fail-closed and mode behaviour; construct-level
//! behaviour is covered by the golden, evasion and corpus tests under `tests/`.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;

use super::*;
use crate::policy::ConsentSet;

fn policy() -> Arc<Policy> {
    Arc::new(crate::rules::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap())
}

fn page(p: &Policy) -> PageContext {
    p.page(&url::Url::parse("https://clinic.example/patient/x").unwrap(), ConsentSet::essential_only())
}

#[test]
fn utf16_bom_is_an_error_not_a_pass_through() {
    let p = policy();
    let mut s = HtmlStream::new(p.clone(), page(&p), RewriteOptions::default(), Some("utf-8")).unwrap();
    let mut input = vec![0xFF, 0xFE];
    for c in "<img src=https://evil.example/x>".encode_utf16() {
        input.extend_from_slice(&c.to_le_bytes());
    }
    assert_eq!(s.write(&input), Err(RewriteError::UnsupportedEncoding("UTF-16LE")));
    assert_eq!(s.end(), Err(RewriteError::Poisoned));
}

#[test]
fn utf16_charset_label_is_refused_up_front() {
    let p = policy();
    let err = HtmlStream::new(p.clone(), page(&p), RewriteOptions::default(), Some("utf-16")).unwrap_err();
    assert_eq!(err.kind(), "unsupported_encoding");
}

#[test]
fn inline_script_over_the_limit_fails_closed() {
    let p = policy();
    let opts = RewriteOptions { max_inline_bytes: 64, ..RewriteOptions::default() };
    let mut s = HtmlStream::new(p.clone(), page(&p), opts, None).unwrap();
    let doc = format!("<script>{}</script>", "x".repeat(100));
    let out = s.write(doc.as_bytes());
    assert_eq!(out, Err(RewriteError::InlineTooLarge(64)));
    assert!(s.write(b"<p>more</p>").is_err(), "a failed stream never passes the rest through");
}

#[test]
fn memory_limit_is_an_error() {
    let p = policy();
    let opts = RewriteOptions { max_memory_bytes: 2048, ..RewriteOptions::default() };
    let mut s = HtmlStream::new(p.clone(), page(&p), opts, None).unwrap();
    // One start tag larger than the memory bound must be buffered whole by the parser.
    let doc = format!("<div title=\"{}\">", "a".repeat(64 * 1024));
    let mut result = s.write(doc.as_bytes()).map(|_| ());
    if result.is_ok() {
        result = s.end().map(|_| ());
    }
    assert_eq!(result, Err(RewriteError::MemoryLimit));
}

#[test]
fn report_mode_returns_input_bytes_and_still_records() {
    let p = policy();
    let mut ctx = page(&p);
    ctx.mode = Mode::Report;
    let mut s = HtmlStream::new(p.clone(), ctx, RewriteOptions::default(), None).unwrap();
    let doc = b"<script src=\"https://connect.facebook.net/en_US/fbevents.js\"></script><p>x</p>";
    let mut out = s.write(&doc[..20]).unwrap();
    out.extend(s.write(&doc[20..]).unwrap());
    out.extend(s.end().unwrap());
    assert_eq!(out, doc);
    let findings = s.take_findings();
    assert_eq!(findings.len(), 1);
    assert_eq!(findings[0].vendor.as_deref(), Some("meta_pixel"));
}

fn rewrite_with_shim(doc: &str) -> String {
    let p = policy();
    let mut pg = page(&p);
    pg.shim_tag = Some("<script src=\"/_tw/shim.js\" data-tw-shim></script>".into());
    let mut s = HtmlStream::new(p.clone(), pg, RewriteOptions::default(), None).unwrap();
    let mut out = s.write(doc.as_bytes()).unwrap();
    out.extend(s.end().unwrap());
    String::from_utf8(out).unwrap()
}

#[test]
fn the_shim_goes_first_after_the_charset_and_before_any_script() {
    let out = rewrite_with_shim(
        "<!doctype html><html><head><meta charset=utf-8><script>var a;</script></head><body></body></html>",
    );
    assert_eq!(
        out,
        "<!doctype html><html><head><meta charset=utf-8><script src=\"/_tw/shim.js\" data-tw-shim></script>\
         <script>var a;</script></head><body></body></html>"
    );
}

#[test]
fn the_shim_survives_a_removed_first_element_and_a_missing_head() {
    let out = rewrite_with_shim("<script src=https://connect.facebook.net/en_US/fbevents.js></script><p>x</p>");
    assert_eq!(out, "<script src=\"/_tw/shim.js\" data-tw-shim></script><p>x</p>");
}

#[test]
fn the_shim_is_inserted_once_and_first_in_srcdoc_documents() {
    let out = rewrite_with_shim("<title>t</title><iframe srcdoc=\"<p>hi</p>\"></iframe><p>z</p>");
    assert_eq!(out.matches("/_tw/shim.js").count(), 2, "{out}");
    assert_eq!(
        out,
        "<script src=\"/_tw/shim.js\" data-tw-shim></script><title>t</title>\
         <iframe srcdoc=\"<script src=&quot;/_tw/shim.js&quot; data-tw-shim></script><p>hi</p>\"></iframe><p>z</p>"
    );
}

#[test]
fn noscript_content_gets_no_shim() {
    let out = rewrite_with_shim("<head><noscript><link rel=stylesheet href=/a.css></noscript></head>");
    assert_eq!(
        out,
        "<head><script src=\"/_tw/shim.js\" data-tw-shim></script><noscript><link rel=stylesheet href=/a.css></noscript></head>"
    );
}

/// The `data:` shortcut taken before URL parsing gives `Policy::decide`'s answer
/// exactly where it applies, and does not apply to values a parser reads otherwise.
#[test]
fn data_url_shortcut_agrees_with_the_parser() {
    use crate::policy::{Construct, Decision};
    let p = policy();
    let pg = page(&p);
    let values = [
        "data:image/png;base64,AAAA",
        " \t\n\x01DATA:,x",
        "DaTa:text/html,<script>x</script>",
        "data:",
        "da\tta:,x",
        "data",
        "/data:x",
        "&#100;ata:,x",
        "https://evil.example/data:,x",
        "javascript:alert(1)",
    ];
    let constructs = [Construct::Img, Construct::StyleBlock, Construct::Script, Construct::Iframe, Construct::Link];
    let mut shortcuts = 0;
    for v in values {
        for c in constructs {
            if !Policy::keeps_without_parsing(c, v) {
                continue;
            }
            shortcuts += 1;
            let url = pg.page_url.join(v).unwrap();
            assert_eq!(p.decide(&pg, c, &url), (Decision::Keep, None), "{v:?} in {c:?}");
        }
    }
    assert_eq!(shortcuts, 4 * 3, "four values in the three non-executing constructs");
    assert!(!Policy::keeps_without_parsing(Construct::Script, "data:,alert(1)"));
    assert!(!Policy::keeps_without_parsing(Construct::Img, "da\tta:,x"), "left to the parser");
}

/// Tag and attribute names are read from lol_html's bytes (`TagNames`): upper-case
/// ASCII names are lower-cased, and a name with non-ASCII bytes in a legacy
/// encoding still counts (here as an `on…` handler whose code is a vendor snippet).
#[test]
fn names_are_read_in_any_case_and_encoding() {
    let p = policy();
    let pg = page(&p);
    let doc = b"<DIV ONCLICK=\"fbq('init', '1')\">a</DIV><IMG SRC=https://evil.example/x>\
                <p on\xfc=\"fbq('init', '2')\">b</p><img d\xe9=1 src=https://evil.example/y>";
    let (out, _) = rewrite_document(&p, &pg, doc, Some("windows-1252")).unwrap();
    let out = encoding_rs::WINDOWS_1252.decode(&out).0.into_owned();
    assert!(!out.contains("fbq"), "{out}");
    assert!(!out.contains("evil.example"), "{out}");
    assert!(out.contains("<DIV>a</DIV>") && out.contains("<p>b</p>"), "{out}");
}
