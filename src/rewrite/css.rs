//! Finding and replacing the URLs in CSS text as a browser's CSS tokenizer
//! (CSS Syntax Level 3) reads them: `url(…)` tokens and `url("…")` functions
//! (function names may be escaped: `u\72l(`, `\75 rl(`), `@import "…"`, and the
//! strings inside `image-set()` / `-webkit-image-set()` / `src()`. Comments and
//! escapes inside strings and URLs are honoured.

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
    if !css.as_bytes().iter().any(|b| matches!(b, b'(' | b'@')) {
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

struct Scanner<'a> {
    s: &'a str,
    b: &'a [u8],
    i: usize,
    out: Vec<CssUrl>,
    /// Open function names (lowercased), innermost last; `""` for plain parens/blocks.
    funcs: Vec<String>,
    after_import: bool,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

fn is_name_start(c: char) -> bool {
    c.is_ascii_alphabetic() || c == '_' || !c.is_ascii()
}

fn is_name(c: char) -> bool {
    is_name_start(c) || c.is_ascii_digit() || c == '-'
}

impl<'a> Scanner<'a> {
    fn peek_char(&self, at: usize) -> Option<char> {
        self.s.get(at..).and_then(|r| r.chars().next())
    }

    fn valid_escape(&self, at: usize) -> bool {
        self.b.get(at) == Some(&b'\\') && !matches!(self.b.get(at + 1), None | Some(b'\n' | b'\r' | b'\x0c'))
    }

    fn starts_ident(&self, at: usize) -> bool {
        match self.peek_char(at) {
            Some('-') => match self.peek_char(at + 1) {
                Some(c) if is_name_start(c) || c == '-' => true,
                _ => self.valid_escape(at + 1),
            },
            Some(c) if is_name_start(c) => true,
            Some('\\') => self.valid_escape(at),
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
        match self.peek_char(self.i) {
            Some(c) => {
                self.i += c.len_utf8();
                c
            }
            None => '\u{FFFD}',
        }
    }

    /// Consumes a name; borrows it when it has no escapes (the common case).
    fn name(&mut self) -> std::borrow::Cow<'a, str> {
        let text: &'a str = self.s;
        let start = self.i;
        // Fast path: plain ASCII name characters.
        while self.b.get(self.i).is_some_and(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_') {
            self.i += 1;
        }
        match self.b.get(self.i) {
            Some(b'\\') => {}
            Some(b) if !b.is_ascii() => {}
            _ => return std::borrow::Cow::Borrowed(&text[start..self.i]),
        }
        let mut out = self.s[start..self.i].to_string();
        loop {
            match self.peek_char(self.i) {
                Some('\\') if self.valid_escape(self.i) => {
                    self.i += 1;
                    out.push(self.escape());
                }
                Some(c) if is_name(c) => {
                    self.i += c.len_utf8();
                    out.push(c);
                }
                _ => return std::borrow::Cow::Owned(out),
            }
        }
    }

    /// After the opening quote; returns the decoded string, or `None` for a bad string.
    fn string(&mut self, quote: u8) -> Option<String> {
        let mut out = String::new();
        loop {
            match self.b.get(self.i) {
                None => return Some(out),
                Some(&q) if q == quote => {
                    self.i += 1;
                    return Some(out);
                }
                Some(b'\n' | b'\r' | b'\x0c') => return None,
                Some(b'\\') => match self.b.get(self.i + 1) {
                    None => self.i += 1,
                    Some(b'\n' | b'\x0c') => self.i += 2,
                    Some(b'\r') => self.i += if self.b.get(self.i + 2) == Some(&b'\n') { 3 } else { 2 },
                    Some(_) => {
                        self.i += 1;
                        out.push(self.escape());
                    }
                },
                Some(_) => {
                    let c = self.peek_char(self.i).unwrap_or('\u{FFFD}');
                    self.i += c.len_utf8();
                    out.push(c);
                }
            }
        }
    }

    fn skip_ws(&mut self) {
        while self.b.get(self.i).is_some_and(|b| is_ws(*b)) {
            self.i += 1;
        }
    }

    /// After `url(` and whitespace, at a non-quote: the unquoted url token.
    /// Returns `(url, ok)`; a bad url (quote, paren or control inside) loads nothing
    /// but is still reported so it can be neutralised.
    fn url_token(&mut self) -> (String, bool) {
        let mut out = String::new();
        let mut ok = true;
        loop {
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
                Some(b'"' | b'\'' | b'(') => {
                    ok = false;
                    self.i += 1;
                }
                Some(b'\\') => {
                    if self.valid_escape(self.i) {
                        self.i += 1;
                        out.push(self.escape());
                    } else {
                        ok = false;
                        self.i += 1;
                    }
                }
                Some(b) if *b < 0x20 || *b == 0x7f => {
                    ok = false;
                    self.i += 1;
                }
                Some(_) => {
                    let c = self.peek_char(self.i).unwrap_or('\u{FFFD}');
                    self.i += c.len_utf8();
                    out.push(c);
                }
            }
        }
    }

    fn in_url_string_function(&self) -> bool {
        matches!(self.funcs.last().map(String::as_str), Some("image-set" | "-webkit-image-set" | "src"))
    }

    fn run(mut self) -> Vec<CssUrl> {
        while self.i < self.b.len() {
            let start = self.i;
            let b = self.b[self.i];
            if b == b'/' && self.b.get(self.i + 1) == Some(&b'*') {
                self.i = self.s[self.i + 2..].find("*/").map_or(self.b.len(), |e| self.i + 2 + e + 2);
                continue;
            }
            if is_ws(b) {
                self.skip_ws();
                continue;
            }
            if b == b'"' || b == b'\'' {
                self.i += 1;
                let s = self.string(b);
                if let Some(url) = s
                    && (self.after_import || self.in_url_string_function())
                {
                    self.out.push(CssUrl { range: start..self.i, url, is_string: true });
                }
                self.after_import = false;
                continue;
            }
            if b == b'@' && self.starts_ident(self.i + 1) {
                self.i += 1;
                self.after_import = self.name().eq_ignore_ascii_case("import");
                continue;
            }
            if self.starts_ident(self.i) {
                let name = self.name();
                if self.b.get(self.i) == Some(&b'(') {
                    let name = name.to_ascii_lowercase();
                    self.i += 1;
                    if name == "url" {
                        self.skip_ws();
                        match self.b.get(self.i) {
                            Some(&q @ (b'"' | b'\'')) => {
                                // url("…") is a function whose argument is the URL.
                                self.i += 1;
                                let url = self.string(q).unwrap_or_default();
                                self.skip_ws();
                                // Skip modifiers up to the closing paren.
                                while self.i < self.b.len() && self.b[self.i] != b')' {
                                    self.i += 1;
                                }
                                self.i = (self.i + 1).min(self.b.len());
                                self.out.push(CssUrl { range: start..self.i, url, is_string: false });
                            }
                            _ => {
                                let (url, _ok) = self.url_token();
                                self.out.push(CssUrl { range: start..self.i, url, is_string: false });
                            }
                        }
                    } else if name == "src" {
                        self.skip_ws();
                        if let Some(&q @ (b'"' | b'\'')) = self.b.get(self.i) {
                            self.i += 1;
                            let url = self.string(q).unwrap_or_default();
                            while self.i < self.b.len() && self.b[self.i] != b')' {
                                self.i += 1;
                            }
                            self.i = (self.i + 1).min(self.b.len());
                            self.out.push(CssUrl { range: start..self.i, url, is_string: false });
                        } else {
                            self.funcs.push(name);
                        }
                    } else {
                        self.funcs.push(name);
                    }
                }
                self.after_import = false;
                continue;
            }
            match b {
                b'(' | b'[' | b'{' => self.funcs.push(String::new()),
                b')' | b']' | b'}' => {
                    self.funcs.pop();
                }
                b';' => self.after_import = false,
                b'\\' => {
                    // A lone backslash that does not start an identifier is a delim.
                }
                _ => {}
            }
            let c = self.peek_char(self.i).map_or(1, char::len_utf8);
            self.i += c;
        }
        self.out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn urls(css: &str) -> Vec<String> {
        find_urls(css).into_iter().map(|u| u.url).collect()
    }

    #[test]
    fn plain_and_quoted_url_tokens() {
        assert_eq!(urls("a{background:url(https://e.example/a.png)}"), ["https://e.example/a.png"]);
        assert_eq!(urls("a{background:url( 'https://e.example/b' )}"), ["https://e.example/b"]);
        assert_eq!(urls("a{background:URL(\"x.png\")}"), ["x.png"]);
    }

    #[test]
    fn escaped_function_names_are_urls() {
        assert_eq!(urls("a{background:u\\72l(https://e.example/1)}"), ["https://e.example/1"]);
        assert_eq!(urls("a{background:\\75 rl(https://e.example/2)}"), ["https://e.example/2"]);
        assert_eq!(urls("a{background:\\55 \\52 \\4c (https://e.example/3)}"), ["https://e.example/3"]);
    }

    #[test]
    fn escapes_inside_urls_are_decoded() {
        assert_eq!(urls("a{b:url(https\\3a //e.example/x)}"), ["https://e.example/x"]);
        assert_eq!(urls("a{b:url('ht\\74 ps://e.example/y')}"), ["https://e.example/y"]);
    }

    #[test]
    fn import_forms() {
        assert_eq!(urls("@import 'https://e.example/a.css';"), ["https://e.example/a.css"]);
        assert_eq!(urls("@IMPORT url(https://e.example/b.css) screen;"), ["https://e.example/b.css"]);
        assert_eq!(urls("@import /* c */ \"https://e.example/c.css\";"), ["https://e.example/c.css"]);
        assert_eq!(urls("a{content:'https://not-a-load.example'}"), Vec::<String>::new());
    }

    #[test]
    fn image_set_and_src_strings() {
        assert_eq!(
            urls("a{b:image-set('https://e.example/1x.png' 1x, url(/2x.png) 2x)}"),
            ["https://e.example/1x.png", "/2x.png"]
        );
        assert_eq!(urls("a{b:-webkit-image-set(\"h.png\" 1x)}"), ["h.png"]);
        assert_eq!(urls("@font-face{src:src('https://e.example/f.woff2')}"), ["https://e.example/f.woff2"]);
    }

    #[test]
    fn comments_hide_urls() {
        assert_eq!(urls("/* url(https://e.example/x) */ a{}"), Vec::<String>::new());
    }

    #[test]
    fn rewrite_replaces_whole_tokens() {
        let css = "a{background:u\\72l(https://e.example/1) red} @import 'https://e.example/x.css';";
        let out = rewrite(css, |_| Some("data:,".to_string())).unwrap();
        assert_eq!(out, "a{background:url(\"data:,\") red} @import url(\"data:,\");");
        assert!(rewrite("a{color:red}", |_| Some(String::new())).is_none());
    }
}
