//! PostgreSQL's binary COPY format, parsed row by row out of the chunks a `COPY ... TO STDOUT
//! (FORMAT binary)` delivers. Field values are slices of the buffered chunks: no copy.
//!
//! The format: an 11-byte signature, a 32-bit flags field, a 32-bit header extension length
//! and the extension; then each row as a 16-bit field count and, per field, a 32-bit length
//! (-1 for NULL) and that many bytes; then a field count of -1 as the trailer.

use bytes::{Buf, Bytes, BytesMut};

use crate::tuple::ColumnValue;

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// The header's critical flag bits (16-31): a reader must refuse a stream with one it does not
/// know. Bit 16 (rows carry OIDs) is the only one defined, and sluice's COPY never sets it.
const CRITICAL_FLAGS: u32 = 0xffff_0000;

/// Why a COPY stream could not be read. Says what was wrong, never a value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed binary COPY data: {0}")]
pub struct CopyFormatError(&'static str);

/// Collects COPY chunks and hands out complete rows.
#[derive(Debug, Default)]
pub struct CopyReader {
    buffer: BytesMut,
    header_read: bool,
    finished: bool,
    /// Field positions in the current row, reused from row to row.
    fields: Vec<Option<(usize, usize)>>,
    /// The selected columns, each true when selected as `::text` (its binary COPY form is
    /// then its text). Empty when the reader was made without them: any field count goes.
    text_columns: Vec<bool>,
}

/// One row of a binary COPY.
#[derive(Debug)]
pub struct CopyRow<'a> {
    data: &'a [u8],
    fields: &'a [Option<(usize, usize)>],
    text_columns: &'a [bool],
}

impl CopyRow<'_> {
    /// The row's fields in order: [`ColumnValue::Null`], [`ColumnValue::Text`] for columns
    /// selected as text, [`ColumnValue::Binary`] for the others.
    pub fn values(&self) -> impl Iterator<Item = ColumnValue<'_>> {
        self.fields
            .iter()
            .enumerate()
            .map(|(i, field)| match field {
                None => ColumnValue::Null,
                Some((start, end)) => {
                    let bytes = self.data.get(*start..*end).unwrap_or_default();
                    if self.text_columns.get(i) == Some(&true) {
                        ColumnValue::Text(bytes)
                    } else {
                        ColumnValue::Binary(bytes)
                    }
                }
            })
    }

    /// The number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether the row has no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }
}

impl CopyReader {
    /// A reader for a COPY of the columns in `text_columns`, each true when selected as
    /// `::text`: its rows give those columns as text, and a row with another number of fields
    /// is an error.
    pub fn with_text_columns(text_columns: Vec<bool>) -> Self {
        CopyReader {
            text_columns,
            ..CopyReader::default()
        }
    }

    /// Adds a chunk of the COPY stream.
    pub fn push(&mut self, chunk: &Bytes) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether the trailer was read.
    pub fn finished(&self) -> bool {
        self.finished
    }

    /// Calls `each` for every complete row buffered so far; keeps an incomplete one for the
    /// next chunk. A row that `each` fails on stays buffered: the next call offers it again
    /// (the snapshot retries a row the producer's full queue refused).
    pub fn rows<E>(
        &mut self,
        mut each: impl FnMut(&CopyRow<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, CopyFormatError> {
        if !self.header_read && !self.read_header()? {
            return Ok(Ok(()));
        }
        let mut consumed = 0;
        loop {
            let data = &self.buffer[consumed..];
            if self.finished {
                if !data.is_empty() {
                    return Err(CopyFormatError("data after the trailer"));
                }
                break;
            }
            let Some(count) = read_i16(data, 0) else {
                break;
            };
            if count == -1 {
                self.finished = true;
                consumed += 2;
                continue;
            }
            let count =
                usize::try_from(count).map_err(|_| CopyFormatError("negative field count"))?;
            if !self.text_columns.is_empty() && count != self.text_columns.len() {
                return Err(CopyFormatError(
                    "a row's field count differs from the number of columns selected",
                ));
            }
            self.fields.clear();
            let mut at = 2;
            let mut complete = true;
            for _ in 0..count {
                let Some(length) = read_i32(data, at) else {
                    complete = false;
                    break;
                };
                at += 4;
                if length == -1 {
                    self.fields.push(None);
                    continue;
                }
                let length = usize::try_from(length)
                    .map_err(|_| CopyFormatError("negative field length"))?;
                if data.len() - at < length {
                    complete = false;
                    break;
                }
                self.fields.push(Some((at, at + length)));
                at += length;
            }
            if !complete {
                break;
            }
            let row = CopyRow {
                data: &data[..at],
                fields: &self.fields,
                text_columns: &self.text_columns,
            };
            if let Err(err) = each(&row) {
                self.buffer.advance(consumed);
                return Ok(Err(err));
            }
            consumed += at;
        }
        self.buffer.advance(consumed);
        Ok(Ok(()))
    }

    /// Reads and checks the header once it is buffered whole; false while it is not.
    fn read_header(&mut self) -> Result<bool, CopyFormatError> {
        let fixed = SIGNATURE.len() + 8;
        if self.buffer.len() < SIGNATURE.len() {
            return Ok(false);
        }
        if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
            return Err(CopyFormatError("no PGCOPY signature"));
        }
        let (Some(flags), Some(extension)) = (
            read_i32(&self.buffer, SIGNATURE.len()),
            read_i32(&self.buffer, SIGNATURE.len() + 4),
        ) else {
            return Ok(false);
        };
        if flags.cast_unsigned() & CRITICAL_FLAGS != 0 {
            return Err(CopyFormatError("unknown critical flags in the header"));
        }
        let extension = usize::try_from(extension)
            .map_err(|_| CopyFormatError("bad header extension length"))?;
        if self.buffer.len() - fixed < extension {
            return Ok(false);
        }
        self.buffer.advance(fixed + extension);
        self.header_read = true;
        Ok(true)
    }
}

fn read_i16(data: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(
        data.get(at..at.checked_add(2)?)?.try_into().ok()?,
    ))
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(
        data.get(at..at.checked_add(4)?)?.try_into().ok()?,
    ))
}

/// Binary COPY streams for tests, and the input of the `copy` fuzz target
/// (fuzz/fuzz_targets/copy.rs).
#[doc(hidden)]
pub mod testing {
    use super::SIGNATURE;

    /// A whole stream of `rows` (None for NULL), with an empty header extension and the
    /// trailer.
    pub fn stream(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = header(0, b"");
        for row in rows {
            out.extend_from_slice(&i16::try_from(row.len()).unwrap_or(i16::MAX).to_be_bytes());
            for field in *row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(value) => {
                        let length = i32::try_from(value.len()).unwrap_or(i32::MAX);
                        out.extend_from_slice(&length.to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    /// A header with these flags and extension.
    pub fn header(flags: u32, extension: &[u8]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&flags.to_be_bytes());
        let length = i32::try_from(extension.len()).unwrap_or(i32::MAX);
        out.extend_from_slice(&length.to_be_bytes());
        out.extend_from_slice(extension);
        out
    }

    /// One input of the `copy` fuzz target: a byte for the chunk size (0: the stream in one
    /// chunk), a byte for the selected columns (low 4 bits: how many, 0 for a reader that takes
    /// any count; high 4 bits: which of each 4 are text), then the stream.
    #[derive(Debug, Clone, PartialEq, Eq)]
    pub struct FuzzInput<'a> {
        pub chunk_size: u8,
        pub columns: u8,
        pub stream: &'a [u8],
    }

    impl<'a> FuzzInput<'a> {
        /// Reads an input; None for one shorter than its two leading bytes.
        pub fn read(input: &'a [u8]) -> Option<Self> {
            let [chunk_size, columns, stream @ ..] = input else {
                return None;
            };
            Some(FuzzInput {
                chunk_size: *chunk_size,
                columns: *columns,
                stream,
            })
        }

        /// The input [`FuzzInput::read`] reads as this one.
        pub fn write(&self) -> Vec<u8> {
            let mut out = vec![self.chunk_size, self.columns];
            out.extend_from_slice(self.stream);
            out
        }

        /// The reader's `text_columns` (empty: any field count).
        pub fn text_columns(&self) -> Vec<bool> {
            let pattern = self.columns >> 4;
            (0..self.columns & 0x0f)
                .map(|i| pattern >> (i % 4) & 1 == 1)
                .collect()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::{header, stream};
    use super::*;

    /// Every row the reader gives for `data` fed in chunks of `chunk_size`, as owned values
    /// (None for NULL), and whether the trailer was read.
    fn read(reader: &mut CopyReader, data: &[u8], chunk_size: usize) -> Vec<Vec<Option<Vec<u8>>>> {
        let mut seen = Vec::new();
        for chunk in data.chunks(chunk_size) {
            reader.push(&Bytes::copy_from_slice(chunk));
            reader
                .rows(|row| {
                    seen.push(
                        row.values()
                            .map(|v| v.bytes().map(<[u8]>::to_vec))
                            .collect(),
                    );
                    Ok::<(), ()>(())
                })
                .unwrap()
                .unwrap();
        }
        seen
    }

    #[test]
    fn rows_come_out_whole_whatever_the_chunking() {
        let data = stream(&[
            &[Some(b"\0\0\0\x01"), None],
            &[Some(b"\0\0\0\x02"), Some(b"xy")],
        ]);
        for chunk_size in 1..data.len() {
            let mut reader = CopyReader::default();
            let seen = read(&mut reader, &data, chunk_size);
            assert!(reader.finished());
            assert_eq!(
                seen,
                vec![
                    vec![Some(b"\0\0\0\x01".to_vec()), None],
                    vec![Some(b"\0\0\0\x02".to_vec()), Some(b"xy".to_vec())],
                ],
                "chunks of {chunk_size}"
            );
        }
    }

    #[test]
    fn columns_read_as_text_come_out_as_text() {
        let data = stream(&[&[Some(b"\0\0\0\x01"), Some(b"(1,2)"), None]]);
        let mut reader = CopyReader::with_text_columns(vec![false, true, true]);
        reader.push(&Bytes::from(data));
        reader
            .rows(|row| {
                let values: Vec<ColumnValue<'_>> = row.values().collect();
                assert_eq!(
                    values,
                    [
                        ColumnValue::Binary(b"\0\0\0\x01"),
                        ColumnValue::Text(b"(1,2)"),
                        ColumnValue::Null
                    ]
                );
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        let mut reader = CopyReader::default();
        reader.push(&Bytes::from_static(b"NOTCOPY\n\xff\r\n\0\0\0\0\0\0\0\0\0"));
        assert!(reader.rows(|_| Ok::<(), ()>(())).is_err());
        let mut data = stream(&[]);
        data.truncate(data.len() - 2);
        data.extend_from_slice(&[0, 1, 0x80, 0, 0, 0]);
        let mut reader = CopyReader::default();
        reader.push(&Bytes::from(data));
        assert!(reader.rows(|_| Ok::<(), ()>(())).is_err());
    }

    #[test]
    fn a_header_extension_is_skipped_and_critical_flags_refused() {
        let mut data = header(0x0000_0001, b"ext");
        data.extend_from_slice(&stream(&[&[Some(b"a")]])[SIGNATURE.len() + 8..]);
        for chunk_size in 1..data.len() {
            let mut reader = CopyReader::default();
            assert_eq!(
                read(&mut reader, &data, chunk_size),
                vec![vec![Some(b"a".to_vec())]]
            );
            assert!(reader.finished());
        }
        let mut reader = CopyReader::default();
        reader.push(&Bytes::from(header(1 << 16, b"")));
        assert_eq!(
            reader.rows(|_| Ok::<(), ()>(())),
            Err(CopyFormatError("unknown critical flags in the header"))
        );
    }

    #[test]
    fn data_after_the_trailer_is_an_error() {
        let mut data = stream(&[&[Some(b"a")]]);
        data.extend_from_slice(&stream(&[&[Some(b"a")]])[SIGNATURE.len() + 8..]);
        let mut reader = CopyReader::default();
        reader.push(&Bytes::from(data));
        let mut rows = 0;
        assert_eq!(
            reader.rows(|_| {
                rows += 1;
                Ok::<(), ()>(())
            }),
            Err(CopyFormatError("data after the trailer"))
        );
        assert_eq!(rows, 1);
    }

    #[test]
    fn a_row_with_other_than_the_selected_columns_is_an_error() {
        for fields in [&[Some(&b"a"[..])][..], &[Some(b"a"), None, None]] {
            let mut reader = CopyReader::with_text_columns(vec![false, false]);
            reader.push(&Bytes::from(stream(&[fields])));
            assert!(reader.rows(|_| Ok::<(), ()>(())).is_err());
        }
    }

    #[test]
    fn a_failing_row_is_offered_again() {
        let data = stream(&[&[Some(b"1")], &[Some(b"2")]]);
        let mut reader = CopyReader::default();
        reader.push(&Bytes::from(data));
        let mut seen = Vec::new();
        let mut fail_once = true;
        loop {
            let outcome = reader
                .rows(|row| {
                    let value = row
                        .values()
                        .next()
                        .and_then(|v| v.bytes())
                        .unwrap()
                        .to_vec();
                    if std::mem::take(&mut fail_once) {
                        return Err(value);
                    }
                    seen.push(value);
                    Ok(())
                })
                .unwrap();
            if outcome.is_ok() {
                break;
            }
        }
        assert_eq!(seen, [b"1".to_vec(), b"2".to_vec()]);
    }
}
