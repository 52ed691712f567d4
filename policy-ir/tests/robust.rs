//! A bad file never panics: mutated versions of real inputs either load or yield located
//! diagnostics.

use proptest::prelude::*;

const SEED: &str = include_str!("../../examples/seed-tenant.yaml");
const DIR_B: &str = include_str!("data/dir/b.yaml");
const BAD: &str = include_str!("data/bad.yaml");

fn run(text: &str) {
    let mut l = policy_ir::load::Loader::new();
    l.add_text("m.yaml", text);
    match l.finish() {
        Ok(res) => {
            let m = policy_ir::Model::from_resources(res);
            for n in m.nodes() {
                let _ = m.node_ir(&n);
            }
            let _ = policy_ir::lint::lint(&m);
        }
        Err(e) => {
            let d = e.diagnostics();
            assert!(!d.is_empty(), "an error without diagnostics: {e}");
            for x in d {
                assert!(x.line >= 1 && x.column >= 1, "unlocated: {x}");
            }
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]
    #[test]
    fn mutated_inputs_never_panic(which in 0usize..3, edits in proptest::collection::vec((any::<u16>(), 0u8..4, any::<u8>()), 1..6)) {
        let mut bytes: Vec<u8> = [SEED, DIR_B, BAD][which].as_bytes().to_vec();
        for (pos, op, b) in edits {
            if bytes.is_empty() { break; }
            let i = pos as usize % bytes.len();
            const CH: &[u8] = b" :-[]{}'\"\n#&*!|>0a%";
            let ch = CH[b as usize % CH.len()];
            match op {
                0 => { bytes.remove(i); }
                1 => bytes.insert(i, ch),
                2 => bytes[i] = ch,
                _ => { let j = (i + b as usize) % bytes.len(); bytes.truncate(j.max(1)); }
            }
        }
        let text = String::from_utf8_lossy(&bytes).into_owned();
        run(&text);
    }
}
