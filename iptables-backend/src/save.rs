//! Parser for `iptables-save` / `iptables-restore` text: tables → chains (with policy) → rules,
//! each rule keeping its raw text, parsed matches and target, and its `cali:` hash.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use ipnet::Ipv4Net;

use crate::BackendError;

/// A parsed save/restore text.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedRuleset {
    pub tables: BTreeMap<String, SavedTable>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedTable {
    pub chains: BTreeMap<String, SavedChain>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SavedChain {
    /// `ACCEPT`/`DROP` for kernel chains, `None` for user chains (`-`).
    pub policy: Option<String>,
    pub rules: Vec<SavedRule>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SavedRule {
    /// The rule text after `-A <chain> ` (or after `-I <chain> [n] `).
    pub raw: String,
    /// 1-based line in the parsed text.
    pub line: usize,
    /// The `cali:` hash, if the rule carries one.
    pub hash: Option<String>,
    /// Comments other than the hash comment.
    pub comments: Vec<String>,
    pub matches: Vec<Match>,
    pub target: Target,
}

/// One match criterion; `neg` is iptables' `!`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Match {
    Protocol {
        neg: bool,
        proto: u8,
    },
    Source {
        neg: bool,
        net: Ipv4Net,
    },
    Destination {
        neg: bool,
        net: Ipv4Net,
    },
    InInterface {
        neg: bool,
        name: String,
    },
    OutInterface {
        neg: bool,
        name: String,
    },
    Mark {
        neg: bool,
        value: u32,
        mask: u32,
    },
    Conntrack {
        neg: bool,
        states: Vec<String>,
    },
    Set {
        neg: bool,
        name: String,
        dirs: Vec<SetDir>,
    },
    Ports {
        neg: bool,
        source: bool,
        ranges: Vec<(u16, u16)>,
    },
    Icmp {
        neg: bool,
        icmp_type: u8,
        code: Option<u8>,
    },
    Rpfilter {
        invert: bool,
    },
    AddrType {
        neg: bool,
        source: bool,
        addr_type: String,
    },
    /// Matches that always hold in simulation (`-m limit`, …).
    Always(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetDir {
    Src,
    Dst,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// No target (counting / comment-only rule).
    None,
    Accept,
    Drop,
    Reject,
    Return,
    Jump(String),
    Goto(String),
    /// `mark = (mark & !mask) ^ value` (xmark) or `| value` (set-mark).
    Mark {
        value: u32,
        mask: u32,
        xor: bool,
    },
    Log {
        prefix: String,
    },
    Masquerade,
    Snat(String),
    Dnat(String),
    /// A non-terminating target the simulator treats as "continue" (NOTRACK, NFLOG, CT, …).
    Continue(String),
}

impl Target {
    pub fn describe(&self) -> String {
        match self {
            Target::None => "(none)".into(),
            Target::Accept => "ACCEPT".into(),
            Target::Drop => "DROP".into(),
            Target::Reject => "REJECT".into(),
            Target::Return => "RETURN".into(),
            Target::Jump(c) => format!("jump {c}"),
            Target::Goto(c) => format!("goto {c}"),
            Target::Mark { value, mask, .. } => format!("MARK {value:#x}/{mask:#x}"),
            Target::Log { prefix } => format!("LOG \"{prefix}\""),
            Target::Masquerade => "MASQUERADE".into(),
            Target::Snat(a) => format!("SNAT {a}"),
            Target::Dnat(a) => format!("DNAT {a}"),
            Target::Continue(t) => t.clone(),
        }
    }
}

/// Tokenise a line shell-style (double quotes, backslash escapes), keeping 1-based columns.
fn tokenize(line: &str, lineno: usize) -> Result<Vec<(String, usize)>, BackendError> {
    let mut out = Vec::new();
    let bytes: Vec<char> = line.chars().collect();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i].is_whitespace() {
            i += 1;
            continue;
        }
        let start = i;
        let mut tok = String::new();
        while i < bytes.len() && !bytes[i].is_whitespace() {
            if bytes[i] == '"' {
                i += 1;
                loop {
                    if i >= bytes.len() {
                        return Err(BackendError::Parse {
                            line: lineno,
                            column: start + 1,
                            message: "unterminated quoted string".into(),
                        });
                    }
                    match bytes[i] {
                        '"' => {
                            i += 1;
                            break;
                        }
                        '\\' if i + 1 < bytes.len() => {
                            tok.push(bytes[i + 1]);
                            i += 2;
                        }
                        c => {
                            tok.push(c);
                            i += 1;
                        }
                    }
                }
            } else {
                tok.push(bytes[i]);
                i += 1;
            }
        }
        out.push((tok, start + 1));
    }
    Ok(out)
}

fn proto_number(s: &str) -> Option<u8> {
    Some(match s.to_ascii_lowercase().as_str() {
        "all" | "0" => 0,
        "tcp" => 6,
        "udp" => 17,
        "icmp" => 1,
        "sctp" => 132,
        "udplite" => 136,
        "ipencap" | "ipip" => 4,
        "gre" => 47,
        "esp" => 50,
        "ah" => 51,
        other => other.parse().ok()?,
    })
}

fn parse_net(s: &str) -> Option<Ipv4Net> {
    if let Some((a, m)) = s.split_once('/') {
        let addr: Ipv4Addr = a.parse().ok()?;
        let len = match m.parse::<u8>() {
            Ok(l) => l,
            Err(_) => {
                let mask: Ipv4Addr = m.parse().ok()?;
                let bits = u32::from(mask);
                if bits.leading_ones() + bits.trailing_zeros() != 32 {
                    return None;
                }
                bits.leading_ones() as u8
            }
        };
        Ipv4Net::new(addr, len).ok().map(|n| n.trunc())
    } else {
        let addr: Ipv4Addr = s.parse().ok()?;
        Ipv4Net::new(addr, 32).ok()
    }
}

fn parse_u32(s: &str) -> Option<u32> {
    if let Some(h) = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X")) {
        u32::from_str_radix(h, 16).ok()
    } else {
        s.parse().ok()
    }
}

fn parse_mark(s: &str) -> Option<(u32, u32)> {
    match s.split_once('/') {
        Some((v, m)) => Some((parse_u32(v)?, parse_u32(m)?)),
        None => Some((parse_u32(s)?, u32::MAX)),
    }
}

fn parse_port_list(s: &str) -> Option<Vec<(u16, u16)>> {
    s.split(',')
        .map(|p| match p.split_once(':') {
            Some((a, b)) => Some((a.parse().ok()?, b.parse().ok()?)),
            None => {
                let v = p.parse().ok()?;
                Some((v, v))
            }
        })
        .collect()
}

fn icmp_type(s: &str) -> Option<(u8, Option<u8>)> {
    let named = match s {
        "echo-reply" => Some((0, None)),
        "destination-unreachable" => Some((3, None)),
        "echo-request" => Some((8, None)),
        "time-exceeded" => Some((11, None)),
        "any" => Some((255, None)),
        _ => None,
    };
    if named.is_some() {
        return named;
    }
    match s.split_once('/') {
        Some((t, c)) => Some((t.parse().ok()?, Some(c.parse().ok()?))),
        None => Some((s.parse().ok()?, None)),
    }
}

/// Parse the options of one rule (everything after the chain name / position).
pub fn parse_rule(
    tokens: &[(String, usize)],
    lineno: usize,
    raw: String,
) -> Result<SavedRule, BackendError> {
    let mut rule = SavedRule {
        raw,
        line: lineno,
        hash: None,
        comments: Vec::new(),
        matches: Vec::new(),
        target: Target::None,
    };
    let mut i = 0;
    let mut neg = false;
    let mut in_target = false;
    let bad = |opt: &str, col: usize, msg: &str| BackendError::BadOption {
        line: lineno,
        column: col,
        option: opt.to_string(),
        message: msg.to_string(),
    };
    while i < tokens.len() {
        let (opt, col) = (&tokens[i].0, tokens[i].1);
        let arg = |k: usize| -> Result<&str, BackendError> {
            tokens
                .get(i + k)
                .map(|t| t.0.as_str())
                .ok_or_else(|| bad(opt, col, "missing argument"))
        };
        if opt == "!" {
            neg = true;
            i += 1;
            continue;
        }
        let mut used = 2;
        match opt.as_str() {
            "-p" | "--protocol" => {
                let p = proto_number(arg(1)?).ok_or_else(|| bad(opt, col, "unknown protocol"))?;
                rule.matches.push(Match::Protocol { neg, proto: p });
            }
            "-s" | "--source" | "--src" | "-d" | "--destination" | "--dst" => {
                let net = parse_net(arg(1)?).ok_or_else(|| bad(opt, col, "bad address"))?;
                if opt.starts_with("-s") || opt == "--source" || opt == "--src" {
                    rule.matches.push(Match::Source { neg, net });
                } else {
                    rule.matches.push(Match::Destination { neg, net });
                }
            }
            "-i" | "--in-interface" => rule.matches.push(Match::InInterface {
                neg,
                name: arg(1)?.to_string(),
            }),
            "-o" | "--out-interface" => rule.matches.push(Match::OutInterface {
                neg,
                name: arg(1)?.to_string(),
            }),
            "-m" | "--match" => {
                let m = arg(1)?;
                if matches!(m, "limit" | "hashlimit" | "statistic") {
                    rule.matches.push(Match::Always(m.to_string()));
                }
            }
            "--comment" => {
                let c = arg(1)?;
                match c.strip_prefix("cali:") {
                    Some(h) if rule.hash.is_none() => rule.hash = Some(h.to_string()),
                    _ => rule.comments.push(c.to_string()),
                }
            }
            "--mark" => {
                let (value, mask) = parse_mark(arg(1)?).ok_or_else(|| bad(opt, col, "bad mark"))?;
                rule.matches.push(Match::Mark { neg, value, mask });
            }
            "--ctstate" | "--state" => rule.matches.push(Match::Conntrack {
                neg,
                states: arg(1)?.split(',').map(str::to_string).collect(),
            }),
            "--match-set" => {
                let name = arg(1)?.to_string();
                let dirs = arg(2)?
                    .split(',')
                    .map(|d| match d {
                        "src" => Ok(SetDir::Src),
                        "dst" => Ok(SetDir::Dst),
                        _ => Err(bad(opt, col, "set direction must be src or dst")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                rule.matches.push(Match::Set { neg, name, dirs });
                used = 3;
            }
            "--dports"
            | "--destination-ports"
            | "--sports"
            | "--source-ports"
            | "--dport"
            | "--destination-port"
            | "--sport"
            | "--source-port" => {
                let ranges =
                    parse_port_list(arg(1)?).ok_or_else(|| bad(opt, col, "bad port list"))?;
                let source = opt.starts_with("--s");
                rule.matches.push(Match::Ports {
                    neg,
                    source,
                    ranges,
                });
            }
            "--icmp-type" => {
                let (t, c) = icmp_type(arg(1)?).ok_or_else(|| bad(opt, col, "bad ICMP type"))?;
                rule.matches.push(Match::Icmp {
                    neg,
                    icmp_type: t,
                    code: c,
                });
            }
            "--invert" if !in_target => {
                rule.matches.push(Match::Rpfilter { invert: true });
                used = 1;
            }
            "--validmark" | "--loose" | "--accept-local" | "--limit-iface-out"
            | "--limit-iface-in" | "--random-fully" | "--random" | "--persistent" | "--log-uid"
            | "--log-tcp-sequence" | "--log-tcp-options" | "--log-ip-options" | "--notrack" => {
                used = 1
            }
            "--src-type" | "--dst-type" => rule.matches.push(Match::AddrType {
                neg,
                source: opt == "--src-type",
                addr_type: arg(1)?.to_string(),
            }),
            "--limit" | "--limit-burst" | "--log-level" | "--reject-with" | "--nflog-group"
            | "--nflog-prefix" | "--nflog-range" | "--nflog-size" | "--nflog-threshold"
            | "--to-ports" | "--zone" | "--set-dscp" | "--set-dscp-class" | "--mode"
            | "--every" | "--packet" | "--probability" => {}
            "-j" | "--jump" | "-g" | "--goto" => {
                let t = arg(1)?;
                in_target = true;
                let is_goto = opt == "-g" || opt == "--goto";
                rule.target = match t {
                    "ACCEPT" => Target::Accept,
                    "DROP" => Target::Drop,
                    "REJECT" => Target::Reject,
                    "RETURN" => Target::Return,
                    "MASQUERADE" => Target::Masquerade,
                    "MARK" => Target::Mark {
                        value: 0,
                        mask: 0,
                        xor: true,
                    },
                    "LOG" => Target::Log {
                        prefix: String::new(),
                    },
                    "SNAT" => Target::Snat(String::new()),
                    "DNAT" => Target::Dnat(String::new()),
                    "NOTRACK" | "CT" | "NFLOG" | "TRACE" | "CONNMARK" | "DSCP" => {
                        Target::Continue(t.to_string())
                    }
                    c if is_goto => Target::Goto(c.to_string()),
                    c if c.chars().all(|ch| ch.is_ascii_uppercase()) && !c.starts_with("cali") => {
                        return Err(bad(opt, col, "unsupported target"))
                    }
                    c => Target::Jump(c.to_string()),
                };
            }
            "--set-mark" | "--set-xmark" | "--and-mark" | "--or-mark" | "--xor-mark" => {
                let v = arg(1)?;
                let (value, mask, xor) = match opt.as_str() {
                    "--set-xmark" => {
                        let (v, m) = parse_mark(v).ok_or_else(|| bad(opt, col, "bad mark"))?;
                        (v, m, true)
                    }
                    "--set-mark" => {
                        let (v, m) = parse_mark(v).ok_or_else(|| bad(opt, col, "bad mark"))?;
                        (v, m, false)
                    }
                    "--and-mark" => (
                        0,
                        !parse_u32(v).ok_or_else(|| bad(opt, col, "bad mark"))?,
                        true,
                    ),
                    "--or-mark" => {
                        let b = parse_u32(v).ok_or_else(|| bad(opt, col, "bad mark"))?;
                        (b, b, true)
                    }
                    _ => (
                        parse_u32(v).ok_or_else(|| bad(opt, col, "bad mark"))?,
                        0,
                        true,
                    ),
                };
                rule.target = Target::Mark { value, mask, xor };
            }
            "--log-prefix" => {
                rule.target = Target::Log {
                    prefix: arg(1)?.to_string(),
                }
            }
            "--to-source" => rule.target = Target::Snat(arg(1)?.to_string()),
            "--to-destination" => rule.target = Target::Dnat(arg(1)?.to_string()),
            _ => return Err(bad(opt, col, "unsupported option")),
        }
        neg = false;
        i += used;
    }
    Ok(rule)
}

/// Parse `iptables-save` or `iptables-restore` text.
pub fn parse_save(text: &str) -> Result<SavedRuleset, BackendError> {
    let mut rs = SavedRuleset::default();
    let mut current: Option<String> = None;
    for (idx, line) in text.lines().enumerate() {
        let lineno = idx + 1;
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let err = |column: usize, message: &str| BackendError::Parse {
            line: lineno,
            column,
            message: message.to_string(),
        };
        if let Some(t) = trimmed.strip_prefix('*') {
            rs.tables.entry(t.to_string()).or_default();
            current = Some(t.to_string());
            continue;
        }
        if trimmed == "COMMIT" {
            current = None;
            continue;
        }
        let Some(table_name) = current.clone() else {
            return Err(err(1, "rule or chain outside a table (missing `*table`)"));
        };
        let table = rs
            .tables
            .get_mut(&table_name)
            .expect("table inserted above");
        if let Some(decl) = trimmed.strip_prefix(':') {
            let mut parts = decl.split_whitespace();
            let name = parts.next().ok_or_else(|| err(2, "chain name missing"))?;
            let policy = parts.next().filter(|p| *p != "-").map(str::to_string);
            let chain = table.chains.entry(name.to_string()).or_default();
            chain.policy = policy;
            continue;
        }
        let mut tokens = tokenize(trimmed, lineno)?;
        if tokens.first().is_some_and(|t| t.0.starts_with('[')) {
            tokens.remove(0);
        }
        let (cmd, col) = tokens
            .first()
            .cloned()
            .ok_or_else(|| err(1, "empty line"))?;
        let chain = tokens
            .get(1)
            .map(|t| t.0.clone())
            .ok_or_else(|| err(col, "chain name missing"))?;
        match cmd.as_str() {
            "-A" | "--append" | "-I" | "--insert" => {
                let mut start = 2;
                let mut pos = None;
                if cmd.starts_with("-I") || cmd == "--insert" {
                    if let Some(n) = tokens.get(2).and_then(|t| t.0.parse::<usize>().ok()) {
                        pos = Some(n.max(1) - 1);
                        start = 3;
                    } else {
                        pos = Some(0);
                    }
                }
                let raw_start = tokens.get(start).map(|t| t.1 - 1).unwrap_or(trimmed.len());
                let raw = trimmed[byte_index(trimmed, raw_start)..].to_string();
                let rule = parse_rule(&tokens[start..], lineno, raw)?;
                let c = table.chains.entry(chain).or_default();
                match pos {
                    Some(p) => {
                        let p = p.min(c.rules.len());
                        c.rules.insert(p, rule);
                    }
                    None => c.rules.push(rule),
                }
            }
            "-N" | "--new-chain" => {
                table.chains.entry(chain).or_default();
            }
            "-F" | "--flush" => {
                if let Some(c) = table.chains.get_mut(&chain) {
                    c.rules.clear();
                }
            }
            "-X" | "--delete-chain" => {
                table.chains.remove(&chain);
            }
            _ => return Err(err(col, &format!("unsupported command `{cmd}`"))),
        }
    }
    Ok(rs)
}

fn byte_index(s: &str, char_idx: usize) -> usize {
    s.char_indices()
        .nth(char_idx)
        .map(|(b, _)| b)
        .unwrap_or(s.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_save_output_forms() {
        let text = "# Generated by iptables-save\n*filter\n:INPUT ACCEPT [0:0]\n:cali-INPUT - [0:0]\n\
-A INPUT -m comment --comment \"cali:Cz_u1IQiXIMmKD4c\" -j cali-INPUT\n\
-A cali-INPUT -i cali+ -m comment --comment \"cali:x\" -m comment --comment \"Hello world\" -g cali-wl-to-host\n\
-A cali-INPUT -p tcp -m set ! --match-set cali40s:abc src,src -m multiport ! --dports 80,90:99 -m mark --mark 0x0/0x1000000 -j MARK --set-xmark 0x1000000/0x1000000\n\
-A cali-INPUT ! -s 10.0.0.0/255.255.0.0 -m icmp --icmp-type 8/0 -j DROP\nCOMMIT\n";
        let rs = parse_save(text).unwrap();
        let f = &rs.tables["filter"];
        assert_eq!(f.chains["INPUT"].policy.as_deref(), Some("ACCEPT"));
        assert_eq!(
            f.chains["INPUT"].rules[0].hash.as_deref(),
            Some("Cz_u1IQiXIMmKD4c")
        );
        assert_eq!(
            f.chains["INPUT"].rules[0].target,
            Target::Jump("cali-INPUT".into())
        );
        let r = &f.chains["cali-INPUT"].rules;
        assert_eq!(r[0].comments, ["Hello world"]);
        assert_eq!(r[0].target, Target::Goto("cali-wl-to-host".into()));
        assert_eq!(
            r[1].matches,
            [
                Match::Protocol {
                    neg: false,
                    proto: 6
                },
                Match::Set {
                    neg: true,
                    name: "cali40s:abc".into(),
                    dirs: vec![SetDir::Src, SetDir::Src]
                },
                Match::Ports {
                    neg: true,
                    source: false,
                    ranges: vec![(80, 80), (90, 99)]
                },
                Match::Mark {
                    neg: false,
                    value: 0,
                    mask: 0x1000000
                },
            ]
        );
        assert_eq!(
            r[1].target,
            Target::Mark {
                value: 0x1000000,
                mask: 0x1000000,
                xor: true
            }
        );
        assert_eq!(
            r[2].matches[0],
            Match::Source {
                neg: true,
                net: "10.0.0.0/16".parse().unwrap()
            }
        );
        assert_eq!(
            r[2].matches[1],
            Match::Icmp {
                neg: false,
                icmp_type: 8,
                code: Some(0)
            }
        );
    }

    #[test]
    fn errors_carry_line_and_column() {
        let e = parse_save("*filter\n-A cali-x --frobnicate 3 -j DROP\nCOMMIT\n").unwrap_err();
        assert_eq!(
            e,
            BackendError::BadOption {
                line: 2,
                column: 11,
                option: "--frobnicate".into(),
                message: "unsupported option".into()
            }
        );
        let e = parse_save("-A x -j DROP\n").unwrap_err();
        assert!(matches!(e, BackendError::Parse { line: 1, .. }));
        let e = parse_save("*filter\n-A x -m comment --comment \"open\n").unwrap_err();
        assert!(
            matches!(
                e,
                BackendError::Parse {
                    line: 2,
                    column: 27,
                    ..
                }
            ),
            "{e:?}"
        );
    }

    #[test]
    fn insert_positions() {
        let rs = parse_save("*filter\n-A FORWARD -j DROP\n-I FORWARD 1 -j cali-a\n-I FORWARD 2 -j cali-b\n-I FORWARD -j cali-c\nCOMMIT\n").unwrap();
        let t: Vec<_> = rs.tables["filter"].chains["FORWARD"]
            .rules
            .iter()
            .map(|r| r.target.clone())
            .collect();
        assert_eq!(
            t,
            [
                Target::Jump("cali-c".into()),
                Target::Jump("cali-a".into()),
                Target::Jump("cali-b".into()),
                Target::Drop
            ]
        );
    }
}
