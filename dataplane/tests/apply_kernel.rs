//! Apply / diff / drift repair against a real kernel, each test in its own fresh namespace.

use std::collections::BTreeMap;

use dataplane::apply::apply;
use dataplane::netns::{unique_prefix, Netns, Target};
use dataplane::plan::{chains_written, compute};
use dataplane::state::{read_current, Desired, DesiredRule, DesiredSet, DesiredTable};

fn rule(hash: &str, body: &str) -> DesiredRule {
    DesiredRule {
        hash: hash.into(),
        body: format!("-m comment --comment \"cali:{hash}\" {body}"),
    }
}

/// A small Felix-shaped ruleset: hooks in INPUT/FORWARD, a dispatch-like chain, an endpoint
/// chain using an ipset, and a nat chain.
fn desired() -> Desired {
    let mut filter = DesiredTable::default();
    filter.chains.insert(
        "cali-FORWARD".into(),
        vec![
            rule(
                "fwd0000000000001",
                "-m conntrack --ctstate RELATED,ESTABLISHED --jump ACCEPT",
            ),
            rule("fwd0000000000002", "-o cali+ --jump cali-tw-caliA"),
        ],
    );
    filter.chains.insert(
        "cali-tw-caliA".into(),
        vec![
            rule(
                "tw00000000000001",
                "-p tcp -m multiport --destination-ports 3306 --jump DROP",
            ),
            rule(
                "tw00000000000002",
                "-m set --match-set cali40s:front src --jump MARK --set-xmark 0x1000000/0x1000000",
            ),
            rule(
                "tw00000000000003",
                "-m mark --mark 0x1000000/0x1000000 --jump RETURN",
            ),
        ],
    );
    filter.chains.insert(
        "cali-INPUT".into(),
        vec![rule("inp0000000000001", "-i cali+ --jump DROP")],
    );
    filter.inserts = vec![
        (
            "INPUT".into(),
            rule("hookinput0000001", "--jump cali-INPUT"),
        ),
        (
            "FORWARD".into(),
            rule("hookforward00001", "--jump cali-FORWARD"),
        ),
    ];
    filter.appends = vec![(
        "FORWARD".into(),
        rule(
            "appendfwd0000001",
            "-m mark --mark 0x1000000/0x1000000 --jump ACCEPT",
        ),
    )];
    let mut nat = DesiredTable::default();
    nat.chains.insert(
        "cali-POSTROUTING".into(),
        vec![rule(
            "nat0000000000001",
            "-s 10.65.0.0/16 ! -d 10.65.0.0/16 --jump MASQUERADE",
        )],
    );
    nat.appends = vec![(
        "POSTROUTING".into(),
        rule("natpost000000001", "--jump cali-POSTROUTING"),
    )];
    Desired {
        tables: BTreeMap::from([("filter".into(), filter), ("nat".into(), nat)]),
        ipsets: vec![DesiredSet {
            name: "cali40s:front".into(),
            set_type: "hash:net".into(),
            maxelem: 1048576,
            members: vec!["10.65.0.1/32".into(), "10.65.1.0/24".into()],
        }],
    }
}

/// Foreign state: a Docker-like chain with its jump, and an admin's own INPUT rule.
const FOREIGN: &str = "*filter\n:DOCKER - [0:0]\n\
-A FORWARD -o docker0 -j DOCKER\n\
-A DOCKER -d 172.17.0.2/32 ! -i docker0 -o docker0 -p tcp -m tcp --dport 80 -j ACCEPT\n\
-A INPUT -s 192.0.2.0/24 -p tcp -m tcp --dport 22 -j ACCEPT\nCOMMIT\n\
*nat\n-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE\nCOMMIT\n";

fn fresh() -> Netns {
    let ns = Netns::create(&format!("{}-apply", unique_prefix())).expect("netns");
    ns.run("iptables-restore", &["--noflush"], Some(FOREIGN))
        .expect("foreign rules");
    ns
}

fn chain_lines(t: &Target, table: &str, chain: &str) -> Vec<String> {
    let save = t.run("iptables-save", &["-t", table], None).unwrap();
    save.lines()
        .filter(|l| l.starts_with(&format!("-A {chain} ")))
        .map(String::from)
        .collect()
}

fn foreign_lines(t: &Target) -> Vec<String> {
    let save = t.run("iptables-save", &[], None).unwrap();
    save.lines()
        .filter(|l| (l.starts_with("-A ") || l.starts_with(':')) && !l.contains("cali"))
        .map(|l| l.split(" [").next().unwrap().to_string())
        .collect()
}

#[test]
fn apply_is_minimal_idempotent_and_leaves_foreign_rules_alone() {
    let ns = fresh();
    let t = ns.target();
    let foreign_before = foreign_lines(&t);
    let want = desired();

    let first = apply(&t, &want).expect("first apply");
    assert_eq!(first.tables_written, vec!["nat", "filter"]);
    assert!(first.payload_bytes > 0);

    // Hooks: ours first in INPUT/FORWARD, foreign rules after, our append last; nat append after
    // Docker's MASQUERADE.
    let input = chain_lines(&t, "filter", "INPUT");
    assert!(input[0].contains("cali:hookinput0000001"), "{input:?}");
    assert!(input[1].contains("--dport 22"), "{input:?}");
    let fwd = chain_lines(&t, "filter", "FORWARD");
    assert_eq!(fwd.len(), 3, "{fwd:?}");
    assert!(fwd[0].contains("cali:hookforward00001"));
    assert!(fwd[1].contains("-j DOCKER"));
    assert!(fwd[2].contains("cali:appendfwd0000001"));
    let post = chain_lines(&t, "nat", "POSTROUTING");
    assert!(post[0].contains("MASQUERADE") && post[1].contains("cali:natpost000000001"));
    assert_eq!(chain_lines(&t, "filter", "cali-tw-caliA").len(), 3);
    let sets = t.run("ipset", &["save"], None).unwrap();
    assert!(sets.contains("add cali40s:front 10.65.0.1\n"), "{sets}");
    assert_eq!(foreign_lines(&t), foreign_before);

    // Second apply: nothing to do, nothing written.
    let second = apply(&t, &want).expect("second apply");
    assert!(second.plan.is_empty(), "{:?}", second.plan);
    assert_eq!(second.payload_bytes, 0);
    assert!(second.tables_written.is_empty());
    assert_eq!(foreign_lines(&t), foreign_before);
}

#[test]
fn drift_is_found_and_repaired() {
    let ns = fresh();
    let t = ns.target();
    let want = desired();
    apply(&t, &want).expect("apply");
    // By hand: delete a rule of an endpoint chain, delete our INPUT hook, replace a rule.
    t.run(
        "iptables-restore",
        &["--noflush"],
        Some(
            "*filter\n-D cali-tw-caliA 1\n-D INPUT -m comment --comment \"cali:hookinput0000001\" -j cali-INPUT\n\
             -R cali-INPUT 1 -j ACCEPT\nCOMMIT\n",
        ),
    )
    .unwrap();
    let plan = compute(&want, &read_current(&t).unwrap());
    let written = chains_written(&plan);
    assert_eq!(
        written["filter"],
        vec!["cali-INPUT".to_string(), "cali-tw-caliA".to_string()]
    );
    let filter = plan.tables.iter().find(|x| x.table == "filter").unwrap();
    assert_eq!(filter.hooks.len(), 1);
    assert_eq!(filter.hooks[0].chain, "INPUT");
    let tw = filter
        .chains
        .iter()
        .find(|c| c.chain == "cali-tw-caliA")
        .unwrap();
    let added: Vec<_> = tw.rules.iter().filter(|l| l.op == "+").collect();
    assert_eq!(added.len(), 1);
    assert!(added[0].text.contains("cali:tw00000000000001"));
    assert!(!plan.tables.iter().any(|x| x.table == "nat"));

    apply(&t, &want).expect("repair");
    assert!(compute(&want, &read_current(&t).unwrap()).is_empty());
    let input = chain_lines(&t, "filter", "INPUT");
    assert!(input[0].contains("cali:hookinput0000001"));
    assert_eq!(input.len(), 2);
}

#[test]
fn edits_rewrite_only_what_changed_and_stale_state_goes_last() {
    let ns = fresh();
    let t = ns.target();
    let mut want = desired();
    apply(&t, &want).expect("apply");

    // Relabel: an ipset member change only, no chain rewritten.
    want.ipsets[0].members.push("10.65.0.9/32".into());
    want.ipsets[0].members.retain(|m| m != "10.65.0.1/32");
    let r = apply(&t, &want).expect("relabel");
    assert!(r.tables_written.is_empty(), "{:?}", r.plan);
    assert_eq!(r.plan.ipsets.len(), 1);
    assert_eq!(r.plan.ipsets[0].add, vec!["10.65.0.9"]);
    assert_eq!(r.plan.ipsets[0].del, vec!["10.65.0.1"]);
    let sets = t.run("ipset", &["save"], None).unwrap();
    assert!(sets.contains("10.65.0.9") && !sets.contains("10.65.0.1\n"));

    // Policy edit: one chain's rule changes; only that chain is written.
    let tw = want
        .tables
        .get_mut("filter")
        .unwrap()
        .chains
        .get_mut("cali-tw-caliA")
        .unwrap();
    tw[0] = rule(
        "tw0000000000000X",
        "-p tcp -m multiport --destination-ports 5432 --jump DROP",
    );
    let r = apply(&t, &want).expect("policy edit");
    assert_eq!(chains_written(&r.plan)["filter"], vec!["cali-tw-caliA"]);
    assert!(r.plan.ipsets.is_empty());
    assert!(chain_lines(&t, "filter", "cali-tw-caliA")[0].contains("5432"));

    // Remove a chain and the set (and the rule referencing it), change maxelem of another set.
    let f = want.tables.get_mut("filter").unwrap();
    f.chains.get_mut("cali-tw-caliA").unwrap().remove(1);
    f.chains.get_mut("cali-FORWARD").unwrap().remove(1);
    f.chains.remove("cali-tw-caliA");
    want.ipsets.clear();
    let r = apply(&t, &want).expect("removal");
    assert_eq!(r.sets_destroyed, vec!["cali40s:front"]);
    let save = t.run("iptables-save", &[], None).unwrap();
    assert!(!save.contains("cali-tw-caliA"), "{save}");
    assert!(!t
        .run("ipset", &["save"], None)
        .unwrap()
        .contains("cali40s:front"));
    assert!(apply(&t, &want).unwrap().plan.is_empty());
}

#[test]
fn set_size_change_swaps_through_a_temporary_set() {
    let ns = fresh();
    let t = ns.target();
    let mut want = desired();
    apply(&t, &want).expect("apply");
    want.ipsets[0].maxelem = 4096;
    want.ipsets[0].members.push("10.65.2.2/32".into());
    let r = apply(&t, &want).expect("resize");
    assert_eq!(r.plan.ipsets[0].change, "recreate");
    assert_eq!(r.sets_destroyed, vec!["cali4t0"]);
    assert!(r.tables_written.is_empty());
    let sets = t.run("ipset", &["save"], None).unwrap();
    assert!(
        sets.contains("create cali40s:front hash:net family inet hashsize 1024 maxelem 4096"),
        "{sets}"
    );
    assert!(sets.contains("add cali40s:front 10.65.2.2"));
    assert!(!sets.contains("cali4t0"));
    assert!(apply(&t, &want).unwrap().plan.is_empty());
}

#[test]
fn a_rejected_payload_changes_nothing() {
    let ns = fresh();
    let t = ns.target();
    let want = desired();
    apply(&t, &want).expect("apply");
    let before = t.run("iptables-save", &[], None).unwrap();
    let sets_before = t.run("ipset", &["save"], None).unwrap();
    let strip = |s: &str| -> String {
        s.lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n")
    };

    // A chain edit the kernel rejects (unknown match) plus a new set.
    let mut bad = want.clone();
    let f = bad.tables.get_mut("filter").unwrap();
    f.chains.get_mut("cali-INPUT").unwrap()[0] =
        rule("inp000000000000X", "-m nosuchmatch --jump DROP");
    bad.ipsets.push(DesiredSet {
        name: "cali40s:new".into(),
        set_type: "hash:net".into(),
        maxelem: 1048576,
        members: vec!["10.9.9.9/32".into()],
    });
    let err = apply(&t, &bad).unwrap_err();
    let msg = err.to_string();
    assert!(msg.contains("filter") && msg.contains("unchanged"), "{msg}");
    assert!(
        msg.contains("payload line") && msg.contains("-m nosuchmatch"),
        "{msg}"
    );
    assert_eq!(
        strip(&t.run("iptables-save", &[], None).unwrap()),
        strip(&before)
    );
    assert_eq!(t.run("ipset", &["save"], None).unwrap(), sets_before);
}

#[test]
fn the_caching_applier_matches_the_kernel_and_resyncs_after_drift() {
    use dataplane::apply::Applier;
    let ns = fresh();
    let t = ns.target();
    let mut agent = Applier::new(t.clone());
    let mut want = desired();
    agent.apply(&want).expect("first");
    want.ipsets[0].members.push("10.65.3.3/32".into());
    let r = agent.apply(&want).expect("relabel");
    assert!(r.tables_written.is_empty());
    assert_eq!(r.plan.ipsets[0].add, vec!["10.65.3.3"]);
    let f = want.tables.get_mut("filter").unwrap();
    f.chains.get_mut("cali-INPUT").unwrap()[0] = rule("inp00000000000X2", "-i cali+ --jump RETURN");
    agent.apply(&want).expect("edit");
    // Its belief equals what a fresh read finds.
    assert!(compute(&want, &read_current(&t).unwrap()).is_empty());
    assert!(agent.apply(&want).unwrap().plan.is_empty());

    // Drift behind its back is invisible to the cache until a resync.
    t.run("ipset", &["del", "cali40s:front", "10.65.3.3"], None)
        .unwrap();
    assert!(agent.apply(&want).unwrap().plan.is_empty());
    agent.resync();
    let r = agent.apply(&want).expect("resync");
    assert_eq!(r.plan.ipsets[0].add, vec!["10.65.3.3"]);
    assert!(compute(&want, &read_current(&t).unwrap()).is_empty());
}
