//! The page a vendor request comes from, removed from what is sent to the
//! vendor. A widget's telemetry and ping calls carry the page URL (Zendesk's
//! `/embeddable_blip`, Intercom's `/messenger/web/ping` with `referer` in its
//! form body); on a clinic site that URL names the condition. The browser
//! tells tagwarden the page in the same-origin `Referer` of the first-party
//! request, so the exact strings to remove are known.
//!
//! What is replaced, in query strings and request bodies, matched ASCII
//! case-insensitively, longest first, in three spellings each — raw,
//! percent-encoded as `encodeURIComponent` does, and JSON-escaped (`\/`):
//!
//! | found                                   | becomes                  |
//! |-----------------------------------------|--------------------------|
//! | the page URL (with, without its query)  | the site origin + `/`    |
//! | its path + query, and its path          | `/`                      |
//! | its `?query`                            | nothing                  |
//!
//! so the vendor sees a visit to the site's home page: URLs stay URLs, and no
//! path or query of the page is left. A path shorter than [`MIN_PATH_BYTES`]
//! is not removed on its own (`/a` would match all over a JSON body); it is
//! still removed as part of the URL. Without a `Referer` (a
//! `Referrer-Policy: no-referrer` page) there is nothing to match.

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, MatchKind};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

/// Shortest page path removed on its own, bytes (`/` included).
pub const MIN_PATH_BYTES: usize = 4;

/// What `encodeURIComponent` leaves alone.
const URI_COMPONENT: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'!')
    .remove(b'~')
    .remove(b'*')
    .remove(b'\'')
    .remove(b'(')
    .remove(b')');

/// The strings that identify one page, and what replaces each.
#[derive(Debug, Clone)]
pub struct PageScrub {
    matcher: AhoCorasick,
    replacements: Vec<Vec<u8>>,
    longest: usize,
}

impl PageScrub {
    /// For the page at `page` (the `Referer`), on the site at `page`'s origin.
    /// `None` when the page has no path or query worth removing (the home page).
    pub fn for_page(page: &url::Url) -> Option<PageScrub> {
        let origin = page.origin().ascii_serialization();
        let home = format!("{origin}/");
        let path = page.path();
        let query = page.query().map(|q| format!("?{q}"));
        let path_query = format!("{path}{}", query.as_deref().unwrap_or_default());
        if path_query == "/" {
            return None;
        }
        let mut forms: Vec<(String, String)> = vec![(format!("{origin}{path_query}"), home.clone())];
        if let Some(q) = &query {
            forms.push((format!("{origin}{path}"), home.clone()));
            forms.push((path_query.clone(), "/".into()));
            if q.len() >= MIN_PATH_BYTES {
                forms.push((q.clone(), String::new()));
            }
        }
        if path.len() >= MIN_PATH_BYTES {
            forms.push((path.to_string(), "/".into()));
        }
        let mut needles: Vec<Vec<u8>> = Vec::new();
        let mut replacements = Vec::new();
        for (text, with) in &forms {
            let spellings = [
                (text.clone(), with.clone()),
                (
                    utf8_percent_encode(text, URI_COMPONENT).to_string(),
                    utf8_percent_encode(with, URI_COMPONENT).to_string(),
                ),
                (text.replace('/', "\\/"), with.replace('/', "\\/")),
            ];
            for (n, r) in spellings {
                if !needles.iter().any(|x| x.eq_ignore_ascii_case(n.as_bytes())) {
                    needles.push(n.into_bytes());
                    replacements.push(r.into_bytes());
                }
            }
        }
        let matcher = AhoCorasickBuilder::new()
            .match_kind(MatchKind::LeftmostLongest)
            .ascii_case_insensitive(true)
            .build(&needles)
            .ok()?;
        let longest = needles.iter().map(Vec::len).max().unwrap_or(0);
        Some(PageScrub { matcher, replacements, longest })
    }

    /// `data` with every form of the page replaced.
    pub fn apply(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        self.matcher.replace_all_with_bytes(data, &mut out, |m, _, out| {
            out.extend_from_slice(&self.replacements[m.pattern().as_usize()]);
            true
        });
        out
    }

    /// A streaming scrubber for a request body.
    pub fn body(&self) -> BodyScrub {
        BodyScrub { page: self.clone(), held: Vec::new() }
    }
}

/// [`PageScrub`] over a body that arrives in pieces: a form of the page split
/// across two pieces is still found. Holds back at most the longest form less
/// one byte between pieces.
#[derive(Debug)]
pub struct BodyScrub {
    page: PageScrub,
    held: Vec<u8>,
}

impl BodyScrub {
    /// The scrubbed bytes that can be sent now; with `end`, all the rest.
    pub fn push(&mut self, piece: &[u8], end: bool) -> Vec<u8> {
        self.held.extend_from_slice(piece);
        // A match starting before `settled` lies wholly in `held` (every form is at most
        // `longest` bytes), so it and everything before it can be decided now.
        let settled = if end { self.held.len() } else { self.held.len().saturating_sub(self.page.longest - 1) };
        let mut out = Vec::with_capacity(self.held.len());
        let mut pos = 0;
        for m in self.page.matcher.find_iter(&self.held) {
            if m.start() >= settled {
                break;
            }
            out.extend_from_slice(&self.held[pos..m.start()]);
            out.extend_from_slice(&self.page.replacements[m.pattern().as_usize()]);
            pos = m.end();
        }
        let cut = pos.max(settled);
        out.extend_from_slice(&self.held[pos..cut]);
        self.held.drain(..cut);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: &str = "https://clinic.example/conditions/hiv-care?visit=42";

    fn scrub() -> PageScrub {
        PageScrub::for_page(&url::Url::parse(PAGE).unwrap()).unwrap()
    }

    fn applied(s: &str) -> String {
        String::from_utf8(scrub().apply(s.as_bytes())).unwrap()
    }

    #[test]
    fn the_page_url_becomes_the_site_origin_in_every_spelling() {
        assert_eq!(applied(&format!("u={PAGE}&t=x")), "u=https://clinic.example/&t=x");
        assert_eq!(
            applied("referer=https%3A%2F%2Fclinic.example%2Fconditions%2Fhiv-care%3Fvisit%3D42&x=1"),
            "referer=https%3A%2F%2Fclinic.example%2F&x=1"
        );
        assert_eq!(
            applied(r#"{"url":"https:\/\/clinic.example\/conditions\/hiv-care?visit=42"}"#),
            r#"{"url":"https:\/\/clinic.example\/"}"#
        );
    }

    #[test]
    fn the_path_and_query_alone_are_removed_too() {
        assert_eq!(applied(r#"{"path":"/conditions/hiv-care","search":"?visit=42"}"#), r#"{"path":"/","search":""}"#);
        assert_eq!(applied("p=%2Fconditions%2Fhiv-care%3Fvisit%3D42"), "p=%2F");
        assert_eq!(applied("HTTPS://CLINIC.EXAMPLE/conditions/hiv-care"), "https://clinic.example/");
    }

    #[test]
    fn other_text_is_left_as_it_is() {
        let body = r#"{"text":"hello","url":"https://clinic.example/","other":"/conditions"}"#;
        assert_eq!(applied(body), body);
    }

    #[test]
    fn the_home_page_needs_no_scrubbing() {
        assert!(PageScrub::for_page(&url::Url::parse("https://clinic.example/").unwrap()).is_none());
    }

    #[test]
    fn a_page_url_split_at_every_byte_is_still_removed() {
        let body = format!("{{\"a\":1,\"url\":\"{}\",\"b\":\"{PAGE}\"}}", PAGE.replace('/', "\\/"));
        let want = applied(&body);
        assert!(!want.contains("hiv-care"), "{want}");
        for cut in 0..=body.len() {
            let mut s = scrub().body();
            let mut out = s.push(&body.as_bytes()[..cut], false);
            out.extend(s.push(&body.as_bytes()[cut..], false));
            out.extend(s.push(b"", true));
            assert_eq!(String::from_utf8(out).unwrap(), want, "split at {cut}");
        }
    }

    #[test]
    fn a_body_is_scrubbed_one_byte_at_a_time() {
        let body = format!("x={}&y=2", utf8_percent_encode(PAGE, URI_COMPONENT));
        let mut s = scrub().body();
        let mut out = Vec::new();
        for b in body.as_bytes() {
            out.extend(s.push(&[*b], false));
        }
        out.extend(s.push(b"", true));
        assert_eq!(String::from_utf8(out).unwrap(), "x=https%3A%2F%2Fclinic.example%2F&y=2");
    }
}
