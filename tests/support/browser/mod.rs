//! Support for `tests/browser.rs`: a hand-written DevTools client (WebSocket +
//! CDP), the Chromium launcher, the loopback sinks and the in-process stack.
#![allow(dead_code)]

pub mod cdp;
pub mod chrome;
pub mod harness;
pub mod runtime;
pub mod sinks;
pub mod widget;
pub mod ws;
