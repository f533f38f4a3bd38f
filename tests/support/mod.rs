//! What the integration tests share, as one module: each test says `mod support;`.
//!
//! - [`child_proxy`]: tagwarden as a child process, its memory, CPU time and descriptors from `/proc`
//! - [`common`]: the shipped rules and page contexts, chunk plans, the first-party test
//! - [`corpus`]: the shared corpus of real pages and their sites
//! - [`http`]: raw HTTP/1.1 test origins, vendor sinks and client
//! - [`loads`]: the independent oracle (html5ever + cssparser): every load a page makes
//! - [`rules_dir`]: a rules directory in a tempdir to write mistakes into
//! - [`strict_origin`]: a recording origin with a strict HTTP/1.1 parser (smuggling suite)
//! - [`tls_vendor`]: a TLS vendor sink with a throwaway CA, reached through `[vendors] resolve`
//! - [`vendor_env`]: tagwarden in front of an origin and TLS vendor sinks (vendor path and SSRF suites)
//!
//! (`browser/` is the browser suite's own support, used by `tests/browser.rs` only.)
// Each test binary uses part of this module: unused items are expected here, and only here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod child_proxy;
pub mod common;
pub mod corpus;
pub mod http;
pub mod loads;
pub mod rules_dir;
pub mod strict_origin;
pub mod tls_vendor;
pub mod vendor_env;
