//! The geometric types as their output functions print them (`geo_ops.c`), from their
//! binary forms: big-endian `float8` coordinates, each printed as `float8out` does.

use super::OutputError;
use super::float::push_float8;
use crate::binary_form::BinaryReader;

/// Which geometric type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// `(x,y)`.
    Point,
    /// `{A,B,C}`.
    Line,
    /// `[(x1,y1),(x2,y2)]`.
    Lseg,
    /// `(x1,y1),(x2,y2)`: the high corner, then the low one.
    Box,
    /// `[(x,y),...]` open, `((x,y),...)` closed; the binary form leads with the closed flag
    /// and the point count.
    Path,
    /// `((x,y),...)`; the binary form leads with the point count.
    Polygon,
    /// `<(x,y),r>`.
    Circle,
}

impl Shape {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Shape::Point => "point",
            Shape::Line => "line",
            Shape::Lseg => "lseg",
            Shape::Box => "box",
            Shape::Path => "path",
            Shape::Polygon => "polygon",
            Shape::Circle => "circle",
        }
    }

    pub(crate) fn print(self, raw: &[u8], out: &mut String) -> Result<(), OutputError> {
        let bad = OutputError::Malformed(self.name());
        let mut reader = BinaryReader::new(raw);
        match self {
            Shape::Point => point(&mut reader, out).ok_or(bad)?,
            Shape::Line => {
                out.push('{');
                for i in 0..3 {
                    if i > 0 {
                        out.push(',');
                    }
                    push_f64(&mut reader, out).ok_or(bad)?;
                }
                out.push('}');
            }
            Shape::Lseg => points(&mut reader, out, 2, ('[', ']')).ok_or(bad)?,
            Shape::Box => {
                point(&mut reader, out).ok_or(bad)?;
                out.push(',');
                point(&mut reader, out).ok_or(bad)?;
            }
            Shape::Path => {
                let closed = reader.u8().ok_or(bad)? != 0;
                let count = point_count(&mut reader).ok_or(bad)?;
                let brackets = if closed { ('(', ')') } else { ('[', ']') };
                points(&mut reader, out, count, brackets).ok_or(bad)?;
            }
            Shape::Polygon => {
                let count = point_count(&mut reader).ok_or(bad)?;
                points(&mut reader, out, count, ('(', ')')).ok_or(bad)?;
            }
            Shape::Circle => {
                out.push('<');
                point(&mut reader, out).ok_or(bad)?;
                out.push(',');
                push_f64(&mut reader, out).ok_or(bad)?;
                out.push('>');
            }
        }
        reader.end().ok_or(bad)
    }
}

fn push_f64(reader: &mut BinaryReader<'_>, out: &mut String) -> Option<()> {
    push_float8(out, reader.f64()?);
    Some(())
}

/// `(x,y)`.
fn point(reader: &mut BinaryReader<'_>, out: &mut String) -> Option<()> {
    out.push('(');
    push_f64(reader, out)?;
    out.push(',');
    push_f64(reader, out)?;
    out.push(')');
    Some(())
}

/// An `int32` point count, no more than the bytes left can hold (16 bytes a point).
fn point_count(reader: &mut BinaryReader<'_>) -> Option<usize> {
    let count = usize::try_from(reader.i32()?).ok()?;
    (count <= reader.remaining() / 16).then_some(count)
}

/// `count` points between `open` and `close`, comma-separated.
fn points(
    reader: &mut BinaryReader<'_>,
    out: &mut String,
    count: usize,
    (open, close): (char, char),
) -> Option<()> {
    out.push(open);
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        point(reader, out)?;
    }
    out.push(close);
    Some(())
}
