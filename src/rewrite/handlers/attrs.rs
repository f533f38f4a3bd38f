//! Applying the [`fetch_attrs`] table to a start tag: deciding each URL an entry
//! names (single URLs, lists, `srcset`, CSS, `attributionsrc`, animation values,
//! `<base>`, meta refresh) and removing what the policy removes.

use lol_html::send::Element;

use super::State;
use crate::policy::{Construct, Decision, Finding, Policy, Reason};
use crate::rewrite::css;
use crate::rewrite::fetch_attrs::{self, FetchAttr, Gate, Removal, Value};
use crate::rewrite::urls::{decode_attr, escape_attr, meta_refresh_url, parse_srcset, resolve, resolve_in};

impl State {
    /// Decides one raw (undecoded) attribute value. A value no URL parser accepts
    /// is removed: we cannot prove where a browser would send it.
    pub(super) fn decide_raw(&mut self, construct: Construct, raw: &str) -> Decision {
        self.decide(construct, raw, true)
    }

    /// [`Self::decide_raw`]; `record: false` when another table entry records the
    /// same URL's decision (an element's own URL reused by `attributionsrc`).
    fn decide(&mut self, construct: Construct, raw: &str, record: bool) -> Decision {
        // Decoding character references cannot make or unmake a leading `data:`.
        if Policy::keeps_without_parsing(construct, raw) {
            return Decision::Keep;
        }
        let decoded = decode_attr(raw);
        if keeps_base_host(&decoded) && matches!(self.base.scheme(), "http" | "https") {
            // The base is always first-party (the page URL, or a `<base>` kept only
            // when first-party with the page's scheme), so `Policy::decide` keeps a
            // URL on its host without a finding; most links are such references.
            return Decision::Keep;
        }
        match resolve_in(&self.base, &decoded, self.encoding.get()) {
            Some(url) => {
                let (d, f) = self.policy.decide(&self.page, construct, &url);
                if record {
                    self.record(f);
                }
                d
            }
            None => {
                if record {
                    self.record(Some(Finding::unattributed(construct, Reason::UnsafeUrl, String::new())));
                }
                Decision::Remove(Reason::UnsafeUrl)
            }
        }
    }

    /// Decides a URL attribute and applies the decision. Returns `true` when the
    /// element was removed.
    fn url_attr(&mut self, el: &mut Element<'_, '_>, attr: &str, construct: Construct, on_remove: Removal) -> bool {
        let Some(raw) = el.get_attribute(attr) else {
            return false;
        };
        match self.decide_raw(construct, &raw) {
            Decision::Keep => false,
            Decision::FirstParty(u) => {
                if self.enforce {
                    set_attr(el, attr, &u);
                }
                false
            }
            Decision::Remove(_) => {
                if !self.enforce {
                    return false;
                }
                match on_remove {
                    Removal::Attribute => {
                        el.remove_attribute(attr);
                        false
                    }
                    Removal::Element => {
                        el.remove();
                        true
                    }
                }
            }
        }
    }

    /// Filters a list-valued attribute (`srcset`, `imagesrcset`, `ping`, `attributionsrc`).
    fn list_attr(&mut self, el: &mut Element<'_, '_>, attr: &str, construct: Construct, srcset: bool) {
        let Some(raw) = el.get_attribute(attr) else {
            return;
        };
        let decoded = decode_attr(&raw).into_owned();
        let items: Vec<(String, String)> = if srcset {
            parse_srcset(&decoded).into_iter().map(|c| (c.url.to_string(), c.descriptors.to_string())).collect()
        } else {
            decoded.split_ascii_whitespace().map(|u| (u.to_string(), String::new())).collect()
        };
        let mut kept = Vec::new();
        let mut changed = false;
        for (url, desc) in items {
            // Already decoded: escape `&` so decide_raw's decoding is the identity.
            match self.decide_raw(construct, &escape_attr(&url)) {
                Decision::Keep => kept.push((url, desc)),
                Decision::FirstParty(u) => {
                    kept.push((u, desc));
                    changed = true;
                }
                Decision::Remove(_) => changed = true,
            }
        }
        if !changed || !self.enforce {
            return;
        }
        if kept.is_empty() {
            el.remove_attribute(attr);
            return;
        }
        let sep = if srcset { ", " } else { " " };
        let value = kept
            .iter()
            .map(|(u, d)| if d.is_empty() { u.clone() } else { format!("{u} {d}") })
            .collect::<Vec<_>>()
            .join(sep);
        set_attr(el, attr, &value);
    }

    /// Rewrites the URLs in CSS text; `None` when nothing changes.
    pub(super) fn rewrite_css(&mut self, css_text: &str, construct: Construct) -> Option<String> {
        let mut changed = false;
        let out = css::rewrite(css_text, |url| match self.decide_raw(construct, &escape_attr(url)) {
            Decision::Keep => None,
            Decision::FirstParty(u) => {
                changed = true;
                Some(u)
            }
            Decision::Remove(_) => {
                changed = true;
                Some("data:,".to_string())
            }
        });
        if self.enforce && changed { out } else { None }
    }

    /// Applies one [`FetchAttr`] entry. Returns `true` when the element was removed.
    pub(super) fn apply(&mut self, el: &mut Element<'_, '_>, entry: &FetchAttr) -> bool {
        let open = match entry.gate {
            Gate::Always => true,
            Gate::LinkRelLoads => {
                el.get_attribute("rel").is_some_and(|r| fetch_attrs::link_rel_loads(&decode_attr(&r)))
            }
            Gate::HttpEquivRefresh => {
                el.get_attribute("http-equiv").is_some_and(|v| decode_attr(&v).trim().eq_ignore_ascii_case("refresh"))
            }
            Gate::AnimatesHref => animates_href(el),
        };
        if !open {
            return false;
        }
        let (attr, construct) = (entry.attribute, entry.construct);
        match entry.value {
            Value::Url => return self.url_attr(el, attr, construct, entry.removal),
            Value::UrlList => self.list_attr(el, attr, construct, false),
            Value::Srcset => self.list_attr(el, attr, construct, true),
            Value::AttributionSrc { own, own_recorded } => self.attribution_src(el, attr, construct, own, own_recorded),
            Value::Css if attr == "*" => self.css_function_attrs(el, construct),
            Value::Css => self.css_attr(el, attr, construct),
            Value::RefreshContent => self.meta_refresh(el),
            Value::BaseHref => self.base_element(el),
            Value::Document => self.srcdoc(el),
            Value::AnimationValues => self.animation_values(el, attr, construct),
        }
        el.removed()
    }

    /// `attributionsrc`: every listed URL is decided like `ping`. Its presence, even
    /// empty, also makes the element's own request a registration with that URL's
    /// host, so the attribute stays only while every own URL (`own`) is kept as it
    /// is; an element without those URLs requests nothing.
    fn attribution_src(
        &mut self,
        el: &mut Element<'_, '_>,
        attr: &str,
        construct: Construct,
        own: &[&str],
        own_recorded: bool,
    ) {
        if !el.has_attribute(attr) {
            return;
        }
        let mut own_kept = true;
        for name in own {
            let Some(raw) = el.get_attribute(name) else { continue };
            let decoded = decode_attr(&raw).into_owned();
            let urls: Vec<&str> =
                if *name == "srcset" { parse_srcset(&decoded).iter().map(|c| c.url).collect() } else { vec![&decoded] };
            for url in urls {
                if self.decide(construct, &escape_attr(url), own_recorded) != Decision::Keep {
                    own_kept = false;
                }
            }
        }
        self.list_attr(el, attr, construct, false);
        if !own_kept && self.enforce {
            el.remove_attribute(attr);
        }
    }

    /// CSS in one attribute (`style`).
    fn css_attr(&mut self, el: &mut Element<'_, '_>, name: &str, construct: Construct) {
        let Some(raw) = el.get_attribute(name) else { return };
        let decoded = decode_attr(&raw).into_owned();
        if let Some(new) = self.rewrite_css(&decoded, construct) {
            set_attr(el, name, &new);
        }
    }

    /// SVG presentation attributes (fill, stroke, filter, mask, clip-path, marker-*, …)
    /// take CSS values, so `url()` in any attribute may fetch: every attribute holding
    /// a CSS function is read as CSS (`style` has its own entry).
    fn css_function_attrs(&mut self, el: &mut Element<'_, '_>, construct: Construct) {
        let names: Vec<String> = el
            .attributes()
            .iter()
            .filter(|a| a.value().contains('('))
            .map(|a| a.name())
            .filter(|n| n != "style")
            .collect();
        for name in names {
            self.css_attr(el, &name, construct);
        }
    }

    /// SVG animation `values` that become an href: the element goes unless every
    /// value is kept as it is.
    fn animation_values(&mut self, el: &mut Element<'_, '_>, attr: &str, construct: Construct) {
        let Some(values) = el.get_attribute(attr) else { return };
        let decoded = decode_attr(&values).into_owned();
        let all_kept = decoded.split(';').map(str::trim).filter(|v| !v.is_empty()).fold(true, |ok, v| {
            let d = self.decide_raw(construct, &escape_attr(v));
            ok && d == Decision::Keep
        });
        if !all_kept && self.enforce {
            el.remove();
        }
    }

    /// `<base href>`: the first first-party one becomes the base URL; one pointing
    /// off-site (or to another scheme) is removed, so relative URLs stay on the site.
    fn base_element(&mut self, el: &mut Element<'_, '_>) {
        let Some(raw) = el.get_attribute("href") else {
            return;
        };
        let decoded = decode_attr(&raw);
        let resolved = resolve(&self.page.page_url, &decoded);
        // A base with another scheme than the page's changes how scheme-relative-looking
        // values (`https:evil.example/p`) resolve in pings and form actions read later.
        let first_party = resolved.as_ref().filter(|u| {
            u.scheme() == self.page.page_url.scheme()
                && self
                    .page
                    .first_party
                    .contains(&crate::policy::host::normalize_host(u.host_str().unwrap_or_default()))
        });
        match first_party {
            Some(u) => {
                if !self.base_fixed {
                    self.base = u.clone();
                    self.base_fixed = true;
                }
            }
            None => {
                let host = resolved.as_ref().and_then(|u| u.host_str()).unwrap_or_default().to_string();
                self.record(Some(Finding::unattributed(Construct::Base, Reason::OffsiteBase, host)));
                if self.enforce {
                    el.remove();
                }
            }
        }
    }

    /// `<meta http-equiv=refresh>` (the table's gate has checked `http-equiv`).
    fn meta_refresh(&mut self, el: &mut Element<'_, '_>) {
        let Some(content) = el.get_attribute("content") else {
            return;
        };
        let content = decode_attr(&content).into_owned();
        let Some(target) = meta_refresh_url(&content) else {
            return;
        };
        match self.decide_raw(Construct::MetaRefresh, &escape_attr(target)) {
            Decision::Keep => {}
            // A refresh to a vendor, even first-party, is a navigation the rules did not ask for.
            // `meta` is a breakout tag (see `Removal::Attribute`): the tag stays, the refresh goes.
            Decision::FirstParty(_) | Decision::Remove(_) => {
                if self.enforce {
                    el.remove_attribute("http-equiv");
                    el.remove_attribute("content");
                }
            }
        }
    }
}

/// Whether a decoded URL value, resolved against an `http(s)` base, keeps the
/// base's host whatever follows: a path-absolute (`/p`), query-only (`?q`) or
/// fragment-only (`#f`) reference, after the C0 controls and spaces the URL parser
/// strips. Not `//host` or `/\host` (backslash is a slash in http URLs), and not
/// when a tab or newline follows the first `/`: the parser drops those, and
/// `/<tab>/host` is `//host`.
fn keeps_base_host(decoded: &str) -> bool {
    let v = decoded.trim_start_matches(|c: char| c <= ' ').as_bytes();
    match v {
        [b'?' | b'#', ..] | [b'/'] => true,
        [b'/', second, ..] => !matches!(second, b'/' | b'\\' | b'\t' | b'\n' | b'\r'),
        _ => false,
    }
}

/// Sets an attribute to an already-decoded value, replacing every duplicate.
pub(super) fn set_attr(el: &mut Element<'_, '_>, name: &str, value: &str) {
    el.remove_attribute(name);
    // Names come from our own constants or the document, so they are valid.
    let _ = el.set_attribute(name, &escape_attr(value));
}

/// An SVG animation element whose target attribute is `href` / `xlink:href`.
fn animates_href(el: &Element<'_, '_>) -> bool {
    el.get_attribute("attributename").is_some_and(|n| decode_attr(&n).trim().to_ascii_lowercase().ends_with("href"))
}

#[cfg(test)]
mod tests {
    use super::keeps_base_host;

    /// Where the shortcut applies, the URL parser agrees the host stays the base's.
    #[test]
    fn base_host_shortcut_agrees_with_the_parser() {
        let base = url::Url::parse("https://clinic.example/dir/page?x#y").unwrap();
        let kept = ["/", "/p", " \x01/p//evil.example", "/p\t/x", "?q=//evil.example", "#//evil.example", "/%2F/evil"];
        let not = ["//evil.example/x", "/\\evil.example", "/\t/evil.example", "/\n/evil.example", "\\\\evil", "p", ""];
        for v in kept {
            assert!(keeps_base_host(v), "{v:?}");
            assert_eq!(base.join(v).unwrap().host_str(), Some("clinic.example"), "{v:?}");
        }
        for v in not {
            assert!(!keeps_base_host(v), "{v:?}");
        }
        assert_eq!(base.join("/\t/evil.example").unwrap().host_str(), Some("evil.example"), "why tabs are refused");
    }
}
