//! Fuzzes the selector parser: no panics, bounded time on large inputs (libFuzzer's
//! `-timeout` catches slow cases), and the properties the tests assert on small inputs:
//! the fast parser and the pest grammar accept the same inputs with the same canonical form,
//! the canonical form re-parses to the same meaning, and error offsets are in range.
#![no_main]

use std::collections::BTreeMap;

use libfuzzer_sys::fuzz_target;
use selector_lang::{parse, reference, LabelTable, Selector};

fuzz_target!(|data: &[u8]| {
    let Ok(input) = std::str::from_utf8(data) else {
        return;
    };
    match parse(input) {
        Ok(sel) => {
            let again = parse(sel.canonical()).expect("canonical form must parse");
            // Evaluate on a label map derived from the selector's own labels.
            let mut labels = BTreeMap::new();
            for (k, r) in sel.label_restrictions() {
                let v = r
                    .must_have_one_of_values
                    .and_then(|v| v.first().cloned())
                    .unwrap_or_default();
                labels.insert(k, v);
            }
            assert_eq!(sel.matches(&labels), again.matches(&labels));
            let mut t = LabelTable::new();
            let c = t.compile_selector(&sel);
            let l = t.compile_labels(&labels);
            assert_eq!(c.matches(&l, &t), sel.matches(&labels));
            let empty = t.compile_labels(BTreeMap::<String, String>::new());
            let columns = t.compile_label_columns([&empty, &l]);
            assert_eq!(c.matches_row(&columns, 1, &t), sel.matches(&labels));
            assert_eq!(c.matches_row(&columns, 0, &t), c.matches(&empty, &t));
            assert_eq!(sel.uid().len(), 40);
        }
        Err(e) => {
            assert!(e.offset <= input.len());
            let _ = e.render(input);
        }
    }
    // The pest reference recurses per nesting level: compare on moderate sizes only.
    if input.len() <= 4096 {
        let fast = parse(input).map(|s| s.canonical().to_owned());
        let pest = reference::parse_node(input).map(|n| Selector::from_node(n).canonical().to_owned());
        match (fast, pest) {
            (Ok(a), Ok(b)) => assert_eq!(a, b, "canonical differs for {input:?}"),
            (Err(_), Err(_)) => {}
            (a, b) => panic!("fast {a:?} vs pest {b:?} on {input:?}"),
        }
    }
});
