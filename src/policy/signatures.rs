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

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use regex::bytes::{Regex, RegexBuilder};
use regex_syntax::hir::literal::{ExtractKind, Extractor};

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
        Ok(Signatures { regexes, vendor, prefilter, literal_sigs, unfiltered })
    }

    pub fn is_empty(&self) -> bool {
        self.regexes.is_empty()
    }

    /// Vendors with at least one matching signature, sorted and deduplicated.
    pub fn matching_vendors(&self, text: &[u8]) -> Vec<VendorIdx> {
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
}
