//! PostgreSQL's binary COPY format, parsed row by row out of the chunks a `COPY ... TO STDOUT
//! (FORMAT binary)` delivers. Field values are slices of the buffered chunk: no copy.

use bytes::{Buf, Bytes, BytesMut};
use sluice_avro::{Raw, Row};

const SIGNATURE: &[u8] = b"PGCOPY\n\xff\r\n\0";

/// Why a COPY stream could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("malformed binary COPY data: {0}")]
pub(crate) struct CopyFormatError(&'static str);

/// Collects COPY chunks and hands out complete rows.
#[derive(Debug, Default)]
pub(crate) struct CopyReader {
    buffer: BytesMut,
    header_read: bool,
    finished: bool,
    /// Field positions in the current row, reused from row to row.
    fields: Vec<Option<(usize, usize)>>,
    /// The columns selected as `::text`: their binary COPY form is their text.
    text_columns: Vec<bool>,
}

/// One row of a binary COPY.
#[derive(Debug)]
pub(crate) struct CopyRow<'a> {
    data: &'a [u8],
    fields: &'a [Option<(usize, usize)>],
    text_columns: &'a [bool],
}

impl Row for CopyRow<'_> {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        self.fields
            .iter()
            .enumerate()
            .map(|(i, field)| match field {
                None => Raw::Null,
                Some((start, end)) => {
                    let bytes = self.data.get(*start..*end).unwrap_or_default();
                    if self.text_columns.get(i) == Some(&true) {
                        Raw::Text(bytes)
                    } else {
                        Raw::Binary(bytes)
                    }
                }
            })
    }
}

impl CopyReader {
    /// A reader whose rows give the columns marked in `text_columns` (those selected as
    /// `::text`, whose binary COPY form is their text) as text.
    pub(crate) fn with_text_columns(text_columns: Vec<bool>) -> Self {
        CopyReader {
            text_columns,
            ..CopyReader::default()
        }
    }

    /// Adds a chunk of the COPY stream.
    pub(crate) fn push(&mut self, chunk: &Bytes) {
        self.buffer.extend_from_slice(chunk);
    }

    /// Whether the trailer was read.
    pub(crate) fn finished(&self) -> bool {
        self.finished
    }

    /// Calls `each` for every complete row buffered so far; keeps an incomplete one for the
    /// next chunk.
    pub(crate) fn rows<E>(
        &mut self,
        mut each: impl FnMut(&CopyRow<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, CopyFormatError> {
        if !self.header_read {
            if self.buffer.len() < SIGNATURE.len() + 8 {
                return Ok(Ok(()));
            }
            if &self.buffer[..SIGNATURE.len()] != SIGNATURE {
                return Err(CopyFormatError("no PGCOPY signature"));
            }
            let extension = read_i32(&self.buffer, SIGNATURE.len() + 4)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or(CopyFormatError("bad header extension length"))?;
            let header = SIGNATURE.len() + 8 + extension;
            if self.buffer.len() < header {
                return Ok(Ok(()));
            }
            self.buffer.advance(header);
            self.header_read = true;
        }
        let mut consumed = 0;
        loop {
            let data = &self.buffer[consumed..];
            let Some(count) = read_i16(data, 0) else {
                break;
            };
            if count == -1 {
                self.finished = true;
                consumed += 2;
                break;
            }
            let count =
                usize::try_from(count).map_err(|_| CopyFormatError("negative field count"))?;
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
                if data.len() < at + length {
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
}

fn read_i16(data: &[u8], at: usize) -> Option<i16> {
    Some(i16::from_be_bytes(data.get(at..at + 2)?.try_into().ok()?))
}

fn read_i32(data: &[u8], at: usize) -> Option<i32> {
    Some(i32::from_be_bytes(data.get(at..at + 4)?.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(rows: &[&[Option<&[u8]>]]) -> Vec<u8> {
        let mut out = SIGNATURE.to_vec();
        out.extend_from_slice(&[0; 8]);
        for row in rows {
            out.extend_from_slice(&i16::try_from(row.len()).unwrap().to_be_bytes());
            for field in *row {
                match field {
                    None => out.extend_from_slice(&(-1i32).to_be_bytes()),
                    Some(value) => {
                        out.extend_from_slice(&i32::try_from(value.len()).unwrap().to_be_bytes());
                        out.extend_from_slice(value);
                    }
                }
            }
        }
        out.extend_from_slice(&(-1i16).to_be_bytes());
        out
    }

    #[test]
    fn rows_come_out_whole_whatever_the_chunking() {
        let data = stream(&[
            &[Some(b"\0\0\0\x01"), None],
            &[Some(b"\0\0\0\x02"), Some(b"xy")],
        ]);
        for chunk_size in 1..data.len() {
            let mut reader = CopyReader::default();
            let mut seen: Vec<Vec<Option<Vec<u8>>>> = Vec::new();
            for chunk in data.chunks(chunk_size) {
                reader.push(&Bytes::copy_from_slice(chunk));
                reader
                    .rows(|row| {
                        seen.push(
                            row.values()
                                .map(|raw| match raw {
                                    Raw::Binary(b) => Some(b.to_vec()),
                                    _ => None,
                                })
                                .collect(),
                        );
                        Ok::<(), ()>(())
                    })
                    .unwrap()
                    .unwrap();
            }
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
                let values: Vec<Raw<'_>> = row.values().collect();
                assert_eq!(
                    values,
                    [Raw::Binary(b"\0\0\0\x01"), Raw::Text(b"(1,2)"), Raw::Null]
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
}
