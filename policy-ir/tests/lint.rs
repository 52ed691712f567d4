//! Lint findings on the seed and on small cases.

use std::path::PathBuf;

use policy_ir::lint::{lint, FindingKind};
use policy_ir::Model;

#[test]
fn seed_findings() {
    let m = Model::load(&[
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/seed-tenant.yaml")
    ])
    .unwrap();
    let f = lint(&m);
    let text: Vec<String> = f.iter().map(|x| x.to_string()).collect();
    let all = text.join("\n");
    let shadow: Vec<_> = f
        .iter()
        .filter(|x| x.kind == FindingKind::ShadowedRule)
        .collect();
    assert_eq!(shadow.len(), 1, "{all}");
    assert_eq!(shadow[0].resource, "Profile \"profile-database\"");
    assert_eq!(shadow[0].field, "spec.ingress[1]");
    // Placed at the shadowed rule itself (`- action: allow` of profile-database), not at the
    // start of the document.
    assert_eq!((shadow[0].line, shadow[0].column), (78, 5), "{}", shadow[0]);
    assert!(shadow[0].message.contains("rule 1 (allow tcp from selector namespace == 'default' && service == 'frontend' to ports 3306)"), "{all}");
    assert!(
        shadow[0].message.contains("the earlier deny rule 0 (deny)"),
        "{all}"
    );
    let never: Vec<_> = f
        .iter()
        .filter(|x| x.kind == FindingKind::ProfileNeverReached)
        .collect();
    assert_eq!(never.len(), 2, "{all}");
    assert!(
        never[0]
            .message
            .contains("policy namespace-default (tier default)"),
        "{all}"
    );
    assert!(
        f.iter()
            .all(|x| x.kind != FindingKind::PolicySelectsNothing),
        "{all}"
    );
    assert!(
        f.iter()
            .all(|x| x.kind != FindingKind::SelectorMatchesNothing),
        "{all}"
    );
}

#[test]
fn other_findings() {
    let m = Model::load_str(
        "l.yaml",
        r#"
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: ghost}
spec:
  selector: app == 'nobody'
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: [1000]}}
---
apiVersion: projectcalico.org/v3
kind: GlobalNetworkPolicy
metadata: {name: real}
spec:
  selector: app == 'x'
  ingress:
  - {action: Allow, protocol: TCP, destination: {ports: ["1000:2000"]}}
  - {action: Deny, protocol: TCP, destination: {ports: [1500]}}
  - {action: Deny, protocol: UDP, destination: {ports: [1500]}}
  - {action: Allow, protocol: TCP, source: {selector: "app == 'missing'"}, destination: {ports: [grpc]}}
  - {action: Log}
  - {action: Allow, protocol: UDP}
---
apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata: {name: x, namespace: a, labels: {app: x}}
spec: {node: n1, interfaceName: calix, ipNetworks: [10.0.0.1/32]}
"#,
    )
    .unwrap();
    let f = lint(&m);
    let all = f
        .iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join("\n");
    let kinds: Vec<(FindingKind, &str, &str)> = f
        .iter()
        .map(|x| (x.kind, x.resource.as_str(), x.field.as_str()))
        .collect();
    assert!(
        kinds.contains(&(
            FindingKind::PolicySelectsNothing,
            "GlobalNetworkPolicy \"ghost\"",
            "spec.selector"
        )),
        "{all}"
    );
    assert!(
        kinds.contains(&(
            FindingKind::ShadowedRule,
            "GlobalNetworkPolicy \"real\"",
            "spec.ingress[1]"
        )),
        "{all}"
    );
    // UDP deny is not covered by the TCP allow; the trailing UDP allow is not covered by the
    // UDP 1500 deny (narrower); the Log rule covers nothing.
    assert!(
        !kinds
            .iter()
            .any(|k| k.2 == "spec.ingress[2]" || k.2 == "spec.ingress[5]"),
        "{all}"
    );
    assert!(
        kinds.contains(&(
            FindingKind::SelectorMatchesNothing,
            "GlobalNetworkPolicy \"real\"",
            "spec.ingress[3].source.selector"
        )),
        "{all}"
    );
    assert!(
        kinds.contains(&(
            FindingKind::UnknownNamedPort,
            "GlobalNetworkPolicy \"real\"",
            "spec.ingress[3].destination.ports"
        )),
        "{all}"
    );
    // Each finding points at the field it is about.
    for (field, want) in [
        ("spec.selector", (6, 13)),
        ("spec.ingress[1]", (17, 5)),
        ("spec.ingress[3].source.selector", (19, 55)),
        ("spec.ingress[3].destination.ports", (19, 97)),
    ] {
        let got = f
            .iter()
            .find(|x| x.resource.contains("\"") && x.field == field)
            .unwrap_or_else(|| panic!("no finding for {field}: {all}"));
        assert_eq!((got.line, got.column), want, "{field}: {got}");
    }
}
