//! Loading resource files: YAML (multi-document, lists, `kind: List`) or JSON, every kind Brindle
//! knows in its v3, v1 or Kubernetes form, validated with all errors collected.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::de::{did_you_mean, from_node, Ctx};
use crate::error::{Diagnostic, PolicyIrError};
use crate::resources::{self as r, ObjectMeta, Origin, Resources};
use crate::validate::Checker;
use crate::yaml::{parse_documents, Loc, Node, SyntaxError, Value};
use crate::{k8s, v1};

/// Kinds whose rules lint points at (v3, v1 and Kubernetes spellings).
const RULE_KINDS: &[&str] = &[
    "GlobalNetworkPolicy",
    "NetworkPolicy",
    "Profile",
    "policy",
    "profile",
];

/// Positions of each rule of `spec.ingress` / `spec.egress` and of its selectors and ports.
fn rule_positions(node: &Node) -> Vec<(String, u32, u32)> {
    let mut out = Vec::new();
    if let Some(n) = node.find("spec.selector") {
        out.push(("spec.selector".to_string(), n.loc.line, n.loc.column));
    }
    for dir in ["ingress", "egress"] {
        let Some(list) = node.find(&format!("spec.{dir}")) else {
            continue;
        };
        let Value::Seq(rules) = &list.value else {
            continue;
        };
        out.push((format!("spec.{dir}"), list.loc.line, list.loc.column));
        for (i, rule) in rules.iter().enumerate() {
            let path = format!("spec.{dir}[{i}]");
            out.push((path.clone(), rule.loc.line, rule.loc.column));
            for side in ["source", "destination"] {
                for field in ["selector", "ports", "notPorts", "nets", "notNets"] {
                    if let Some(n) = rule.get(side).and_then(|s| s.get(field)) {
                        out.push((format!("{path}.{side}.{field}"), n.loc.line, n.loc.column));
                    }
                }
            }
        }
    }
    out
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Doc<M, S> {
    #[serde(default)]
    #[allow(dead_code)]
    api_version: AnyStr,
    #[serde(default)]
    #[allow(dead_code)]
    kind: AnyStr,
    #[serde(default)]
    metadata: M,
    #[serde(default)]
    spec: S,
}

/// A field that must be a string but is not kept (read without copying it).
#[derive(Default)]
struct AnyStr;

impl<'de> Deserialize<'de> for AnyStr {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = AnyStr;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: serde::de::Error>(self, _: &str) -> Result<AnyStr, E> {
                Ok(AnyStr)
            }
        }
        d.deserialize_str(V)
    }
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct PodDoc {
    #[serde(default)]
    metadata: ObjectMeta,
    #[serde(default)]
    spec: k8s::PodSpec,
    #[serde(default)]
    status: k8s::PodStatus,
}

const V3_KINDS: &[&str] = &[
    "Tier",
    "GlobalNetworkPolicy",
    "NetworkPolicy",
    "Profile",
    "WorkloadEndpoint",
    "HostEndpoint",
    "GlobalNetworkSet",
    "NetworkSet",
    "IPPool",
    "Node",
    "BGPPeer",
    "BGPConfiguration",
    "BlockAffinity",
    "FelixConfiguration",
    "IPAMConfig",
    "IPAMConfiguration",
    "IPAMBlock",
];
/// Kinds whose field locations are kept in [`Resources::field_locations`].
const ROUTING_KINDS: &[&str] = &[
    "Node",
    "node",
    "IPPool",
    "ipPool",
    "BGPPeer",
    "bgpPeer",
    "BGPConfiguration",
    "BlockAffinity",
    "IPAMConfig",
    "IPAMConfiguration",
    "IPAMBlock",
];
const V1_KINDS: &[&str] = &[
    "policy",
    "profile",
    "workloadEndpoint",
    "hostEndpoint",
    "ipPool",
    "bgpPeer",
    "node",
];
const K8S_KINDS: &[&str] = &["Namespace", "Pod"];

/// A reference to check once everything is loaded.
/// (Kept compact: there is one per endpoint and policy, and only the unresolved ones are
/// reported.)
struct Reference {
    /// Index in `Loader::files`.
    file: u32,
    loc: Loc,
    /// Index in `Loader::ref_labels`: the resource.
    resource: u32,
    /// `None`: `spec.tier`; `Some(i)`: `spec.profiles[i]`.
    profile_index: Option<u32>,
    /// The referenced name: `Loader::ref_names[name.0..name.1]`.
    name: (u32, u32),
}

type FastMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<crate::labels::Fnv>>;

/// Where a resource was first defined (for duplicate reports).
struct SeenAt {
    /// Index in `Loader::files`.
    file: u32,
    line: u32,
    column: u32,
}

/// Collects resources and diagnostics over several files.
#[derive(Default)]
pub struct Loader {
    pub resources: Resources,
    pub diagnostics: Vec<Diagnostic>,
    /// Names of the files added so far (the last one is the current file).
    files: Vec<String>,
    references: Vec<Reference>,
    /// Labels of the resources that have references (`ref_label_text[a..b]` for each
    /// `(a, b)`); `ref_label` is the current resource's.
    ref_labels: Vec<(u32, u32)>,
    ref_label_text: String,
    ref_label: Option<u32>,
    /// The referenced names, one after the other (no lookups while loading: the names are
    /// checked once, in `finish`).
    ref_names: String,
    /// Resources defined so far, for duplicates, by `kind \0 len(namespace) \0 namespace name`
    /// (`kind \0 - \0 name` without a namespace).
    seen: FastMap<String, SeenAt>,
    /// Scratch for building a key (a new resource's key is copied into `seen` only if new).
    key: String,
}

fn io_err(p: &Path, e: std::io::Error) -> PolicyIrError {
    PolicyIrError::Io {
        path: p.display().to_string(),
        message: e.to_string(),
    }
}

fn collect_files(p: &Path, out: &mut Vec<PathBuf>) -> Result<(), PolicyIrError> {
    let md = std::fs::metadata(p).map_err(|e| io_err(p, e))?;
    if md.is_dir() {
        let mut entries: Vec<PathBuf> = std::fs::read_dir(p)
            .map_err(|e| io_err(p, e))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        entries.sort();
        for e in entries {
            let is_dir = e.is_dir();
            let ext_ok = matches!(
                e.extension().and_then(|x| x.to_str()),
                Some("yaml" | "yml" | "json")
            );
            if is_dir || ext_ok {
                collect_files(&e, out)?;
            }
        }
    } else {
        out.push(p.to_path_buf());
    }
    Ok(())
}

/// Loads files and directories (recursively: `*.yaml`, `*.yml`, `*.json`), validates, and
/// returns the resources, or every problem found.
pub fn load_paths(paths: &[PathBuf]) -> Result<Resources, PolicyIrError> {
    let mut files = Vec::new();
    for p in paths {
        collect_files(p, &mut files)?;
    }
    let mut loader = Loader::default();
    for f in &files {
        let text = std::fs::read_to_string(f).map_err(|e| io_err(f, e))?;
        loader.add_text(&f.display().to_string(), &text);
    }
    loader.finish()
}

fn is_json_file(file: &str) -> bool {
    let b = file.as_bytes();
    b.len() >= 5 && b[b.len() - 5..].eq_ignore_ascii_case(b".json")
}

fn raw_str<'a>(node: &'a Node, path: &[&str]) -> Option<&'a str> {
    let mut n = node;
    for p in path {
        n = n.get(p)?;
    }
    n.as_str()
}

impl Loader {
    pub fn new() -> Loader {
        Loader::default()
    }

    /// Adds every resource of one file's text. A `*.json` file is read by the JSON reader, one
    /// resource at a time for a list; one that is not strict JSON is read as YAML, as before.
    pub fn add_text(&mut self, file: &str, text: &str) {
        let json_error = if is_json_file(file) {
            match crate::json::scan(text) {
                Ok(shape) => return self.add_json(file, text, shape),
                Err(e) => Some(e),
            }
        } else {
            None
        };
        let docs = match parse_documents(text) {
            Ok(d) => d,
            Err(e) => {
                let (e, what) = match json_error {
                    Some(j) => (j, "JSON"),
                    None => (e, "YAML/JSON"),
                };
                self.syntax_error(file, e, what);
                return;
            }
        };
        // Each tree is dropped once its resources are converted.
        for doc in docs {
            self.add_document(file, &doc);
        }
    }

    fn add_json(&mut self, file: &str, text: &str, shape: crate::json::Shape) {
        use crate::json::Shape;
        let r = match shape {
            Shape::Empty => Ok(()),
            Shape::Array | Shape::List => {
                crate::json::for_each_item(text, |item| self.add_resource(file, &item))
            }
            Shape::Other => crate::json::parse(text).map(|doc| match doc {
                Some(doc) if !doc.is_null() => self.add_document(file, &doc),
                _ => {}
            }),
        };
        if let Err(e) = r {
            // Not reached: `scan` accepted the text.
            self.syntax_error(file, e, "JSON");
        }
    }

    fn syntax_error(&mut self, file: &str, e: SyntaxError, what: &str) {
        self.diagnostics.push(Diagnostic {
            file: file.to_string(),
            line: e.loc.line,
            column: e.loc.column,
            resource: String::new(),
            field: String::new(),
            message: format!("invalid {what}: {}", e.message),
        });
    }

    fn add_document(&mut self, file: &str, doc: &Node) {
        match &doc.value {
            Value::Seq(items) => {
                for item in items {
                    self.add_resource(file, item);
                }
            }
            Value::Map(_)
                if raw_str(doc, &["kind"]).is_some_and(|k| k == "List" || k.ends_with("List")) =>
            {
                match doc.get("items").map(|n| &n.value) {
                    Some(Value::Seq(items)) => {
                        for item in items {
                            self.add_resource(file, item);
                        }
                    }
                    None => {}
                    Some(_) => {
                        self.diag(file, doc.loc, "", "items", "expected a list of resources")
                    }
                }
            }
            _ => self.add_resource(file, doc),
        }
    }

    fn diag(
        &mut self,
        file: &str,
        loc: Loc,
        resource: &str,
        field: &str,
        message: impl Into<String>,
    ) {
        self.diagnostics.push(Diagnostic {
            file: file.to_string(),
            line: loc.line,
            column: loc.column,
            resource: resource.to_string(),
            field: field.to_string(),
            message: message.into(),
        });
    }

    fn add_resource(&mut self, file: &str, node: &Node) {
        if !matches!(node.value, Value::Map(_)) {
            self.diag(
                file,
                node.loc,
                "",
                "",
                format!(
                    "expected a resource (a mapping), found {}",
                    node.kind_name()
                ),
            );
            return;
        }
        self.ref_label = None;
        let api = raw_str(node, &["apiVersion"]).unwrap_or("");
        let Some(kind) = raw_str(node, &["kind"]) else {
            self.diag(file, node.loc, "", "kind", "missing field `kind`");
            return;
        };
        let name = raw_str(node, &["metadata", "name"])
            .or_else(|| raw_str(node, &["metadata", "cidr"]))
            .or_else(|| raw_str(node, &["metadata", "peerIP"]))
            .unwrap_or("");
        let label = match raw_str(node, &["metadata", "namespace"]) {
            Some(ns) => format!("{kind} \"{ns}/{name}\""),
            None => format!("{kind} \"{name}\""),
        };
        let origin = Origin {
            file: file.to_string(),
            line: node.loc.line,
            column: node.loc.column,
            fields: if RULE_KINDS.contains(&kind) {
                rule_positions(node)
            } else {
                Vec::new()
            },
        };
        let family = match api {
            "projectcalico.org/v3" => "v3",
            "v1" if V1_KINDS.contains(&kind) => "v1",
            "v1" if K8S_KINDS.contains(&kind) => "k8s",
            "networking.k8s.io/v1" if kind == "NetworkPolicy" => "k8s",
            "" if V3_KINDS.contains(&kind) => "v3",
            "" if V1_KINDS.contains(&kind) => "v1",
            _ => "",
        };
        let known = match family {
            "v3" => V3_KINDS.contains(&kind),
            "" => false,
            _ => true,
        };
        if !known {
            let all: Vec<&str> = V3_KINDS
                .iter()
                .chain(V1_KINDS)
                .chain(K8S_KINDS)
                .copied()
                .collect();
            let hint = did_you_mean(kind, &all)
                .map(|c| format!(" (did you mean `{c}`?)"))
                .unwrap_or_default();
            let loc = node.get("kind").map(|k| k.loc).unwrap_or(node.loc);
            self.diag(
                file,
                loc,
                &label,
                "kind",
                format!("unsupported kind {kind:?} for apiVersion {api:?}{hint}"),
            );
            return;
        }
        let strict = !(family == "k8s" && kind != "NetworkPolicy");
        let key = ROUTING_KINDS.contains(&kind).then(|| origin.to_string());
        let ctx = if key.is_some() {
            Ctx::recording(strict)
        } else {
            Ctx::new(strict)
        };
        let res = self.convert(file, node, family, kind, &label, &ctx, origin);
        if let Some(key) = key {
            let locs = ctx.locations.borrow();
            let m = locs
                .iter()
                .map(|(k, l)| (k.clone(), (l.line, l.column)))
                .collect();
            self.resources.field_locations.insert(key, m);
        }
        for i in ctx.issues.borrow().iter() {
            self.diag(file, i.loc, &label, &i.path, i.message.clone());
        }
        if let Err(e) = res {
            let loc = e.loc.unwrap_or(node.loc);
            let path = e.path.unwrap_or_default();
            self.diag(file, loc, &label, &path, e.message);
        }
    }

    fn file_id(&mut self, file: &str) -> u32 {
        if self.files.last().map(String::as_str) != Some(file) {
            self.files.push(file.to_string());
        }
        (self.files.len() - 1) as u32
    }

    fn check_dup(
        &mut self,
        kind: &str,
        meta: &ObjectMeta,
        origin: &Origin,
        label: &str,
        node: &Node,
    ) {
        let mut key = std::mem::take(&mut self.key);
        key.clear();
        key.push_str(kind);
        key.push('\0');
        match meta.namespace.as_deref() {
            Some(ns) => {
                use std::fmt::Write;
                let _ = write!(key, "{}\0{ns}", ns.len());
            }
            None => key.push_str("-\0"),
        }
        key.push_str(&meta.name);
        if let Some(first) = self.seen.get(key.as_str()) {
            let first = Origin {
                file: self.files[first.file as usize].clone(),
                line: first.line,
                column: first.column,
                fields: Vec::new(),
            };
            let l = node.locate("metadata.name").unwrap_or(Loc {
                line: origin.line,
                column: origin.column,
            });
            let msg = format!("duplicate name: already defined at {first}");
            self.diag(&origin.file, l, label, "metadata.name", msg);
        } else {
            let file = self.file_id(&origin.file);
            self.seen.insert(
                key.clone(),
                SeenAt {
                    file,
                    line: origin.line,
                    column: origin.column,
                },
            );
        }
        self.key = key;
        if meta.name.is_empty() {
            self.diag(
                &origin.file,
                Loc {
                    line: origin.line,
                    column: origin.column,
                },
                label,
                "metadata.name",
                "missing name",
            );
        }
    }

    /// Records that the resource refers to Tier `name` (`profile_index` `None`, at `spec.tier`)
    /// or to Profile `name` (at `spec.profiles[i]`), checked by `finish`.
    fn reference(
        &mut self,
        origin: &Origin,
        node: &Node,
        label: &str,
        profile_index: Option<usize>,
        name: &str,
    ) {
        let loc = match profile_index {
            None => node.locate("spec.tier"),
            Some(i) => node
                .find("spec.profiles")
                .and_then(|p| p.item(i))
                .map(|n| n.loc),
        };
        let loc = loc.unwrap_or(Loc {
            line: origin.line,
            column: origin.column,
        });
        let resource = match self.ref_label {
            Some(id) => id,
            None => {
                let start = self.ref_label_text.len() as u32;
                self.ref_label_text.push_str(label);
                let end = self.ref_label_text.len() as u32;
                self.ref_labels.push((start, end));
                let id = (self.ref_labels.len() - 1) as u32;
                self.ref_label = Some(id);
                id
            }
        };
        let start = self.ref_names.len() as u32;
        self.ref_names.push_str(name);
        let name = (start, self.ref_names.len() as u32);
        let file = self.file_id(&origin.file);
        self.references.push(Reference {
            file,
            loc,
            resource,
            profile_index: profile_index.map(|i| i as u32),
            name,
        });
    }

    #[allow(clippy::too_many_arguments)]
    fn convert(
        &mut self,
        file: &str,
        node: &Node,
        family: &str,
        kind: &str,
        label: &str,
        ctx: &Ctx,
        origin: Origin,
    ) -> Result<(), crate::de::DeError> {
        fn doc<M: DeserializeOwned + Default, S: DeserializeOwned + Default>(
            node: &Node,
            ctx: &Ctx,
        ) -> Result<(M, S), crate::de::DeError> {
            let d: Doc<M, S> = from_node(node, "", ctx)?;
            Ok((d.metadata, d.spec))
        }
        let mut diags = Vec::new();
        let root = node.loc;
        macro_rules! checker {
            () => {
                Checker {
                    file,
                    resource: label,
                    root,
                    node,
                    out: &mut diags,
                }
            };
        }
        match (family, kind) {
            ("v3", "Tier") => {
                let (metadata, spec): (ObjectMeta, r::TierSpec) = doc(node, ctx)?;
                if let Some(a) = &spec.default_action {
                    if a != "Deny" && a != "Pass" {
                        checker!().error(
                            "spec.defaultAction",
                            format!("unknown defaultAction {a:?}; expected Deny or Pass"),
                        );
                    }
                }
                self.check_dup(kind, &metadata, &origin, label, node);
                self.resources.tiers.push(r::Tier {
                    metadata,
                    spec,
                    origin,
                });
            }
            ("v3", "GlobalNetworkPolicy") | ("v1", "policy") => {
                let p = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::GlobalNetworkPolicy {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut p = v1::policy(m, s);
                    p.origin = origin.clone();
                    p
                };
                {
                    let mut c = checker!();
                    if !p.spec.selector.is_empty() {
                        c.selector("spec.selector", &p.spec.selector);
                    }
                    if !p.spec.namespace_selector.is_empty() {
                        c.selector("spec.namespaceSelector", &p.spec.namespace_selector);
                    }
                    if !p.spec.service_account_selector.is_empty() {
                        c.selector(
                            "spec.serviceAccountSelector",
                            &p.spec.service_account_selector,
                        );
                    }
                    c.types("spec.types", &p.spec.types);
                    c.rules("spec.ingress", &p.spec.ingress);
                    c.rules("spec.egress", &p.spec.egress);
                }
                self.check_dup("GlobalNetworkPolicy", &p.metadata, &origin, label, node);
                let tier = if p.spec.tier.is_empty() {
                    "default".to_string()
                } else {
                    p.spec.tier.clone()
                };
                self.reference(&origin, node, label, None, &tier);
                self.resources.global_network_policies.push(p);
            }
            ("v3", "NetworkPolicy") => {
                let (mut metadata, spec): (ObjectMeta, r::NetworkPolicySpec) = doc(node, ctx)?;
                if metadata.namespace.is_none() {
                    metadata.namespace = Some("default".into());
                }
                let p = r::NetworkPolicy {
                    metadata,
                    spec,
                    from_kubernetes: false,
                    origin: origin.clone(),
                };
                {
                    let mut c = checker!();
                    if !p.spec.selector.is_empty() {
                        c.selector("spec.selector", &p.spec.selector);
                    }
                    c.types("spec.types", &p.spec.types);
                    c.rules("spec.ingress", &p.spec.ingress);
                    c.rules("spec.egress", &p.spec.egress);
                }
                self.check_dup("NetworkPolicy", &p.metadata, &origin, label, node);
                let tier = if p.spec.tier.is_empty() {
                    "default".to_string()
                } else {
                    p.spec.tier.clone()
                };
                self.reference(&origin, node, label, None, &tier);
                self.resources.network_policies.push(p);
            }
            ("k8s", "NetworkPolicy") => {
                let (metadata, spec): (ObjectMeta, k8s::NetworkPolicySpec) = doc(node, ctx)?;
                {
                    let mut c = checker!();
                    check_k8s_policy(&mut c, &spec);
                }
                let mut p = k8s::network_policy(metadata, spec);
                p.origin = origin.clone();
                self.check_dup("NetworkPolicy", &p.metadata, &origin, label, node);
                self.resources.network_policies.push(p);
            }
            ("v3", "Profile") | ("v1", "profile") => {
                let p = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::Profile {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut p = v1::profile(m, s);
                    p.origin = origin.clone();
                    p
                };
                {
                    let mut c = checker!();
                    c.rules("spec.ingress", &p.spec.ingress);
                    c.rules("spec.egress", &p.spec.egress);
                }
                self.check_dup("Profile", &p.metadata, &origin, label, node);
                self.resources.profiles.push(p);
            }
            ("v3", "WorkloadEndpoint") | ("v1", "workloadEndpoint") | ("k8s", "Pod") => {
                let w = match family {
                    "v3" => {
                        let (metadata, spec) = doc(node, ctx)?;
                        r::WorkloadEndpoint {
                            metadata,
                            spec,
                            origin: origin.clone(),
                        }
                    }
                    "v1" => {
                        let (m, s) = doc(node, ctx)?;
                        let mut w = v1::workload_endpoint(m, s);
                        w.origin = origin.clone();
                        w
                    }
                    _ => {
                        let d: PodDoc = from_node(node, "", ctx)?;
                        if d.spec.host_network {
                            // Host-networked pods are not Calico endpoints.
                            return Ok(());
                        }
                        let mut w = k8s::pod(d.metadata, d.spec, d.status);
                        w.origin = origin.clone();
                        w
                    }
                };
                {
                    let mut c = checker!();
                    let f = if family == "k8s" {
                        "status.podIPs"
                    } else {
                        "spec.ipNetworks"
                    };
                    c.nets(f, &w.spec.ip_networks);
                    c.endpoint_ports("spec.ports", &w.spec.ports);
                    if w.spec.node.is_empty() && family != "k8s" {
                        let f = if family == "v1" {
                            "metadata.node"
                        } else {
                            "spec.node"
                        };
                        c.error(f, "missing node");
                    }
                }
                self.check_dup("WorkloadEndpoint", &w.metadata, &origin, label, node);
                if family != "k8s" {
                    for (i, p) in w.spec.profiles.iter().enumerate() {
                        self.reference(&origin, node, label, Some(i), p);
                    }
                }
                self.resources.workload_endpoints.push(w);
            }
            ("v3", "HostEndpoint") | ("v1", "hostEndpoint") => {
                let h = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::HostEndpoint {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut h = v1::host_endpoint(m, s);
                    h.origin = origin.clone();
                    h
                };
                {
                    let mut c = checker!();
                    c.nets("spec.expectedIPs", &h.spec.expected_ips);
                    c.endpoint_ports("spec.ports", &h.spec.ports);
                    if h.spec.interface_name.is_empty() && h.spec.expected_ips.is_empty() {
                        c.error("spec", "a host endpoint needs interfaceName or expectedIPs");
                    }
                }
                self.check_dup("HostEndpoint", &h.metadata, &origin, label, node);
                for (i, p) in h.spec.profiles.iter().enumerate() {
                    self.reference(&origin, node, label, Some(i), p);
                }
                self.resources.host_endpoints.push(h);
            }
            ("v3", "GlobalNetworkSet") | ("v3", "NetworkSet") => {
                let (mut metadata, spec): (ObjectMeta, r::NetworkSetSpec) = doc(node, ctx)?;
                {
                    let mut c = checker!();
                    c.nets("spec.nets", &spec.nets);
                }
                if kind == "NetworkSet" && metadata.namespace.is_none() {
                    metadata.namespace = Some("default".into());
                }
                self.check_dup(kind, &metadata, &origin, label, node);
                if kind == "NetworkSet" {
                    self.resources.network_sets.push(r::NetworkSet {
                        metadata,
                        spec,
                        origin,
                    });
                } else {
                    self.resources
                        .global_network_sets
                        .push(r::GlobalNetworkSet {
                            metadata,
                            spec,
                            origin,
                        });
                }
            }
            ("v3", "IPPool") | ("v1", "ipPool") => {
                let p = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::IpPool {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut p = v1::ip_pool(m, s);
                    p.origin = origin.clone();
                    p
                };
                {
                    let mut c = checker!();
                    let f = if family == "v1" {
                        "metadata.cidr"
                    } else {
                        "spec.cidr"
                    };
                    match p.spec.cidr.parse::<ipnet::IpNet>() {
                        Ok(n) if n.trunc() != n => c.error(
                            f,
                            format!(
                                "{:?} is not a network address (did you mean {}?)",
                                p.spec.cidr,
                                n.trunc()
                            ),
                        ),
                        Ok(_) => {}
                        Err(_) => c.error(f, format!("{:?} is not a CIDR", p.spec.cidr)),
                    }
                    if !matches!(
                        p.spec.ipip_mode.as_str(),
                        "" | "Never" | "Always" | "CrossSubnet"
                    ) {
                        c.error(
                            "spec.ipipMode",
                            format!(
                                "unknown ipipMode {:?}; expected Never, Always or CrossSubnet",
                                p.spec.ipip_mode
                            ),
                        );
                    }
                    if !matches!(
                        p.spec.vxlan_mode.as_str(),
                        "" | "Never" | "Always" | "CrossSubnet"
                    ) {
                        c.error(
                            "spec.vxlanMode",
                            format!(
                                "unknown vxlanMode {:?}; expected Never, Always or CrossSubnet",
                                p.spec.vxlan_mode
                            ),
                        );
                    }
                    if let Some(b) = p.spec.block_size {
                        if !(20..=32).contains(&b) && p.spec.cidr.contains('.') {
                            c.error(
                                "spec.blockSize",
                                format!("blockSize {b} is out of range 20..=32"),
                            );
                        }
                    }
                    if !p.spec.node_selector.is_empty() {
                        c.selector("spec.nodeSelector", &p.spec.node_selector);
                    }
                }
                self.check_dup("IPPool", &p.metadata, &origin, label, node);
                self.resources.ip_pools.push(p);
            }
            ("v3", "Node") | ("v1", "node") => {
                let n = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::Node {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut n = v1::node(m, s);
                    n.origin = origin.clone();
                    n
                };
                if let Some(b) = &n.spec.bgp {
                    let mut c = checker!();
                    if !b.ipv4_address.is_empty() {
                        c.net("spec.bgp.ipv4Address", &b.ipv4_address);
                    }
                    if let Some(a) = &b.as_number {
                        if a.as_number().is_none() {
                            c.error("spec.bgp.asNumber", format!("{a} is not an AS number"));
                        }
                    }
                }
                self.check_dup("Node", &n.metadata, &origin, label, node);
                self.resources.nodes.push(n);
            }
            ("v3", "BGPPeer") | ("v1", "bgpPeer") => {
                let p = if family == "v3" {
                    let (metadata, spec) = doc(node, ctx)?;
                    r::BgpPeer {
                        metadata,
                        spec,
                        origin: origin.clone(),
                    }
                } else {
                    let (m, s) = doc(node, ctx)?;
                    let mut p = v1::bgp_peer(m, s);
                    p.origin = origin.clone();
                    p
                };
                {
                    let mut c = checker!();
                    for (f, s) in [
                        ("spec.nodeSelector", &p.spec.node_selector),
                        ("spec.peerSelector", &p.spec.peer_selector),
                    ] {
                        if !s.is_empty() {
                            c.selector(f, s);
                        }
                    }
                    if let Some(a) = &p.spec.as_number {
                        if a.as_number().is_none() {
                            c.error("spec.asNumber", format!("{a} is not an AS number"));
                        }
                    }
                }
                self.check_dup("BGPPeer", &p.metadata, &origin, label, node);
                self.resources.bgp_peers.push(p);
            }
            ("v3", "BGPConfiguration") => {
                let (metadata, spec) = doc(node, ctx)?;
                self.check_dup(kind, &metadata, &origin, label, node);
                self.resources.bgp_configurations.push(r::BgpConfiguration {
                    metadata,
                    spec,
                    origin,
                });
            }
            ("v3", "BlockAffinity") => {
                let (metadata, spec): (ObjectMeta, r::BlockAffinitySpec) = doc(node, ctx)?;
                {
                    let mut c = checker!();
                    c.net("spec.cidr", &spec.cidr);
                }
                self.check_dup(kind, &metadata, &origin, label, node);
                self.resources.block_affinities.push(r::BlockAffinity {
                    metadata,
                    spec,
                    origin,
                });
            }
            ("v3", "FelixConfiguration") => {
                let (metadata, spec): (ObjectMeta, r::FelixConfigurationSpec) = doc(node, ctx)?;
                checker!().felix_configuration(&spec);
                self.check_dup(kind, &metadata, &origin, label, node);
                self.resources
                    .felix_configurations
                    .push(r::FelixConfiguration {
                        metadata,
                        spec,
                        origin,
                    });
            }
            ("k8s", "Namespace") => {
                let d: Doc<ObjectMeta, serde::de::IgnoredAny> = from_node(node, "", ctx)?;
                self.check_dup(kind, &d.metadata, &origin, label, node);
                self.resources.namespaces.push(r::Namespace {
                    metadata: d.metadata,
                    origin,
                });
            }
            ("v3", "IPAMConfig") | ("v3", "IPAMConfiguration") => {
                let (metadata, spec) = doc(node, ctx)?;
                self.check_dup("IPAMConfig", &metadata, &origin, label, node);
                self.resources.ipam_configs.push(r::IpamConfig {
                    metadata,
                    spec,
                    origin,
                });
            }
            ("v3", "IPAMBlock") => {
                let (metadata, spec): (ObjectMeta, r::IpamBlockSpec) = doc(node, ctx)?;
                {
                    let mut c = checker!();
                    c.net("spec.cidr", &spec.cidr);
                }
                self.check_dup(kind, &metadata, &origin, label, node);
                self.resources.ipam_blocks.push(r::IpamBlock {
                    metadata,
                    spec,
                    origin,
                });
            }
            _ => unreachable!("kind checked above"),
        }
        self.diagnostics.extend(diags);
        Ok(())
    }

    /// Adds implied resources (namespaces of pods, `kns.` profiles), checks references, and
    /// returns the resources or every diagnostic, sorted by place.
    pub fn finish(mut self) -> Result<Resources, PolicyIrError> {
        add_implied(&mut self.resources);
        let profiles: BTreeSet<&str> = self
            .resources
            .profiles
            .iter()
            .map(|p| p.metadata.name.as_str())
            .collect();
        let mut tiers: BTreeSet<&str> = self
            .resources
            .tiers
            .iter()
            .map(|t| t.metadata.name.as_str())
            .collect();
        tiers.extend(["default", "kube-admin", "kube-baseline"]);
        // Hash sets for the checks (the sorted sets give the hints).
        type FastSet<'a> =
            std::collections::HashSet<&'a str, std::hash::BuildHasherDefault<crate::labels::Fnv>>;
        let tier_set: FastSet = tiers.iter().copied().collect();
        let profile_set: FastSet = profiles.iter().copied().collect();
        for r in &self.references {
            let name = &self.ref_names[r.name.0 as usize..r.name.1 as usize];
            let (kind, set, ok) = match r.profile_index {
                None => ("Tier", &tiers, tier_set.contains(name)),
                Some(_) => ("Profile", &profiles, profile_set.contains(name)),
            };
            if !ok {
                let all: Vec<&str> = set.iter().copied().collect();
                let hint = did_you_mean(name, &all)
                    .map(|c| format!(" (did you mean {c:?}?)"))
                    .unwrap_or_default();
                self.diagnostics.push(Diagnostic {
                    file: self.files[r.file as usize].clone(),
                    line: r.loc.line,
                    column: r.loc.column,
                    resource: {
                        let (a, b) = self.ref_labels[r.resource as usize];
                        self.ref_label_text[a as usize..b as usize].to_string()
                    },
                    field: match r.profile_index {
                        None => "spec.tier".to_string(),
                        Some(i) => format!("spec.profiles[{i}]"),
                    },
                    message: format!("references {kind} {name:?}, which is not defined{hint}"),
                });
            }
        }
        if self.diagnostics.is_empty() {
            Ok(self.resources)
        } else {
            let mut d = self.diagnostics;
            d.sort();
            d.dedup();
            Err(PolicyIrError::Invalid(d))
        }
    }
}

/// Adds Namespaces that pods or namespaced resources imply, and the `kns.<ns>` profile of every
/// Kubernetes namespace (pods list it).
pub fn add_implied(res: &mut Resources) {
    let mut known: BTreeSet<String> = res
        .namespaces
        .iter()
        .map(|n| n.metadata.name.clone())
        .collect();
    // Namespaces in order of first use; each name is compared, not copied, per endpoint.
    let mut needed: Vec<String> = Vec::new();
    for w in &res.workload_endpoints {
        if w.spec.orchestrator != "k8s" {
            continue;
        }
        if let Some(ns) = &w.metadata.namespace {
            if !known.contains(ns.as_str()) {
                known.insert(ns.clone());
                needed.push(ns.clone());
            }
        }
    }
    for ns in needed {
        res.namespaces.push(r::Namespace {
            metadata: ObjectMeta {
                name: ns,
                ..Default::default()
            },
            origin: Origin::default(),
        });
    }
    let have: BTreeSet<String> = res
        .profiles
        .iter()
        .map(|p| p.metadata.name.clone())
        .collect();
    let mut extra = Vec::new();
    for n in &res.namespaces {
        let name = format!("kns.{}", n.metadata.name);
        if !have.contains(&name) {
            let mut p = k8s::namespace_profile(&n.metadata.name, &n.metadata.labels);
            p.origin = n.origin.clone();
            extra.push(p);
        }
    }
    res.profiles.extend(extra);
}

fn check_k8s_policy(c: &mut Checker, spec: &k8s::NetworkPolicySpec) {
    fn sel(c: &mut Checker, path: &str, s: &k8s::LabelSelector) {
        for (i, e) in s.match_expressions.iter().enumerate() {
            let p = format!("{path}.matchExpressions[{i}]");
            match e.operator.as_str() {
                "In" | "NotIn" if e.values.is_empty() => {
                    c.error(&format!("{p}.values"), "In and NotIn need values")
                }
                "In" | "NotIn" | "Exists" | "DoesNotExist" => {}
                other => c.error(
                    &format!("{p}.operator"),
                    format!(
                        "unknown operator {other:?}; expected In, NotIn, Exists or DoesNotExist"
                    ),
                ),
            }
        }
        let text = k8s::label_selector(s);
        if !text.is_empty() {
            c.selector(path, &text);
        }
    }
    fn peers(c: &mut Checker, path: &str, peers: &[k8s::Peer]) {
        for (i, p) in peers.iter().enumerate() {
            let pp = format!("{path}[{i}]");
            if let Some(s) = &p.pod_selector {
                sel(c, &format!("{pp}.podSelector"), s);
            }
            if let Some(s) = &p.namespace_selector {
                sel(c, &format!("{pp}.namespaceSelector"), s);
            }
            if let Some(b) = &p.ip_block {
                if p.pod_selector.is_some() || p.namespace_selector.is_some() {
                    c.error(
                        &pp,
                        "ipBlock cannot be combined with podSelector or namespaceSelector",
                    );
                }
                match b.cidr.parse::<ipnet::IpNet>() {
                    Ok(_) => {}
                    Err(_) => c.error(
                        &format!("{pp}.ipBlock.cidr"),
                        format!("{:?} is not a CIDR", b.cidr),
                    ),
                }
                for (j, e) in b.except.iter().enumerate() {
                    if e.parse::<ipnet::IpNet>().is_err() {
                        c.error(
                            &format!("{pp}.ipBlock.except[{j}]"),
                            format!("{e:?} is not a CIDR"),
                        );
                    }
                }
            }
        }
    }
    fn ports(c: &mut Checker, path: &str, ports: &[k8s::NpPort]) {
        for (i, p) in ports.iter().enumerate() {
            let pp = format!("{path}[{i}]");
            if let Some(pr) = &p.protocol {
                if !matches!(pr.as_str(), "TCP" | "UDP" | "SCTP") {
                    c.error(
                        &format!("{pp}.protocol"),
                        format!("unknown protocol {pr:?}; expected TCP, UDP or SCTP"),
                    );
                }
            }
            if let Some(port) = &p.port {
                if let Err(m) = crate::validate::parse_port(port) {
                    c.error(&format!("{pp}.port"), m);
                }
            }
            if let (Some(e), Some(r::IntOrString::Int(s))) = (p.end_port, &p.port) {
                if e < *s || e > 65535 {
                    c.error(
                        &format!("{pp}.endPort"),
                        format!("endPort {e} must be between port {s} and 65535"),
                    );
                }
            }
        }
    }
    sel(c, "spec.podSelector", &spec.pod_selector);
    for t in &spec.policy_types {
        if t != "Ingress" && t != "Egress" {
            c.error(
                "spec.policyTypes",
                format!("unknown policy type {t:?}; expected Ingress or Egress"),
            );
        }
    }
    for (i, r) in spec.ingress.iter().enumerate() {
        peers(c, &format!("spec.ingress[{i}].from"), &r.from);
        ports(c, &format!("spec.ingress[{i}].ports"), &r.ports);
    }
    for (i, r) in spec.egress.iter().enumerate() {
        peers(c, &format!("spec.egress[{i}].to"), &r.to);
        ports(c, &format!("spec.egress[{i}].ports"), &r.ports);
    }
}

/// Sorted label map helper for tests and callers.
pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}
