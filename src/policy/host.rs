//! Host patterns and the first-party test, as a browser sees hosts: lowercase,
//! punycode (the `url` crate applies IDNA), no trailing dot.

/// `clinic.example` (exact) or `*.clinic.example` (strict subdomains).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HostPattern {
    Exact(String),
    Suffix(String),
}

/// Why a host pattern was refused; the message names the pattern.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HostPatternError {
    /// Empty, or a wildcard elsewhere than a leading `*.`, a path, port, userinfo…
    #[error("`{0}` is not a host pattern (expected `host` or `*.host`)")]
    NotAPattern(String),
    /// The URL parser refuses the host.
    #[error("`{pattern}` is not a valid host: {reason}")]
    InvalidHost { pattern: String, reason: url::ParseError },
    /// The host normalises to nothing.
    #[error("`{0}` is not a valid host")]
    EmptyHost(String),
}

impl HostPattern {
    /// Parses a rule-file host pattern. The host is normalised through the URL
    /// parser so `Clinic.Example.` and IDN forms compare as a browser would.
    pub fn parse(s: &str) -> Result<HostPattern, HostPatternError> {
        let (wild, rest) = match s.strip_prefix("*.") {
            Some(rest) => (true, rest),
            None => (false, s),
        };
        if rest.is_empty() || rest.contains(['*', '/', ':', '@', ' ', '?', '#']) {
            return Err(HostPatternError::NotAPattern(s.to_string()));
        }
        let parsed = url::Url::parse(&format!("https://{rest}/"))
            .map_err(|reason| HostPatternError::InvalidHost { pattern: s.to_string(), reason })?;
        let host = normalize_host(parsed.host_str().unwrap_or_default());
        if host.is_empty() {
            return Err(HostPatternError::EmptyHost(s.to_string()));
        }
        Ok(if wild { HostPattern::Suffix(host) } else { HostPattern::Exact(host) })
    }

    pub fn matches(&self, host: &str) -> bool {
        match self {
            HostPattern::Exact(h) => h == host,
            HostPattern::Suffix(s) => is_strict_subdomain(host, s),
        }
    }

    /// Whether some host matches both patterns.
    pub fn overlaps(&self, other: &HostPattern) -> bool {
        match (self, other) {
            (HostPattern::Exact(a), p) | (p, HostPattern::Exact(a)) => p.matches(a),
            (HostPattern::Suffix(a), HostPattern::Suffix(b)) => {
                a == b || is_strict_subdomain(a, b) || is_strict_subdomain(b, a)
            }
        }
    }
}

impl std::fmt::Display for HostPattern {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            HostPattern::Exact(h) => f.write_str(h),
            HostPattern::Suffix(s) => write!(f, "*.{s}"),
        }
    }
}

fn is_strict_subdomain(host: &str, suffix: &str) -> bool {
    host.len() > suffix.len() + 1 && host.ends_with(suffix) && host.as_bytes()[host.len() - suffix.len() - 1] == b'.'
}

/// Lowercases and strips one trailing dot (`evil.example.` is `evil.example`).
pub fn normalize_host(host: &str) -> String {
    let h = host.strip_suffix('.').unwrap_or(host);
    h.to_ascii_lowercase()
}

/// The registrable domain ("eTLD+1") of `host`, from the public suffix list.
/// `None` for IP addresses, single-label hosts such as `localhost`, and public suffixes.
pub fn registrable_domain(host: &str) -> Option<&str> {
    if host.starts_with('[') || host.parse::<std::net::Ipv4Addr>().is_ok() || !host.contains('.') {
        return None;
    }
    psl::domain_str(host)
}

/// Which hosts are the site itself, for one page.
#[derive(Debug, Clone)]
pub struct FirstParty {
    page_host: String,
    /// Registrable domain of the page host, used when the rules name no hosts.
    registrable: Option<String>,
    patterns: Vec<HostPattern>,
}

impl FirstParty {
    pub fn new(page_host: &str, patterns: &[HostPattern]) -> Self {
        let page_host = normalize_host(page_host);
        let registrable = if patterns.is_empty() { registrable_domain(&page_host).map(str::to_string) } else { None };
        FirstParty { page_host, registrable, patterns: patterns.to_vec() }
    }

    pub fn page_host(&self) -> &str {
        &self.page_host
    }

    /// The page host's registrable domain when the rules name no first-party
    /// hosts (the site is that domain and its subdomains); `None` otherwise.
    pub fn registrable(&self) -> Option<&str> {
        self.registrable.as_deref()
    }

    pub fn contains(&self, host: &str) -> bool {
        if host == self.page_host || self.patterns.iter().any(|p| p.matches(host)) {
            return true;
        }
        match &self.registrable {
            Some(reg) => host == reg || is_strict_subdomain(host, reg),
            None => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suffix_matches_strict_subdomains_only() {
        let p = HostPattern::parse("*.zendesk.com").unwrap();
        assert!(p.matches("acme.zendesk.com"));
        assert!(p.matches("a.b.zendesk.com"));
        assert!(!p.matches("zendesk.com"));
        assert!(!p.matches("evilzendesk.com"));
    }

    #[test]
    fn patterns_are_normalised_like_urls() {
        assert_eq!(
            HostPattern::parse("Static.ZDAssets.com.").unwrap(),
            HostPattern::Exact("static.zdassets.com".into())
        );
        assert_eq!(HostPattern::parse("bücher.example").unwrap(), HostPattern::Exact("xn--bcher-kva.example".into()));
        assert!(HostPattern::parse("a.com/path").is_err());
        assert!(HostPattern::parse("*.").is_err());
    }

    #[test]
    fn overlap_detection() {
        let s = HostPattern::parse("*.zdassets.com").unwrap();
        assert!(s.overlaps(&HostPattern::parse("static.zdassets.com").unwrap()));
        assert!(s.overlaps(&HostPattern::parse("*.a.zdassets.com").unwrap()));
        assert!(!s.overlaps(&HostPattern::parse("zdassets.com").unwrap()));
    }

    #[test]
    fn first_party_defaults_to_registrable_domain() {
        let fp = FirstParty::new("www.nytimes.com", &[]);
        assert!(!fp.contains("static01.nyt.com"));
        assert!(fp.contains("static01.nytimes.com"));
        assert!(fp.contains("nytimes.com"));
        assert!(!fp.contains("nytimes.com.evil.example"));
        let fp = FirstParty::new("user.github.io", &[]);
        assert!(!fp.contains("other.github.io"), "github.io is a public suffix");
    }

    #[test]
    fn first_party_with_named_hosts_excludes_siblings() {
        let fp = FirstParty::new("www.clinic.example", &[HostPattern::parse("cdn.clinic.example").unwrap()]);
        assert!(fp.contains("www.clinic.example"));
        assert!(fp.contains("cdn.clinic.example"));
        assert!(!fp.contains("blog.clinic.example"));
    }

    #[test]
    fn ip_and_localhost_are_exact_only() {
        let fp = FirstParty::new("127.0.0.1", &[]);
        assert!(fp.contains("127.0.0.1"));
        assert!(!fp.contains("0.0.1"));
        let fp = FirstParty::new("localhost", &[]);
        assert!(!fp.contains("evil.localhost"));
    }
}
