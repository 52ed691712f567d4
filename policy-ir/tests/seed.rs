//! The seed tenant and the bad-input file, end to end through the library.

use std::path::PathBuf;

use policy_ir::ir::Protocol;
use policy_ir::oracle::{DecidedBy, Probe, Verdict};
use policy_ir::{Model, PolicyIrError};

fn data(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(p)
}

fn seed() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-tenant.yaml")
}

fn probe(from: &str, to: &str, protocol: Protocol, port: Option<u16>) -> Probe {
    Probe {
        from: from.into(),
        to: to.into(),
        protocol,
        port,
    }
}

#[test]
fn bad_file_reports_every_error_with_places() {
    let err = Model::load(&[data("bad.yaml")]).err().expect("must fail");
    let PolicyIrError::Invalid(d) = &err else {
        panic!("{err}")
    };
    let text: Vec<String> = d.iter().map(|x| x.to_string()).collect();
    let all = text.join("\n");
    eprintln!("{all}");
    let has = |needle: &str| {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    };
    has(r#"bad.yaml:10:17: GlobalNetworkPolicy "broken" spec.ingress[0].source.selector: "#);
    has(
        r#"bad.yaml:11:14: GlobalNetworkPolicy "broken" spec.ingress[0].source.nets[0]: "10.0.0.0/33" is not a CIDR"#,
    );
    has(r#"spec.ingress[0].destination.ports[1]: bad port range "90:80": start is after end"#);
    has(r#"spec.ingress[0].destination.ports[2]: "bad port" is not a port"#);
    has(
        r#"bad.yaml:15:13: GlobalNetworkPolicy "broken" spec.ingress[1].action: unknown action "Allw""#,
    );
    has(
        r#"bad.yaml:16:5: GlobalNetworkPolicy "broken" spec.ingress[1].protcol: unknown field `protcol` (did you mean `protocol`?)"#,
    );
    has(r#"spec.types[1]: unknown policy type "Sideways""#);
    has(r#"metadata.name: duplicate name: already defined at "#);
    has(r#"spec.tier: references Tier "missing-tier", which is not defined"#);
    has(r#"spec.egress[0].icmp.type: ICMP type 300 is out of range"#);
    has(r#"WorkloadEndpoint "ns1/w1" spec.ipNetworks[1]: "10.0.0.300" is not a CIDR"#);
    has(
        r#"spec.profiles[0]: references Profile "profile-databse", which is not defined (did you mean "profile-database"?)"#,
    );
    has(
        r#"profile "profile-database" spec.ingress[0].destination.ports[0]: port 70000 is out of range"#,
    );
    has(
        r#"kind: unsupported kind "GlobalNetworkPolcy" for apiVersion "projectcalico.org/v3" (did you mean `GlobalNetworkPolicy`?)"#,
    );
    // Sorted by place.
    let mut sorted = d.clone();
    sorted.sort();
    assert_eq!(&sorted, d);
}

#[test]
fn seed_loads_and_converts_v1() {
    let m = Model::load(&[seed()]).unwrap();
    let r = m.resources();
    assert_eq!(r.workload_endpoints.len(), 3);
    assert_eq!(r.global_network_policies.len(), 1);
    assert_eq!(r.global_network_policies[0].spec.tier, "default");
    assert_eq!(
        r.profiles[0]
            .spec
            .labels_to_apply
            .get("profile")
            .map(String::as_str),
        Some("profile-database")
    );
    assert_eq!(r.profiles[0].spec.ingress[1].destination.ports.len(), 1);
    assert_eq!(r.ip_pools[0].spec.ipip_mode, "CrossSubnet");
    assert!(r.ip_pools[0].spec.effective_nat_outgoing());
    assert_eq!(r.workload_endpoints[0].spec.node, "slave1");
    assert_eq!(
        r.workload_endpoints[0].spec.ip_networks,
        vec!["172.16.1.1/32".to_string()]
    );
    assert_eq!(m.nodes(), vec!["slave1".to_string(), "slave2".to_string()]);
}

#[test]
fn seed_verdicts() {
    let m = Model::load(&[seed()]).unwrap();
    // frontend -> database 3306: the profile's bare deny shadows the allow, but the policy
    // namespace-default applies to the database first and allows from namespace default.
    let v = m
        .verdict(&probe(
            "slave1-frontend1",
            "slave2-database",
            Protocol::Tcp,
            Some(3306),
        ))
        .unwrap();
    // The policy (default tier) allows ingress from namespace == 'default' before any profile.
    assert_eq!(v.ingress.decided_by, DecidedBy::Policy, "{v:?}");
    assert_eq!(v.verdict, Verdict::Allow, "{v:?}");
    assert_eq!(
        v.ingress.policy.as_deref(),
        Some("GlobalNetworkPolicy namespace-default")
    );
    assert_eq!(v.ingress.tier.as_deref(), Some("default"));
    assert_eq!(v.ingress.rule_index, Some(0));
    assert_eq!(v.egress.decided_by, DecidedBy::Policy);

    // frontend <-> frontend: allowed by namespace-default.
    let v = m
        .verdict(&probe(
            "slave1-frontend1",
            "slave1-frontend2",
            Protocol::Tcp,
            Some(80),
        ))
        .unwrap();
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(
        v.ingress.policy.as_deref(),
        Some("GlobalNetworkPolicy namespace-default")
    );

    // An outside host is not matched by the policy's source selector: end of tier drop.
    let v = m
        .verdict(&probe(
            "203.0.113.10",
            "slave2-database",
            Protocol::Tcp,
            Some(3306),
        ))
        .unwrap();
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.egress.decided_by, DecidedBy::NotCalicoEndpoint);
    assert_eq!(v.egress.verdict, Verdict::Allow);
    assert_eq!(v.ingress.decided_by, DecidedBy::EndOfTier);
    assert_eq!(v.ingress.tier.as_deref(), Some("default"));

    // database -> outside: egress allow, the outside side is allow.
    let v = m
        .verdict(&probe(
            "slave2-database",
            "203.0.113.10",
            Protocol::Tcp,
            Some(443),
        ))
        .unwrap();
    assert_eq!(v.verdict, Verdict::Allow);

    // Addresses resolve by IP too.
    let v = m
        .verdict(&probe("172.16.1.1", "172.16.1.3", Protocol::Icmp, None))
        .unwrap();
    assert_eq!(v.verdict, Verdict::Allow);
    assert_eq!(v.ingress.endpoint.as_deref(), Some("slave2-database"));

    assert!(matches!(
        m.verdict(&probe("nope", "slave2-database", Protocol::Tcp, Some(1))),
        Err(PolicyIrError::UnknownAddress { .. })
    ));
}

#[test]
fn seed_profile_alone_shadows_the_allow() {
    // Without the policy, the database's profile decides: its bare deny comes first.
    let text = std::fs::read_to_string(seed()).unwrap();
    let without_policy: String = text
        .split("\n---\n")
        .filter(|d| !d.contains("kind: policy"))
        .collect::<Vec<_>>()
        .join("\n---\n");
    let m = Model::load_str("seed-no-policy.yaml", &without_policy).unwrap();
    let v = m
        .verdict(&probe(
            "slave1-frontend1",
            "slave2-database",
            Protocol::Tcp,
            Some(3306),
        ))
        .unwrap();
    assert_eq!(v.verdict, Verdict::Deny);
    assert_eq!(v.ingress.decided_by, DecidedBy::Profile);
    assert_eq!(v.ingress.profile.as_deref(), Some("profile-database"));
    assert_eq!(v.ingress.rule_index, Some(0));
    // The frontends have no profile and no policy now: denied.
    assert_eq!(v.egress.decided_by, DecidedBy::NoProfileMatched);
}

#[test]
fn relabel_moves_memberships_and_verdicts() {
    let mut m = Model::load(&[seed()]).unwrap();
    let id = m
        .entities()
        .iter()
        .position(|e| e.id.name == "slave1-frontend1")
        .unwrap();
    let sel = selector_lang::parse("namespace == 'default'").unwrap();
    assert!(m.label_index().members(sel.uid()).contains(&id));
    let deltas = m.relabel(
        id,
        policy_ir::load::labels(&[("service", "frontend"), ("namespace", "other")]),
    );
    assert!(
        deltas
            .iter()
            .any(|d| d.uid == sel.uid() && d.entity == id && !d.added),
        "{deltas:?}"
    );
    assert!(!m.label_index().members(sel.uid()).contains(&id));
    let v = m
        .verdict(&probe(
            "slave1-frontend1",
            "slave2-database",
            Protocol::Tcp,
            Some(3306),
        ))
        .unwrap();
    // No policy applies to frontend1 any more and it has no profile: egress denied.
    assert_eq!(v.egress.decided_by, DecidedBy::NoProfileMatched);
    assert_eq!(v.ingress.decided_by, DecidedBy::EndOfTier);
    // The IR follows: slave1 now has one workload with tiers and one without.
    let ir = m.node_ir("slave1");
    assert!(ir.workloads[0].ingress.tiers.is_empty());
    assert_eq!(ir.workloads[1].ingress.tiers.len(), 1);
    // And back.
    let deltas = m.relabel(
        id,
        policy_ir::load::labels(&[("service", "frontend"), ("namespace", "default")]),
    );
    assert!(deltas.iter().any(|d| d.uid == sel.uid() && d.added));
}
