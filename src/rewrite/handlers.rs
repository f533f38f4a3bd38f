//! The lol_html handlers: one element handler for every start tag and one text
//! handler for the elements whose text is held back for a decision (`script`,
//! `style`, `noscript`). Which attributes of a start tag carry URLs is not written
//! here but read from one table, [`fetch_attrs`], applied by [`attrs`]; this module
//! keeps what a table cannot say (held-back text, nonces, `javascript:` URLs,
//! fragments such as `srcdoc` and `<noscript>` content).

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use lol_html::html_content::{ContentType, EndTag, TextChunk};
use lol_html::send::{Element, Settings};
use lol_html::{HandlerResult, element, text};
use url::Url;

use super::fetch_attrs;
use super::urls::{decode_attr, escape_attr};
use super::{Engine, RewriteError, RewriteOptions, lock};
use crate::policy::{Construct, Decision, Finding, Mode, PageContext, Policy, Reason};

mod attrs;

use attrs::set_attr;

const HTML_NS: &str = "http://www.w3.org/1999/xhtml";
/// Deepest nesting of fragment rewrites (noscript content, srcdoc documents).
const MAX_FRAGMENT_DEPTH: u8 = 3;

enum CaptureKind {
    /// An inline script; its start tag (serialised) is held back with its text.
    Script {
        start_tag: String,
        svg: bool,
        /// `type=speculationrules`: JSON listing URLs to prefetch, not code.
        speculation: bool,
    },
    Style {
        svg: bool,
    },
    Noscript,
}

struct Capture {
    id: u64,
    kind: CaptureKind,
    text: String,
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
    /// The run-time shim is in the output (or the page has none).
    shim_done: bool,
    /// Buffers for the tag and attribute names of the start tag at hand, kept from
    /// one element to the next so reading names allocates nothing.
    names: TagNames,
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
            shim_done: false,
            names: TagNames::default(),
        }
    }

    /// Puts the run-time shim before the first element that is not `html`, `head`
    /// or `meta` — so before any script, and after a `<meta charset>` that must stay
    /// within the first 1024 bytes. Main document only (srcdoc documents get it in
    /// [`State::srcdoc`]; noscript content never runs it).
    fn insert_shim(&mut self, el: &mut Element<'_, '_>, tag: &str) {
        if self.shim_done || self.depth > 0 || !self.enforce || matches!(tag, "html" | "head" | "meta") {
            return;
        }
        self.shim_done = true;
        if let Some(shim) = &self.page.shim_tag {
            el.before(shim, ContentType::Html);
        }
    }

    fn record(&mut self, f: Option<Finding>) {
        if let Some(f) = f {
            self.findings.push(f);
        }
    }

    fn on_element(&mut self, el: &mut Element<'_, '_>, shared: &Arc<Mutex<State>>) -> HandlerResult {
        // Taken out of `self` for the call (no allocation: the buffers move).
        let mut names = std::mem::take(&mut self.names);
        names.read(el);
        let result = self.element(el, shared, &names);
        self.names = names;
        result
    }

    fn element(&mut self, el: &mut Element<'_, '_>, shared: &Arc<Mutex<State>>, names: &TagNames) -> HandlerResult {
        let tag = names.tag();
        if let Some(s) = &self.sentinel
            && tag == s
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
        self.insert_shim(el, tag);
        let html = el.namespace_uri() == HTML_NS;
        // The attribute names are read once (`names`): an entry of the table whose
        // attribute the element does not carry is skipped without asking lol_html
        // (each `get_attribute` lower-cases and allocates the name, then scans every
        // attribute). Measured: a third of the element handler's time, see issue 12.
        self.generic_attributes(el, names);

        // Every URL attribute, from the one table (fetch_attrs). A foreign element is
        // checked by SVG's rules and by HTML's for its name: lol_html can place an
        // element in MathML where a browser keeps it in SVG, or in SVG where a breakout
        // puts it in HTML, and checking both readings only removes third parties.
        if !names.is_empty() {
            for entry in fetch_attrs::for_element(tag, html) {
                if names.may_apply(entry) && self.apply(el, entry) {
                    return Ok(());
                }
            }
        }

        // What the table does not say: text held back for a decision, nonces, `javascript:`.
        match tag {
            "script" => {
                let external = if html {
                    el.has_attribute("src")
                } else {
                    el.has_attribute("href") || el.has_attribute("xlink:href")
                };
                self.add_nonce(el);
                if !external {
                    let speculation = html && is_speculation_rules(el);
                    let kind = CaptureKind::Script { start_tag: String::new(), svg: !html, speculation };
                    self.start_capture(el, kind, shared)?;
                }
            }
            "style" => self.start_capture(el, CaptureKind::Style { svg: !html }, shared)?,
            "noscript" if html => self.start_capture(el, CaptureKind::Noscript, shared)?,
            "a" | "area"
                if self.page.strip_inline_handlers
                    && names.contains("href")
                    && el.get_attribute("href").is_some_and(|h| is_javascript_url(&h)) =>
            {
                self.record(Some(inline_handler_finding()));
                if self.enforce {
                    el.remove_attribute("href");
                }
            }
            _ => {}
        }
        Ok(())
    }

    /// Attributes any element may carry: the table's every-element entries (`style`,
    /// `background`) and `on*` handlers (only attributes are removed, never the element).
    fn generic_attributes(&mut self, el: &mut Element<'_, '_>, names: &TagNames) {
        for entry in fetch_attrs::every_element() {
            if names.may_apply(entry) {
                self.apply(el, entry);
            }
        }
        for name in names.event_handlers() {
            if self.page.strip_inline_handlers {
                // A strict CSP blocks inline handlers; removing them keeps reports meaningful.
                self.record(Some(inline_handler_finding()));
                if self.enforce {
                    el.remove_attribute(name);
                }
                continue;
            }
            let Some(raw) = el.get_attribute(name) else {
                continue;
            };
            let code = decode_attr(&raw);
            if let Some((keep, findings)) = self.policy.decide_inline(&self.page, Construct::EventHandler, &code) {
                self.findings.extend(findings);
                if !keep && self.enforce {
                    el.remove_attribute(name);
                }
            }
        }
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

    fn srcdoc(&mut self, el: &mut Element<'_, '_>) {
        let Some(raw) = el.get_attribute("srcdoc") else {
            return;
        };
        let doc = decode_attr(&raw).into_owned();
        match self.rewrite_fragment(&doc) {
            Some(mut clean) => {
                // A srcdoc document is a realm of its own: the shim goes first in it too.
                if let Some(shim) = self.page.shim_tag.as_deref().filter(|_| self.enforce) {
                    clean.insert_str(0, shim);
                }
                if self.enforce && clean != doc {
                    set_attr(el, "srcdoc", &clean);
                }
            }
            None => {
                self.record(Some(Finding::unattributed(Construct::Srcdoc, Reason::Unparseable, String::new())));
                if self.enforce {
                    el.remove_attribute("srcdoc");
                }
            }
        }
    }

    /// Rewrites an HTML fragment (noscript content, a srcdoc document) with the
    /// same policy and base. `None` when it cannot be proven to end outside any
    /// tag, comment or raw-text element, or fails to rewrite.
    fn rewrite_fragment(&mut self, fragment: &str) -> Option<String> {
        if self.depth + 1 >= MAX_FRAGMENT_DEPTH {
            return None;
        }
        let sentinel =
            format!("tagwarden-end-{:016x}", std::collections::hash_map::RandomState::new().build_hasher().finish());
        let mut state = State::new(self.policy.clone(), self.page.clone(), self.opts, self.depth + 1);
        state.base = self.base.clone();
        state.base_fixed = true;
        state.enforce = true;
        state.sentinel = Some(sentinel.clone());
        let mut engine = Engine::new(state, lol_html::AsciiCompatibleEncoding::utf_8(), false);
        let state = Arc::clone(&engine.state);
        let written = engine.rewriter.write(fragment.as_bytes()).is_ok()
            && engine.rewriter.write(format!("<{sentinel}>").as_bytes()).is_ok();
        // Nothing was taken out of the sink: `end` returns the whole output.
        let out = if written { engine.end().ok().map(|(out, _)| out) } else { None };
        let mut inner = lock(&state);
        self.findings.append(&mut inner.findings);
        let bytes = out.filter(|_| inner.sentinel_seen)?;
        String::from_utf8(bytes).ok()
    }

    fn start_capture(
        &mut self,
        el: &mut Element<'_, '_>,
        mut kind: CaptureKind,
        shared: &Arc<Mutex<State>>,
    ) -> HandlerResult {
        if let CaptureKind::Script { start_tag, .. } = &mut kind {
            *start_tag = serialize_start_tag(el);
            if self.enforce {
                // Re-emitted with the text once the script is decided.
                el.start_tag().remove();
            }
        }
        let Some(end_handlers) = el.end_tag_handlers() else {
            return Ok(());
        };
        let id = self.next_capture_id;
        self.next_capture_id += 1;
        self.capture = Some(Capture { id, kind, text: String::new() });
        let shared = shared.clone();
        end_handlers.push(Box::new(move |end: &mut EndTag<'_>| lock(&shared).end_capture(id, end)));
        Ok(())
    }

    fn on_text(&mut self, chunk: &mut TextChunk<'_>) -> HandlerResult {
        let Some(cap) = &mut self.capture else {
            return Ok(());
        };
        if cap.text.len() + chunk.as_str().len() > self.opts.max_inline_bytes {
            let limit = self.opts.max_inline_bytes;
            self.capture = None;
            if self.enforce {
                return Err(Box::new(RewriteError::InlineTooLarge(limit)));
            }
            return Ok(());
        }
        cap.text.push_str(chunk.as_str());
        if self.enforce {
            chunk.remove();
        }
        Ok(())
    }

    fn end_capture(&mut self, id: u64, end: &mut EndTag<'_>) -> HandlerResult {
        if let Some(pos) = self.abandoned.iter().position(|a| *a == id) {
            self.abandoned.swap_remove(pos);
            if self.enforce {
                end.remove();
            }
            return Ok(());
        }
        let Some(cap) = self.capture.take_if(|c| c.id == id) else {
            return Ok(());
        };
        match cap.kind {
            CaptureKind::Script { start_tag, svg, speculation } => {
                // In SVG, script text is parsed with character references decoded.
                let code: Cow<'_, str> = if svg { htmlize::unescape(&cap.text) } else { Cow::Borrowed(&cap.text) };
                let keep = if speculation {
                    self.speculation_rules_first_party(&code)
                } else {
                    match self.policy.decide_inline(&self.page, Construct::InlineScript, &code) {
                        None => true,
                        Some((keep, findings)) => {
                            self.findings.extend(findings);
                            keep
                        }
                    }
                };
                if self.enforce {
                    if keep {
                        // Two insertions (lol_html appends the second to the first): the
                        // script's text is not copied once more into one string.
                        end.before(&start_tag, ContentType::Html);
                        end.before(&cap.text, ContentType::Html);
                    } else {
                        end.remove();
                    }
                }
            }
            CaptureKind::Style { svg } => {
                if !self.enforce {
                    let _ = self.rewrite_css(&cap.text, Construct::StyleBlock);
                    return Ok(());
                }
                let out = if svg {
                    let decoded = htmlize::unescape(&cap.text).into_owned();
                    self.rewrite_css(&decoded, Construct::StyleBlock).map(|css| htmlize::escape_text(css).into_owned())
                } else {
                    self.rewrite_css(&cap.text, Construct::StyleBlock)
                };
                end.before(out.as_deref().unwrap_or(&cap.text), ContentType::Html);
            }
            CaptureKind::Noscript => {
                let clean = self.rewrite_fragment(&cap.text);
                if clean.is_none() {
                    self.record(Some(Finding::unattributed(Construct::Noscript, Reason::Unparseable, String::new())));
                }
                if self.enforce
                    && let Some(clean) = clean
                {
                    end.before(&clean, ContentType::Html);
                }
            }
        }
        Ok(())
    }
}

/// The lower-case tag name and attribute names of a start tag as it arrived, the
/// attributes in order (duplicates kept, as lol_html keeps them): what lol_html's
/// `tag_name()` and `Attribute::name()` return, without a `String` each. Names
/// are read as bytes (`name_bytes`, our lol_html patch, `.vendor/lol_html`); an
/// ASCII name means the same characters in every encoding lol_html reads, and the
/// rare non-ASCII name is decoded by lol_html as before.
#[derive(Default)]
struct TagNames {
    tag: String,
    /// The attribute names, one after another, as UTF-8 bytes (kept as bytes: most
    /// are only compared, and checking each is UTF-8 cost 3 % of the HTML path);
    /// `ends[i]` is where name `i` ends.
    text: Vec<u8>,
    ends: Vec<usize>,
}

/// A name as written: its bytes when ASCII (the same characters in every encoding
/// lol_html reads), else `decoded()`, lol_html's decoding.
fn as_written(raw: &[u8], decoded: impl FnOnce() -> String) -> Cow<'_, str> {
    match std::str::from_utf8(raw) {
        Ok(ascii) if ascii.is_ascii() => Cow::Borrowed(ascii),
        _ => Cow::Owned(decoded()),
    }
}

/// [`as_written`] lower-cased, appended as bytes: attribute names are only compared,
/// so the ASCII case skips checking the bytes as UTF-8 (3 % of the HTML path).
fn push_lowercase(out: &mut Vec<u8>, raw: &[u8], decoded: impl FnOnce() -> String) {
    if raw.is_ascii() {
        out.extend(raw.iter().map(u8::to_ascii_lowercase));
    } else {
        out.extend_from_slice(decoded().as_bytes());
    }
}

impl TagNames {
    fn read(&mut self, el: &Element<'_, '_>) {
        self.tag.clear();
        // `tag_name()` is lower-cased already; lower-casing it again changes nothing.
        self.tag.push_str(&as_written(el.tag_name_bytes(), || el.tag_name()));
        self.tag.make_ascii_lowercase();
        self.text.clear();
        self.ends.clear();
        for a in el.attributes() {
            push_lowercase(&mut self.text, a.name_bytes(), || a.name());
            self.ends.push(self.text.len());
        }
    }

    fn tag(&self) -> &str {
        &self.tag
    }

    fn iter(&self) -> impl Iterator<Item = &[u8]> {
        let starts = std::iter::once(0).chain(self.ends.iter().copied());
        starts.zip(self.ends.iter().copied()).map(|(start, end)| &self.text[start..end])
    }

    fn is_empty(&self) -> bool {
        self.ends.is_empty()
    }

    fn contains(&self, name: &str) -> bool {
        self.iter().any(|n| n == name.as_bytes())
    }

    /// Whether `entry` can find anything: its attribute is present (an entry reads
    /// only its own attribute's presence, and nothing the handler does adds an
    /// attribute the tag did not carry), or it reads every attribute (`*`).
    fn may_apply(&self, entry: &fetch_attrs::FetchAttr) -> bool {
        entry.attribute == "*" || self.contains(entry.attribute)
    }

    /// `on*` event-handler attributes (every name is UTF-8: ASCII, or lol_html's decoding).
    fn event_handlers(&self) -> impl Iterator<Item = &str> {
        self.iter().filter(|n| n.len() > 2 && n.starts_with(b"on")).filter_map(|n| std::str::from_utf8(n).ok())
    }
}

/// `<tag a="v" …>` from the element's current attributes (values kept raw).
fn serialize_start_tag(el: &Element<'_, '_>) -> String {
    let mut s = String::with_capacity(64);
    s.push('<');
    s.push_str(&as_written(el.tag_name_bytes(), || el.tag_name_preserve_case()));
    for a in el.attributes() {
        s.push(' ');
        s.push_str(&as_written(a.name_bytes(), || a.name_preserve_case()));
        s.push_str("=\"");
        for (i, part) in a.value().split('"').enumerate() {
            if i > 0 {
                s.push_str("&quot;");
            }
            s.push_str(part);
        }
        s.push('"');
    }
    s.push('>');
    s
}

/// `javascript:` as a browser reads it (references decoded, leading C0 controls
/// and spaces stripped, tab/newline ignored). Runs on every link, so it compares
/// as it goes instead of building the cleaned prefix.
fn is_javascript_url(raw: &str) -> bool {
    let decoded = decode_attr(raw);
    let mut chars = decoded.trim_start_matches(|c: char| c <= ' ').chars().filter(|c| !matches!(c, '\t' | '\n' | '\r'));
    "javascript:".chars().all(|want| chars.next().is_some_and(|c| c.eq_ignore_ascii_case(&want)))
}

fn inline_handler_finding() -> Finding {
    Finding::unattributed(Construct::EventHandler, Reason::CspInline, String::new())
}

/// `<script type=speculationrules>`.
fn is_speculation_rules(el: &Element<'_, '_>) -> bool {
    el.get_attribute("type").is_some_and(|t| decode_attr(&t).trim().eq_ignore_ascii_case("speculationrules"))
}

/// Registers the handlers on `settings`.
pub(super) fn install(settings: Settings<'static, 'static>, state: &Arc<Mutex<State>>) -> Settings<'static, 'static> {
    let for_elements = state.clone();
    let for_text = state.clone();
    settings
        .append_element_content_handler(element!("*", move |el: &mut Element<'_, '_>| {
            lock(&for_elements).on_element(el, &for_elements)
        }))
        .append_element_content_handler(text!("script, style, noscript", move |t: &mut TextChunk<'_>| {
            lock(&for_text).on_text(t)
        }))
}

#[cfg(test)]
mod tests {
    #[test]
    fn javascript_urls_as_a_browser_reads_them() {
        for yes in ["javascript:x", " \x01JavaScript:x", "java\tscr\nipt:", "&#106;avascript:1", "jav&#x09;ascript:"] {
            assert!(super::is_javascript_url(yes), "{yes:?}");
        }
        for no in ["javascript", "javascrip:x", "/javascript:x", "java script:x", "vbscript:x", "", "ja"] {
            assert!(!super::is_javascript_url(no), "{no:?}");
        }
    }
}
