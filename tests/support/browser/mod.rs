//! Support for `tests/browser.rs`: a DevTools client (CDP over tokio-tungstenite),
//! the Chromium launcher, the loopback sinks and the in-process stack.
#![allow(dead_code)]

pub mod cdp;
pub mod chrome;
pub mod harness;
pub mod runtime;
pub mod sinks;
pub mod widget;
