//! Rewriting of what an allowed vendor serves through the first-party path
//! (JavaScript, CSS, JSON): absolute, protocol-relative and WebSocket URLs of
//! the hosts *that vendor's rule owns* are pointed at `<prefix>/<vendor>/<host>/…`
//! on the site, so the widget's next requests come back through tagwarden.
//!
//! Found as a browser-facing script would spell them: `https://h/…`,
//! `http://h/…`, `wss://h/…`, `ws://h/…`, `//h/…` (right after a quote or
//! `(`, so `a //comment` is not a URL), and the JSON-escaped
//! forms `https:\/\/h\/…` and `\/\/h\/…`. Hosts of other vendors and unknown
//! hosts are left alone: the CSP refuses them and its report names the vendor.
//! A host followed by an explicit port is left alone too (the first-party path
//! names a host, not a port). Nothing else in the body changes.
//!
//! Streaming and bounded: a URL split across chunks is held back until it is
//! complete, so at most [`MAX_HELD`] bytes wait in memory whatever the body size.
//! Pure: bytes in, bytes out.

use crate::policy::HostPattern;

/// The longest host name (RFC 1035) plus the longest prefix we recognise
/// (`https:\/\/`): what may be held back across a chunk boundary.
pub const MAX_HELD: usize = 253 + 16;

/// Bytes of emitted context kept to read a scheme or the byte before `//`.
const CONTEXT: usize = 8;

/// Where a vendor's URLs go on the site.
#[derive(Debug, Clone)]
pub struct VendorUrlMap {
    /// `https://clinic.example` (the page's scheme and authority).
    pub site_origin: String,
    /// `wss://clinic.example` (or `ws://` on an http site).
    pub ws_origin: String,
    /// `clinic.example` (for protocol-relative URLs).
    pub site_authority: String,
    /// First-party prefix, e.g. `/_tw`.
    pub prefix: String,
    /// The vendor's rule id.
    pub vendor: String,
    /// Hosts the vendor's rule owns.
    pub hosts: Vec<HostPattern>,
}

impl VendorUrlMap {
    /// The map for a site reached at `site` (`https://clinic.example/…`).
    pub fn new(site: &url::Url, prefix: &str, vendor: &str, hosts: Vec<HostPattern>) -> Option<VendorUrlMap> {
        let host = site.host_str()?;
        let authority = match site.port() {
            Some(p) => format!("{host}:{p}"),
            None => host.to_string(),
        };
        let (http, ws) = if site.scheme() == "https" { ("https", "wss") } else { ("http", "ws") };
        Some(VendorUrlMap {
            site_origin: format!("{http}://{authority}"),
            ws_origin: format!("{ws}://{authority}"),
            site_authority: authority,
            prefix: prefix.to_string(),
            vendor: vendor.to_string(),
            hosts,
        })
    }

    fn owns(&self, host: &str) -> bool {
        self.hosts.iter().any(|p| p.matches(host))
    }
}

/// A streaming rewriter for one vendor response body.
#[derive(Debug)]
pub struct VendorBody {
    map: VendorUrlMap,
    /// Bytes not yet emitted, after up to [`CONTEXT`] bytes already emitted.
    buf: Vec<u8>,
    /// `buf[..pos]` has been emitted (it is context only).
    pos: usize,
    /// URLs rewritten so far.
    pub rewritten: u64,
}

enum Scan {
    /// A rewrite: `buf[start..end]` becomes `replacement`.
    Rewrite { start: usize, end: usize, replacement: Vec<u8> },
    /// Not a URL to rewrite; scanning resumes at `next`.
    Skip { next: usize },
    /// Undecidable until more bytes arrive; nothing from `start` on may be emitted.
    NeedMore { start: usize },
}

impl VendorBody {
    pub fn new(map: VendorUrlMap) -> VendorBody {
        VendorBody { map, buf: Vec::new(), pos: 0, rewritten: 0 }
    }

    /// Rewrites what can be decided so far.
    pub fn write(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.buf.extend_from_slice(chunk);
        self.process(false)
    }

    /// The rest of the body.
    pub fn end(&mut self) -> Vec<u8> {
        self.process(true)
    }

    fn process(&mut self, eof: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.buf.len() - self.pos + 64);
        let mut i = self.pos;
        // Without end of input, the last bytes may be the start of `https:\/\/`.
        let hold_from = if eof { self.buf.len() } else { self.buf.len().saturating_sub(9).max(self.pos) };
        let mut emit_to = hold_from;
        while let Some(j) = find_slashes(&self.buf, i) {
            match self.scan(j, eof) {
                Scan::Rewrite { start, end, replacement } => {
                    out.extend_from_slice(&self.buf[self.pos..start]);
                    out.extend_from_slice(&replacement);
                    self.pos = end;
                    self.rewritten += 1;
                    i = end;
                }
                Scan::Skip { next } => i = next,
                Scan::NeedMore { start } => {
                    emit_to = emit_to.min(start);
                    break;
                }
            }
        }
        let emit_to = emit_to.max(self.pos);
        out.extend_from_slice(&self.buf[self.pos..emit_to]);
        self.pos = emit_to;
        // Keep a little emitted context for the next look-behind; drop the rest.
        let drop = self.pos.saturating_sub(CONTEXT);
        self.buf.drain(..drop);
        self.pos -= drop;
        out
    }

    /// Reads the URL whose `//` (or `\/\/`) starts at `j`.
    fn scan(&self, j: usize, eof: bool) -> Scan {
        let b = &self.buf;
        let escaped = b[j] == b'\\';
        let after = j + if escaped { 4 } else { 2 };
        // The scheme before the slashes, if any.
        let (start, kind) = match scheme_before(b, j) {
            Some((len, kind)) => (j - len, kind),
            None => {
                // Protocol-relative only where a URL can begin.
                let ok = j > 0 && matches!(b[j - 1], b'"' | b'\'' | b'`' | b'(');
                if !ok {
                    return Scan::Skip { next: after };
                }
                (j, Kind::Relative)
            }
        };
        let mut k = after;
        while k < b.len() && k - after <= 253 && (b[k].is_ascii_alphanumeric() || b[k] == b'-' || b[k] == b'.') {
            k += 1;
        }
        if k - after > 253 {
            return Scan::Skip { next: k };
        }
        if k == b.len() && !eof {
            return Scan::NeedMore { start };
        }
        let terminated = k == b.len()
            || matches!(
                b[k],
                b'/' | b'\\'
                    | b'"'
                    | b'\''
                    | b'`'
                    | b'?'
                    | b'#'
                    | b')'
                    | b';'
                    | b','
                    | b' '
                    | b'\t'
                    | b'\r'
                    | b'\n'
                    | b'<'
            );
        if k == after || !terminated {
            return Scan::Skip { next: k.max(after) };
        }
        let host = String::from_utf8_lossy(&b[after..k]).to_ascii_lowercase();
        let host = host.trim_end_matches('.');
        if !self.map.owns(host) {
            return Scan::Skip { next: k };
        }
        let m = &self.map;
        let mut replacement = match kind {
            Kind::Http => format!("{}{}/{}/{host}", m.site_origin, m.prefix, m.vendor),
            Kind::Ws => format!("{}{}/{}/{host}", m.ws_origin, m.prefix, m.vendor),
            Kind::Relative => format!("//{}{}/{}/{host}", m.site_authority, m.prefix, m.vendor),
        };
        if escaped {
            replacement = replacement.replace('/', "\\/");
        }
        Scan::Rewrite { start, end: k, replacement: replacement.into_bytes() }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Ws,
    Relative,
}

/// The next `//` or `\/\/` at or after `from`.
fn find_slashes(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < b.len() {
        if b[i] == b'/' && b[i + 1] == b'/' {
            // `\/\/` is found at its backslash; a lone `//` here may be its tail.
            return Some(i);
        }
        if b[i] == b'\\' && b[i + 1] == b'/' {
            if i + 3 < b.len() && b[i + 2] == b'\\' && b[i + 3] == b'/' {
                return Some(i);
            }
            if i + 3 >= b.len() {
                // Possibly `\/\/` split at the end: the caller holds the tail back.
                return None;
            }
        }
        i += 1;
    }
    None
}

/// `https:`, `http:`, `wss:`, `ws:` (any case) ending right before `j`.
fn scheme_before(b: &[u8], j: usize) -> Option<(usize, Kind)> {
    for (name, kind) in [("https:", Kind::Http), ("http:", Kind::Http), ("wss:", Kind::Ws), ("ws:", Kind::Ws)] {
        let n = name.len();
        if j >= n && b[j - n..j].eq_ignore_ascii_case(name.as_bytes()) {
            // Not the tail of a longer scheme (`xhttps:`).
            if j > n && (b[j - n - 1].is_ascii_alphanumeric() || b[j - n - 1] == b'+' || b[j - n - 1] == b'.') {
                return None;
            }
            return Some((n, kind));
        }
    }
    None
}

#[cfg(test)]
mod tests;
