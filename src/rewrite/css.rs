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

    /// Edge cases of the fast paths (string skipping, byte-class skipping, the
    /// function stack, escapes, comments); expected values recorded from the
    /// char-by-char scanner this one replaced.
    #[test]
    fn tricky_inputs_keep_their_ranges_and_urls() {
        #[allow(clippy::type_complexity)]
        let cases: Vec<(&str, Vec<(Range<usize>, &str, bool)>)> = vec![
            ("@import 'a\nb'; @import \"ok\";", vec![]),
            ("a{b:'x\nurl(y)}", vec![(7..13, "y", false)]),
            ("@import 'a\u{c}b' url(c)", vec![]),
            ("@import 'a\rb';", vec![]),
            ("@import 'a\\\r\nb';", vec![(8..15, "ab", true)]),
            ("@import 'a\\\rb';", vec![(8..14, "ab", true)]),
            ("@import 'a\\\nb\\\u{c}c';", vec![(8..17, "abc", true)]),
            ("@import '\\41\r\nb';", vec![(8..16, "Ab", true)]),
            ("@import '\\41\rx';", vec![(8..15, "Ax", true)]),
            ("@import '\\41\n\nx';", vec![]),
            ("@import 'a\\'b' 'c';", vec![(8..14, "a'b", true)]),
            ("@import \"a\\\"b\";", vec![(8..14, "a\"b", true)]),
            ("@import 'abc", vec![(8..12, "abc", true)]),
            ("@import 'abc\\", vec![(8..13, "abc", true)]),
            ("@import '\\", vec![(8..10, "", true)]),
            ("@import '\\0 \\d800 \\110000 \\1F600 x'", vec![(8..35, "\u{fffd}\u{fffd}\u{fffd}😀x", true)]),
            ("a{b:image-set(calc(1px + 2px) 'x.png' 1x)}", vec![(30..37, "x.png", true)]),
            ("a{b:image-set(f('y.png') 'z.png')}", vec![(25..32, "z.png", true)]),
            ("a{b:image-set('a' 1x) 'b'}", vec![(14..17, "a", true)]),
            (")))]]}}}image-set('c')", vec![(18..21, "c", true)]),
            ("[image-set(]'d'", vec![]),
            ("a{b:src( x 'y' \"z\")}", vec![(11..14, "y", true), (15..18, "z", true)]),
            ("a{b:src( 'y' x) 'w'}", vec![(4..15, "y", false)]),
            ("a{b:src(\"y\" 'v') 'w'}", vec![(4..16, "y", false)]),
            (
                "a{b:IMAGE-SET('x') -WEBKIT-image-SET('y') SRC('z')}",
                vec![(14..17, "x", true), (37..40, "y", true), (42..50, "z", false)],
            ),
            ("a{b:Src ('z')}", vec![]),
            ("a{b:image-set{'q'}}", vec![]),
            (
                "a{b:image-set( url(1) '2' url('3'))}",
                vec![(15..21, "1", false), (22..25, "2", true), (26..34, "3", false)],
            ),
            ("a{b:-webkit-image-set( '1' ) -moz-image-set('2') webkit-image-set('3')}", vec![(23..26, "1", true)]),
            ("é url(x)", vec![(3..9, "x", false)]),
            ("éurl(x) image-set('n')", vec![(19..22, "n", true)]),
            ("ürl(x)", vec![]),
            ("a{b:é\\72l(x)}", vec![]),
            ("@ïmport 'x'", vec![]),
            ("-éurl(x) -url(y) --url(z) -\\75rl(w) -5url(v)", vec![(39..45, "v", false)]),
            (
                "url(é😀) url('é') image-set('中.png')",
                vec![(0..11, "é😀", false), (12..21, "é", false), (32..41, "中.png", true)],
            ),
            ("\\u\\r\\l(x) u\\él(y) \\é(z)", vec![(0..9, "x", false)]),
            ("\u{2028}url(a)\u{feff}url(b)", vec![]),
            ("/* ' */ @import 'x';", vec![(16..19, "x", true)]),
            ("/* \" */ a{b:url(c)}", vec![(12..18, "c", false)]),
            ("/* url(a) */ url(b) /* url(c)", vec![(13..19, "b", false)]),
            ("/*/ url(a) */ url(b)", vec![(14..20, "b", false)]),
            (
                "/**/url(b)/***/url(c)/* * / */url(d)",
                vec![(4..10, "b", false), (15..21, "c", false), (30..36, "d", false)],
            ),
            ("@import /**/ 'x' /* 'y' */ 'z'", vec![(13..16, "x", true)]),
            ("a{b:'/*' url(x) '*/'}", vec![(9..15, "x", false)]),
            ("a / url(x) /", vec![(4..10, "x", false)]),
            ("a{content:\"url(x)\"}", vec![]),
            ("@import \"url(x)\";", vec![(8..16, "url(x)", true)]),
            ("a{content:'image-set(\"x\")' 'y'}", vec![]),
            ("@import url(a) 'b';", vec![(8..14, "a", false)]),
            ("@import (x) 'y'", vec![]),
            ("@import; 'z'", vec![]),
            ("@import 5 'z'", vec![(10..13, "z", true)]),
            ("@import screen 'z'", vec![]),
            ("@import, 'z'", vec![(9..12, "z", true)]),
            ("@import {'z'}", vec![(9..12, "z", true)]),
            ("@import 'a' 'b'", vec![(8..11, "a", true)]),
            ("@import\n'a'", vec![(8..11, "a", true)]),
            (
                "@\\69mport 'x' @\\69 mport 'y' @i\\6dport 'z'",
                vec![(10..13, "x", true), (25..28, "y", true), (39..42, "z", true)],
            ),
            ("@-import 'x' @ import 'y' @\\\n'z' @@import 'w'", vec![(42..45, "w", true)]),
            ("@import\\", vec![]),
            (
                "1url(x) 10pxurl(y) #url(z) .url(w) 1e3url(v)",
                vec![(1..7, "x", false), (20..26, "z", false), (28..34, "w", false)],
            ),
            (
                "a:url(x);b:url(y)!important,url(z)",
                vec![(2..8, "x", false), (11..17, "y", false), (28..34, "z", false)],
            ),
            (
                "url(a b) url(a\"b) url(a'b) url(a(b) url(a\\\nb) url( ) url()",
                vec![
                    (0..8, "ab", false),
                    (9..17, "ab", false),
                    (18..26, "ab", false),
                    (27..35, "ab", false),
                    (36..45, "ab", false),
                    (46..52, "", false),
                    (53..58, "", false),
                ],
            ),
            ("url(  a  ) url(\ta\n)", vec![(0..10, "a", false), (11..19, "a", false)]),
            (
                "url(a\\\r\nb) url(a\u{1}b) url(a\u{7f}b)",
                vec![(0..10, "ab", false), (11..19, "ab", false), (20..28, "ab", false)],
            ),
            ("url(a\\29 b) url(a\\) url(\\", vec![(0..11, "a)b", false), (12..25, "a)url", false)]),
            ("url(abc", vec![(0..7, "abc", false)]),
            (
                "url(\"a\" b c) url( 'a' ) url(\"a\nb\") x",
                vec![(0..12, "a", false), (13..23, "a", false), (24..34, "", false)],
            ),
            ("url('a'", vec![(0..7, "a", false)]),
            ("url('a' x", vec![(0..9, "a", false)]),
            ("url(\"a\\\"b\")", vec![(0..11, "a\"b", false)]),
            ("u\\72\r\nl(x) u\\72\rl(y) u\\72\n\nl(z)", vec![(0..10, "x", false), (11..20, "y", false)]),
            ("u\\000072l(x) u\\0000072l(y)", vec![(0..12, "x", false)]),
            ("url\\(x) url (y) url\n(z)", vec![]),
            ("\\\nurl(x)", vec![(2..8, "x", false)]),
            ("a\\", vec![]),
            ("\\", vec![]),
            ("(", vec![]),
            ("@", vec![]),
            ("@import", vec![]),
            ("", vec![]),
        ];
        for (css, want) in cases {
            let got: Vec<(Range<usize>, String, bool)> =
                find_urls(css).into_iter().map(|u| (u.range, u.url, u.is_string)).collect();
            let want: Vec<(Range<usize>, String, bool)> =
                want.into_iter().map(|(r, u, s)| (r, u.to_string(), s)).collect();
            assert_eq!(got, want, "{css:?}");
        }
    }
}
