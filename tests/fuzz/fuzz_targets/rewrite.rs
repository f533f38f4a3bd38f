//! Arbitrary bytes through `HtmlStream` with the shipped rules, split at a
//! data-derived chunk size: no panic; chunking and re-rewriting change nothing.
//! See `tagwarden_fuzz::check_rewrite`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    tagwarden_fuzz::check_rewrite(data);
});
