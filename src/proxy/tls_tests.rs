use std::path::Path;

use super::*;
use crate::config::CertificateConfig;

/// A self-signed pair for `names`, valid now (or expired long ago).
fn pair(names: &[&str], expired: bool) -> (String, String) {
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
    if expired {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    }
    let cert = params.self_signed(&key).unwrap();
    (cert.pem(), key.serialize_pem())
}

fn write(dir: &Path, stem: &str, (cert, key): &(String, String)) -> CertificateConfig {
    let (c, k) = (dir.join(format!("{stem}.crt")), dir.join(format!("{stem}.key")));
    std::fs::write(&c, cert).unwrap();
    std::fs::write(&k, key).unwrap();
    CertificateConfig { cert_file: c, key_file: k, server_names: Vec::new(), default: false, name: None }
}

fn config(certificates: Vec<CertificateConfig>) -> TlsConfig {
    TlsConfig { reload_seconds: 1, ..TlsConfig::new(certificates) }
}

fn leaf(k: &CertifiedKey) -> Vec<u8> {
    k.cert[0].to_vec()
}

fn counted(m: &Metrics, result: &str) -> u64 {
    m.tls_reloads.with_label_values(&[result]).get()
}

#[test]
fn wildcards_cover_exactly_one_label() {
    assert!(name_matches("clinic.example", "clinic.example"));
    assert!(name_matches("*.clinic.example", "www.clinic.example"));
    assert!(!name_matches("*.clinic.example", "clinic.example"));
    assert!(!name_matches("*.clinic.example", "a.b.clinic.example"));
    assert!(!name_matches("*.clinic.example", "wwwclinic.example"));
    assert!(!name_matches("clinic.example", "evil-clinic.example"));
}

#[test]
fn sni_picks_the_pair_and_the_default_catches_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let a = pair(&["clinic.example", "www.clinic.example"], false);
    let b = pair(&["*.portal.example"], false);
    let mut second = write(dir.path(), "b", &b);
    second.default = true;
    let store = CertStore::load(&config(vec![write(dir.path(), "a", &a), second]), Metrics::new()).unwrap();
    let served = |sni: Option<&str>| leaf(&store.pick(sni).unwrap());
    let (la, lb) = (served(Some("www.clinic.example")), served(Some("app.portal.example")));
    assert_ne!(la, lb);
    assert_eq!(served(Some("CLINIC.example.")), la, "SNI is case-insensitive, a trailing dot is ignored");
    assert_eq!(served(None), lb, "no SNI: the default pair");
    assert_eq!(served(Some("unknown.example")), lb);
    assert!(store.covers("clinic.example") && store.covers("x.portal.example"));
    assert!(!store.covers("portal.example") && !store.covers("evil.example"));
}

#[test]
fn a_changed_pair_is_swapped_in_and_a_broken_one_is_refused_once() {
    let dir = tempfile::tempdir().unwrap();
    let metrics = Metrics::new();
    let first = write(dir.path(), "site", &pair(&["clinic.example"], false));
    let store = CertStore::load(&config(vec![first.clone()]), metrics.clone()).unwrap();
    let before = leaf(&store.pick(None).unwrap());
    assert_eq!(store.reload_changed(), 0, "nothing changed");

    write(dir.path(), "site", &pair(&["clinic.example"], false));
    assert_eq!(store.reload_changed(), 1);
    let renewed = leaf(&store.pick(None).unwrap());
    assert_ne!(renewed, before);
    assert_eq!(counted(&metrics, "ok"), 1);

    // A key that belongs to another certificate, then an expired pair, then garbage: all refused.
    let (cert, _) = pair(&["clinic.example"], false);
    let (_, other_key) = pair(&["clinic.example"], false);
    for broken in [(cert, other_key), pair(&["clinic.example"], true), ("junk".to_string(), "junk".to_string())] {
        write(dir.path(), "site", &broken);
        assert_eq!(store.reload_changed(), 0);
        assert_eq!(leaf(&store.pick(None).unwrap()), renewed, "the last good pair keeps serving");
        assert_eq!(store.reload_changed(), 0, "the same broken files are tried once");
    }
    assert_eq!(counted(&metrics, "error"), 3);
    assert_eq!(counted(&metrics, "ok"), 1);
}

#[test]
fn a_kubernetes_style_symlink_swap_is_seen() {
    // A Secret volume: tls.crt -> ..data/tls.crt, ..data -> ..2026_12_01_x (swapped atomically).
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let gen1 = d.join("..gen1");
    std::fs::create_dir(&gen1).unwrap();
    write(&gen1, "tls", &pair(&["clinic.example"], false));
    std::os::unix::fs::symlink("..gen1", d.join("..data")).unwrap();
    std::os::unix::fs::symlink("..data/tls.crt", d.join("tls.crt")).unwrap();
    std::os::unix::fs::symlink("..data/tls.key", d.join("tls.key")).unwrap();
    let cfg = CertificateConfig {
        cert_file: d.join("tls.crt"),
        key_file: d.join("tls.key"),
        server_names: Vec::new(),
        default: false,
        name: Some("site".to_string()),
    };
    let metrics = Metrics::new();
    let store = CertStore::load(&config(vec![cfg]), metrics.clone()).unwrap();
    let before = leaf(&store.pick(None).unwrap());

    let gen2 = d.join("..gen2");
    std::fs::create_dir(&gen2).unwrap();
    write(&gen2, "tls", &pair(&["clinic.example"], false));
    std::os::unix::fs::symlink("..gen2", d.join("..data_tmp")).unwrap();
    std::fs::rename(d.join("..data_tmp"), d.join("..data")).unwrap();
    assert_eq!(store.reload_changed(), 1);
    assert_ne!(leaf(&store.pick(None).unwrap()), before);
    let expiry = metrics.tls_certificate_expiry.with_label_values(&["site"]).get();
    assert!(expiry > now(), "expiry gauge exported: {expiry}");
}

#[test]
fn start_up_refuses_an_unusable_pair_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let expired = write(dir.path(), "old", &pair(&["clinic.example"], true));
    let err = CertStore::load(&config(vec![expired]), Metrics::new()).unwrap_err().to_string();
    assert!(err.contains("old.crt") && err.contains("expired"), "{err}");
    let mut missing = write(dir.path(), "x", &pair(&["clinic.example"], false));
    missing.key_file = dir.path().join("nope.key");
    let err = CertStore::load(&config(vec![missing]), Metrics::new()).unwrap_err().to_string();
    assert!(err.contains("nope.key"), "{err}");
}
