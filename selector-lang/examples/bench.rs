//! Selector benchmark on the workload of `gen_selector_bench.py`.
//!
//! ```text
//! python3 ../shared/bench/gen_selector_bench.py --out target/selector-bench.json
//! cargo run --release -p selector-lang --example bench -- target/selector-bench.json
//! ```
//!
//! Measures (medians over several rounds, in thread CPU time because the machine is shared;
//! wall-clock medians are printed alongside):
//! * parse + canonical + UID per selector, for the fast parser and for the pest reference;
//! * compiled evaluation per (selector, label map) pair over all pairs (each selector against
//!   every map in turn, one `matches_row` call per pair, the maps compiled into one
//!   [`selector_lang::LabelColumns`]); also the same with one `CompiledLabels` per map
//!   (`eval_per_map_ns_per_pair`);
//! * all matches of all selectors through [`SelectorIndex`];
//!
//! and checks that string-level evaluation, compiled brute force and the index find the same
//! matching pairs. The last line is one JSON object with `parse_ns_per_selector`,
//! `eval_ns_per_pair`, `index_match_ms` and `matching_pairs`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::{Duration, Instant};

use selector_lang::{parse, reference, LabelTable, Selector, SelectorIndex};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

/// CPU time of this thread: the machine is shared, so wall time includes waiting for a core.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid pointer to a timespec; CLOCK_THREAD_CPUTIME_ID is always available on Linux.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Runs `f` `n` times; returns the median (thread CPU time, wall time) of one run.
fn rounds(n: usize, mut f: impl FnMut()) -> (Duration, Duration) {
    let (mut cpu, mut wall) = (Vec::new(), Vec::new());
    for _ in 0..n {
        let (c, t) = (thread_cpu(), Instant::now());
        f();
        wall.push(t.elapsed());
        cpu.push(thread_cpu() - c);
    }
    (median(cpu), median(wall))
}

fn main() {
    let path = std::env::args()
        .nth(1)
        .expect("usage: bench WORKLOAD.json (made by gen_selector_bench.py)");
    let text = std::fs::read_to_string(&path).expect("read workload");
    let w: serde_json::Value = serde_json::from_str(&text).expect("workload JSON");
    let sel_strs: Vec<String> = w["selectors"]
        .as_array()
        .expect("selectors")
        .iter()
        .map(|s| s.as_str().expect("selector string").to_owned())
        .collect();
    let maps: Vec<BTreeMap<String, String>> =
        serde_json::from_value(w["labels"].clone()).expect("label maps");
    let nsel = sel_strs.len();
    let nmaps = maps.len();
    let pairs = (nsel * nmaps) as f64;
    eprintln!("workload: {nsel} selectors, {nmaps} label maps");

    // 1. parse + canonical + UID.
    let parse_round = rounds(41, || {
        for s in &sel_strs {
            let sel = parse(s).expect("valid selector");
            black_box(sel.uid());
        }
    });
    let parse_ns = parse_round.0.as_nanos() as f64 / nsel as f64;
    let parse_wall_ns = parse_round.1.as_nanos() as f64 / nsel as f64;
    let pest_round = rounds(11, || {
        for s in &sel_strs {
            let sel = Selector::from_node(reference::parse_node(s).expect("valid selector"));
            black_box(sel.uid());
        }
    });
    let pest_ns = pest_round.0.as_nanos() as f64 / nsel as f64;
    eprintln!("parse+canonical+uid: fast {parse_ns:.0} ns/selector (wall {parse_wall_ns:.0}), pest reference {pest_ns:.0} ns/selector");

    let sels: Vec<Selector> = sel_strs.iter().map(|s| parse(s).unwrap()).collect();
    for (s, p) in sel_strs.iter().zip(&sels) {
        let r = Selector::from_node(reference::parse_node(s).unwrap());
        assert_eq!(
            r.canonical(),
            p.canonical(),
            "pest and fast parser disagree on {s:?}"
        );
    }

    // 2. Compiled evaluation over all pairs.
    let mut table = LabelTable::new();
    let t = Instant::now();
    let cmaps: Vec<_> = maps.iter().map(|m| table.compile_labels(m)).collect();
    let csels: Vec<_> = sels.iter().map(|s| table.compile_selector(s)).collect();
    eprintln!("compile: {:?} for all maps and selectors", t.elapsed());
    let columns = table.compile_label_columns(&cmaps);
    let mut brute = 0usize;
    let eval_round = rounds(7, || {
        let mut n = 0usize;
        for cs in &csels {
            for row in 0..columns.len() {
                n += cs.matches_row(&columns, black_box(row), &table) as usize;
            }
        }
        brute = n;
    });
    let eval_ns = eval_round.0.as_nanos() as f64 / pairs;
    let eval_wall_ns = eval_round.1.as_nanos() as f64 / pairs;
    eprintln!(
        "compiled eval (maps stored by column, one call per pair): {eval_ns:.2} ns/pair (wall {eval_wall_ns:.2}), {brute} matching pairs"
    );
    let mut per_map = 0usize;
    let map_round = rounds(5, || {
        let mut n = 0usize;
        for cs in &csels {
            for cm in &cmaps {
                n += cs.matches(black_box(cm), &table) as usize;
            }
        }
        per_map = n;
    });
    let map_ns = map_round.0.as_nanos() as f64 / pairs;
    eprintln!(
        "compiled eval (one CompiledLabels per map): {map_ns:.2} ns/pair, {per_map} matching pairs"
    );
    assert_eq!(per_map, brute, "columns and per-map evaluation disagree");

    // String-level evaluation (the reference semantics), once.
    let t = Instant::now();
    let mut string_count = 0usize;
    for s in &sels {
        for m in &maps {
            string_count += s.matches(m) as usize;
        }
    }
    let string_ns = t.elapsed().as_nanos() as f64 / pairs;
    eprintln!("string eval: {string_ns:.1} ns/pair, {string_count} matching pairs");
    assert_eq!(
        brute, string_count,
        "compiled and string evaluation disagree"
    );

    // 3. Index.
    let t = Instant::now();
    let mut idx = SelectorIndex::from_label_maps(&maps);
    let build = t.elapsed();
    let isels: Vec<_> = sels.iter().map(|s| idx.compile(s)).collect();
    let mut via_index = 0usize;
    let index_round = rounds(11, || {
        let mut n = 0usize;
        for cs in &isels {
            n += idx.matches(cs).count();
        }
        via_index = n;
    });
    let index_ms = index_round.0.as_secs_f64() * 1e3;
    let index_wall_ms = index_round.1.as_secs_f64() * 1e3;
    eprintln!(
        "index: build {:.1} ms, all matches {index_ms:.1} ms (wall {index_wall_ms:.1}), {via_index} matching pairs",
        build.as_secs_f64() * 1e3
    );
    assert_eq!(via_index, brute, "index and brute force disagree");
    // Same pairs, not only the same count: compare per selector.
    for (cs, s) in isels.iter().zip(&sels) {
        let mut got: Vec<usize> = idx.matches(cs).collect();
        got.sort_unstable();
        let want: Vec<usize> = (0..nmaps).filter(|&i| s.matches(&maps[i])).collect();
        assert_eq!(got, want, "index result differs for {}", s.canonical());
    }

    println!(
        "{}",
        serde_json::json!({
            "parse_ns_per_selector": (parse_ns * 10.0).round() / 10.0,
            "parse_ns_per_selector_wall": (parse_wall_ns * 10.0).round() / 10.0,
            "pest_parse_ns_per_selector": pest_ns.round(),
            "eval_ns_per_pair": (eval_ns * 100.0).round() / 100.0,
            "eval_ns_per_pair_wall": (eval_wall_ns * 100.0).round() / 100.0,
            "eval_per_map_ns_per_pair": (map_ns * 100.0).round() / 100.0,
            "string_eval_ns_per_pair": (string_ns * 10.0).round() / 10.0,
            "index_build_ms": (build.as_secs_f64() * 1e4).round() / 10.0,
            "index_match_ms": (index_ms * 10.0).round() / 10.0,
            "index_match_ms_wall": (index_wall_ms * 10.0).round() / 10.0,
            "timing": "medians of thread CPU time; *_wall: medians of wall time",
            "matching_pairs": via_index,
        })
    );
}
