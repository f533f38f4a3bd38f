//! What a tag or attribute does, read as a browser reads it: which `<link>`
//! rels load something, `javascript:` URLs, speculation rules, SVG animations
//! of `href`; and writing attributes back.

use lol_html::send::Element;

use crate::policy::{Construct, Finding, Reason};
use crate::rewrite::urls::{decode_attr, escape_attr};

/// `<tag a="v" …>` from the element's current attributes (values kept raw).
pub(super) fn serialize_start_tag(el: &Element<'_, '_>) -> String {
    let mut s = format!("<{}", el.tag_name_preserve_case());
    for a in el.attributes() {
        s.push(' ');
        s.push_str(&a.name_preserve_case());
        s.push_str("=\"");
        s.push_str(&a.value().replace('"', "&quot;"));
        s.push('"');
    }
    s.push('>');
    s
}

/// `javascript:` as a browser reads it (references decoded, whitespace and tab/newline ignored).
pub(super) fn is_javascript_url(raw: &str) -> bool {
    let decoded = decode_attr(raw);
    let cleaned: String = decoded
        .trim_start_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\n' | '\r'))
        .take(11)
        .collect();
    cleaned.to_ascii_lowercase().starts_with("javascript:")
}

pub(super) fn inline_handler_finding() -> Finding {
    Finding::unattributed(Construct::EventHandler, Reason::CspInline, String::new())
}

/// `<script type=speculationrules>`.
pub(super) fn is_speculation_rules(el: &Element<'_, '_>) -> bool {
    el.get_attribute("type").is_some_and(|t| decode_attr(&t).trim().eq_ignore_ascii_case("speculationrules"))
}

/// An SVG animation element whose target attribute is `href` / `xlink:href`.
pub(super) fn animates_href(el: &Element<'_, '_>) -> bool {
    el.get_attribute("attributename").is_some_and(|n| decode_attr(&n).trim().to_ascii_lowercase().ends_with("href"))
}

/// Whether a `<link>` makes the browser fetch or connect: any rel other than
/// purely navigational/metadata ones does (preconnect and dns-prefetch leak the host).
pub(super) fn link_loads(el: &Element<'_, '_>) -> bool {
    const NAVIGATIONAL: &[&str] = &[
        "alternate",
        "author",
        "bookmark",
        "canonical",
        "external",
        "help",
        "license",
        "next",
        "nofollow",
        "noopener",
        "noreferrer",
        "prev",
        "search",
        "shortlink",
        "tag",
        "amphtml",
        "me",
        "pingback",
        "edituri",
        "wlwmanifest",
        "home",
        "index",
        "profile",
        "privacy-policy",
        "terms-of-service",
        "hub",
        "self",
        "related",
        "opener",
        "payment",
        "webmention",
        "openid.server",
        "openid.delegate",
        "openid2.provider",
        "openid2.local_id",
        "up",
        "first",
        "last",
        "contents",
        "chapter",
        "section",
        "subsection",
        "appendix",
        "glossary",
        "copyright",
        "start",
        "top",
        "archives",
    ];
    let Some(rel) = el.get_attribute("rel") else {
        return false;
    };
    let rel = decode_attr(&rel).to_ascii_lowercase();
    rel.split_ascii_whitespace().any(|t| !NAVIGATIONAL.contains(&t))
}

/// Sets an attribute to an already-decoded value, replacing every duplicate.
pub(super) fn set_attr(el: &mut Element<'_, '_>, name: &str, value: &str) {
    el.remove_attribute(name);
    // Names come from our own constants or the document, so they are valid.
    let _ = el.set_attribute(name, &escape_attr(value));
}
