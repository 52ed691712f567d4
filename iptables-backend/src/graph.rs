//! The chain graph of a [`Ruleset`] as a petgraph, and its structural checks: no jump or goto
//! to a missing chain, no cycle, every chain reachable from a hook rule.

use std::collections::BTreeMap;

use petgraph::algo::is_cyclic_directed;
use petgraph::graph::{DiGraph, NodeIndex};
use petgraph::visit::Dfs;

use crate::{BackendError, Ruleset, Table, TableRules};

/// A table's chain graph: nodes are chain names (kernel chains included), edges jumps/gotos.
pub struct ChainGraph {
    pub graph: DiGraph<String, bool>,
    pub index: BTreeMap<String, NodeIndex>,
    /// Kernel chains holding hook rules.
    pub roots: Vec<NodeIndex>,
}

impl ChainGraph {
    pub fn build(t: &TableRules) -> (ChainGraph, Vec<(String, String)>) {
        let mut graph = DiGraph::new();
        let mut index = BTreeMap::new();
        for name in t.chains.keys() {
            index.insert(name.clone(), graph.add_node(name.clone()));
        }
        let mut roots = Vec::new();
        for (k, _) in t.inserts.iter().chain(t.appends.iter()) {
            let idx = *index
                .entry(k.clone())
                .or_insert_with(|| graph.add_node(k.clone()));
            if !roots.contains(&idx) {
                roots.push(idx);
            }
        }
        let mut missing = Vec::new();
        let mut edges = Vec::new();
        for (name, rules) in &t.chains {
            for r in rules {
                if let Some(target) = r.target_chain() {
                    edges.push((name.clone(), target.to_string(), r.is_goto()));
                }
            }
        }
        for (k, r) in t.inserts.iter().chain(t.appends.iter()) {
            if let Some(target) = r.target_chain() {
                edges.push((k.clone(), target.to_string(), r.is_goto()));
            }
        }
        for (from, to, is_goto) in edges {
            match (index.get(&from), index.get(&to)) {
                (Some(&a), Some(&b)) => {
                    graph.add_edge(a, b, is_goto);
                }
                _ => missing.push((from, to)),
            }
        }
        (
            ChainGraph {
                graph,
                index,
                roots,
            },
            missing,
        )
    }
}

/// Check every table of `rs`; returns all problems found.
pub fn check(rs: &Ruleset) -> Vec<BackendError> {
    let mut problems = Vec::new();
    for (table, t) in &rs.tables {
        problems.extend(check_table(*table, t));
    }
    problems
}

pub fn check_table(table: Table, t: &TableRules) -> Vec<BackendError> {
    let mut problems = Vec::new();
    let (g, missing) = ChainGraph::build(t);
    for (from, to) in missing {
        problems.push(BackendError::Graph {
            table: table.name().into(),
            chain: from,
            message: format!("jumps to missing chain `{to}`"),
        });
    }
    if is_cyclic_directed(&g.graph) {
        problems.push(BackendError::Graph {
            table: table.name().into(),
            chain: String::new(),
            message: "the chain graph has a cycle".into(),
        });
    }
    let mut seen = vec![false; g.graph.node_count()];
    for &root in &g.roots {
        let mut dfs = Dfs::new(&g.graph, root);
        while let Some(n) = dfs.next(&g.graph) {
            seen[n.index()] = true;
        }
    }
    for (name, idx) in &g.index {
        if !seen[idx.index()] {
            problems.push(BackendError::Graph {
                table: table.name().into(),
                chain: name.clone(),
                message: "not reachable from any hook rule".into(),
            });
        }
    }
    for name in t.chains.keys() {
        if name.len() > crate::hash::MAX_CHAIN_NAME {
            problems.push(BackendError::Graph {
                table: table.name().into(),
                chain: name.clone(),
                message: format!(
                    "name longer than {} characters",
                    crate::hash::MAX_CHAIN_NAME
                ),
            });
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Rule;

    fn rule(action: &str) -> Rule {
        Rule {
            hash: "x".into(),
            comments: vec![],
            matches: String::new(),
            action: action.into(),
        }
    }

    #[test]
    fn detects_missing_cycle_and_unreachable() {
        let mut t = TableRules::default();
        t.inserts.push(("INPUT".into(), rule("--jump cali-a")));
        t.chains.insert(
            "cali-a".into(),
            vec![rule("--jump cali-b"), rule("--jump cali-nope")],
        );
        t.chains
            .insert("cali-b".into(), vec![rule("--goto cali-a")]);
        t.chains
            .insert("cali-orphan".into(), vec![rule("--jump DROP")]);
        let p = check_table(Table::Filter, &t);
        let text: Vec<String> = p.iter().map(|e| e.to_string()).collect();
        assert_eq!(p.len(), 3, "{text:?}");
        assert!(text.iter().any(|s| s.contains("missing chain `cali-nope`")));
        assert!(text.iter().any(|s| s.contains("cycle")));
        assert!(text
            .iter()
            .any(|s| s.contains("cali-orphan") && s.contains("not reachable")));
    }
}
