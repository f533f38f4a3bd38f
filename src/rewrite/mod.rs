//! The streaming allow-list rewriter: bytes of an HTML document in, bytes out,
//! with every construct that makes a browser load something decided by the
//! [`Policy`] (keep / first-party / remove) and recorded as a [`Finding`].
//!
//! Pure: no I/O. [`HtmlStream`] wraps lol_html's `Send` rewriter so it can live in
//! a proxy request context. It fails closed: lol_html runs in strict mode with a
//! memory bound and without graceful bail-out, and every error is returned to
//! the caller, who must abort the response rather than pass the rest through.
//!
//! Decisions that need whole text (inline scripts matched against vendor
//! signatures, `<style>` blocks, `<noscript>` content) hold that element's text
//! back, bounded by [`RewriteOptions::max_inline_bytes`], and emit it once
//! decided. Nothing else is buffered.

pub mod css;
pub mod fetch_attrs;
pub mod urls;
pub mod vendor_body;

mod handlers;

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use encoding_rs::Encoding;
use lol_html::errors::RewritingError;
use lol_html::send::{HtmlRewriter, Settings};
use lol_html::{AsciiCompatibleEncoding, MemorySettings, OutputSink};

use crate::policy::Mode;
use crate::policy::{Finding, PageContext, Policy};
use handlers::State;

/// Bounds for one document.
#[derive(Debug, Clone, Copy)]
pub struct RewriteOptions {
    /// lol_html's memory limit per document. Default 4 MiB.
    pub max_memory_bytes: usize,
    /// Largest inline `<script>`, `<style>` or `<noscript>` text held back for a
    /// decision. Larger is a rewriting error (fail closed). Default 1 MiB.
    pub max_inline_bytes: usize,
}

impl Default for RewriteOptions {
    fn default() -> Self {
        RewriteOptions { max_memory_bytes: 4 << 20, max_inline_bytes: 1 << 20 }
    }
}

/// Why a document could not be rewritten. The caller must not pass the rest
/// of the document through.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RewriteError {
    #[error("unsupported character encoding `{0}`")]
    UnsupportedEncoding(&'static str),
    #[error("rewriter memory limit exceeded")]
    MemoryLimit,
    #[error("markup the streaming parser cannot interpret unambiguously")]
    ParsingAmbiguity,
    #[error("inline script, style or noscript text over the {0}-byte limit")]
    InlineTooLarge(usize),
    #[error("element nested inside text held for a decision")]
    NestedCapture,
    /// The origin's body could not be decoded (corrupt or truncated gzip, deflate, br).
    #[error("{0}")]
    ContentDecoding(String),
    /// The rewritten body could not be encoded for the client.
    #[error("{0}")]
    ContentEncoding(String),
    #[error("handler error: {0}")]
    Handler(String),
    #[error("the rewriter already failed")]
    Poisoned,
}

impl RewriteError {
    /// Closed set, for the `kind` metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            RewriteError::UnsupportedEncoding(_) => "unsupported_encoding",
            RewriteError::MemoryLimit => "memory_limit",
            RewriteError::ParsingAmbiguity => "parsing_ambiguity",
            RewriteError::InlineTooLarge(_) => "inline_too_large",
            RewriteError::NestedCapture => "nested_capture",
            RewriteError::ContentDecoding(_) => "content_decoding",
            RewriteError::ContentEncoding(_) => "content_encoding",
            RewriteError::Handler(_) => "handler",
            RewriteError::Poisoned => "poisoned",
        }
    }

    fn from_lol(e: RewritingError) -> Self {
        match e {
            RewritingError::MemoryLimitExceeded(_) => RewriteError::MemoryLimit,
            RewritingError::ParsingAmbiguity(_) => RewriteError::ParsingAmbiguity,
            RewritingError::ContentHandlerError(inner) => match inner.downcast::<RewriteError>() {
                Ok(e) => *e,
                Err(other) => RewriteError::Handler(other.to_string()),
            },
            #[allow(unreachable_patterns)]
            other => RewriteError::Handler(other.to_string()),
        }
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// lol_html's output, in pieces as small as one token. They are appended to
/// `buf`, which the stream reads between writes through `output_sink_mut` (our
/// lol_html patch, `.vendor/lol_html`): no lock per piece (issue 12: the lock was
/// ~4 % of the HTML path). `HtmlRewriter::end` consumes the rewriter, so what
/// comes out after the last read is moved to `done`, shared, when lol_html
/// signals the end with an empty piece.
struct Sink {
    buf: Vec<u8>,
    done: Arc<Mutex<Vec<u8>>>,
    encoding: DocumentEncoding,
}

/// The document's character encoding as lol_html settles it (header, BOM or
/// `<meta charset>`), shared with the handlers: URL query strings are encoded in
/// it, as browsers do.
#[derive(Clone)]
pub(crate) struct DocumentEncoding(Arc<Mutex<&'static Encoding>>);

impl Default for DocumentEncoding {
    fn default() -> Self {
        DocumentEncoding(Arc::new(Mutex::new(encoding_rs::UTF_8)))
    }
}

impl DocumentEncoding {
    pub(crate) fn get(&self) -> &'static Encoding {
        *lock(&self.0)
    }
}

impl OutputSink for Sink {
    fn handle_chunk(&mut self, chunk: &[u8]) {
        if chunk.is_empty() {
            lock(&self.done).append(&mut self.buf);
        } else {
            self.buf.extend_from_slice(chunk);
        }
    }

    fn set_encoding(&mut self, new_encoding: AsciiCompatibleEncoding) {
        *lock(&self.encoding.0) = new_encoding.into();
    }
}

/// A lol_html rewriter with our handlers, plus the buffers they write to.
struct Engine {
    rewriter: HtmlRewriter<'static, Sink>,
    /// The sink's output after the end of the document.
    done: Arc<Mutex<Vec<u8>>>,
    state: Arc<Mutex<State>>,
}

impl Engine {
    fn new(mut state: State, encoding: AsciiCompatibleEncoding, adjust_charset: bool) -> Engine {
        let max_memory = state.opts.max_memory_bytes;
        let document_encoding = DocumentEncoding::default();
        *lock(&document_encoding.0) = encoding.into();
        state.encoding = document_encoding.clone();
        let state = Arc::new(Mutex::new(state));
        let settings = Settings::new_send()
            .with_encoding(encoding)
            .with_memory_settings(
                MemorySettings::new()
                    .with_max_allowed_memory_usage(max_memory)
                    .with_graceful_bail_out_on_memory_limit_exceeded(false),
            )
            .with_strict(true)
            .with_adjust_charset_on_meta_tag(adjust_charset);
        let settings = handlers::install(settings, &state);
        let done = Arc::default();
        let sink = Sink { buf: Vec::new(), done: Arc::clone(&done), encoding: document_encoding };
        let rewriter = HtmlRewriter::new(settings, sink);
        Engine { rewriter, done, state }
    }

    /// Writes one chunk; returns the output so far. The output buffer is allocated
    /// once per chunk, sized for it (rewritten output is rarely much larger than its
    /// input), instead of regrowing as lol_html hands it over piece by piece; none is
    /// held between writes (a slow client's connection keeps no spare buffer).
    fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RewriteError> {
        self.rewriter.output_sink_mut().buf.reserve(chunk.len() + chunk.len() / 8);
        self.rewriter.write(chunk).map_err(RewriteError::from_lol)?;
        Ok(std::mem::take(&mut self.rewriter.output_sink_mut().buf))
    }

    /// Ends the document; returns the rest of the output.
    fn end(self) -> Result<(Vec<u8>, Arc<Mutex<State>>), RewritingError> {
        let Engine { rewriter, done, state } = self;
        rewriter.end()?;
        let out = std::mem::take(&mut *lock(&done));
        Ok((out, state))
    }
}

/// Where the stream is in its life.
enum Phase {
    /// Waiting for enough bytes to see a byte-order mark.
    Sniffing(Vec<u8>),
    Running(Box<Engine>),
    Done,
    Failed,
}

/// Rewrites one HTML document, chunk by chunk.
///
/// In `enforce` mode the output is the rewritten document. In `report` mode the
/// output is the input, byte for byte, while decisions are still recorded; an
/// analysis error in report mode only ends the analysis.
pub struct HtmlStream {
    policy: Arc<Policy>,
    page: PageContext,
    opts: RewriteOptions,
    /// Charset from the Content-Type header, if any.
    declared: Option<&'static Encoding>,
    phase: Phase,
    findings: Vec<Finding>,
}

impl std::fmt::Debug for HtmlStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HtmlStream").field("mode", &self.page.mode).finish_non_exhaustive()
    }
}

impl HtmlStream {
    /// `charset` is the Content-Type header's charset parameter, if any. Without
    /// one, a BOM or `<meta charset>` decides, as in a browser; a charset label
    /// lol_html cannot parse (UTF-16, ISO-2022-JP, replacement) is an error.
    pub fn new(
        policy: Arc<Policy>,
        page: PageContext,
        opts: RewriteOptions,
        charset: Option<&str>,
    ) -> Result<HtmlStream, RewriteError> {
        let declared = match charset {
            None => None,
            Some(label) => match Encoding::for_label(label.trim().as_bytes()) {
                Some(enc) if AsciiCompatibleEncoding::new(enc).is_some() => Some(enc),
                Some(enc) => return Err(RewriteError::UnsupportedEncoding(enc.name())),
                // An unknown label is ignored by browsers, which then sniff.
                None => None,
            },
        };
        Ok(HtmlStream { policy, page, opts, declared, phase: Phase::Sniffing(Vec::new()), findings: Vec::new() })
    }

    fn enforce(&self) -> bool {
        self.page.mode == Mode::Enforce
    }

    /// Decisions recorded since the last call.
    pub fn take_findings(&mut self) -> Vec<Finding> {
        if let Phase::Running(engine) = &self.phase {
            self.findings.append(&mut lock(&engine.state).findings);
        }
        std::mem::take(&mut self.findings)
    }

    /// Feeds one chunk; returns the output ready so far.
    pub fn write(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let result = self.write_inner(chunk);
        self.settle(result, chunk)
    }

    /// Ends the document; returns the remaining output.
    pub fn end(&mut self) -> Result<Vec<u8>, RewriteError> {
        let result = self.end_inner();
        self.settle(result, &[])
    }

    /// Applies the mode: in report mode the output is the input and errors only stop analysis.
    fn settle(&mut self, result: Result<Vec<u8>, RewriteError>, input: &[u8]) -> Result<Vec<u8>, RewriteError> {
        if self.enforce() {
            if result.is_err() {
                self.phase = Phase::Failed;
            }
            return result;
        }
        if result.is_err() {
            // The analysis ends here; the page still passes unchanged.
            self.phase = Phase::Failed;
        }
        Ok(input.to_vec())
    }

    fn write_inner(&mut self, chunk: &[u8]) -> Result<Vec<u8>, RewriteError> {
        match &mut self.phase {
            Phase::Sniffing(buf) => {
                buf.extend_from_slice(chunk);
                if buf.len() < 3 {
                    return Ok(Vec::new());
                }
                let buf = std::mem::take(buf);
                self.start(&buf)
            }
            Phase::Running(engine) => engine.write(chunk),
            Phase::Done | Phase::Failed => {
                if self.enforce() {
                    Err(RewriteError::Poisoned)
                } else {
                    Ok(Vec::new())
                }
            }
        }
    }

    fn end_inner(&mut self) -> Result<Vec<u8>, RewriteError> {
        let mut out = Vec::new();
        if let Phase::Sniffing(buf) = &mut self.phase {
            let buf = std::mem::take(buf);
            out = self.start(&buf)?;
        }
        match std::mem::replace(&mut self.phase, Phase::Done) {
            Phase::Running(engine) => {
                let (rest, state) = engine.end().map_err(RewriteError::from_lol)?;
                out.extend(rest);
                self.findings.append(&mut lock(&state).findings);
                Ok(out)
            }
            Phase::Failed if self.enforce() => Err(RewriteError::Poisoned),
            _ => Ok(out),
        }
    }

    /// Picks the encoding from the first bytes (a BOM beats the header, as in
    /// browsers) and starts the engine.
    fn start(&mut self, first: &[u8]) -> Result<Vec<u8>, RewriteError> {
        let (encoding, adjust) = match Encoding::for_bom(first) {
            Some((enc, _)) if enc == encoding_rs::UTF_8 => (enc, false),
            Some((enc, _)) => return Err(RewriteError::UnsupportedEncoding(enc.name())),
            None => match self.declared {
                Some(enc) => (enc, false),
                None => (encoding_rs::UTF_8, true),
            },
        };
        let ascii = AsciiCompatibleEncoding::new(encoding).ok_or(RewriteError::UnsupportedEncoding(encoding.name()))?;
        let state = State::new(self.policy.clone(), self.page.clone(), self.opts, 0);
        let mut engine = Engine::new(state, ascii, adjust);
        let out = engine.write(first)?;
        self.phase = Phase::Running(Box::new(engine));
        Ok(out)
    }
}

/// Rewrites a whole document in memory (CLI, tests). Errors as [`HtmlStream`].
pub fn rewrite_document(
    policy: &Arc<Policy>,
    page: &PageContext,
    input: &[u8],
    charset: Option<&str>,
) -> Result<(Vec<u8>, Vec<Finding>), RewriteError> {
    rewrite_chunked(policy, page, input, charset, &[input.len().max(1)])
}

/// Like [`rewrite_document`], feeding the input in chunks of the given sizes
/// (cycled), to test that chunk boundaries never change the result.
pub fn rewrite_chunked(
    policy: &Arc<Policy>,
    page: &PageContext,
    input: &[u8],
    charset: Option<&str>,
    sizes: &[usize],
) -> Result<(Vec<u8>, Vec<Finding>), RewriteError> {
    let mut stream = HtmlStream::new(policy.clone(), page.clone(), RewriteOptions::default(), charset)?;
    let mut out = Vec::with_capacity(input.len());
    let mut rest = input;
    let mut i = 0;
    while !rest.is_empty() {
        let n = sizes[i % sizes.len()].clamp(1, rest.len());
        out.extend(stream.write(&rest[..n])?);
        rest = &rest[n..];
        i += 1;
    }
    out.extend(stream.end()?);
    Ok((out, stream.take_findings()))
}

#[cfg(test)]
mod tests;
