//! tagwarden: an edge reverse proxy that keeps unvetted third parties off
//! healthcare web pages.
//!
//! Module map (pure core first, I/O last):
//! - [`rules`]: rule files (TOML) → located errors → [`policy::Policy`]
//! - [`policy`]: the compiled policy and `decide()` for every construct
//! - [`rewrite`]: the streaming lol_html rewriter (`HtmlStream`), CSS and URL reading
//! - [`cli`]: `tagwarden check | rewrite | serve`
#![forbid(unsafe_code)]

pub mod cli;
pub mod policy;
pub mod rewrite;
pub mod rules;
