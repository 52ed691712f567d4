//! Scale benchmark: `cargo run --release -p policy-ir --example scale [-- --endpoints N ...]`.
//!
//! Generates the synthetic cluster (100,000 endpoints, 1,000 namespaces, 5,000 policies, 400
//! nodes so 250 endpoints on `node-0`), then reports:
//! - full load+resolve: building the Model (effective labels, label index with every selector,
//!   policy order) plus `node_ir("node-0")`, median of several runs;
//! - loading the same cluster from its JSON text (parse, validate, convert) and resolving,
//!   median of as many runs (wall and CPU time);
//! - one endpoint relabel (label index membership deltas), median of 2,001;
//! - peak RSS (VmHWM), before and after the JSON text path (`--skip-json` stops before it;
//!   `--json-only` does only the JSON text path, for profiling it).
//!
//! `--write FILE` only writes the generated cluster as one JSON `List` (for other tools).

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use policy_ir::synth::{generate, to_json_list, Params};
use policy_ir::Model;

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) of this process, from /proc/self/stat (10 ms resolution).
fn cpu_time() -> Duration {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let rest = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11).and_then(|x| x.parse().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse().ok()).unwrap_or(0);
    Duration::from_millis(ticks * 10)
}

fn main() {
    let mut p = Params::default();
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut runs = 5;
    let skip_json = args.iter().any(|a| a == "--skip-json");
    let json_only = args.iter().any(|a| a == "--json-only");
    let write = args
        .iter()
        .position(|a| a == "--write")
        .map(|i| args[i + 1].clone());
    let args: Vec<String> = match args.iter().position(|a| a == "--write") {
        Some(i) => args[..i].iter().chain(&args[i + 2..]).cloned().collect(),
        None => args,
    };
    let args: Vec<String> = args
        .into_iter()
        .filter(|a| a != "--skip-json" && a != "--json-only")
        .collect();
    let mut i = 0;
    while i + 1 < args.len() {
        let v: usize = args[i + 1].parse().expect("number");
        match args[i].as_str() {
            "--endpoints" => p.endpoints = v,
            "--namespaces" => p.namespaces = v,
            "--policies" => p.policies = v,
            "--nodes" => p.nodes = v,
            "--runs" => runs = v,
            other => panic!("unknown option {other}"),
        }
        i += 2;
    }
    println!(
        "cluster: {} endpoints, {} namespaces, {} policies, {} nodes",
        p.endpoints, p.namespaces, p.policies, p.nodes
    );
    let t = Instant::now();
    let res = generate(&p);
    println!("generate: {:.1} ms", t.elapsed().as_secs_f64() * 1e3);
    if let Some(path) = write {
        std::fs::write(&path, to_json_list(&res)).expect("write");
        println!("wrote {path}");
        return;
    }

    if !json_only {
        let mut times = Vec::new();
        let mut cpu = Vec::new();
        let mut model = None;
        for _ in 0..runs {
            drop(model.take());
            let r = res.clone();
            let c = cpu_time();
            let t = Instant::now();
            let m = Model::from_resources(r);
            let ir = m.node_ir("node-0");
            let d = t.elapsed();
            times.push(d);
            cpu.push(cpu_time() - c);
            assert_eq!(ir.workloads.len(), p.endpoints / p.nodes);
            if times.len() == 1 {
                println!(
                    "node-0 IR: {} workloads, {} policies, {} profiles, {} ipsets; index: {} selectors",
                    ir.workloads.len(),
                    ir.policies.len(),
                    ir.profiles.len(),
                    ir.ipsets.len(),
                    m.label_index().selector_count()
                );
            }
            model = Some(m);
        }
        println!(
            "load+resolve (Model::from_resources + node_ir): median {:.1} ms over {runs} runs (min {:.1}, max {:.1})",
            median(times.clone()).as_secs_f64() * 1e3,
            times.iter().min().unwrap().as_secs_f64() * 1e3,
            times.iter().max().unwrap().as_secs_f64() * 1e3
        );
        println!(
            "load+resolve CPU time (user+sys): median {:.0} ms",
            median(cpu).as_secs_f64() * 1e3
        );

        let mut model = model.unwrap();
        let n = model.entities().len().min(p.endpoints);
        let mut deltas = 0usize;
        let mut rel = Vec::new();
        let apps = ["web", "api", "db", "cache", "search"];
        for k in 0..2001usize {
            let id = (k * 7919) % n;
            let mut labels: BTreeMap<String, String> = model.entities()[id]
                .labels
                .iter()
                .filter(|(k, _)| !k.starts_with("projectcalico.org/") && !k.starts_with("pcns."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            labels.insert("app".into(), apps[k % apps.len()].into());
            let t = Instant::now();
            let d = model.relabel(id, labels);
            rel.push(t.elapsed());
            deltas += d.len();
        }
        println!(
            "relabel one endpoint (membership deltas): median {:.1} µs over {} (p90 {:.1} µs), {:.1} deltas on average",
            median(rel.clone()).as_secs_f64() * 1e6,
            rel.len(),
            {
                let mut r = rel.clone();
                r.sort();
                r[r.len() * 9 / 10].as_secs_f64() * 1e6
            },
            deltas as f64 / rel.len() as f64
        );
        drop(model);
        println!(
            "peak RSS after generate, {runs} resolves and the relabels: {} MiB",
            peak_rss_kib() / 1024
        );
    }
    if skip_json {
        return;
    }

    let text = to_json_list(&res);
    let (mut parse_wall, mut parse_cpu, mut total_wall, mut total_cpu) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for _ in 0..runs {
        let c = cpu_time();
        let t = Instant::now();
        let mut l = policy_ir::load::Loader::new();
        l.add_text("synth.json", &text);
        let loaded = l.finish().expect("valid");
        parse_wall.push(t.elapsed());
        parse_cpu.push(cpu_time() - c);
        let m = Model::from_resources(loaded);
        let _ = m.node_ir("node-0");
        total_wall.push(t.elapsed());
        total_cpu.push(cpu_time() - c);
    }
    let ms = |v: &Vec<Duration>| median(v.clone()).as_secs_f64() * 1e3;
    println!(
        "from JSON text ({:.1} MB): parse+validate {:.1} ms, total with resolve {:.1} ms (medians over {runs} runs; min {:.1} / {:.1})",
        text.len() as f64 / 1e6,
        ms(&parse_wall),
        ms(&total_wall),
        parse_wall.iter().min().unwrap().as_secs_f64() * 1e3,
        total_wall.iter().min().unwrap().as_secs_f64() * 1e3,
    );
    println!(
        "from JSON text CPU time (user+sys): parse+validate {:.0} ms, total with resolve {:.0} ms",
        ms(&parse_cpu),
        ms(&total_cpu)
    );
    println!(
        "peak RSS including the JSON text path: {} MiB",
        peak_rss_kib() / 1024
    );
}
