//! The fast parser: a port of Calico's recursive-descent `parser.go` over the token stream of
//! [`crate::lexer`], producing the same AST, the same accept/reject set and the same error
//! messages, plus the byte offset of the offending token.

use crate::ast::{grow, to_set, Node};
use crate::lexer::{tokenize, Kind, Token};
use crate::ParseError;

struct P<'a> {
    input: &'a str,
    toks: &'a [Token],
}

fn err_at(t: &Token, msg: impl Into<String>) -> ParseError {
    ParseError::new(t.pos as usize, msg)
}

impl<'a> P<'a> {
    #[inline]
    fn s(&self, t: &Token) -> String {
        t.value(self.input).to_owned()
    }

    fn or_expr(&self, mut i: usize) -> Result<(Node, usize), ParseError> {
        let (first, ni) = self.and_expr(i)?;
        i = ni;
        if self.toks[i].kind != Kind::Or {
            return Ok((first, i));
        }
        let mut ops = vec![first];
        while self.toks[i].kind == Kind::Or {
            let (n, ni) = self.and_expr(i + 1)?;
            ops.push(n);
            i = ni;
        }
        Ok((Node::Or(ops), i))
    }

    fn and_expr(&self, mut i: usize) -> Result<(Node, usize), ParseError> {
        let (first, ni) = self.operation(i)?;
        i = ni;
        if self.toks[i].kind != Kind::And {
            return Ok((first, i));
        }
        let mut ops = vec![first];
        while self.toks[i].kind == Kind::And {
            let (n, ni) = self.operation(i + 1)?;
            ops.push(n);
            i = ni;
        }
        Ok((Node::And(ops), i))
    }

    fn operation(&self, mut i: usize) -> Result<(Node, usize), ParseError> {
        let toks = self.toks;
        let mut negated = false;
        while toks[i].kind == Kind::Not {
            negated = !negated;
            i += 1;
        }
        let t0 = &toks[i];
        let (node, rest) = match t0.kind {
            Kind::Has => (Node::Has(self.s(t0)), i + 1),
            Kind::All => (Node::All, i + 1),
            Kind::Global => (Node::Global, i + 1),
            Kind::Label => {
                // Calico: "should have an operator and a literal", i.e. >= 3 tokens incl. EOF.
                if toks.len() - i < 3 {
                    return Err(err_at(&toks[i + 1], "unexpected end of string looking for op"));
                }
                let op = &toks[i + 1];
                let arg = &toks[i + 2];
                let label = self.s(t0);
                match op.kind {
                    Kind::Eq | Kind::Ne | Kind::Contains | Kind::StartsWith | Kind::EndsWith => {
                        if arg.kind != Kind::StringLiteral {
                            return Err(err_at(arg, "expected string"));
                        }
                        let v = self.s(arg);
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
            Kind::LParen => {
                let (n, j) = grow(|| self.or_expr(i + 1))?;
                if toks[j].kind != Kind::RParen {
                    return Err(err_at(&toks[j], "expected )"));
                }
                (n, j + 1)
            }
            _ => {
                let mut msg = String::from("unexpected token: ");
                t0.go_string(self.input, &mut msg);
                return Err(err_at(t0, msg));
            }
        };
        if negated {
            Ok((Node::Not(Box::new(node)), rest))
        } else {
            Ok((node, rest))
        }
    }
}

/// Parses `input` into an AST (empty input gives `All`).
pub(crate) fn parse_node(input: &str) -> Result<Node, ParseError> {
    let mut toks = Vec::with_capacity(input.len() / 3 + 2);
    tokenize(input, &mut toks)?;
    if toks[0].kind == Kind::Eof {
        return Ok(Node::All);
    }
    let p = P {
        input,
        toks: &toks,
    };
    let (node, rest) = p.or_expr(0)?;
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
