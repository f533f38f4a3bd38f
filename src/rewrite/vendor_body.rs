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

/// What a vendor URL's scheme and authority become, per kind, plain and
/// JSON-escaped, built once per response.
#[derive(Debug)]
struct Prefixes {
    http: String,
    ws: String,
    relative: String,
    http_escaped: String,
    ws_escaped: String,
    relative_escaped: String,
}

impl Prefixes {
    fn new(m: &VendorUrlMap) -> Prefixes {
        let http = format!("{}{}/{}/", m.site_origin, m.prefix, m.vendor);
        let ws = format!("{}{}/{}/", m.ws_origin, m.prefix, m.vendor);
        let relative = format!("//{}{}/{}/", m.site_authority, m.prefix, m.vendor);
        let esc = |s: &str| s.replace('/', "\\/");
        Prefixes {
            http_escaped: esc(&http),
            ws_escaped: esc(&ws),
            relative_escaped: esc(&relative),
            http,
            ws,
            relative,
        }
    }

    fn get(&self, kind: Kind, escaped: bool) -> &str {
        match (kind, escaped) {
            (Kind::Http, false) => &self.http,
            (Kind::Ws, false) => &self.ws,
            (Kind::Relative, false) => &self.relative,
            (Kind::Http, true) => &self.http_escaped,
            (Kind::Ws, true) => &self.ws_escaped,
            (Kind::Relative, true) => &self.relative_escaped,
        }
    }
}

/// A streaming rewriter for one vendor response body.
#[derive(Debug)]
pub struct VendorBody {
    map: VendorUrlMap,
    prefixes: Prefixes,
    /// Bytes not yet emitted, after up to [`CONTEXT`] bytes already emitted.
    buf: Vec<u8>,
    /// `buf[..pos]` has been emitted (it is context only).
    pos: usize,
    /// URLs rewritten so far.
    pub rewritten: u64,
}

enum Scan {
    /// A rewrite: `buf[start..end]` becomes the first-party prefix for `kind`
    /// (escaped or not) followed by the lower-cased host.
    Rewrite { start: usize, end: usize, kind: Kind, escaped: bool, host: (usize, usize) },
    /// Not a URL to rewrite; scanning resumes at `next`.
    Skip { next: usize },
    /// Undecidable until more bytes arrive; nothing from `start` on may be emitted.
    NeedMore { start: usize },
}

impl VendorBody {
    pub fn new(map: VendorUrlMap) -> VendorBody {
        VendorBody { prefixes: Prefixes::new(&map), map, buf: Vec::new(), pos: 0, rewritten: 0 }
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
                Scan::Rewrite { start, end, kind, escaped, host } => {
                    out.extend_from_slice(&self.buf[self.pos..start]);
                    out.extend_from_slice(self.prefixes.get(kind, escaped).as_bytes());
                    out.extend(self.buf[host.0..host.1].iter().map(u8::to_ascii_lowercase));
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
        // Host characters are ASCII; a trailing dot is the same host.
        let mut host_end = k;
        while host_end > after && b[host_end - 1] == b'.' {
            host_end -= 1;
        }
        let raw = std::str::from_utf8(&b[after..host_end]).unwrap_or_default();
        let owned = if raw.bytes().any(|c| c.is_ascii_uppercase()) {
            self.map.owns(&raw.to_ascii_lowercase())
        } else {
            self.map.owns(raw)
        };
        if !owned {
            return Scan::Skip { next: k };
        }
        Scan::Rewrite { start, end: k, kind, escaped, host: (after, host_end) }
    }
}

#[derive(Debug, Clone, Copy)]
enum Kind {
    Http,
    Ws,
    Relative,
}

/// The next `//` or `\/\/` at or after `from` (`memchr` finds the candidates:
/// vendor bundles are mostly code without either).
fn find_slashes(b: &[u8], from: usize) -> Option<usize> {
    let mut i = from;
    while i + 1 < b.len() {
        i += memchr::memchr2(b'/', b'\\', &b[i..b.len() - 1])?;
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
