//! `brindle selector eval` (JSON lines in, JSON lines out) and `brindle selector check` (for
//! people).
use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::process::ExitCode;

use anyhow::Context;
use serde::{Deserialize, Serialize};

#[derive(clap::Args)]
pub struct SelectorArgs {
    #[command(subcommand)]
    cmd: SelectorCmd,
}

#[derive(clap::Subcommand)]
enum SelectorCmd {
    /// Read JSON lines `{"selector": str, "labels": {..}}` (labels optional) on stdin; write one
    /// JSON line per input: `{"ok": true, "canonical", "uid", "match": bool|null}` or
    /// `{"ok": false, "error", "offset"}`.
    Eval,
    /// Parse one selector: print its canonical form, UID and ipset name, or the error with a
    /// caret under the offending byte (exit 2).
    Check {
        /// The selector (quote it for the shell).
        #[arg(allow_hyphen_values = true)]
        selector: String,
        /// Also evaluate against these labels (repeatable `KEY=VALUE`); prints `match:`.
        #[arg(short, long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
    },
}

pub fn run(args: SelectorArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        SelectorCmd::Eval => run_eval(),
        SelectorCmd::Check { selector, labels } => run_check(&selector, &labels),
    }
}

#[derive(Deserialize)]
struct EvalInput {
    selector: String,
    #[serde(default)]
    labels: Option<BTreeMap<String, String>>,
}

#[derive(Serialize)]
#[serde(untagged)]
enum EvalOutput {
    Ok {
        ok: bool,
        canonical: String,
        uid: String,
        #[serde(rename = "match")]
        matched: Option<bool>,
    },
    Err {
        ok: bool,
        error: String,
        offset: usize,
    },
}

fn eval_line(line: &[u8]) -> EvalOutput {
    let input: EvalInput = match serde_json::from_slice(line) {
        Ok(i) => i,
        Err(e) => {
            return EvalOutput::Err {
                ok: false,
                error: format!("invalid input line: {e}"),
                offset: 0,
            }
        }
    };
    match selector_lang::parse(&input.selector) {
        Ok(sel) => EvalOutput::Ok {
            ok: true,
            matched: input.labels.as_ref().map(|l| sel.matches(l)),
            canonical: sel.canonical().to_owned(),
            uid: sel.uid().to_owned(),
        },
        Err(e) => EvalOutput::Err {
            ok: false,
            error: e.message,
            offset: e.offset,
        },
    }
}

fn run_eval() -> anyhow::Result<ExitCode> {
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .context("reading stdin")?;
        if n == 0 {
            break;
        }
        let text = line.strip_suffix(b"\n").unwrap_or(&line);
        let result = eval_line(text);
        serde_json::to_writer(&mut out, &result).context("writing stdout")?;
        out.write_all(b"\n").context("writing stdout")?;
        out.flush().context("writing stdout")?;
    }
    Ok(ExitCode::SUCCESS)
}

fn run_check(selector: &str, labels: &[String]) -> anyhow::Result<ExitCode> {
    let sel = match selector_lang::parse(selector) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{}", e.render(selector));
            return Ok(ExitCode::from(2));
        }
    };
    println!("canonical: {}", sel.canonical());
    println!("uid:       {}", sel.uid());
    let ipset: String = format!("cali40{}", sel.uid()).chars().take(31).collect();
    println!("ipset:     {ipset}");
    if !labels.is_empty() {
        let mut map = BTreeMap::new();
        for l in labels {
            let (k, v) = l
                .split_once('=')
                .with_context(|| format!("--label {l:?}: expected KEY=VALUE"))?;
            map.insert(k.to_owned(), v.to_owned());
        }
        println!("match:     {}", sel.matches(&map));
    }
    Ok(ExitCode::SUCCESS)
}
