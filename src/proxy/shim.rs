//! `<prefix>/shim.js`: the run-time shim ([`crate::shim`]), served by tagwarden
//! itself, immutable under its versioned URL.

use pingora::http::ResponseHeader;
use pingora::proxy::Session;

use super::Warden;

impl Warden {
    /// Answers `GET`/`HEAD <prefix>/shim.js`; other methods get 405.
    pub(super) async fn serve_shim(&self, session: &mut Session) -> pingora::Result<()> {
        let method = session.req_header().method.clone();
        if method != http::Method::GET && method != http::Method::HEAD {
            let mut h = ResponseHeader::build(405, Some(2))?;
            h.insert_header("allow", "GET, HEAD")?;
            h.insert_header("content-length", "0")?;
            session.write_response_header(Box::new(h), true).await?;
            return Ok(());
        }
        // An old page after a deploy asks for an old version: it gets this one, not cached long.
        let versioned = session.req_header().uri.query().is_some_and(|q| q == format!("v={}", crate::shim::version()));
        let body = bytes::Bytes::from_static(crate::shim::SHIM_JS.as_bytes());
        let mut h = ResponseHeader::build(200, Some(5))?;
        h.insert_header("content-type", "text/javascript; charset=utf-8")?;
        h.insert_header("content-length", body.len().to_string())?;
        h.insert_header("x-content-type-options", "nosniff")?;
        h.insert_header("cache-control", if versioned { "public, max-age=31536000, immutable" } else { "no-cache" })?;
        let head_only = method == http::Method::HEAD;
        session.write_response_header(Box::new(h), head_only).await?;
        if !head_only {
            session.write_response_body(Some(body), true).await?;
        }
        Ok(())
    }
}
