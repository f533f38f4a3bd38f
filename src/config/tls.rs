//! `[tls]` and `[http2]`: TLS termination at the proxy and the HTTP/2 limits.
//!
//! ```toml
//! [listen]
//! tls_address = "0.0.0.0:8443"
//!
//! [tls]
//! hsts_max_age_seconds = 31536000
//!
//! [[tls.certificates]]
//! cert_file = "/etc/tagwarden/tls/clinic.example/tls.crt"
//! key_file = "/etc/tagwarden/tls/clinic.example/tls.key"
//! default = true
//! ```
//!
//! Which certificate a handshake gets is chosen by SNI against each
//! certificate's DNS names (its subjectAltNames, or `server_names` when given);
//! a handshake without SNI, or with a name no certificate covers, gets the one
//! marked `default` (the first when none is marked).

use std::path::PathBuf;

use serde::Deserialize;

/// `[tls]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// One or more certificate/key pairs, chosen by SNI.
    pub certificates: Vec<CertificateConfig>,
    /// How often the files are checked for changes (content, so the atomic
    /// symlink swap of a Kubernetes Secret volume is seen too). Default 2.
    #[serde(default = "default_reload_seconds")]
    pub reload_seconds: u64,
    /// `Strict-Transport-Security: max-age=…` on every response served over
    /// TLS (browsers ignore it over plain HTTP, RFC 6797 §8.1). 0 (default): no
    /// header. A header the origin sets is left as it is.
    #[serde(default)]
    pub hsts_max_age_seconds: u64,
    /// Adds `includeSubDomains` to the HSTS header.
    #[serde(default)]
    pub hsts_include_subdomains: bool,
    /// Adds `preload` to the HSTS header (only with a max-age of at least a year
    /// and `includeSubDomains`, as the preload list requires).
    #[serde(default)]
    pub hsts_preload: bool,
}

fn default_reload_seconds() -> u64 {
    2
}

/// `[[tls.certificates]]`
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CertificateConfig {
    /// PEM certificate chain, leaf first (`fullchain.pem` of an ACME client, `tls.crt` of a Secret).
    pub cert_file: PathBuf,
    /// PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
    /// Names this pair answers for (`clinic.example`, `*.clinic.example`).
    /// Default: the DNS names in the certificate, re-read on every reload.
    #[serde(default)]
    pub server_names: Vec<String>,
    /// Served when SNI is missing or matches no certificate.
    #[serde(default)]
    pub default: bool,
    /// The `certificate` label of the expiry gauge. Default `cert<N>` (its position).
    #[serde(default)]
    pub name: Option<String>,
}

impl TlsConfig {
    /// `certificates` with every other key at its default (no HSTS).
    pub fn new(certificates: Vec<CertificateConfig>) -> TlsConfig {
        TlsConfig {
            certificates,
            reload_seconds: default_reload_seconds(),
            hsts_max_age_seconds: 0,
            hsts_include_subdomains: false,
            hsts_preload: false,
        }
    }

    /// The `Strict-Transport-Security` value, when one is configured.
    pub fn hsts_header(&self) -> Option<String> {
        if self.hsts_max_age_seconds == 0 {
            return None;
        }
        let mut v = format!("max-age={}", self.hsts_max_age_seconds);
        if self.hsts_include_subdomains {
            v.push_str("; includeSubDomains");
        }
        if self.hsts_preload {
            v.push_str("; preload");
        }
        Some(v)
    }

    /// The gauge label of certificate `i`.
    pub fn label(&self, i: usize) -> String {
        self.certificates.get(i).and_then(|c| c.name.clone()).unwrap_or_else(|| format!("cert{i}"))
    }

    /// Checks what serde cannot; `Err((key, message))`.
    pub fn validate(&self) -> Result<(), (&'static str, String)> {
        if self.certificates.is_empty() {
            return Err(("tls.certificates", "at least one [[tls.certificates]] is needed".to_string()));
        }
        if self.certificates.iter().filter(|c| c.default).count() > 1 {
            return Err(("tls.certificates", "only one certificate can be `default = true`".to_string()));
        }
        if self.certificates.len() > 64 {
            return Err(("tls.certificates", "at most 64 certificates".to_string()));
        }
        let mut labels: Vec<String> = (0..self.certificates.len()).map(|i| self.label(i)).collect();
        labels.sort();
        labels.dedup();
        if labels.len() != self.certificates.len() {
            return Err(("tls.certificates", "two certificates have the same `name`".to_string()));
        }
        for c in &self.certificates {
            for n in &c.server_names {
                let bare = n.strip_prefix("*.").unwrap_or(n);
                if !crate::config::is_dns_name(bare) {
                    return Err((
                        "tls.certificates.server_names",
                        format!("`{n}` is not a lowercase DNS name or `*.` wildcard"),
                    ));
                }
            }
        }
        if self.reload_seconds == 0 {
            return Err(("tls.reload_seconds", "must be at least 1".to_string()));
        }
        if self.hsts_preload && (self.hsts_max_age_seconds < 31_536_000 || !self.hsts_include_subdomains) {
            return Err((
                "tls.hsts_preload",
                "preload needs hsts_max_age_seconds ≥ 31536000 and hsts_include_subdomains".to_string(),
            ));
        }
        Ok(())
    }
}

/// `[http2]`: HTTP/2 to clients (ALPN `h2` on the TLS listener, and prior-knowledge
/// h2c on the plain listener when `[listen] h2c = true`). The defaults are
/// pingora's and the h2 crate's bounded ones; the reset budgets are what stop a
/// rapid-reset flood (CVE-2023-44487): a connection that exceeds them gets a
/// GOAWAY and is closed.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Http2Config {
    /// Offer `h2` in ALPN on the TLS listener. Default true.
    pub enabled: bool,
    /// SETTINGS_MAX_CONCURRENT_STREAMS. Default 100.
    pub max_concurrent_streams: u32,
    /// SETTINGS_MAX_HEADER_LIST_SIZE, decoded bytes. Default 65536.
    pub max_header_list_size: u32,
    /// Streams the client may open and reset before the server accepted them,
    /// at once. Default 20.
    pub max_pending_accept_reset_streams: usize,
    /// Streams the server may have to reset because of client errors before the
    /// connection is closed. Default 1024.
    pub max_local_error_reset_streams: usize,
}

impl Default for Http2Config {
    fn default() -> Self {
        Http2Config {
            enabled: true,
            max_concurrent_streams: 100,
            max_header_list_size: 64 * 1024,
            max_pending_accept_reset_streams: 20,
            max_local_error_reset_streams: 1024,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(toml_text: &str) -> TlsConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn hsts_header_follows_the_options() {
        let mut c = cfg("[[certificates]]\ncert_file = \"a\"\nkey_file = \"b\"\n");
        assert_eq!(c.hsts_header(), None);
        c.hsts_max_age_seconds = 31_536_000;
        c.hsts_include_subdomains = true;
        c.hsts_preload = true;
        assert_eq!(c.hsts_header().as_deref(), Some("max-age=31536000; includeSubDomains; preload"));
        assert!(c.validate().is_ok());
        c.hsts_include_subdomains = false;
        assert_eq!(c.validate().unwrap_err().0, "tls.hsts_preload");
    }

    #[test]
    fn certificates_are_checked() {
        let two_defaults = "[[certificates]]\ncert_file = \"a\"\nkey_file = \"b\"\ndefault = true\n\
                            [[certificates]]\ncert_file = \"c\"\nkey_file = \"d\"\ndefault = true\n";
        assert!(cfg(two_defaults).validate().unwrap_err().1.contains("only one"));
        let bad_name = "[[certificates]]\ncert_file = \"a\"\nkey_file = \"b\"\nserver_names = [\"Clinic.Example\"]\n";
        assert_eq!(cfg(bad_name).validate().unwrap_err().0, "tls.certificates.server_names");
        let wildcard = "[[certificates]]\ncert_file = \"a\"\nkey_file = \"b\"\nserver_names = [\"*.clinic.example\"]\n";
        assert!(cfg(wildcard).validate().is_ok());
        assert_eq!(cfg(wildcard).label(0), "cert0");
        assert!(cfg("certificates = []\n").validate().is_err());
    }
}
