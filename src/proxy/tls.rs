//! TLS termination: the certificate store behind the TLS listener.
//!
//! Each `[[tls.certificates]]` pair is loaded at start-up (a pair that cannot be
//! used stops start-up, with its file named) and then re-read whenever its files'
//! *contents* change — polled, so an atomic symlink swap (a Kubernetes Secret
//! volume's `..data`, certbot's `live/` links) is seen like an in-place write. A
//! changed pair that does not parse, whose key does not match its certificate, or
//! whose leaf has already expired is refused: the last good pair keeps serving,
//! and the refusal is counted (`tls_certificate_reloads_total{result="error"}`)
//! and logged with the file name. Pairs reload independently, so one broken
//! Secret never takes the others down.
//!
//! Certificates are chosen per handshake by SNI (exact name, then one-label
//! `*.` wildcard), falling back to the default pair. Only TLS 1.2 and 1.3 are
//! offered, with rustls's (ring) cipher suites — no CBC, no RSA key exchange.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use tokio::sync::watch;
use tokio_rustls::rustls;
use tokio_rustls::rustls::server::{ClientHello, ResolvesServerCert};
use tokio_rustls::rustls::sign::CertifiedKey;

use crate::config::TlsConfig;
use crate::metrics::{Metrics, ReloadResult};

/// ALPN protocol ids, in preference order.
const ALPN_H2: &[u8] = b"h2";
const ALPN_H1: &[u8] = b"http/1.1";

/// Why a certificate/key pair cannot be used. Names files, never request data.
#[derive(Debug, thiserror::Error)]
pub enum CertError {
    #[error("{}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{}: {message}", path.display())]
    Invalid { path: PathBuf, message: String },
}

/// One loaded pair.
#[derive(Debug)]
struct Pair {
    key: Arc<CertifiedKey>,
    /// Lowercase names it answers for (`*.x.example` for wildcards).
    names: Vec<String>,
    /// The files' bytes it was loaded from, to notice changes.
    source: (Vec<u8>, Vec<u8>),
    /// Unix seconds.
    not_after: i64,
}

/// Every pair, in config order, and which one is the default.
#[derive(Debug)]
struct Loaded {
    pairs: Vec<Arc<Pair>>,
    default: usize,
}

/// The certificates being served; a rustls [`ResolvesServerCert`].
#[derive(Debug)]
pub struct CertStore {
    cfg: TlsConfig,
    current: ArcSwap<Loaded>,
    metrics: Metrics,
}

impl CertStore {
    /// Loads every pair; any unusable pair is an error (start-up only).
    pub fn load(cfg: &TlsConfig, metrics: Metrics) -> Result<Arc<CertStore>, CertError> {
        let mut pairs = Vec::with_capacity(cfg.certificates.len());
        for c in &cfg.certificates {
            let source = read_pair(&c.cert_file, &c.key_file)?;
            pairs.push(Arc::new(parse_pair(&c.cert_file, &c.server_names, source, now())?));
        }
        let default = cfg.certificates.iter().position(|c| c.default).unwrap_or(0);
        // Both results exist from the start, so the first refusal is an increase.
        for result in [ReloadResult::Ok, ReloadResult::Error] {
            metrics.tls_reloads.with_label_values(&[result.as_str()]);
        }
        let store = CertStore { cfg: cfg.clone(), current: ArcSwap::from_pointee(Loaded { pairs, default }), metrics };
        store.export_expiry();
        Ok(Arc::new(store))
    }

    /// The rustls server config over this store: TLS 1.2 and 1.3, ALPN `h2`
    /// (when `h2`) and `http/1.1`.
    pub fn server_config(self: &Arc<Self>, h2: bool) -> Result<rustls::ServerConfig, rustls::Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = if h2 { vec![ALPN_H2.to_vec(), ALPN_H1.to_vec()] } else { vec![ALPN_H1.to_vec()] };
        Ok(config)
    }

    /// Whether some pair answers for `host` (lowercase, no port): the redirect
    /// listener only sends browsers to names we hold a certificate for.
    pub fn covers(&self, host: &str) -> bool {
        self.current.load().pairs.iter().any(|p| p.names.iter().any(|n| name_matches(n, host)))
    }

    /// Re-reads every pair whose files changed; returns how many were swapped in.
    pub fn reload_changed(&self) -> usize {
        let loaded = self.current.load();
        let mut pairs = loaded.pairs.clone();
        let mut swapped = 0;
        for (i, c) in self.cfg.certificates.iter().enumerate() {
            let Some(old) = pairs.get(i) else { continue };
            // A file that cannot be read mid-swap is tried again next poll.
            let Ok(source) = read_pair(&c.cert_file, &c.key_file) else { continue };
            if source == old.source {
                continue;
            }
            match parse_pair(&c.cert_file, &c.server_names, source.clone(), now()) {
                Ok(pair) => {
                    pairs[i] = Arc::new(pair);
                    swapped += 1;
                    self.metrics.tls_reloads.with_label_values(&[ReloadResult::Ok.as_str()]).inc();
                    tracing::info!(certificate = %self.cfg.label(i), "certificate reloaded");
                }
                Err(e) => {
                    self.metrics.tls_reloads.with_label_values(&[ReloadResult::Error.as_str()]).inc();
                    tracing::error!(certificate = %self.cfg.label(i), error = %e, "certificate reload refused; the last good pair keeps serving");
                    // Remember the broken bytes so the same mistake is counted once.
                    let kept =
                        Pair { key: old.key.clone(), names: old.names.clone(), source, not_after: old.not_after };
                    pairs[i] = Arc::new(kept);
                }
            }
        }
        if pairs.iter().zip(loaded.pairs.iter()).any(|(a, b)| !Arc::ptr_eq(a, b)) {
            self.current.store(Arc::new(Loaded { pairs, default: loaded.default }));
            self.export_expiry();
        }
        swapped
    }

    fn export_expiry(&self) {
        for (i, p) in self.current.load().pairs.iter().enumerate() {
            self.metrics.tls_certificate_expiry.with_label_values(&[&self.cfg.label(i)]).set(p.not_after);
        }
    }

    /// Polls the files every `[tls] reload_seconds` until `shutdown`.
    pub async fn watch(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut tick = tokio::time::interval(Duration::from_secs(self.cfg.reload_seconds));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {
                    let store = self.clone();
                    // File reads and PEM parsing stay off the request workers.
                    let _ = tokio::task::spawn_blocking(move || store.reload_changed()).await;
                }
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        return;
                    }
                }
            }
        }
    }
}

impl ResolvesServerCert for CertStore {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        self.pick(hello.server_name())
    }
}

impl CertStore {
    /// The pair for a handshake with this SNI (none: the default pair).
    fn pick(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let loaded = self.current.load();
        let by_name = sni.and_then(|sni| {
            let sni = sni.trim_end_matches('.').to_ascii_lowercase();
            loaded
                .pairs
                .iter()
                .find(|p| p.names.iter().any(|n| n == &sni))
                .or_else(|| loaded.pairs.iter().find(|p| p.names.iter().any(|n| name_matches(n, &sni))))
        });
        by_name.or_else(|| loaded.pairs.get(loaded.default)).map(|p| p.key.clone())
    }
}

/// `name` (`clinic.example` or `*.clinic.example`) covers `host`: exactly, or a
/// wildcard for exactly one more label (RFC 6125 §6.4.3).
fn name_matches(name: &str, host: &str) -> bool {
    match name.strip_prefix("*.") {
        Some(parent) => {
            host.split_once('.').is_some_and(|(label, rest)| !label.is_empty() && rest.eq_ignore_ascii_case(parent))
        }
        None => name.eq_ignore_ascii_case(host),
    }
}

fn now() -> i64 {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    i64::try_from(secs).unwrap_or(i64::MAX)
}

fn read_pair(cert: &Path, key: &Path) -> Result<(Vec<u8>, Vec<u8>), CertError> {
    let read = |p: &Path| std::fs::read(p).map_err(|source| CertError::Read { path: p.to_path_buf(), source });
    Ok((read(cert)?, read(key)?))
}

/// Parses and checks one pair: a chain, a key that signs for its leaf, a leaf
/// still valid at `now`.
fn parse_pair(cert_file: &Path, names: &[String], source: (Vec<u8>, Vec<u8>), now: i64) -> Result<Pair, CertError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};

    let invalid = |message: String| CertError::Invalid { path: cert_file.to_path_buf(), message };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&source.0)
        .collect::<Result<_, _>>()
        .map_err(|e| invalid(format!("certificate PEM: {e}")))?;
    let leaf = chain.first().ok_or_else(|| invalid("no certificate in the file".to_string()))?;
    let key = PrivateKeyDer::from_pem_slice(&source.1).map_err(|e| invalid(format!("private key PEM: {e}")))?;
    let signer =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| invalid(format!("private key: {e}")))?;
    let (dns_names, not_after) = leaf_facts(leaf).map_err(invalid)?;
    if not_after <= now {
        return Err(invalid("the certificate has expired".to_string()));
    }
    let certified = CertifiedKey::new(chain, signer);
    certified.keys_match().map_err(|e| invalid(format!("the key does not match the certificate: {e}")))?;
    let names = if names.is_empty() { dns_names } else { names.to_vec() };
    Ok(Pair { key: Arc::new(certified), names, source, not_after })
}

/// The leaf's DNS subjectAltNames (lowercase) and notAfter (Unix seconds).
fn leaf_facts(leaf: &[u8]) -> Result<(Vec<String>, i64), String> {
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("certificate: {e}"))?;
    let mut names = Vec::new();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for n in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(d) = n {
                names.push(d.trim_end_matches('.').to_ascii_lowercase());
            }
        }
    }
    Ok((names, cert.validity().not_after.timestamp()))
}

#[cfg(test)]
#[path = "tls_tests.rs"]
mod tests;
