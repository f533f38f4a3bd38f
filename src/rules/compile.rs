//! Compiling parsed rule files into a [`Policy`]: every semantic check (ids,
//! categories, host patterns, globs, regexes, overlapping claims, CSP sources),
//! each mistake located in its file. The rules layer depends on the policy
//! types it builds; the policy knows nothing about files.

use std::collections::HashMap;

use base64::Engine as _;
use globset::{GlobBuilder, GlobMatcher};

use super::schema::{PinSection, RouteCspSection, VendorFile};
use super::{RuleError, RuleErrors, RuleSources, SourceFile};
use crate::policy::signatures::{self, Signatures};
use crate::policy::{AssetPin, Category, ConsentSet, HostPattern, Policy, Route, RouteCsp, Vendor, VendorIdx};

/// Validates parsed rule files and builds the policy, or returns every error.
pub fn compile(src: &RuleSources) -> Result<Policy, RuleErrors> {
    let mut errors = Vec::new();
    let site_src = &src.site_source;

    let mut vendors = Vec::new();
    let mut ids: HashMap<String, (usize, &SourceFile)> = HashMap::new();
    for (file, v) in &src.vendors {
        if let Some(vendor) = compile_vendor(file, v, &mut errors) {
            match ids.get(&vendor.id) {
                Some((_, other)) => errors.push(file.error_at(
                    v.id.span(),
                    format!("id: duplicate vendor id `{}` (also in {})", vendor.id, other.path.display()),
                )),
                None => {
                    ids.insert(vendor.id.clone(), (vendors.len(), file));
                    vendors.push(vendor);
                }
            }
        }
    }
    check_overlaps(&src.vendors, &vendors, &mut errors);

    let site = &src.site.site;
    let mut first_party = Vec::new();
    for (i, h) in site.first_party.iter().enumerate() {
        match HostPattern::parse(h.get_ref()) {
            Ok(p) => first_party.push(p),
            Err(e) => errors.push(site_src.error_at(h.span(), format!("site.first_party[{i}]: {e}"))),
        }
    }
    let prefix = site.first_party_prefix.get_ref().trim_end_matches('/').to_string();
    if !prefix.starts_with('/') || prefix.len() < 2 || prefix.contains(['?', '#', '*', ' ']) {
        errors.push(site_src.error_at(
            site.first_party_prefix.span(),
            format!(
                "site.first_party_prefix: `{}` must be an absolute path such as `/_tw`",
                site.first_party_prefix.get_ref()
            ),
        ));
    }

    let mut consent = Vec::new();
    for (i, c) in src.site.consent.default.iter().enumerate() {
        match Category::parse(c.get_ref()) {
            Some(cat) => consent.push(cat),
            None => errors
                .push(site_src.error_at(c.span(), format!("consent.default[{i}]: unknown category `{}`", c.get_ref()))),
        }
    }
    let mut gpc_opt_out = Vec::new();
    for (i, c) in src.site.consent.gpc_opt_out.iter().enumerate() {
        match Category::parse(c.get_ref()) {
            Some(Category::Essential) => errors.push(site_src.error_at(
                c.span(),
                format!("consent.gpc_opt_out[{i}]: `essential` is always granted and cannot be opted out of"),
            )),
            Some(cat) => gpc_opt_out.push(cat),
            None => errors.push(
                site_src.error_at(c.span(), format!("consent.gpc_opt_out[{i}]: unknown category `{}`", c.get_ref())),
            ),
        }
    }
    let cookie = src.site.consent.cookie.get_ref();
    if cookie.is_empty() || !cookie.bytes().all(|b| b.is_ascii_alphanumeric() || b"_-.".contains(&b)) {
        errors.push(site_src.error_at(
            src.site.consent.cookie.span(),
            format!("consent.cookie: `{cookie}` is not a valid cookie name"),
        ));
    }

    let mut routes = Vec::new();
    for (i, r) in src.site.routes.iter().enumerate() {
        let matcher =
            match glob(r.path.get_ref()) {
                Ok(m) if r.path.get_ref().starts_with('/') => Some(m),
                Ok(_) => {
                    errors.push(site_src.error_at(
                        r.path.span(),
                        format!("route[{i}].path: `{}` must start with `/`", r.path.get_ref()),
                    ));
                    None
                }
                Err(e) => {
                    errors.push(site_src.error_at(r.path.span(), format!("route[{i}].path: invalid glob: {e}")));
                    None
                }
            };
        // `phi = true` and where it is written, for the BAA guard's message.
        let phi = r.phi.as_ref().filter(|p| *p.get_ref()).map(|p| super::line_col(&site_src.text, p.span().start).0);
        let mut allow = Vec::new();
        for (j, id) in r.allow.iter().enumerate() {
            match ids.get(id.get_ref()) {
                Some((idx, file)) => {
                    if let Some(phi_line) = phi
                        && !vendors[*idx].baa
                    {
                        errors.push(site_src.error_at(
                            id.span(),
                            format!(
                                "route[{i}].allow[{j}]: vendor `{}` has no BAA (`baa = true` in {}) but route[{i}] \
                                 says `phi = true` (line {}): pages with health information may only load \
                                 vendors that signed a Business Associate Agreement",
                                id.get_ref(),
                                file.path.display(),
                                phi_line,
                            ),
                        ));
                    }
                    allow.push(*idx);
                }
                // A vendor whose own file has errors is reported there, not again here.
                None if src.vendors.iter().any(|(_, v)| v.id.get_ref() == id.get_ref()) => {}
                None => errors.push(
                    site_src
                        .error_at(id.span(), format!("route[{i}].allow[{j}]: unknown vendor id `{}`", id.get_ref())),
                ),
            }
        }
        let csp = compile_route_csp(site_src, i, &r.csp, &mut errors);
        if let Some(matcher) = matcher {
            routes.push(Route {
                pattern: r.path.get_ref().clone(),
                matcher,
                allow,
                mode: r.mode.unwrap_or(site.mode),
                phi: phi.is_some(),
                csp,
            });
        }
    }
    if src.site.routes.is_empty() {
        errors
            .push(site_src.error("route: at least one [[route]] is required (use path = \"/**\" for the whole site)"));
    }

    let mut compiled_signatures = Vec::new();
    for (file, v) in &src.vendors {
        for (j, s) in v.inline_signatures.iter().enumerate() {
            match signatures::compile(s.get_ref()) {
                Ok(regex) => {
                    if let Some((vidx, _)) = ids.get(v.id.get_ref()) {
                        compiled_signatures.push((regex, *vidx));
                    }
                }
                Err(e) => errors.push(file.error_at(
                    s.span(),
                    format!("inline_signatures[{j}]: invalid regex: {}", e.to_string().lines().last().unwrap_or("")),
                )),
            }
        }
    }

    if !errors.is_empty() {
        return Err(RuleErrors(errors));
    }
    let signatures = Signatures::new(compiled_signatures)
        .map_err(|e| RuleErrors(vec![site_src.error(format!("inline signatures: {e}"))]))?;

    let mut exact_hosts = HashMap::new();
    let mut suffix_hosts = Vec::new();
    let mut url_claims: HashMap<String, Vec<(usize, GlobMatcher, VendorIdx)>> = HashMap::new();
    for (idx, v) in vendors.iter().enumerate() {
        for h in &v.hosts {
            match h {
                HostPattern::Exact(h) => {
                    exact_hosts.insert(h.clone(), idx);
                }
                HostPattern::Suffix(s) => suffix_hosts.push((s.clone(), idx)),
            }
        }
        for (host, pat, m) in &v.urls {
            url_claims.entry(host.clone()).or_default().push((specificity(pat), m.clone(), idx));
        }
    }
    suffix_hosts.sort_by_key(|(s, _)| std::cmp::Reverse(s.len()));
    for claims in url_claims.values_mut() {
        claims.sort_by_key(|(s, _, _)| std::cmp::Reverse(*s));
    }

    Ok(Policy {
        version: src.version.clone(),
        site_name: site.name.get_ref().clone(),
        first_party,
        prefix,
        consent_cookie: cookie.clone(),
        consent_default: ConsentSet::from_categories(consent),
        gpc_opt_out,
        csp_enabled: src.site.csp.enabled,
        webrtc: src.site.csp.webrtc,
        dns_prefetch_off: src.site.csp.dns_prefetch_off,
        routes,
        vendors,
        exact_hosts,
        suffix_hosts,
        url_claims,
        signatures,
    })
}

/// Validates `[route.csp]`: host-sources only (no keywords, no `;`/`,`/quotes that
/// could inject directives), and `sha256-`/`sha384-`/`sha512-` base64 hashes.
fn compile_route_csp(
    file: &SourceFile,
    route: usize,
    section: &RouteCspSection,
    errors: &mut Vec<RuleError>,
) -> RouteCsp {
    let sources = |key: &str, list: &[toml::Spanned<String>], errors: &mut Vec<RuleError>| -> Vec<String> {
        let mut out = Vec::new();
        for (j, s) in list.iter().enumerate() {
            let v = s.get_ref();
            if valid_host_source(v) {
                out.push(v.clone());
            } else {
                errors.push(file.error_at(
                    s.span(),
                    format!(
                        "route[{route}].csp.{key}[{j}]: `{v}` is not a CSP host-source (e.g. `https://api.example.org`)"
                    ),
                ));
            }
        }
        out
    };
    let mut hashes = Vec::new();
    for (j, h) in section.unsafe_hashes.iter().enumerate() {
        if valid_hash_source(h.get_ref()) {
            hashes.push(h.get_ref().clone());
        } else {
            errors.push(file.error_at(
                h.span(),
                format!("route[{route}].csp.unsafe_hashes[{j}]: `{}` is not `sha256-<base64>`", h.get_ref()),
            ));
        }
    }
    RouteCsp {
        connect_src: sources("connect_src", &section.connect_src, errors),
        img_src: sources("img_src", &section.img_src, errors),
        script_src: sources("script_src", &section.script_src, errors),
        style_src: sources("style_src", &section.style_src, errors),
        font_src: sources("font_src", &section.font_src, errors),
        frame_src: sources("frame_src", &section.frame_src, errors),
        media_src: sources("media_src", &section.media_src, errors),
        unsafe_hashes: hashes,
        webrtc: section.webrtc,
    }
}

fn glob(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern).literal_separator(true).build()?.compile_matcher())
}

/// Longer literal text before the first wildcard = more specific.
fn specificity(pattern: &str) -> usize {
    pattern.find(['*', '?', '[', '{']).unwrap_or(pattern.len() + 1)
}

fn compile_vendor(file: &SourceFile, v: &VendorFile, errors: &mut Vec<RuleError>) -> Option<Vendor> {
    let before = errors.len();
    let id = v.id.get_ref();
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_') {
        errors.push(file.error_at(v.id.span(), format!("id: `{id}` must be lowercase letters, digits and `_`")));
    }
    let category = Category::parse(v.category.get_ref());
    if category.is_none() {
        let all: Vec<&str> = Category::ALL.iter().map(|c| c.as_str()).collect();
        errors.push(file.error_at(
            v.category.span(),
            format!("category: unknown category `{}` (one of: {})", v.category.get_ref(), all.join(", ")),
        ));
    }
    let mut hosts = Vec::new();
    for (i, h) in v.hosts.iter().enumerate() {
        match HostPattern::parse(h.get_ref()) {
            Ok(p) => hosts.push(p),
            Err(e) => errors.push(file.error_at(h.span(), format!("hosts[{i}]: {e}"))),
        }
    }
    let mut urls = Vec::new();
    for (i, u) in v.urls.iter().enumerate() {
        let text = u.get_ref();
        let Some((host, path)) = text.split_once('/') else {
            errors.push(file.error_at(u.span(), format!("urls[{i}]: `{text}` must be `host/path-glob`")));
            continue;
        };
        let host = match HostPattern::parse(host) {
            Ok(HostPattern::Exact(h)) => h,
            Ok(HostPattern::Suffix(_)) => {
                errors.push(file.error_at(u.span(), format!("urls[{i}]: `{text}`: url patterns take an exact host")));
                continue;
            }
            Err(e) => {
                errors.push(file.error_at(u.span(), format!("urls[{i}]: {e}")));
                continue;
            }
        };
        let path = format!("/{path}");
        match glob(&path) {
            Ok(m) => urls.push((host, path, m)),
            Err(e) => errors.push(file.error_at(u.span(), format!("urls[{i}]: invalid glob: {e}"))),
        }
    }
    if hosts.is_empty() && urls.is_empty() && errors.len() == before {
        errors.push(file.error("hosts: a vendor needs at least one entry in `hosts` or `urls`"));
    }
    let mut methods = Vec::new();
    for (i, m) in v.first_party.methods.iter().enumerate() {
        let up = m.get_ref().to_ascii_uppercase();
        if ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"].contains(&up.as_str()) {
            methods.push(up);
        } else {
            errors.push(file.error_at(m.span(), format!("first_party.methods[{i}]: unknown method `{}`", m.get_ref())));
        }
    }
    if methods.is_empty() {
        methods.push("GET".to_string());
    }
    let mut block_paths = Vec::new();
    for (i, p) in v.first_party.block_paths.iter().enumerate() {
        let text = p.get_ref();
        if !text.starts_with('/') {
            errors.push(file.error_at(p.span(), format!("first_party.block_paths[{i}]: `{text}` must start with `/`")));
            continue;
        }
        // Matched against the lowercased path, so the glob is lowercased too.
        match glob(&text.to_ascii_lowercase()) {
            Ok(m) => block_paths.push((text.clone(), m)),
            Err(e) => errors.push(file.error_at(p.span(), format!("first_party.block_paths[{i}]: invalid glob: {e}"))),
        }
    }
    let pins = compile_pins(file, &v.first_party.pin, errors);
    if errors.len() != before {
        return None;
    }
    Some(Vendor {
        id: id.clone(),
        name: v.name.clone(),
        category: category?,
        baa: v.baa,
        serve: v.serve,
        hosts,
        urls,
        methods,
        forward_cookies: v.first_party.forward_cookies.clone(),
        query_allow: v.first_party.query_allow.clone(),
        block_paths,
        pins,
    })
}

/// `[first_party] pin`: each path a `/…` glob, each hash `sha256-<base64>` of 32 bytes.
fn compile_pins(file: &SourceFile, pins: &[PinSection], errors: &mut Vec<RuleError>) -> Vec<AssetPin> {
    let mut out = Vec::new();
    for (i, p) in pins.iter().enumerate() {
        let text = p.path.get_ref();
        let matcher = if text.starts_with('/') {
            // Matched against the lowercased path, so the glob is lowercased too.
            glob(&text.to_ascii_lowercase())
                .map_err(|e| {
                    errors.push(file.error_at(p.path.span(), format!("first_party.pin[{i}].path: invalid glob: {e}")))
                })
                .ok()
        } else {
            errors
                .push(file.error_at(p.path.span(), format!("first_party.pin[{i}].path: `{text}` must start with `/`")));
            None
        };
        if p.sha256.is_empty() {
            errors.push(file.error_at(
                p.path.span(),
                format!("first_party.pin[{i}].sha256: list at least one `sha256-<base64>` hash"),
            ));
        }
        let mut hashes = Vec::new();
        for (j, h) in p.sha256.iter().enumerate() {
            match crate::policy::pin::parse_sha256(h.get_ref()) {
                Some(d) => hashes.push(d),
                None => errors.push(file.error_at(
                    h.span(),
                    format!(
                        "first_party.pin[{i}].sha256[{j}]: `{}` is not `sha256-<base64 of a 32-byte digest>`",
                        h.get_ref()
                    ),
                )),
            }
        }
        if let Some(m) = matcher {
            out.push(AssetPin::new(text.clone(), m, hashes));
        }
    }
    out
}

/// Two vendors may not claim the same host (or host + path).
fn check_overlaps(files: &[(SourceFile, VendorFile)], vendors: &[Vendor], errors: &mut Vec<RuleError>) {
    let find = |id: &str| files.iter().find(|(_, f)| f.id.get_ref() == id);
    for (a_i, a) in vendors.iter().enumerate() {
        let Some((a_file, a_raw)) = find(&a.id) else {
            continue;
        };
        for b in vendors.iter().skip(a_i + 1) {
            for (hi, ha) in a.hosts.iter().enumerate() {
                if let Some(hb) = b.hosts.iter().find(|hb| ha.overlaps(hb)) {
                    errors.push(a_file.error_at(
                        a_raw.hosts[hi].span(),
                        format!("hosts[{hi}]: `{ha}` overlaps `{hb}` claimed by vendor `{}`", b.id),
                    ));
                }
                if let Some((h, p, _)) = b.urls.iter().find(|(h, _, _)| ha.matches(h)) {
                    errors.push(a_file.error_at(
                        a_raw.hosts[hi].span(),
                        format!("hosts[{hi}]: `{ha}` claims all of `{h}`, but vendor `{}` claims `{h}{p}`; use `urls` for shared hosts", b.id),
                    ));
                }
            }
            for (ui, (ha, pa, _)) in a.urls.iter().enumerate() {
                if let Some(hb) = b.hosts.iter().find(|hb| hb.matches(ha)) {
                    errors.push(a_file.error_at(
                        a_raw.urls[ui].span(),
                        format!("urls[{ui}]: `{ha}{pa}` is on a host vendor `{}` claims whole (`{hb}`)", b.id),
                    ));
                }
                if b.urls.iter().any(|(hb, pb, _)| hb == ha && pb == pa) {
                    errors.push(a_file.error_at(
                        a_raw.urls[ui].span(),
                        format!("urls[{ui}]: `{ha}{pa}` is also claimed by vendor `{}`", b.id),
                    ));
                }
            }
        }
    }
}

/// `https://api.example.org`, `*.cdn.example`, `cdn.example:8443`, `https://a.example/path/`.
pub fn valid_host_source(s: &str) -> bool {
    if s.is_empty() || s.len() > 255 || s.starts_with('\'') {
        return false;
    }
    let rest = match s.split_once("://") {
        Some(("https" | "http" | "wss" | "ws", rest)) => rest,
        Some(_) => return false,
        None => s,
    };
    let (host_port, _path) = rest.split_once('/').unwrap_or((rest, ""));
    let host = match host_port.rsplit_once(':') {
        Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => h,
        Some(_) => return false,
        None => host_port,
    };
    let host = host.strip_prefix("*.").unwrap_or(host);
    !host.is_empty()
        && host.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
        && s.bytes().all(|b| b.is_ascii_graphic() && !b"';,\"".contains(&b))
}

/// `sha256-<base64>` (also sha384/sha512).
pub fn valid_hash_source(s: &str) -> bool {
    let Some((alg, b64)) = s.split_once('-') else { return false };
    let len = match alg {
        "sha256" => 32,
        "sha384" => 48,
        "sha512" => 64,
        _ => return false,
    };
    base64::engine::general_purpose::STANDARD.decode(b64).is_ok_and(|d| d.len() == len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_sources_reject_keywords_and_injection() {
        for ok in ["https://api.example.org", "*.cdn.example", "cdn.example:8443", "wss://rt.example/path/"] {
            assert!(valid_host_source(ok), "{ok}");
        }
        for bad in
            ["'unsafe-inline'", "*", "https://a.example; script-src *", "data:", "a b", "javascript://x", "https://"]
        {
            assert!(!valid_host_source(bad), "{bad}");
        }
        assert!(valid_hash_source("sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="));
        assert!(!valid_hash_source("sha256-short"));
    }
}
