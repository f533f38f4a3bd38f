use super::*;

fn urls(css: &str) -> Vec<String> {
    find_urls(css).into_iter().map(|u| u.url).collect()
}

#[test]
fn plain_and_quoted_url_tokens() {
    assert_eq!(urls("a{background:url(https://e.example/a.png)}"), ["https://e.example/a.png"]);
    assert_eq!(urls("a{background:url( 'https://e.example/b' )}"), ["https://e.example/b"]);
    assert_eq!(urls("a{background:URL(\"x.png\")}"), ["x.png"]);
}

#[test]
fn escaped_function_names_are_urls() {
    assert_eq!(urls("a{background:u\\72l(https://e.example/1)}"), ["https://e.example/1"]);
    assert_eq!(urls("a{background:\\75 rl(https://e.example/2)}"), ["https://e.example/2"]);
    assert_eq!(urls("a{background:\\55 \\52 \\4c (https://e.example/3)}"), ["https://e.example/3"]);
}

#[test]
fn escapes_inside_urls_are_decoded() {
    assert_eq!(urls("a{b:url(https\\3a //e.example/x)}"), ["https://e.example/x"]);
    assert_eq!(urls("a{b:url('ht\\74 ps://e.example/y')}"), ["https://e.example/y"]);
}

#[test]
fn import_forms() {
    assert_eq!(urls("@import 'https://e.example/a.css';"), ["https://e.example/a.css"]);
    assert_eq!(urls("@IMPORT url(https://e.example/b.css) screen;"), ["https://e.example/b.css"]);
    assert_eq!(urls("@import /* c */ \"https://e.example/c.css\";"), ["https://e.example/c.css"]);
    assert_eq!(urls("a{content:'https://not-a-load.example'}"), Vec::<String>::new());
}

#[test]
fn image_set_and_src_strings() {
    assert_eq!(
        urls("a{b:image-set('https://e.example/1x.png' 1x, url(/2x.png) 2x)}"),
        ["https://e.example/1x.png", "/2x.png"]
    );
    assert_eq!(urls("a{b:-webkit-image-set(\"h.png\" 1x)}"), ["h.png"]);
    assert_eq!(urls("@font-face{src:src('https://e.example/f.woff2')}"), ["https://e.example/f.woff2"]);
}

#[test]
fn comments_hide_urls() {
    assert_eq!(urls("/* url(https://e.example/x) */ a{}"), Vec::<String>::new());
}

#[test]
fn rewrite_replaces_whole_tokens() {
    let css = "a{background:u\\72l(https://e.example/1) red} @import 'https://e.example/x.css';";
    let out = rewrite(css, |_| Some("data:,".to_string())).unwrap();
    assert_eq!(out, "a{background:url(\"data:,\") red} @import url(\"data:,\");");
    assert!(rewrite("a{color:red}", |_| Some(String::new())).is_none());
}

/// Edge cases of the fast paths (string skipping, byte-class skipping, the
/// function stack, escapes, comments); expected values recorded from the
/// char-by-char scanner this one replaced.
#[test]
fn tricky_inputs_keep_their_ranges_and_urls() {
    #[allow(clippy::type_complexity)]
    let cases: Vec<(&str, Vec<(Range<usize>, &str, bool)>)> = vec![
        ("@import 'a\nb'; @import \"ok\";", vec![]),
        ("a{b:'x\nurl(y)}", vec![(7..13, "y", false)]),
        ("@import 'a\u{c}b' url(c)", vec![]),
        ("@import 'a\rb';", vec![]),
        ("@import 'a\\\r\nb';", vec![(8..15, "ab", true)]),
        ("@import 'a\\\rb';", vec![(8..14, "ab", true)]),
        ("@import 'a\\\nb\\\u{c}c';", vec![(8..17, "abc", true)]),
        ("@import '\\41\r\nb';", vec![(8..16, "Ab", true)]),
        ("@import '\\41\rx';", vec![(8..15, "Ax", true)]),
        ("@import '\\41\n\nx';", vec![]),
        ("@import 'a\\'b' 'c';", vec![(8..14, "a'b", true)]),
        ("@import \"a\\\"b\";", vec![(8..14, "a\"b", true)]),
        ("@import 'abc", vec![(8..12, "abc", true)]),
        ("@import 'abc\\", vec![(8..13, "abc", true)]),
        ("@import '\\", vec![(8..10, "", true)]),
        ("@import '\\0 \\d800 \\110000 \\1F600 x'", vec![(8..35, "\u{fffd}\u{fffd}\u{fffd}😀x", true)]),
        ("a{b:image-set(calc(1px + 2px) 'x.png' 1x)}", vec![(30..37, "x.png", true)]),
        ("a{b:image-set(f('y.png') 'z.png')}", vec![(25..32, "z.png", true)]),
        ("a{b:image-set('a' 1x) 'b'}", vec![(14..17, "a", true)]),
        (")))]]}}}image-set('c')", vec![(18..21, "c", true)]),
        ("[image-set(]'d'", vec![]),
        ("a{b:src( x 'y' \"z\")}", vec![(11..14, "y", true), (15..18, "z", true)]),
        ("a{b:src( 'y' x) 'w'}", vec![(4..15, "y", false)]),
        ("a{b:src(\"y\" 'v') 'w'}", vec![(4..16, "y", false)]),
        (
            "a{b:IMAGE-SET('x') -WEBKIT-image-SET('y') SRC('z')}",
            vec![(14..17, "x", true), (37..40, "y", true), (42..50, "z", false)],
        ),
        ("a{b:Src ('z')}", vec![]),
        ("a{b:image-set{'q'}}", vec![]),
        ("a{b:image-set( url(1) '2' url('3'))}", vec![(15..21, "1", false), (22..25, "2", true), (26..34, "3", false)]),
        ("a{b:-webkit-image-set( '1' ) -moz-image-set('2') webkit-image-set('3')}", vec![(23..26, "1", true)]),
        ("é url(x)", vec![(3..9, "x", false)]),
        ("éurl(x) image-set('n')", vec![(19..22, "n", true)]),
        ("ürl(x)", vec![]),
        ("a{b:é\\72l(x)}", vec![]),
        ("@ïmport 'x'", vec![]),
        ("-éurl(x) -url(y) --url(z) -\\75rl(w) -5url(v)", vec![(39..45, "v", false)]),
        (
            "url(é😀) url('é') image-set('中.png')",
            vec![(0..11, "é😀", false), (12..21, "é", false), (32..41, "中.png", true)],
        ),
        ("\\u\\r\\l(x) u\\él(y) \\é(z)", vec![(0..9, "x", false)]),
        ("\u{2028}url(a)\u{feff}url(b)", vec![]),
        ("/* ' */ @import 'x';", vec![(16..19, "x", true)]),
        ("/* \" */ a{b:url(c)}", vec![(12..18, "c", false)]),
        ("/* url(a) */ url(b) /* url(c)", vec![(13..19, "b", false)]),
        ("/*/ url(a) */ url(b)", vec![(14..20, "b", false)]),
        ("/**/url(b)/***/url(c)/* * / */url(d)", vec![(4..10, "b", false), (15..21, "c", false), (30..36, "d", false)]),
        ("@import /**/ 'x' /* 'y' */ 'z'", vec![(13..16, "x", true)]),
        ("a{b:'/*' url(x) '*/'}", vec![(9..15, "x", false)]),
        ("a / url(x) /", vec![(4..10, "x", false)]),
        ("a{content:\"url(x)\"}", vec![]),
        ("@import \"url(x)\";", vec![(8..16, "url(x)", true)]),
        ("a{content:'image-set(\"x\")' 'y'}", vec![]),
        ("@import url(a) 'b';", vec![(8..14, "a", false)]),
        ("@import (x) 'y'", vec![]),
        ("@import; 'z'", vec![]),
        ("@import 5 'z'", vec![(10..13, "z", true)]),
        ("@import screen 'z'", vec![]),
        ("@import, 'z'", vec![(9..12, "z", true)]),
        ("@import {'z'}", vec![(9..12, "z", true)]),
        ("@import 'a' 'b'", vec![(8..11, "a", true)]),
        ("@import\n'a'", vec![(8..11, "a", true)]),
        (
            "@\\69mport 'x' @\\69 mport 'y' @i\\6dport 'z'",
            vec![(10..13, "x", true), (25..28, "y", true), (39..42, "z", true)],
        ),
        ("@-import 'x' @ import 'y' @\\\n'z' @@import 'w'", vec![(42..45, "w", true)]),
        ("@import\\", vec![]),
        (
            "1url(x) 10pxurl(y) #url(z) .url(w) 1e3url(v)",
            vec![(1..7, "x", false), (20..26, "z", false), (28..34, "w", false)],
        ),
        ("a:url(x);b:url(y)!important,url(z)", vec![(2..8, "x", false), (11..17, "y", false), (28..34, "z", false)]),
        (
            "url(a b) url(a\"b) url(a'b) url(a(b) url(a\\\nb) url( ) url()",
            vec![
                (0..8, "ab", false),
                (9..17, "ab", false),
                (18..26, "ab", false),
                (27..35, "ab", false),
                (36..45, "ab", false),
                (46..52, "", false),
                (53..58, "", false),
            ],
        ),
        ("url(  a  ) url(\ta\n)", vec![(0..10, "a", false), (11..19, "a", false)]),
        (
            "url(a\\\r\nb) url(a\u{1}b) url(a\u{7f}b)",
            vec![(0..10, "ab", false), (11..19, "ab", false), (20..28, "ab", false)],
        ),
        ("url(a\\29 b) url(a\\) url(\\", vec![(0..11, "a)b", false), (12..25, "a)url", false)]),
        ("url(abc", vec![(0..7, "abc", false)]),
        (
            "url(\"a\" b c) url( 'a' ) url(\"a\nb\") x",
            vec![(0..12, "a", false), (13..23, "a", false), (24..34, "", false)],
        ),
        ("url('a'", vec![(0..7, "a", false)]),
        ("url('a' x", vec![(0..9, "a", false)]),
        ("url(\"a\\\"b\")", vec![(0..11, "a\"b", false)]),
        ("u\\72\r\nl(x) u\\72\rl(y) u\\72\n\nl(z)", vec![(0..10, "x", false), (11..20, "y", false)]),
        ("u\\000072l(x) u\\0000072l(y)", vec![(0..12, "x", false)]),
        ("url\\(x) url (y) url\n(z)", vec![]),
        ("\\\nurl(x)", vec![(2..8, "x", false)]),
        ("a\\", vec![]),
        ("\\", vec![]),
        ("(", vec![]),
        ("@", vec![]),
        ("@import", vec![]),
        ("", vec![]),
        // the function stack around brackets, and name runs before `(` / `\\`
        ("{ { image-set( } } 'x'", vec![]),
        ("image-set( ( ) 'x' ) 'y'", vec![(15..18, "x", true)]),
        ("[ ] image-set( ] ] 'z' image-set([{( ) } 'w' ] 'v')", vec![(47..50, "v", true)]),
        (
            "a{b:image-set(x;'1' y{'2'} '3')} 'c' src( image-set( ) '4' ) '5'",
            vec![(16..19, "1", true), (27..30, "3", true), (55..58, "4", true)],
        ),
        (
            "a{b:image-set(rgba(0,0,0,.5)/*'c'*/'1' \\'2' @x '3' -\\\n'4')}",
            vec![(35..38, "1", true), (42..48, " @x ", true), (49..55, " -", true), (56..59, ")}", true)],
        ),
        ("a{b:red;c:rgba(0 0 0);d:calc(1px - -2px)}@import 'i' x;'j'", vec![(49..52, "i", true)]),
        ("12px-\\75rl(a) -\\75rl(b) 0url(c) -url(d) a-url(e)", vec![(25..31, "c", false)]),
        ("éé(x) é-url(y) 1éurl(z)", vec![]),
    ];
    for (css, want) in cases {
        let got: Vec<(Range<usize>, String, bool)> =
            find_urls(css).into_iter().map(|u| (u.range, u.url, u.is_string)).collect();
        let want: Vec<(Range<usize>, String, bool)> = want.into_iter().map(|(r, u, s)| (r, u.to_string(), s)).collect();
        assert_eq!(got, want, "{css:?}");
    }
}
