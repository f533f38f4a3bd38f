//! TLS and HTTP/2 at the proxy (issue 10), against a real pingora server on
//! loopback: SNI picks the certificate, ALPN `h2` is used by real clients (the
//! h2 crate and curl), a page is rewritten identically over HTTP/1.1 and
//! HTTP/2, a certificate swapped on disk is served and a broken one refused,
//! a rewrite failure resets the HTTP/2 stream, a rapid-reset flood is cut
//! off, h2c works for a load balancer, and the redirect listener sends covered
//! hosts to `https://`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, watch};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_rustls::rustls;

use tagwarden::config::{CertificateConfig, Config, TlsConfig};
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

mod support;
use support::common::repo;
use support::http::*;

/// A private CA and the leaf pairs it issues, written to a tempdir.
struct Pki {
    ca: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
    dir: tempfile::TempDir,
}

impl Pki {
    fn new() -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.distinguished_name.push(rcgen::DnType::CommonName, "tagwarden test CA");
        let ca = params.self_signed(&ca_key).unwrap();
        Pki { ca, ca_key, dir: tempfile::tempdir().unwrap() }
    }

    /// Issues a leaf for `names` and writes it as `<stem>.crt` / `<stem>.key`.
    fn issue(&self, stem: &str, names: &[&str]) -> CertificateConfig {
        let key = rcgen::KeyPair::generate().unwrap();
        let params = rcgen::CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).unwrap();
        let cert = params.signed_by(&key, &self.ca, &self.ca_key).unwrap();
        let (c, k) = (self.dir.path().join(format!("{stem}.crt")), self.dir.path().join(format!("{stem}.key")));
        // Write then rename, as a deploy tool would: a reader never sees half a file.
        write_atomically(&c, cert.pem().as_bytes());
        write_atomically(&k, key.serialize_pem().as_bytes());
        CertificateConfig {
            cert_file: c,
            key_file: k,
            server_names: Vec::new(),
            default: false,
            name: Some(stem.into()),
        }
    }

    fn connector(&self, alpn: &[&[u8]]) -> TlsConnector {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
        TlsConnector::from(Arc::new(config))
    }

    fn ca_file(&self) -> PathBuf {
        let p = self.dir.path().join("ca.pem");
        std::fs::write(&p, self.ca.pem()).unwrap();
        p
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, bytes).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

fn tls_config(certificates: Vec<CertificateConfig>) -> TlsConfig {
    TlsConfig {
        reload_seconds: 1,
        hsts_max_age_seconds: 31_536_000,
        hsts_include_subdomains: true,
        ..TlsConfig::new(certificates)
    }
}

async fn start(origin: &TestServer, tls: TlsConfig, tweak: impl FnOnce(&mut Config)) -> Running {
    let rules = repo().join("rules");
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    let mut config = Config { rules: rules.clone(), tls: Some(tls), ..Config::default() };
    config.listen.tls_address = Some(loopback);
    config.listen.redirect_address = Some(loopback);
    tweak(&mut config);
    config.validate().unwrap();
    let policy = tagwarden::rules::load_dir(&rules).unwrap();
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin.addr)).unwrap());
    let (tx, rx) = watch::channel(false);
    start_with(shared, loopback, loopback, Duration::from_secs(2), tx, rx, None).await.expect("proxy starts")
}

async fn connect(pki: &Pki, addr: SocketAddr, sni: &str, alpn: &[&[u8]]) -> TlsStream<TcpStream> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from(sni.to_string()).unwrap();
    tokio::time::timeout(GUARD, pki.connector(alpn).connect(name, tcp)).await.expect("hang guard").unwrap()
}

fn leaf_of(s: &TlsStream<TcpStream>) -> Vec<u8> {
    s.get_ref().1.peer_certificates().unwrap()[0].to_vec()
}

fn leaf_file(c: &CertificateConfig) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject;
    rustls::pki_types::CertificateDer::pem_file_iter(&c.cert_file).unwrap().next().unwrap().unwrap().to_vec()
}

/// One HTTP/1.1 GET over TLS (`Connection: close`).
async fn get_h1(pki: &Pki, addr: SocketAddr, path: &str) -> Resp {
    let mut s = connect(pki, addr, "clinic.example", &[b"http/1.1"]).await;
    assert_eq!(s.get_ref().1.alpn_protocol(), Some(&b"http/1.1"[..]));
    let req = format!("GET {path} HTTP/1.1\r\nHost: clinic.example\r\nAccept: text/html\r\nConnection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut raw)).await.expect("hang guard");
    parse_response(&raw, false)
}

/// One HTTP/2 GET over TLS with the h2 crate: (status, headers, body, body error).
async fn get_h2(
    pki: &Pki,
    addr: SocketAddr,
    path: &str,
    on_first_data: Option<Arc<Notify>>,
) -> (u16, http::HeaderMap, Vec<u8>, Option<h2::Error>) {
    let tls = connect(pki, addr, "clinic.example", &[b"h2", b"http/1.1"]).await;
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]), "ALPN h2 was not selected");
    let (mut client, conn) = h2::client::handshake(tls).await.unwrap();
    tokio::spawn(async move {
        let _ = conn.await;
    });
    let req =
        http::Request::get(format!("https://clinic.example{path}")).header("accept", "text/html").body(()).unwrap();
    let (resp, _) = client.send_request(req, true).unwrap();
    let resp = tokio::time::timeout(GUARD, resp).await.expect("hang guard").unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let mut body = resp.into_body();
    let mut out = Vec::new();
    let mut error = None;
    while let Some(next) = tokio::time::timeout(GUARD, body.data()).await.expect("hang guard") {
        match next {
            Ok(bytes) => {
                let _ = body.flow_control().release_capacity(bytes.len());
                out.extend_from_slice(&bytes);
                if let Some(n) = &on_first_data {
                    n.notify_one();
                }
            }
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    (status, headers, out, error)
}

/// The per-response nonces, masked, so two responses of one page compare equal.
fn unnonced(s: &str) -> String {
    let re = regex::Regex::new(r#"nonce(=|-)"?[A-Za-z0-9+/=_-]{16,}"?"#).unwrap();
    re.replace_all(s, "nonce=MASKED").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_the_certificate_and_unknown_names_get_the_default() {
    let pki = Pki::new();
    let origin = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"ok")).await;
    let clinic = pki.issue("clinic", &["clinic.example", "www.clinic.example"]);
    let mut portal = pki.issue("portal", &["*.portal.example"]);
    portal.default = true;
    let running = start(&origin, tls_config(vec![clinic.clone(), portal.clone()]), |_| {}).await;
    let tls = running.tls_addr.unwrap();

    let s = connect(&pki, tls, "www.clinic.example", &[]).await;
    assert_eq!(leaf_of(&s), leaf_file(&clinic));
    let s = connect(&pki, tls, "app.portal.example", &[]).await;
    assert_eq!(leaf_of(&s), leaf_file(&portal));
    // A TLS 1.2-only client is served too (1.2 and 1.3 are offered, nothing older).
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca.der().clone()).unwrap();
    let tls12 = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let tcp = TcpStream::connect(tls).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("clinic.example").unwrap();
    let s = TlsConnector::from(Arc::new(tls12)).connect(name, tcp).await.unwrap();
    assert_eq!(s.get_ref().1.protocol_version(), Some(rustls::ProtocolVersion::TLSv1_2));
    assert_eq!(leaf_of(&s), leaf_file(&clinic));
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_page_is_rewritten_identically_over_http1_and_http2() {
    let pki = Pki::new();
    let origin =
        TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html; charset=utf-8")], &page(), 4096))
            .await;
    let running = start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |_| {}).await;
    let tls = running.tls_addr.unwrap();

    let h1 = get_h1(&pki, tls, "/conditions/diabetes").await;
    assert_eq!(h1.status, 200, "{}", h1.summary());
    assert!(h1.complete);
    assert_rewritten(&h1.body);
    let (status, headers, body, error) = get_h2(&pki, tls, "/conditions/diabetes", None).await;
    assert_eq!(status, 200);
    assert!(error.is_none(), "h2 body error: {error:?}");
    assert_rewritten(&body);
    assert_eq!(unnonced(&String::from_utf8_lossy(&body)), unnonced(&h1.text()), "h1 and h2 bodies differ");
    let csp = |v: Option<&str>| unnonced(v.unwrap_or_default());
    assert_eq!(
        csp(headers.get("content-security-policy").and_then(|v| v.to_str().ok())),
        csp(h1.header("content-security-policy")),
    );
    for hsts in
        [h1.header("strict-transport-security"), headers.get("strict-transport-security").and_then(|v| v.to_str().ok())]
    {
        assert_eq!(hsts, Some("max-age=31536000; includeSubDomains"));
    }
    // The origin is told the page is https, and sees HTTP/1.1 with a Host either way.
    for seen in origin.requests() {
        assert_eq!(seen.header("x-forwarded-proto"), Some("https"), "{seen:?}");
        assert_eq!(seen.header("host"), Some("clinic.example"), "{seen:?}");
    }
    // Plain HTTP on the same proxy carries no HSTS.
    let mut s = TcpStream::connect(running.proxy_addr).await.unwrap();
    s.write_all(&request("GET", "/", &["Accept: text/html"])).await.unwrap();
    let mut raw = Vec::new();
    read_to_close(&mut s, &mut raw).await;
    assert!(!parse_response(&raw, false).has_header("strict-transport-security"));
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_negotiates_h2_over_tls_and_h2c_prior_knowledge_on_the_plain_listener() {
    let pki = Pki::new();
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 4096)).await;
    let running =
        start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |c| c.listen.h2c = true).await;
    let (tls, plain) = (running.tls_addr.unwrap(), running.proxy_addr);
    let ca = pki.ca_file();
    let curl = |args: Vec<String>| async move {
        let run = args.clone();
        let out = tokio::task::spawn_blocking(move || std::process::Command::new("curl").args(&run).output())
            .await
            .unwrap()
            .expect("curl runs");
        assert!(out.status.success(), "curl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    };
    let https = curl(vec![
        "-sS".into(),
        "--http2".into(),
        "--cacert".into(),
        ca.display().to_string(),
        "--resolve".into(),
        format!("clinic.example:{}:127.0.0.1", tls.port()),
        "-w".into(),
        "\n%{http_version}".into(),
        format!("https://clinic.example:{}/", tls.port()),
    ])
    .await;
    assert!(https.ends_with("\n2"), "curl did not use HTTP/2: {}", &https[https.len().saturating_sub(50)..]);
    assert_rewritten(https.as_bytes());
    let h2c = curl(vec![
        "-sS".into(),
        "--http2-prior-knowledge".into(),
        "-H".into(),
        "Host: clinic.example".into(),
        "-w".into(),
        "\n%{http_version}".into(),
        format!("http://{plain}/"),
    ])
    .await;
    assert!(h2c.ends_with("\n2"), "h2c not used: {}", &h2c[h2c.len().saturating_sub(50)..]);
    assert_rewritten(h2c.as_bytes());
    // HTTP/1.1 keeps working on the h2c listener.
    let h1 = curl(vec![
        "-sS".into(),
        "--http1.1".into(),
        "-w".into(),
        "\n%{http_version}".into(),
        format!("http://{plain}/"),
    ])
    .await;
    assert!(h1.ends_with("\n1.1"));
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_swapped_on_disk_is_served_and_a_broken_one_is_refused() {
    let pki = Pki::new();
    let origin = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"ok")).await;
    let first = pki.issue("site", &["clinic.example"]);
    let running = start(&origin, tls_config(vec![first.clone()]), |_| {}).await;
    let tls = running.tls_addr.unwrap();
    let old = leaf_file(&first);
    assert_eq!(leaf_of(&connect(&pki, tls, "clinic.example", &[]).await), old);

    let renewed = pki.issue("site", &["clinic.example"]);
    let new = leaf_file(&renewed);
    assert_ne!(new, old);
    // Polled every second: wait (bounded) until new handshakes get the new leaf.
    let mut served = Vec::new();
    for _ in 0..100 {
        served = leaf_of(&connect(&pki, tls, "clinic.example", &[]).await);
        if served == new {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(served, new, "the renewed certificate was not picked up within 10 s");

    // A broken pair (key of another certificate) is refused; the renewed one keeps serving.
    let stray = pki.issue("stray", &["clinic.example"]);
    std::fs::copy(&stray.key_file, &renewed.key_file).unwrap();
    let metrics = &running.shared.metrics;
    for _ in 0..100 {
        if metrics.tls_reloads.with_label_values(&["error"]).get() > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(metrics.tls_reloads.with_label_values(&["error"]).get(), 1, "the broken pair was not refused");
    assert_eq!(leaf_of(&connect(&pki, tls, "clinic.example", &[]).await), new);
    let text = metrics.render();
    assert!(text.contains("tagwarden_tls_certificate_expiry_timestamp_seconds{certificate=\"site\"}"), "{text}");
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rewrite_failure_after_the_first_byte_resets_the_http2_stream() {
    let pki = Pki::new();
    let release = Arc::new(Notify::new());
    let origin = inline_overflow_origin(release.clone()).await;
    let running = start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |c| {
        c.rewrite.max_inline_bytes = 1024;
    })
    .await;
    let (status, _, body, error) = get_h2(&pki, running.tls_addr.unwrap(), "/", Some(release)).await;
    assert_eq!(status, 200);
    let text = String::from_utf8_lossy(&body);
    assert!(text.contains("first part"), "{text}");
    assert!(!text.contains("raw_inline") && !text.contains("after the script"), "unrewritten bytes leaked: {text}");
    let error = error.expect("the stream ended cleanly after a rewrite failure");
    assert!(error.is_reset() || error.is_io() || error.is_go_away(), "{error:?}");
    let _ = running.shutdown.send(true);
}

/// HPACK for `GET https://clinic.example/`: static indices 2 (:method GET),
/// 7 (:scheme https), 4 (:path /), and :authority (index 1) as a literal.
fn get_headers_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x87, 0x84, 0x41, 14];
    b.extend_from_slice(b"clinic.example");
    b
}

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rapid_reset_flood_is_cut_off_with_goaway() {
    const STREAMS: u32 = 5000;
    let pki = Pki::new();
    let origin = TestServer::start_accepting(usize::MAX, |_req, sock| {
        send_and_close(sock, cl_response("200 OK", &[("content-type", "text/plain")], b"ok"))
    })
    .await;
    let running = start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |_| {}).await;
    let mut s = connect(&pki, running.tls_addr.unwrap(), "clinic.example", &[b"h2"]).await;
    // Preface, empty SETTINGS, then HEADERS + RST_STREAM(CANCEL) pairs (CVE-2023-44487).
    let mut flood = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    flood.extend(frame(0x4, 0, 0, &[]));
    let block = get_headers_block();
    for i in 0..STREAMS {
        let id = 2 * i + 1;
        flood.extend(frame(0x1, 0x4 | 0x1, id, &block));
        flood.extend(frame(0x3, 0, id, &8u32.to_be_bytes()));
    }
    // The server may close mid-write; what matters is what it answers.
    let writer = async {
        let _ = s.write_all(&flood).await;
        let _ = s.flush().await;
    };
    let _ = tokio::time::timeout(GUARD, writer).await;
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(GUARD, s.read_to_end(&mut answer)).await.expect("hang guard: connection left open");
    // Find a GOAWAY frame (type 7) in the server's frames.
    let mut at = 0;
    let mut goaway = None;
    while at + 9 <= answer.len() {
        let len = ((answer[at] as usize) << 16) | ((answer[at + 1] as usize) << 8) | answer[at + 2] as usize;
        if answer[at + 3] == 0x7 && at + 9 + 8 <= answer.len() {
            let p = &answer[at + 9..];
            goaway = Some(u32::from_be_bytes([p[4], p[5], p[6], p[7]]));
        }
        at += 9 + len;
    }
    assert_eq!(goaway, Some(0xb), "no GOAWAY(ENHANCE_YOUR_CALM) after a rapid-reset flood");
    let reached = origin.count();
    assert!(reached < STREAMS as usize / 10, "{reached} of {STREAMS} reset streams reached the origin");
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_listener_sends_covered_hosts_to_https_and_nothing_to_the_origin() {
    let pki = Pki::new();
    let origin = TestServer::fixed(cl_response("200 OK", &[("content-type", "text/plain")], b"ok")).await;
    let running = start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |c| {
        c.listen.redirect_https_port = Some(8443);
    })
    .await;
    let redirect = running.redirect_addr.unwrap();
    let ask = |host: &'static str| async move {
        let mut s = TcpStream::connect(redirect).await.unwrap();
        let req =
            format!("POST /book?slot=3 HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        s.write_all(req.as_bytes()).await.unwrap();
        let mut raw = Vec::new();
        read_to_close(&mut s, &mut raw).await;
        parse_response(&raw, false)
    };
    let r = ask("clinic.example").await;
    assert_eq!(r.status, 308);
    assert_eq!(r.header("location"), Some("https://clinic.example:8443/book?slot=3"));
    assert_eq!(ask("evil.example").await.status, 421);
    assert_eq!(origin.count(), 0);
    let _ = running.shutdown.send(true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chromium_negotiates_h2_and_gets_the_rewritten_page() {
    let pki = Pki::new();
    let origin = TestServer::fixed(chunked_response("200 OK", &[("content-type", "text/html")], &page(), 4096)).await;
    let running = start(&origin, tls_config(vec![pki.issue("clinic", &["clinic.example"])]), |_| {}).await;
    let port = running.tls_addr.unwrap().port();
    let dir = tempfile::tempdir().unwrap();
    let (profile, netlog) = (dir.path().join("profile"), dir.path().join("netlog.json"));
    let args = vec![
        "--headless=new".to_string(),
        "--no-sandbox".into(),
        "--disable-gpu".into(),
        "--disable-quic".into(),
        "--no-first-run".into(),
        "--disable-background-networking".into(),
        "--disable-component-update".into(),
        // The test CA is not in Chromium's store; ALPN and the protocol are what is checked here.
        "--ignore-certificate-errors".into(),
        "--host-resolver-rules=MAP clinic.example 127.0.0.1".into(),
        format!("--user-data-dir={}", profile.display()),
        format!("--log-net-log={}", netlog.display()),
        "--dump-dom".into(),
        format!("https://clinic.example:{port}/conditions/diabetes"),
    ];
    let out =
        tokio::task::spawn_blocking(move || std::process::Command::new("chromium").args(&args).output()).await.unwrap();
    let out = match out {
        Ok(out) => out,
        Err(_) => {
            assert!(std::env::var_os("TAGWARDEN_REQUIRE_TOOLS").is_none(), "chromium is not installed");
            return eprintln!("skipped: chromium is not installed");
        }
    };
    let dom = String::from_utf8_lossy(&out.stdout);
    assert!(dom.contains("end of page"), "Chromium did not get the page: {}", String::from_utf8_lossy(&out.stderr));
    assert!(!dom.contains("facebook"), "a tracker reached Chromium");
    // The net log: an HTTP2_SESSION event for our host means ALPN chose h2.
    let log: serde_json::Value = serde_json::from_slice(&std::fs::read(&netlog).unwrap()).unwrap();
    let h2_session = log["constants"]["logEventTypes"]["HTTP2_SESSION"].as_u64().expect("event type id");
    let sessions: Vec<&serde_json::Value> = log["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_u64() == Some(h2_session))
        .filter(|e| e["params"]["host"].as_str().is_some_and(|h| h.contains("clinic.example")))
        .collect();
    assert!(!sessions.is_empty(), "Chromium did not open an HTTP/2 session to the proxy");
    let _ = running.shutdown.send(true);
}
