//! Text held back for a decision: inline `<script>` (vendor signatures,
//! speculation rules), `<style>` (CSS URLs) and `<noscript>` (rewritten as a
//! nested fragment), bounded by `max_inline_bytes`; and nested documents
//! (`srcdoc`) rewritten with the same policy.

use std::borrow::Cow;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex};

use lol_html::HandlerResult;
use lol_html::html_content::{ContentType, EndTag, TextChunk};
use lol_html::send::Element;

use super::tags::{serialize_start_tag, set_attr};
use super::{MAX_FRAGMENT_DEPTH, State};
use crate::policy::{Construct, Finding, Reason};
use crate::rewrite::urls::decode_attr;
use crate::rewrite::{Engine, RewriteError, lock};

pub(super) enum CaptureKind {
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

pub(super) struct Capture {
    pub(super) id: u64,
    pub(super) kind: CaptureKind,
    pub(super) text: String,
}

impl State {
    pub(super) fn srcdoc(&mut self, el: &mut Element<'_, '_>) {
        let Some(raw) = el.get_attribute("srcdoc") else {
            return;
        };
        let doc = decode_attr(&raw).into_owned();
        match self.rewrite_fragment(&doc) {
            Some(clean) => {
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
        let engine = Engine::new(state, lol_html::AsciiCompatibleEncoding::utf_8(), false);
        let Engine { mut rewriter, out, state } = engine;
        let ok = rewriter.write(fragment.as_bytes()).is_ok()
            && rewriter.write(format!("<{sentinel}>").as_bytes()).is_ok()
            && rewriter.end().is_ok();
        let mut inner = lock(&state);
        self.findings.append(&mut inner.findings);
        if !ok || !inner.sentinel_seen {
            return None;
        }
        let bytes = std::mem::take(&mut *lock(&out.0));
        String::from_utf8(bytes).ok()
    }

    pub(super) fn start_capture(
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

    pub(super) fn on_text(&mut self, chunk: &mut TextChunk<'_>) -> HandlerResult {
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
                        end.before(&format!("{start_tag}{}", cap.text), ContentType::Html);
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
