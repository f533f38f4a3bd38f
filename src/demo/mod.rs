//! The built-in demo clinic: a small origin served from inside the process when
//! no upstream is configured, so `tagwarden serve` with no arguments shows pages
//! being cleaned. Its pages carry the snippets real clinic sites carry: the
//! Zendesk Web Widget (allowed, rewritten first-party), and the Meta Pixel, gtag,
//! Hotjar and Intercom (removed), with a noscript pixel.

pub mod vendor;

use async_trait::async_trait;
use http::header::CACHE_CONTROL;
use http::{Method, Response};
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;

use crate::respond::{response, text, with_header};

const INDEX: &str = include_str!("index.html");
const APPOINTMENTS: &str = include_str!("appointments.html");
const CONDITION: &str = include_str!("condition.html");
const CSS: &str = include_str!("site.css");
const JS: &str = include_str!("app.js");
const LOGO: &str = include_str!("logo.svg");

/// Answers one demo-origin request.
pub fn page(method: &Method, path: &str) -> Response<Vec<u8>> {
    if method != Method::GET && method != Method::HEAD {
        return text(405, "method not allowed\n");
    }
    let html = "text/html; charset=utf-8";
    let cached = |r| with_header(r, CACHE_CONTROL, "max-age=60");
    match path {
        "/" => response(200, html, INDEX),
        // The visitor's session cookie: it must never reach the support vendor.
        "/appointments" => with_header(
            response(200, html, APPOINTMENTS),
            http::header::SET_COOKIE,
            "clinic_session=demo-patient-42; Path=/; HttpOnly; SameSite=Lax",
        ),
        "/conditions/diabetes" => response(200, html, CONDITION),
        "/static/site.css" => cached(response(200, "text/css", CSS)),
        "/static/app.js" => cached(response(200, "text/javascript", JS)),
        "/static/logo.svg" => cached(response(200, "image/svg+xml", LOGO)),
        _ => response(404, html, "<!doctype html><title>Not found</title><h1>Not found</h1>\n"),
    }
}

/// The demo origin as a pingora app. With the demo vendor running, its log is
/// readable at `/_demo/vendor-log` (what the support vendor was told).
#[derive(Debug, Default)]
pub struct DemoOrigin {
    pub vendor_log: Option<vendor::VendorLog>,
}

#[async_trait]
impl ServeHttp for DemoOrigin {
    async fn response(&self, session: &mut ServerSession) -> Response<Vec<u8>> {
        let req = session.req_header();
        if req.uri.path() == "/_demo/vendor-log"
            && let Some(log) = &self.vendor_log
        {
            return text(200, log.render());
        }
        page(&req.method, req.uri.path())
    }
}
