//! Criterion benches for the three selector paths on a small slice of the workload:
//! parse + canonical + UID, compiled evaluation, and all matches through the index.
//!
//! Uses the first 200 selectors and 2,000 label maps of `$SELECTOR_BENCH_JSON` (default
//! `target/selector-bench.json`, made by `gen_selector_bench.py`), or a built-in deterministic
//! workload if that file is missing.
//!
//! ```text
//! cargo bench -p selector-lang --bench selector
//! ```

use std::collections::BTreeMap;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use selector_lang::{parse, reference, LabelTable, Selector, SelectorIndex};

type Maps = Vec<BTreeMap<String, String>>;

fn workload() -> (Vec<String>, Maps) {
    let path = std::env::var("SELECTOR_BENCH_JSON").unwrap_or_else(|_| {
        concat!(env!("CARGO_MANIFEST_DIR"), "/../target/selector-bench.json").to_owned()
    });
    if let Ok(text) = std::fs::read_to_string(&path) {
        let w: serde_json::Value = serde_json::from_str(&text).expect("workload JSON");
        let sels = w["selectors"].as_array().expect("selectors")[..200]
            .iter()
            .map(|s| s.as_str().unwrap().to_owned())
            .collect();
        let maps: Maps = serde_json::from_value(w["labels"].clone()).expect("labels");
        return (sels, maps.into_iter().take(2000).collect());
    }
    eprintln!("{path} not found: using the built-in workload");
    builtin()
}

/// A small deterministic workload (xorshift) over a Kubernetes-like vocabulary.
fn builtin() -> (Vec<String>, Maps) {
    let keys = [
        "app",
        "tier",
        "env",
        "version",
        "team",
        "projectcalico.org/namespace",
    ];
    let vals = [
        "web",
        "api",
        "db",
        "prod",
        "dev",
        "v1",
        "v2",
        "infra",
        "default",
        "kube-system",
    ];
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = |n: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % n as u64) as usize
    };
    let mut sels = Vec::new();
    for _ in 0..200 {
        let mut terms = Vec::new();
        for _ in 0..1 + rnd(3) {
            let (k, v, w) = (
                keys[rnd(keys.len())],
                vals[rnd(vals.len())],
                vals[rnd(vals.len())],
            );
            terms.push(match rnd(5) {
                0 => format!("{k} == '{v}'"),
                1 => format!("{k} in {{'{v}', \"{w}\"}}"),
                2 => format!("has({k})"),
                3 => format!("{k} != \"{v}\""),
                _ => format!("!({k} starts with '{}')", &v[..1]),
            });
        }
        sels.push(terms.join(if rnd(4) == 0 { " || " } else { " && " }));
    }
    let maps = (0..2000)
        .map(|_| {
            (0..3 + rnd(4))
                .map(|_| {
                    (
                        keys[rnd(keys.len())].to_owned(),
                        vals[rnd(vals.len())].to_owned(),
                    )
                })
                .collect()
        })
        .collect();
    (sels, maps)
}

fn benches(c: &mut Criterion) {
    let (sel_strs, maps) = workload();
    let sels: Vec<Selector> = sel_strs.iter().map(|s| parse(s).unwrap()).collect();

    let mut g = c.benchmark_group("parse_canonical_uid");
    g.throughput(Throughput::Elements(sel_strs.len() as u64));
    g.bench_function("fast", |b| {
        b.iter(|| {
            for s in &sel_strs {
                black_box(parse(black_box(s)).unwrap());
            }
        })
    });
    g.bench_function("pest_reference", |b| {
        b.iter(|| {
            for s in &sel_strs {
                black_box(Selector::from_node(
                    reference::parse_node(black_box(s)).unwrap(),
                ));
            }
        })
    });
    g.finish();

    let mut table = LabelTable::new();
    let cmaps: Vec<_> = maps.iter().map(|m| table.compile_labels(m)).collect();
    let csels: Vec<_> = sels.iter().map(|s| table.compile_selector(s)).collect();
    let mut g = c.benchmark_group("eval");
    g.throughput(Throughput::Elements((sels.len() * maps.len()) as u64));
    g.bench_function("compiled_all_pairs", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for cs in &csels {
                for cm in &cmaps {
                    n += cs.matches(black_box(cm), &table) as usize;
                }
            }
            n
        })
    });
    let columns = table.compile_label_columns(&cmaps);
    g.bench_function("compiled_all_pairs_columns", |b| {
        b.iter(|| {
            let mut n = 0usize;
            for cs in &csels {
                for row in 0..columns.len() {
                    n += cs.matches_row(&columns, black_box(row), &table) as usize;
                }
            }
            n
        })
    });
    g.finish();

    let mut idx = SelectorIndex::from_label_maps(&maps);
    let isels: Vec<_> = sels.iter().map(|s| idx.compile(s)).collect();
    let mut g = c.benchmark_group("index");
    g.throughput(Throughput::Elements(sels.len() as u64));
    g.bench_function("all_matches", |b| {
        b.iter(|| isels.iter().map(|s| idx.matches(s).count()).sum::<usize>())
    });
    g.finish();
}

criterion_group! {
    name = selector;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(3));
    targets = benches
}
criterion_main!(selector);
