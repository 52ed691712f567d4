//! Cases from spec `selectors.md`: accepts with canonical form and UID, evaluation rules,
//! label restrictions, and every error category with Calico's message and our byte offset.
//! Each case is also run through the pest reference grammar, which must agree.

use std::collections::BTreeMap;

use selector_lang::{parse, reference, LabelRestriction, Labels};

fn canon(s: &str) -> String {
    let fast = parse(s).unwrap_or_else(|e| panic!("{s:?} should parse: {e}"));
    let pest = reference::parse_node(s).unwrap_or_else(|e| panic!("pest rejects {s:?}: {e}"));
    let pest = selector_lang::Selector::from_node(pest);
    assert_eq!(fast.canonical(), pest.canonical(), "fast vs pest on {s:?}");
    fast.canonical().to_owned()
}

#[track_caller]
fn rejects(s: &str, message: &str, offset: usize) {
    let e = parse(s)
        .err()
        .unwrap_or_else(|| panic!("{s:?} should be rejected"));
    assert_eq!(e.message, message, "message for {s:?}");
    assert_eq!(e.offset, offset, "offset for {s:?}");
    assert!(reference::parse_node(s).is_err(), "pest accepts {s:?}");
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

#[test]
fn upstream_canonical_examples() {
    assert_eq!(canon(r#"a=="b""#), r#"a == "b""#);
    assert_eq!(
        canon(r#"! (has( b)||! has(a ))"#),
        r#"!(has(b) || !has(a))"#
    );
    assert_eq!(
        canon(r#"! (a == "b"&&! c != "d")"#),
        r#"!(a == "b" && !c != "d")"#
    );
    assert_eq!(
        canon(r#"a in {"z", "z", "x", "y", "x", "a"}"#),
        r#"a in {"a", "x", "y", "z"}"#
    );
    assert_eq!(canon(r#"a startswith '"'"#), r#"a starts with '"'"#);
}

#[test]
fn canonical_rules() {
    assert_eq!(canon(r#"a=="1"&&b=="2""#), r#"(a == "1" && b == "2")"#);
    assert_eq!(
        canon(r#"a == "1" && (b == "2" && c == "3")"#),
        r#"(a == "1" && (b == "2" && c == "3"))"#
    );
    assert_eq!(
        canon(r#"a == "1" || b == "2" || c == "3""#),
        r#"(a == "1" || b == "2" || c == "3")"#
    );
    assert_eq!(
        canon(r#"a == "1" || b == "2" && c == "3""#),
        r#"(a == "1" || (b == "2" && c == "3"))"#
    );
    assert_eq!(canon(r#"((a == "b"))"#), r#"a == "b""#);
    assert_eq!(canon(r#"!(k == 'v')"#), r#"!k == "v""#);
    assert_eq!(canon(r#"!a == "b""#), r#"!a == "b""#);
    assert_eq!(canon(r#"!!!has(x)"#), "!has(x)");
    assert_eq!(canon(r#"!!has(x)"#), "has(x)");
    assert_eq!(canon(r#"a == 'b'"#), r#"a == "b""#);
    assert_eq!(canon(r#"a == '"'"#), r#"a == '"'"#);
    assert_eq!(canon(r#"a in {'"', "'"}"#), r#"a in {'"', "'"}"#);
    assert_eq!(canon(r#"a notin{"x"}"#), r#"a not in {"x"}"#);
    assert_eq!(canon(r#"a not   in {}"#), r#"a not in {}"#);
    assert_eq!(canon("a starts\t with \"x\""), r#"a starts with "x""#);
    assert_eq!(canon(r#"a endswith"x""#), r#"a ends with "x""#);
    assert_eq!(canon(r#"a contains"x""#), r#"a contains "x""#);
    assert_eq!(canon(r#"a in {"a",}"#), r#"a in {"a"}"#);
    assert_eq!(canon(r#"a in {}"#), r#"a in {}"#);
    assert_eq!(canon(r#"a in {"b","a",}"#), r#"a in {"a", "b"}"#);
    assert_eq!(
        canon(r#"a in {"é", "f", "e", "B", "A", "b", "a", "9", "10", "1"}"#),
        r#"a in {"1", "10", "9", "A", "B", "a", "b", "e", "f", "é"}"#
    );
    assert_eq!(canon(r#"in in {"in"}"#), r#"in in {"in"}"#);
    assert_eq!(canon(r#"has == "x""#), r#"has == "x""#);
    assert_eq!(
        canon(r#"all == "x" && global != "y" && not == "z" && contains contains "c""#),
        r#"(all == "x" && global != "y" && not == "z" && contains contains "c")"#
    );
    assert_eq!(
        canon(r#"- == "x" && / == "y" && ... == "z" && 1 == """#),
        r#"(- == "x" && / == "y" && ... == "z" && 1 == "")"#
    );
    assert_eq!(canon("a == \"x\ny\""), "a == \"x\ny\"");
    assert_eq!(canon("a == \"\0é🎉\""), "a == \"\0é🎉\"");
    assert_eq!(canon(r#"a == "a\""#), r#"a == "a\""#);
    assert_eq!(canon("global()"), "global()");
    assert_eq!(canon("has( a )"), "has(a)");
}

#[test]
fn double_negation_is_not_a_fixpoint() {
    assert_eq!(canon("!(!has(a))"), "!!has(a)");
    assert_eq!(canon(r#"!(!(a == "b"))"#), r#"!!a == "b""#);
    assert_eq!(canon("!!has(a)"), "has(a)");
    let a = parse("!(!has(a))").unwrap();
    let b = parse(a.canonical()).unwrap();
    assert_ne!(a.uid(), b.uid());
    for l in [labels(&[("a", "")]), labels(&[("b", "")])] {
        assert_eq!(a.matches(&l), b.matches(&l));
    }
}

#[test]
fn empty_and_all_forms_share_uid() {
    let uid = "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug";
    for s in ["", "  ", "\t \t", "all()", "all( )", "(all())", "all(\t)"] {
        let sel = parse(s).unwrap();
        assert_eq!(sel.canonical(), "all()", "{s:?}");
        assert_eq!(sel.uid(), uid, "{s:?}");
    }
    assert!(reference::parse_node("").is_ok());
}

#[test]
fn uids() {
    assert_eq!(
        parse(r#"! (has( b)||! has(a ))"#).unwrap().uid(),
        "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q"
    );
    let a = parse(r#"a == 'x' && b in {"2","1"}"#).unwrap();
    let b = parse(r#"a=="x"&&b in {'1', '2', '1',}"#).unwrap();
    assert_eq!(a.uid(), b.uid());
    assert_eq!(a.uid().len(), 40);
    let c = parse(r#"b in {"1","2"} && a == "x""#).unwrap();
    assert_ne!(a.uid(), c.uid());
    assert_eq!(
        selector_lang::make_unique_id("s", "all()"),
        parse("").unwrap().uid()
    );
}

#[test]
fn deep_nesting() {
    let s = format!("{}a == \"b\"{}", "(".repeat(200), ")".repeat(200));
    assert_eq!(canon(&s), r#"a == "b""#);
    let s = format!("{}has(a)", "!".repeat(1001));
    assert_eq!(canon(&s), "!has(a)");
    // Nested negations inside groups build a deep tree: printing, evaluating and dropping
    // it must not overflow the stack.
    let n = 20_000;
    let s = format!("{}has(a){}", "!(".repeat(n), ")".repeat(n));
    let sel = parse(&s).unwrap();
    assert_eq!(sel.canonical().len(), n + "has(a)".len());
    assert!(sel.matches(&labels(&[("a", "x")])));
    let mut t = selector_lang::LabelTable::new();
    let c = t.compile_selector(&sel);
    assert!(c.matches(&t.compile_labels([("a", "x")]), &t));
}

#[test]
fn evaluation_rules() {
    let l = labels(&[("a", "b"), ("e", ""), ("u", "é🎉"), ("n", "x\ny")]);
    let t = |s: &str| {
        let sel = parse(s).unwrap();
        let r = sel.matches(&l);
        let mut table = selector_lang::LabelTable::new();
        let c = table.compile_selector(&sel);
        let cl = table.compile_labels(l.iter());
        assert_eq!(
            c.matches(&cl, &table),
            r,
            "compiled vs string eval on {s:?}"
        );
        r
    };
    assert!(t("all()") && t("global()") && t(""));
    assert!(t("has(a)") && t("has(e)") && !t("has(z)"));
    assert!(t("a == 'b'") && !t("a == 'B'") && !t("z == ''") && t("e == ''"));
    assert!(t("a != 'c'") && !t("a != 'b'") && t("z != 'b'"));
    assert!(t("a in {'b', 'c'}") && !t("a in {}") && !t("z in {'b'}") && !t("a in {'c'}"));
    assert!(t("a not in {'c'}") && !t("a not in {'b'}") && t("z not in {'b'}") && t("a not in {}"));
    assert!(t("u contains '🎉'") && t("u contains ''") && !t("z contains ''"));
    assert!(t("u starts with 'é'") && !t("u starts with '🎉'") && !t("z starts with ''"));
    assert!(t("u ends with '🎉'") && t("e ends with ''") && !t("z ends with ''"));
    assert!(t("n == \"x\ny\""));
    assert!(!t("!has(a)") && t("!has(z)"));
    assert!(t("has(a) && (has(z) || a == 'b')") && !t("has(a) && has(z)"));
    assert!(t("has(z) || has(e)") && !t("has(z) || has(y)"));
    assert!(t("!(has(z) || !has(a))"));
}

#[test]
fn label_restrictions() {
    let lr = |s: &str| parse(s).unwrap().label_restrictions();
    let present = |v: Option<&[&str]>| LabelRestriction {
        must_be_present: true,
        must_be_absent: false,
        must_have_one_of_values: v.map(|v| v.iter().map(|s| s.to_string()).collect()),
    };
    assert_eq!(lr("a == 'x'")["a"], present(Some(&["x"])));
    assert_eq!(lr("a in {'y', 'x'}")["a"], present(Some(&["x", "y"])));
    assert_eq!(lr("a in {}")["a"], present(None));
    for s in [
        "has(a)",
        "a contains 'x'",
        "a starts with 'x'",
        "a ends with 'x'",
    ] {
        assert_eq!(lr(s)["a"], present(None), "{s}");
    }
    assert_eq!(
        lr("!has(a)")["a"],
        LabelRestriction {
            must_be_absent: true,
            ..Default::default()
        }
    );
    for s in [
        "a != 'x'",
        "a not in {'x'}",
        "all()",
        "global()",
        "!a == 'x'",
        "!(!has(a))",
    ] {
        assert!(lr(s).is_empty(), "{s}");
    }
    assert_eq!(lr("!!has(a)")["a"], present(None));
    assert_eq!(
        lr("a == 'x' && a in {'x', 'y'}")["a"],
        present(Some(&["x"]))
    );
    assert_eq!(lr("a == 'x' && a == 'y'")["a"], present(Some(&[])));
    assert_eq!(lr("has(a) && a == 'x'")["a"], present(Some(&["x"])));
    let both = lr("a == 'x' && !has(b)");
    assert_eq!(both.len(), 2);
    assert!(both["b"].must_be_absent);
    assert_eq!(
        lr("a == 'x' || a in {'z', 'y'}")["a"],
        present(Some(&["x", "y", "z"]))
    );
    assert_eq!(lr("a == 'x' || has(a)")["a"], present(None));
    assert!(lr("a == 'x' || b == 'y'").is_empty());
    assert!(lr("!has(a) || !has(a)")["a"].must_be_absent);
    assert!(lr("!has(a) || has(a)").is_empty());
}

#[test]
fn bad_lexemes() {
    rejects(r#"a = "b""#, "expected ==", 2);
    rejects(r#"a & b"#, "expected &&", 2);
    rejects(r#"a | b"#, "expected ||", 2);
    rejects(r#"a == "b"#, "unterminated string", 5);
    rejects(r#"a == 'b"#, "unterminated string", 5);
    rejects(r#"a == "x'"#, "unterminated string", 5);
    rejects(r#"a == "b" %"#, "expected identifier", 9);
    for (s, off) in [
        ("%", 0),
        ("?", 0),
        ("[", 0),
        (":", 0),
        ("@", 0),
        ("é", 0),
        ("\u{a0}", 0),
        ("\n", 0),
        ("\r", 0),
    ] {
        rejects(s, "expected identifier", off);
    }
    rejects("a == 'b'\n", "expected identifier", 8);
    rejects("a == 'b' \r", "expected identifier", 9);
    rejects("a\n== 'b'", "expected operator after label \"a\"", 1);
    let long = "x".repeat(513);
    rejects(&long, &format!("label too long: {long}"), 0);
    rejects(
        &format!("has( {long})"),
        &format!("label too long: {long}"),
        5,
    );
    rejects(
        &format!("{long} == 'a'"),
        &format!("label too long: {long}"),
        0,
    );
    let ok = "x".repeat(512);
    assert_eq!(canon(&format!("has({ok})")), format!("has({ok})"));
}

#[test]
fn operator_problems() {
    rejects(r#"a IN {"x"}"#, "expected operator after label \"a\"", 2);
    rejects(
        r#"a Contains "x""#,
        "expected operator after label \"a\"",
        2,
    );
    rejects(r#"a b"#, "expected operator after label \"a\"", 2);
    rejects(r#"a not in b"#, "expected operator after label \"a\"", 2);
    rejects(
        r#"a starts with b"#,
        "expected operator after label \"a\"",
        2,
    );
    rejects(r#"a inx {"x"}"#, "expected operator after label \"a\"", 2);
    rejects(
        r#"a containsx "x""#,
        "expected operator after label \"a\"",
        2,
    );
    rejects(r#"a % "b""#, "expected operator after label \"a\"", 2);
    rejects(r#"a === "b""#, "expected ==", 4);
    rejects(r#"a !== "b""#, "expected ==", 4);
    rejects(r#"a <> "b""#, "expected operator after label \"a\"", 2);
    rejects(r#"a ! = "b""#, "expected ==", 4);
    rejects(
        r#"a == "b" and c == "d""#,
        "expected operator after label \"and\"",
        13,
    );
    rejects(
        r#"a == "b" or c == "d""#,
        "expected operator after label \"or\"",
        12,
    );
    rejects(
        r#"not a == "b""#,
        "expected operator after label \"not\"",
        4,
    );
    rejects(
        r#"a == "b" AND c == "d""#,
        "expected operator after label \"AND\"",
        13,
    );
    rejects(
        r#"a == "b" c == "d""#,
        "unexpected content at end of selector [TokLabel(c) TokEq() TokStringLiteral(d) TokEOF()]",
        9,
    );
    rejects(r#"a == "b" &&& c"#, "expected &&", 11);
}

#[test]
fn operand_problems() {
    rejects(r#"b == b"#, "expected string", 5);
    rejects(r#"a == has(b)"#, "expected string", 5);
    rejects(r#"a == all()"#, "expected string", 5);
    rejects(r#"a == {"x"}"#, "expected string", 5);
    rejects(r#"a == "#, "expected string", 5);
    rejects(r#""a" == "b""#, "unexpected token: TokStringLiteral(a)", 0);
    rejects(r#"b"#, "unexpected end of string looking for op", 1);
    rejects(r#"b  "#, "unexpected end of string looking for op", 3);
    rejects(r#""b""#, "unexpected token: TokStringLiteral(b)", 0);
    rejects(r#"a in "x""#, "expected set literal", 5);
    rejects(r#"a in {,}"#, "expected }", 6);
    rejects(r#"a in {"a",,}"#, "expected }", 10);
    rejects(r#"a in {"a" "b"}"#, "expected }", 10);
    rejects(r#"a in {x}"#, "expected }", 6);
    rejects(r#"a in {"a""#, "expected }", 9);
    rejects(r#"a in ["a"]"#, "expected identifier", 5);
    rejects(r#"a in ("a")"#, "expected set literal", 5);
    rejects(r#"a not in ("a")"#, "expected set literal", 9);
}

#[test]
fn has_all_global_forms() {
    rejects("has()", "expected identifier", 4);
    rejects("has(a b)", "no closing ')' after has(", 6);
    rejects(r#"has("a")"#, "expected identifier", 4);
    rejects("has(a,b)", "no closing ')' after has(", 5);
    rejects("has(a", "no closing ')' after has(", 5);
    rejects("has (a)", "expected == or != not: TokLParen()", 4);
    rejects("foo(a)", "expected == or != not: TokLParen()", 3);
    rejects("all(x)", "no closing ')' after all(", 4);
    rejects("all ()", "expected == or != not: TokLParen()", 4);
    rejects("all(", "no closing ')' after all(", 4);
    rejects("global(", "no closing ')' after global(", 7);
    rejects("global( x)", "no closing ')' after global(", 8);
    rejects(
        "a == 'b' has(c)",
        "unexpected content at end of selector [TokHas(c) TokEOF()]",
        9,
    );
    rejects("x has(c)", "expected operator after label \"x\"", 2);
}

#[test]
fn structure() {
    rejects(r#"(a == "b""#, "expected )", 9);
    rejects(
        r#"a == "b")"#,
        "unexpected content at end of selector [TokRParen() TokEOF()]",
        8,
    );
    rejects("()", "unexpected token: TokRParen()", 1);
    rejects("( )", "unexpected token: TokRParen()", 2);
    rejects(r#"&& a == "b""#, "unexpected token: TokAnd()", 0);
    rejects(r#"|| a == "b""#, "unexpected token: TokOr()", 0);
    rejects(r#"a == "b" &&"#, "unexpected token: TokEOF()", 11);
    rejects(r#"a == "b" ||"#, "unexpected token: TokEOF()", 11);
    rejects("!", "unexpected token: TokEOF()", 1);
    rejects(
        r#"a == "b" !"#,
        "unexpected content at end of selector [TokNot() TokEOF()]",
        9,
    );
    rejects(
        r#"a == "b" && || c == "d""#,
        "unexpected token: TokOr()",
        12,
    );
    rejects(
        r#"a == "b" && && c == "d""#,
        "unexpected token: TokAnd()",
        12,
    );
    rejects(
        "has(a))",
        "unexpected content at end of selector [TokRParen() TokEOF()]",
        6,
    );
    rejects(
        "all() all()",
        "unexpected content at end of selector [TokAll() TokEOF()]",
        6,
    );
    rejects("!= 'a'", "unexpected token: TokNe()", 0);
    rejects("{", "unexpected token: TokLBrace()", 0);
    rejects(",", "unexpected token: TokComma()", 0);
    rejects("a == 'b' , c == 'd'", "unexpected content at end of selector [TokComma() TokLabel(c) TokEq() TokStringLiteral(d) TokEOF()]", 9);
}

#[test]
fn normalise_and_traits() {
    assert_eq!(selector_lang::normalise(" \n a=='b' \n"), r#"a == "b""#);
    assert_eq!(selector_lang::normalise(" a= "), "a=");
    let s: selector_lang::Selector = "a=='b'".parse().unwrap();
    assert_eq!(s.to_string(), r#"a == "b""#);
    assert_eq!(s, parse(r#"a == "b""#).unwrap());
    assert!(selector_lang::valid_label("app.kubernetes.io/name"));
    assert!(!selector_lang::valid_label("é") && !selector_lang::valid_label(""));
    let l = labels(&[("a", "b")]);
    let r: &dyn Labels = &l;
    assert_eq!(r.get("a"), Some("b"));
}

#[test]
fn error_rendering_points_at_offset() {
    let e = parse("a == b").unwrap_err();
    let r = e.render("a == b");
    assert_eq!(r, "error: expected string (at byte 5)\n  a == b\n       ^");
    let e = parse("a == 'b'\n").unwrap_err();
    assert_eq!(
        e.render("a == 'b'\n"),
        "error: expected identifier (at byte 8)\n  a == 'b'\\n\n          ^"
    );
}

#[test]
fn one_mib_inputs_terminate() {
    // No timing assertions (the fuzzer measures time); these must simply return.
    let mib = 1 << 20;
    let cases = [
        "(".repeat(mib),
        "!".repeat(mib),
        "!(".repeat(mib / 2),
        format!("a == \"{}\"", "x".repeat(mib)),
        format!("a in {{{}}}", "'x',".repeat(mib / 4)),
        "a == 'b' && ".repeat(mib / 12) + "has(a)",
        "x".repeat(mib),
        " ".repeat(mib),
    ];
    for c in &cases {
        let _ = parse(c);
    }
    assert!(parse(&"!(".repeat(mib / 2)).is_err());
    assert!(parse(&("a == 'b' && ".repeat(mib / 12) + "has(a)")).is_ok());
}
