//! Independent "what would a browser load" extractor (test oracle).
//!
//! Given an HTML document, the URL it is served at and whether scripting is
//! enabled, this module returns every URL a browser would fetch (or send
//! data to) because of the *markup* alone. It deliberately uses a different
//! parser from the production rewriter: html5ever (through `scraper`) for the
//! HTML tree — the spec-compliant tree builder behind Servo, including
//! foster parenting, foreign content (SVG/MathML) breakouts, `<noscript>`
//! handling, duplicate-attribute dropping and character references — and
//! `cssparser` for CSS. URLs are resolved with `url::Url::join` (WHATWG URL
//! parsing: backslashes, tab/newline stripping, IDN, IPv4 forms, ...).
//!
//! Policy decisions (the oracle errs on the side of reporting too much):
//! * Only network URLs are returned: schemes `http`, `https`, `ws`, `wss`,
//!   `ftp`. `data:`, `blob:`, `about:`, `javascript:`, `mailto:` and any
//!   other scheme are skipped. Exception: a `data:` URL used as a *document*
//!   (`iframe`/`frame src`, `object data`, `embed src`) with an HTML/SVG/XML
//!   media type is decoded and parsed recursively; what it loads is
//!   reported with `nested_in = Some("data: document")`.
//! * `javascript:` URLs and inline `<script>` text are not evaluated (an
//!   inline-script signature check covers those), except
//!   `<script type=speculationrules>` JSON, which is data that makes the
//!   browser prefetch/prerender: its `urls` are reported, and if it contains
//!   document rules every `<a href>`/`<area href>` is reported too.
//! * The first `<base href>` (tree order, HTML namespace, outside inert
//!   `<template>` contents) sets the base URL for everything in the document,
//!   regardless of where it appears. It is itself reported as construct
//!   `"base href"` although it fetches nothing: an off-site base silently
//!   moves every relative URL — including those created later by scripts —
//!   off-site.
//! * Every candidate of a `srcset`/`imagesrcset` is reported (the browser picks
//!   one; which one depends on the device).
//! * `<link>` counts for any `rel` with a keyword that loads. Which keywords
//!   load is read from the HTML Standard's link-type index, kept as a data
//!   extract in `tests/spec/html-link-types.tsv`: "External Resource" types
//!   load (`pingback` included, `preconnect`/`dns-prefetch` leak the host);
//!   hyperlinks, annotations and internal resources (`expect`) do not. A
//!   keyword the index does not list loads (`compression-dictionary`,
//!   `prerender`, `apple-touch-icon`, ...) unless it is a known extension that
//!   is never fetched (`shortlink`, `me`, ...). `alternate stylesheet` counts.
//! * `attributionsrc` (Attribution Reporting) on `img`, `script`, `a`, `area`:
//!   every URL it lists counts; on `a`/`area` its presence, even empty, makes
//!   the followed link's navigation a registration, so the `href` counts too
//!   (as `ping` counts though it also waits for a click).
//! * Any attribute that the HTML Standard's attribute index
//!   (`tests/spec/html-attribute-index.tsv`) gives a URL value and that no rule
//!   here covers counts as a load, except hyperlinks (`a`/`area href`),
//!   citations (`cite`) and microdata identifiers, which are never fetched.
//! * `<script src>` counts whatever its `type`; `<input src>` only for
//!   `type=image`; `formaction` on any `<input>`/`<button>`; `form action`
//!   only when non-empty.
//! * `<template>` contents are inert and skipped, unless the template is a
//!   declarative shadow root (`shadowrootmode=open|closed`, ASCII
//!   case-insensitive), whose contents are live in browsers.
//! * `iframe srcdoc` is parsed recursively as its own document; its fallback
//!   base URL is the parent document's base URL (as in the HTML spec).
//! * SVG: `script`, `image`, `use`, `feImage` `href`/`xlink:href` (both, even
//!   when both are present), `<set>`/`<animate>` that animate `href` (their
//!   `to`/`from`/`values`), `url()` in presentation attributes (fill, stroke,
//!   filter, mask, clip-path, marker*, cursor) and SVG `<style>`.
//! * CSS (`<style>` text in HTML/SVG namespace and every `style` attribute):
//!   every `url()` token, `url("…")`/`src("…")` functions, `@import "…"`,
//!   strings in `image-set()`/`-webkit-image-set()`. `@namespace url(...)` is
//!   not a load and is skipped. `BadUrl` tokens (which browsers drop) are
//!   skipped. Text inside `<style>` is CSS only (no character references);
//!   `style` attribute values are entity-decoded by the HTML parser first.
//!
//! Known blind spots (the oracle does NOT see these):
//! * Anything created by script: inline `<script>` bodies, `javascript:`
//!   URLs, event-handler attributes (`onerror=...`).
//! * html5ever 0.35 still applies the legacy "in select" insertion mode:
//!   `<select><img src=...>` drops the `<img>` (and `<div>`, `<svg>`, ...).
//!   Browsers implementing customizable `<select>` (Chromium 135+) keep it
//!   and load it. A token-level rewriter sees the tag anyway.
//! * Resources referenced from fetched subresources (an external
//!   stylesheet's `@import`, a frame's own document) and HTTP headers
//!   (`Link:`, `Refresh:`) — only the HTML text given is analysed.

use std::fmt;

use cssparser::{ParseError, Parser, ParserInput, Token};
use html5ever::driver::{self, ParseOpts};
use html5ever::tendril::TendrilSink;
use html5ever::tree_builder::TreeBuilderOpts;
use scraper::node::Element;
use scraper::{Html, HtmlTreeSink};
use url::Url;

#[path = "loads_spec.rs"]
mod spec;

use spec::{rel_loads, spec_index_loads};

const NS_HTML: &str = "http://www.w3.org/1999/xhtml";
const NS_SVG: &str = "http://www.w3.org/2000/svg";
const NS_XLINK: &str = "http://www.w3.org/1999/xlink";

/// Maximum nesting of srcdoc / data: documents that is followed.
const MAX_DEPTH: usize = 8;

/// One URL the browser would fetch or send data to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Load {
    /// What caused the load, e.g. `"img src"`, `"link[rel=preconnect] href"`,
    /// `"style attribute url()"`, `"meta refresh"`.
    pub construct: &'static str,
    /// Absolute, resolved URL (always http/https/ws/wss/ftp).
    pub url: Url,
    /// `None` for the top-level document; `Some("iframe srcdoc")` or
    /// `Some("data: document")` for loads made by a nested document
    /// (outermost nesting kind).
    pub nested_in: Option<&'static str>,
}

impl fmt::Display for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.nested_in {
            Some(n) => write!(f, "[{n}] {}: {}", self.construct, self.url),
            None => write!(f, "{}: {}", self.construct, self.url),
        }
    }
}

/// Every network URL the browser would load for `html` served at `page`.
pub fn loads(html: &str, page: &Url, scripting: bool) -> Vec<Load> {
    let mut out = Vec::new();
    extract_document(html, page, scripting, 0, None, &mut out);
    out
}

/// The loads whose host is not accepted by `allowed_host`. Hosts are given
/// as `Url::host_str` returns them (lowercase, punycode, IPv6 in brackets,
/// trailing dot preserved).
pub fn offsite_loads(html: &str, page: &Url, scripting: bool, allowed_host: impl Fn(&str) -> bool) -> Vec<Load> {
    loads(html, page, scripting).into_iter().filter(|l| !l.url.host_str().is_some_and(&allowed_host)).collect()
}

/// Union of `loads` with scripting enabled and disabled (duplicates removed).
pub fn loads_any_scripting(html: &str, page: &Url) -> Vec<Load> {
    let mut all = loads(html, page, true);
    for l in loads(html, page, false) {
        if !all.contains(&l) {
            all.push(l);
        }
    }
    all
}

/// Off-site loads with scripting enabled or disabled (union, deduplicated).
pub fn offsite_loads_any_scripting(html: &str, page: &Url, allowed_host: impl Fn(&str) -> bool) -> Vec<Load> {
    loads_any_scripting(html, page).into_iter().filter(|l| !l.url.host_str().is_some_and(&allowed_host)).collect()
}

/// Parse `html` with html5ever. `scripting` decides how `<noscript>` parses.
pub fn parse_html(html: &str, scripting: bool) -> Html {
    let opts = ParseOpts {
        tree_builder: TreeBuilderOpts { scripting_enabled: scripting, ..Default::default() },
        ..Default::default()
    };
    driver::parse_document(HtmlTreeSink::new(Html::new_document()), opts).one(html)
}

fn is_network(u: &Url) -> bool {
    matches!(u.scheme(), "http" | "https" | "ws" | "wss" | "ftp")
}

/// An element of the parsed tree plus what we need from its children.
struct Live<'a> {
    el: &'a Element,
    /// Concatenated child text (for `<style>` and speculation rules).
    text: String,
}

fn attr<'a>(el: &'a Element, name: &str) -> Option<&'a str> {
    el.attrs.iter().find(|(q, _)| q.ns.is_empty() && &*q.local == name).map(|(_, v)| &**v)
}

fn xlink_href(el: &Element) -> Option<&str> {
    el.attrs.iter().find(|(q, _)| &*q.ns == NS_XLINK && &*q.local == "href").map(|(_, v)| &**v)
}

fn ns(el: &Element) -> &str {
    &el.name.ns
}

fn local(el: &Element) -> &str {
    &el.name.local
}

fn is_dsd_template(el: &Element) -> bool {
    ns(el) == NS_HTML
        && local(el) == "template"
        && attr(el, "shadowrootmode")
            .is_some_and(|m| m.eq_ignore_ascii_case("open") || m.eq_ignore_ascii_case("closed"))
}

fn extract_document(
    html: &str,
    fallback_base: &Url,
    scripting: bool,
    depth: usize,
    nested_in: Option<&'static str>,
    out: &mut Vec<Load>,
) {
    if depth > MAX_DEPTH {
        return;
    }
    let doc = parse_html(html, scripting);

    // Template contents live under a Fragment child of the <template>
    // element in scraper's tree. Those fragments are inert unless the
    // template is a declarative shadow root.
    let inert: Vec<_> = doc
        .tree
        .nodes()
        .filter(|n| {
            n.value().is_fragment()
                && n.parent().and_then(|p| p.value().as_element().map(|e| !is_dsd_template(e))).unwrap_or(false)
        })
        .map(|n| n.id())
        .collect();

    let mut live: Vec<Live<'_>> = Vec::new();
    for node in doc.tree.root().descendants() {
        let Some(el) = node.value().as_element() else {
            continue;
        };
        if node.ancestors().any(|a| inert.contains(&a.id())) {
            continue;
        }
        let text: String = node.children().filter_map(|c| c.value().as_text().map(|t| t.to_string())).collect();
        live.push(Live { el, text });
    }

    // Base URL: first <base href> in tree order.
    let mut base = fallback_base.clone();
    if let Some(b) = live.iter().find(|l| ns(l.el) == NS_HTML && local(l.el) == "base" && attr(l.el, "href").is_some())
    {
        let href = attr(b.el, "href").unwrap_or_default();
        if let Ok(u) = fallback_base.join(href)
            && u.scheme() != "data"
            && u.scheme() != "javascript"
        {
            base = u.clone();
            if is_network(&u) {
                out.push(Load { construct: "base href", url: u, nested_in });
            }
        }
    }

    let mut cx = Cx { base: &base, scripting, depth, nested_in, out };
    let links: Vec<&str> = live
        .iter()
        .filter(|l| ns(l.el) == NS_HTML && matches!(local(l.el), "a" | "area"))
        .filter_map(|l| attr(l.el, "href"))
        .collect();
    for l in &live {
        element_loads(&mut cx, l, &links);
    }
}

struct Cx<'a> {
    base: &'a Url,
    scripting: bool,
    depth: usize,
    nested_in: Option<&'static str>,
    out: &'a mut Vec<Load>,
}

impl Cx<'_> {
    fn resolve(&self, raw: &str) -> Option<Url> {
        if raw.trim_matches(|c: char| c.is_ascii_whitespace()).is_empty() {
            return None;
        }
        self.base.join(raw).ok()
    }

    fn push(&mut self, construct: &'static str, raw: &str) {
        if let Some(u) = self.resolve(raw)
            && is_network(&u)
        {
            self.out.push(Load { construct, url: u, nested_in: self.nested_in });
        }
    }

    fn push_attr(&mut self, el: &Element, name: &str, construct: &'static str) {
        if let Some(v) = attr(el, name) {
            self.push(construct, v);
        }
    }

    fn push_srcset(&mut self, el: &Element, name: &str, construct: &'static str) {
        if let Some(v) = attr(el, name) {
            for u in parse_srcset(v) {
                self.push(construct, u);
            }
        }
    }

    fn push_css(&mut self, css: &str, is_attr: bool) {
        for (kind, raw) in css_urls(css) {
            let construct = match (is_attr, kind) {
                (true, CssKind::Url) => "style attribute url()",
                (true, CssKind::Import) => "style attribute @import",
                (true, CssKind::ImageSet) => "style attribute image-set()",
                (false, CssKind::Url) => "style url()",
                (false, CssKind::Import) => "style @import",
                (false, CssKind::ImageSet) => "style image-set()",
            };
            self.push(construct, &raw);
        }
    }

    /// A URL that is loaded as a document (frame, object, embed): follow
    /// `data:` documents.
    fn push_document(&mut self, el: &Element, name: &str, construct: &'static str) {
        let Some(raw) = attr(el, name) else { return };
        self.push(construct, raw);
        let Some(u) = self.resolve(raw) else { return };
        if u.scheme() != "data" {
            return;
        }
        if let Some((mime, body)) = decode_data_url(&u) {
            let doc_like = mime.contains("html") || mime.contains("svg") || mime.contains("xml");
            if doc_like {
                let text = String::from_utf8_lossy(&body).into_owned();
                extract_document(
                    &text,
                    &u,
                    self.scripting,
                    self.depth + 1,
                    Some(self.nested_in.unwrap_or("data: document")),
                    self.out,
                );
            }
        }
    }
}

fn rel_tokens(el: &Element) -> Vec<String> {
    attr(el, "rel").unwrap_or_default().split_ascii_whitespace().map(|t| t.to_ascii_lowercase()).collect()
}

fn link_construct(rels: &[String]) -> Option<&'static str> {
    if !rels.iter().any(|r| rel_loads(r)) {
        return None;
    }
    let has = |r: &str| rels.iter().any(|t| t == r);
    Some(if has("stylesheet") {
        "link[rel=stylesheet] href"
    } else if has("preload") {
        "link[rel=preload] href"
    } else if has("modulepreload") {
        "link[rel=modulepreload] href"
    } else if has("prefetch") {
        "link[rel=prefetch] href"
    } else if has("preconnect") {
        "link[rel=preconnect] href"
    } else if has("dns-prefetch") {
        "link[rel=dns-prefetch] href"
    } else if has("icon") || has("apple-touch-icon") || has("apple-touch-icon-precomposed") || has("mask-icon") {
        "link[rel=icon] href"
    } else if has("manifest") {
        "link[rel=manifest] href"
    } else if has("prerender") {
        "link[rel=prerender] href"
    } else if has("import") {
        "link[rel=import] href"
    } else if has("compression-dictionary") {
        "link[rel=compression-dictionary] href"
    } else if has("pingback") {
        "link[rel=pingback] href"
    } else {
        "link[rel=other] href"
    })
}

fn element_loads(cx: &mut Cx<'_>, l: &Live<'_>, links: &[&str]) {
    let el = l.el;
    // style attribute, any namespace
    if let Some(style) = attr(el, "style") {
        cx.push_css(style, true);
    }
    match ns(el) {
        NS_HTML => html_element_loads(cx, l, links),
        NS_SVG => svg_element_loads(cx, l),
        _ => {}
    }
}

fn html_element_loads(cx: &mut Cx<'_>, l: &Live<'_>, links: &[&str]) {
    let el = l.el;
    let name = local(el);
    match name {
        "script" => {
            cx.push_attr(el, "src", "script src");
            let ty = attr(el, "type").unwrap_or_default().trim();
            if ty.eq_ignore_ascii_case("speculationrules") {
                speculation_rules(cx, &l.text, links);
            }
        }
        "img" => {
            cx.push_attr(el, "src", "img src");
            cx.push_srcset(el, "srcset", "img srcset");
        }
        "source" => {
            cx.push_attr(el, "src", "source src");
            cx.push_srcset(el, "srcset", "source srcset");
        }
        "link" => {
            if let Some(c) = link_construct(&rel_tokens(el)) {
                cx.push_attr(el, "href", c);
                cx.push_srcset(el, "imagesrcset", "link imagesrcset");
            }
        }
        "iframe" => {
            cx.push_document(el, "src", "iframe src");
            if let Some(srcdoc) = attr(el, "srcdoc") {
                let base = cx.base.clone();
                extract_document(
                    srcdoc,
                    &base,
                    cx.scripting,
                    cx.depth + 1,
                    Some(cx.nested_in.unwrap_or("iframe srcdoc")),
                    cx.out,
                );
            }
        }
        "frame" => cx.push_document(el, "src", "frame src"),
        "object" => {
            cx.push_document(el, "data", "object data");
            cx.push_attr(el, "codebase", "object codebase");
        }
        "embed" => cx.push_document(el, "src", "embed src"),
        "video" => {
            cx.push_attr(el, "src", "video src");
            cx.push_attr(el, "poster", "video poster");
        }
        "audio" => cx.push_attr(el, "src", "audio src"),
        "track" => cx.push_attr(el, "src", "track src"),
        "input" => {
            let ty = attr(el, "type").unwrap_or_default().trim();
            if ty.eq_ignore_ascii_case("image") {
                cx.push_attr(el, "src", "input[type=image] src");
            }
            cx.push_attr(el, "formaction", "input formaction");
        }
        "button" => cx.push_attr(el, "formaction", "button formaction"),
        "form" => cx.push_attr(el, "action", "form action"),
        "a" | "area" => {
            if let Some(ping) = attr(el, "ping") {
                let c = if name == "a" { "a ping" } else { "area ping" };
                for p in ping.split_ascii_whitespace() {
                    cx.push(c, p);
                }
            }
        }
        "meta" => {
            let equiv = attr(el, "http-equiv").unwrap_or_default().trim();
            if equiv.eq_ignore_ascii_case("refresh")
                && let Some(u) = attr(el, "content").and_then(meta_refresh_url)
            {
                // Resolved against the document base URL; a refresh to
                // the document itself is not reported.
                cx.push("meta refresh", &u);
            }
        }
        "body" => cx.push_attr(el, "background", "body background"),
        "table" => cx.push_attr(el, "background", "table background"),
        "thead" | "tbody" | "tfoot" => cx.push_attr(el, "background", "tbody background"),
        "tr" => cx.push_attr(el, "background", "tr background"),
        "td" => cx.push_attr(el, "background", "td background"),
        "th" => cx.push_attr(el, "background", "th background"),
        "html" => cx.push_attr(el, "manifest", "html manifest"),
        "style" => cx.push_css(&l.text, false),
        _ => {}
    }
    if matches!(name, "img" | "script" | "a" | "area")
        && let Some(list) = attr(el, "attributionsrc")
    {
        let (c, own) = match name {
            "img" => ("img attributionsrc", None),
            "script" => ("script attributionsrc", None),
            "a" => ("a attributionsrc", Some("a attributionsrc navigation")),
            _ => ("area attributionsrc", Some("area attributionsrc navigation")),
        };
        for u in list.split_ascii_whitespace() {
            cx.push(c, u);
        }
        // Present, even empty, the attribute makes the element's own request a
        // registration: img/script src are reported already; a followed link's
        // navigation request becomes one, so its href counts as a load (as ping does).
        if let Some(own) = own {
            cx.push_attr(el, "href", own);
        }
    }
    spec_index_loads(cx, el);
}

fn svg_element_loads(cx: &mut Cx<'_>, l: &Live<'_>) {
    let el = l.el;
    let construct = match local(el) {
        "script" => Some("svg script href"),
        "image" => Some("svg image href"),
        "use" => Some("svg use href"),
        "feImage" => Some("svg feImage href"),
        _ => None,
    };
    if let Some(c) = construct {
        cx.push_attr(el, "href", c);
        if let Some(x) = xlink_href(el) {
            cx.push(c, x);
        }
    }
    match local(el) {
        "style" => cx.push_css(&l.text, false),
        "set" | "animate" => {
            let target = attr(el, "attributeName").unwrap_or_default().trim();
            if target == "href" || target == "xlink:href" {
                cx.push_attr(el, "to", "svg animate href");
                cx.push_attr(el, "from", "svg animate href");
                if let Some(values) = attr(el, "values") {
                    for v in values.split(';') {
                        cx.push("svg animate href", v);
                    }
                }
            }
        }
        _ => {}
    }
    for pres in [
        "fill",
        "stroke",
        "filter",
        "mask",
        "clip-path",
        "marker-start",
        "marker-mid",
        "marker-end",
        "marker",
        "cursor",
    ] {
        if let Some(v) = attr(el, pres) {
            for (_, raw) in css_urls(v) {
                cx.push("svg presentation url()", &raw);
            }
        }
    }
}

fn speculation_rules(cx: &mut Cx<'_>, json: &str, links: &[&str]) {
    let Ok(v) = serde_json::from_str::<serde_json::Value>(json) else {
        return;
    };
    let mut document_rules = false;
    for key in ["prefetch", "prerender", "prefetch_with_subresources"] {
        let Some(rules) = v.get(key).and_then(|r| r.as_array()) else {
            continue;
        };
        for rule in rules {
            if let Some(urls) = rule.get("urls").and_then(|u| u.as_array()) {
                for u in urls.iter().filter_map(|u| u.as_str()) {
                    cx.push("speculationrules url", u);
                }
            }
            if rule.get("where").is_some() || rule.get("source").and_then(|s| s.as_str()) == Some("document") {
                document_rules = true;
            }
        }
    }
    if document_rules {
        for href in links {
            cx.push("speculationrules document link", href);
        }
    }
}

/// The URL of a `<meta http-equiv=refresh content=...>`, per the HTML
/// spec's "shared declarative refresh steps". `None` when the content is
/// invalid or refreshes the document itself.
pub fn meta_refresh_url(content: &str) -> Option<String> {
    let ws = |c: char| matches!(c, '\t' | '\n' | '\x0C' | '\r' | ' ');
    let s: Vec<char> = content.chars().collect();
    let mut pos = 0;
    let skip_ws = |pos: &mut usize| {
        while *pos < s.len() && ws(s[*pos]) {
            *pos += 1;
        }
    };
    skip_ws(&mut pos);
    let start = pos;
    while pos < s.len() && s[pos].is_ascii_digit() {
        pos += 1;
    }
    if pos == start && s.get(pos) != Some(&'.') {
        return None;
    }
    while pos < s.len() && (s[pos].is_ascii_digit() || s[pos] == '.') {
        pos += 1;
    }
    if pos < s.len() {
        let c = s[pos];
        if c != ';' && c != ',' && !ws(c) {
            return None;
        }
        skip_ws(&mut pos);
        if pos < s.len() && (s[pos] == ';' || s[pos] == ',') {
            pos += 1;
        }
        skip_ws(&mut pos);
    }
    if pos >= s.len() {
        return None; // refresh of the document itself
    }
    let url_start = pos; // "urlString = remainder" (parse target if no url=)
    'parse: {
        if matches!(s[pos], 'U' | 'u') {
            pos += 1;
        } else {
            // jump to skip quotes
            return Some(skip_quotes(&s, pos));
        }
        if pos < s.len() && matches!(s[pos], 'R' | 'r') {
            pos += 1;
        } else {
            break 'parse;
        }
        if pos < s.len() && matches!(s[pos], 'L' | 'l') {
            pos += 1;
        } else {
            break 'parse;
        }
        skip_ws(&mut pos);
        if pos < s.len() && s[pos] == '=' {
            pos += 1;
        } else {
            break 'parse;
        }
        skip_ws(&mut pos);
        return Some(skip_quotes(&s, pos));
    }
    // "parse": urlString is the remainder from where the URL part started.
    Some(s[url_start..].iter().collect())
}

fn skip_quotes(s: &[char], mut pos: usize) -> String {
    let mut quote = None;
    if pos < s.len() && (s[pos] == '\'' || s[pos] == '"') {
        quote = Some(s[pos]);
        pos += 1;
    }
    let mut rest: String = s[pos..].iter().collect();
    if let Some(q) = quote
        && let Some(i) = rest.find(q)
    {
        rest.truncate(i);
    }
    rest
}

/// URLs of a `srcset` attribute (every candidate), per the HTML spec's
/// "parse a srcset attribute" tokenization.
pub fn parse_srcset(input: &str) -> Vec<&str> {
    let ws = |b: u8| matches!(b, b'\t' | b'\n' | 0x0C | b'\r' | b' ');
    let bytes = input.as_bytes();
    let mut out = Vec::new();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && (ws(bytes[pos]) || bytes[pos] == b',') {
            pos += 1;
        }
        if pos >= bytes.len() {
            return out;
        }
        let start = pos;
        while pos < bytes.len() && !ws(bytes[pos]) {
            pos += 1;
        }
        let mut url = &input[start..pos];
        if url.ends_with(',') {
            url = url.trim_end_matches(',');
            if !url.is_empty() {
                out.push(url);
            }
            continue;
        }
        out.push(url);
        // descriptors: up to a comma outside parentheses
        let mut in_parens = false;
        while pos < bytes.len() {
            let b = bytes[pos];
            pos += 1;
            match (in_parens, b) {
                (false, b',') => break,
                (false, b'(') => in_parens = true,
                (true, b')') => in_parens = false,
                _ => {}
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum CssKind {
    Url,
    Import,
    ImageSet,
}

/// Raw (unresolved) URLs referenced by a CSS text: a stylesheet, a style
/// attribute's declarations or a single property value.
fn css_urls(css: &str) -> Vec<(CssKind, String)> {
    let mut input = ParserInput::new(css);
    let mut parser = Parser::new(&mut input);
    let mut out = Vec::new();
    scan_css(&mut parser, None, &mut out);
    out
}

/// Raw URLs referenced by a CSS text (public helper for tests).
pub fn css_url_strings(css: &str) -> Vec<String> {
    css_urls(css).into_iter().map(|(_, u)| u).collect()
}

fn scan_css<'i>(p: &mut Parser<'i, '_>, func: Option<&str>, out: &mut Vec<(CssKind, String)>) {
    let mut import_pending = false;
    let mut in_namespace = false;
    let mut first_in_func = true;
    loop {
        let tok = match p.next_including_whitespace_and_comments() {
            Ok(t) => t.clone(),
            Err(_) => break,
        };
        let was_first = first_in_func;
        if !matches!(tok, Token::WhiteSpace(_) | Token::Comment(_)) {
            first_in_func = false;
        }
        match tok {
            Token::WhiteSpace(_) | Token::Comment(_) => {}
            Token::UnquotedUrl(u) => {
                if !in_namespace {
                    out.push((if import_pending { CssKind::Import } else { CssKind::Url }, u.to_string()));
                }
                import_pending = false;
            }
            Token::QuotedString(s) => {
                match func {
                    Some("url") | Some("src") if was_first => out.push((CssKind::Url, s.to_string())),
                    Some("image-set") | Some("-webkit-image-set") => out.push((CssKind::ImageSet, s.to_string())),
                    _ => {}
                }
                if import_pending {
                    out.push((CssKind::Import, s.to_string()));
                }
                import_pending = false;
            }
            Token::Function(name) => {
                let lname = name.to_ascii_lowercase();
                let skip = in_namespace && (lname == "url" || lname == "src");
                let before = out.len();
                let _ = p.parse_nested_block(|p| -> Result<(), ParseError<'i, ()>> {
                    scan_css(p, Some(&lname), out);
                    Ok(())
                });
                if skip {
                    out.truncate(before);
                } else if import_pending && (lname == "url" || lname == "src") {
                    for o in &mut out[before..] {
                        o.0 = CssKind::Import;
                    }
                }
                import_pending = false;
            }
            Token::ParenthesisBlock | Token::SquareBracketBlock | Token::CurlyBracketBlock => {
                import_pending = false;
                in_namespace = false;
                let _ = p.parse_nested_block(|p| -> Result<(), ParseError<'i, ()>> {
                    scan_css(p, None, out);
                    Ok(())
                });
            }
            Token::AtKeyword(k) => {
                import_pending = k.eq_ignore_ascii_case("import");
                in_namespace = k.eq_ignore_ascii_case("namespace");
            }
            Token::Semicolon => {
                import_pending = false;
                in_namespace = false;
            }
            _ => {
                import_pending = false;
            }
        }
    }
}

/// Decode a `data:` URL into (lowercased media type, body bytes).
fn decode_data_url(u: &Url) -> Option<(String, Vec<u8>)> {
    let s = &u[..url::Position::AfterQuery];
    let rest = s.strip_prefix("data:")?;
    let comma = rest.find(',')?;
    let header = rest[..comma].trim_matches(|c: char| c.is_ascii_whitespace());
    let body = percent_decode(&rest[comma + 1..]);
    let (mime, b64) = match header.rfind(';') {
        Some(i) if header[i + 1..].trim().eq_ignore_ascii_case("base64") => (&header[..i], true),
        _ => (header, false),
    };
    let mime = mime.trim().to_ascii_lowercase();
    let body = if b64 { base64_decode(&body)? } else { body };
    Some((mime, body))
}

fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            let hex = |c: u8| (c as char).to_digit(16);
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Forgiving base64 (ASCII whitespace ignored, padding optional).
fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => (c - b'A') as u32,
            b'a'..=b'z' => (c - b'a') as u32 + 26,
            b'0'..=b'9' => (c - b'0') as u32 + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    };
    let mut data: Vec<u8> = input.iter().copied().filter(|c| !c.is_ascii_whitespace()).collect();
    if data.len().is_multiple_of(4) {
        while data.last() == Some(&b'=') {
            data.pop();
        }
    }
    if data.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::new();
    let mut acc = 0u32;
    let mut bits = 0;
    for c in data {
        acc = (acc << 6) | val(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    Some(out)
}
