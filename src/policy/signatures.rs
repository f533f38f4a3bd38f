//! Inline-script signatures: which vendors' snippets a piece of inline code
//! contains.
//!
//! Every inline script on every page is scanned, and most contain no vendor
//! snippet at all, so the scan is built for the miss: the literal prefixes every
//! signature must start with are extracted from the regexes and searched
//! together in one pass (an Aho-Corasick DFA); only signatures whose prefix
//! occurs are then run as regexes. A signature with no usable prefix (fewer than
//! three bytes, or unbounded) is always run. Matching is on bytes with Unicode
//! classes off (`\b`, `\w` are ASCII), which keeps each regex on a lazy DFA.
//!
//! That pass runs at ~360 MB/s over the corpus's inline scripts (a DFA over 161
//! literals; SIMD Teddy, an alternation regex and rarer anchor substrings were
//! measured no faster, issue 12). Sites send the same inline scripts on every
//! response, so recent results are kept by the SHA-256 of the text ([`Recent`]),
//! which hashes at over 1 GB/s: a repeated script is looked up, not scanned.

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};
use sha2::{Digest, Sha256};

use super::VendorIdx;

/// Compiled signatures of every vendor.
#[derive(Debug)]
pub struct Signatures {
    regexes: Vec<Regex>,
    vendor: Vec<VendorIdx>,
    prefilter: Option<AhoCorasick>,
    /// Literal index → the signatures that need it.
    literal_sigs: Vec<Vec<usize>>,
    /// Signatures without a usable prefix: always run.
    unfiltered: Vec<usize>,
    recent: Recent,
}

/// Texts shorter than this are scanned, not looked up: hashing and locking would
/// cost about as much as the scan.
const RECENT_MIN_BYTES: usize = 256;
/// At most this many results are kept (~64 bytes each, so ~256 KiB); when full,
/// the whole table is dropped and refills with what the site serves now.
const RECENT_MAX_ENTRIES: usize = 4096;

/// Scan results of recent inline texts, keyed by the text's SHA-256 (a collision,
/// which would hand one text another's result, is out of reach even for a page
/// author trying). It belongs to one compiled rules version: a reload builds new
/// signatures and so starts empty.
#[derive(Debug, Default)]
struct Recent(Mutex<HashMap<[u8; 32], Vec<VendorIdx>>>);

impl Recent {
    fn get(&self, key: &[u8; 32]) -> Option<Vec<VendorIdx>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner).get(key).cloned()
    }

    fn put(&self, key: [u8; 32], vendors: &[VendorIdx]) {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= RECENT_MAX_ENTRIES {
            map.clear();
        }
        map.insert(key, vendors.to_vec());
    }
}

/// Compiles one signature as it will be matched.
pub fn compile(pattern: &str) -> Result<Regex, regex::Error> {
    RegexBuilder::new(pattern).unicode(false).build()
}

/// The literals every match of `pattern` starts with, if they are few and long enough to filter on.
fn prefixes(pattern: &str) -> Option<Vec<Vec<u8>>> {
    let hir = regex_syntax::ParserBuilder::new().unicode(false).utf8(false).build().parse(pattern).ok()?;
    let mut seq = Extractor::new().kind(ExtractKind::Prefix).extract(&hir);
    // Collapses `fbq(\t`, `fbq( `, … to `fbq(`: fewer, shorter literals to search.
    seq.optimize_for_prefix_by_preference();
    let lits = seq.literals()?;
    if lits.is_empty() || lits.len() > 64 || lits.iter().any(|l| l.as_bytes().len() < 3) {
        return None;
    }
    Some(lits.iter().map(|l| l.as_bytes().to_vec()).collect())
}

impl Signatures {
    /// `signatures`: (regex compiled with [`compile`], vendor) pairs.
    /// Fails only if the prefilter automaton cannot be built (too large).
    pub fn new(signatures: Vec<(Regex, VendorIdx)>) -> Result<Signatures, aho_corasick::BuildError> {
        let mut regexes = Vec::new();
        let mut vendor = Vec::new();
        let mut wanted: Vec<(Vec<u8>, usize)> = Vec::new();
        let mut unfiltered = Vec::new();
        for (i, (regex, v)) in signatures.into_iter().enumerate() {
            let found = prefixes(regex.as_str());
            regexes.push(regex);
            vendor.push(v);
            match found {
                Some(lits) => wanted.extend(lits.into_iter().map(|l| (l, i))),
                None => unfiltered.push(i),
            }
        }
        let mut literals: Vec<Vec<u8>> = Vec::new();
        let mut literal_sigs: Vec<Vec<usize>> = Vec::new();
        for (lit, sig) in wanted {
            match literals.iter().position(|l| *l == lit) {
                Some(at) => literal_sigs[at].push(sig),
                None => {
                    literals.push(lit);
                    literal_sigs.push(vec![sig]);
                }
            }
        }
        let prefilter = if literals.is_empty() {
            None
        } else {
            // Overlapping search over a DFA: every occurrence of every literal.
            // (SIMD Teddy was measured slower here: its 3-byte fingerprints, `win`
            // for `window.…`, flag most of a script as candidates.)
            Some(
                AhoCorasick::builder()
                    .kind(Some(AhoCorasickKind::DFA))
                    .match_kind(MatchKind::Standard)
                    .build(&literals)?,
            )
        };
        Ok(Signatures { regexes, vendor, prefilter, literal_sigs, unfiltered, recent: Recent::default() })
    }

    pub fn is_empty(&self) -> bool {
        self.regexes.is_empty()
    }

    /// Vendors with at least one matching signature, sorted and deduplicated.
    pub fn matching_vendors(&self, text: &[u8]) -> Vec<VendorIdx> {
        if text.len() < RECENT_MIN_BYTES {
            return self.scan(text);
        }
        let key: [u8; 32] = Sha256::digest(text).into();
        if let Some(vendors) = self.recent.get(&key) {
            return vendors;
        }
        let vendors = self.scan(text);
        self.recent.put(key, &vendors);
        vendors
    }

    fn scan(&self, text: &[u8]) -> Vec<VendorIdx> {
        let mut candidate = vec![false; self.regexes.len()];
        let mut order: Vec<usize> = self.unfiltered.clone();
        if let Some(ac) = &self.prefilter {
            for m in ac.find_overlapping_iter(text) {
                for &sig in &self.literal_sigs[m.pattern().as_usize()] {
                    if !candidate[sig] {
                        candidate[sig] = true;
                        order.push(sig);
                    }
                }
            }
        }
        let mut out: Vec<VendorIdx> =
            order.into_iter().filter(|s| self.regexes[*s].is_match(text)).map(|s| self.vendor[s]).collect();
        out.sort_unstable();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_come_from_the_regex() {
        assert_eq!(prefixes(r"fbq\(\s*['\x22]init").unwrap(), [b"fbq(".to_vec()]);
        assert_eq!(prefixes(r"(omtrdc|2o7)\.net/").unwrap(), [b"omtrdc.net/".to_vec(), b"2o7.net/".to_vec()]);
        assert!(prefixes(r"\w+x").is_none(), "unbounded prefix");
        assert!(prefixes(r"ab").is_none(), "too short to filter on");
    }

    #[test]
    fn matches_need_the_whole_regex_not_just_the_prefix() {
        let s = Signatures::new(vec![
            (compile(r"fbq\(\s*'init").unwrap(), 1),
            (compile(r"\w+zz").unwrap(), 2),
            (compile(r"gtag\(").unwrap(), 3),
        ])
        .unwrap();
        assert_eq!(s.matching_vendors(b"fbq('track')"), Vec::<usize>::new());
        assert_eq!(s.matching_vendors(b"x; fbq( 'init', 1); gtag('js')"), [1, 3]);
        assert_eq!(s.matching_vendors(b"abczz"), [2], "unfiltered signatures always run");
    }

    #[test]
    fn repeated_texts_are_looked_up_and_the_table_stays_bounded() {
        let s = Signatures::new(vec![(compile(r"fbq\(\s*'init").unwrap(), 1)]).unwrap();
        let pad = "x".repeat(RECENT_MIN_BYTES);
        let with = format!("{pad} fbq('init', 1)");
        let without = format!("{pad} fbq('track', 1)");
        for _ in 0..2 {
            assert_eq!(s.matching_vendors(with.as_bytes()), [1]);
            assert_eq!(s.matching_vendors(without.as_bytes()), Vec::<usize>::new());
        }
        assert_eq!(s.recent.0.lock().unwrap().len(), 2, "both long texts were kept");
        for i in 0..RECENT_MAX_ENTRIES + 10 {
            s.matching_vendors(format!("{pad}{i}").as_bytes());
        }
        assert!(s.recent.0.lock().unwrap().len() <= RECENT_MAX_ENTRIES);
        assert_eq!(s.matching_vendors(with.as_bytes()), [1], "a dropped entry is scanned again");
    }
}
