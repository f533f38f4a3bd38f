//! `[first_party] pin` in a vendor rule: path globs on the vendor's hosts whose
//! script or stylesheet must hash to one of the listed SHA-256 values, so a
//! compromised vendor CDN cannot ship new code to the site's pages through the
//! first-party path. The proxy holds a pinned response whole, hashes it and
//! serves it only on a match (else a 502, counted).

use globset::GlobMatcher;

/// One `{ path = "…", sha256 = ["sha256-…", …] }`.
#[derive(Debug, Clone)]
pub struct AssetPin {
    /// The glob as written (`/ekr/snippet.js`, `/web_widget/*/web-widget-*.js`).
    pub path: String,
    /// Over the path as `block_paths` see it: percent-decoded, lowercased, repeated slashes folded.
    pub(crate) matcher: GlobMatcher,
    /// Accepted SHA-256 digests of the body as the vendor sends it (content coding removed).
    pub sha256: Vec<[u8; 32]>,
}

impl AssetPin {
    pub fn new(path: String, matcher: GlobMatcher, sha256: Vec<[u8; 32]>) -> AssetPin {
        AssetPin { path, matcher, sha256 }
    }

    /// Whether `path` (canonical form, see [`AssetPin::matcher`]) is pinned by this entry.
    pub fn matches(&self, path: &str) -> bool {
        self.matcher.is_match(path)
    }

    /// Whether `digest` is one of the pinned hashes.
    pub fn accepts(&self, digest: &[u8; 32]) -> bool {
        self.sha256.iter().any(|d| d == digest)
    }
}

/// Decodes an SRI-style `sha256-<base64>` value; `None` unless it is exactly a SHA-256 digest.
pub fn parse_sha256(s: &str) -> Option<[u8; 32]> {
    use base64::Engine;
    let b64 = s.strip_prefix("sha256-")?;
    let bytes = base64::engine::general_purpose::STANDARD.decode(b64).ok()?;
    bytes.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_sri_sha256_of_32_bytes_parses() {
        assert_eq!(parse_sha256("sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="), Some([0; 32]));
        for bad in [
            "sha256-short",
            "sha384-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
            "",
        ] {
            assert_eq!(parse_sha256(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_shipped_rule_with_a_pin_compiles_and_matches_the_canonical_path() {
        let dir = tempfile::tempdir().unwrap();
        let from = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules");
        std::fs::create_dir_all(dir.path().join("vendors")).unwrap();
        std::fs::copy(from.join("site.toml"), dir.path().join("site.toml")).unwrap();
        let zendesk = std::fs::read_to_string(from.join("vendors/zendesk.toml")).unwrap();
        let pin =
            "pin = [{ path = \"/EKR/*.js\", sha256 = [\"sha256-AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"] }]";
        std::fs::write(dir.path().join("vendors/zendesk.toml"), format!("{zendesk}\n{pin}\n")).unwrap();
        let policy = crate::rules::load_dir(dir.path()).unwrap();
        let (_, v) = policy.vendor_by_id("zendesk").unwrap();
        let p = v.pin_for("/ekr/snippet.js").expect("pinned, case-insensitively");
        assert!(p.accepts(&[0; 32]) && !p.accepts(&[1; 32]));
        assert!(v.pin_for("/ekr/sub/snippet.js").is_none(), "`*` stays within a segment");
        assert!(v.pin_for("/embeddable/config").is_none());
    }
}
