//! The body of a vendor response served first-party: JavaScript, CSS and JSON
//! go through [`crate::rewrite::vendor_body`] (the vendor's own URLs pointed at
//! the first-party path), with their content coding decoded and re-encoded,
//! chunk by chunk and bounded. Everything else passes untouched.
//!
//! Scripts and stylesheets are also hashed (SHA-256 of the decoded body as the
//! vendor sent it, before rewriting) for script-change detection
//! ([`crate::inventory::assets`]): while streaming, the hash only records; a
//! pinned path is held whole and checked before release (`pinned`).

use bytes::Bytes;
use pingora::http::ResponseHeader;
use sha2::{Digest, Sha256};

use super::codec::{CodecError, Decoder, Encoder};
use crate::policy::Vendor;
use crate::rewrite::vendor_body::{VendorBody, VendorUrlMap};

/// One vendor response being rewritten.
#[derive(Debug)]
pub struct VendorBodyPipeline {
    decoder: Option<Decoder>,
    rewriter: VendorBody,
    encoder: Option<Encoder>,
    /// SHA-256 of the decoded body (scripts and stylesheets), and the asset it is of.
    hash: Option<(Sha256, AssetKey)>,
}

/// Which vendor asset a body is: `(vendor id, host, path without query)`.
pub type AssetKey = (String, String, String);

/// Scripts and stylesheets: the bodies script-change detection hashes.
pub fn is_script_or_style(content_type: Option<&str>) -> bool {
    let Some(ct) = content_type else { return false };
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(
        mime.as_str(),
        "application/javascript"
            | "text/javascript"
            | "application/x-javascript"
            | "application/ecmascript"
            | "text/ecmascript"
            | "text/css"
    )
}

/// Content types whose URLs a widget loads next: scripts, styles, JSON config.
pub fn is_rewritable(content_type: Option<&str>) -> bool {
    if is_script_or_style(content_type) {
        return true;
    }
    let Some(ct) = content_type else { return false };
    let mime = ct.split(';').next().unwrap_or_default().trim().to_ascii_lowercase();
    matches!(mime.as_str(), "application/json" | "text/json" | "application/manifest+json") || mime.ends_with("+json")
}

impl VendorBodyPipeline {
    /// Sets up rewriting for `resp` when it is a rewritable 2xx body in a coding we
    /// can read, and adjusts its headers (length, validators, coding). `None`:
    /// the body passes as it is (the CSP still refuses whatever it names).
    pub fn start(
        resp: &mut ResponseHeader,
        site: &url::Url,
        prefix: &str,
        vendor: &Vendor,
        accept_encoding: Option<&str>,
    ) -> pingora::Result<Option<VendorBodyPipeline>> {
        let status = resp.status.as_u16();
        let ct = resp.headers.get("content-type").and_then(|v| v.to_str().ok());
        if !(200..300).contains(&status) || status == 204 || status == 206 || !is_rewritable(ct) {
            return Ok(None);
        }
        let ce = resp.headers.get("content-encoding").and_then(|v| v.to_str().ok());
        let Some(decoder) = Decoder::for_content_encoding(ce) else { return Ok(None) };
        let Some(map) = VendorUrlMap::new(site, prefix, &vendor.id, vendor.hosts.clone()) else { return Ok(None) };
        let encoder = Encoder::for_accept_encoding(accept_encoding);
        let _ = resp.remove_header("content-length");
        let _ = resp.remove_header("accept-ranges");
        let _ = resp.remove_header("etag");
        match encoder.content_encoding() {
            Some(ce) => resp.insert_header("content-encoding", ce)?,
            None => {
                let _ = resp.remove_header("content-encoding");
            }
        }
        resp.append_header("vary", "Accept-Encoding")?;
        Ok(Some(VendorBodyPipeline {
            decoder: Some(decoder),
            rewriter: VendorBody::new(map),
            encoder: Some(encoder),
            hash: None,
        }))
    }

    /// Hashes the decoded body as asset `key` (call before the first chunk).
    pub fn hash_as(&mut self, key: AssetKey) {
        self.hash = Some((Sha256::new(), key));
    }

    /// After the last chunk: the asset and its SHA-256, if it was hashed.
    pub fn take_digest(&mut self) -> Option<(AssetKey, [u8; 32])> {
        let (hasher, key) = self.hash.take()?;
        Some((key, hasher.finalize().into()))
    }

    /// Feeds one body chunk; returns what to send.
    pub fn feed(&mut self, chunk: &[u8], end: bool) -> Result<Bytes, CodecError> {
        let mut out = Vec::new();
        let rewriter = &mut self.rewriter;
        let mut hasher = self.hash.as_mut().map(|(h, _)| h);
        let decoder = self.decoder.as_mut().ok_or(CodecError::Finished)?;
        decoder.decode(chunk, &mut |piece| {
            if let Some(h) = hasher.as_mut() {
                h.update(piece);
            }
            out.extend(rewriter.write(piece));
            Ok::<(), CodecError>(())
        })?;
        if end {
            let rest = self.decoder.take().ok_or(CodecError::Finished)?.finish()?;
            if let Some(h) = hasher.as_mut() {
                h.update(&rest);
            }
            out.extend(self.rewriter.write(&rest));
            out.extend(self.rewriter.end());
        }
        let encoder = self.encoder.as_mut().ok_or(CodecError::Finished)?;
        let mut encoded = encoder.encode(out)?;
        if end {
            encoded.extend(self.encoder.take().ok_or(CodecError::Finished)?.finish()?);
        }
        Ok(Bytes::from(encoded))
    }
}

/// Rewrites one body chunk of a vendor response in place. An error fails the
/// response closed: never the raw rest (after the first byte the connection
/// closes without the final chunk).
/// At the end of a hashed script or stylesheet, records its hash (and counts a change).
pub(super) fn rewrite_vendor_body(
    p: &mut VendorBodyPipeline,
    body: &mut Option<Bytes>,
    end: bool,
    shared: &super::Shared,
) -> pingora::Result<()> {
    let input = body.take().unwrap_or_default();
    match p.feed(&input, end) {
        Ok(out) => {
            *body = Some(out);
            if end && let Some(((vendor, host, path), digest)) = p.take_digest() {
                shared.evidence.asset(&vendor, &host, &path, digest, &shared.metrics);
            }
            Ok(())
        }
        Err(e) => {
            tracing::warn!(error = %e, "vendor body rewriting failed; response aborted");
            Err(pingora::Error::explain(pingora::ErrorType::HTTPStatus(502), "vendor body rewrite aborted"))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use std::io::{Read, Write};

    use super::*;

    fn policy() -> crate::policy::Policy {
        crate::rules::load_dir(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("rules")).unwrap()
    }

    fn gzip(data: &[u8]) -> Vec<u8> {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(data).unwrap();
        e.finish().unwrap()
    }

    fn run(resp: &mut ResponseHeader, body: &[u8], chunk: usize, accept: Option<&str>) -> Option<Vec<u8>> {
        let site = url::Url::parse("https://clinic.example/_tw/zendesk/static.zdassets.com/ekr/snippet.js").unwrap();
        let policy = policy();
        let zendesk = policy.vendor_by_id("zendesk").unwrap().1;
        let mut p = VendorBodyPipeline::start(resp, &site, "/_tw", zendesk, accept).unwrap()?;
        let mut out = Vec::new();
        let pieces: Vec<&[u8]> = body.chunks(chunk).collect();
        for (i, piece) in pieces.iter().enumerate() {
            out.extend_from_slice(&p.feed(piece, i + 1 == pieces.len()).unwrap());
        }
        if pieces.is_empty() {
            out.extend_from_slice(&p.feed(b"", true).unwrap());
        }
        Some(out)
    }

    const JS: &str = "x.open('GET','https://ekr.zdassets.com/compose/'+k);fetch('https://www.google-analytics.com/c')";
    const OUT: &str = "x.open('GET','https://clinic.example/_tw/zendesk/ekr.zdassets.com/compose/'+k);fetch('https://www.google-analytics.com/c')";

    #[test]
    fn gzip_from_the_vendor_is_decoded_rewritten_and_re_encoded_for_the_client() {
        for chunk in [1, 7, 64, 4096] {
            let mut resp = ResponseHeader::build(200, None).unwrap();
            resp.insert_header("content-type", "application/javascript").unwrap();
            resp.insert_header("content-encoding", "gzip").unwrap();
            resp.insert_header("content-length", "999").unwrap();
            resp.insert_header("etag", "\"v1\"").unwrap();
            let out = run(&mut resp, &gzip(JS.as_bytes()), chunk, Some("gzip, br")).unwrap();
            let mut plain = String::new();
            flate2::read::GzDecoder::new(&out[..]).read_to_string(&mut plain).unwrap();
            assert_eq!(plain, OUT, "chunk {chunk}");
            assert!(resp.headers.get("content-length").is_none() && resp.headers.get("etag").is_none());
            assert_eq!(resp.headers.get("content-encoding").unwrap(), "gzip");
        }
    }

    #[test]
    fn identity_for_a_client_that_takes_no_gzip() {
        let mut resp = ResponseHeader::build(200, None).unwrap();
        resp.insert_header("content-type", "text/javascript; charset=utf-8").unwrap();
        resp.insert_header("content-encoding", "gzip").unwrap();
        let out = run(&mut resp, &gzip(JS.as_bytes()), 5, None).unwrap();
        assert_eq!(String::from_utf8(out).unwrap(), OUT);
        assert!(resp.headers.get("content-encoding").is_none());
    }

    #[test]
    fn images_errors_ranges_and_unknown_codings_pass_untouched() {
        for (status, ct, ce) in [
            (200, "image/png", None),
            (404, "application/javascript", None),
            (206, "application/javascript", None),
            (200, "application/javascript", Some("zstd")),
        ] {
            let mut resp = ResponseHeader::build(status, None).unwrap();
            resp.insert_header("content-type", ct).unwrap();
            if let Some(ce) = ce {
                resp.insert_header("content-encoding", ce).unwrap();
            }
            assert!(run(&mut resp, JS.as_bytes(), 16, None).is_none(), "{status} {ct} {ce:?}");
        }
    }
}
