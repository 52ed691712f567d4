//! The fast parser: a port of Calico's recursive-descent `parser.go` (made iterative) over the token stream of
//! [`crate::lexer`], producing the same AST, the same accept/reject set and the same error
//! messages, plus the byte offset of the offending token.

use crate::ast::{to_set, Node};
use crate::lexer::{tokenize, Kind, Token};
use crate::ParseError;

struct P<'a> {
    input: &'a str,
    toks: &'a [Token],
}

fn err_at(t: &Token, msg: impl Into<String>) -> ParseError {
    ParseError::new(t.pos as usize, msg)
}

/// One open parenthesis (or the top level): the `!` parity in front of it, the finished
/// `||` operands and the `&&` operands of the current term.
struct Frame {
    negated: bool,
    ors: Vec<Node>,
    ands: Vec<Node>,
}

fn collapse(mut v: Vec<Node>, and: bool) -> Node {
    if v.len() == 1 {
        v.pop().expect("one operand")
    } else if and {
        Node::And(v)
    } else {
        Node::Or(v)
    }
}

impl<'a> P<'a> {
    #[inline]
    fn s(&self, t: &Token) -> String {
        t.value(self.input).to_owned()
    }

    /// Calico's `parseOrExpression` / `parseAndExpression` / `parseOperation`, with the
    /// recursion on `(` replaced by an explicit stack so nesting depth costs heap, not stack.
    /// Tokens are consumed in the same order, so the first error is the same one.
    fn parse(&self) -> Result<(Node, usize), ParseError> {
        let toks = self.toks;
        let mut stack: Vec<Frame> = Vec::new();
        let mut cur = Frame {
            negated: false,
            ors: Vec::new(),
            ands: Vec::new(),
        };
        let mut i = 0usize;
        'operation: loop {
            let mut negated = false;
            while toks[i].kind == Kind::Not {
                negated = !negated;
                i += 1;
            }
            if toks[i].kind == Kind::LParen {
                stack.push(std::mem::replace(
                    &mut cur,
                    Frame {
                        negated,
                        ors: Vec::new(),
                        ands: Vec::new(),
                    },
                ));
                i += 1;
                continue 'operation;
            }
            let (leaf, next) = self.leaf(i)?;
            i = next;
            let mut node = if negated {
                Node::Not(Box::new(leaf))
            } else {
                leaf
            };
            loop {
                cur.ands.push(node);
                if toks[i].kind == Kind::And {
                    i += 1;
                    continue 'operation;
                }
                let term = collapse(std::mem::take(&mut cur.ands), true);
                cur.ors.push(term);
                if toks[i].kind == Kind::Or {
                    i += 1;
                    continue 'operation;
                }
                let expr = collapse(std::mem::take(&mut cur.ors), false);
                match stack.pop() {
                    None => return Ok((expr, i)),
                    Some(parent) => {
                        if toks[i].kind != Kind::RParen {
                            return Err(err_at(&toks[i], "expected )"));
                        }
                        i += 1;
                        let group = std::mem::replace(&mut cur, parent);
                        node = if group.negated {
                            Node::Not(Box::new(expr))
                        } else {
                            expr
                        };
                    }
                }
            }
        }
    }

    /// A non-parenthesised operation starting at token `i` (after any `!`s).
    fn leaf(&self, i: usize) -> Result<(Node, usize), ParseError> {
        let toks = self.toks;
        let t0 = &toks[i];
        Ok(match t0.kind {
            Kind::Has => (Node::Has(self.s(t0)), i + 1),
            Kind::All => (Node::All, i + 1),
            Kind::Global => (Node::Global, i + 1),
            Kind::Label => {
                // Calico: "should have an operator and a literal", i.e. >= 3 tokens incl. EOF.
                if toks.len() - i < 3 {
                    return Err(err_at(
                        &toks[i + 1],
                        "unexpected end of string looking for op",
                    ));
                }
                let op = &toks[i + 1];
                let arg = &toks[i + 2];
                match op.kind {
                    Kind::Eq | Kind::Ne | Kind::Contains | Kind::StartsWith | Kind::EndsWith => {
                        if arg.kind != Kind::StringLiteral {
                            return Err(err_at(arg, "expected string"));
                        }
                        let (label, v) = (self.s(t0), self.s(arg));
                        let n = match op.kind {
                            Kind::Eq => Node::Eq(label, v),
                            Kind::Ne => Node::Ne(label, v),
                            Kind::Contains => Node::Contains(label, v),
                            Kind::StartsWith => Node::StartsWith(label, v),
                            _ => Node::EndsWith(label, v),
                        };
                        (n, i + 3)
                    }
                    Kind::In | Kind::NotIn => {
                        if arg.kind != Kind::LBrace {
                            return Err(err_at(arg, "expected set literal"));
                        }
                        let mut j = i + 3;
                        let mut vals = Vec::new();
                        while toks[j].kind == Kind::StringLiteral {
                            vals.push(self.s(&toks[j]));
                            j += 1;
                            if toks[j].kind == Kind::Comma {
                                j += 1;
                            } else {
                                break;
                            }
                        }
                        if toks[j].kind != Kind::RBrace {
                            return Err(err_at(&toks[j], "expected }"));
                        }
                        let vals = to_set(vals);
                        let label = self.s(t0);
                        let n = if op.kind == Kind::In {
                            Node::In(label, vals)
                        } else {
                            Node::NotIn(label, vals)
                        };
                        (n, j + 1)
                    }
                    _ => {
                        let mut msg = String::from("expected == or != not: ");
                        op.go_string(self.input, &mut msg);
                        return Err(err_at(op, msg));
                    }
                }
            }
            _ => {
                let mut msg = String::from("unexpected token: ");
                t0.go_string(self.input, &mut msg);
                return Err(err_at(t0, msg));
            }
        })
    }
}

/// Parses `input` into an AST (empty input gives `All`).
pub(crate) fn parse_node(input: &str) -> Result<Node, ParseError> {
    let mut toks = Vec::with_capacity(input.len() / 3 + 2);
    tokenize(input, &mut toks)?;
    if toks[0].kind == Kind::Eof {
        return Ok(Node::All);
    }
    let p = P { input, toks: &toks };
    let (node, rest) = p.parse()?;
    if rest != toks.len() - 1 {
        let mut msg = String::from("unexpected content at end of selector [");
        for (n, t) in toks[rest..].iter().enumerate() {
            if n > 0 {
                msg.push(' ');
            }
            t.go_string(input, &mut msg);
        }
        msg.push(']');
        return Err(err_at(&toks[rest], msg));
    }
    Ok(node)
}
