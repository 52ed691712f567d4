//! Reading back `nft list ruleset` / `nft list table ip calico` text: the chains of Brindle's
//! table, each with the `cali:` hash of every rule (`None` for a rule without one). Pure text
//! processing, for drift checks and tests.

use std::collections::BTreeMap;

/// Chains of table `ip <table>` in a listing, with each rule's hash.
pub fn chain_hashes(listing: &str, table: &str) -> BTreeMap<String, Vec<Option<String>>> {
    let mut out: BTreeMap<String, Vec<Option<String>>> = BTreeMap::new();
    let header = format!("table ip {table} {{");
    let mut in_table = false;
    let mut chain: Option<String> = None;
    for line in listing.lines() {
        let l = line.trim();
        if !in_table {
            in_table = l == header;
            continue;
        }
        if let Some(c) = &chain {
            if l == "}" {
                chain = None;
            } else if !l.is_empty() && !l.starts_with("type ") {
                out.get_mut(c).expect("chain inserted").push(hash_of(l));
            }
            continue;
        }
        if let Some(rest) = l.strip_prefix("chain ") {
            let name = rest.trim_end_matches('{').trim().to_string();
            out.entry(name.clone()).or_default();
            chain = Some(name);
        } else if line.trim_end() == "}" {
            // The table's closing brace (sets and maps close indented).
            break;
        }
    }
    out
}

/// The hash in a rule's `comment "cali:<hash>;…"`.
pub fn hash_of(rule: &str) -> Option<String> {
    let i = rule.find("comment \"cali:")?;
    let rest = &rule[i + "comment \"cali:".len()..];
    let end = rest.find([';', '"'])?;
    Some(rest[..end].to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_chains_and_hashes() {
        let text = "table ip other {\n\tchain x {\n\t\taccept\n\t}\n}\ntable ip calico {\n\tset s {\n\t\ttype ipv4_addr\n\t\telements = { 10.0.0.1 }\n\t}\n\n\tchain filter-FORWARD {\n\t\ttype filter hook forward priority filter; policy accept;\n\t\tcounter packets 0 bytes 0 jump filter-cali-FORWARD comment \"cali:dpfqBgJrpRwlrqw1;\"\n\t}\n\n\tchain filter-cali-x {\n\t}\n\n\tchain filter-cali-y {\n\t\tcounter packets 0 bytes 0 drop comment \"cali:zeZtiiPDsE6BwqUG; Unknown interface\"\n\t\tdrop\n\t}\n}\n";
        let c = chain_hashes(text, "calico");
        assert_eq!(c.len(), 3);
        assert_eq!(c["filter-FORWARD"], [Some("dpfqBgJrpRwlrqw1".to_string())]);
        assert!(c["filter-cali-x"].is_empty());
        assert_eq!(
            c["filter-cali-y"],
            [Some("zeZtiiPDsE6BwqUG".to_string()), None]
        );
    }
}
