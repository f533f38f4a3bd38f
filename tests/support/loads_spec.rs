//! The oracle's reading of the HTML Standard's own indexes, kept as data extracts
//! in `tests/spec/` (the rewriter's spec check reads the same files; no code is
//! shared with the rewriter): which `rel` keywords make a `<link>` load, and a
//! sweep that reports any URL-valued attribute of the attribute index that no
//! rule of the oracle covers.

use scraper::node::Element;

use super::{Cx, attr, local, parse_srcset};

/// `rel` keywords outside the HTML Standard's link-type index that never make
/// the browser fetch the `href` (registered extensions for crawlers and tools).
/// Any other keyword the index does not list counts as a load.
const EXTENSION_RELS_NOT_LOADED: &[&str] = &[
    // XFN metadata profile URL: never fetched.
    "profile",
    "previous",
    "me",
    "shortlink",
    "home",
    "index",
    "first",
    "last",
    "up",
    "start",
    "contents",
    "archives",
    "webmention",
    // The standard's synonym of `license` (a hyperlink).
    "copyright",
];

/// Path of a data extract of the HTML Standard kept under `tests/spec/`.
fn spec_extract(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/spec").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The non-comment rows of a `tests/spec` extract, split on tabs.
fn spec_rows(text: &str) -> impl Iterator<Item = Vec<&str>> {
    text.lines().filter(|l| !l.starts_with('#') && !l.trim().is_empty()).map(|l| l.split('\t').map(str::trim).collect())
}

/// Keyword -> effect on `<link>`, from the standard's link-type index
/// (`tests/spec/html-link-types.tsv`).
fn spec_link_types() -> &'static std::collections::HashMap<String, String> {
    static TYPES: std::sync::OnceLock<std::collections::HashMap<String, String>> = std::sync::OnceLock::new();
    TYPES.get_or_init(|| {
        let text = spec_extract("html-link-types.tsv");
        spec_rows(&text)
            .map(|r| (r[0].to_ascii_lowercase(), r.get(1).copied().unwrap_or_default().to_string()))
            .collect()
    })
}

/// Whether one `rel` keyword (lower case) makes a `<link>` load: the standard's
/// "External Resource" types do; its hyperlinks, annotations, internal resources
/// and types not allowed on `<link>` do not; keywords it does not list do unless
/// they are known extensions that are never fetched.
pub(super) fn rel_loads(token: &str) -> bool {
    match spec_link_types().get(token) {
        Some(effect) => effect == "External Resource",
        None => !EXTENSION_RELS_NOT_LOADED.contains(&token),
    }
}

/// `(element, attribute)` with a URL value in the standard's index that the code
/// above reports under its own rules (or gates: `link href` by `rel`, `input src`
/// by `type`).
const INDEX_HANDLED: &[(&str, &str)] = &[
    ("form", "action"),
    ("object", "data"),
    ("button", "formaction"),
    ("input", "formaction"),
    ("link", "href"),
    ("base", "href"),
    ("link", "imagesrcset"),
    ("a", "ping"),
    ("area", "ping"),
    ("video", "poster"),
    ("audio", "src"),
    ("embed", "src"),
    ("iframe", "src"),
    ("img", "src"),
    ("input", "src"),
    ("script", "src"),
    ("source", "src"),
    ("track", "src"),
    ("video", "src"),
    ("img", "srcset"),
    ("source", "srcset"),
];

/// URL-valued attributes of the standard's index that load nothing while the
/// page loads (`*`: every element).
const INDEX_NOT_LOADED: &[(&str, &str)] = &[
    // Hyperlinks: followed only when the visitor clicks.
    ("a", "href"),
    ("area", "href"),
    // Citations and microdata identifiers are never dereferenced.
    ("blockquote", "cite"),
    ("del", "cite"),
    ("ins", "cite"),
    ("q", "cite"),
    ("*", "itemid"),
    ("*", "itemprop"),
    ("*", "itemtype"),
];

/// `(elements, attribute, value)`: one row of the standard's attribute index.
type IndexRow = (Vec<String>, String, String);

/// Every row of the standard's attribute index (`tests/spec/html-attribute-index.tsv`)
/// whose value is a URL, URLs or image candidates. Elements are lower case; `*`
/// stands for "HTML elements".
fn spec_url_attributes() -> &'static [IndexRow] {
    static ROWS: std::sync::OnceLock<Vec<IndexRow>> = std::sync::OnceLock::new();
    ROWS.get_or_init(|| {
        let text = spec_extract("html-attribute-index.tsv");
        spec_rows(&text)
            .filter(|r| r.len() == 3 && (r[2].contains("URL") || r[2].contains("image candidate")))
            .map(|r| {
                let elements = r[1]
                    .split(';')
                    .map(|e| e.split(" (").next().unwrap_or_default().trim())
                    .map(|e| if e == "HTML elements" { "*".to_string() } else { e.to_ascii_lowercase() })
                    .collect();
                (elements, r[0].to_string(), r[2].to_string())
            })
            .collect()
    })
}

/// A URL-valued attribute of the standard's index that no rule above covers is
/// reported as a load: when the standard adds one, the oracle sees it before
/// anyone has decided whether it fetches.
pub(super) fn spec_index_loads(cx: &mut Cx<'_>, el: &Element) {
    index_loads(cx, el, spec_url_attributes());
}

fn index_loads(cx: &mut Cx<'_>, el: &Element, rows: &[IndexRow]) {
    let name = local(el);
    for (elements, attribute, value) in rows {
        let on_element = elements.iter().any(|e| e == name || e == "*");
        let covered = |list: &[(&str, &str)]| list.iter().any(|(e, a)| a == attribute && (*e == name || *e == "*"));
        if !on_element || covered(INDEX_HANDLED) || covered(INDEX_NOT_LOADED) {
            continue;
        }
        let Some(raw) = attr(el, attribute) else { continue };
        if value.contains("image candidate") {
            for u in parse_srcset(raw) {
                cx.push("spec index URL attribute", u);
            }
        } else if value.contains("space-separated") {
            for u in raw.split_ascii_whitespace() {
                cx.push("spec index URL attribute", u);
            }
        } else {
            cx.push("spec index URL attribute", raw);
        }
    }
}

#[cfg(test)]
mod tests {
    use url::Url;

    use super::super::{loads, parse_html};
    use super::*;

    const E: &str = "https://evil.example/x";

    fn page() -> Url {
        Url::parse("https://clinic.example/patient/intake").unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn url_attributes_the_index_has_and_no_rule_loads_are_not_reported() {
        for html in [
            "<blockquote cite=https://evil.example/x>q</blockquote>",
            "<q cite=https://evil.example/x>q</q> <del cite=https://evil.example/x>d</del>",
            "<span itemscope itemid=https://evil.example/x itemtype=https://evil.example/t itemprop=https://evil.example/p>",
            "<a href=https://evil.example/x>plain link</a>",
        ] {
            assert!(loads(html, &page(), true).is_empty(), "{html}");
        }
        assert!(spec_url_attributes().iter().any(|(e, a, _)| a == "ping" && e.iter().any(|e| e == "area")));
        assert!(spec_url_attributes().len() >= 15);
    }

    #[test]
    fn a_url_attribute_the_index_adds_is_reported_before_any_rule_names_it() {
        let rows: Vec<IndexRow> = vec![
            (vec!["img".into()], "fetchlater".into(), "Valid non-empty URL potentially surrounded by spaces".into()),
            (
                vec!["*".into()],
                "beacons".into(),
                "Set of space-separated tokens consisting of valid non-empty URLs".into(),
            ),
        ];
        let doc = parse_html("<img fetchlater=https://evil.example/x beacons='/a https://evil.example/b'>", true);
        let selector = scraper::Selector::parse("img").unwrap_or_else(|_| unreachable!());
        let img = doc.select(&selector).next().unwrap_or_else(|| unreachable!());
        let (base, mut out) = (page(), Vec::new());
        let mut cx = Cx { base: &base, scripting: true, depth: 0, nested_in: None, out: &mut out };
        index_loads(&mut cx, img.value(), &rows);
        let got: Vec<String> = out.iter().map(|l| l.url.to_string()).collect();
        assert_eq!(got, [E, "https://clinic.example/a", "https://evil.example/b"]);
    }
}
