//! Finding and replacing the URLs in CSS text as a browser's CSS tokenizer
//! (CSS Syntax Level 3) reads them: `url(…)` tokens and `url("…")` functions
//! (function names may be escaped: `u\72l(`, `\75 rl(`), `@import "…"`, and the
//! strings inside `image-set()` / `-webkit-image-set()` / `src()`. Comments and
//! escapes inside strings and URLs are honoured.
//!
//! The scanner works on bytes. Every byte it stops at or steps over one at a
//! time is ASCII, and the multi-byte characters it crosses are crossed whole
//! (inside a run of name bytes, string bytes or URL bytes, which are all
//! `>= 0x80` for non-ASCII), so every position it slices at is a character
//! boundary. Nothing is allocated for the text it only has to skip: names that
//! are not functions, strings that are not URLs, comments.

use std::borrow::Cow;
use std::ops::Range;

/// One URL reference found in CSS.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CssUrl {
    /// The bytes to replace: the whole `url(…)` / `src(…)` / string token.
    pub range: Range<usize>,
    /// The URL with CSS escapes decoded.
    pub url: String,
    /// `true` when `range` is a bare string (`@import "…"`, image-set strings);
    /// a replacement then must stay a string or become a `url()`.
    pub is_string: bool,
}

/// Every URL reference in `css`, in order.
pub fn find_urls(css: &str) -> Vec<CssUrl> {
    // A URL needs a literal `(` (function or url token) or `@` (at-rule): escapes
    // cannot produce either. Most style attributes have neither.
    if memchr::memchr2(b'(', b'@', css.as_bytes()).is_none() {
        return Vec::new();
    }
    Scanner { s: css, b: css.as_bytes(), i: 0, out: Vec::new(), funcs: Vec::new(), after_import: false }.run()
}

/// Replaces each URL for which `replace` returns `Some(new_url)`; returns `None`
/// when nothing changed.
pub fn rewrite(css: &str, mut replace: impl FnMut(&str) -> Option<String>) -> Option<String> {
    let urls = find_urls(css);
    let mut out = String::with_capacity(css.len());
    let mut last = 0;
    let mut changed = false;
    for u in urls {
        if let Some(new) = replace(&u.url) {
            out.push_str(&css[last..u.range.start]);
            out.push_str("url(");
            push_css_string(&mut out, &new);
            out.push(')');
            last = u.range.end;
            changed = true;
        }
    }
    if !changed {
        return None;
    }
    out.push_str(&css[last..]);
    Some(out)
}

/// A double-quoted CSS string; quotes, backslashes and control characters escaped.
fn push_css_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '<' => out.push_str("\\3c "),
            c if c.is_control() => out.push_str(&format!("\\{:x} ", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A 256-entry byte class table from a predicate on the byte (built at compile time).
macro_rules! table {
    (|$b:ident| $pred:expr) => {{
        let mut t = [false; 256];
        let mut i = 0;
        while i < 256 {
            let $b = i as u8;
            t[i] = $pred;
            i += 1;
        }
        t
    }};
}

/// Bytes the loop must look at in any state. Every other byte (whitespace,
/// digits, `#`, `.`, `,`, `:`, `!`, `%`, `*`, `+`, `>`, controls, …) is ASCII
/// and starts neither a comment, string, at-rule, identifier nor block: the
/// loop only steps over it. Any non-ASCII character starts an identifier.
static INTERESTING: [bool; 256] = table!(|b| {
    b.is_ascii_alphabetic()
        || b >= 0x80
        || matches!(
            b,
            b'_' | b'-' | b'\\' | b'/' | b'"' | b'\'' | b'@' | b'(' | b'[' | b'{' | b')' | b']' | b'}' | b';'
        )
});

/// The main loop's fast path: bytes that cannot change the scanner's state
/// while `after_import` is false, all but `( ) [ ] { } / " ' @ \`. Scanning one
/// token at a time, the loop steps over such bytes one by one (whitespace,
/// digits, `#`, `.`, `:`, `,`, `-` not starting an identifier, …), clears
/// `after_import` at `;`, and consumes the identifiers that start in the run;
/// one that also ends inside the run (identifiers continue only over name bytes
/// and escapes, and an escape's `\` ends the run) has no effect but clearing
/// `after_import`. So the whole run is skipped, except that an identifier still
/// open at a `(` or `\` that ends the run matters (function name, escape): the
/// loop then goes back to the start of the trailing run of name bytes, which it
/// also reaches when scanning one token at a time (the byte before is a
/// stepped-over non-name byte, or the run's start), and scans on from there
/// token by token.
static QUIET: [bool; 256] =
    table!(|b| !matches!(b, b'(' | b')' | b'[' | b']' | b'{' | b'}' | b'/' | b'"' | b'\'' | b'@' | b'\\'));

/// `QUIET` plus `) [ ] { }`, for when the function stack is empty: opening a
/// bracket or block then pushes nothing and closing one pops nothing (see
/// `Scanner::funcs`). A `(` still ends the run (it may open a function).
static QUIET_TOP: [bool; 256] = table!(|b| !matches!(b, b'(' | b'/' | b'"' | b'\'' | b'@' | b'\\'));

/// Name code points as bytes: ASCII letters, digits, `-`, `_`, and every byte of
/// a non-ASCII character (lead and continuation bytes are all `>= 0x80`).
static NAME: [bool; 256] = table!(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_' || b >= 0x80);

/// Plain string content: everything but both quotes (only the opening one
/// closes; the other is handled as plain content one byte at a time), backslash
/// and the newlines that make a bad string.
static STRING_PLAIN: [bool; 256] = table!(|b| !matches!(b, b'"' | b'\'' | b'\\' | b'\n' | b'\r' | b'\x0c'));

/// Plain unquoted-URL content: everything but `)`, whitespace, quotes, `(`,
/// backslash and controls.
static URL_PLAIN: [bool; 256] = table!(|b| {
    !(matches!(b, b')' | b'"' | b'\'' | b'(' | b'\\' | b' ' | b'\t' | b'\n' | b'\r' | b'\x0c') || b < 0x20 || b == 0x7f)
});

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    out: Vec<CssUrl>,
    /// One entry per open function, parenthesis, bracket or block, innermost
    /// last: `true` when it is `image-set(`, `-webkit-image-set(` or `src(`,
    /// whose strings are URLs. Only "is the innermost entry `true`" is ever
    /// asked, and entries below the lowest `true` can never be the innermost
    /// `true` one again, so they are not kept: the stack is empty or starts
    /// with `true` (see `open`), and while it is empty brackets change nothing.
    funcs: Vec<bool>,
    after_import: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// Whether `b` starts an identifier on its own (a name-start code point): ASCII
/// letters, `_`, and the lead byte of any non-ASCII character.
fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_' || b >= 0x80
}

impl<'a> Scanner<'a> {
    /// Advances `self.i` while the byte at it is in `class`.
    fn run_of(&mut self, class: &[bool; 256]) {
        while self.b.get(self.i).is_some_and(|&b| class[usize::from(b)]) {
            self.i += 1;
        }
    }

    fn valid_escape(&self, at: usize) -> bool {
        self.b.get(at) == Some(&b'\\') && !matches!(self.b.get(at + 1), None | Some(b'\n' | b'\r' | b'\x0c'))
    }

    /// `at` is a character boundary, so a byte `>= 0x80` there is a lead byte.
    fn starts_ident(&self, at: usize) -> bool {
        match self.b.get(at) {
            Some(b'-') => match self.b.get(at + 1) {
                Some(&c) if is_name_start(c) || c == b'-' => true,
                _ => self.valid_escape(at + 1),
            },
            Some(&c) if is_name_start(c) => true,
            Some(b'\\') => self.valid_escape(at),
            _ => false,
        }
    }

    /// Consumes an escape (after the backslash) and returns the character.
    fn escape(&mut self) -> char {
        let start = self.i;
        let mut n = 0;
        while n < 6 && self.b.get(self.i).is_some_and(u8::is_ascii_hexdigit) {
            self.i += 1;
            n += 1;
        }
        if n > 0 {
            let v = u32::from_str_radix(&self.s[start..self.i], 16).unwrap_or(0xFFFD);
            if self.b.get(self.i) == Some(&b'\r') && self.b.get(self.i + 1) == Some(&b'\n') {
                self.i += 2;
            } else if self.b.get(self.i).is_some_and(|b| is_ws(*b)) {
                self.i += 1;
            }
            return match char::from_u32(v) {
                Some(c) if v != 0 => c,
                _ => '\u{FFFD}',
            };
        }
        match self.s.get(self.i..).and_then(|r| r.chars().next()) {
            Some(c) => {
                self.i += c.len_utf8();
                c
            }
            None => '\u{FFFD}',
        }
    }

    /// Consumes a name without decoding it; returns whether it had escapes.
    fn skip_name(&mut self) -> bool {
        let mut escaped = false;
        loop {
            self.run_of(&NAME);
            if !self.valid_escape(self.i) {
                return escaped;
            }
            self.i += 1;
            self.escape();
            escaped = true;
        }
    }

    /// The name that `skip_name` consumed from `start` (now at `self.i`);
    /// borrowed unless it had escapes, which are then decoded by consuming it
    /// again (ending at the same place).
    fn name_since(&mut self, start: usize, escaped: bool) -> Cow<'a, str> {
        let text: &'a str = self.s;
        if !escaped {
            return Cow::Borrowed(&text[start..self.i]);
        }
        self.i = start;
        let mut out = String::new();
        loop {
            let run = self.i;
            self.run_of(&NAME);
            out.push_str(&text[run..self.i]);
            if !self.valid_escape(self.i) {
                return Cow::Owned(out);
            }
            self.i += 1;
            out.push(self.escape());
        }
    }

    /// After the opening quote: consumes the string up to and including its
    /// closing quote (or the end), decoding it into `out` when given. A bad
    /// string (unescaped newline) returns `false`, leaving the newline unconsumed.
    /// Runs of plain bytes are skipped (and copied) whole.
    fn string(&mut self, quote: u8, mut out: Option<&mut String>) -> bool {
        loop {
            let run = self.i;
            self.run_of(&STRING_PLAIN);
            if let Some(o) = out.as_deref_mut() {
                o.push_str(&self.s[run..self.i]);
            }
            match self.b.get(self.i) {
                None => return true,
                Some(&q) if q == quote => {
                    self.i += 1;
                    return true;
                }
                Some(b'\n' | b'\r' | b'\x0c') => return false,
                Some(b'\\') => match self.b.get(self.i + 1) {
                    None => self.i += 1,
                    Some(b'\n' | b'\x0c') => self.i += 2,
                    Some(b'\r') => self.i += if self.b.get(self.i + 2) == Some(&b'\n') { 3 } else { 2 },
                    Some(_) => {
                        self.i += 1;
                        let c = self.escape();
                        if let Some(o) = out.as_deref_mut() {
                            o.push(c);
                        }
                    }
                },
                Some(&other_quote) => {
                    if let Some(o) = out.as_deref_mut() {
                        o.push(char::from(other_quote));
                    }
                    self.i += 1;
                }
            }
        }
    }

    /// A decoded string for a URL: empty when it is a bad string.
    fn url_string(&mut self, quote: u8) -> String {
        let mut url = String::new();
        if !self.string(quote, Some(&mut url)) {
            url.clear();
        }
        url
    }

    fn skip_ws(&mut self) {
        while self.b.get(self.i).is_some_and(|b| is_ws(*b)) {
            self.i += 1;
        }
    }

    /// Past the next `)` (or to the end): the modifiers after a `url("…")` string.
    fn skip_past_paren(&mut self) {
        self.i = memchr::memchr(b')', &self.b[self.i..]).map_or(self.b.len(), |k| self.i + k + 1);
    }

    /// At `/*`: past the next `*/` (searched from after the `/*`), or to the end.
    fn skip_comment(&mut self) {
        let mut from = self.i + 2;
        self.i = loop {
            match memchr::memchr(b'*', &self.b[from..]) {
                Some(k) if self.b.get(from + k + 1) == Some(&b'/') => break from + k + 2,
                Some(k) => from += k + 1,
                None => break self.b.len(),
            }
        };
    }

    /// After `url(` and whitespace, at a non-quote: the unquoted url token.
    /// Returns `(url, ok)`; a bad url (quote, paren or control inside) loads nothing
    /// but is still reported so it can be neutralised.
    fn url_token(&mut self) -> (String, bool) {
        let mut out = String::new();
        let mut ok = true;
        loop {
            let run = self.i;
            self.run_of(&URL_PLAIN);
            out.push_str(&self.s[run..self.i]);
            match self.b.get(self.i) {
                None => return (out, ok),
                Some(b')') => {
                    self.i += 1;
                    return (out, ok);
                }
                Some(b) if is_ws(*b) => {
                    self.skip_ws();
                    if !matches!(self.b.get(self.i), Some(b')') | None) {
                        ok = false;
                    }
                }
                Some(b'\\') if self.valid_escape(self.i) => {
                    self.i += 1;
                    out.push(self.escape());
                }
                // Quotes, `(`, an invalid escape, controls.
                Some(_) => {
                    ok = false;
                    self.i += 1;
                }
            }
        }
    }

    /// An opening function, parenthesis, bracket or block; a `false` entry on
    /// an empty stack is dropped (see `funcs`).
    fn open(&mut self, url_strings: bool) {
        if url_strings || !self.funcs.is_empty() {
            self.funcs.push(url_strings);
        }
    }

    fn in_url_string_function(&self) -> bool {
        self.funcs.last() == Some(&true)
    }

    /// At an identifier: consumes it, and when a `(` follows, the function
    /// opening (a whole `url(…)` / `src("…")`, or a stack entry).
    /// `image-set(`, `-webkit-image-set(` and `src(` without a string make
    /// the strings inside URLs.
    fn ident(&mut self) {
        let start = self.i;
        let escaped = self.skip_name();
        if self.b.get(self.i) != Some(&b'(') {
            return;
        }
        let end = self.i;
        let name = self.name_since(start, escaped);
        let (is_url, is_src) = (name.eq_ignore_ascii_case("url"), name.eq_ignore_ascii_case("src"));
        let is_image_set = name.eq_ignore_ascii_case("image-set") || name.eq_ignore_ascii_case("-webkit-image-set");
        self.i = end + 1;
        if is_url || is_src {
            self.skip_ws();
            if let Some(&q @ (b'"' | b'\'')) = self.b.get(self.i) {
                // url("…") / src("…") are functions whose first argument is
                // the URL; skip the modifiers up to the closing paren.
                self.i += 1;
                let url = self.url_string(q);
                self.skip_past_paren();
                self.out.push(CssUrl { range: start..self.i, url, is_string: false });
                return;
            }
            if is_url {
                let (url, _ok) = self.url_token();
                self.out.push(CssUrl { range: start..self.i, url, is_string: false });
                return;
            }
        }
        self.open(is_src || is_image_set);
    }

    fn run(mut self) -> Vec<CssUrl> {
        while self.i < self.b.len() {
            if self.after_import {
                self.step();
                continue;
            }
            // Fast path: see `QUIET`.
            let from = self.i;
            self.run_of(if self.funcs.is_empty() { &QUIET_TOP } else { &QUIET });
            if matches!(self.b.get(self.i), Some(b'(' | b'\\')) {
                let stop = self.i;
                while self.i > from && NAME[usize::from(self.b[self.i - 1])] {
                    self.i -= 1;
                }
                // Token by token up to and including the stop byte: taking the
                // fast path again inside the name run would only stop at the
                // same byte and go back to where the loop is, which is
                // quadratic when the run holds many tokens (`1-1-1-…-1(`).
                while self.i <= stop {
                    self.step();
                }
            } else {
                self.step();
            }
        }
        self.out
    }

    /// One token (or one stepped-over byte) the way the browser's tokenizer
    /// reads it, after skipping bytes that are not `INTERESTING`.
    fn step(&mut self) {
        let from = self.i;
        self.i += self.b[from..].iter().position(|&b| INTERESTING[usize::from(b)]).unwrap_or(self.b.len() - from);
        let Some(&b) = self.b.get(self.i) else { return };
        let start = self.i;
        match b {
            b'/' if self.b.get(self.i + 1) == Some(&b'*') => self.skip_comment(),
            b'"' | b'\'' => {
                self.i += 1;
                if self.after_import || self.in_url_string_function() {
                    let mut url = String::new();
                    if self.string(b, Some(&mut url)) {
                        self.out.push(CssUrl { range: start..self.i, url, is_string: true });
                    }
                } else {
                    self.string(b, None);
                }
                self.after_import = false;
            }
            b'@' if self.starts_ident(self.i + 1) => {
                self.i += 1;
                let escaped = self.skip_name();
                self.after_import = self.name_since(start + 1, escaped).eq_ignore_ascii_case("import");
            }
            _ if self.starts_ident(self.i) => {
                self.ident();
                self.after_import = false;
            }
            // Only ASCII is left: step over one byte.
            b'(' | b'[' | b'{' => {
                self.open(false);
                self.i += 1;
            }
            b')' | b']' | b'}' => {
                self.funcs.pop();
                self.i += 1;
            }
            b';' => {
                self.after_import = false;
                self.i += 1;
            }
            // `/` without `*`, `@` or `-` not starting an identifier, a lone backslash.
            _ => self.i += 1,
        }
    }
}

#[cfg(test)]
mod tests;
