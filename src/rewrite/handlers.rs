//! The lol_html handlers: one element handler for every start tag (dispatching
//! on tag and namespace) and one text handler for the elements whose text is
//! held back for a decision (`script`, `style`, `noscript`).

use std::sync::{Arc, Mutex};

use lol_html::html_content::TextChunk;
use lol_html::send::{Element, Settings};
use lol_html::{HandlerResult, element, text};
use url::Url;

mod capture;
mod tags;

use super::urls::{decode_attr, escape_attr, meta_refresh_url, parse_srcset, resolve, resolve_in};
use super::{RewriteOptions, css, lock};
use crate::policy::Mode;
use crate::policy::{Construct, Decision, Finding, PageContext, Policy, Reason};
use capture::{Capture, CaptureKind};
use tags::{animates_href, inline_handler_finding, is_javascript_url, is_speculation_rules, link_loads, set_attr};

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";
/// Deepest nesting of fragment rewrites (noscript content, srcdoc documents).
const MAX_FRAGMENT_DEPTH: u8 = 3;

/// What to take out when a URL is removed.
#[derive(Clone, Copy, PartialEq, Eq)]
enum OnRemove {
    Attribute,
    Element,
}

/// Per-document rewriting state shared by the handlers.
pub(super) struct State {
    policy: Arc<Policy>,
    page: PageContext,
    pub(super) opts: RewriteOptions,
    enforce: bool,
    depth: u8,
    /// Effective document base URL.
    base: Url,
    /// A `<base href>` has been kept; later ones are ignored by browsers.
    base_fixed: bool,
    pub(super) findings: Vec<Finding>,
    capture: Option<Capture>,
    next_capture_id: u64,
    /// Captures given up because an element started inside them (foreign content):
    /// their end tags are removed too.
    abandoned: Vec<u64>,
    /// Random tag name appended to fragments to prove they end outside any tag.
    sentinel: Option<String>,
    sentinel_seen: bool,
    /// The document's encoding (queries are encoded in it).
    pub(super) encoding: super::DocumentEncoding,
}

impl State {
    pub(super) fn new(policy: Arc<Policy>, page: PageContext, opts: RewriteOptions, depth: u8) -> State {
        let base = page.page_url.clone();
        let enforce = page.mode == Mode::Enforce;
        State {
            policy,
            page,
            opts,
            enforce,
            depth,
            base,
            base_fixed: false,
            findings: Vec::new(),
            capture: None,
            next_capture_id: 0,
            abandoned: Vec::new(),
            sentinel: None,
            sentinel_seen: false,
            encoding: super::DocumentEncoding::default(),
        }
    }

    fn record(&mut self, f: Option<Finding>) {
        if let Some(f) = f {
            self.findings.push(f);
        }
    }

    /// Decides one raw (undecoded) attribute value. A value no URL parser accepts
    /// is removed: we cannot prove where a browser would send it.
    fn decide_raw(&mut self, construct: Construct, raw: &str) -> Decision {
        let decoded = decode_attr(raw);
        match resolve_in(&self.base, &decoded, self.encoding.get()) {
            Some(url) => {
                let (d, f) = self.policy.decide(&self.page, construct, &url);
                self.record(f);
                d
            }
            None => {
                self.record(Some(Finding::unattributed(construct, Reason::UnsafeUrl, String::new())));
                Decision::Remove(Reason::UnsafeUrl)
            }
        }
    }

    /// Decides a URL attribute and applies the decision. Returns `true` when the
    /// element was removed.
    fn url_attr(&mut self, el: &mut Element<'_, '_>, attr: &str, construct: Construct, on_remove: OnRemove) -> bool {
        let Some(raw) = el.get_attribute(attr) else {
            return false;
        };
        match self.decide_raw(construct, &raw) {
            Decision::Keep => false,
            Decision::FirstParty(u) => {
                if self.enforce {
                    set_attr(el, attr, &u);
                }
                false
            }
            Decision::Remove(_) => {
                if !self.enforce {
                    return false;
                }
                match on_remove {
                    OnRemove::Attribute => {
                        el.remove_attribute(attr);
                        false
                    }
                    OnRemove::Element => {
                        el.remove();
                        true
                    }
                }
            }
        }
    }

    /// Filters a list-valued attribute (`srcset`, `imagesrcset`, `ping`).
    fn list_attr(&mut self, el: &mut Element<'_, '_>, attr: &str, construct: Construct, srcset: bool) {
        let Some(raw) = el.get_attribute(attr) else {
            return;
        };
        let decoded = decode_attr(&raw).into_owned();
        let items: Vec<(String, String)> = if srcset {
            parse_srcset(&decoded).into_iter().map(|c| (c.url.to_string(), c.descriptors.to_string())).collect()
        } else {
            decoded.split_ascii_whitespace().map(|u| (u.to_string(), String::new())).collect()
        };
        let mut kept = Vec::new();
        let mut changed = false;
        for (url, desc) in items {
            // Already decoded: escape `&` so decide_raw's decoding is the identity.
            match self.decide_raw(construct, &escape_attr(&url)) {
                Decision::Keep => kept.push((url, desc)),
                Decision::FirstParty(u) => {
                    kept.push((u, desc));
                    changed = true;
                }
                Decision::Remove(_) => changed = true,
            }
        }
        if !changed || !self.enforce {
            return;
        }
        if kept.is_empty() {
            el.remove_attribute(attr);
            return;
        }
        let sep = if srcset { ", " } else { " " };
        let value = kept
            .iter()
            .map(|(u, d)| if d.is_empty() { u.clone() } else { format!("{u} {d}") })
            .collect::<Vec<_>>()
            .join(sep);
        set_attr(el, attr, &value);
    }

    /// Rewrites the URLs in CSS text; `None` when nothing changes.
    fn rewrite_css(&mut self, css_text: &str, construct: Construct) -> Option<String> {
        let mut changed = false;
        let out = css::rewrite(css_text, |url| match self.decide_raw(construct, &escape_attr(url)) {
            Decision::Keep => None,
            Decision::FirstParty(u) => {
                changed = true;
                Some(u)
            }
            Decision::Remove(_) => {
                changed = true;
                Some("data:,".to_string())
            }
        });
        if self.enforce && changed { out } else { None }
    }

    // Arms call a URL check and then maybe a second one: as guards the side effects would hide.
    #[allow(clippy::collapsible_match)]
    fn on_element(&mut self, el: &mut Element<'_, '_>, shared: &Arc<Mutex<State>>) -> HandlerResult {
        let tag = el.tag_name();
        if let Some(s) = &self.sentinel
            && tag == *s
        {
            el.remove();
            self.sentinel_seen = true;
            return Ok(());
        }
        // Any start tag after the sentinel means the fragment did not end where it seemed to.
        self.sentinel_seen = false;
        if let Some(cap) = self.capture.take() {
            // Only SVG/MathML script and style can hold elements. Give the capture up:
            // its start tag and text so far are already out of the output, so the
            // script or style is dropped, and what follows is rewritten as usual.
            self.abandoned.push(cap.id);
            self.record(Some(Finding::unattributed(Construct::InlineScript, Reason::Unparseable, String::new())));
        }
        let ns = el.namespace_uri();
        let html = ns == HTML_NS;
        // Every foreign element is checked by SVG's rules: lol_html can place an element
        // in MathML where a browser keeps it in SVG (`<svg><math>…`), and SVG's rules
        // (href loads, entity-decoded script/style text) are the stricter reading.
        let svg = !html;

        self.generic_attributes(el);

        // Where lol_html's view of foreign content may differ from a browser's
        // (breakouts from <svg>/<math>), URL attributes are checked under both
        // namespaces' rules: checking too much only removes third parties.
        if svg {
            self.svg_element(el, &tag, shared)?;
            if matches!(tag.as_str(), "script" | "style") || el.removed() {
                return Ok(());
            }
        } else if matches!(tag.as_str(), "image" | "use" | "feimage") {
            self.url_attr(el, "href", Construct::SvgHref, OnRemove::Attribute);
            self.url_attr(el, "xlink:href", Construct::SvgHref, OnRemove::Attribute);
        }
        if !html && matches!(tag.as_str(), "script" | "style" | "noscript") {
            return Ok(());
        }
        match tag.as_str() {
            "base" => self.base_element(el),
            "script" => {
                if el.has_attribute("src") {
                    if !self.url_attr(el, "src", Construct::Script, OnRemove::Element) {
                        self.add_nonce(el);
                    }
                } else {
                    self.add_nonce(el);
                    self.start_capture(
                        el,
                        CaptureKind::Script {
                            start_tag: String::new(),
                            svg: false,
                            speculation: is_speculation_rules(el),
                        },
                        shared,
                    )?;
                }
            }
            "style" => self.start_capture(el, CaptureKind::Style { svg: false }, shared)?,
            "noscript" => self.start_capture(el, CaptureKind::Noscript, shared)?,
            "img" | "image" => {
                // `img` is a foreign-content breakout tag: removing it would change how the
                // markup after it parses inside <svg>/<math>, so only its URLs go.
                self.url_attr(el, "src", Construct::Img, OnRemove::Attribute);
                self.list_attr(el, "srcset", Construct::Img, true);
            }
            "source" => {
                if !self.url_attr(el, "src", Construct::Source, OnRemove::Element) {
                    self.list_attr(el, "srcset", Construct::Source, true);
                }
            }
            "link" => {
                if link_loads(el) && !self.url_attr(el, "href", Construct::Link, OnRemove::Element) {
                    self.list_attr(el, "imagesrcset", Construct::Link, true);
                }
            }
            "iframe" | "frame" => {
                if !self.url_attr(el, "src", Construct::Iframe, OnRemove::Element) && tag == "iframe" {
                    self.srcdoc(el);
                }
            }
            "object" => {
                self.url_attr(el, "data", Construct::Object, OnRemove::Attribute);
                self.url_attr(el, "codebase", Construct::Object, OnRemove::Attribute);
            }
            "embed" => {
                // A breakout tag too (see img).
                self.url_attr(el, "src", Construct::Embed, OnRemove::Attribute);
            }
            "video" | "audio" => {
                self.url_attr(el, "src", Construct::Media, OnRemove::Attribute);
                self.url_attr(el, "poster", Construct::Media, OnRemove::Attribute);
            }
            "track" => {
                self.url_attr(el, "src", Construct::Track, OnRemove::Element);
            }
            "input" => {
                self.url_attr(el, "src", Construct::InputImage, OnRemove::Attribute);
                self.url_attr(el, "formaction", Construct::FormAction, OnRemove::Attribute);
            }
            "button" => {
                self.url_attr(el, "formaction", Construct::FormAction, OnRemove::Attribute);
            }
            "form" => {
                self.url_attr(el, "action", Construct::FormAction, OnRemove::Attribute);
            }
            "a" | "area" => {
                self.list_attr(el, "ping", Construct::Ping, false);
                if self.page.strip_inline_handlers && el.get_attribute("href").is_some_and(|h| is_javascript_url(&h)) {
                    self.record(Some(inline_handler_finding()));
                    if self.enforce {
                        el.remove_attribute("href");
                    }
                }
            }
            "meta" => self.meta_element(el),
            "html" => {
                self.url_attr(el, "manifest", Construct::Link, OnRemove::Attribute);
            }
            _ => {}
        }
        Ok(())
    }

    /// Attributes any element may carry: `style`, `background`, `on*` handlers
    /// (only attributes are removed, never the element).
    fn generic_attributes(&mut self, el: &mut Element<'_, '_>) {
        let mut style = false;
        let mut background = false;
        let mut handlers: Vec<String> = Vec::new();
        for a in el.attributes() {
            let name = a.name();
            match name.as_str() {
                "style" => style = true,
                "background" => background = true,
                n if n.len() > 2 && n.starts_with("on") => handlers.push(name),
                _ => {}
            }
        }
        if style && let Some(raw) = el.get_attribute("style") {
            let decoded = decode_attr(&raw).into_owned();
            if let Some(new) = self.rewrite_css(&decoded, Construct::StyleAttr) {
                set_attr(el, "style", &new);
            }
        }
        if background {
            self.url_attr(el, "background", Construct::Background, OnRemove::Attribute);
        }
        for name in handlers {
            if self.page.strip_inline_handlers {
                // A strict CSP blocks inline handlers; removing them keeps reports meaningful.
                self.record(Some(inline_handler_finding()));
                if self.enforce {
                    el.remove_attribute(&name);
                }
                continue;
            }
            let Some(raw) = el.get_attribute(&name) else {
                continue;
            };
            let code = decode_attr(&raw);
            if let Some((keep, findings)) = self.policy.decide_inline(&self.page, Construct::EventHandler, &code) {
                self.findings.extend(findings);
                if !keep && self.enforce {
                    el.remove_attribute(&name);
                }
            }
        }
    }

    fn svg_element(&mut self, el: &mut Element<'_, '_>, tag: &str, shared: &Arc<Mutex<State>>) -> HandlerResult {
        // Presentation attributes (fill, stroke, filter, mask, clip-path, marker-*, …)
        // take CSS values, so `url()` in any of them may fetch.
        let css_attrs: Vec<String> = el
            .attributes()
            .iter()
            .filter(|a| a.value().contains('('))
            .map(|a| a.name())
            .filter(|n| n != "style")
            .collect();
        for name in css_attrs {
            let Some(raw) = el.get_attribute(&name) else { continue };
            let decoded = decode_attr(&raw).into_owned();
            if let Some(new) = self.rewrite_css(&decoded, Construct::SvgHref) {
                set_attr(el, &name, &new);
            }
        }
        match tag {
            "script" => {
                let has_href = el.has_attribute("href") || el.has_attribute("xlink:href");
                if has_href {
                    if !self.url_attr(el, "href", Construct::Script, OnRemove::Element)
                        && !self.url_attr(el, "xlink:href", Construct::Script, OnRemove::Element)
                    {
                        self.add_nonce(el);
                    }
                } else {
                    self.add_nonce(el);
                    self.start_capture(
                        el,
                        CaptureKind::Script { start_tag: String::new(), svg: true, speculation: false },
                        shared,
                    )?;
                }
            }
            "style" => self.start_capture(el, CaptureKind::Style { svg: true }, shared)?,
            // SVG <a> navigates; every other href (image, use, feImage, pattern, …) may fetch.
            "a" => {}
            "set" | "animate" | "animatetransform" | "animatemotion" | "discard" if animates_href(el) => {
                // The animated values become an href at run time.
                for attr in ["to", "from", "by"] {
                    if self.url_attr(el, attr, Construct::SvgHref, OnRemove::Element) {
                        return Ok(());
                    }
                }
                if let Some(values) = el.get_attribute("values") {
                    let decoded = decode_attr(&values).into_owned();
                    let all_kept = decoded.split(';').map(str::trim).filter(|v| !v.is_empty()).fold(true, |ok, v| {
                        let d = self.decide_raw(Construct::SvgHref, &escape_attr(v));
                        ok && d == Decision::Keep
                    });
                    if !all_kept && self.enforce {
                        el.remove();
                    }
                }
            }
            _ => {
                self.url_attr(el, "href", Construct::SvgHref, OnRemove::Attribute);
                self.url_attr(el, "xlink:href", Construct::SvgHref, OnRemove::Attribute);
            }
        }
        Ok(())
    }

    /// `<script type=speculationrules>` makes the browser prefetch or prerender the
    /// URLs it lists, or links matching document rules. Kept only when it parses,
    /// has no document rules, and every listed URL is first-party.
    fn speculation_rules_first_party(&mut self, json: &str) -> bool {
        fn collect<'a>(v: &'a serde_json::Value, urls: &mut Vec<&'a str>, document_rules: &mut bool) {
            match v {
                serde_json::Value::Object(m) => {
                    for (k, v) in m {
                        match (k.as_str(), v) {
                            ("where", _) => *document_rules = true,
                            ("urls", serde_json::Value::Array(list)) => {
                                urls.extend(list.iter().filter_map(|u| u.as_str()))
                            }
                            _ => collect(v, urls, document_rules),
                        }
                    }
                }
                serde_json::Value::Array(list) => list.iter().for_each(|v| collect(v, urls, document_rules)),
                _ => {}
            }
        }
        let Ok(value) = serde_json::from_str::<serde_json::Value>(json) else {
            self.record(Some(Finding::unattributed(Construct::InlineScript, Reason::Unparseable, String::new())));
            return false;
        };
        let mut urls = Vec::new();
        let mut document_rules = false;
        collect(&value, &mut urls, &mut document_rules);
        if document_rules {
            self.record(Some(Finding::unattributed(Construct::InlineScript, Reason::UnsafeUrl, String::new())));
            return false;
        }
        let mut keep = true;
        for u in urls {
            if self.decide_raw(Construct::InlineScript, &escape_attr(u)) != Decision::Keep {
                keep = false;
            }
        }
        keep
    }

    /// Adds this response's CSP nonce to a script the rewriter keeps.
    fn add_nonce(&mut self, el: &mut Element<'_, '_>) {
        if self.enforce
            && let Some(n) = &self.page.csp_nonce
        {
            let _ = el.set_attribute("nonce", n);
        }
    }

    fn base_element(&mut self, el: &mut Element<'_, '_>) {
        let Some(raw) = el.get_attribute("href") else {
            return;
        };
        let decoded = decode_attr(&raw);
        let resolved = resolve(&self.page.page_url, &decoded);
        // A base with another scheme than the page's changes how scheme-relative-looking
        // values (`https:evil.example/p`) resolve in pings and form actions read later.
        let first_party = resolved.as_ref().filter(|u| {
            u.scheme() == self.page.page_url.scheme()
                && self
                    .page
                    .first_party
                    .contains(&crate::policy::host::normalize_host(u.host_str().unwrap_or_default()))
        });
        match first_party {
            Some(u) => {
                if !self.base_fixed {
                    self.base = u.clone();
                    self.base_fixed = true;
                }
            }
            None => {
                let host = resolved.as_ref().and_then(|u| u.host_str()).unwrap_or_default().to_string();
                self.record(Some(Finding::unattributed(Construct::Base, Reason::OffsiteBase, host)));
                if self.enforce {
                    el.remove();
                }
            }
        }
    }

    fn meta_element(&mut self, el: &mut Element<'_, '_>) {
        let refresh =
            el.get_attribute("http-equiv").is_some_and(|v| decode_attr(&v).trim().eq_ignore_ascii_case("refresh"));
        if !refresh {
            return;
        }
        let Some(content) = el.get_attribute("content") else {
            return;
        };
        let content = decode_attr(&content).into_owned();
        let Some(target) = meta_refresh_url(&content) else {
            return;
        };
        match self.decide_raw(Construct::MetaRefresh, &escape_attr(target)) {
            Decision::Keep => {}
            // A refresh to a vendor, even first-party, is a navigation the rules did not ask for.
            // `meta` is a breakout tag (see img): the tag stays, the refresh goes.
            Decision::FirstParty(_) | Decision::Remove(_) => {
                if self.enforce {
                    el.remove_attribute("http-equiv");
                    el.remove_attribute("content");
                }
            }
        }
    }
}

/// Registers the handlers on `settings`.
pub(super) fn install(settings: Settings<'static, 'static>, state: &Arc<Mutex<State>>) -> Settings<'static, 'static> {
    let for_elements = state.clone();
    let for_text = state.clone();
    settings
        .append_element_content_handler(element!("*", move |el: &mut Element<'_, '_>| {
            let shared = for_elements.clone();
            lock(&for_elements).on_element(el, &shared)
        }))
        .append_element_content_handler(text!("script, style, noscript", move |t: &mut TextChunk<'_>| {
            lock(&for_text).on_text(t)
        }))
}
