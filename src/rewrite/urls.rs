//! Reading URL-bearing attribute values as a browser does: character references
//! decoded (lol_html hands values over raw), then WHATWG URL parsing against the
//! document base (the `url` crate strips surrounding whitespace and tab/newline,
//! treats backslashes as slashes for http(s), lowercases and IDNA-maps hosts).
//! Also the micro-syntaxes that carry URLs: `srcset`, `ping`, meta refresh.

use std::borrow::Cow;

use url::Url;

/// Decodes character references the way the HTML tokenizer does inside an
/// attribute value (legacy entities without `;` are not decoded before `=` or
/// an alphanumeric).
pub fn decode_attr(raw: &str) -> Cow<'_, str> {
    if raw.contains('&') { htmlize::unescape_attribute(raw) } else { Cow::Borrowed(raw) }
}

/// Escapes a value for `Element::set_attribute`, which escapes `"` itself but
/// not `&` (so a query string `a=1&copy=2` would otherwise be read back as `©`).
pub fn escape_attr(value: &str) -> Cow<'_, str> {
    if value.contains('&') { Cow::Owned(value.replace('&', "&amp;")) } else { Cow::Borrowed(value) }
}

/// Resolves a decoded attribute value against `base`. `None` where a browser
/// would fail to parse it (then nothing is fetched).
pub fn resolve(base: &Url, value: &str) -> Option<Url> {
    base.join(value).ok()
}

/// [`resolve`] for a document in `encoding`: the query is percent-encoded in the
/// document's encoding, as the URL parser's encoding override does in browsers.
pub fn resolve_in(base: &Url, value: &str, encoding: &'static encoding_rs::Encoding) -> Option<Url> {
    if encoding == encoding_rs::UTF_8 {
        return resolve(base, value);
    }
    fn encoder(encoding: &'static encoding_rs::Encoding) -> impl for<'s> Fn(&'s str) -> Cow<'s, [u8]> {
        move |s| encoding.encode(s).0
    }
    let encode = encoder(encoding);
    Url::options().base_url(Some(base)).encoding_override(Some(&encode)).parse(value).ok()
}

/// One `srcset` candidate: the URL text and its descriptors, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SrcsetCandidate<'a> {
    pub url: &'a str,
    pub descriptors: &'a str,
}

/// Splits a decoded `srcset` value per the HTML "parse a srcset attribute" steps:
/// candidates are separated by commas; a URL is a run of non-whitespace whose
/// trailing commas end the candidate; descriptors run to the next comma outside
/// parentheses.
pub fn parse_srcset(value: &str) -> Vec<SrcsetCandidate<'_>> {
    let bytes = value.as_bytes();
    let is_ws = |b: u8| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c');
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < bytes.len() && (is_ws(bytes[i]) || bytes[i] == b',') {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let start = i;
        while i < bytes.len() && !is_ws(bytes[i]) {
            i += 1;
        }
        let mut url_end = i;
        let mut ended_by_comma = false;
        while url_end > start && bytes[url_end - 1] == b',' {
            url_end -= 1;
            ended_by_comma = true;
        }
        let url = &value[start..url_end];
        let mut descriptors = "";
        if !ended_by_comma {
            let d_start = i;
            let mut depth = 0usize;
            while i < bytes.len() {
                match bytes[i] {
                    b'(' => depth += 1,
                    b')' => depth = depth.saturating_sub(1),
                    b',' if depth == 0 => break,
                    _ => {}
                }
                i += 1;
            }
            descriptors = value[d_start..i].trim_matches(|c: char| c.is_ascii_whitespace());
        }
        if !url.is_empty() {
            out.push(SrcsetCandidate { url, descriptors });
        }
    }
    out
}

/// The URL in a meta refresh `content` value (`5; url='…'`), per the HTML
/// "shared declarative refresh steps". `None` when it only reloads the page.
pub fn meta_refresh_url(content: &str) -> Option<&str> {
    let s = content.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit());
    let s = s.trim_start_matches(|c: char| c.is_ascii_digit() || c == '.');
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    let s = s.strip_prefix([';', ',']).unwrap_or(s);
    let s = s.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if s.is_empty() {
        return None;
    }
    let mut rest = s;
    if rest.len() >= 3 && rest[..3].eq_ignore_ascii_case("url") {
        let after = rest[3..].trim_start_matches(|c: char| c.is_ascii_whitespace());
        if let Some(after_eq) = after.strip_prefix('=') {
            rest = after_eq.trim_start_matches(|c: char| c.is_ascii_whitespace());
        }
    }
    match rest.chars().next() {
        Some(q @ ('"' | '\'')) => {
            let inner = &rest[1..];
            Some(inner.find(q).map_or(inner, |end| &inner[..end]))
        }
        Some(_) => Some(rest),
        None => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn page() -> Url {
        Url::parse("https://clinic.example/patient/intake").unwrap()
    }

    fn host_of(raw: &str) -> String {
        resolve(&page(), &decode_attr(raw)).unwrap().host_str().unwrap().to_string()
    }

    #[test]
    fn character_references_are_decoded_before_parsing() {
        assert_eq!(host_of("https&#x3a;//evil.example/x"), "evil.example");
        assert_eq!(host_of("&#104;ttps://evil.example/"), "evil.example");
        assert_eq!(host_of("https:&sol;&sol;evil.example/"), "evil.example");
        assert_eq!(host_of("https&colon;//evil.example/"), "evil.example");
    }

    #[test]
    fn legacy_entities_without_semicolon_follow_attribute_rules() {
        assert_eq!(decode_attr("/a?x=1&copy=2"), "/a?x=1&copy=2");
        assert_eq!(decode_attr("/a?x=1&copy;"), "/a?x=1\u{a9}");
    }

    #[test]
    fn whitespace_backslashes_and_case_are_read_as_a_browser_does() {
        assert_eq!(host_of("  https://evil.example/ "), "evil.example");
        assert_eq!(host_of("ht\ttps://ev\nil.example/"), "evil.example");
        assert_eq!(host_of("https:\\\\evil.example\\x.js"), "evil.example");
        assert_eq!(host_of("/\\evil.example/x.js"), "evil.example");
        assert_eq!(host_of("HTTPS://EVIL.Example/"), "evil.example");
        assert_eq!(host_of("//evil.example/x"), "evil.example");
        assert_eq!(host_of("https://clinic.example@evil.example/"), "evil.example");
        assert_eq!(host_of("https://ｅｖｉｌ.example/"), "evil.example");
    }

    #[test]
    fn srcset_candidates_split_like_the_spec() {
        let c = parse_srcset(" /a.png 1x, https://evil.example/b,c.png 2x,/d.png,, /e.png (x, y) 3x");
        let urls: Vec<&str> = c.iter().map(|c| c.url).collect();
        assert_eq!(urls, ["/a.png", "https://evil.example/b,c.png", "/d.png", "/e.png"]);
        assert_eq!(c[0].descriptors, "1x");
        assert_eq!(c[3].descriptors, "(x, y) 3x");
    }

    #[test]
    fn meta_refresh_url_forms() {
        assert_eq!(meta_refresh_url("0;url=https://evil.example/"), Some("https://evil.example/"));
        assert_eq!(meta_refresh_url("0; URL = 'https://evil.example/x' "), Some("https://evil.example/x"));
        assert_eq!(meta_refresh_url("5, https://evil.example/"), Some("https://evil.example/"));
        assert_eq!(meta_refresh_url("30"), None);
        assert_eq!(meta_refresh_url("1.5;url=\"/ok\""), Some("/ok"));
    }

    #[test]
    fn ampersands_are_escaped_for_attributes() {
        assert_eq!(escape_attr("/_tw/z/h/p?a=1&copy=2"), "/_tw/z/h/p?a=1&amp;copy=2");
    }
}
