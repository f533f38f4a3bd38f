//! The HTTP→HTTPS redirect listener (`[listen] redirect_address`): every
//! request is answered `308 Permanent Redirect` to the same path and query
//! over `https://`, never proxied. Only host names a served certificate covers
//! are redirected — anything else (an IP literal, a stranger's `Host`) gets
//! `421 Misdirected Request` — so the listener is not an open redirector.
//! `308`, not `301`: a POST stays a POST.

use std::sync::Arc;

use async_trait::async_trait;
use http::Response;
use http::header::{CACHE_CONTROL, LOCATION};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use super::tls::CertStore;
use crate::respond::{text, with_header};

/// The redirect app.
#[derive(Debug)]
pub struct Redirect {
    certs: Arc<CertStore>,
    /// The port named in `Location` (`None`: 443, left out).
    https_port: Option<u16>,
}

impl Redirect {
    pub fn new(certs: Arc<CertStore>, https_port: Option<u16>) -> Redirect {
        Redirect { certs, https_port }
    }

    /// The answer to a request with this `Host` and request target.
    pub fn answer(&self, host: Option<&str>, target: &str) -> Response<Vec<u8>> {
        let Some(host) = host else {
            return text(400, "a Host header is required\n");
        };
        let Some(name) = host_name(host).filter(|n| self.certs.covers(n)) else {
            return text(421, "misdirected request\n");
        };
        let port = self.https_port.filter(|p| *p != 443).map(|p| format!(":{p}")).unwrap_or_default();
        let path = if target.starts_with('/') { target } else { "/" };
        let location = format!("https://{name}{port}{path}");
        let mut resp = text(308, "moved to https\n");
        if let Ok(v) = http::HeaderValue::from_str(&location) {
            resp.headers_mut().insert(LOCATION, v);
        }
        with_header(resp, CACHE_CONTROL, "max-age=3600")
    }
}

/// The host name of a `Host` value (port dropped, lowercased), if it is a DNS
/// name (no IP literal, no userinfo, no trailing dot).
fn host_name(host: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((n, port)) if port.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.to_ascii_lowercase();
    crate::config::is_dns_name(&name).then_some(name)
}

#[async_trait]
impl ServeHttp for Redirect {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        let host = req.headers.get("host").and_then(|v| v.to_str().ok());
        let target = req.uri.path_and_query().map_or("/", |p| p.as_str());
        self.answer(host, target)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{CertificateConfig, TlsConfig};
    use crate::metrics::Metrics;

    fn redirect(port: Option<u16>) -> (Redirect, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let key = rcgen::KeyPair::generate().unwrap();
        let names = vec!["clinic.example".to_string(), "*.clinic.example".to_string()];
        let cert = rcgen::CertificateParams::new(names).unwrap().self_signed(&key).unwrap();
        let (c, k) = (dir.path().join("c.pem"), dir.path().join("k.pem"));
        std::fs::write(&c, cert.pem()).unwrap();
        std::fs::write(&k, key.serialize_pem()).unwrap();
        let cfg = TlsConfig::new(vec![CertificateConfig {
            cert_file: c,
            key_file: k,
            server_names: Vec::new(),
            default: true,
            name: None,
        }]);
        (Redirect::new(CertStore::load(&cfg, Metrics::new()).unwrap(), port), dir)
    }

    #[test]
    fn covered_hosts_are_sent_to_https_with_path_and_query() {
        let (r, _d) = redirect(None);
        let resp = r.answer(Some("WWW.Clinic.Example:80"), "/book?slot=3");
        assert_eq!(resp.status(), 308);
        assert_eq!(resp.headers()["location"], "https://www.clinic.example/book?slot=3");
        let (r, _d) = redirect(Some(8443));
        assert_eq!(r.answer(Some("clinic.example"), "/").headers()["location"], "https://clinic.example:8443/");
    }

    #[test]
    fn strangers_and_literals_are_not_redirected() {
        let (r, _d) = redirect(None);
        for host in
            ["evil.example", "127.0.0.1", "[::1]:80", "clinic.example.", "a@clinic.example", "a.b.clinic.example"]
        {
            assert_eq!(r.answer(Some(host), "/").status(), 421, "{host}");
        }
        assert_eq!(r.answer(None, "/").status(), 400);
        let odd_target = r.answer(Some("clinic.example"), "http://evil.example/x");
        assert_eq!(odd_target.headers()["location"], "https://clinic.example/");
    }
}
