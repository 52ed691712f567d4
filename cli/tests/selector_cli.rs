//! `brindle selector eval` / `check` through the built binary.

use std::io::Write;
use std::process::{Command, Stdio};

fn brindle() -> Command {
    Command::new(env!("CARGO_BIN_EXE_brindle"))
}

fn eval_lines(input: &str) -> Vec<serde_json::Value> {
    let mut child = brindle()
        .args(["selector", "eval"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn brindle");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "exit {:?}", out.status);
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).expect("each output line is JSON"))
        .collect()
}

#[test]
fn eval_contract() {
    let input = concat!(
        r#"{"selector": "app=='web' && env in {'prod','dev'}", "labels": {"app": "web", "env": "dev"}}"#,
        "\n",
        r#"{"selector": "env != 'prod'", "labels": {}}"#,
        "\n",
        r#"{"selector": "! (has( b)||! has(a ))"}"#,
        "\n",
        "this is not json\n",
        r#"{"selector": "a == b", "labels": {"a": "b"}}"#,
        "\n",
        r#"{"selector": "a == 'x'", "labels": {"a": 1}}"#,
        "\n",
        r#"{"selector": ""}"#,
        "\n",
        r#"{"selector": "a == 'b'\n"}"#,
        "\n",
        r#"{"selector": "has(a) && app == 'db'", "labels": {"a": "", "app": "web"}}"#,
    );
    let out = eval_lines(input);
    assert_eq!(out.len(), 9, "{out:?}");
    assert_eq!(out[0]["ok"], true);
    assert_eq!(
        out[0]["canonical"],
        r#"(app == "web" && env in {"dev", "prod"})"#
    );
    assert_eq!(out[0]["match"], true);
    assert_eq!(out[0]["uid"].as_str().unwrap().len(), 40);
    assert_eq!(out[1]["match"], true);
    assert_eq!(out[2]["canonical"], "!(has(b) || !has(a))");
    assert_eq!(out[2]["uid"], "s:Iss0uCleLYv1GSv_pNm7hAO58kE9jAx1NKyG3Q");
    assert!(out[2]["match"].is_null());
    assert_eq!(out[3]["ok"], false);
    assert_eq!(out[3]["offset"], 0);
    assert!(out[3]["error"].is_string());
    assert_eq!(out[4]["ok"], false);
    assert_eq!(out[4]["error"], "expected string");
    assert_eq!(out[4]["offset"], 5);
    assert_eq!(out[5]["ok"], false);
    assert_eq!(out[5]["offset"], 0);
    assert_eq!(out[6]["canonical"], "all()");
    assert_eq!(out[6]["uid"], "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug");
    assert_eq!(out[7]["error"], "expected identifier");
    assert_eq!(out[7]["offset"], 8);
    assert_eq!(out[8]["match"], false);
}

#[test]
fn eval_answers_each_line_before_the_next_arrives() {
    use std::io::{BufRead, BufReader};
    let mut child = brindle()
        .args(["selector", "eval"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn brindle");
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    for (sel, want) in [("a == 'x'", r#"a == "x""#), ("has(b)", "has(b)")] {
        writeln!(stdin, "{}", serde_json::json!({ "selector": sel })).unwrap();
        stdin.flush().unwrap();
        let mut line = String::new();
        stdout.read_line(&mut line).unwrap();
        let v: serde_json::Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["canonical"], want);
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
}

#[test]
fn check_prints_canonical_uid_and_ipset() {
    let out = brindle()
        .args(["selector", "check", "", "--label", "a=b"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("canonical: all()"), "{text}");
    assert!(
        text.contains("uid:       s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"),
        "{text}"
    );
    assert!(
        text.contains("ipset:     cali40s:5y5I3VdRZfDU01O--xXAPx2\n"),
        "{text}"
    );
    assert!(text.contains("match:     true"), "{text}");
}

#[test]
fn check_shows_caret_under_error() {
    let out = brindle()
        .args(["selector", "check", "!app == web"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8(out.stderr).unwrap();
    assert_eq!(
        err,
        "error: expected string (at byte 8)\n  !app == web\n          ^\n"
    );
}
