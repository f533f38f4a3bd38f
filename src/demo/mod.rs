//! The built-in demo clinic: a small origin served from inside the process when
//! no upstream is configured, so `tagwarden serve` with no arguments shows pages
//! being cleaned. Its pages carry the snippets real clinic sites carry: the
//! Zendesk Web Widget (allowed, rewritten first-party), and the Meta Pixel, gtag,
//! Hotjar and Intercom (removed), with a noscript pixel.

pub mod vendor;

use crate::http1::{Request, Response};

const INDEX: &str = include_str!("index.html");
const APPOINTMENTS: &str = include_str!("appointments.html");
const CONDITION: &str = include_str!("condition.html");
const CSS: &str = include_str!("site.css");
const JS: &str = include_str!("app.js");
const LOGO: &str = include_str!("logo.svg");

/// Answers one demo-origin request.
pub async fn handle(req: Request) -> Response {
    if req.method != "GET" && req.method != "HEAD" {
        return Response::text(405, "method not allowed\n");
    }
    let html = "text/html; charset=utf-8";
    match req.path() {
        "/" => Response::new(200, html, INDEX),
        "/appointments" => Response::new(200, html, APPOINTMENTS),
        "/conditions/diabetes" => Response::new(200, html, CONDITION),
        "/static/site.css" => Response::new(200, "text/css", CSS).header("cache-control", "max-age=60"),
        "/static/app.js" => Response::new(200, "text/javascript", JS).header("cache-control", "max-age=60"),
        "/static/logo.svg" => Response::new(200, "image/svg+xml", LOGO).header("cache-control", "max-age=60"),
        _ => Response::new(404, html, "<!doctype html><title>Not found</title><h1>Not found</h1>\n"),
    }
}
