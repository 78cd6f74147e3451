//! Types made of other values (arrays, ranges, multiranges, composites) and the few built-in
//! lists (`int2vector`, `oidvector`, `hstore`), printed as their output functions print
//! them: each element through its own type's output, then quoted by the container's rules.

use super::{Field, Output, OutputError};
use crate::binary_form::BinaryReader;

/// PostgreSQL's limit on an array's dimensions (`MAXDIM`).
const MAX_DIMENSIONS: usize = 6;

/// The whitespace `array_isspace` and `isspace` (in the C locale) see.
fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c)
}

/// How a container quotes an element it printed.
#[derive(Clone, Copy)]
enum Quoting {
    /// `array_out`: quoted when empty, `NULL` in any case, or holding `"`, `\`, `{`, `}`,
    /// the delimiter or whitespace; `"` and `\` escaped with `\`.
    Array { delimiter: u8 },
    /// `record_out`: quoted when empty or holding `"`, `\`, `(`, `)`, `,` or whitespace;
    /// `"` and `\` doubled.
    Record,
    /// `range_bound_escape`: as a record, `[` and `]` also quoted.
    RangeBound,
}

impl Quoting {
    fn needs_quotes(self, text: &[u8]) -> bool {
        if text.is_empty() {
            return true;
        }
        match self {
            Quoting::Array { delimiter } => {
                text.eq_ignore_ascii_case(b"NULL")
                    || text.iter().any(|&b| {
                        b == b'"'
                            || b == b'\\'
                            || b == b'{'
                            || b == b'}'
                            || b == delimiter
                            || is_space(b)
                    })
            }
            Quoting::Record => text.iter().any(|&b| b"\"\\(),".contains(&b) || is_space(b)),
            Quoting::RangeBound => text
                .iter()
                .any(|&b| b"\"\\()[],".contains(&b) || is_space(b)),
        }
    }
}

/// Prints `raw` with `output` at the end of `out`, then quotes what it printed where
/// `quoting` says.
fn print_quoted(
    output: &Output,
    raw: &[u8],
    out: &mut String,
    quoting: Quoting,
) -> Result<(), OutputError> {
    let start = out.len();
    output.print(raw, out)?;
    if !quoting.needs_quotes(&out.as_bytes()[start..]) {
        return Ok(());
    }
    let printed = out.split_off(start);
    out.push('"');
    for c in printed.chars() {
        if c == '"' || c == '\\' {
            out.push(match quoting {
                Quoting::Array { .. } => '\\',
                Quoting::Record | Quoting::RangeBound => c,
            });
        }
        out.push(c);
    }
    out.push('"');
    Ok(())
}

/// An array's header (`array_send`): dimensions, has-nulls flag, element type, then each
/// dimension's length and lower bound; the elements follow.
struct Header {
    element_oid: u32,
    dimensions: Vec<(usize, i32)>,
    count: usize,
}

fn array_header(reader: &mut BinaryReader<'_>, bad: OutputError) -> Result<Header, OutputError> {
    let dimensions = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    let has_nulls = reader.i32().ok_or(bad)?;
    let element_oid = reader.u32().ok_or(bad)?;
    if dimensions > MAX_DIMENSIONS || !(0..=1).contains(&has_nulls) {
        return Err(bad);
    }
    let mut header = Header {
        element_oid,
        dimensions: Vec::with_capacity(dimensions),
        count: usize::from(dimensions > 0),
    };
    for _ in 0..dimensions {
        let length = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
        let lower = reader.i32().ok_or(bad)?;
        header.count = header.count.checked_mul(length).ok_or(bad)?;
        header.dimensions.push((length, lower));
    }
    // Every element takes at least its 4-byte length: a larger count is a lie.
    if header.count > reader.remaining() / 4 {
        return Err(bad);
    }
    Ok(header)
}

/// `array_out`: `{1,2,NULL}`, `{{1,2},{3,4}}`, `[0:1]={a,"b c"}`, `{}`.
pub(super) fn print_array(
    element: &Field,
    delimiter: u8,
    raw: &[u8],
    out: &mut String,
) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("array");
    let mut reader = BinaryReader::new(raw);
    let header = array_header(&mut reader, bad)?;
    element.check(header.element_oid)?;
    if header.count == 0 {
        out.push_str("{}");
        return reader.end().ok_or(bad);
    }
    if header.dimensions.iter().any(|&(_, lower)| lower != 1) {
        for &(length, lower) in &header.dimensions {
            let upper = i64::from(lower) + i64::try_from(length).map_err(|_| bad)? - 1;
            out.push_str(&format!("[{lower}:{upper}]"));
        }
        out.push('=');
    }
    let quoting = Quoting::Array { delimiter };
    let delimiter = char::from(delimiter);
    // Braces open and close as the row-major position crosses each dimension's length.
    let mut position = vec![0usize; header.dimensions.len()];
    for _ in 0..header.dimensions.len() {
        out.push('{');
    }
    for index in 0..header.count {
        if index > 0 {
            // Close the dimensions that just wrapped, separate, and reopen them.
            let mut wrapped = 0;
            for (at, &(length, _)) in header.dimensions.iter().enumerate().rev() {
                position[at] += 1;
                if position[at] < length {
                    break;
                }
                position[at] = 0;
                wrapped += 1;
            }
            for _ in 0..wrapped {
                out.push('}');
            }
            out.push(delimiter);
            for _ in 0..wrapped {
                out.push('{');
            }
        }
        match reader.field().ok_or(bad)? {
            None => out.push_str("NULL"),
            Some(value) => print_quoted(&element.output, value, out, quoting)?,
        }
    }
    for _ in 0..header.dimensions.len() {
        out.push('}');
    }
    reader.end().ok_or(bad)
}

/// `int2vectorout`, `oidvectorout`: the elements of a one-dimensional array (its binary form
/// is `array_send`'s), space-separated.
pub(super) fn print_vector(
    element: &Output,
    raw: &[u8],
    out: &mut String,
) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("vector");
    let mut reader = BinaryReader::new(raw);
    let header = array_header(&mut reader, bad)?;
    if header.dimensions.len() > 1 {
        return Err(bad);
    }
    for index in 0..header.count {
        if index > 0 {
            out.push(' ');
        }
        element.print(reader.field().ok_or(bad)?.ok_or(bad)?, out)?;
    }
    reader.end().ok_or(bad)
}

const RANGE_EMPTY: u8 = 0x01;
const RANGE_LB_INC: u8 = 0x02;
const RANGE_UB_INC: u8 = 0x04;
const RANGE_LB_INF: u8 = 0x08;
const RANGE_UB_INF: u8 = 0x10;
const RANGE_LB_NULL: u8 = 0x20;
const RANGE_UB_NULL: u8 = 0x40;

/// `range_out`: `[1,10)`, `(,5]`, `["2024-01-01 00:00:00+00",infinity)`, `empty`. The binary
/// form is a flags byte, then each present bound as an `int32` length and its subtype's
/// binary form.
pub(super) fn print_range(
    subtype: &Output,
    raw: &[u8],
    out: &mut String,
) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("range");
    let mut reader = BinaryReader::new(raw);
    let flags = reader.u8().ok_or(bad)?;
    if flags & RANGE_EMPTY != 0 {
        out.push_str("empty");
        return reader.end().ok_or(bad);
    }
    out.push(if flags & RANGE_LB_INC != 0 { '[' } else { '(' });
    if flags & (RANGE_LB_INF | RANGE_LB_NULL) == 0 {
        let bound = reader.field().ok_or(bad)?.ok_or(bad)?;
        print_quoted(subtype, bound, out, Quoting::RangeBound)?;
    }
    out.push(',');
    if flags & (RANGE_UB_INF | RANGE_UB_NULL) == 0 {
        let bound = reader.field().ok_or(bad)?.ok_or(bad)?;
        print_quoted(subtype, bound, out, Quoting::RangeBound)?;
    }
    out.push(if flags & RANGE_UB_INC != 0 { ']' } else { ')' });
    reader.end().ok_or(bad)
}

/// `multirange_out`: `{[1,3),[5,7)}`, `{}`. The binary form is an `int32` count, then each
/// range as an `int32` length and its binary form.
pub(super) fn print_multirange(
    subtype: &Output,
    raw: &[u8],
    out: &mut String,
) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("multirange");
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    if count > reader.remaining() / 4 {
        return Err(bad);
    }
    out.push('{');
    for index in 0..count {
        if index > 0 {
            out.push(',');
        }
        print_range(subtype, reader.field().ok_or(bad)?.ok_or(bad)?, out)?;
    }
    out.push('}');
    reader.end().ok_or(bad)
}

/// `record_out`: `(1,"a b",)`, a NULL field printing as nothing. The binary form is an
/// `int32` field count, then per field its type OID, an `int32` length (-1 for NULL) and its
/// binary form.
pub(super) fn print_record(
    fields: &[Field],
    raw: &[u8],
    out: &mut String,
) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("composite");
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    if count != fields.len() {
        return Err(OutputError::TypeChanged);
    }
    out.push('(');
    for (index, field) in fields.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        field.check(reader.u32().ok_or(bad)?)?;
        if let Some(value) = reader.field().ok_or(bad)? {
            print_quoted(&field.output, value, out, Quoting::Record)?;
        }
    }
    out.push(')');
    reader.end().ok_or(bad)
}

/// `hstore_out`: `"a"=>"1", "b"=>NULL`, keys and values in `"` with `"` and `\` escaped by
/// `\`; nothing for no pairs. The binary form is an `int32` count, then per pair the key
/// (`int32` length and text) and the value (the same, -1 for NULL).
pub(super) fn print_hstore(raw: &[u8], out: &mut String) -> Result<(), OutputError> {
    let bad = OutputError::Malformed("hstore");
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32().ok_or(bad)?).map_err(|_| bad)?;
    if count > reader.remaining() / 8 {
        return Err(bad);
    }
    let quoted = |out: &mut String, text: &[u8]| -> Result<(), OutputError> {
        let text = std::str::from_utf8(text).map_err(|_| bad)?;
        out.push('"');
        for c in text.chars() {
            if c == '"' || c == '\\' {
                out.push('\\');
            }
            out.push(c);
        }
        out.push('"');
        Ok(())
    };
    for index in 0..count {
        if index > 0 {
            out.push_str(", ");
        }
        quoted(out, reader.field().ok_or(bad)?.ok_or(bad)?)?;
        out.push_str("=>");
        match reader.field().ok_or(bad)? {
            None => out.push_str("NULL"),
            Some(value) => quoted(out, value)?,
        }
    }
    reader.end().ok_or(bad)
}
