//! Response headers that make a browser load something: `Link` (preload,
//! preconnect, …) and `Refresh`. On HTML responses, entries pointing at hosts
//! the policy would remove are dropped — the header equivalent of `<link>` and
//! meta refresh.

use pingora::http::ResponseHeader;

use crate::policy::{Construct, Decision, PageContext, Policy};

/// Splits a `Link` header value into entries (commas inside `<…>` or quotes do not split).
fn split_links(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let (mut start, mut in_angle, mut in_quote) = (0, false, false);
    for (i, c) in value.char_indices() {
        match c {
            '<' if !in_quote => in_angle = true,
            '>' if !in_quote => in_angle = false,
            '"' if !in_angle => in_quote = !in_quote,
            ',' if !in_angle && !in_quote => {
                out.push(&value[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&value[start..]);
    out.into_iter().map(str::trim).filter(|s| !s.is_empty()).collect()
}

fn keep_url(policy: &Policy, ctx: &PageContext, construct: Construct, raw: &str) -> bool {
    match ctx.page_url.join(raw.trim()) {
        Ok(u) => policy.decide(ctx, construct, &u).0 == Decision::Keep,
        Err(_) => false,
    }
}

/// Drops `Link` entries and a `Refresh` header that lead off-site.
pub fn filter_headers(policy: &Policy, page: &url::Url, resp: &mut ResponseHeader) {
    let ctx = policy.page(page, policy.consent_default);
    let links: Vec<String> =
        resp.headers.get_all("link").iter().filter_map(|v| v.to_str().ok()).map(str::to_string).collect();
    if !links.is_empty() {
        let kept: Vec<String> = links
            .iter()
            .flat_map(|v| split_links(v))
            .filter(|entry| {
                let url = entry.strip_prefix('<').and_then(|r| r.split_once('>')).map(|(u, _)| u);
                url.is_some_and(|u| keep_url(policy, &ctx, Construct::Link, u))
            })
            .map(str::to_string)
            .collect();
        let _ = resp.remove_header("link");
        if !kept.is_empty() {
            let _ = resp.insert_header("link", kept.join(", "));
        }
    }
    let refresh = resp.headers.get("refresh").and_then(|v| v.to_str().ok()).map(str::to_string);
    if let Some(r) = refresh
        && let Some(target) = crate::rewrite::urls::meta_refresh_url(&r)
        && !keep_url(policy, &ctx, Construct::MetaRefresh, target)
    {
        let _ = resp.remove_header("refresh");
    }
    // Speculation rules fetched from a header could name any host.
    let _ = resp.remove_header("speculation-rules");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_values_split_outside_brackets() {
        assert_eq!(
            split_links("</a.css>; rel=preload, <https://e.example/x,y>; rel=\"preconnect, dns-prefetch\""),
            ["</a.css>; rel=preload", "<https://e.example/x,y>; rel=\"preconnect, dns-prefetch\""]
        );
    }
}
