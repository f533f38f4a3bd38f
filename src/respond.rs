//! Small, complete HTTP responses for tagwarden's own listeners (the admin
//! listener and the built-in demo origin), which run as pingora `ServeHttp`
//! apps: the body is known up front, so every response carries its length.

use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HeaderName, HeaderValue};
use http::{Response, StatusCode};

/// A response with `status`, a static content type, `body` and its length.
/// An unknown status code becomes 500 (the callers only use known ones).
pub fn response(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    let body = body.into();
    let mut resp = Response::new(Vec::new());
    *resp.status_mut() = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    resp.headers_mut().insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    resp.headers_mut().insert(CONTENT_LENGTH, HeaderValue::from(body.len()));
    *resp.body_mut() = body;
    resp
}

/// A `text/plain` response.
pub fn text(status: u16, body: impl Into<Vec<u8>>) -> Response<Vec<u8>> {
    response(status, "text/plain; charset=utf-8", body)
}

/// Adds a header with a static value.
pub fn with_header(mut resp: Response<Vec<u8>>, name: HeaderName, value: &'static str) -> Response<Vec<u8>> {
    resp.headers_mut().insert(name, HeaderValue::from_static(value));
    resp
}
