//! Arrays (Avro arrays of nullable elements), from PostgreSQL's text output or binary send
//! form.
//!
//! Avro writes a container as a block (`count`, then the items) and a closing 0. The binary
//! forms give the count first; the text forms are parsed into a reused buffer of items,
//! counted, then copied, so both forms give the same bytes.

use crate::binary_form::{self, BinaryReader};
use crate::exact::{Dimension, Inexact};
use crate::formats;
use crate::kind::{ColumnKind, Raw, ScalarKind, ValueError};
use crate::scratch::Scratch;
use crate::writer;

/// PostgreSQL's limit on an array's dimensions (`MAXDIM`).
const MAX_DIMENSIONS: usize = 6;

/// The element at `index`, or NULL, as a union branch of `["null", element]`. An element
/// the element type cannot hold is null (a stand-in in a key), and goes to the exact field.
fn write_element(
    element: ScalarKind,
    index: usize,
    value: Option<Raw<'_>>,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<(), ValueError> {
    match value {
        None => {
            writer::union_index(out, 0);
            Ok(())
        }
        Some(raw) => {
            let start = out.len();
            writer::union_index(out, 1);
            element.encode(raw, out, scratch)?;
            match scratch.exact.took() {
                Inexact::No => {}
                Inexact::StandIn if !scratch.exact.keep_stand_ins => {
                    out.truncate(start);
                    writer::union_index(out, 0);
                    scratch.exact.element(index);
                }
                Inexact::StandIn | Inexact::Lossy => scratch.exact.element(index),
            }
            Ok(())
        }
    }
}

/// An array literal as `array_out` prints it (`{1,2,NULL}`, `{{1,2},{3,4}}`,
/// `[0:1]={1,2}`, `{"a b","q\"x"}`) as an Avro array of its elements in row-major order.
pub(crate) fn encode_text_array(
    kind: ColumnKind,
    element: ScalarKind,
    delimiter: u8,
    raw: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<(), ValueError> {
    let mut items = std::mem::take(&mut scratch.items);
    let mut unescaped = std::mem::take(&mut scratch.element);
    items.clear();
    let mut index = 0;
    let result = for_each_text_element(
        raw,
        delimiter,
        &mut unescaped,
        &|| kind.malformed("text", raw),
        |value| {
            index += 1;
            write_element(
                element,
                index - 1,
                value.map(Raw::Text),
                &mut items,
                scratch,
            )
        },
    );
    if let Ok((count, shape)) = &result {
        writer::block(out, *count, &items);
        scratch.exact.shape(shape.dimensions());
    }
    scratch.items = items;
    scratch.element = unescaped;
    result.map(|_| ())
}

/// Where the text parser is: what may come next.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Expect {
    /// After `{`: an element, a nested `{`, or `}` (an empty array).
    Opened,
    /// After a delimiter: an element or a nested `{`.
    Item,
    /// After an element or a nested `}`: a delimiter or `}`.
    Separator,
}

/// An array's dimensions, as its text or binary form gives them; none for an empty array.
#[derive(Debug, Default)]
pub(crate) struct Shape {
    dimensions: [Dimension; MAX_DIMENSIONS],
    count: usize,
}

impl Shape {
    fn push(&mut self, dimension: Dimension) -> Option<()> {
        *self.dimensions.get_mut(self.count)? = dimension;
        self.count += 1;
        Some(())
    }

    pub(crate) fn dimensions(&self) -> &[Dimension] {
        &self.dimensions[..self.count]
    }
}

/// The bounds PostgreSQL prints before an array whose lower bounds are not all 1:
/// `[0:1][1:2]`, as (lower, length) per dimension.
fn parse_bounds(decoration: &[u8]) -> Option<Shape> {
    let text = std::str::from_utf8(decoration).ok()?;
    let mut shape = Shape::default();
    for bounds in text.strip_prefix('[')?.strip_suffix(']')?.split("][") {
        let (lower, upper) = bounds.split_once(':')?;
        let (lower, upper) = (signed(lower)?, signed(upper)?);
        let length = i32::try_from(i64::from(upper) - i64::from(lower) + 1).ok()?;
        if length < 1 {
            return None;
        }
        shape.push(Dimension { lower, length })?;
    }
    Some(shape)
}

/// An `int4` as PostgreSQL prints it: digits, perhaps after a `-`.
fn signed(text: &str) -> Option<i32> {
    formats::decimal::<u32>(text.strip_prefix('-').unwrap_or(text))?;
    text.parse().ok()
}

/// Calls `each` with every element of an array literal (`None` for NULL), in order, nesting
/// flattened; returns how many, and the array's shape (its bounds from the decoration, 1
/// without one; its lengths from the braces, which must agree). Quoted elements are
/// unescaped into `unescaped`.
fn for_each_text_element(
    text: &[u8],
    delimiter: u8,
    unescaped: &mut Vec<u8>,
    bad: &dyn Fn() -> ValueError,
    mut each: impl FnMut(Option<&[u8]>) -> Result<(), ValueError>,
) -> Result<(usize, Shape), ValueError> {
    let mut at = 0;
    // Bounds other than 1 come first: `[0:1][1:2]=`.
    let mut declared = None;
    if text.first() == Some(&b'[') {
        let equals = text.iter().position(|&b| b == b'=').ok_or_else(bad)?;
        declared = Some(parse_bounds(&text[..equals]).ok_or_else(bad)?);
        at = equals + 1;
    }
    if text.get(at) != Some(&b'{') {
        return Err(bad());
    }
    at += 1;
    let mut depth = 1usize;
    // Per level: the items of the sub-array being read, and the length all of them have.
    let mut items = [0usize; MAX_DIMENSIONS];
    let mut lengths = [None::<usize>; MAX_DIMENSIONS];
    // The level elements are at: all of them at the same one.
    let mut element_depth = None;
    let mut element_at = |depth: usize| match element_depth {
        None => {
            element_depth = Some(depth);
            true
        }
        Some(known) => known == depth,
    };
    let mut expect = Expect::Opened;
    let mut count = 0;
    while depth > 0 {
        let byte = *text.get(at).ok_or_else(bad)?;
        let level = depth - 1;
        match (byte, expect) {
            (b'{', Expect::Opened | Expect::Item) => {
                items[level] += 1;
                depth += 1;
                *items.get_mut(depth - 1).ok_or_else(bad)? = 0;
                at += 1;
                expect = Expect::Opened;
            }
            (b'}', Expect::Opened | Expect::Separator) => {
                match lengths[level] {
                    None => lengths[level] = Some(items[level]),
                    Some(length) if length == items[level] => {}
                    Some(_) => return Err(bad()),
                }
                depth -= 1;
                at += 1;
                expect = Expect::Separator;
            }
            (_, Expect::Separator) if byte == delimiter => {
                at += 1;
                expect = Expect::Item;
            }
            (b'"', Expect::Opened | Expect::Item) => {
                unescaped.clear();
                at += 1;
                loop {
                    match *text.get(at).ok_or_else(bad)? {
                        b'"' => break,
                        b'\\' => {
                            unescaped.push(*text.get(at + 1).ok_or_else(bad)?);
                            at += 2;
                        }
                        other => {
                            unescaped.push(other);
                            at += 1;
                        }
                    }
                }
                at += 1;
                if !element_at(depth) {
                    return Err(bad());
                }
                items[level] += 1;
                each(Some(unescaped))?;
                count += 1;
                expect = Expect::Separator;
            }
            (_, Expect::Opened | Expect::Item) => {
                let length = text[at..]
                    .iter()
                    .position(|&b| b == delimiter || b == b'}')
                    .ok_or_else(bad)?;
                let value = &text[at..at + length];
                if value.is_empty() || value.iter().any(|b| b"{\"\\".contains(b)) {
                    return Err(bad());
                }
                at += length;
                if !element_at(depth) {
                    return Err(bad());
                }
                items[level] += 1;
                each((!value.eq_ignore_ascii_case(b"NULL")).then_some(value))?;
                count += 1;
                expect = Expect::Separator;
            }
            _ => return Err(bad()),
        }
    }
    if at != text.len() {
        return Err(bad());
    }
    // `{}` has no dimensions; otherwise as many as the elements are deep.
    let mut shape = Shape::default();
    for length in lengths.iter().take(element_depth.unwrap_or(0)) {
        let length = length.and_then(|l| i32::try_from(l).ok());
        let length = length.filter(|l| *l > 0).ok_or_else(bad)?;
        shape.push(Dimension { lower: 1, length }).ok_or_else(bad)?;
    }
    if let Some(declared) = declared {
        let agrees = declared.count == shape.count
            && (declared.dimensions().iter())
                .zip(shape.dimensions())
                .all(|(d, s)| d.length == s.length);
        if !agrees {
            return Err(bad());
        }
        shape = declared;
    }
    Ok((count, shape))
}

/// An `int2vector` as `int2vectorout` prints it (`1 -2 3`, empty for none) as an Avro array
/// of int16; `None` if it is not one.
pub(crate) fn int2vector_of_text(text: &[u8], out: &mut Vec<u8>) -> Option<()> {
    if !text.is_empty() {
        let count = text.iter().filter(|&&b| b == b' ').count() + 1;
        writer::long(out, i64::try_from(count).ok()?);
        for element in text.split(|&b| b == b' ') {
            let element = std::str::from_utf8(element).ok()?;
            formats::decimal::<u16>(element.strip_prefix('-').unwrap_or(element))?;
            writer::int(out, i32::from(element.parse::<i16>().ok()?));
        }
    }
    writer::long(out, 0);
    Some(())
}

/// An `int2vector`'s binary form (`int2vectorsend`: an array of one dimension from 0, or
/// none, without NULLs) as an Avro array of int16; `None` if it is not one.
pub(crate) fn int2vector_of_binary(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    let mut reader = BinaryReader::new(raw);
    let (dimensions, has_nulls, _element_type) = (reader.i32()?, reader.i32()?, reader.u32()?);
    if has_nulls != 0 {
        return None;
    }
    let count = match dimensions {
        0 => 0,
        1 => {
            let (length, lower) = (reader.i32()?, reader.i32()?);
            if lower != 0 {
                return None;
            }
            usize::try_from(length).ok()?
        }
        _ => return None,
    };
    // Every element takes its 4-byte length and 2 bytes: a larger count is a lie.
    if count > reader.remaining() / 6 {
        return None;
    }
    if count > 0 {
        writer::long(out, i64::try_from(count).ok()?);
    }
    for _ in 0..count {
        let element: [u8; 2] = binary_form::exact(reader.field()??)?;
        writer::int(out, i32::from(i16::from_be_bytes(element)));
    }
    writer::long(out, 0);
    reader.end()
}

/// An array's binary form (`array_send`): `int32` dimensions, `int32` has-nulls flag,
/// element type OID, then per dimension `int32` length and lower bound, then per element an
/// `int32` length (-1 for NULL) and its binary form.
pub(crate) fn encode_binary_array(
    kind: ColumnKind,
    element: ScalarKind,
    raw: &[u8],
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<(), ValueError> {
    let bad = || kind.malformed("binary", raw);
    let mut reader = BinaryReader::new(raw);
    let dimensions = reader.i32().ok_or_else(bad)?;
    let has_nulls = reader.i32().ok_or_else(bad)?;
    // The element OID: a domain's or the base type's; the column already says how to read.
    reader.u32().ok_or_else(bad)?;
    let dimensions = usize::try_from(dimensions)
        .ok()
        .filter(|d| *d <= MAX_DIMENSIONS)
        .ok_or_else(bad)?;
    if !(0..=1).contains(&has_nulls) {
        return Err(bad());
    }
    let mut count: usize = usize::from(dimensions > 0);
    let mut shape = Shape::default();
    for _ in 0..dimensions {
        let (length, lower) = (reader.i32().ok_or_else(bad)?, reader.i32().ok_or_else(bad)?);
        shape.push(Dimension { lower, length }).ok_or_else(bad)?;
        let length = usize::try_from(length).ok();
        count = length.and_then(|n| count.checked_mul(n)).ok_or_else(bad)?;
    }
    // Every element takes at least its 4-byte length: a larger count is a lie.
    if count > reader.remaining() / 4 {
        return Err(bad());
    }
    if count > 0 {
        writer::long(out, i64::try_from(count).unwrap_or(i64::MAX));
    }
    for index in 0..count {
        let value = reader.field().ok_or_else(bad)?;
        write_element(element, index, value.map(Raw::Binary), out, scratch)?;
    }
    writer::long(out, 0);
    reader.end().ok_or_else(bad)?;
    // An array with no elements is `{}` whatever its header says, as PostgreSQL prints it.
    if count > 0 {
        scratch.exact.shape(shape.dimensions());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn binary(hex: &str) -> Option<Vec<u8>> {
        let bytes: Vec<u8> = (0..hex.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex"))
            .collect();
        let mut out = Vec::new();
        int2vector_of_binary(&bytes, &mut out).map(|()| out)
    }

    #[test]
    fn an_int2vector_binary_form_postgres_never_sends_is_refused() {
        // {1}: one dimension from 0, no NULLs: what int2vectorsend sends.
        assert_eq!(
            binary("0000000100000000000000150000000100000000000000020001"),
            Some(vec![2, 2, 0])
        );
        for (why, hex) in [
            (
                "lower bound 1",
                "0000000100000000000000150000000100000001000000020001",
            ),
            (
                "NULLs",
                "0000000100000001000000150000000100000000000000020001",
            ),
            (
                "two dimensions",
                "00000002000000000000001500000001000000000000000100000000000000020001",
            ),
            (
                "more elements than bytes",
                "0000000100000000000000150000000200000000000000020001",
            ),
            (
                "an element of 4 bytes",
                "00000001000000000000001500000001000000000000000400000001",
            ),
            (
                "trailing bytes",
                "000000010000000000000015000000010000000000000002000100",
            ),
            (
                "a NULL element",
                "0000000100000000000000150000000100000000ffffffff",
            ),
        ] {
            assert_eq!(binary(hex), None, "{why}");
        }
    }
}
