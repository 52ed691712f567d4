//! The reference parser: the pest grammar in `selector.pest`, the validating definition of the
//! language. It builds the same [`Node`] AST as the fast parser; tests and the fuzz target check
//! that both accept and reject the same inputs and produce the same canonical forms.
//!
//! Error messages and offsets for people come from the fast parser (a port of Calico's
//! tokenizer/parser, whose messages they must match); a pest error here is reported with pest's
//! own position (the furthest point the grammar reached) and its description.

use pest::iterators::Pair;
use pest::Parser;

use crate::ast::{grow, to_set, Node};
use crate::ParseError;

#[derive(pest_derive::Parser)]
#[grammar = "selector.pest"]
struct Grammar;

/// Parses with the pest grammar. pest recurses several frames per nesting level, so inputs with
/// more than a few levels of parentheses are parsed on a fresh 256 MiB heap-allocated (lazily
/// committed) stack; shallow ones run in place unless the stack is nearly used up.
pub fn parse_node(input: &str) -> Result<Node, ParseError> {
    let (mut depth, mut max_depth) = (0usize, 0usize);
    for b in input.bytes() {
        match b {
            b'(' => {
                depth += 1;
                max_depth = max_depth.max(depth);
            }
            b')' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    if max_depth > 8 {
        stacker::grow(256 << 20, || parse_inner(input))
    } else {
        stacker::maybe_grow(1 << 20, 256 << 20, || parse_inner(input))
    }
}

fn parse_inner(input: &str) -> Result<Node, ParseError> {
    let mut pairs = Grammar::parse(Rule::selector, input).map_err(|e| {
        let offset = match e.location {
            pest::error::InputLocation::Pos(p) => p,
            pest::error::InputLocation::Span((s, _)) => s,
        };
        ParseError::new(offset, e.variant.message().into_owned())
    })?;
    let sel = pairs.next().expect("selector pair");
    match sel.into_inner().find(|p| p.as_rule() == Rule::or_expr) {
        Some(or) => Ok(build(or)),
        None => Ok(Node::All),
    }
}

fn string_value(p: Pair<'_, Rule>) -> String {
    // string = quote ~ body ~ quote; the body is the only inner pair.
    p.into_inner()
        .next()
        .map(|b| b.as_str().to_owned())
        .unwrap_or_default()
}

fn build(p: Pair<'_, Rule>) -> Node {
    match p.as_rule() {
        Rule::or_expr | Rule::and_expr => {
            let is_or = p.as_rule() == Rule::or_expr;
            let mut ops: Vec<Node> = p.into_inner().map(|c| grow(|| build(c))).collect();
            if ops.len() == 1 {
                ops.pop().expect("one operand")
            } else if is_or {
                Node::Or(ops)
            } else {
                Node::And(ops)
            }
        }
        Rule::unary => {
            let mut negated = false;
            let mut node = None;
            for c in p.into_inner() {
                if c.as_rule() == Rule::not_op {
                    negated = !negated;
                } else {
                    node = Some(build(c));
                }
            }
            let node = node.expect("primary");
            if negated {
                Node::Not(Box::new(node))
            } else {
                node
            }
        }
        Rule::has_expr => Node::Has(p.into_inner().next().expect("label").as_str().to_owned()),
        Rule::all_expr => Node::All,
        Rule::global_expr => Node::Global,
        Rule::paren => build(p.into_inner().next().expect("or_expr")),
        Rule::label_expr => {
            let mut it = p.into_inner();
            let label = it.next().expect("label").as_str().to_owned();
            let op = it.next().expect("op");
            let arg = it.next().expect("operand");
            match op.as_rule() {
                Rule::not_in | Rule::in_op => {
                    let vals = to_set(arg.into_inner().map(string_value).collect());
                    if op.as_rule() == Rule::in_op {
                        Node::In(label, vals)
                    } else {
                        Node::NotIn(label, vals)
                    }
                }
                r => {
                    let v = string_value(arg);
                    match r {
                        Rule::eq => Node::Eq(label, v),
                        Rule::ne => Node::Ne(label, v),
                        Rule::contains => Node::Contains(label, v),
                        Rule::starts_with => Node::StartsWith(label, v),
                        Rule::ends_with => Node::EndsWith(label, v),
                        other => unreachable!("operator rule {other:?}"),
                    }
                }
            }
        }
        other => unreachable!("unexpected rule {other:?}"),
    }
}
