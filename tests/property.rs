//! Property tests: documents assembled at random from loading constructs, URL
//! spellings, attribute quotings and nestings never make a browser load a host
//! outside the page's own site once rewritten (independent html5ever oracle,
//! scripting on and off); rewriting never panics; and chunk boundaries never
//! change the result.
//!
//! 64 cases per property by default; `PROPTEST_CASES` overrides it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::{Arc, OnceLock};

use proptest::prelude::*;
use proptest::strategy::ValueTree;
use proptest::test_runner::{Config, TestRunner};
use support::common::*;
use support::loads;
use tagwarden::policy::Policy;
use tagwarden::rewrite::{RewriteError, rewrite_chunked};

const PAGE: &str = "https://clinic.example/patient/intake";

/// Hosts URLs are drawn from: the site, its CDN, the allowed vendor (Zendesk),
/// named but not allowed vendors, and unknown third parties.
const HOSTS: &[&str] = &[
    "clinic.example",
    "cdn.clinic.example",
    "static.zdassets.com",
    "connect.facebook.net",
    "www.google-analytics.com",
    "evil.example",
    "tracker.invalid",
];

fn cases() -> u32 {
    std::env::var("PROPTEST_CASES").ok().and_then(|s| s.parse().ok()).unwrap_or(64)
}

fn policy() -> Arc<Policy> {
    static POLICY: OnceLock<Arc<Policy>> = OnceLock::new();
    POLICY.get_or_init(shipped_policy).clone()
}

// === generators ===

/// A URL as written in markup (before attribute quoting), in one of the
/// spellings a browser reads as the same URL.
fn url() -> impl Strategy<Value = String> {
    let host = prop::sample::select(HOSTS);
    let path = prop::sample::select(&["/a.js", "/p.gif?u=1&v=2", "/x/y.css", "/", "/i.png#f"][..]);
    (host, path, 0..14usize).prop_map(|(h, p, spelling)| match spelling {
        0 => format!("https://{h}{p}"),
        1 => format!("//{h}{p}"),
        2 => format!("HTTPS://{}{p}", h.to_ascii_uppercase()),
        3 => format!("https:\\\\{h}{}", p.replace('/', "\\")),
        4 => format!("  \n https://{h}{p} \t"),
        5 => format!("https&#x3a;//{h}{p}"),
        6 => format!("&#104;ttps://{h}{p}"),
        7 => format!("https:&sol;&sol;{h}{p}"),
        8 => format!("ht\ttps://{h}{p}"),
        9 => format!("https://{h}.{p}"),
        10 => format!("/\\{h}{p}"),
        11 => format!("http://{h}:80{p}"),
        12 => format!("https://user@{h}{p}"),
        _ => p.to_string(),
    })
}

/// Quotes an attribute value: double, single, or unquoted where the value allows it.
fn attr(value: &str, quoting: usize) -> String {
    let unquotable = !value.is_empty() && !value.contains(|c: char| c.is_ascii_whitespace() || "\"'=<>`".contains(c));
    match quoting % 3 {
        1 if !value.contains('\'') => format!("'{value}'"),
        2 if unquotable => value.to_string(),
        _ => format!("\"{}\"", value.replace('"', "&quot;")),
    }
}

/// Escapes markup for a double-quoted `srcdoc` value.
fn srcdoc_escape(html: &str) -> String {
    html.replace('&', "&amp;").replace('"', "&quot;")
}

const CONSTRUCTS: usize = 29;

/// One loading construct using up to three URLs.
fn construct(kind: usize, u: &[String], q: usize) -> String {
    let a = |i: usize| attr(&u[i], q + i);
    match kind {
        0 => format!("<script src={}></script>", a(0)),
        1 => format!("<img src={} alt=x>", a(0)),
        2 => format!("<img src=/ok.png srcset={}>", attr(&format!("{} 1x, {} 2x", u[0].trim(), u[1].trim()), q)),
        3 => format!("<link rel=stylesheet href={}>", a(0)),
        4 => format!("<link rel=preconnect href={}>", a(0)),
        5 => format!("<link rel=preload as=image href=/h.jpg imagesrcset={}>", attr(&format!("{} 2x", u[0].trim()), q)),
        6 => format!("<link rel=icon href={}>", a(0)),
        7 => format!("<iframe src={}></iframe>", a(0)),
        8 => format!("<style>.a{{background:url({})}}</style>", u[0].trim()),
        9 => format!("<style>@import \"{}\";</style>", u[0].trim()),
        10 => format!("<div style={}>t</div>", attr(&format!("background:url('{}')", u[0].trim()), q)),
        11 => format!("<svg><image href={} /></svg>", a(0)),
        12 => format!("<svg><use xlink:href={} /></svg>", a(0)),
        13 => format!("<svg><rect fill={} /></svg>", attr(&format!("url({})", u[0].trim()), q)),
        14 => format!("<video src={} poster={}></video>", a(0), a(1)),
        15 => format!("<audio><source src={}></audio>", a(0)),
        16 => format!("<video><track src={}></video>", a(0)),
        17 => format!("<object data={}></object>", a(0)),
        18 => format!("<embed src={}>", a(0)),
        19 => format!(
            "<form action={}><input type=image src={}><button formaction={}>b</button></form>",
            a(0),
            a(1),
            a(2)
        ),
        20 => format!("<a href=/x ping={}>x</a>", a(0)),
        21 => format!("<meta http-equiv=refresh content={}>", attr(&format!("0;url={}", u[0].trim()), q)),
        22 => format!("<base href={}>", a(0)),
        23 => format!("<table background={}><tr><td>x</td></tr></table>", a(0)),
        24 => format!("<input type=image src={}>", a(0)),
        25 => {
            let json = serde_json::json!({"prefetch": [{"source": "list", "urls": [u[0].trim()]}]});
            format!("<script type=speculationrules>{json}</script>")
        }
        26 => format!("<img src=/ok.png attributionsrc={}>", attr(&format!("/r {}", u[0].trim()), q)),
        27 => format!("<a href={} attributionsrc>x</a>", a(0)),
        _ => format!("<svg><a><animate attributeName=href to={} /></a></svg>", a(0)),
    }
}

const WRAPPERS: usize = 9;

fn wrap(inner: &str, wrapper: usize) -> String {
    match wrapper {
        0 => format!("<noscript>{inner}</noscript>"),
        1 => format!("<svg>{inner}</svg>"),
        2 => format!("<template>{inner}</template>"),
        3 => format!("<template shadowrootmode=open>{inner}</template>"),
        4 => format!("<table>{inner}</table>"),
        5 => format!("<math>{inner}</math>"),
        6 => format!("<div>{inner}</div>"),
        7 => format!("<iframe srcdoc=\"{}\"></iframe>", srcdoc_escape(inner)),
        _ => format!("<table><tr><td>{inner}</td></tr></table>"),
    }
}

/// A construct inside zero to three random wrappers.
fn fragment() -> impl Strategy<Value = String> {
    (0..CONSTRUCTS, prop::collection::vec(url(), 3), 0..3usize, prop::collection::vec(0..WRAPPERS, 0..3)).prop_map(
        |(kind, urls, q, wrappers)| wrappers.iter().fold(construct(kind, &urls, q), |html, w| wrap(&html, *w)),
    )
}

/// A document of one to eight fragments, with or without doctype and head.
fn document() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(fragment(), 1..8), prop::collection::vec(fragment(), 0..3)).prop_map(
        |(doctype, body, head)| {
            let dt = if doctype { "<!doctype html>" } else { "" };
            format!("{dt}<html><head>{}</head><body>{}</body></html>", head.concat(), body.concat())
        },
    )
}

/// Chunk sizes, cycled.
fn chunks() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1..97usize, 1..5)
}

/// Loads outside clinic.example with scripting on or off.
fn offsite_loads(html: &str) -> Vec<String> {
    let page_url = url::Url::parse(PAGE).unwrap();
    let own = same_site("clinic.example");
    loads::offsite_loads_any_scripting(html, &page_url, |h| own(h)).iter().map(|l| l.to_string()).collect()
}

fn rewrite(html: &[u8], sizes: &[usize]) -> Result<Vec<u8>, RewriteError> {
    let policy = policy();
    let ctx = page(&policy, PAGE);
    rewrite_chunked(&policy, &ctx, html, None, sizes).map(|(out, _)| out)
}

// === properties ===

proptest! {
    #![proptest_config(Config { cases: cases(), ..Config::default() })]

    #[test]
    fn rewritten_documents_load_nothing_outside_the_site(doc in document(), sizes in chunks()) {
        if let Ok(out) = rewrite(doc.as_bytes(), &sizes) {
            let out = String::from_utf8(out).unwrap();
            let leaks = offsite_loads(&out);
            prop_assert!(leaks.is_empty(), "leaks {leaks:?}\n--- input ---\n{doc}\n--- output ---\n{out}");
        }
    }

    #[test]
    fn chunk_boundaries_never_change_the_result(doc in document(), sizes in chunks()) {
        let whole = rewrite(doc.as_bytes(), &[usize::MAX]);
        let chunked = rewrite(doc.as_bytes(), &sizes);
        prop_assert_eq!(
            whole.as_ref().map(|o| String::from_utf8_lossy(o).into_owned()),
            chunked.as_ref().map(|o| String::from_utf8_lossy(o).into_owned()),
            "input:\n{}", doc
        );
    }

    #[test]
    fn rewriting_arbitrary_markup_never_panics(
        parts in prop::collection::vec(
            prop_oneof![
                prop::sample::select(&[
                    "<", ">", "</", "/>", "\"", "'", "=", "&", "&#x3a;", "<!--", "-->", "<![CDATA[", "]]>",
                    "<script>", "</script>", "<style>", "</style>", "<noscript>", "</noscript>", "<svg>", "</svg>",
                    "<math>", "<template>", "<iframe srcdoc=\"", "<textarea>", "<plaintext>", "<title>", "<xmp>",
                    "<select>", "<table>", "<base href=", " src=", " href=", " style=", "url(", ")", "\\", "\0",
                    "<meta charset=windows-1252>", "<meta http-equiv=refresh content=\"0;url=", "\u{feff}", "é",
                ][..]).prop_map(|s| s.as_bytes().to_vec()),
                url().prop_map(String::into_bytes),
                prop::collection::vec(any::<u8>(), 0..8),
            ],
            0..40,
        ),
        sizes in chunks(),
    ) {
        // Any outcome is acceptable as long as it is a value: Ok or a RewriteError.
        let _ = rewrite(&parts.concat(), &sizes);
    }
}

#[test]
fn most_generated_documents_are_rewritten_not_refused() {
    // The no-leak property only looks at documents that were rewritten; it must
    // not hold merely because everything is refused.
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let total = 200;
    let mut refused = Vec::new();
    for _ in 0..total {
        let doc = strategy.new_tree(&mut runner).unwrap().current();
        if let Err(e) = rewrite(doc.as_bytes(), &[usize::MAX]) {
            refused.push(format!("{}: {doc}", e.kind()));
        }
    }
    assert!(refused.len() * 4 < total, "{} of {total} refused:\n{}", refused.len(), refused.join("\n"));
}

#[test]
fn generated_documents_load_third_parties_before_rewriting() {
    // Likewise, the inputs must leak to begin with for the property to mean anything.
    let mut runner = TestRunner::deterministic();
    let strategy = document();
    let total = 200;
    let leaking =
        (0..total).filter(|_| !offsite_loads(&strategy.new_tree(&mut runner).unwrap().current()).is_empty()).count();
    assert!(leaking * 2 > total, "only {leaking} of {total} generated documents load off-site");
}

// === cases the generators found, kept as named regressions ===

/// Rewrites `html` as served at PAGE and returns the off-site loads of the output.
fn leaks_after_rewriting(html: &str) -> Vec<String> {
    let out = rewrite(html.as_bytes(), &[usize::MAX]).unwrap();
    offsite_loads(&String::from_utf8(out).unwrap())
}

#[test]
fn style_in_math_nested_directly_in_svg_is_rewritten() {
    // A browser keeps `<math>` inside `<svg>` in the SVG namespace (it is no
    // breakout tag), so the `<style>` is an SVG style sheet that loads its url()s.
    let leaks =
        leaks_after_rewriting("<svg><math><style>.a{background:url(https://evil.example/a.png)}</style></math></svg>");
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn script_href_in_math_nested_directly_in_svg_is_removed() {
    let leaks = leaks_after_rewriting("<svg><math><script href=\"https://evil.example/x.js\"></script></math></svg>");
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn removing_an_img_inside_svg_keeps_the_following_style_in_html() {
    // `<img>` breaks out of `<svg>`, so the `<style>` after it is an HTML style whose
    // text is raw (`&#x3a;` stays, the URL is relative). Removed without a trace, the
    // `<img>` no longer breaks out: the style becomes SVG, `&#x3a;` decodes to `:`.
    let leaks = leaks_after_rewriting(
        "<svg><img src=\"https://evil.example/x.png\"><style>.a{background:url(https&#x3a;//evil.example/a.png)}</style></svg>",
    );
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn removing_a_meta_refresh_inside_svg_keeps_the_following_style_in_html() {
    let leaks = leaks_after_rewriting(
        "<svg><meta http-equiv=refresh content=\"0;url=https://evil.example/\"><style>.a{background:url(https&#x3a;//evil.example/a.png)}</style></svg>",
    );
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn ping_before_a_first_party_base_with_another_scheme_stays_on_site() {
    // Ping URLs are resolved when the link is followed, against the document base
    // URL then: `https:evil.example/p` is relative under an https base but names
    // the host evil.example under the kept `http://clinic.example/` base.
    let leaks = leaks_after_rewriting(
        "<a href=/next ping=\"https:evil.example/p\">Next</a><base href=\"http://clinic.example/\">",
    );
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn form_action_before_a_first_party_base_with_another_scheme_stays_on_site() {
    let leaks = leaks_after_rewriting(
        "<form action=\"https:evil.example/c\"><button>Send</button></form><base href=\"http://clinic.example/\">",
    );
    assert!(leaks.is_empty(), "{leaks:?}");
}

#[test]
fn removing_an_img_inside_svg_keeps_the_following_script_in_html() {
    // As above: once the `<img>` is gone the script is an SVG script, whose text is
    // entity-decoded by the browser into `fbq('init', …)`, the Meta Pixel.
    let html = "<svg><img src=\"https://evil.example/x.png\"><script>fbq&#x28;'init', '1')</script></svg>";
    let out = String::from_utf8(rewrite(html.as_bytes(), &[usize::MAX]).unwrap()).unwrap();
    let policy = policy();
    let ctx = page(&policy, PAGE);
    let doc = loads::parse_html(&out, true);
    let sel = scraper::Selector::parse("script").unwrap();
    for script in doc.select(&sel) {
        let text: String = script.text().collect();
        let verdict = policy.decide_inline(&ctx, tagwarden::policy::Construct::InlineScript, &text);
        assert!(!matches!(verdict, Some((false, _))), "tracker script kept as {text:?} in {out}");
    }
}
