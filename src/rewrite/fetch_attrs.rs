//! Every attribute that makes a browser fetch something or open a connection, per
//! element and namespace, each with where that behaviour is specified — and the
//! URL-valued attributes that fetch nothing, each with why. Also every `<link rel>`
//! keyword, decided as loading or not.
//!
//! One table, because the platform keeps adding fetching attributes (`ping`,
//! `imagesrcset`, `attributionsrc`, …) and a list collected by hand inside handler
//! code drifts without anyone noticing. The rewriter's element handler is driven by
//! [`FETCH_ATTRS`] (so the table is what runs, not a description of it), and
//! `tests/spec_index.rs` holds the table against the HTML Standard's attribute and
//! link-type indexes (`tests/spec/`): an attribute whose value the standard says is a
//! URL must be here or in [`NOT_FETCHED`], and every link type in the standard must
//! be in [`LINK_RELS`].

use std::collections::HashMap;
use std::sync::LazyLock;

use crate::policy::Construct;

/// The namespace an entry applies to, as lol_html places the element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Namespace {
    /// The HTML namespace. HTML entries also apply to foreign elements of the same
    /// name: where lol_html's reading of foreign content differs from a browser's
    /// (`<svg><img>` breaks out), checking both readings only removes more.
    Html,
    /// SVG, and every other foreign element (MathML), read by SVG's stricter rules.
    Svg,
}

/// How an attribute's value carries its URLs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Value {
    /// One URL.
    Url,
    /// URLs separated by ASCII whitespace (`ping`).
    UrlList,
    /// The candidates of a `srcset` or `imagesrcset`.
    Srcset,
    /// `attributionsrc`: URLs separated by ASCII whitespace, each sent a background
    /// request; the attribute's presence, even empty, also makes the element's own
    /// request (the attributes named in `own`) an attribution registration. The
    /// attribute stays only while every `own` URL is kept as it is.
    /// `own_recorded`: the `own` attributes have no entry of their own on this
    /// element (`a href`), so their decision is recorded here.
    AttributionSrc { own: &'static [&'static str], own_recorded: bool },
    /// CSS: every `url()`, `@import`, `image-set()` and `src()`.
    Css,
    /// `<meta http-equiv=refresh content>`: the URL after the delay.
    RefreshContent,
    /// `<base href>`: every relative URL after it resolves against it.
    BaseHref,
    /// `<iframe srcdoc>`: a whole document, rewritten as one.
    Document,
    /// SVG animation `values`: URLs separated by `;`.
    AnimationValues,
}

/// What goes when a URL is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Only the attribute (the element's content is shown, or the element is a
    /// foreign-content breakout tag whose removal would change how later markup parses).
    Attribute,
    /// The whole element (its content is never rendered: script, iframe, link, …).
    Element,
}

/// When an entry applies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Gate {
    Always,
    /// A `<link>` whose `rel` has a keyword that loads ([`link_rel_loads`]).
    LinkRelLoads,
    /// `<meta http-equiv=refresh>`.
    HttpEquivRefresh,
    /// An SVG animation whose `attributeName` is `href` or `xlink:href`.
    AnimatesHref,
}

/// One attribute that makes a browser fetch or connect.
#[derive(Debug)]
pub struct FetchAttr {
    pub namespace: Namespace,
    /// Lower-case local names; `"*"` is every element of the namespace.
    pub elements: &'static [&'static str],
    /// The lower-case name as lol_html reports it (`xlink:href`); `"*"` is every
    /// attribute whose value contains a CSS function (SVG presentation attributes).
    pub attribute: &'static str,
    pub value: Value,
    pub gate: Gate,
    /// The metric / `--explain` label of what it loads.
    pub construct: Construct,
    pub removal: Removal,
    /// Where the behaviour is specified (or, for engine features, which engine has it).
    pub source: &'static str,
}

/// A URL-valued attribute that makes no request while the page loads.
#[derive(Debug)]
pub struct NotFetched {
    pub namespace: Namespace,
    /// Lower-case local names; `"*"` is every element of the namespace.
    pub elements: &'static [&'static str],
    pub attribute: &'static str,
    pub reason: &'static str,
}

/// One `<link rel>` keyword. Keywords not listed load (fail closed).
#[derive(Debug)]
pub struct LinkRel {
    pub keyword: &'static str,
    /// The `href` is fetched, or its host resolved or connected to.
    pub loads: bool,
    pub source: &'static str,
}

const fn attr(
    namespace: Namespace,
    elements: &'static [&'static str],
    attribute: &'static str,
    value: Value,
    construct: Construct,
    removal: Removal,
    source: &'static str,
) -> FetchAttr {
    FetchAttr { namespace, elements, attribute, value, gate: Gate::Always, construct, removal, source }
}

const fn gated(gate: Gate, a: FetchAttr) -> FetchAttr {
    FetchAttr { gate, ..a }
}

use Construct as C;
use Namespace::{Html, Svg};
use Removal::{Attribute, Element};

const ANIMATIONS: &[&str] = &["set", "animate", "animatetransform", "animatemotion", "discard"];

/// Every attribute that makes a browser fetch or connect. Per element the rewriter
/// applies entries in this order and stops at the first that removes the element.
/// Sources name the standard's definition (its anchor) or the engine feature.
#[rustfmt::skip] // a table: one entry per line
pub static FETCH_ATTRS: &[FetchAttr] = &[
    // === every element ===
    attr(Html, &["*"], "style", Value::Css, C::StyleAttr, Attribute, "HTML #the-style-attribute: CSS declarations (url(), image-set())"),
    attr(Html, &["*"], "background", Value::Url, C::Background, Attribute, "HTML rendering, presentational hints: body/table/tbody/thead/tfoot/tr/td/th background; checked everywhere"),
    // === HTML ===
    // attributionsrc before src/srcset: it is decided on the element's own URLs as written.
    attr(Html, &["img", "image"], "attributionsrc", Value::AttributionSrc { own: &["src", "srcset"], own_recorded: false }, C::AttributionSrc, Attribute, "Attribution Reporting (WICG) HTMLAttributionSrcElementUtils; Chromium 117+"),
    attr(Html, &["img", "image"], "src", Value::Url, C::Img, Attribute, "HTML #update-the-image-data (image: the tree builder's alias of img)"),
    attr(Html, &["img", "image"], "srcset", Value::Srcset, C::Img, Attribute, "HTML #selecting-an-image-source"),
    attr(Html, &["source"], "src", Value::Url, C::Source, Element, "HTML #concept-media-load-algorithm (resource selection)"),
    attr(Html, &["source"], "srcset", Value::Srcset, C::Source, Element, "HTML #selecting-an-image-source (picture)"),
    gated(Gate::LinkRelLoads, attr(Html, &["link"], "href", Value::Url, C::Link, Element, "HTML #fetch-and-process-the-linked-resource (rel keywords: LINK_RELS)")),
    gated(Gate::LinkRelLoads, attr(Html, &["link"], "imagesrcset", Value::Srcset, C::Link, Element, "HTML #attr-link-imagesrcset (preload)")),
    attr(Html, &["iframe", "frame"], "src", Value::Url, C::Iframe, Element, "HTML #process-the-iframe-attributes; obsolete #frame still navigates"),
    attr(Html, &["iframe"], "srcdoc", Value::Document, C::Srcdoc, Attribute, "HTML #an-iframe-srcdoc-document"),
    attr(Html, &["object"], "data", Value::Url, C::Object, Attribute, "HTML #the-object-element: fetches data"),
    attr(Html, &["object"], "codebase", Value::Url, C::Object, Attribute, "HTML obsolete #attr-object-codebase: base URL of legacy plugin data"),
    attr(Html, &["embed"], "src", Value::Url, C::Embed, Attribute, "HTML #the-embed-element"),
    attr(Html, &["video", "audio"], "src", Value::Url, C::Media, Attribute, "HTML #concept-media-load-algorithm (resource selection)"),
    attr(Html, &["video"], "poster", Value::Url, C::Media, Attribute, "HTML #attr-video-poster: the poster frame"),
    attr(Html, &["track"], "src", Value::Url, C::Track, Element, "HTML #start-the-track-processing-model"),
    attr(Html, &["input"], "src", Value::Url, C::InputImage, Attribute, "HTML #image-button-state-(type=image) (checked for every type)"),
    attr(Html, &["input", "button"], "formaction", Value::Url, C::FormAction, Attribute, "HTML #form-submission-algorithm: sends what the visitor typed"),
    attr(Html, &["form"], "action", Value::Url, C::FormAction, Attribute, "HTML #form-submission-algorithm: sends what the visitor typed"),
    attr(Html, &["a", "area"], "ping", Value::UrlList, C::Ping, Attribute, "HTML #hyperlink-auditing"),
    attr(Html, &["a", "area"], "attributionsrc", Value::AttributionSrc { own: &["href"], own_recorded: true }, C::AttributionSrc, Attribute, "Attribution Reporting (WICG): background requests when followed; Chromium 117+"),
    attr(Html, &["script"], "attributionsrc", Value::AttributionSrc { own: &["src"], own_recorded: false }, C::AttributionSrc, Attribute, "Attribution Reporting (WICG) HTMLAttributionSrcElementUtils; Chromium 117+"),
    attr(Html, &["script"], "src", Value::Url, C::Script, Element, "HTML #prepare-the-script-element"),
    gated(Gate::HttpEquivRefresh, attr(Html, &["meta"], "content", Value::RefreshContent, C::MetaRefresh, Attribute, "HTML #attr-meta-http-equiv-refresh: navigates without a click")),
    attr(Html, &["base"], "href", Value::BaseHref, C::Base, Element, "HTML #document-base-url: moves every relative URL"),
    attr(Html, &["html"], "manifest", Value::Url, C::Link, Attribute, "HTML obsolete #attr-html-manifest: application cache manifest"),
    attr(Html, &["image", "use", "feimage"], "href", Value::Url, C::SvgHref, Attribute, "SVG element names in the HTML namespace: a browser may read them as SVG (breakouts)"),
    attr(Html, &["image", "use", "feimage"], "xlink:href", Value::Url, C::SvgHref, Attribute, "SVG element names in the HTML namespace: a browser may read them as SVG (breakouts)"),
    // === SVG and other foreign content ===
    attr(Svg, &["*"], "*", Value::Css, C::SvgHref, Attribute, "SVG 2 presentation attributes are CSS: url() in fill, stroke, filter, mask, clip-path, marker-*, cursor"),
    attr(Svg, &["script"], "href", Value::Url, C::Script, Element, "SVG 2 script element href"),
    attr(Svg, &["script"], "xlink:href", Value::Url, C::Script, Element, "SVG 2 script element xlink:href (the SVG 1.1 spelling)"),
    gated(Gate::AnimatesHref, attr(Svg, ANIMATIONS, "to", Value::Url, C::SvgHref, Element, "SVG Animations: animating href makes the value an href")),
    gated(Gate::AnimatesHref, attr(Svg, ANIMATIONS, "from", Value::Url, C::SvgHref, Element, "SVG Animations: animating href makes the value an href")),
    gated(Gate::AnimatesHref, attr(Svg, ANIMATIONS, "by", Value::Url, C::SvgHref, Element, "SVG Animations: animating href makes the value an href")),
    gated(Gate::AnimatesHref, attr(Svg, ANIMATIONS, "values", Value::AnimationValues, C::SvgHref, Element, "SVG Animations: animating href makes each value an href")),
    attr(Svg, &["*"], "href", Value::Url, C::SvgHref, Attribute, "SVG 2 URL references: image, use, feImage, pattern, gradients, filter, textPath, … may fetch another document"),
    attr(Svg, &["*"], "xlink:href", Value::Url, C::SvgHref, Attribute, "SVG 2 xlink:href, the SVG 1.1 spelling of href"),
];

/// URL-valued attributes that make no request while the page loads.
pub static NOT_FETCHED: &[NotFetched] = &[
    NotFetched {
        namespace: Html,
        elements: &["a", "area"],
        attribute: "href",
        reason: "a navigation the visitor chooses (HTML #following-hyperlinks-2); its ping and attributionsrc are decided",
    },
    NotFetched {
        namespace: Html,
        elements: &["blockquote", "del", "ins", "q"],
        attribute: "cite",
        reason: "a citation a user agent may offer to open (HTML #attr-blockquote-cite, #attr-q-cite, #attr-mod-cite)",
    },
    NotFetched {
        namespace: Html,
        elements: &["*"],
        attribute: "itemid",
        reason: "a microdata item's global identifier (HTML #attr-itemid); never dereferenced",
    },
    NotFetched {
        namespace: Html,
        elements: &["*"],
        attribute: "itemprop",
        reason: "microdata property names, URLs among them (HTML #names:-the-itemprop-attribute); never dereferenced",
    },
    NotFetched {
        namespace: Html,
        elements: &["*"],
        attribute: "itemtype",
        reason: "a microdata vocabulary URL (HTML #attr-itemtype); never dereferenced",
    },
    NotFetched {
        namespace: Svg,
        elements: &["a"],
        attribute: "href",
        reason: "an SVG 2 hyperlink (the a element): a navigation the visitor chooses",
    },
    NotFetched {
        namespace: Svg,
        elements: &["a"],
        attribute: "xlink:href",
        reason: "an SVG 2 hyperlink (the a element): a navigation the visitor chooses",
    },
];

const fn rel(keyword: &'static str, loads: bool, source: &'static str) -> LinkRel {
    LinkRel { keyword, loads, source }
}

const HTML_HYPERLINK: &str = "HTML #linkTypes: a hyperlink, followed only by navigation";
const HTML_NOT_ON_LINK: &str = "HTML #linkTypes: not allowed on link, no effect there";
const HTML_EXTERNAL: &str = "HTML #linkTypes: external resource link, fetched";
const MICROFORMATS: &str = "microformats.org existing rel values: for crawlers and tools, browsers never fetch it";
const APPLE_ICONS: &str = "WebKit: home-screen / pinned-tab icons, fetched";

/// Every `rel` keyword decided. Keywords not listed load.
#[rustfmt::skip] // a table: one entry per line
pub static LINK_RELS: &[LinkRel] = &[
    // The HTML Standard's link types (§4.6.7), in its table's order.
    rel("alternate", false, "HTML #rel-alternate: a hyperlink (alternate stylesheet loads through stylesheet)"),
    rel("canonical", false, HTML_HYPERLINK),
    rel("author", false, HTML_HYPERLINK),
    rel("bookmark", false, HTML_NOT_ON_LINK),
    rel("dns-prefetch", true, "HTML #link-type-dns-prefetch: resolves the host, a DNS query names it"),
    rel("expect", false, "HTML #link-type-expect: internal resource link to an element of this document; never fetched"),
    rel("external", false, HTML_NOT_ON_LINK),
    rel("help", false, HTML_HYPERLINK),
    rel("icon", true, HTML_EXTERNAL),
    rel("manifest", true, HTML_EXTERNAL),
    rel("modulepreload", true, HTML_EXTERNAL),
    rel("license", false, HTML_HYPERLINK),
    rel("next", false, HTML_HYPERLINK),
    rel("nofollow", false, HTML_NOT_ON_LINK),
    rel("noopener", false, HTML_NOT_ON_LINK),
    rel("noreferrer", false, HTML_NOT_ON_LINK),
    rel("opener", false, HTML_NOT_ON_LINK),
    rel("pingback", true, "HTML #link-type-pingback: an external resource link; browsers do not fetch it, removed off-site anyway"),
    rel("preconnect", true, "HTML #link-type-preconnect: connects to the host (DNS, TCP, TLS SNI)"),
    rel("prefetch", true, HTML_EXTERNAL),
    rel("preload", true, HTML_EXTERNAL),
    rel("prev", false, HTML_HYPERLINK),
    rel("privacy-policy", false, HTML_HYPERLINK),
    rel("search", false, HTML_HYPERLINK),
    rel("stylesheet", true, HTML_EXTERNAL),
    rel("tag", false, HTML_NOT_ON_LINK),
    rel("terms-of-service", false, HTML_HYPERLINK),
    // Synonyms the standard gives.
    rel("copyright", false, "HTML #link-type-license: user agents treat copyright as license"),
    // Engine features outside the standard's table.
    rel("compression-dictionary", true, "IETF Compression Dictionary Transport, Chromium 130+: fetches the dictionary"),
    rel("prerender", true, "Chromium NoState Prefetch: fetches the page"),
    rel("import", true, "HTML Imports, removed from Chromium 73: fetched where still supported"),
    rel("apple-touch-icon", true, APPLE_ICONS),
    rel("apple-touch-icon-precomposed", true, APPLE_ICONS),
    rel("apple-touch-startup-image", true, APPLE_ICONS),
    rel("mask-icon", true, APPLE_ICONS),
    // Registered extensions that browsers never fetch.
    rel("amphtml", false, MICROFORMATS),
    rel("me", false, MICROFORMATS),
    rel("shortlink", false, MICROFORMATS),
    rel("edituri", false, MICROFORMATS),
    rel("wlwmanifest", false, MICROFORMATS),
    rel("home", false, MICROFORMATS),
    rel("index", false, MICROFORMATS),
    rel("profile", false, MICROFORMATS),
    rel("hub", false, MICROFORMATS),
    rel("self", false, MICROFORMATS),
    rel("related", false, MICROFORMATS),
    rel("payment", false, MICROFORMATS),
    rel("webmention", false, MICROFORMATS),
    rel("openid.server", false, MICROFORMATS),
    rel("openid.delegate", false, MICROFORMATS),
    rel("openid2.provider", false, MICROFORMATS),
    rel("openid2.local_id", false, MICROFORMATS),
    rel("up", false, MICROFORMATS),
    rel("first", false, MICROFORMATS),
    rel("last", false, MICROFORMATS),
    rel("contents", false, MICROFORMATS),
    rel("chapter", false, MICROFORMATS),
    rel("section", false, MICROFORMATS),
    rel("subsection", false, MICROFORMATS),
    rel("appendix", false, MICROFORMATS),
    rel("glossary", false, MICROFORMATS),
    rel("start", false, MICROFORMATS),
    rel("top", false, MICROFORMATS),
    rel("archives", false, MICROFORMATS),
];

fn applies(elements: &[&str], element: &str) -> bool {
    elements.iter().any(|e| *e == element || *e == "*")
}

/// The entry deciding `attribute` on `element` (`"*"`: an attribute of every
/// element), if any. For checks against the standard (the rewriter dispatches per tag).
pub fn fetch_attr(namespace: Namespace, element: &str, attribute: &str) -> Option<&'static FetchAttr> {
    FETCH_ATTRS.iter().find(|e| e.namespace == namespace && e.attribute == attribute && names(e.elements, element))
}

/// `element` is one of `elements`; `"*"` asks for the entries of every element.
fn names(elements: &[&str], element: &str) -> bool {
    if element == "*" { elements == ["*"] } else { applies(elements, element) }
}

/// The reason `attribute` on `element` fetches nothing, if it is listed so.
pub fn not_fetched(namespace: Namespace, element: &str, attribute: &str) -> Option<&'static NotFetched> {
    NOT_FETCHED.iter().find(|e| e.namespace == namespace && e.attribute == attribute && names(e.elements, element))
}

/// Whether a `rel` value (character references already decoded) makes a `<link>`
/// fetch or connect: any keyword that loads, or that is not in [`LINK_RELS`], does.
pub fn link_rel_loads(rel: &str) -> bool {
    rel.split_ascii_whitespace().any(|token| {
        let token = token.to_ascii_lowercase();
        LINK_RELS.iter().find(|r| r.keyword == token).is_none_or(|r| r.loads)
    })
}

/// Per tag name: the entries to apply, in order. Elements not in the map get `*` entries.
struct Dispatch {
    by_tag: HashMap<&'static str, Vec<&'static FetchAttr>>,
    any: Vec<&'static FetchAttr>,
}

/// Entries for one namespace's element: the specific ones in table order, then the
/// `*` ones whose attribute this element does not name (specifically, or as not fetched).
fn entries_of(namespace: Namespace, tag: &str) -> Vec<&'static FetchAttr> {
    let specific = |elements: &[&str]| elements != ["*"] && elements.contains(&tag);
    let named = |a: &str| {
        FETCH_ATTRS.iter().any(|e| e.namespace == namespace && e.attribute == a && specific(e.elements))
            || NOT_FETCHED.iter().any(|e| e.namespace == namespace && e.attribute == a && specific(e.elements))
    };
    FETCH_ATTRS
        .iter()
        .filter(|e| e.namespace == namespace)
        .filter(|e| specific(e.elements) || (e.elements == ["*"] && (e.attribute == "*" || !named(e.attribute))))
        .collect()
}

impl Dispatch {
    /// `foreign`: entries for an element lol_html places outside the HTML namespace
    /// (SVG's, then HTML's for the same name); otherwise HTML's. HTML `*` entries
    /// are applied by the caller to every element, once.
    fn build(foreign: bool) -> Dispatch {
        let mut tags: Vec<&'static str> =
            FETCH_ATTRS.iter().flat_map(|e| e.elements.iter().copied()).filter(|t| *t != "*").collect();
        tags.extend(NOT_FETCHED.iter().flat_map(|e| e.elements.iter().copied()).filter(|t| *t != "*"));
        tags.sort_unstable();
        tags.dedup();
        let list = |tag: &'static str| -> Vec<&'static FetchAttr> {
            let html = entries_of(Html, tag).into_iter().filter(|e| e.elements != ["*"]);
            if foreign { entries_of(Svg, tag).into_iter().chain(html).collect() } else { html.collect() }
        };
        let any = if foreign { entries_of(Svg, "*") } else { Vec::new() };
        let by_tag = tags.into_iter().map(|t| (t, list(t))).filter(|(_, l)| !l.is_empty()).collect();
        Dispatch { by_tag, any }
    }
}

static HTML_DISPATCH: LazyLock<Dispatch> = LazyLock::new(|| Dispatch::build(false));
static FOREIGN_DISPATCH: LazyLock<Dispatch> = LazyLock::new(|| Dispatch::build(true));
static EVERY_ELEMENT: LazyLock<Vec<&'static FetchAttr>> =
    LazyLock::new(|| FETCH_ATTRS.iter().filter(|e| e.namespace == Html && e.elements == ["*"]).collect());

/// The HTML `*` entries (`style`, `background`): applied to every element, in any namespace.
pub(crate) fn every_element() -> &'static [&'static FetchAttr] {
    &EVERY_ELEMENT
}

/// The entries the rewriter applies to a start tag (beyond [`every_element`]), in order.
pub(crate) fn for_element(tag: &str, html: bool) -> &'static [&'static FetchAttr] {
    let d: &'static Dispatch = if html { &HTML_DISPATCH } else { &FOREIGN_DISPATCH };
    d.by_tag.get(tag).map_or(&d.any, Vec::as_slice)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(list: &[&FetchAttr]) -> Vec<String> {
        list.iter().map(|e| format!("{:?} {}", e.namespace, e.attribute)).collect()
    }

    #[test]
    fn img_checks_attributionsrc_before_the_urls_it_reuses() {
        assert_eq!(labels(for_element("img", true)), ["Html attributionsrc", "Html src", "Html srcset"]);
    }

    #[test]
    fn svg_a_fetches_nothing_but_css_and_other_svg_elements_fetch_their_href() {
        assert_eq!(labels(for_element("a", false)), ["Svg *", "Html ping", "Html attributionsrc"]);
        assert_eq!(labels(for_element("pattern", false)), ["Svg *", "Svg href", "Svg xlink:href"]);
        assert_eq!(
            labels(for_element("script", false)),
            ["Svg *", "Svg href", "Svg xlink:href", "Html attributionsrc", "Html src"]
        );
    }

    #[test]
    fn elements_without_entries_get_none_in_html_and_the_svg_defaults_in_foreign_content() {
        assert!(for_element("div", true).is_empty());
        assert_eq!(labels(for_element("g", false)), ["Svg *", "Svg href", "Svg xlink:href"]);
    }

    #[test]
    fn rel_keywords_load_unless_every_one_is_known_not_to() {
        assert!(link_rel_loads("stylesheet"));
        assert!(link_rel_loads("canonical STYLESHEET"));
        assert!(link_rel_loads("compression-dictionary"));
        assert!(link_rel_loads("pingback"));
        assert!(link_rel_loads("something-new"));
        assert!(!link_rel_loads("canonical"));
        assert!(!link_rel_loads(" expect\tprivacy-policy terms-of-service "));
        assert!(!link_rel_loads(""));
    }

    #[test]
    fn every_rel_keyword_is_lower_case_and_listed_once() {
        for (i, r) in LINK_RELS.iter().enumerate() {
            assert_eq!(r.keyword, r.keyword.to_ascii_lowercase());
            assert!(LINK_RELS[i + 1..].iter().all(|o| o.keyword != r.keyword), "{} listed twice", r.keyword);
        }
    }

    #[test]
    fn lookups_answer_for_global_attributes_only_from_star_entries() {
        assert_eq!(fetch_attr(Html, "*", "style").map(|e| e.construct), Some(Construct::StyleAttr));
        assert!(fetch_attr(Html, "*", "src").is_none());
        assert!(fetch_attr(Html, "iframe", "srcdoc").is_some());
        assert!(not_fetched(Html, "q", "cite").is_some());
        assert!(not_fetched(Html, "*", "itemid").is_some());
        assert!(not_fetched(Html, "img", "src").is_none());
    }
}
