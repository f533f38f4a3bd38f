//! `tests/browser.rs` still says `mod common;`: this is `support::common` for it
//! until it says `mod support;` like every other test. Nothing else belongs here.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

#[path = "../support/common.rs"]
mod shared;
pub use shared::*;
