//! The lab over real models (root): the seed tenant, every golden case, and randomized
//! clusters. For every probe the kernel's verdict must equal the oracle's.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use dataplane::lab::scenario::{run_scenario, LabOptions, LabReport, ProbeSpec};
use dataplane::lab::ProbeProto;
use dataplane::model::ModelScenario;
use policy_ir::model::EntityKind;
use policy_ir::Model;

const OUTSIDE: &str = "198.51.100.20";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn opts() -> LabOptions {
    LabOptions {
        timeout: Duration::from_millis(600),
        keep: false,
    }
}

fn disagreements(report: &LabReport) -> Vec<String> {
    report
        .probes
        .iter()
        .filter(|r| !r.agree)
        .map(|r| {
            format!(
                "{} -> {} {:?}/{:?}: kernel {} ({}), oracle {} [egress: {}; ingress: {}]",
                r.from,
                r.to,
                r.protocol,
                r.port,
                r.verdict,
                r.kernel,
                r.oracle,
                r.egress["reason"],
                r.ingress["reason"]
            )
        })
        .collect()
}

/// Probes between up to `max` workload endpoints (spread over the model) and one outside address.
fn probes_for(model: &Model, max: usize) -> Vec<ProbeSpec> {
    let wls: Vec<_> = model
        .entities()
        .iter()
        .filter(|e| e.kind == EntityKind::Workload && !e.nets.is_empty() && e.node.is_some())
        .collect();
    let step = wls.len().div_ceil(max.max(1)).max(1);
    let picked: Vec<_> = wls.iter().step_by(step).take(max).collect();
    let mut names: Vec<String> = picked.iter().map(|e| e.id.to_string()).collect();
    names.push(OUTSIDE.to_string());
    let mut tcp_ports: BTreeSet<u16> = [80, 3306, 8080].into();
    for e in &picked {
        for (_, proto, port) in &e.ports {
            if *proto == policy_ir::ir::Protocol::Tcp {
                tcp_ports.insert(*port);
            }
        }
    }
    let mut out = Vec::new();
    for from in &names {
        for to in &names {
            if from == to || (from == OUTSIDE && to == OUTSIDE) {
                continue;
            }
            let p = |protocol, port| ProbeSpec {
                from: from.clone(),
                to: to.clone(),
                protocol,
                port,
            };
            for port in &tcp_ports {
                out.push(p(ProbeProto::Tcp, Some(*port)));
            }
            out.push(p(ProbeProto::Udp, Some(53)));
            out.push(p(ProbeProto::Icmp, None));
            out.push(p(ProbeProto::Sctp, Some(80)));
        }
    }
    out
}

#[test]
fn seed_tenant_kernel_agrees_with_oracle() {
    let model = Model::load(&[root().join("examples/seed-tenant.yaml")]).expect("seed loads");
    let probes = probes_for(&model, 3);
    let report = run_scenario(&ModelScenario::iptables(&model), &probes, &opts()).expect("lab");
    assert_eq!(disagreements(&report), Vec::<String>::new());
    // Behaviour the seed is about: frontends reach each other; an outside host cannot reach the
    // database on 3306 (the profile's allow is shadowed, and the policy's tier ends in a deny).
    let find = |from: &str, to: &str, proto: ProbeProto, port: Option<u16>| {
        report
            .probes
            .iter()
            .find(|r| r.from == from && r.to == to && r.protocol == proto && r.port == port)
            .unwrap_or_else(|| panic!("probe {from} -> {to} missing"))
            .verdict
            .clone()
    };
    assert_eq!(
        find(
            "slave1-frontend1",
            "slave1-frontend2",
            ProbeProto::Tcp,
            Some(80)
        ),
        "allow"
    );
    assert_eq!(
        find(
            "slave1-frontend2",
            "slave1-frontend1",
            ProbeProto::Tcp,
            Some(3306)
        ),
        "allow"
    );
    assert_eq!(
        find(OUTSIDE, "slave2-database", ProbeProto::Tcp, Some(3306)),
        "deny"
    );
}

#[test]
fn every_golden_case_kernel_agrees_with_oracle() {
    let dir = root().join("golden/cases");
    let mut cases: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("golden/cases")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.join("input.yaml").exists())
        .collect();
    cases.sort();
    assert!(
        !cases.is_empty(),
        "no golden cases found in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    let mut probed = 0;
    for case in &cases {
        let name = case.file_name().unwrap().to_string_lossy().to_string();
        let model = match Model::load(&[case.join("input.yaml")]) {
            Ok(m) => m,
            Err(e) => {
                failures.push(format!("{name}: does not load: {e}"));
                continue;
            }
        };
        let probes = probes_for(&model, 4);
        if probes.len() < 2 {
            continue; // no workload endpoints (e.g. a host-endpoint-only case)
        }
        match run_scenario(&ModelScenario::iptables(&model), &probes, &opts()) {
            Ok(report) => {
                probed += report.probes.len();
                for d in disagreements(&report) {
                    failures.push(format!("{name}: {d}"));
                }
            }
            Err(e) => failures.push(format!("{name}: lab failed: {e}")),
        }
    }
    assert!(probed > 0);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// A tiny deterministic generator (xorshift), seeded per run and printed for reproduction.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<'a>(&mut self, xs: &[&'a str]) -> &'a str {
        xs[self.below(xs.len())]
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

const SELECTORS: [&str; 6] = [
    "role == 'web'",
    "role == 'db'",
    "env == 'prod'",
    "all()",
    "has(role) && env != 'dev'",
    "role in {'web', 'cache'}",
];

fn random_rules(rng: &mut Rng, peer: &str) -> String {
    let mut s = String::new();
    for _ in 0..1 + rng.below(3) {
        let action = rng.pick(&["Allow", "Allow", "Deny", "Pass"]);
        s.push_str(&format!("  - action: {action}\n"));
        let proto = rng.pick(&["", "TCP", "UDP"]);
        if !proto.is_empty() {
            s.push_str(&format!("    protocol: {proto}\n"));
        }
        // The peer side (source for ingress, destination for egress) and the destination ports.
        let mut peer_fields = Vec::new();
        if rng.chance(60) {
            peer_fields.push(match rng.below(3) {
                0 => format!("selector: \"{}\"", rng.pick(&SELECTORS)),
                1 => "nets: [10.70.0.0/29]".to_string(),
                _ => "notNets: [10.70.0.0/30]".to_string(),
            });
        }
        let mut dest_fields = Vec::new();
        if !proto.is_empty() && rng.chance(60) {
            let ports = rng.pick(&["[80]", "[3306]", "[80, 3306]", "[\"1000:9000\"]"]);
            dest_fields.push(format!("ports: {ports}"));
        }
        if peer == "destination" {
            dest_fields.append(&mut peer_fields);
        }
        for (side, fields) in [("source", &peer_fields), ("destination", &dest_fields)] {
            if !fields.is_empty() {
                s.push_str(&format!("    {side}:\n"));
                for f in fields.iter() {
                    s.push_str(&format!("      {f}\n"));
                }
            }
        }
    }
    s
}

fn random_cluster(rng: &mut Rng) -> (String, Vec<String>) {
    let mut y = String::new();
    y.push_str(
        "apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: open\nspec:\n  \
         ingress:\n  - action: Allow\n  egress:\n  - action: Allow\n---\n\
         apiVersion: projectcalico.org/v3\nkind: Profile\nmetadata:\n  name: closed\nspec:\n  \
         ingress:\n  - action: Deny\n  - action: Allow\n  egress:\n  - action: Allow\n",
    );
    let mut names = Vec::new();
    for i in 0..5 {
        let name = format!("wl{i}");
        let role = rng.pick(&["web", "db", "cache"]);
        let env = rng.pick(&["prod", "dev"]);
        let profile = rng.pick(&["open", "open", "closed"]);
        let node = if i % 2 == 0 { "n1" } else { "n2" };
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: WorkloadEndpoint\nmetadata:\n  \
             name: {name}\n  namespace: default\n  labels:\n    role: {role}\n    env: {env}\n\
             spec:\n  node: {node}\n  interfaceName: calirnd{i:08}\n  \
             ipNetworks: [10.70.0.{}/32]\n  profiles: [{profile}]\n",
            i + 1
        ));
        names.push(format!("default/{name}"));
    }
    for p in 0..1 + rng.below(3) {
        let types = rng.pick(&["[Ingress]", "[Egress]", "[Ingress, Egress]"]);
        y.push_str(&format!(
            "---\napiVersion: projectcalico.org/v3\nkind: GlobalNetworkPolicy\nmetadata:\n  \
             name: rnd-{p}\nspec:\n  order: {}\n  selector: \"{}\"\n  types: {types}\n",
            rng.below(100),
            rng.pick(&SELECTORS)
        ));
        if types.contains("Ingress") {
            y.push_str("  ingress:\n");
            y.push_str(&random_rules(rng, "source"));
        }
        if types.contains("Egress") {
            y.push_str("  egress:\n");
            y.push_str(&random_rules(rng, "destination"));
        }
    }
    (y, names)
}

#[test]
fn randomized_clusters_kernel_agrees_with_oracle() {
    let seed: u64 = std::env::var("BRINDLE_LAB_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
                | 1
        });
    eprintln!("randomized lab seed: BRINDLE_LAB_SEED={seed}");
    let mut rng = Rng(seed);
    let mut failures = Vec::new();
    for round in 0..3 {
        let (yaml, mut names) = random_cluster(&mut rng);
        let model = match Model::load_str(&format!("random-{round}.yaml"), &yaml) {
            Ok(m) => m,
            Err(e) => panic!("generated cluster does not load (seed {seed}): {e}\n{yaml}"),
        };
        names.push(OUTSIDE.into());
        let mut probes = Vec::new();
        for from in &names {
            for to in &names {
                if from == to {
                    continue;
                }
                let (protocol, port) = match rng.below(5) {
                    0 => (ProbeProto::Tcp, Some(80)),
                    1 => (ProbeProto::Tcp, Some(3306)),
                    2 => (ProbeProto::Udp, Some(80)),
                    3 => (ProbeProto::Icmp, None),
                    _ => (ProbeProto::Tcp, Some(5000)),
                };
                probes.push(ProbeSpec {
                    from: from.clone(),
                    to: to.clone(),
                    protocol,
                    port,
                });
            }
        }
        let report = run_scenario(&ModelScenario::iptables(&model), &probes, &opts())
            .unwrap_or_else(|e| panic!("lab failed (seed {seed}): {e}"));
        for d in disagreements(&report) {
            failures.push(format!("round {round}: {d}\n{yaml}"));
        }
    }
    assert!(failures.is_empty(), "seed {seed}:\n{}", failures.join("\n"));
}

/// A Kubernetes ipBlock with one `except` (nets and one notNet on the same side): the rule must
/// load into the kernel and decide as the oracle does.
#[test]
fn ip_block_with_except_kernel_agrees_with_oracle() {
    let yaml = "\
apiVersion: projectcalico.org/v3
kind: Profile
metadata: {name: open}
spec:
  ingress: [{action: Allow}]
  egress: [{action: Allow}]
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: egress-block}
spec:
  selector: role == 'client'
  types: [Egress]
  egress:
  - action: Allow
    destination:
      nets: [10.71.0.0/24]
      notNets: [10.71.0.8/29]
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: client, namespace: default, labels: {role: client}}
spec: {node: n1, interfaceName: caliclient0001, ipNetworks: [10.71.0.1/32], profiles: [open]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: inside, namespace: default, labels: {role: server}}
spec: {node: n1, interfaceName: caliinside0001, ipNetworks: [10.71.0.2/32], profiles: [open]}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: excepted, namespace: default, labels: {role: server}}
spec: {node: n1, interfaceName: caliexcept0001, ipNetworks: [10.71.0.9/32], profiles: [open]}
";
    let model = Model::load_str("ipblock.yaml", yaml).expect("loads");
    let probes: Vec<ProbeSpec> = ["default/inside", "default/excepted", OUTSIDE]
        .iter()
        .map(|to| ProbeSpec {
            from: "default/client".into(),
            to: to.to_string(),
            protocol: ProbeProto::Tcp,
            port: Some(80),
        })
        .collect();
    let report = run_scenario(&ModelScenario::iptables(&model), &probes, &opts()).expect("lab");
    assert_eq!(disagreements(&report), Vec::<String>::new());
    let v: Vec<&str> = report.probes.iter().map(|r| r.verdict.as_str()).collect();
    assert_eq!(v, ["allow", "deny", "deny"]);
}
