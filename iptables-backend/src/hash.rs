//! Felix's names and hashes: chained SHA-224 rule hashes (`cali:<16 chars>`), length-limited
//! chain names (`GetLengthLimitedID`), unique set IDs (`MakeUniqueID`) and ipset names.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use sha2::{Digest, Sha224, Sha256};

/// Longest chain name the kernel accepts (`XT_EXTENSION_MAXNAMELEN` - 1 minus Felix's margin).
pub const MAX_CHAIN_NAME: usize = 28;
/// Longest ipset name (`IPSET_MAXNAMELEN` - 1).
pub const MAX_IPSET_NAME: usize = 31;
/// Number of base64 characters of a rule hash.
pub const RULE_HASH_LEN: usize = 16;

/// Chained rule hashes for one chain: `h0 = SHA-224(chain)`, `h_i = SHA-224(h_{i-1} || s_i)`
/// where `s_i` is the rule's hash input (see [`rule_hash_input`]). Returns 16 characters of
/// unpadded base64url per rule.
pub fn rule_hashes<'a, I>(chain: &str, inputs: I) -> Vec<String>
where
    I: IntoIterator<Item = &'a str>,
{
    let mut prev: [u8; 28] = Sha224::digest(chain.as_bytes()).into();
    let mut out = Vec::new();
    for s in inputs {
        let mut h = Sha224::new();
        h.update(prev);
        h.update(s.as_bytes());
        prev = h.finalize().into();
        out.push(URL_SAFE_NO_PAD.encode(&prev[..12]));
    }
    out
}

/// Streaming form of [`rule_hashes`] that hashes the rule parts without building the input
/// string: `(comments, matches, action)` per rule.
pub fn rule_hashes_parts<'a, I>(chain: &str, rules: I) -> Vec<String>
where
    I: IntoIterator<Item = (&'a [String], &'a str, &'a str)>,
{
    let mut prev: [u8; 28] = Sha224::digest(chain.as_bytes()).into();
    let mut out = Vec::new();
    for (comments, matches, action) in rules {
        let mut h = Sha224::new();
        h.update(prev);
        h.update(b"-A ");
        h.update(chain.as_bytes());
        h.update(b" HASH");
        for c in comments {
            h.update(b" -m comment --comment \"");
            h.update(c.as_bytes());
            h.update(b"\"");
        }
        if !matches.is_empty() {
            h.update(b" ");
            h.update(matches.as_bytes());
        }
        if !action.is_empty() {
            h.update(b" ");
            h.update(action.as_bytes());
        }
        prev = h.finalize().into();
        out.push(URL_SAFE_NO_PAD.encode(&prev[..12]));
    }
    out
}

/// The string Felix hashes for one rule: `-A <chain> HASH [-m comment --comment "c"]... [match] [action]`.
pub fn rule_hash_input(chain: &str, comments: &[String], matches: &str, action: &str) -> String {
    let mut s = format!("-A {chain} HASH");
    for c in comments {
        s.push_str(" -m comment --comment \"");
        s.push_str(c);
        s.push('"');
    }
    if !matches.is_empty() {
        s.push(' ');
        s.push_str(matches);
    }
    if !action.is_empty() {
        s.push(' ');
        s.push_str(action);
    }
    s
}

/// `hash.GetLengthLimitedID(prefix, suffix, max)`.
pub fn length_limited_id(prefix: &str, suffix: &str, max: usize) -> String {
    let suffix = if suffix.is_empty() { "_" } else { suffix };
    let total = prefix.len() + suffix.len();
    if total > max || (total == max && suffix.starts_with('_')) {
        let digest = Sha256::digest(suffix.as_bytes());
        let enc = URL_SAFE_NO_PAD.encode(digest);
        let keep = max.saturating_sub(1 + prefix.len()).min(enc.len());
        format!("{prefix}_{}", &enc[..keep])
    } else {
        format!("{prefix}{suffix}")
    }
}

/// A chain name of at most [`MAX_CHAIN_NAME`] characters.
pub fn length_limited_name(prefix: &str, suffix: &str) -> String {
    length_limited_id(prefix, suffix, MAX_CHAIN_NAME)
}

/// `hash.MakeUniqueID(prefix, content)` = `prefix:base64url(SHA-224(prefix:content))`.
pub fn make_unique_id(prefix: &str, content: &str) -> String {
    let digest = Sha224::digest(format!("{prefix}:{content}").as_bytes());
    format!("{prefix}:{}", URL_SAFE_NO_PAD.encode(digest))
}

/// The selector set ID for a canonical selector (`s:…`).
pub fn selector_set_id(canonical: &str) -> String {
    make_unique_id("s", canonical)
}

/// The named-port set ID (`n:…`) for a selector set ID, protocol name and port name.
pub fn named_port_set_id(selector_id: &str, protocol: &str, port_name: &str) -> String {
    make_unique_id("n", &format!("{selector_id},{protocol},{port_name}"))
}

/// The kernel name of an IPv4 set: `cali40` + set ID, cut to 31 characters.
pub fn ipset_name(set_id: &str) -> String {
    let mut name = format!("cali40{set_id}");
    if name.len() > MAX_IPSET_NAME {
        let mut cut = MAX_IPSET_NAME;
        while !name.is_char_boundary(cut) {
            cut -= 1;
        }
        name.truncate(cut);
    }
    name
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hashes(chain: &str, bodies: &[&str]) -> Vec<String> {
        let inputs: Vec<String> = bodies
            .iter()
            .map(|b| rule_hash_input(chain, &[], "", b))
            .collect();
        rule_hashes(chain, inputs.iter().map(String::as_str))
    }

    #[test]
    fn felix_table_test_vectors() {
        assert_eq!(hashes("FORWARD", &["--jump DROP"]), ["hecdSCslEjdBPBPo"]);
        // (The spec's `ACCEPT, DROP, ACCEPT` vector is from a table_test context whose chain
        // name is not stated; the other vectors pin the algorithm.)
        assert_eq!(
            hashes("FORWARD", &["--jump cali-FORWARD"]),
            ["wUHhoiAYhphO9Mso"]
        );
        assert_eq!(
            hashes("cali-foobar", &["--jump ACCEPT", "--jump DROP"]),
            ["42h7Q64_2XDzpwKe", "0sUFHicPNNqNyNx8"]
        );
        let first = rule_hash_input("FORWARD", &["new drop rule".into()], "", "--jump DROP");
        let second = rule_hash_input("FORWARD", &[], "", "--jump cali-foobar");
        assert_eq!(
            rule_hashes("FORWARD", [first.as_str(), second.as_str()]),
            ["67cGS74-1PBXlOtK", "RA5Tbu3HSwkGWuZM"]
        );
    }

    #[test]
    fn spec_static_chain_vectors() {
        // filter cali-FORWARD first rule with project marks (§1.6).
        assert_eq!(
            hashes("cali-FORWARD", &["--jump MARK --set-mark 0/0xe000000"]),
            ["JV9-BRWxjz8He5Ib"]
        );
        // Appended FORWARD rules are hashed under `FORWARD*appends*` (§1.1).
        let a1 = rule_hash_input(
            "FORWARD*appends*",
            &["Policy explicitly accepted packet.".into()],
            "-m mark --mark 0x1000000/0x1000000",
            "--jump ACCEPT",
        );
        let a2 = rule_hash_input(
            "FORWARD*appends*",
            &[],
            "",
            "--jump MARK --set-mark 0x1000000/0x1000000",
        );
        assert_eq!(
            rule_hashes("FORWARD*appends*", [a1.as_str(), a2.as_str()]),
            ["eEpJhAtjPch0oSS7", "QhwVJ_XEYFSFrw3q"]
        );
    }

    #[test]
    fn streaming_hashes_equal_string_hashes() {
        let comments = vec!["Policy explicitly accepted packet.".to_string()];
        let a = rule_hash_input("X", &comments, "-m mark --mark 1/1", "--jump ACCEPT");
        let b = rule_hash_input("X", &[], "", "--jump DROP");
        assert_eq!(
            rule_hashes("X", [a.as_str(), b.as_str()]),
            rule_hashes_parts(
                "X",
                [
                    (&comments[..], "-m mark --mark 1/1", "--jump ACCEPT"),
                    (&[][..], "", "--jump DROP")
                ]
            )
        );
    }

    #[test]
    fn length_limited_vectors() {
        assert_eq!(length_limited_id("felix", "1234", 10), "felix1234");
        assert_eq!(length_limited_id("felix", "_2345", 10), "felix_kMQI");
        assert_eq!(
            length_limited_id("felix", "12345678910", 13),
            "felix_Y2QCZIS"
        );
        assert_eq!(length_limited_id("felix", "", 10), "felix_");
        assert_eq!(
            length_limited_name("cali-pi-", "gnp/long-policy-name-that-gets-hashed"),
            "cali-pi-_PymyFHQQg3808jiz1OJ"
        );
        assert_eq!(
            length_limited_name("cali-pri-", "long-policy-name-that-gets-hashed"),
            "cali-pri-_ffOMcf6pikpiZ6hgKc"
        );
        assert_eq!(
            length_limited_name("cali-th-", "any-interface-at-all"),
            "cali-th-any-interface-at-all"
        );
        assert!(
            length_limited_name("cali-fhfw-", "any-interface-at-all").starts_with("cali-fhfw-_")
        );
        assert_eq!(
            length_limited_name("cali-fhfw-", "any-interface-at-all").len(),
            28
        );
    }

    #[test]
    fn set_id_vectors() {
        assert_eq!(
            selector_set_id("all()"),
            "s:5y5I3VdRZfDU01O--xXAPx2yxCQQqMf0M6IWug"
        );
        assert_eq!(
            ipset_name(&selector_set_id("all()")),
            "cali40s:5y5I3VdRZfDU01O--xXAPx2"
        );
        let db = selector_set_id("role == \"db\"");
        assert_eq!(db, "s:rV61RKD1Q8wo61pyeB0j2rwE3eiBOFbx0SsYKg");
        assert_eq!(ipset_name(&db), "cali40s:rV61RKD1Q8wo61pyeB0j2rw");
        let np = named_port_set_id(&db, "tcp", "http");
        assert_eq!(np, "n:v1r2STTlO7TacjeCimdhkpVVM3zO_Bl2xCq5fw");
        assert_eq!(ipset_name(&np), "cali40n:v1r2STTlO7TacjeCimdhkpV");
        assert_eq!(ipset_name("masq-ipam-pools"), "cali40masq-ipam-pools");
    }
}
