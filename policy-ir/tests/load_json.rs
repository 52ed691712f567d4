//! `*.json` files go through the JSON reader (one resource at a time for a list); every
//! diagnostic still names file:line:column, the resource and the field path, exactly where the
//! YAML reader (which used to read JSON) puts it.

use policy_ir::json;
use policy_ir::load::Loader;
use policy_ir::yaml::parse_documents;
use proptest::prelude::*;

/// Every diagnostic of `text` loaded under `file`, as `file:line:column: ...` lines.
fn diagnostics(file: &str, text: &str) -> Vec<String> {
    let mut l = Loader::new();
    l.add_text(file, text);
    match l.finish() {
        Ok(_) => Vec::new(),
        Err(e) => e.diagnostics().iter().map(|d| d.to_string()).collect(),
    }
}

/// The same diagnostics through the JSON reader (`.json`) and the YAML reader (`.yaml`).
fn json_diagnostics(text: &str) -> Vec<String> {
    let j = diagnostics("p.json", text);
    let y: Vec<String> = diagnostics("p.yaml", text)
        .into_iter()
        .map(|d| d.replace("p.yaml:", "p.json:"))
        .collect();
    assert_eq!(j, y, "the JSON reader and the YAML reader disagree");
    j
}

const POLICY: &str = r#"{
  "apiVersion": "v1",
  "items": [
    {
      "apiVersion": "projectcalico.org/v3",
      "kind": "GlobalNetworkPolicy",
      "metadata": {"name": "brökén"},
      "spec": {
        "selector": "app == 'wëb'",
        "ingress": [
          {"action": "Allow", "protcol": "TCP",
           "source": {"selector": "a && ", "nets": ["10.0.0.0/8", "10.0.0.0/33"]}}
        ]
      }
    },
    {"apiVersion": "projectcalico.org/v3", "kind": "WorkloadEndpoint",
     "metadata": {"name": "w1", "namespace": "ns1"},
     "spec": {"node": "n1", "ipNetworks": ["10.1.0.300"], "profiles": ["kns.ns2"]}}
  ],
  "kind": "List"
}
"#;

#[test]
fn json_list_errors_name_file_line_column_resource_and_field() {
    let d = json_diagnostics(POLICY);
    let expected = [
        r#"p.json:11:31: GlobalNetworkPolicy "brökén" spec.ingress[0].protcol: unknown field `protcol` (did you mean `protocol`?)"#,
        r#"p.json:12:35: GlobalNetworkPolicy "brökén" spec.ingress[0].source.selector: "#,
        r#"p.json:12:67: GlobalNetworkPolicy "brökén" spec.ingress[0].source.nets[1]: "10.0.0.0/33" is not a CIDR"#,
        r#"p.json:18:44: WorkloadEndpoint "ns1/w1" spec.ipNetworks[0]: "10.1.0.300" is not a CIDR or IP address"#,
        r#"p.json:18:72: WorkloadEndpoint "ns1/w1" spec.profiles[0]: references Profile "kns.ns2", which is not defined"#,
    ];
    assert_eq!(d.len(), expected.len(), "{d:#?}");
    for (got, want) in d.iter().zip(expected) {
        assert!(
            got.starts_with(want),
            "{got:?}\ndoes not start with\n{want:?}"
        );
    }
}

#[test]
fn one_line_json_and_kind_after_items() {
    // The same list on one line (columns count characters, not bytes), `kind` last.
    let one_line: String = POLICY.lines().map(str::trim_start).collect();
    let d = json_diagnostics(&one_line);
    assert_eq!(d.len(), 5, "{d:#?}");
    let col = |needle: &str| one_line[..one_line.find(needle).unwrap()].chars().count() + 1;
    assert!(
        d[0].starts_with(&format!("p.json:1:{}: ", col(r#""protcol""#))),
        "{}",
        d[0]
    );
    assert!(
        d[2].starts_with(&format!("p.json:1:{}: ", col(r#""10.0.0.0/33""#))),
        "{}",
        d[2]
    );
}

#[test]
fn json_arrays_single_resources_and_a_kind_that_is_not_a_list() {
    let tier = r#"{"apiVersion": "projectcalico.org/v3", "kind": "Tier", "metadata": {"name": "t"}, "spec": {"order": "x"}}"#;
    let err = [r#"p.json:1:101: Tier "t" spec.order: expected a number, found "x""#];
    assert_eq!(json_diagnostics(tier), err);
    assert_eq!(
        json_diagnostics(&format!("[{tier}]")),
        [err[0].replace(":101:", ":102:")]
    );
    // `items` of something that is not a List are not resources.
    let not_list = r#"{"items": [1], "kind": "Tier", "apiVersion": "projectcalico.org/v3", "metadata": {"name": "u"}}"#;
    assert_eq!(
        json_diagnostics(not_list),
        [
            r#"p.json:1:2: Tier "u" items: unknown field `items`; expected one of apiVersion, kind, metadata, spec"#
        ]
    );
    assert_eq!(json_diagnostics("  \n"), Vec::<String>::new());
    assert_eq!(json_diagnostics("null"), Vec::<String>::new());
}

#[test]
fn duplicates_are_per_kind_and_namespace() {
    let ep = |ns: &str, name: &str| {
        format!(
            r#"{{"apiVersion": "projectcalico.org/v3", "kind": "NetworkSet", "metadata": {{"name": "{name}", "namespace": "{ns}"}}}}"#
        )
    };
    let gns = r#"{"apiVersion": "projectcalico.org/v3", "kind": "GlobalNetworkSet", "metadata": {"name": "a"}}"#;
    let text = format!(
        "[{},\n{},\n{},\n{gns},\n{}]",
        ep("x", "a"),
        ep("y", "a"),
        ep("", "xa"),
        ep("x", "a")
    );
    assert_eq!(
        json_diagnostics(&text),
        [
            r#"p.json:5:83: NetworkSet "x/a" metadata.name: duplicate name: already defined at p.json:1:2"#
        ]
    );
}

#[test]
fn json_syntax_errors_are_located() {
    let d = diagnostics(
        "p.json",
        "{\"kind\": \"List\", \"items\": [\n  {\"a\": 1},\n  {\"b\" 2}\n]}",
    );
    assert_eq!(
        d,
        [r#"p.json:3:8: invalid JSON: expected ':' after an object key, found '2'"#]
    );
    // Nothing of a broken list is loaded, not even the resources before the error.
    let broken = POLICY.trim_end().trim_end_matches('}');
    let d = diagnostics("p.json", broken);
    assert_eq!(
        d,
        [
            r#"p.json:21:1: invalid JSON: expected ',' or '}' in an object, found the end of the text"#
        ]
    );
}

#[test]
fn json_files_that_are_not_strict_json_are_read_as_yaml() {
    // Comments, trailing commas, several documents: YAML accepts them, as before.
    let text = "# tiers\n{\"kind\": \"Tier\", \"apiVersion\": \"projectcalico.org/v3\", \"metadata\": {\"name\": \"a\"},}\n---\n[{\"kind\": \"Tier\", \"apiVersion\": \"projectcalico.org/v3\", \"metadata\": {\"name\": \"b\"}, \"spec\": {\"order\": true}}]\n";
    assert_eq!(
        diagnostics("p.json", text),
        [r#"p.json:4:102: Tier "b" spec.order: expected a number, found "true""#]
    );
}

/// A JSON value with awkward strings (escapes, non-ASCII, long), numbers and nesting.
fn json_value() -> impl Strategy<Value = serde_json::Value> {
    let s = prop_oneof![
        "[a-z]{0,12}",
        "[ -~]{0,20}",
        "\\PC{0,8}",
        Just("\u{e9}\u{1f600}\t\n\"\\/".to_string()),
    ];
    let leaf = prop_oneof![
        Just(serde_json::Value::Null),
        any::<bool>().prop_map(serde_json::Value::from),
        any::<i64>().prop_map(serde_json::Value::from),
        any::<u64>().prop_map(serde_json::Value::from),
        (-1e6f64..1e6).prop_map(serde_json::Value::from),
        s.clone().prop_map(serde_json::Value::from),
    ];
    leaf.prop_recursive(4, 40, 6, move |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(serde_json::Value::from),
            prop::collection::vec((s.clone(), inner), 0..6)
                .prop_map(|kv| serde_json::Value::Object(kv.into_iter().collect())),
        ]
    })
}

proptest! {
    /// The JSON reader builds the tree the YAML reader builds from the same text: values,
    /// quoted/plain scalars, and every node's line and column.
    #[test]
    fn json_reader_matches_yaml_reader(v in json_value(), pretty in any::<bool>(), crlf in any::<bool>()) {
        let mut text = if pretty {
            serde_json::to_string_pretty(&v).unwrap()
        } else {
            serde_json::to_string(&v).unwrap()
        };
        if crlf {
            text = text.replace('\n', "\r\n");
        }
        prop_assert!(json::scan(&text).is_ok());
        let tree = json::parse(&text).unwrap();
        let docs = parse_documents(&text).unwrap();
        let json_docs: Vec<_> = tree.into_iter().filter(|n| !n.is_null()).collect();
        prop_assert_eq!(json_docs, docs);
    }
}
