//! Route reconcile against the real kernel, in a fresh network namespace.
mod common;
use common::Netns;
use routing_agent::netlink::Netlink;
use routing_agent::routes::{Owner, Route, RouteKind};

fn r(dst: &str, kind: RouteKind, mtu: Option<u32>) -> Route {
    Route {
        dst: dst.parse().unwrap(),
        kind,
        proto: 80,
        mtu,
        owner: Owner::Agent,
    }
}

#[test]
fn reconcile_adds_fixes_removes_only_our_routes() {
    let ns = Netns::new("brt-rt");
    ns.ip(&[
        "link", "add", "eth0", "type", "veth", "peer", "name", "peer0",
    ]);
    ns.ip(&[
        "link",
        "add",
        "cali00000000001",
        "type",
        "veth",
        "peer",
        "name",
        "wl0",
    ]);
    for l in ["eth0", "peer0", "cali00000000001", "wl0"] {
        ns.ip(&["link", "set", l, "up"]);
    }
    ns.ip(&["addr", "add", "198.18.0.1/24", "dev", "eth0"]);
    // Foreign routes (must survive) and our stale / wrong ones.
    ns.ip(&[
        "route",
        "add",
        "10.99.0.0/24",
        "via",
        "198.18.0.9",
        "proto",
        "static",
    ]);
    ns.ip(&["route", "add", "blackhole", "10.98.0.0/24", "proto", "150"]);
    ns.ip(&["route", "add", "blackhole", "10.244.9.0/26", "proto", "80"]);
    ns.ip(&[
        "route",
        "add",
        "10.244.2.0/26",
        "via",
        "198.18.0.7",
        "dev",
        "eth0",
        "proto",
        "80",
        "onlink",
    ]);
    // A foreign route on a prefix we want: taken over with replace (as Felix does).
    ns.ip(&[
        "route",
        "add",
        "10.244.3.0/26",
        "via",
        "198.18.0.5",
        "proto",
        "static",
    ]);

    let desired = vec![
        r("10.244.1.0/26", RouteKind::Blackhole, None),
        r(
            "10.244.1.1/32",
            RouteKind::Device {
                dev: "cali00000000001".into(),
            },
            None,
        ),
        r(
            "10.244.2.0/26",
            RouteKind::Via {
                gw: "198.18.0.2".parse().unwrap(),
                dev: "eth0".into(),
                onlink: true,
            },
            None,
        ),
        r(
            "10.244.3.0/26",
            RouteKind::Via {
                gw: "198.18.0.3".parse().unwrap(),
                dev: "eth0".into(),
                onlink: true,
            },
            Some(1480),
        ),
        r(
            "10.244.4.0/26",
            RouteKind::Device {
                dev: "cali-missing".into(),
            },
            None,
        ),
    ];
    let d2 = desired.clone();
    let (first, second) = ns.run(move || {
        let nl = Netlink::new().unwrap();
        let a = nl.reconcile(&d2).unwrap();
        let b = nl.reconcile(&d2).unwrap();
        (a, b)
    });
    assert_eq!(first.added, 2, "{first:?}");
    assert_eq!(first.replaced, 2, "{first:?}");
    assert_eq!(first.removed, 1, "{first:?}");
    assert_eq!(first.skipped, 1, "{first:?}");
    assert_eq!(
        (second.added, second.replaced, second.removed),
        (0, 0, 0),
        "idempotent: {second:?}"
    );

    let ours = ns.ip(&["route", "show", "proto", "80"]);
    let ours: Vec<&str> = ours.lines().map(str::trim).collect();
    assert_eq!(
        ours,
        vec![
            "blackhole 10.244.1.0/26",
            "10.244.1.1 dev cali00000000001 scope link",
            "10.244.2.0/26 via 198.18.0.2 dev eth0 onlink",
            "10.244.3.0/26 via 198.18.0.3 dev eth0 onlink mtu 1480",
        ]
    );
    let all = ns.ip(&["route", "show"]);
    assert!(
        all.contains("10.99.0.0/24 via 198.18.0.9 dev eth0 proto static"),
        "{all}"
    );
    assert!(all.contains("blackhole 10.98.0.0/24 proto 150"), "{all}");
    assert!(all.contains("198.18.0.0/24 dev eth0 proto kernel"), "{all}");
    assert!(!all.contains("10.244.9.0"), "{all}");
    assert!(!all.contains("198.18.0.5"), "{all}");

    // Everything removed when nothing is desired; foreign routes stay.
    let st = ns.run(|| Netlink::new().unwrap().reconcile(&[]).unwrap());
    assert_eq!(st.removed, 4);
    assert_eq!(ns.ip(&["route", "show", "proto", "80"]).trim(), "");
    assert!(ns.ip(&["route", "show"]).contains("10.99.0.0/24"));
}
