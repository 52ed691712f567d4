//! Property tests: canonical round trip, fast parser vs pest grammar, compiled evaluation and the
//! index vs string-level evaluation.

use std::collections::BTreeMap;

use proptest::prelude::*;
use selector_lang::{parse, reference, LabelTable, Selector, SelectorIndex};

const KEYS: &[&str] = &["a", "b", "app", "x.io/y", "in", "has", "-"];
const VALUES: &[&str] = &["", "v", "w", "web", "we", "\"q", "'s", "é", "a b"];

fn ws() -> impl Strategy<Value = &'static str> {
    prop_oneof![Just(""), Just(" "), Just("  "), Just("\t")]
}

fn key() -> impl Strategy<Value = &'static str> {
    prop::sample::select(KEYS)
}

fn value() -> impl Strategy<Value = &'static str> {
    prop::sample::select(VALUES)
}

fn quoted(v: &str, prefer_single: bool) -> String {
    if v.contains('"') || (prefer_single && !v.contains('\'')) {
        format!("'{v}'")
    } else {
        format!("\"{v}\"")
    }
}

/// A valid selector as text, with random spacing and quoting.
fn leaf() -> impl Strategy<Value = String> {
    (
        key(),
        value(),
        prop::collection::vec(value(), 0..4),
        ws(),
        ws(),
        any::<bool>(),
        0..14u8,
    )
        .prop_map(|(k, v, set, w1, w2, sq, op)| {
            let q = quoted(v, sq);
            let set_text = {
                let items: Vec<String> = set.iter().map(|v| quoted(v, sq)).collect();
                let trailing = if sq && !items.is_empty() { "," } else { "" };
                format!("{{{w1}{}{trailing}{w2}}}", items.join(&format!(",{w1}")))
            };
            match op {
                0 => format!("{k}{w1}=={w2}{q}"),
                1 => format!("{k}{w1}!={w2}{q}"),
                2 => format!("{k} in{w2}{set_text}"),
                3 => format!("{k} not{w1} in{w2}{set_text}"),
                4 => format!("{k} notin {set_text}"),
                5 => format!("has({w1}{k}{w2})"),
                6 => format!("{k} contains{w1}{q}"),
                7 => format!("{k} starts{w1}with {q}"),
                8 => format!("{k} ends with{w2}{q}"),
                9 => format!("all({w1})"),
                10 => "global()".to_string(),
                11 => format!("{k} startswith {q}"),
                12 => format!("{k} endswith{q}"),
                _ => format!("{k}=={q}"),
            }
        })
}

fn selector_text() -> impl Strategy<Value = String> {
    leaf().prop_recursive(5, 40, 4, |inner| {
        prop_oneof![
            (inner.clone(), 1..4usize).prop_map(|(s, n)| format!("{}{s}", "!".repeat(n))),
            (inner.clone(), ws()).prop_map(|(s, w)| format!("({w}{s}{w})")),
            (inner.clone(), ws()).prop_map(|(s, w)| format!("!({w}{s})")),
            (prop::collection::vec(inner.clone(), 2..4), ws())
                .prop_map(|(v, w)| v.join(&format!("{w}&&{w}"))),
            (prop::collection::vec(inner, 2..4), ws())
                .prop_map(|(v, w)| v.join(&format!("{w}||{w}"))),
        ]
    })
}

fn label_map() -> impl Strategy<Value = BTreeMap<String, String>> {
    prop::collection::btree_map(
        key().prop_map(String::from),
        value().prop_map(String::from),
        0..6,
    )
}

/// Inputs near the language: a valid selector with a few random edits drawn from the bytes
/// that matter to the tokenizer.
fn mutated() -> impl Strategy<Value = String> {
    const BITS: &[&str] = &[
        " ", "\t", "\n", "(", ")", "{", "}", ",", "=", "!", "&", "|", "\"", "'", "a", "in", "not",
        "has(", "all(", "global(", "starts", "with", "é", "%", "x",
    ];
    (
        selector_text(),
        prop::collection::vec(
            (
                any::<prop::sample::Index>(),
                0..3u8,
                prop::sample::select(BITS),
            ),
            1..4,
        ),
    )
        .prop_map(|(s, edits)| {
            let mut b: Vec<char> = s.chars().collect();
            for (at, kind, bit) in edits {
                let i = if b.is_empty() { 0 } else { at.index(b.len()) };
                match kind {
                    0 if !b.is_empty() => {
                        b.remove(i);
                    }
                    1 if !b.is_empty() => {
                        b.splice(i..i + 1, bit.chars());
                    }
                    _ => {
                        b.splice(i..i, bit.chars());
                    }
                }
            }
            b.into_iter().collect()
        })
}

fn agree(s: &str) -> Result<(), TestCaseError> {
    let fast = parse(s);
    let pest = reference::parse_node(s);
    match (&fast, pest) {
        (Ok(f), Ok(p)) => {
            let p = Selector::from_node(p);
            prop_assert_eq!(f.canonical(), p.canonical(), "input {:?}", s)
        }
        (Err(_), Err(_)) => {}
        (f, p) => prop_assert!(false, "fast {:?} vs pest {:?} on {:?}", f, p.map(|_| ()), s),
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(600))]

    #[test]
    fn canonical_round_trip_keeps_meaning(s in selector_text(), maps in prop::collection::vec(label_map(), 8)) {
        let sel = parse(&s).map_err(|e| TestCaseError::fail(format!("{s:?}: {e}")))?;
        let again = parse(sel.canonical()).map_err(|e| TestCaseError::fail(format!("{:?}: {e}", sel.canonical())))?;
        for m in &maps {
            prop_assert_eq!(sel.matches(m), again.matches(m), "{:?} on {:?}", s, m);
        }
        // Canonical is a fixpoint unless nested negations print as a run of `!`s.
        if !sel.canonical().contains("!!") {
            prop_assert_eq!(again.canonical(), sel.canonical());
            prop_assert_eq!(again.uid(), sel.uid());
        }
        // A second round is always a fixpoint (the run of `!`s has collapsed by then).
        let third = parse(again.canonical()).unwrap();
        if !again.canonical().contains("!!") {
            prop_assert_eq!(third.canonical(), again.canonical());
        }
    }

    #[test]
    fn fast_parser_agrees_with_pest_on_valid(s in selector_text()) {
        agree(&s)?;
    }

    #[test]
    fn fast_parser_agrees_with_pest_on_mutations(s in mutated()) {
        agree(&s)?;
    }

    #[test]
    fn fast_parser_agrees_with_pest_on_noise(s in "[ \\t\\n!&|=(){},'\"a-c.%é]{0,24}|(has|all|global|in|not)[( a\"'{]{0,8}") {
        agree(&s)?;
    }

    #[test]
    fn compiled_and_index_agree_with_string_eval(
        sels in prop::collection::vec(selector_text(), 1..6),
        maps in prop::collection::vec(label_map(), 0..30),
        relabel in prop::collection::vec((any::<prop::sample::Index>(), prop::option::of(label_map())), 0..10),
    ) {
        let sels: Vec<Selector> = sels.iter().map(|s| parse(s).unwrap()).collect();
        let mut table = LabelTable::new();
        let compiled: Vec<_> = sels.iter().map(|s| table.compile_selector(s)).collect();
        let mut cmaps = Vec::new();
        for m in &maps {
            let cm = table.compile_labels(m);
            for (s, c) in sels.iter().zip(&compiled) {
                prop_assert_eq!(c.matches(&cm, &table), s.matches(m), "{} on {:?}", s.canonical(), m);
            }
            cmaps.push(cm);
        }
        // The same maps stored by column.
        let columns = table.compile_label_columns(&cmaps);
        prop_assert_eq!(columns.len(), maps.len());
        for (row, m) in maps.iter().enumerate() {
            for (s, c) in sels.iter().zip(&compiled) {
                prop_assert_eq!(c.matches_row(&columns, row, &table), s.matches(m), "{} on row {}", s.canonical(), row);
            }
        }
        // Index, including incremental relabels and removals.
        let mut idx = SelectorIndex::from_label_maps(&maps);
        let mut model: Vec<Option<BTreeMap<String, String>>> = maps.iter().cloned().map(Some).collect();
        let isels: Vec<_> = sels.iter().map(|s| idx.compile(s)).collect();
        for (at, new) in relabel {
            if model.is_empty() { break; }
            let i = at.index(model.len());
            match new {
                Some(m) => { idx.set(i, &m); model[i] = Some(m); }
                None => { idx.remove(i); model[i] = None; }
            }
        }
        prop_assert_eq!(idx.len(), model.iter().flatten().count());
        for (s, c) in sels.iter().zip(&isels) {
            let mut got: Vec<usize> = idx.matches(c).collect();
            got.sort_unstable();
            let want: Vec<usize> = model.iter().enumerate()
                .filter(|(_, m)| m.as_ref().is_some_and(|m| s.matches(m)))
                .map(|(i, _)| i).collect();
            prop_assert_eq!(got, want, "{}", s.canonical());
        }
    }
}

#[test]
fn impossible_and_empty_set_selectors_via_index() {
    let maps = vec![
        BTreeMap::from([("a".to_string(), "x".to_string())]),
        BTreeMap::from([("a".to_string(), "y".to_string())]),
        BTreeMap::new(),
    ];
    let mut idx = SelectorIndex::from_label_maps(&maps);
    let q = |idx: &mut SelectorIndex, s: &str| {
        let c = idx.compile(&parse(s).unwrap());
        let mut v: Vec<usize> = idx.matches(&c).collect();
        v.sort_unstable();
        v
    };
    assert_eq!(q(&mut idx, "a == 'x' && a == 'y'"), Vec::<usize>::new());
    assert_eq!(q(&mut idx, "a in {}"), Vec::<usize>::new());
    assert_eq!(q(&mut idx, "a not in {}"), vec![0, 1, 2]);
    assert_eq!(q(&mut idx, "a == 'x' || a == 'y' || has(a)"), vec![0, 1]);
    assert_eq!(q(&mut idx, "!has(a)"), vec![2]);
    assert_eq!(q(&mut idx, "a == 'zz'"), Vec::<usize>::new());
    assert_eq!(q(&mut idx, "nokey == 'zz' || a == 'y'"), vec![1]);
}

/// The three label-map representations (16-bit dense, 32-bit dense, sparse) evaluate alike.
#[test]
fn all_label_representations_agree() {
    let sels: Vec<Selector> = [
        "a == 'x'",
        "a != 'x'",
        "has(k99) && !has(a)",
        "k99 in {'v', 'x'} || a not in {'x'}",
        "k99 starts with 'v' && k99 ends with 'e' && k99 contains 'al'",
        "a == 'x' && k99 == 'value'",
    ]
    .iter()
    .map(|s| parse(s).unwrap())
    .collect();
    let maps: Vec<BTreeMap<String, String>> = vec![
        BTreeMap::from([("a".into(), "x".into())]),
        BTreeMap::from([("k99".into(), "value".into())]),
        BTreeMap::from([("a".into(), "x".into()), ("k99".into(), "value".into())]),
        BTreeMap::from([("a".into(), "y".into()), ("k99".into(), "v".into())]),
        BTreeMap::new(),
    ];
    for (wide_values, many_keys) in [(false, false), (true, false), (false, true), (true, true)] {
        let mut t = LabelTable::new();
        if wide_values {
            for i in 0..70_000 {
                t.intern_value(&format!("filler{i}"));
            }
        }
        t.intern_key("a");
        if many_keys {
            for i in 0..99 {
                t.intern_key(&format!("k{i}"));
            }
        }
        let cs: Vec<_> = sels.iter().map(|s| t.compile_selector(s)).collect();
        for m in &maps {
            let cm = t.compile_labels(m);
            let mut back: Vec<(String, String)> = cm
                .iter()
                .map(|(k, v)| (t.key(k).to_owned(), t.value(v).to_owned()))
                .collect();
            back.sort();
            let want: Vec<(String, String)> = m.clone().into_iter().collect();
            assert_eq!(back, want, "iter() round trip");
            for (s, c) in sels.iter().zip(&cs) {
                assert_eq!(
                    c.matches(&cm, &t),
                    s.matches(m),
                    "{} on {m:?}",
                    s.canonical()
                );
            }
        }
    }
}
