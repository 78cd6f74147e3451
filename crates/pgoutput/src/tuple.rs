//! Row data of Insert, Update and Delete, kept as the validated wire bytes so that a row
//! event allocates nothing.

use std::fmt;
use std::iter::FusedIterator;

use bytes::Bytes;

/// The column values of one row, as sent (PostgreSQL's TupleData).
///
/// Validated once when its message is decoded, then read in place: iterating cannot fail
/// and allocates nothing. Columns are in the order of the relation's columns in the most
/// recent [`Relation`](crate::Relation) message for it. Cloning is cheap (a reference
/// count), so a tuple can outlive the message it came in.
#[derive(Clone, PartialEq, Eq)]
pub struct Tuple {
    column_count: u16,
    /// Exactly the column region: every column's kind byte and data, after the count.
    raw: Bytes,
}

impl Tuple {
    /// Only the decoder builds tuples, after checking every column of `raw`.
    pub(crate) fn new(column_count: u16, raw: Bytes) -> Self {
        Tuple { column_count, raw }
    }

    /// Number of columns.
    pub fn len(&self) -> usize {
        usize::from(self.column_count)
    }

    /// Whether the tuple has no columns.
    pub fn is_empty(&self) -> bool {
        self.column_count == 0
    }

    /// The columns in order.
    pub fn iter(&self) -> Columns<'_> {
        Columns {
            rest: &self.raw,
            remaining: self.column_count,
        }
    }

    /// The column at `index`, or `None` past the end. Walks the columns before it, so
    /// prefer [`iter`](Self::iter) to visit them all.
    pub fn get(&self, index: usize) -> Option<ColumnValue<'_>> {
        self.iter().nth(index)
    }

    /// The wire bytes of the columns (everything after the column count), for callers that
    /// keep or forward tuples without looking inside.
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }

    /// A value borrowed from this tuple (from [`ColumnValue::Text`] or
    /// [`ColumnValue::Binary`]) as an owned, zero-copy [`Bytes`], so it can be kept after
    /// the tuple is gone. `None` if `value` does not lie inside this tuple.
    pub fn slice_ref(&self, value: &[u8]) -> Option<Bytes> {
        if value.is_empty() {
            return Some(Bytes::new());
        }
        let base = self.raw.as_ptr().addr();
        let start = value.as_ptr().addr().checked_sub(base)?;
        let end = start.checked_add(value.len())?;
        if end > self.raw.len() {
            return None;
        }
        Some(self.raw.slice(start..end))
    }
}

impl fmt::Debug for Tuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Tuple {
    type Item = ColumnValue<'a>;
    type IntoIter = Columns<'a>;

    fn into_iter(self) -> Columns<'a> {
        self.iter()
    }
}

/// One column of a [`Tuple`].
#[derive(Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ColumnValue<'a> {
    /// SQL NULL.
    Null,
    /// A TOASTed value the update did not change; PostgreSQL does not resend it, so the
    /// consumer must keep the previous value (or report it as unknown).
    UnchangedToast,
    /// The value in the type's text output format (the default).
    Text(&'a [u8]),
    /// The value in the type's binary send format (subscription option `binary = true`).
    Binary(&'a [u8]),
}

impl<'a> ColumnValue<'a> {
    /// The value's bytes, for text and binary values.
    pub fn bytes(&self) -> Option<&'a [u8]> {
        match *self {
            ColumnValue::Text(bytes) | ColumnValue::Binary(bytes) => Some(bytes),
            ColumnValue::Null | ColumnValue::UnchangedToast => None,
        }
    }

    /// Whether the value is SQL NULL.
    pub fn is_null(&self) -> bool {
        matches!(self, ColumnValue::Null)
    }
}

impl fmt::Debug for ColumnValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnValue::Null => f.write_str("Null"),
            ColumnValue::UnchangedToast => f.write_str("UnchangedToast"),
            ColumnValue::Text(bytes) => write!(f, "Text(\"{}\")", bytes.escape_ascii()),
            ColumnValue::Binary(bytes) => write!(f, "Binary(\"{}\")", bytes.escape_ascii()),
        }
    }
}

/// Iterator over the columns of a [`Tuple`].
#[derive(Debug, Clone)]
pub struct Columns<'a> {
    rest: &'a [u8],
    remaining: u16,
}

impl<'a> Columns<'a> {
    /// Reads one column. `None` cannot happen on a tuple the decoder validated; it ends
    /// the iteration rather than panicking should it ever.
    fn read(&mut self) -> Option<ColumnValue<'a>> {
        let (&kind, rest) = self.rest.split_first()?;
        let value = match kind {
            b'n' => {
                self.rest = rest;
                return Some(ColumnValue::Null);
            }
            b'u' => {
                self.rest = rest;
                return Some(ColumnValue::UnchangedToast);
            }
            b't' | b'b' => {
                let (len, rest) = rest.split_first_chunk::<4>()?;
                let len = usize::try_from(i32::from_be_bytes(*len)).ok()?;
                let (value, rest) = rest.split_at_checked(len)?;
                self.rest = rest;
                value
            }
            _ => return None,
        };
        Some(if kind == b't' {
            ColumnValue::Text(value)
        } else {
            ColumnValue::Binary(value)
        })
    }
}

impl<'a> Iterator for Columns<'a> {
    type Item = ColumnValue<'a>;

    fn next(&mut self) -> Option<ColumnValue<'a>> {
        self.remaining = self.remaining.checked_sub(1)?;
        let value = self.read();
        if value.is_none() {
            self.remaining = 0;
        }
        value
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        let n = usize::from(self.remaining);
        (n, Some(n))
    }
}

impl ExactSizeIterator for Columns<'_> {}

impl FusedIterator for Columns<'_> {}

/// The old row of an Update or Delete, and how much of it PostgreSQL sent.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum OldTuple {
    /// 'K': only the replica identity key columns carry values; the others are null.
    Key(Tuple),
    /// 'O': the whole old row (`REPLICA IDENTITY FULL`).
    Full(Tuple),
}

impl OldTuple {
    /// The tuple, whichever kind it is.
    pub fn tuple(&self) -> &Tuple {
        match self {
            OldTuple::Key(tuple) | OldTuple::Full(tuple) => tuple,
        }
    }

    /// Whether only the key columns were sent.
    pub fn is_key(&self) -> bool {
        matches!(self, OldTuple::Key(_))
    }
}
