//! Content codings around the rewriter: the origin's body is decoded (gzip,
//! deflate — zlib or raw — and br) before rewriting, and the rewritten body is
//! gzip-encoded for clients that accept it (identity otherwise). Decoding feeds
//! small slices so one compressed chunk cannot balloon into a large buffer.

use std::io::Write;

use flate2::Compression;
use flate2::write::{DeflateDecoder, GzEncoder, MultiGzDecoder, ZlibDecoder};

use crate::rewrite::RewriteError;

/// Largest compressed slice decoded at once: deflate expands at most ~1032×,
/// so one slice yields at most ~0.5 MiB.
const DECODE_SLICE: usize = 512;

/// A body that cannot be decoded or encoded. Either way the response fails closed.
#[derive(Debug, thiserror::Error)]
pub enum CodecError {
    /// Corrupt or truncated compressed data from the origin.
    #[error("content decoding: {0}")]
    Decode(#[source] std::io::Error),
    /// The brotli stream ended before its last block.
    #[error("content decoding: truncated brotli stream")]
    TruncatedBrotli,
    /// Compressing the rewritten body for the client failed.
    #[error("content encoding: {0}")]
    Encode(#[source] std::io::Error),
    /// A body chunk after the end of the body.
    #[error("body data after its end")]
    Finished,
}

impl From<CodecError> for RewriteError {
    fn from(e: CodecError) -> Self {
        match e {
            CodecError::Decode(_) | CodecError::TruncatedBrotli => RewriteError::ContentDecoding(e.to_string()),
            CodecError::Encode(_) | CodecError::Finished => RewriteError::ContentEncoding(e.to_string()),
        }
    }
}

/// A content coding we can undo.
pub enum Decoder {
    Identity,
    Gzip(Box<MultiGzDecoder<Vec<u8>>>),
    /// `deflate` is zlib-wrapped per RFC 9110, but some servers send raw deflate:
    /// decided from the first byte.
    Deflate(Option<Box<DeflateKind>>),
    Br(Box<brotli::DecompressorWriter<Vec<u8>>>),
}

#[derive(Debug)]
pub enum DeflateKind {
    Zlib(ZlibDecoder<Vec<u8>>),
    Raw(DeflateDecoder<Vec<u8>>),
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Decoder::Identity => "identity",
            Decoder::Gzip(_) => "gzip",
            Decoder::Deflate(_) => "deflate",
            Decoder::Br(_) => "br",
        })
    }
}

impl Decoder {
    /// `None` for a coding we cannot decode (the response must then fail closed).
    pub fn for_content_encoding(value: Option<&str>) -> Option<Decoder> {
        let v = value.map(|v| v.trim().to_ascii_lowercase()).unwrap_or_default();
        match v.as_str() {
            "" | "identity" => Some(Decoder::Identity),
            "gzip" | "x-gzip" => Some(Decoder::Gzip(Box::new(MultiGzDecoder::new(Vec::new())))),
            "deflate" => Some(Decoder::Deflate(None)),
            "br" => Some(Decoder::Br(Box::new(brotli::DecompressorWriter::new(Vec::new(), 4096)))),
            _ => None,
        }
    }

    /// Decodes `input`, calling `sink` with each decoded piece. The sink's own
    /// errors come back unchanged, so a rewriting error keeps its kind.
    pub fn decode<E: From<CodecError>>(
        &mut self,
        input: &[u8],
        sink: &mut dyn FnMut(&[u8]) -> Result<(), E>,
    ) -> Result<(), E> {
        if let Decoder::Identity = self {
            return sink(input);
        }
        for slice in input.chunks(DECODE_SLICE) {
            let out = self.write_slice(slice).map_err(CodecError::Decode)?;
            if !out.is_empty() {
                sink(&out)?;
            }
        }
        Ok(())
    }

    fn write_slice(&mut self, slice: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Decoder::Identity => Ok(slice.to_vec()),
            Decoder::Gzip(d) => {
                d.write_all(slice)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
            Decoder::Deflate(kind) => {
                let k = kind.get_or_insert_with(|| {
                    // A zlib stream starts with CMF 0x?8 where (CMF*256+FLG) % 31 == 0.
                    let zlib = slice.len() >= 2
                        && slice[0] & 0x0f == 8
                        && (u16::from(slice[0]) * 256 + u16::from(slice[1])) % 31 == 0;
                    Box::new(if zlib {
                        DeflateKind::Zlib(ZlibDecoder::new(Vec::new()))
                    } else {
                        DeflateKind::Raw(DeflateDecoder::new(Vec::new()))
                    })
                });
                match k.as_mut() {
                    DeflateKind::Zlib(d) => {
                        d.write_all(slice)?;
                        d.flush()?;
                        Ok(std::mem::take(d.get_mut()))
                    }
                    DeflateKind::Raw(d) => {
                        d.write_all(slice)?;
                        d.flush()?;
                        Ok(std::mem::take(d.get_mut()))
                    }
                }
            }
            Decoder::Br(d) => {
                d.write_all(slice)?;
                d.flush()?;
                Ok(std::mem::take(d.get_mut()))
            }
        }
    }

    /// Ends the stream; errors on a truncated or corrupt encoding.
    pub fn finish(self) -> Result<Vec<u8>, CodecError> {
        let err = CodecError::Decode;
        match self {
            Decoder::Identity | Decoder::Deflate(None) => Ok(Vec::new()),
            Decoder::Gzip(d) => d.finish().map_err(err),
            Decoder::Deflate(Some(k)) => match *k {
                DeflateKind::Zlib(d) => d.finish().map_err(err),
                DeflateKind::Raw(d) => d.finish().map_err(err),
            },
            Decoder::Br(d) => d.into_inner().map_err(|_| CodecError::TruncatedBrotli),
        }
    }
}

/// gzip level of rewritten bodies: 1, nginx's default `gzip_comp_level`. Level 5 cost
/// more than the whole rewriter on a 140 KB page for ~12 % fewer bytes (issue 12:
/// `tests/bench/wrk.sh`, P2).
const GZIP_LEVEL: u32 = 1;

/// The coding the rewritten body is sent in.
pub enum Encoder {
    Identity,
    Gzip(Box<GzEncoder<Vec<u8>>>),
}

impl std::fmt::Debug for Encoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if matches!(self, Encoder::Identity) { "identity" } else { "gzip" })
    }
}

impl Encoder {
    /// gzip when the client's `Accept-Encoding` accepts it (q > 0), else identity.
    pub fn for_accept_encoding(accept: Option<&str>) -> Encoder {
        let gzip = accept.is_some_and(|a| {
            a.split(',').any(|item| {
                let mut parts = item.split(';');
                let coding = parts.next().unwrap_or_default().trim().to_ascii_lowercase();
                let q = parts
                    .find_map(|p| p.trim().strip_prefix("q=").and_then(|q| q.trim().parse::<f32>().ok()))
                    .unwrap_or(1.0);
                (coding == "gzip" || coding == "x-gzip") && q > 0.0
            })
        });
        if gzip {
            Encoder::Gzip(Box::new(GzEncoder::new(Vec::new(), Compression::new(GZIP_LEVEL))))
        } else {
            Encoder::Identity
        }
    }

    pub fn content_encoding(&self) -> Option<&'static str> {
        match self {
            Encoder::Identity => None,
            Encoder::Gzip(_) => Some("gzip"),
        }
    }

    /// Encodes `input` and flushes, so every chunk reaches the client as soon as
    /// it is rewritten.
    pub fn encode(&mut self, input: Vec<u8>) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoder::Identity => Ok(input),
            Encoder::Gzip(e) => {
                if input.is_empty() {
                    return Ok(Vec::new());
                }
                e.write_all(&input).and_then(|()| e.flush()).map_err(CodecError::Encode)?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    pub fn finish(self) -> Result<Vec<u8>, CodecError> {
        match self {
            Encoder::Identity => Ok(Vec::new()),
            Encoder::Gzip(e) => e.finish().map_err(CodecError::Encode),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(mut d: Decoder, input: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        d.decode::<CodecError>(input, &mut |b| {
            out.extend_from_slice(b);
            Ok(())
        })
        .unwrap();
        out.extend(d.finish().unwrap());
        out
    }

    #[test]
    fn gzip_deflate_zlib_and_br_round_trip() {
        let text = b"<html><body>hello</body></html>".repeat(100);
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&text).unwrap();
        assert_eq!(decode_all(Decoder::for_content_encoding(Some("gzip")).unwrap(), &gz.finish().unwrap()), text);
        let mut z = flate2::write::ZlibEncoder::new(Vec::new(), Compression::default());
        z.write_all(&text).unwrap();
        assert_eq!(decode_all(Decoder::for_content_encoding(Some("deflate")).unwrap(), &z.finish().unwrap()), text);
        let mut raw = flate2::write::DeflateEncoder::new(Vec::new(), Compression::default());
        raw.write_all(&text).unwrap();
        assert_eq!(decode_all(Decoder::for_content_encoding(Some("Deflate")).unwrap(), &raw.finish().unwrap()), text);
        let mut br = Vec::new();
        brotli::BrotliCompress(&mut &text[..], &mut br, &Default::default()).unwrap();
        assert_eq!(decode_all(Decoder::for_content_encoding(Some("br")).unwrap(), &br), text);
    }

    #[test]
    fn unknown_codings_are_refused() {
        assert!(Decoder::for_content_encoding(Some("zstd")).is_none());
        assert!(Decoder::for_content_encoding(Some("gzip, br")).is_none());
    }

    #[test]
    fn truncated_gzip_is_an_error() {
        let mut gz = GzEncoder::new(Vec::new(), Compression::default());
        gz.write_all(&b"x".repeat(10_000)).unwrap();
        let bytes = gz.finish().unwrap();
        let mut d = Decoder::for_content_encoding(Some("gzip")).unwrap();
        d.decode::<CodecError>(&bytes[..bytes.len() / 2], &mut |_| Ok(())).unwrap();
        assert!(d.finish().is_err());
    }

    #[test]
    fn accept_encoding_q_values() {
        assert!(matches!(Encoder::for_accept_encoding(Some("gzip, deflate, br")), Encoder::Gzip(_)));
        assert!(matches!(Encoder::for_accept_encoding(Some("br;q=1, gzip;q=0")), Encoder::Identity));
        assert!(matches!(Encoder::for_accept_encoding(None), Encoder::Identity));
    }
}
