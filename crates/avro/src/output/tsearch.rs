//! `tsvector` and `tsquery` as `tsvectorout` and `tsqueryout` print them, from their binary
//! forms (`tsvectorsend`, `tsquerysend`).

use std::fmt::Write as _;

use super::OutputError;
use crate::binary_form::BinaryReader;

/// A lexeme or operand quoted as both output functions quote them: in `'`, with `'` and `\`
/// doubled.
fn push_quoted(out: &mut String, text: &[u8]) -> Result<(), OutputError> {
    let text =
        std::str::from_utf8(text).map_err(|_| OutputError::Malformed("text search lexeme"))?;
    out.push('\'');
    for c in text.chars() {
        if c == '\'' || c == '\\' {
            out.push(c);
        }
        out.push(c);
    }
    out.push('\'');
    Ok(())
}

/// `tsvectorsend`: `int32` lexeme count, then per lexeme its text and a NUL, a `uint16`
/// position count and the positions (`uint16`: weight in the top two bits, the position in
/// the other fourteen). Printed `'a':1A,2 'b'`, weights 3, 2, 1 as A, B, C (0 is D, not
/// shown).
pub(crate) fn print_tsvector(raw: &[u8], out: &mut String) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("tsvector");
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    // Every lexeme takes at least its NUL and its position count.
    if count > reader.remaining() / 3 {
        return Err(bad);
    }
    for i in 0..count {
        if i > 0 {
            out.push(' ');
        }
        push_quoted(out, reader.cstring().ok_or(bad)?)?;
        let positions = reader.u16().ok_or(bad)?;
        for p in 0..positions {
            out.push(if p == 0 { ':' } else { ',' });
            let position = reader.u16().ok_or(bad)?;
            let _ = write!(out, "{}", position & 0x3fff);
            match position >> 14 {
                3 => out.push('A'),
                2 => out.push('B'),
                1 => out.push('C'),
                _ => {}
            }
        }
    }
    reader.end().ok_or(bad)
}

/// A `tsquery` node, in the prefix order `tsquerysend` sends them.
#[derive(Debug, Clone, Copy)]
enum Node<'a> {
    Operand {
        weight: u8,
        prefix: bool,
        text: &'a [u8],
    },
    Not,
    /// `&`, `|` or `<N>` (a phrase, its distance).
    Binary {
        operator: u8,
        distance: i16,
    },
}

const OP_NOT: u8 = 1;
const OP_AND: u8 = 2;
const OP_OR: u8 = 3;
const OP_PHRASE: u8 = 4;

/// Operator priorities (`tsearch_op_priority`): `!` binds tightest, then `<->`, `&`, `|`.
fn priority(node: Node<'_>) -> i32 {
    match node {
        Node::Operand { .. } => 0,
        Node::Not => 4,
        Node::Binary { operator, .. } => match operator {
            OP_AND => 2,
            OP_OR => 1,
            _ => 3,
        },
    }
}

/// What is left to print, innermost last: a node (with its parent's priority, and whether it
/// is a phrase's right operand), or fixed text.
enum Task {
    Node {
        index: usize,
        parent_priority: i32,
        right_of_phrase: bool,
    },
    Text(&'static str),
    Distance(i16),
}

/// `tsquerysend`: `int32` node count, then the nodes in prefix order (an operator before its
/// right operand, which comes before its left one): an operand is `1`, its weight bits, its
/// prefix flag and its NUL-terminated text; an operator `2`, its code and, for a phrase, its
/// `int16` distance. Printed in infix as `tsqueryout` does, with `( ` and ` )` where
/// priorities need them. An empty query prints as nothing.
pub(crate) fn print_tsquery(raw: &[u8], out: &mut String) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("tsquery");
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    // Every node takes at least two bytes.
    if count > reader.remaining() / 2 {
        return Err(bad);
    }
    let mut nodes = Vec::with_capacity(count);
    for _ in 0..count {
        let node = match (reader.u8().ok_or(bad)?, reader.u8().ok_or(bad)?) {
            (1, weight) if weight <= 0xf => Node::Operand {
                weight,
                prefix: reader.u8().ok_or(bad)? != 0,
                text: reader.cstring().ok_or(bad)?,
            },
            (2, OP_NOT) => Node::Not,
            (2, operator @ (OP_AND | OP_OR)) => Node::Binary {
                operator,
                distance: 0,
            },
            (2, OP_PHRASE) => Node::Binary {
                operator: OP_PHRASE,
                distance: reader.i16().ok_or(bad)?,
            },
            _ => return Err(bad),
        };
        nodes.push(node);
    }
    reader.end().ok_or(bad)?;
    if nodes.is_empty() {
        return Ok(());
    }
    // Where each node's subtree ends; an operator's left operand starts where its right
    // operand's subtree ends. Computed back to front, without recursion.
    let mut ends = vec![0usize; count];
    for index in (0..count).rev() {
        let end_of = |at: usize| ends.get(at).copied().filter(|_| at < count);
        ends[index] = match nodes[index] {
            Node::Operand { .. } => index + 1,
            Node::Not => end_of(index + 1).ok_or(bad)?,
            Node::Binary { .. } => end_of(end_of(index + 1).ok_or(bad)?).ok_or(bad)?,
        };
    }
    if ends[0] != count {
        return Err(bad);
    }
    let mut tasks = vec![Task::Node {
        index: 0,
        parent_priority: -1,
        right_of_phrase: false,
    }];
    while let Some(task) = tasks.pop() {
        let (index, parent_priority, right_of_phrase) = match task {
            Task::Text(text) => {
                out.push_str(text);
                continue;
            }
            Task::Distance(distance) => {
                let _ = write!(out, " <{distance}> ");
                continue;
            }
            Task::Node {
                index,
                parent_priority,
                right_of_phrase,
            } => (index, parent_priority, right_of_phrase),
        };
        let node = nodes[index];
        let own = priority(node);
        match node {
            Node::Operand {
                weight,
                prefix,
                text,
            } => {
                push_quoted(out, text)?;
                if weight != 0 || prefix {
                    out.push(':');
                    if prefix {
                        out.push('*');
                    }
                    for (bit, letter) in [(8, 'A'), (4, 'B'), (2, 'C'), (1, 'D')] {
                        if weight & bit != 0 {
                            out.push(letter);
                        }
                    }
                }
            }
            Node::Not => {
                let parenthesised = own < parent_priority;
                if parenthesised {
                    out.push_str("( ");
                    tasks.push(Task::Text(" )"));
                }
                out.push('!');
                tasks.push(Task::Node {
                    index: index + 1,
                    parent_priority: own,
                    right_of_phrase: false,
                });
            }
            Node::Binary { operator, distance } => {
                let parenthesised =
                    own < parent_priority || (operator == OP_PHRASE && right_of_phrase);
                if parenthesised {
                    out.push_str("( ");
                    tasks.push(Task::Text(" )"));
                }
                // Pushed in reverse: left operand, operator, right operand.
                tasks.push(Task::Node {
                    index: index + 1,
                    parent_priority: own,
                    right_of_phrase: operator == OP_PHRASE,
                });
                tasks.push(match (operator, distance) {
                    (OP_AND, _) => Task::Text(" & "),
                    (OP_OR, _) => Task::Text(" | "),
                    (_, 1) => Task::Text(" <-> "),
                    (_, distance) => Task::Distance(distance),
                });
                tasks.push(Task::Node {
                    index: ends[index + 1],
                    parent_priority: own,
                    right_of_phrase: false,
                });
            }
        }
    }
    Ok(())
}
