//! Fuzzes the binary COPY reader the snapshot uses (`sluice_pgoutput::CopyReader`). The input
//! is a `FuzzInput`: a chunk size, the selected columns (how many, which as text), then the
//! stream. Besides "no panic", it checks that:
//!
//! - the rows, the error and `finished()` are the same whether the stream arrives in one chunk
//!   or in chunks of the input's size;
//! - a row refused by the callback is offered again, whole and unchanged;
//! - every row has as many fields as columns were selected (when some were), and its text
//!   fields are exactly the columns selected as text.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_pgoutput::copy::testing::FuzzInput;
use sluice_pgoutput::{ColumnValue, CopyFormatError, CopyReader};

/// A row as owned values: None for NULL, (is text, bytes) for the others.
type OwnedRow = Vec<Option<(bool, Vec<u8>)>>;

/// What one reading of the stream gave.
#[derive(Debug, PartialEq, Eq)]
struct Reading {
    rows: Vec<OwnedRow>,
    error: Option<CopyFormatError>,
    finished: bool,
}

fuzz_target!(|data: &[u8]| {
    let Some(input) = FuzzInput::read(data) else {
        return;
    };
    let text_columns = input.text_columns();
    let whole = read(&input, &text_columns, input.stream.len().max(1), false);
    let chunk_size = usize::from(input.chunk_size).max(1);
    let chunked = read(&input, &text_columns, chunk_size, false);
    assert_eq!(whole, chunked, "chunks of {chunk_size}");
    let retried = read(&input, &text_columns, chunk_size, true);
    assert_eq!(whole, retried, "each row refused once");
    for row in &whole.rows {
        if !text_columns.is_empty() {
            assert_eq!(row.len(), text_columns.len());
        }
        for (field, as_text) in row
            .iter()
            .zip(text_columns.iter().chain(std::iter::repeat(&false)))
        {
            if let Some((is_text, _)) = field {
                assert_eq!(is_text, as_text);
            }
        }
    }
});

/// Reads the stream in chunks of `chunk_size`; with `refuse_first`, the callback refuses each
/// row the first time it sees it and reading is resumed.
fn read(
    input: &FuzzInput<'_>,
    text_columns: &[bool],
    chunk_size: usize,
    refuse_first: bool,
) -> Reading {
    let mut reader = CopyReader::with_text_columns(text_columns.to_vec());
    let mut rows = Vec::new();
    let mut refused: Option<OwnedRow> = None;
    for chunk in input.stream.chunks(chunk_size) {
        reader.push(&Bytes::copy_from_slice(chunk));
        loop {
            let outcome = reader.rows(|row| {
                let values: Vec<ColumnValue<'_>> = row.values().collect();
                assert_eq!(values.len(), row.len());
                let owned: OwnedRow = values
                    .iter()
                    .map(|value| match value {
                        ColumnValue::Null => None,
                        ColumnValue::Text(bytes) => Some((true, bytes.to_vec())),
                        ColumnValue::Binary(bytes) => Some((false, bytes.to_vec())),
                        other => panic!("a COPY field read as {other:?}"),
                    })
                    .collect();
                if refuse_first {
                    match refused.take() {
                        None => {
                            refused = Some(owned);
                            return Err(());
                        }
                        Some(previous) => assert_eq!(previous, owned, "a refused row changed"),
                    }
                }
                rows.push(owned);
                Ok(())
            });
            match outcome {
                Ok(Ok(())) => break,
                Ok(Err(())) => continue,
                Err(error) => {
                    let _ = error.to_string();
                    return Reading {
                        rows,
                        error: Some(error),
                        finished: reader.finished(),
                    };
                }
            }
        }
    }
    Reading {
        rows,
        error: None,
        finished: reader.finished(),
    }
}
