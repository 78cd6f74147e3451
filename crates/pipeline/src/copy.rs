//! The snapshot's binary COPY rows as encoder rows. The format itself is read by
//! [`sluice_pgoutput::CopyReader`] (fuzzed, see docs/fuzzing.md).

use bytes::Bytes;
use sluice_avro::{Raw, Row};
use sluice_pgoutput::ColumnValue;

pub(crate) use sluice_pgoutput::CopyFormatError;

/// Collects COPY chunks and hands out complete rows as encoder rows.
#[derive(Debug)]
pub(crate) struct CopyReader(sluice_pgoutput::CopyReader);

/// One row of a binary COPY, as the encoder reads it.
#[derive(Debug)]
pub(crate) struct CopyRow<'a>(&'a sluice_pgoutput::CopyRow<'a>);

impl Row for CopyRow<'_> {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        self.0.values().map(|value| match value {
            ColumnValue::Text(text) => Raw::Text(text),
            ColumnValue::Binary(bytes) => Raw::Binary(bytes),
            _ => Raw::Null,
        })
    }
}

impl CopyReader {
    /// A reader of the columns marked in `text_columns` (true for those selected as `::text`,
    /// whose binary COPY form is their text): their rows give those columns as text.
    pub(crate) fn with_text_columns(text_columns: Vec<bool>) -> Self {
        CopyReader(sluice_pgoutput::CopyReader::with_text_columns(text_columns))
    }

    /// Adds a chunk of the COPY stream.
    pub(crate) fn push(&mut self, chunk: &Bytes) {
        self.0.push(chunk);
    }

    /// Whether the trailer was read.
    pub(crate) fn finished(&self) -> bool {
        self.0.finished()
    }

    /// Calls `each` for every complete row buffered so far; a row `each` fails on is offered
    /// again by the next call.
    pub(crate) fn rows<E>(
        &mut self,
        mut each: impl FnMut(&CopyRow<'_>) -> Result<(), E>,
    ) -> Result<Result<(), E>, CopyFormatError> {
        self.0.rows(|row| each(&CopyRow(row)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sluice_pgoutput::copy::testing::stream;

    #[test]
    fn rows_give_text_columns_as_text_and_the_others_as_binary() {
        let data = stream(&[&[Some(b"\0\0\0\x01"), Some(b"(1,2)"), None]]);
        let mut reader = CopyReader::with_text_columns(vec![false, true, true]);
        reader.push(&Bytes::from(data));
        let mut rows = 0;
        reader
            .rows(|row| {
                let values: Vec<Raw<'_>> = row.values().collect();
                assert_eq!(
                    values,
                    [Raw::Binary(b"\0\0\0\x01"), Raw::Text(b"(1,2)"), Raw::Null]
                );
                rows += 1;
                Ok::<(), ()>(())
            })
            .unwrap()
            .unwrap();
        assert_eq!(rows, 1);
        assert!(reader.finished());
    }
}
