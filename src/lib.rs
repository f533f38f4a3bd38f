//! tagwarden: an edge reverse proxy that keeps unvetted third parties off
//! healthcare web pages.
//!
//! Module map (pure core first, I/O last):
//! - [`rules`]: rule files (TOML) → located errors → [`policy::Policy`]
//! - [`policy`]: the compiled policy and `decide()` for every construct
//! - [`rewrite`]: the streaming lol_html rewriter (`HtmlStream`), CSS and URL reading
//! - [`shim`]: the run-time script for what no CSP directive governs (hints, WebRTC)
//! - [`proxy`]: the pingora `ProxyHttp` implementation and its accept loop
//! - [`serve`]: wiring for `tagwarden serve` (admin listener, demo origin, reload)
//! - [`admin`], [`demo`]: pingora `ServeHttp` apps on the proxy's accept loop ([`respond`] builds their responses)
//! - [`config`], [`metrics`], [`telemetry`], [`reload`], [`decision_log`] (PHI-free JSON lines per document)
//! - [`diff`]: a rule change's effect on saved pages (`tagwarden diff`)
//! - [`inventory`]: the live third-party inventory and vendor asset hashes (`/inventory`)
//! - [`cli`]: `tagwarden check | rewrite | diff | serve`
//! - [`handoff`]: listening sockets handed to a new binary (zero-downtime upgrade)
//!
//! `unsafe` is denied everywhere but one audited block in [`handoff`], which
//! adopts the sockets received over `SCM_RIGHTS`.
#![deny(unsafe_code)]

pub mod admin;
pub mod cli;
pub mod config;
pub mod csp;
pub mod decision_log;
pub mod demo;
pub mod diff;
pub mod handoff;
pub mod inventory;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod reload;
pub mod respond;
pub mod rewrite;
pub mod rules;
pub mod serve;
pub mod shim;
pub mod telemetry;
