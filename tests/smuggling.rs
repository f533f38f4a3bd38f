#![allow(clippy::unwrap_used, clippy::expect_used)]
//! Request-smuggling differential suite, on loopback only. Each shape from the
//! public catalogues (PortSwigger's CL.TE / TE.CL / TE.TE, defparam's smuggler
//! payload list, HTTP Garden's header and chunk mutations, the pingora
//! advisories) is written on one connection and followed by an innocent second
//! request. A raw origin records every byte the proxy sends it and answers each
//! request its own strict RFC 9112 parser finds.
//!
//! Pass, for every shape: the proxy refuses it (a 4xx, and the origin never
//! sees the shape's request), or forwards it in a normalized form — the
//! origin's bytes parse strictly (CRLF only, no obs-fold, one framing), and
//! every request in them is one the client sent as its own (`/shape` or
//! `/second`, once each, carrying the `X-Forwarded-For` the proxy adds to every
//! request it parsed). A payload's embedded request targets `/smuggled`: the
//! origin seeing it as a request is a desync.
//!
//! All shapes run at once, each against its own proxy and origin; a failing run
//! names every failing shape. `TAGWARDEN_SMUGGLING_SHAPE=<name>` runs one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;

use tagwarden::config::Config;
use tagwarden::proxy::{Origin, Shared};
use tagwarden::serve::{Running, start_with};

mod support;

use support::http::find;
use support::strict_origin::{RecordingOrigin, parse_strict};

/// Hang guard for one shape's exchange (not a timing assertion).
const GUARD: Duration = Duration::from_secs(20);
/// Most bytes the origin or the client keeps per connection.
const MAX_BYTES: usize = 1 << 20;

/// An embedded request: the origin must never parse it as one.
const SMUGGLED: &str = "GET /smuggled HTTP/1.1\r\nHost: clinic.example\r\nX-Ignore: x";

// ---------------------------------------------------------------------------
// The shapes
// ---------------------------------------------------------------------------

struct Shape {
    name: String,
    bytes: Vec<u8>,
}

fn shape(name: impl Into<String>, bytes: impl Into<Vec<u8>>) -> Shape {
    Shape { name: name.into(), bytes: bytes.into() }
}

/// `POST /shape` with `Host`, the given header lines (raw), and the raw body.
fn post(headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r = b"POST /shape HTTP/1.1\r\nHost: clinic.example\r\n".to_vec();
    for h in headers {
        r.extend_from_slice(h);
        r.extend_from_slice(b"\r\n");
    }
    r.extend_from_slice(b"\r\n");
    r.extend_from_slice(body);
    r
}

/// A chunked body whose end hides a request (CL.TE: a CL-reader sees it as body,
/// a TE-reader as the next request).
fn cl_te_body() -> Vec<u8> {
    format!("0\r\n\r\n{SMUGGLED}").into_bytes()
}

/// A chunk that holds a request, then the last chunk (TE.CL: a CL-reader of
/// `Content-Length: 4` stops after the size line, the rest is the next request).
fn te_cl_body() -> Vec<u8> {
    let inner = format!("{SMUGGLED}\r\n\r\n");
    format!("{:x}\r\n{inner}\r\n0\r\n\r\n", inner.len()).into_bytes()
}

/// Obfuscated `Transfer-Encoding` lines (TE.TE), from the catalogues.
const TE_SPELLINGS: &[(&str, &[u8])] = &[
    ("te_plain", b"Transfer-Encoding: chunked"),
    ("te_uppercase_value", b"Transfer-Encoding: CHUNKED"),
    ("te_mixed_case_value", b"Transfer-Encoding: cHuNkEd"),
    ("te_uppercase_name", b"TRANSFER-ENCODING: chunked"),
    ("te_space_before_colon", b"Transfer-Encoding : chunked"),
    ("te_tab_before_colon", b"Transfer-Encoding\t: chunked"),
    ("te_tab_after_colon", b"Transfer-Encoding:\tchunked"),
    ("te_no_space", b"Transfer-Encoding:chunked"),
    ("te_trailing_tab", b"Transfer-Encoding: chunked\t"),
    ("te_leading_space_line", b" Transfer-Encoding: chunked"),
    ("te_xchunked", b"Transfer-Encoding: xchunked"),
    ("te_chunked_x", b"Transfer-Encoding: chunkedx"),
    ("te_chunk", b"Transfer-Encoding: chunk"),
    ("te_quoted", b"Transfer-Encoding: \"chunked\""),
    ("te_chunked_identity", b"Transfer-Encoding: chunked, identity"),
    ("te_identity_chunked", b"Transfer-Encoding: identity, chunked"),
    ("te_identity", b"Transfer-Encoding: identity"),
    ("te_chunked_chunked", b"Transfer-Encoding: chunked, chunked"),
    ("te_comma_chunked", b"Transfer-Encoding: ,chunked"),
    ("te_chunked_param", b"Transfer-Encoding: chunked;q=1"),
    ("te_duplicated_chunked_x", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: x"),
    ("te_duplicated_x_chunked", b"Transfer-Encoding: x\r\nTransfer-Encoding: chunked"),
    ("te_duplicated_same", b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked"),
    ("te_obs_fold_value", b"Transfer-Encoding:\r\n chunked"),
    ("te_obs_fold_after", b"Transfer-Encoding: chunked\r\n x"),
    ("te_underscore_name", b"Transfer_Encoding: chunked"),
    ("te_vertical_tab", b"Transfer-Encoding:\x0bchunked"),
    ("te_form_feed", b"Transfer-Encoding: \x0cchunked"),
    ("te_nul_in_value", b"Transfer-Encoding: chunked\x00"),
    ("te_non_ascii_value", b"Transfer-Encoding: \xffchunked"),
    ("te_bare_lf_before", b"X-Pad: 1\nTransfer-Encoding: chunked"),
    ("te_bare_cr_before", b"X-Pad: 1\rTransfer-Encoding: chunked"),
];

/// `Content-Length` spellings, each sent before a 5-byte body and a hidden request.
const CL_SPELLINGS: &[(&str, &[u8])] = &[
    ("cl_plus_sign", b"Content-Length: +5"),
    ("cl_minus_sign", b"Content-Length: -5"),
    ("cl_leading_zeros", b"Content-Length: 005"),
    ("cl_hex", b"Content-Length: 0x5"),
    ("cl_spaces_inside", b"Content-Length: 5 5"),
    ("cl_comma_same", b"Content-Length: 5, 5"),
    ("cl_comma_different", b"Content-Length: 5, 50"),
    ("cl_two_same", b"Content-Length: 5\r\nContent-Length: 5"),
    ("cl_two_different", b"Content-Length: 5\r\nContent-Length: 50"),
    ("cl_decimal_point", b"Content-Length: 5.0"),
    ("cl_exponent", b"Content-Length: 5e0"),
    ("cl_overflow", b"Content-Length: 18446744073709551621"),
    ("cl_empty", b"Content-Length: "),
    ("cl_nul", b"Content-Length: 5\x00"),
    ("cl_space_before_colon", b"Content-Length : 5"),
    ("cl_tab_value", b"Content-Length:\t5\t"),
    ("cl_obs_fold", b"Content-Length:\r\n 5"),
    ("cl_underscore_name", b"Content_Length: 5"),
    ("cl_vertical_tab", b"Content-Length: \x0b5"),
    ("cl_unicode_digit", b"Content-Length: \xd9\xa5"),
];

/// Chunked bodies: invalid and oversized sizes, extensions, trailers.
const CHUNKED_BODIES: &[(&str, &[u8])] = &[
    ("chunk_invalid_size", b"zz\r\nhello\r\n0\r\n\r\n"),
    ("chunk_negative_size", b"-5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_hex_prefix", b"0x5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_plus_size", b"+5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_oversized_size", b"ffffffffffffffffff5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_u64_overflow", b"10000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk_leading_zeros", b"0000000000000000000000000005\r\nhello\r\n0\r\n\r\n"),
    ("chunk_space_before_size", b" 5\r\nhello\r\n0\r\n\r\n"),
    ("chunk_space_after_size", b"5 \r\nhello\r\n0\r\n\r\n"),
    ("chunk_extension", b"5;name=value\r\nhello\r\n0\r\n\r\n"),
    ("chunk_extension_quoted", b"5;name=\"a\\\"b\"\r\nhello\r\n0\r\n\r\n"),
    ("chunk_extension_bare_lf", b"5;a\nb\r\nhello\r\n0\r\n\r\n"),
    ("chunk_bare_lf_lines", b"5\nhello\n0\n\n"),
    ("chunk_bare_cr_after_size", b"5\rhello\r\n0\r\n\r\n"),
    ("chunk_data_longer_than_size", b"3\r\nhello\r\n0\r\n\r\n"),
    ("chunk_missing_crlf_after_data", b"5\r\nhello0\r\n\r\n"),
    ("chunk_trailer", b"5\r\nhello\r\n0\r\nX-Trailer: 1\r\n\r\n"),
    ("chunk_trailer_content_length", b"5\r\nhello\r\n0\r\nContent-Length: 60\r\n\r\n"),
    ("chunk_trailer_transfer_encoding", b"5\r\nhello\r\n0\r\nTransfer-Encoding: chunked\r\n\r\n"),
    ("chunk_last_chunk_00", b"5\r\nhello\r\n00\r\n\r\n"),
    ("chunk_last_chunk_extension", b"5\r\nhello\r\n0;x=1\r\n\r\n"),
];

fn shapes() -> Vec<Shape> {
    let mut out = Vec::new();
    for (name, te) in TE_SPELLINGS {
        out.push(shape(format!("cl_te/{name}"), post(&[b"Content-Length: 5", te], &cl_te_body())));
        out.push(shape(format!("te_cl/{name}"), post(&[te, b"Content-Length: 4"], &te_cl_body())));
        out.push(shape(format!("te_only/{name}"), post(&[te], &te_cl_body())));
    }
    for (name, cl) in CL_SPELLINGS {
        out.push(shape(format!("cl/{name}"), post(&[cl], format!("hello{SMUGGLED}\r\n\r\n").as_bytes())));
    }
    for (name, body) in CHUNKED_BODIES {
        let mut b = body.to_vec();
        b.extend_from_slice(format!("{SMUGGLED}\r\n\r\n").as_bytes());
        out.push(shape(format!("chunked/{name}"), post(&[b"Transfer-Encoding: chunked"], &b)));
    }
    out.extend(head_shapes());
    out.extend(message_shapes());
    out
}

/// Line endings, folding and control bytes in the request head.
fn head_shapes() -> Vec<Shape> {
    let smuggle = format!("{SMUGGLED}\r\n\r\n");
    let with = |head: &str| {
        let mut b = head.as_bytes().to_vec();
        b.extend_from_slice(smuggle.as_bytes());
        b
    };
    vec![
        shape("head/bare_lf_everywhere", "GET /shape HTTP/1.1\nHost: clinic.example\n\n"),
        shape("head/bare_lf_request_line", "GET /shape HTTP/1.1\nHost: clinic.example\r\n\r\n"),
        shape("head/bare_lf_end_of_head", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\n\n"),
        shape("head/bare_cr_in_line", "GET /shape HTTP/1.1\r\nHost: clinic.example\rX: y\r\n\r\n"),
        shape("head/bare_cr_end_of_head", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\n\r"),
        shape("head/obs_fold", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-Folded: a\r\n b\r\n\r\n"),
        shape("head/obs_fold_tab", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-Folded: a\r\n\tb\r\n\r\n"),
        shape("head/obs_fold_first_line", "GET /shape HTTP/1.1\r\n Host: clinic.example\r\n\r\n"),
        shape("head/nul_in_name", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-\x00A: b\r\n\r\n".to_vec()),
        shape("head/nul_in_value", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-A: b\x00c\r\n\r\n".to_vec()),
        shape("head/ctl_in_name", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-\x01A: b\r\n\r\n".to_vec()),
        shape("head/ctl_in_value", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-A: b\x01c\r\n\r\n".to_vec()),
        shape("head/del_in_value", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-A: b\x7fc\r\n\r\n".to_vec()),
        shape("head/escape_in_value", b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX-A: \x1b[31m\r\n\r\n".to_vec()),
        shape("head/space_in_name", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nContent Length: 5\r\n\r\n"),
        shape("head/no_colon", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nNoColonHere\r\n\r\n"),
        shape("head/empty_name", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\n: value\r\n\r\n"),
        shape("head/no_host_http11", "GET /shape HTTP/1.1\r\n\r\n"),
        shape("head/two_hosts", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nHost: evil.example\r\n\r\n"),
        shape("head/nul_in_target", b"GET /sha\x00pe HTTP/1.1\r\nHost: clinic.example\r\n\r\n".to_vec()),
        shape("head/space_in_target", "GET /sh ape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("head/double_space_request_line", "GET  /shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("head/tab_request_line", "GET\t/shape\tHTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("head/http_1_10", "GET /shape HTTP/1.10\r\nHost: clinic.example\r\n\r\n"),
        shape("head/http_2_0", "GET /shape HTTP/2.0\r\nHost: clinic.example\r\n\r\n"),
        shape("head/lowercase_version", "GET /shape http/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("head/leading_crlf", "\r\nGET /shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape(
            "head/fold_hides_cl",
            with("GET /shape HTTP/1.1\r\nHost: clinic.example\r\nX: y\r\n Content-Length: 0\r\n\r\n"),
        ),
    ]
}

/// Pipelining, targets, Expect, HTTP/1.0, Upgrade.
fn message_shapes() -> Vec<Shape> {
    let smuggle = format!("{SMUGGLED}\r\n\r\n");
    let body_is_request = format!("Content-Length: {}", smuggle.len());
    vec![
        shape("pipeline/get_then_second", "GET /shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape(
            "pipeline/get_with_body_that_is_a_request",
            post_as("GET", &[body_is_request.as_bytes()], smuggle.as_bytes()),
        ),
        shape(
            "pipeline/head_with_body_that_is_a_request",
            post_as("HEAD", &[body_is_request.as_bytes()], smuggle.as_bytes()),
        ),
        shape(
            "pipeline/options_with_body_that_is_a_request",
            post_as("OPTIONS", &[body_is_request.as_bytes()], smuggle.as_bytes()),
        ),
        shape("pipeline/post_with_body_that_is_a_request", post(&[body_is_request.as_bytes()], smuggle.as_bytes())),
        shape("pipeline/chunked_get", post_as("GET", &[b"Transfer-Encoding: chunked"], &te_cl_body())),
        shape("pipeline/cl_zero_then_request", post(&[b"Content-Length: 0"], smuggle.as_bytes())),
        shape("pipeline/no_framing_post_then_request", post(&[], smuggle.as_bytes())),
        shape("target/absolute_form", "GET http://clinic.example/shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape(
            "target/absolute_form_other_host",
            "GET http://evil.example/shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n",
        ),
        shape("target/absolute_form_no_host", "GET http://clinic.example/shape HTTP/1.1\r\n\r\n"),
        shape("target/asterisk_options", "OPTIONS * HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("target/asterisk_get", "GET * HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("target/authority_form_connect", "CONNECT clinic.example:80 HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("target/relative_no_slash", "GET shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n"),
        shape("expect/100_continue_cl", post(&[b"Expect: 100-continue", b"Content-Length: 5"], b"hello")),
        shape(
            "expect/100_continue_chunked",
            post(&[b"Expect: 100-continue", b"Transfer-Encoding: chunked"], b"5\r\nhello\r\n0\r\n\r\n"),
        ),
        shape(
            "expect/100_continue_body_is_request",
            post(&[b"Expect: 100-continue", body_is_request.as_bytes()], smuggle.as_bytes()),
        ),
        shape("expect/unknown_expectation", post(&[b"Expect: 200-ok", b"Content-Length: 5"], b"hello")),
        shape("http10/keep_alive", "GET /shape HTTP/1.0\r\nHost: clinic.example\r\nConnection: keep-alive\r\n\r\n"),
        shape("http10/keep_alive_post_cl", {
            let mut b = b"POST /shape HTTP/1.0\r\nHost: clinic.example\r\nConnection: keep-alive\r\nContent-Length: 5\r\n\r\nhello".to_vec();
            b.extend_from_slice(smuggle.as_bytes());
            b
        }),
        shape("http10/chunked", {
            let mut b = b"POST /shape HTTP/1.0\r\nHost: clinic.example\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
            b.extend_from_slice(&te_cl_body());
            b
        }),
        shape(
            "upgrade/websocket_answered_200",
            "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
        ),
        shape(
            "upgrade/h2c_answered_200",
            "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n",
        ),
        shape(
            "upgrade/upgrade_without_connection",
            "GET /shape HTTP/1.1\r\nHost: clinic.example\r\nUpgrade: websocket\r\n\r\n",
        ),
        shape("upgrade/post_upgrade_with_body", {
            let mut b = b"POST /shape HTTP/1.1\r\nHost: clinic.example\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: 5\r\n\r\nhello".to_vec();
            b.extend_from_slice(smuggle.as_bytes());
            b
        }),
        shape("connection/close_then_more", {
            let mut b = b"GET /shape HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n".to_vec();
            b.extend_from_slice(smuggle.as_bytes());
            b
        }),
        shape(
            "connection/hop_by_hop_content_length",
            post(&[b"Connection: Content-Length", b"Content-Length: 5"], format!("hello{smuggle}").as_bytes()),
        ),
        shape(
            "connection/hop_by_hop_transfer_encoding",
            post(&[b"Connection: Transfer-Encoding", b"Transfer-Encoding: chunked"], &te_cl_body()),
        ),
    ]
}

fn post_as(method: &str, headers: &[&[u8]], body: &[u8]) -> Vec<u8> {
    let mut r = post(headers, body);
    r.splice(0..4, method.bytes());
    r
}

// ---------------------------------------------------------------------------
// Running one shape
// ---------------------------------------------------------------------------

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

async fn proxy_in_front_of(origin: SocketAddr) -> Running {
    let rules = repo().join("rules");
    let mut config = Config { rules: rules.clone(), ..Config::default() };
    // A shape that promises more body than it sends ends on the proxy's read timeout.
    config.limits.request_read_timeout_seconds = 1;
    let policy = tagwarden::rules::load_dir(&rules).expect("shipped rules load");
    let shared = Arc::new(Shared::new(policy, config, Origin::plain(origin)).expect("config"));
    let (tx, rx) = watch::channel(false);
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    start_with(shared, loopback, loopback, Duration::from_secs(1), tx, rx, None).await.expect("proxy starts")
}

fn percent_decoded(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        let hex = b.get(i + 1..i + 3).and_then(|h| u8::from_str_radix(std::str::from_utf8(h).ok()?, 16).ok());
        match (b[i], hex) {
            (b'%', Some(v)) => {
                out.push(v);
                i += 3;
            }
            (c, _) => {
                out.push(c);
                i += 1;
            }
        }
    }
    out
}

/// The first status code in the client's bytes, if any.
fn first_status(raw: &[u8]) -> Option<u16> {
    let line = raw.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    text.strip_prefix("HTTP/1.")?.get(2..5)?.parse().ok()
}

/// Puts the shape's number in its target (`/sh…` → `/N/sh…`) and in the innocent
/// second request's, so whatever the origin receives is attributed to its shape.
fn numbered(s: &Shape, id: usize) -> Vec<u8> {
    let mut bytes = s.bytes.clone();
    if let Some(at) = find(&bytes, b"/sh") {
        bytes.splice(at..at, format!("/{id}").bytes());
    }
    bytes.extend_from_slice(
        format!("GET /{id}/second HTTP/1.1\r\nHost: clinic.example\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    bytes
}

/// What the client got for one shape.
struct Answer {
    status: Option<u16>,
    hung: bool,
}

/// Sends one numbered shape and its second request on one connection; reads until close.
async fn send_shape(bytes: &[u8], proxy: SocketAddr) -> Answer {
    let mut sock = TcpStream::connect(proxy).await.unwrap();
    // The proxy may answer and close before reading everything.
    let _ = sock.write_all(bytes).await;
    let mut raw = Vec::new();
    let read = tokio::time::timeout(GUARD, async {
        let mut buf = [0u8; 16 * 1024];
        while raw.len() < MAX_BYTES {
            match sock.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => raw.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    Answer { status: first_status(&raw), hung: read.is_err() }
}

/// What the origin received for one shape.
#[derive(Default, Debug)]
struct Received {
    /// Complete requests for the shape's own target.
    shape: usize,
    /// Complete requests for its second request.
    second: usize,
    /// Heads of requests the proxy cut before their body ended.
    cut: usize,
    /// What should never happen (a request nobody sent, unparseable bytes…).
    wrong: Vec<String>,
}

/// The shape number in a target (`/N/…`, also inside absolute-form), and the rest.
fn shape_of(target: &str) -> Option<(usize, Vec<u8>)> {
    let path = target.rsplit_once("clinic.example").map_or(target, |(_, p)| p);
    let (id, rest) = path.strip_prefix('/')?.split_once('/')?;
    Some((id.parse().ok()?, percent_decoded(&format!("/{rest}"))))
}

/// Attributes everything the origin received to the shapes, by target. Requests
/// without a shape number are charged to the shape before them on that connection.
fn attribute(conns: &[Vec<u8>], received: &mut [Received], asterisk: Option<usize>) {
    for conn in conns {
        let mut last: Option<usize> = None;
        let charge = |last: Option<usize>, received: &mut [Received], why: String| match last {
            Some(i) => received[i].wrong.push(why),
            None => received.iter_mut().for_each(|r| r.wrong.push(format!("(unattributed) {why}"))),
        };
        let (reqs, used) = match parse_strict(conn) {
            Ok(parsed) => parsed,
            Err(e) => {
                charge(None, received, format!("origin could not parse what it got ({e})"));
                continue;
            }
        };
        for r in reqs {
            let id =
                shape_of(&r.target).or(if r.target == "*" { asterisk.map(|a| (a, b"/shape".to_vec())) } else { None });
            let Some((i, rest)) = id.filter(|(i, _)| *i < received.len()) else {
                charge(
                    last,
                    received,
                    format!("origin saw a request the client did not send: {} {}", r.method, r.target),
                );
                continue;
            };
            last = Some(i);
            // The HTTP/1 parser percent-encodes a space or a control byte in a target
            // (`/sh ape` reaches the origin as `/sh%20ape`): the same target, normalized.
            match rest.as_slice() {
                b"/shape" | b"/sh ape" | b"/sha\0pe" => received[i].shape += 1,
                b"/second" => received[i].second += 1,
                _ => received[i].wrong.push(format!("origin saw a request the client did not send: {}", r.target)),
            }
            if !r.headers.iter().any(|(n, _)| n == "x-forwarded-for") {
                received[i].wrong.push(format!("origin saw {} without the proxy's X-Forwarded-For", r.target));
            }
        }
        if used != conn.len() {
            // A body that turns out malformed after its head was forwarded (a bad chunk
            // size): the proxy cuts the origin connection mid-request, the origin never
            // completes it. Anything else left over is a framing disagreement.
            let rest = &conn[used..];
            let head_ok = find(rest, b"\r\n\r\n").is_some_and(|end| {
                let mut head = rest[..end + 4].to_vec();
                // The head alone, framed as bodiless, must parse strictly.
                head = String::from_utf8_lossy(&head).replace("Transfer-Encoding: chunked\r\n", "").into_bytes();
                parse_strict(&head).is_ok_and(|(r, _)| r.len() == 1)
            });
            let target = std::str::from_utf8(rest).ok().and_then(|t| t.split(' ').nth(1)).filter(|_| head_ok);
            match target.and_then(shape_of) {
                Some((i, _)) if i < received.len() => received[i].cut += 1,
                _ => charge(last, received, format!("origin left with {} unframed bytes", rest.len())),
            }
        }
    }
}

/// The verdict for one shape.
fn judge(answer: &Answer, got: &Received) -> Result<(), String> {
    if let Some(why) = got.wrong.first() {
        return Err(why.clone());
    }
    if got.shape > 1 || got.second > 1 {
        return Err(format!("origin saw the shape {}x, the second request {}x", got.shape, got.second));
    }
    let refused = answer.status.is_some_and(|s| (400..500).contains(&s));
    match answer.status {
        Some(status) if refused && got.shape > 0 => {
            Err(format!("refused with {status}, yet the origin saw the request"))
        }
        _ if refused => Ok(()),
        Some(status) if got.cut > 0 => Err(format!("the origin saw a cut request, the client a {status}")),
        Some(status) if (200..300).contains(&status) && got.shape == 1 => Ok(()),
        status => Err(format!(
            "neither refused nor forwarded: status {status:?}, origin saw the shape {}x{}",
            got.shape,
            if answer.hung { " (client hang guard)" } else { "" }
        )),
    }
}

/// Proxies the shapes are spread over (each loads the rules once).
const PROXIES: usize = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_shape_is_refused_or_forwarded_normalized_and_never_desyncs_the_origin() {
    let only = std::env::var("TAGWARDEN_SMUGGLING_SHAPE").ok();
    let all: Vec<Shape> = shapes().into_iter().filter(|s| only.as_ref().is_none_or(|o| *o == s.name)).collect();
    if only.is_none() {
        assert!(all.len() >= 80, "only {} shapes", all.len());
        let mut names: Vec<&str> = all.iter().map(|s| s.name.as_str()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), all.len(), "shape names are not unique");
    }
    let all = Arc::new(all);
    let mut tasks = tokio::task::JoinSet::new();
    for worker in 0..PROXIES {
        let all = all.clone();
        tasks.spawn(async move {
            let origin = RecordingOrigin::start().await;
            let running = proxy_in_front_of(origin.addr).await;
            let mut answers = Vec::new();
            for id in (worker..all.len()).step_by(PROXIES) {
                answers.push((id, send_shape(&numbered(&all[id], id), running.proxy_addr).await));
            }
            origin.settle().await;
            let _ = running.shutdown.send(true);
            (answers, origin.received_since(&[]))
        });
    }
    let mut answers: Vec<Option<Answer>> = all.iter().map(|_| None).collect();
    let mut received: Vec<Received> = all.iter().map(|_| Received::default()).collect();
    let asterisk = all.iter().position(|s| s.name == "target/asterisk_options");
    while let Some(done) = tasks.join_next().await {
        let (got, conns) = done.unwrap();
        for (id, answer) in got {
            answers[id] = Some(answer);
        }
        attribute(&conns, &mut received, asterisk);
    }
    let verbose = std::env::var_os("TAGWARDEN_SMUGGLING_VERBOSE").is_some();
    let mut failures = Vec::new();
    for (id, s) in all.iter().enumerate() {
        let answer = answers[id].as_ref().expect("every shape was sent");
        if verbose {
            eprintln!("{}: status {:?}, origin {:?}", s.name, answer.status, received[id]);
        }
        if let Err(why) = judge(answer, &received[id]) {
            failures.push(format!("{}: {why}", s.name));
        }
    }
    assert!(failures.is_empty(), "{} of {} shapes failed:\n{}", failures.len(), all.len(), failures.join("\n"));
}

/// The status the proxy answers `bytes` with, and whether the origin saw a complete request.
async fn status_and_origin(bytes: &[u8]) -> (Option<u16>, bool) {
    let origin = RecordingOrigin::start().await;
    let running = proxy_in_front_of(origin.addr).await;
    let raw = support::http::exchange(running.proxy_addr, bytes).await;
    origin.settle().await;
    let complete = origin.received_since(&[]).iter().any(|c| parse_strict(c).is_ok_and(|(r, _)| !r.is_empty()));
    let _ = running.shutdown.send(true);
    (first_status(&raw), complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_line_with_two_spaces_is_400_not_forwarded_as_a_re_encoded_target() {
    let (status, forwarded) = status_and_origin(b"GET  /shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n").await;
    assert_eq!((status, forwarded), (Some(400), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_target_without_a_leading_slash_is_400() {
    let (status, forwarded) = status_and_origin(b"GET shape HTTP/1.1\r\nHost: clinic.example\r\n\r\n").await;
    assert_eq!((status, forwarded), (Some(400), false));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_chunk_size_is_400_to_the_client_and_never_a_complete_request_at_the_origin() {
    let (status, forwarded) = status_and_origin(
        b"POST /shape HTTP/1.1\r\nHost: clinic.example\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
    )
    .await;
    assert_eq!((status, forwarded), (Some(400), false));
}

#[test]
fn the_strict_origin_parser_frames_what_it_should_and_refuses_the_rest() {
    let ok = b"POST /a HTTP/1.1\r\nContent-Length: 2\r\n\r\nhiGET /b HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
    let (reqs, used) = parse_strict(ok).unwrap();
    assert_eq!((reqs.len(), used), (2, ok.len()));
    assert!(parse_strict(b"GET / HTTP/1.1\nHost: a\r\n\r\n").is_err());
    assert!(parse_strict(b"GET / HTTP/1.1\r\nA: b\r\n c\r\n\r\n").is_err());
    assert!(parse_strict(b"POST / HTTP/1.1\r\nContent-Length: 1\r\nTransfer-Encoding: chunked\r\n\r\n").is_err());
}
