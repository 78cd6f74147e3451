//! A bounds-checked cursor over one message. Every read checks the remaining length first
//! and reports failures with the message's tag and the offset of the failing field.

use std::fmt;

use bytes::Bytes;

use crate::error::{DecodeError, DecodeErrorKind, Layer};
use crate::tuple::Tuple;
use crate::types::{Lsn, PgTimestamp};

/// A UTF-8 string from the wire, checked once at decode time and kept as a slice of the
/// message.
#[derive(Clone, PartialEq, Eq)]
pub(crate) struct Name(Bytes);

impl Name {
    /// The string. Validated when decoded, so the empty fallback is never taken; it exists
    /// only because `unsafe` (and with it `from_utf8_unchecked`) is forbidden here.
    pub(crate) fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

/// A cursor over one message, positioned after reads.
#[derive(Debug)]
pub(crate) struct Reader {
    buf: Bytes,
    pos: usize,
    tag: u8,
    layer: Layer,
}

impl Reader {
    /// Starts a message: reads its tag byte.
    pub(crate) fn new(buf: Bytes, layer: Layer) -> Result<(Self, u8), DecodeError> {
        let Some(&tag) = buf.first() else {
            return Err(DecodeError::new(layer, None, 0, DecodeErrorKind::Empty));
        };
        Ok((
            Reader {
                buf,
                pos: 1,
                tag,
                layer,
            },
            tag,
        ))
    }

    /// Offset of the next byte to read.
    pub(crate) fn position(&self) -> usize {
        self.pos
    }

    /// Bytes not yet read.
    pub(crate) fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }

    /// An error in this message at `offset`.
    pub(crate) fn error(&self, offset: usize, kind: DecodeErrorKind) -> DecodeError {
        DecodeError::new(self.layer, Some(self.tag), offset, kind)
    }

    /// Checks that `n` more bytes exist and returns the range they occupy.
    fn claim(&self, n: usize) -> Result<(usize, usize), DecodeError> {
        let available = self.remaining();
        match self.pos.checked_add(n) {
            Some(end) if n <= available => Ok((self.pos, end)),
            _ => Err(self.error(
                self.pos,
                DecodeErrorKind::UnexpectedEof {
                    needed: n,
                    available,
                },
            )),
        }
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DecodeError> {
        let (start, end) = self.claim(N)?;
        let array = self
            .buf
            .get(start..end)
            .and_then(|s| <[u8; N]>::try_from(s).ok());
        match array {
            Some(array) => {
                self.pos = end;
                Ok(array)
            }
            None => Err(self.eof(N)),
        }
    }

    /// The error `claim` would give; for the checked-but-impossible branches.
    fn eof(&self, needed: usize) -> DecodeError {
        self.error(
            self.pos,
            DecodeErrorKind::UnexpectedEof {
                needed,
                available: self.remaining(),
            },
        )
    }

    pub(crate) fn u8(&mut self) -> Result<u8, DecodeError> {
        self.array::<1>().map(|[b]| b)
    }

    pub(crate) fn u16(&mut self) -> Result<u16, DecodeError> {
        self.array().map(u16::from_be_bytes)
    }

    pub(crate) fn u32(&mut self) -> Result<u32, DecodeError> {
        self.array().map(u32::from_be_bytes)
    }

    pub(crate) fn i32(&mut self) -> Result<i32, DecodeError> {
        self.array().map(i32::from_be_bytes)
    }

    pub(crate) fn i64(&mut self) -> Result<i64, DecodeError> {
        self.array().map(i64::from_be_bytes)
    }

    pub(crate) fn lsn(&mut self) -> Result<Lsn, DecodeError> {
        self.array().map(u64::from_be_bytes).map(Lsn)
    }

    pub(crate) fn timestamp(&mut self) -> Result<PgTimestamp, DecodeError> {
        self.i64().map(PgTimestamp)
    }

    /// An Int32 length or count; negative values are rejected at the field's offset.
    pub(crate) fn length(&mut self) -> Result<usize, DecodeError> {
        let at = self.pos;
        let raw = self.i32()?;
        usize::try_from(raw).map_err(|_| self.error(at, DecodeErrorKind::NegativeLength(raw)))
    }

    /// The next `n` bytes, zero-copy.
    pub(crate) fn bytes(&mut self, n: usize) -> Result<Bytes, DecodeError> {
        let (start, end) = self.claim(n)?;
        self.pos = end;
        Ok(self.buf.slice(start..end))
    }

    /// Everything left, zero-copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        let start = self.pos.min(self.buf.len());
        self.pos = self.buf.len();
        self.buf.slice(start..)
    }

    /// Checks that `n` more bytes exist and steps over them.
    fn skip(&mut self, n: usize) -> Result<(), DecodeError> {
        let (_, end) = self.claim(n)?;
        self.pos = end;
        Ok(())
    }

    /// A NUL-terminated UTF-8 string.
    pub(crate) fn name(&mut self) -> Result<Name, DecodeError> {
        let start = self.pos;
        let rest = self.buf.get(start..).unwrap_or_default();
        let Some(len) = rest.iter().position(|&b| b == 0) else {
            return Err(self.error(start, DecodeErrorKind::MissingNulTerminator));
        };
        let text = rest.get(..len).unwrap_or_default();
        if let Err(err) = std::str::from_utf8(text) {
            return Err(self.error(
                start.saturating_add(err.valid_up_to()),
                DecodeErrorKind::InvalidUtf8,
            ));
        }
        let (_, end) = self.claim(len)?;
        let name = Name(self.buf.slice(start..end));
        self.pos = end;
        self.skip(1)?;
        Ok(name)
    }

    /// A TupleData: validated column by column, then kept as one slice of the message.
    pub(crate) fn tuple(&mut self) -> Result<Tuple, DecodeError> {
        let column_count = self.u16()?;
        let start = self.pos;
        for _ in 0..column_count {
            let at = self.pos;
            match self.u8()? {
                b'n' | b'u' => {}
                b't' | b'b' => {
                    let len = self.length()?;
                    self.skip(len)?;
                }
                found => {
                    return Err(self.error(
                        at,
                        DecodeErrorKind::UnexpectedByte {
                            expected: "column kind 'n', 'u', 't' or 'b'",
                            found,
                        },
                    ));
                }
            }
        }
        Ok(Tuple::new(column_count, self.buf.slice(start..self.pos)))
    }

    /// Ends the message: anything left over is an error.
    pub(crate) fn finish(&self) -> Result<(), DecodeError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(self.error(self.pos, DecodeErrorKind::TrailingBytes(n))),
        }
    }
}
