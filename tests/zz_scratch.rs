mod common;
#[path = "support/corpus.rs"]
mod corpus;
#[path = "support/loads.rs"]
mod loads;
use common::*;
#[test]
fn scratch() {
    let policy = shipped_policy();
    for p in corpus::pages() {
        let ctx = page(&policy, p.url.as_str());
        let t = std::time::Instant::now();
        let r = tagwarden::rewrite::rewrite_chunked(&policy, &ctx, p.html.as_bytes(), None, &[usize::MAX]);
        let t1 = t.elapsed();
        let t = std::time::Instant::now();
        let r1 = tagwarden::rewrite::rewrite_chunked(&policy, &ctx, p.html.as_bytes(), None, &[1]);
        let t2 = t.elapsed();
        match (&r, &r1) {
            (Ok((out, f)), Ok((out1, _))) => {
                let s = String::from_utf8_lossy(out);
                let t = std::time::Instant::now();
                let own = same_site(p.url.host_str().unwrap());
                let off: Vec<String> = [true, false]
                    .iter()
                    .flat_map(|sc| loads::loads(&s, &p.url, *sc))
                    .filter(|l| !own(l.url.host_str().unwrap_or("")))
                    .map(|l| l.to_string())
                    .collect();
                let orig_off = loads::offsite_loads_any_scripting(&p.html, &p.url, |h| own(h)).len();
                // idempotence
                let again = tagwarden::rewrite::rewrite_chunked(&policy, &ctx, out, None, &[usize::MAX])
                    .map(|(o, _)| o == *out);
                println!(
                    "{} {} whole={:?} one={:?} oracle={:?} findings={} origoff={} off={:?} chunkeq={} idem={:?}",
                    p.name,
                    p.url,
                    t1,
                    t2,
                    t.elapsed(),
                    f.len(),
                    orig_off,
                    off,
                    out == out1,
                    again
                );
            }
            _ => println!("{} {} ERR {:?} {:?}", p.name, p.url, r.as_ref().err(), r1.as_ref().err()),
        }
    }
}
