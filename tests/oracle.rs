//! The oracle's own specification: what `support::loads` (html5ever + cssparser,
//! sharing no code with the rewriter) reads as a load, construct by construct.
//! Every other suite trusts it to find what the rewriter missed, so it is tested
//! once, here.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use support::loads::*;
use url::Url;

fn page() -> Url {
    Url::parse("https://clinic.example/patient/intake").unwrap_or_else(|_| unreachable!())
}

fn first_party(h: &str) -> bool {
    h == "clinic.example" || h.ends_with(".clinic.example")
}

/// (construct, url) pairs, scripting as given.
fn get(html: &str, scripting: bool) -> Vec<(&'static str, String)> {
    loads(html, &page(), scripting).into_iter().map(|l| (l.construct, l.url.to_string())).collect()
}

fn urls(html: &str, scripting: bool) -> Vec<String> {
    get(html, scripting).into_iter().map(|(_, u)| u).collect()
}

fn has(html: &str, construct: &str, url: &str) {
    let got = get(html, false);
    assert!(
        got.iter().any(|(c, u)| *c == construct && u == url),
        "expected ({construct}, {url}) in {got:?}\nfor {html}"
    );
}

fn none(html: &str) {
    let got = loads_any_scripting(html, &page());
    assert!(got.is_empty(), "expected no loads, got {got:?}\nfor {html}");
}

const E: &str = "https://evil.example/x";

#[test]
fn script_src_and_relative_resolution() {
    has(r#"<script src="https://evil.example/x"></script>"#, "script src", E);
    has("<script src=/assets/app.js></script>", "script src", "https://clinic.example/assets/app.js");
    has("<script src=app.js></script>", "script src", "https://clinic.example/patient/app.js");
    has("<script src=//evil.example/x></script>", "script src", E);
    has(r#"<script type="text/plain" src="https://evil.example/x"></script>"#, "script src", E);
}

#[test]
fn inline_script_is_not_a_load() {
    none("<script>var s='https://evil.example/x'; fbq('init','1')</script>");
}

#[test]
fn img_src_and_srcset() {
    has("<img src=https://evil.example/x>", "img src", E);
    let html = r#"<img srcset="/a.png 1x, https://evil.example/x 2x,https://evil.example/b,c.png 3x, https://evil.example/d.png,,, /e.png 100w">"#;
    let u = urls(html, true);
    assert_eq!(
        u,
        vec![
            "https://clinic.example/a.png",
            E,
            "https://evil.example/b,c.png",
            "https://evil.example/d.png",
            "https://clinic.example/e.png",
        ]
    );
}

#[test]
fn srcset_parser() {
    assert_eq!(parse_srcset("a.png"), vec!["a.png"]);
    assert_eq!(parse_srcset(" a.png 1x , b.png 2x"), vec!["a.png", "b.png"]);
    assert_eq!(parse_srcset("a.png,b.png"), vec!["a.png,b.png"]);
    assert_eq!(parse_srcset("a.png, b.png"), vec!["a.png", "b.png"]);
    assert_eq!(parse_srcset("a.png (x, y) 1x, b.png"), vec!["a.png", "b.png"]);
    assert_eq!(parse_srcset(",,a.png,,,b.png"), vec!["a.png,,,b.png"]);
    assert_eq!(parse_srcset(",,a.png,,, b.png"), vec!["a.png", "b.png"]);
    assert!(parse_srcset("  , ").is_empty());
}

#[test]
fn picture_source_video_audio_track() {
    has("<picture><source srcset='https://evil.example/x 1x'><img src=/ok.png></picture>", "source srcset", E);
    has("<video src=https://evil.example/x></video>", "video src", E);
    has("<video poster=https://evil.example/x></video>", "video poster", E);
    has("<audio src=https://evil.example/x></audio>", "audio src", E);
    has("<video><source src=https://evil.example/x></video>", "source src", E);
    has("<video><track kind=captions src=https://evil.example/x></video>", "track src", E);
}

#[test]
fn link_rels() {
    for rel in [
        "stylesheet",
        "preload",
        "prefetch",
        "modulepreload",
        "preconnect",
        "dns-prefetch",
        "icon",
        "shortcut icon",
        "apple-touch-icon",
        "manifest",
        "prerender",
        "import",
        "alternate stylesheet",
        "STYLESHEET",
        "canonical stylesheet",
        "compression-dictionary",
    ] {
        let html = format!("<link rel='{rel}' href=https://evil.example/x>");
        assert_eq!(urls(&html, true), vec![E], "rel={rel}");
    }
    for rel in ["canonical", "alternate", "author", "next", "prev", "", "alternate nofollow"] {
        let html = format!("<link rel='{rel}' href=https://evil.example/x>");
        none(&html);
    }
    has("<link rel=preconnect href=https://evil.example/x>", "link[rel=preconnect] href", E);
    has("<link rel=dns-prefetch href=//evil.example/x>", "link[rel=dns-prefetch] href", E);
    has(
        "<link rel=preload as=image href=/ok.png imagesrcset='/ok.png 1x, https://evil.example/x 2x'>",
        "link imagesrcset",
        E,
    );
    none("<link href=https://evil.example/x>");
}

#[test]
fn frames_objects_embeds() {
    has("<iframe src=https://evil.example/x></iframe>", "iframe src", E);
    has("<frameset><frame src=https://evil.example/x></frameset>", "frame src", E);
    has("<object data=https://evil.example/x></object>", "object data", E);
    has("<object codebase=https://evil.example/x></object>", "object codebase", E);
    has("<embed src=https://evil.example/x>", "embed src", E);
    // iframe children are raw text
    none("<iframe><img src=https://evil.example/x></iframe>");
}

#[test]
fn srcdoc_is_parsed_recursively_with_parent_base() {
    let html = r#"<iframe srcdoc="&lt;img src=&quot;https://evil.example/x&quot;&gt;"></iframe>"#;
    let l = loads(html, &page(), true);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].construct, "img src");
    assert_eq!(l[0].url.as_str(), E);
    assert_eq!(l[0].nested_in, Some("iframe srcdoc"));
    // relative URL in srcdoc resolves against the parent's base
    let html = r#"<base href="https://evil.example/"><iframe srcdoc="<img src=x>"></iframe>"#;
    has(html, "img src", E);
    // a base inside the srcdoc applies to the srcdoc only
    let html = r#"<iframe srcdoc="<base href=https://evil.example/><img src=x>"></iframe><img src=/ok.png>"#;
    let u = urls(html, true);
    assert!(u.contains(&E.to_string()) && u.contains(&"https://clinic.example/ok.png".to_string()), "{u:?}");
}

#[test]
fn data_documents_are_followed() {
    has("<iframe src='data:text/html,%3Cimg%20src%3Dhttps://evil.example/x%3E'></iframe>", "img src", E);
    // base64 of <img src=https://evil.example/x>
    has("<object data='data:text/html;base64,PGltZyBzcmM9aHR0cHM6Ly9ldmlsLmV4YW1wbGUveD4='></object>", "img src", E);
    has(
        "<embed src=\"data:image/svg+xml,<svg xmlns='http://www.w3.org/2000/svg'><image href='https://evil.example/x'/></svg>\">",
        "svg image href",
        E,
    );
    // images are not documents: an SVG image does not load subresources
    none("<img src=\"data:image/svg+xml,<svg><image href='https://evil.example/x'/></svg>\">");
    // relative URLs inside a data: document cannot resolve
    none("<iframe src='data:text/html,<img src=/x.png>'></iframe>");
}

#[test]
fn forms_and_pings() {
    has("<form action=https://evil.example/x></form>", "form action", E);
    none("<form action=''></form>");
    has("<form><button formaction=https://evil.example/x>go</button></form>", "button formaction", E);
    has("<form><input type=submit formaction=https://evil.example/x></form>", "input formaction", E);
    has("<a href=/next ping='/ok https://evil.example/x'>n</a>", "a ping", E);
    has("<map><area href=/ ping=https://evil.example/x></map>", "area ping", E);
    none("<a href=https://evil.example/x>plain link</a>");
}

#[test]
fn input_image() {
    has("<input type=image src=https://evil.example/x>", "input[type=image] src", E);
    has("<INPUT TYPE=IMAGE SRC=https://evil.example/x>", "input[type=image] src", E);
    none("<input src=https://evil.example/x>");
}

#[test]
fn meta_refresh_parsing() {
    assert_eq!(meta_refresh_url("0; url=https://e.example/").as_deref(), Some("https://e.example/"));
    assert_eq!(meta_refresh_url("0;URL='https://e.example/'x").as_deref(), Some("https://e.example/"));
    assert_eq!(meta_refresh_url("  5 ,  Url = \"https://e.example/\"").as_deref(), Some("https://e.example/"));
    assert_eq!(meta_refresh_url("0;https://e.example/").as_deref(), Some("https://e.example/"));
    assert_eq!(meta_refresh_url(".5;url=/x").as_deref(), Some("/x"));
    assert_eq!(meta_refresh_url("0; urx=/x").as_deref(), Some("urx=/x"));
    assert_eq!(meta_refresh_url("0"), None);
    assert_eq!(meta_refresh_url("0;  "), None);
    assert_eq!(meta_refresh_url("x; url=/x"), None);
    assert_eq!(meta_refresh_url("0x; url=/x"), None);
    has(r#"<meta http-equiv="Refresh" content="0;URL='https://evil.example/x'">"#, "meta refresh", E);
    has("<body><meta http-equiv=refresh content='1; url=//evil.example/x'>", "meta refresh", E);
    none("<meta http-equiv=refresh content=30>");
    none("<meta name=refresh content='0; url=https://evil.example/x'>");
}

#[test]
fn table_and_body_background() {
    has("<body background=https://evil.example/x>", "body background", E);
    has("<table background=https://evil.example/x><tr><td>x</table>", "table background", E);
    has("<table><tr><td background=https://evil.example/x>x</table>", "td background", E);
    has("<table><tr><th background=https://evil.example/x>x</table>", "th background", E);
    has("<table><tr background=https://evil.example/x><td>x</table>", "tr background", E);
    // a second <body> tag merges its attributes into the body element
    has("<body><p>x</p><body background=https://evil.example/x>", "body background", E);
}

#[test]
fn base_handling() {
    // first base with href wins; applies to elements before it too
    let html = "<img src=a.png><base href=https://evil.example/><base href=https://other.example/><img src=x>";
    let u = urls(html, true);
    assert_eq!(u, vec!["https://evil.example/", "https://evil.example/a.png", E]);
    // a base without href is skipped
    let html = "<base target=_blank><base href=https://evil.example/><img src=x>";
    has(html, "img src", E);
    has(html, "base href", "https://evil.example/");
    // first-party base
    let html = "<base href=/static/><img src=x.png>";
    assert_eq!(urls(html, true), vec!["https://clinic.example/static/", "https://clinic.example/static/x.png"]);
    // javascript:/data: bases are ignored
    let html = "<base href='javascript:alert(1)'><img src=/x.png>";
    assert_eq!(urls(html, true), vec!["https://clinic.example/x.png"]);
    // base in body also counts
    has("<body><img src=x><base href=https://evil.example/>", "img src", E);
    // base in inert template does not count
    let html = "<template><base href=https://evil.example/></template><img src=/x.png>";
    assert_eq!(urls(html, true), vec!["https://clinic.example/x.png"]);
    // protocol-relative base
    has("<base href=//evil.example/><img src=x>", "img src", E);
}

#[test]
fn character_references() {
    has("<img src='https:&#x2F;&#x2F;evil.example/x'>", "img src", E);
    has("<img src='https&colon;//evil.example/x'>", "img src", E);
    has("<img src='&#104;ttps://evil.example/x'>", "img src", E);
    has("<img src='&#x68;&#x74;&#x74;&#x70;&#x73;&#x3a;//evil.example&#47;x'>", "img src", E);
    // legacy named reference without semicolon
    has("<img src='https://evil.example/x?a=1&amp&b=2'>", "img src", "https://evil.example/x?a=1&&b=2");
    // ...but not when followed by '=' (attribute value special case)
    has("<img src='https://evil.example/x?a=1&copy=2'>", "img src", "https://evil.example/x?a=1&copy=2");
    has("<img src='ht&Tab;tps://evil&NewLine;.example/x'>", "img src", E);
}

#[test]
fn url_parser_tricks() {
    has(r"<img src='https:\\evil.example\x'>", "img src", E);
    has(r"<img src='/\evil.example/x'>", "img src", E);
    has(r"<img src='\\evil.example/x'>", "img src", E);
    has("<img src='  https://evil.example/x  '>", "img src", E);
    has("<img src='ht\ttps://evil.example/x'>", "img src", E);
    has("<img src='//evil\n.example/x'>", "img src", E);
    has("<img src='HtTpS://EVIL.Example/x'>", "img src", E);
    has("<img src='https://clinic.example@evil.example/x'>", "img src", "https://clinic.example@evil.example/x");
    let l = loads("<img src='https://clinic.example@evil.example/x'>", &page(), true);
    assert_eq!(l[0].url.host_str(), Some("evil.example"));
    has(r"<img src='https://evil.example\@clinic.example/x'>", "img src", "https://evil.example/@clinic.example/x");
    has("<img src='https://evil.example#@clinic.example/x'>", "img src", "https://evil.example/#@clinic.example/x");
    has("<img src='https://evil.example%2Eexample.invalid/x'>", "img src", "https://evil.example.example.invalid/x");
    has("<img src='https://evil%2Eexample/x'>", "img src", E);
    has("<img src='https://evil.ｅｘａｍｐｌｅ/x'>", "img src", E);
    has("<img src='https://evil。example/x'>", "img src", E);
    let l = offsite_loads("<img src='https://evil.example./x'>", &page(), true, first_party);
    assert_eq!(l[0].url.host_str(), Some("evil.example."));
    let l = offsite_loads("<img src='https://clinic.example./x'>", &page(), true, first_party);
    assert_eq!(l.len(), 1, "trailing-dot first-party host is a different host string");
    has("<img src='https://bücher.example/x'>", "img src", "https://xn--bcher-kva.example/x");
    has("<img src='https://0x7f.1/x'>", "img src", "https://127.0.0.1/x");
}

#[test]
fn non_network_schemes_are_skipped() {
    none("<img src='data:image/png;base64,AAAA'>");
    none("<img src='blob:https://clinic.example/1234'>");
    none("<iframe src='about:blank'></iframe>");
    none("<iframe src='javascript:alert(1)'></iframe>");
    none("<form action='mailto:a@b.example'></form>");
}

#[test]
fn noscript_depends_on_scripting() {
    let html = "<noscript><img src=https://www.facebook.com/tr?id=1></noscript>";
    assert!(urls(html, true).is_empty());
    assert_eq!(urls(html, false), vec!["https://www.facebook.com/tr?id=1"]);
    // in <head>: an <img> closes the noscript and the head, still loads
    let html = "<html><head><noscript><img src=https://evil.example/x></noscript></head><body></body></html>";
    assert_eq!(urls(html, false), vec![E]);
    assert!(urls(html, true).is_empty());
    let html = "<head><noscript><link rel=stylesheet href=https://evil.example/x></noscript></head>";
    assert_eq!(urls(html, false), vec![E]);
    assert!(urls(html, true).is_empty());
    // nested markup
    let html = "<noscript><div><p><iframe src=https://evil.example/x></iframe></p></div></noscript>";
    assert_eq!(urls(html, false), vec![E]);
}

#[test]
fn templates_are_inert_unless_declarative_shadow_root() {
    none("<template><img src=https://evil.example/x></template>");
    none("<template><noscript><script src=https://evil.example/x></script></noscript></template>");
    let html = "<div><template shadowrootmode=open><img src=https://evil.example/x></template></div>";
    assert_eq!(urls(html, true), vec![E]);
    let html = "<div><template shadowrootmode=CLOSED><img src=https://evil.example/x></template></div>";
    assert_eq!(urls(html, true), vec![E]);
}

#[test]
fn svg_constructs() {
    has("<svg><script href=https://evil.example/x></script></svg>", "svg script href", E);
    has("<svg><script xlink:href=https://evil.example/x></script></svg>", "svg script href", E);
    has("<svg><image xlink:href=https://evil.example/x /></svg>", "svg image href", E);
    has("<svg><image href=https://evil.example/x /></svg>", "svg image href", E);
    has("<svg><use href=https://evil.example/x#a /></svg>", "svg use href", "https://evil.example/x#a");
    has("<svg><filter><feImage href=https://evil.example/x /></filter></svg>", "svg feImage href", E);
    has("<svg><filter><FEIMAGE xlink:href=https://evil.example/x /></filter></svg>", "svg feImage href", E);
    has(
        "<svg><image href=/ok.png><set attributeName=href to=https://evil.example/x /></image></svg>",
        "svg animate href",
        E,
    );
    has(
        "<svg><rect fill='url(https://evil.example/x#g)'/></svg>",
        "svg presentation url()",
        "https://evil.example/x#g",
    );
    has("<svg><style>rect{fill:url(https://evil.example/x)}</style></svg>", "style url()", E);
    // svg <a href> is navigation; an html-namespace xlink:href is nothing
    none("<svg><a href=https://evil.example/x><text>t</text></a></svg>");
    none("<img xlink:href=https://evil.example/x>");
    // <svg><img> breaks out of foreign content: an html img
    has("<svg><img src=https://evil.example/x></svg>", "img src", E);
    // html iframe name inside svg is an svg element, loads nothing
    none("<svg><iframe src=https://evil.example/x></iframe></svg>");
    // foreignObject is an HTML integration point
    has("<svg><foreignObject><img src=https://evil.example/x></foreignObject></svg>", "img src", E);
}

#[test]
fn css_extraction() {
    let c = css_url_strings;
    assert_eq!(c("a{background:url(https://e.example/1)}"), vec!["https://e.example/1"]);
    assert_eq!(c("a{background:url( 'https://e.example/1' )}"), vec!["https://e.example/1"]);
    assert_eq!(c("a{background:URL(\"https://e.example/1\")}"), vec!["https://e.example/1"]);
    assert_eq!(c(r"a{background:u\72l(https://e.example/1)}"), vec!["https://e.example/1"]);
    assert_eq!(c(r"a{background:\75 rl(https://e.example/1)}"), vec!["https://e.example/1"]);
    assert_eq!(c(r"a{background:url(https://e\.example/\31)}"), vec!["https://e.example/1"]);
    assert_eq!(c(r"a{background:url('https://e\2e example/1')}"), vec!["https://e.example/1"]);
    assert_eq!(c("a{background:/**/url(https://e.example/1)/**/}"), vec!["https://e.example/1"]);
    assert_eq!(c("@import 'https://e.example/1';"), vec!["https://e.example/1"]);
    assert_eq!(c("@import/**/\"https://e.example/1\" screen;"), vec!["https://e.example/1"]);
    assert_eq!(c(r"@im\70 ort 'https://e.example/1';"), vec!["https://e.example/1"]);
    assert_eq!(c("@import url(https://e.example/1);"), vec!["https://e.example/1"]);
    assert_eq!(c("<!-- @import 'https://e.example/1'; -->"), vec!["https://e.example/1"]);
    assert_eq!(
        c("a{background-image:image-set('https://e.example/1' 1x, url(https://e.example/2) 2x)}"),
        vec!["https://e.example/1", "https://e.example/2"]
    );
    assert_eq!(c("a{background:-webkit-image-set(\"https://e.example/1\" 1x)}"), vec!["https://e.example/1"]);
    assert_eq!(
        c("@font-face{font-family:x;src:local('X'),url(https://e.example/1.woff2) format('woff2')}"),
        vec!["https://e.example/1.woff2"]
    );
    assert_eq!(
        c("@media screen{@supports (x:y){a{cursor:url(https://e.example/1),auto}}}"),
        vec!["https://e.example/1"]
    );
    assert_eq!(c("@namespace svg url(http://www.w3.org/2000/svg); a{}"), Vec::<String>::new());
    assert_eq!(c("a{content:'url(https://e.example/1)'}"), Vec::<String>::new());
    assert_eq!(c("a{background:url(https://e.example/a b)}"), Vec::<String>::new());
    assert_eq!(c("/* url(https://e.example/1) */"), Vec::<String>::new());
    assert_eq!(c("a{background:url/**/(https://e.example/1)}"), Vec::<String>::new());
}

#[test]
fn style_element_and_attribute() {
    has("<style>body{background:url(https://evil.example/x)}</style>", "style url()", E);
    has("<style>@import 'https://evil.example/x';</style>", "style @import", E);
    has("<div style='background:url(https://evil.example/x)'>", "style attribute url()", E);
    has("<div style='background:url(&quot;https://evil.example/x&quot;)'>", "style attribute url()", E);
    has(r"<div style='background:u\72l(https://evil.example/x)'>", "style attribute url()", E);
    // entities are not decoded in <style> (raw text)
    let html = "<style>a{background:url(https&#58;//evil.example/x)}</style>";
    assert!(offsite_loads(html, &page(), true, first_party).is_empty());
    // html <style> contents are raw text: no img
    let html = "<style><img src=https://evil.example/x></style>";
    assert!(get(html, true).iter().all(|(c, _)| *c != "img src"));
}

#[test]
fn foreign_content_breakouts() {
    // style inside svg/math is NOT raw text: <img> breaks out
    has("<svg><style><img src=https://evil.example/x></style></svg>", "img src", E);
    has("<math><style><img src=https://evil.example/x></style></math>", "img src", E);
    has("<math><mi><img src=https://evil.example/x></mi></math>", "img src", E);
    has("<math><mtext><img src=https://evil.example/x></mtext></math>", "img src", E);
}

#[test]
fn raw_text_and_comment_edge_cases() {
    none("<textarea><img src=https://evil.example/x></textarea>");
    none("<xmp><img src=https://evil.example/x></xmp>");
    none("<title><img src=https://evil.example/x></title>");
    none("<noembed><img src=https://evil.example/x></noembed>");
    none("<plaintext><img src=https://evil.example/x>");
    none("<!--[if IE]><script src=https://evil.example/x></script><![endif]-->");
    none("<script><!--<script></script><img src=https://evil.example/x></script>-->");
    has("<!-- a --!><img src=https://evil.example/x>", "img src", E);
    has("<!--><img src=https://evil.example/x>-->", "img src", E);
    has("<!---><img src=https://evil.example/x>-->", "img src", E);
    has("<!--[if !IE]><!--><script src=https://evil.example/x></script><!--<![endif]-->", "script src", E);
    has("<script>a</script ><img src=https://evil.example/x>", "img src", E);
    has("<script>a</SCRIPT\t x=y><img src=https://evil.example/x>", "img src", E);
    has("<textarea>a</textarea x=y><img src=https://evil.example/x>", "img src", E);
    has("<? pi ><img src=https://evil.example/x>", "img src", E);
    has("<!DOCTYPE html SYSTEM \"a><img src=https://evil.example/x>\">", "img src", E);
}

#[test]
fn tree_builder_edge_cases() {
    // duplicate attributes: first wins
    assert_eq!(urls("<img src=/ok.png src=https://evil.example/x>", true), vec!["https://clinic.example/ok.png"]);
    assert_eq!(urls("<img src=https://evil.example/x src=/ok.png>", true), vec![E]);
    // foster parenting
    has("<table><img src=https://evil.example/x><tr><td>1</table>", "img src", E);
    // <image> becomes <img>
    has("<image src=https://evil.example/x>", "img src", E);
    // uppercase, unquoted, slash separator
    has("<IMG SRC=https://evil.example/x>", "img src", E);
    has("<img/src=https://evil.example/x>", "img src", E);
    has("<img \"a src=https://evil.example/x>", "img src", E);
    // html attribute merge on a second <html> tag
    has("<html><body><html manifest=https://evil.example/x>", "html manifest", E);
}

#[test]
fn speculation_rules() {
    has(
        r#"<script type=speculationrules>{"prefetch":[{"source":"list","urls":["https://evil.example/x"]}]}</script>"#,
        "speculationrules url",
        E,
    );
    has(
        r#"<a href=https://evil.example/x>l</a><script type=speculationrules>{"prefetch":[{"where":{"href_matches":"/*"}}]}</script>"#,
        "speculationrules document link",
        E,
    );
}

#[test]
fn offsite_filter() {
    let html = "<img src=/ok.png><img src=https://cdn.clinic.example/a.png><img src=https://evil.example/x>\
                <img src=https://clinic.example.evil.example/x><img src=https://evilclinic.example/x>";
    let off: Vec<String> =
        offsite_loads(html, &page(), true, first_party).into_iter().map(|l| l.url.to_string()).collect();
    assert_eq!(off, vec![E, "https://clinic.example.evil.example/x", "https://evilclinic.example/x"]);
}

#[test]
fn parser_findings_documented() {
    // <noscript> raw text ends at "</noscript>" even inside an attribute
    // value when scripting is enabled
    let html = "<noscript><p title=\"</noscript><img src=https://evil.example/x>\"></p></noscript>";
    assert_eq!(urls(html, true), vec![E]);
    assert!(urls(html, false).is_empty());
    // SVG <script> content is markup, not raw text
    has("<svg><script>var s = \"<img src=https://evil.example/x>\";</script></svg>", "img src", E);
    // </p> inside SVG breaks out of foreign content (current spec)
    has("<svg></p><style><a id=\"</style><img src=https://evil.example/x>\">", "img src", E);
    // html5ever still applies the legacy "in select" rules: img/div inside
    // <select> are dropped (newer Chromium keeps them: oracle blind spot)
    none("<select><img src=https://evil.example/x><div><img src=https://evil.example/y></div></select>");
    // raw-text lookalikes inside foreign content are ordinary elements
    has("<svg><textarea><img src=https://evil.example/x></textarea></svg>", "img src", E);
    has("<math><iframe><img src=https://evil.example/x></iframe></math>", "img src", E);
    // mXSS-style payloads that only fire after a reserialize/reparse do
    // not load on first parse
    none("<math><mtext><table><mglyph><style><img src=https://evil.example/x>");
}

#[test]
fn any_scripting_union() {
    let html = "<img src=https://tracker.invalid/a><noscript><img src=https://evil.example/x></noscript>";
    let off: Vec<String> =
        offsite_loads_any_scripting(html, &page(), first_party).into_iter().map(|l| l.url.to_string()).collect();
    assert_eq!(off, vec!["https://tracker.invalid/a", E]);
    let l = loads("<iframe src='data:text/html,<img src=https://evil.example/x>'></iframe>", &page(), true);
    assert_eq!(l.len(), 1);
    assert_eq!(l[0].nested_in, Some("data: document"));
    assert_eq!(l[0].to_string(), "[data: document] img src: https://evil.example/x");
}

#[test]
fn attributionsrc_lists_and_the_links_it_makes_registrations() {
    has("<img src=/ok.gif attributionsrc='/r https://evil.example/x'>", "img attributionsrc", E);
    has("<script src=/a.js attributionsrc='&#x20;https://evil.example/x\n'></script>", "script attributionsrc", E);
    has("<a href=/next attributionsrc=https://evil.example/x>n</a>", "a attributionsrc", E);
    has("<map><area href=/ attributionsrc='https://evil.example/x'></map>", "area attributionsrc", E);
    has("<a href=https://evil.example/x attributionsrc>n</a>", "a attributionsrc navigation", E);
    has("<map><area href=https://evil.example/x attributionsrc=''></map>", "area attributionsrc navigation", E);
    // img/script own URLs are reported as img/script src already; without the
    // attribute a link is a plain navigation
    assert_eq!(urls("<img src=https://evil.example/x attributionsrc>", true), vec![E]);
    none("<a href=https://evil.example/x>plain link</a>");
    none("<link attributionsrc=https://evil.example/x>");
}
