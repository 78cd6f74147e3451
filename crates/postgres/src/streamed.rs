//! Assembles streamed in-progress transactions.
//!
//! With `streaming` on, the walsender sends a large transaction in blocks (Stream Start ..
//! Stream Stop) before it commits, interleaved with other transactions, and then ends it
//! with Stream Commit or Stream Abort. Nothing of it may be emitted before the commit, so
//! each such transaction is kept here, per top-level xid, as the raw pgoutput messages:
//!
//! - in memory while the total over all open transactions stays under a budget; past it the
//!   largest transaction moves to a temporary file and continues there, so memory stays
//!   bounded whatever the transaction's size;
//! - a Stream Abort of the top-level xid drops the transaction; of a subtransaction, it cuts
//!   the transaction back to where that subtransaction's first change was (as PostgreSQL's
//!   own apply worker does: later changes of the stream belong to it or its children);
//! - a Stream Commit hands back a [`Replay`] that decodes the kept messages in order.
//!
//! Records are `[u32 length][u32 xid][message]`, big-endian.

use std::collections::HashMap;
use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};

use bytes::{Buf, Bytes, BytesMut};
use sluice_pgoutput::{DecodeError, Decoder, DecoderOptions, LogicalMessage, StreamCommit, Xid};

/// Default memory budget for all open streamed transactions together.
pub const DEFAULT_MEMORY_BUDGET: usize = 64 * 1024 * 1024;

const RECORD_HEADER: usize = 8;

/// An error while keeping or replaying a streamed transaction.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StreamedError {
    #[error("spilling a streamed transaction to disk failed: {0}")]
    Spill(#[from] io::Error),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error("a streamed change arrived outside Stream Start / Stream Stop")]
    OutsideStream,
    #[error("a streamed change of {0} bytes is too large to keep")]
    TooLarge(usize),
}

/// Where one transaction's records are.
#[derive(Debug)]
enum Storage {
    Memory(BytesMut),
    Spilled { file: BufWriter<File>, len: u64 },
}

#[derive(Debug)]
struct OpenTransaction {
    storage: Storage,
    /// Each subtransaction's first record offset, in order of appearance.
    subtransactions: Vec<(Xid, u64)>,
    changes: u64,
}

impl OpenTransaction {
    fn new() -> Self {
        OpenTransaction {
            storage: Storage::Memory(BytesMut::new()),
            subtransactions: Vec::new(),
            changes: 0,
        }
    }

    fn len(&self) -> u64 {
        match &self.storage {
            Storage::Memory(buf) => u64::try_from(buf.len()).unwrap_or(u64::MAX),
            Storage::Spilled { len, .. } => *len,
        }
    }

    fn memory(&self) -> usize {
        match &self.storage {
            Storage::Memory(buf) => buf.len(),
            Storage::Spilled { .. } => 0,
        }
    }
}

/// Statistics for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StreamedStats {
    pub open_transactions: usize,
    pub memory_bytes: usize,
    pub spilled_transactions: u64,
}

/// The open streamed transactions of one replication stream.
#[derive(Debug)]
pub struct StreamedTransactions {
    open: HashMap<Xid, OpenTransaction>,
    current: Option<Xid>,
    memory_budget: usize,
    memory_used: usize,
    spilled: u64,
    decoder_options: DecoderOptions,
}

impl StreamedTransactions {
    pub fn new(decoder_options: DecoderOptions, memory_budget: usize) -> Self {
        StreamedTransactions {
            open: HashMap::new(),
            current: None,
            memory_budget,
            memory_used: 0,
            spilled: 0,
            decoder_options,
        }
    }

    pub fn stats(&self) -> StreamedStats {
        StreamedStats {
            open_transactions: self.open.len(),
            memory_bytes: self.memory_used,
            spilled_transactions: self.spilled,
        }
    }

    /// A Stream Start: changes until Stream Stop belong to top-level transaction `xid`.
    pub fn start(&mut self, xid: Xid) {
        self.current = Some(xid);
        self.open.entry(xid).or_insert_with(OpenTransaction::new);
    }

    /// A Stream Stop.
    pub fn stop(&mut self) {
        self.current = None;
    }

    /// Keeps one message of the current stream block: `raw` is its pgoutput bytes, `xid`
    /// the (sub)transaction it names.
    pub fn keep(&mut self, xid: Xid, raw: &[u8]) -> Result<(), StreamedError> {
        let top = self.current.ok_or(StreamedError::OutsideStream)?;
        let length = u32::try_from(raw.len()).map_err(|_| StreamedError::TooLarge(raw.len()))?;
        let transaction = self.open.entry(top).or_insert_with(OpenTransaction::new);
        let offset = transaction.len();
        if !transaction.subtransactions.iter().any(|(x, _)| *x == xid) {
            transaction.subtransactions.push((xid, offset));
        }
        transaction.changes += 1;
        match &mut transaction.storage {
            Storage::Memory(buf) => {
                buf.extend_from_slice(&length.to_be_bytes());
                buf.extend_from_slice(&xid.to_be_bytes());
                buf.extend_from_slice(raw);
                self.memory_used += RECORD_HEADER + raw.len();
            }
            Storage::Spilled { file, len } => {
                file.write_all(&length.to_be_bytes())?;
                file.write_all(&xid.to_be_bytes())?;
                file.write_all(raw)?;
                *len += u64::from(length) + 8;
            }
        }
        while self.memory_used > self.memory_budget {
            if !self.spill_largest()? {
                break;
            }
        }
        Ok(())
    }

    /// Moves the largest in-memory transaction to a temporary file.
    fn spill_largest(&mut self) -> Result<bool, StreamedError> {
        let Some((_, transaction)) = self
            .open
            .iter_mut()
            .filter(|(_, t)| t.memory() > 0)
            .max_by_key(|(_, t)| t.memory())
        else {
            return Ok(false);
        };
        let Storage::Memory(buf) = &transaction.storage else {
            return Ok(false);
        };
        let mut file = BufWriter::with_capacity(1 << 20, tempfile()?);
        file.write_all(buf)?;
        let len = u64::try_from(buf.len()).unwrap_or(u64::MAX);
        self.memory_used -= buf.len();
        transaction.storage = Storage::Spilled { file, len };
        self.spilled += 1;
        Ok(true)
    }

    /// A Stream Abort: drops `subxid` and what came after it, or the whole transaction when
    /// `subxid == xid`.
    pub fn abort(&mut self, xid: Xid, subxid: Xid) -> Result<(), StreamedError> {
        if xid == subxid {
            if let Some(transaction) = self.open.remove(&xid) {
                self.memory_used -= transaction.memory();
            }
            return Ok(());
        }
        let Some(transaction) = self.open.get_mut(&xid) else {
            return Ok(());
        };
        let Some(position) = transaction
            .subtransactions
            .iter()
            .position(|(x, _)| *x == subxid)
        else {
            return Ok(());
        };
        let cut = transaction.subtransactions[position].1;
        transaction.subtransactions.truncate(position);
        match &mut transaction.storage {
            Storage::Memory(buf) => {
                let keep = usize::try_from(cut).unwrap_or(buf.len());
                self.memory_used -= buf.len() - keep;
                buf.truncate(keep);
            }
            Storage::Spilled { file, len } => {
                file.flush()?;
                file.get_mut().set_len(cut)?;
                file.seek(SeekFrom::Start(cut))?;
                *len = cut;
            }
        }
        Ok(())
    }

    /// A Stream Commit: hands back the transaction's changes for replay, in order.
    pub fn commit(&mut self, commit: &StreamCommit) -> Result<Replay, StreamedError> {
        let transaction = self
            .open
            .remove(&commit.xid())
            .unwrap_or_else(OpenTransaction::new);
        self.memory_used -= transaction.memory();
        let source = match transaction.storage {
            Storage::Memory(buf) => ReplaySource::Memory(buf.freeze()),
            Storage::Spilled { file, len } => {
                let mut file = file.into_inner().map_err(|e| e.into_error())?;
                file.seek(SeekFrom::Start(0))?;
                ReplaySource::File {
                    reader: BufReader::with_capacity(1 << 20, file),
                    remaining: len,
                }
            }
        };
        // Kept messages carry the streamed xid field; a decoder inside a stream block reads it.
        let mut decoder = Decoder::new(self.decoder_options);
        let mut start = BytesMut::with_capacity(6);
        start.extend_from_slice(b"S");
        start.extend_from_slice(&commit.xid().to_be_bytes());
        start.extend_from_slice(&[1]);
        decoder.decode(start.freeze())?;
        Ok(Replay {
            source,
            decoder,
            changes: transaction.changes,
        })
    }
}

/// The kept changes of a committed streamed transaction, decoded one at a time.
#[derive(Debug)]
pub struct Replay {
    source: ReplaySource,
    decoder: Decoder,
    changes: u64,
}

#[derive(Debug)]
enum ReplaySource {
    Memory(Bytes),
    File {
        reader: BufReader<File>,
        remaining: u64,
    },
}

impl Replay {
    /// How many messages the transaction kept.
    pub fn len(&self) -> u64 {
        self.changes
    }

    pub fn is_empty(&self) -> bool {
        self.changes == 0
    }

    /// The next kept message, or `None` at the end.
    pub fn next_message(&mut self) -> Result<Option<LogicalMessage>, StreamedError> {
        let raw = match &mut self.source {
            ReplaySource::Memory(buf) => {
                if buf.remaining() < RECORD_HEADER {
                    return Ok(None);
                }
                let length = usize::try_from(buf.get_u32()).map_err(|_| corrupt())?;
                let _xid = buf.get_u32();
                if buf.remaining() < length {
                    return Err(corrupt());
                }
                buf.split_to(length)
            }
            ReplaySource::File { reader, remaining } => {
                if *remaining < 8 {
                    return Ok(None);
                }
                let mut header = [0u8; RECORD_HEADER];
                reader.read_exact(&mut header)?;
                let length = u32::from_be_bytes([header[0], header[1], header[2], header[3]]);
                let mut raw = vec![0u8; usize::try_from(length).map_err(|_| corrupt())?];
                reader.read_exact(&mut raw)?;
                *remaining = remaining.saturating_sub(u64::from(length) + 8);
                Bytes::from(raw)
            }
        };
        Ok(Some(self.decoder.decode(raw)?))
    }
}

fn corrupt() -> StreamedError {
    StreamedError::Spill(io::Error::new(
        io::ErrorKind::InvalidData,
        "a kept streamed transaction is corrupt",
    ))
}

/// An anonymous file in the temporary directory, gone when closed.
fn tempfile() -> io::Result<File> {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let dir = std::env::temp_dir();
    let path = dir.join(format!(
        "sluice-stream-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    // Unlinked at once: the data lives as long as the handle, and a crash leaves nothing.
    std::fs::remove_file(&path)?;
    Ok(file)
}

#[cfg(test)]
mod tests {
    use sluice_pgoutput::{ColumnValue, LogicalMessage};

    use super::*;

    const OPTIONS: DecoderOptions = DecoderOptions {
        protocol_version: 2,
        streaming_abort_info: false,
    };

    /// A streamed Insert of one text column into relation 16384.
    fn insert(xid: Xid, value: &str) -> Vec<u8> {
        let mut raw = vec![b'I'];
        raw.extend_from_slice(&xid.to_be_bytes());
        raw.extend_from_slice(&16384u32.to_be_bytes());
        raw.extend_from_slice(b"N\0\x01t");
        raw.extend_from_slice(&u32::try_from(value.len()).unwrap().to_be_bytes());
        raw.extend_from_slice(value.as_bytes());
        raw
    }

    fn stream_commit(xid: Xid) -> StreamCommit {
        let mut raw = vec![b'c'];
        raw.extend_from_slice(&xid.to_be_bytes());
        raw.push(0);
        raw.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 0]);
        raw.extend_from_slice(&[0, 0, 0, 0, 0, 0, 1, 8]);
        raw.extend_from_slice(&[0; 8]);
        match Decoder::new(OPTIONS).decode(Bytes::from(raw)).unwrap() {
            LogicalMessage::StreamCommit(commit) => commit,
            other => panic!("{other:?}"),
        }
    }

    fn replayed_values(mut replay: Replay) -> Vec<String> {
        let mut values = Vec::new();
        while let Some(message) = replay.next_message().unwrap() {
            let LogicalMessage::Insert(insert) = message else {
                panic!("{message:?}")
            };
            let Some(ColumnValue::Text(text)) = insert.new_tuple().get(0) else {
                panic!("a text column")
            };
            values.push(String::from_utf8(text.to_vec()).unwrap());
        }
        values
    }

    #[test]
    fn a_committed_stream_replays_in_order_without_aborted_subtransactions() {
        let mut streamed = StreamedTransactions::new(OPTIONS, DEFAULT_MEMORY_BUDGET);
        streamed.start(100);
        streamed.keep(100, &insert(100, "top")).unwrap();
        streamed.keep(101, &insert(101, "sub-aborted")).unwrap();
        streamed.stop();
        streamed.start(200);
        streamed.keep(200, &insert(200, "other")).unwrap();
        streamed.stop();
        streamed.start(100);
        streamed.keep(101, &insert(101, "sub-aborted-2")).unwrap();
        streamed.stop();
        streamed.abort(100, 101).unwrap();
        streamed.start(100);
        streamed.keep(102, &insert(102, "sub-kept")).unwrap();
        streamed.stop();

        let replay = streamed.commit(&stream_commit(100)).unwrap();
        assert_eq!(replayed_values(replay), ["top", "sub-kept"]);
        assert_eq!(streamed.stats().open_transactions, 1, "200 is still open");
        streamed.abort(200, 200).unwrap();
        assert_eq!(streamed.stats(), StreamedStats::default());
    }

    #[test]
    fn past_the_memory_budget_transactions_spill_to_disk_and_replay_from_there() {
        let mut streamed = StreamedTransactions::new(OPTIONS, 200);
        streamed.start(7);
        let mut expected = Vec::new();
        for i in 0..50 {
            let xid = if (20..30).contains(&i) { 8 } else { 7 };
            let value = format!("row-{i}");
            streamed.keep(xid, &insert(xid, &value)).unwrap();
            if xid == 7 {
                expected.push(value);
            }
            assert!(streamed.stats().memory_bytes <= 200);
        }
        streamed.stop();
        assert_eq!(streamed.stats().spilled_transactions, 1);
        // Rows 20..30 were subtransaction 8; aborting it drops them and, as in PostgreSQL's
        // apply worker, everything the stream sent after its first change.
        streamed.abort(7, 8).unwrap();
        expected.truncate(20);
        streamed.start(7);
        streamed.keep(7, &insert(7, "after")).unwrap();
        streamed.stop();
        expected.push("after".to_owned());

        let replay = streamed.commit(&stream_commit(7)).unwrap();
        assert_eq!(replayed_values(replay), expected);
    }

    #[test]
    fn an_aborted_transaction_yields_nothing() {
        let mut streamed = StreamedTransactions::new(OPTIONS, 100);
        streamed.start(9);
        for i in 0..100 {
            streamed.keep(9, &insert(9, &format!("{i}"))).unwrap();
        }
        streamed.stop();
        streamed.abort(9, 9).unwrap();
        let replay = streamed.commit(&stream_commit(9)).unwrap();
        assert!(replay.is_empty());
        assert!(replayed_values(replay).is_empty());
    }

    #[test]
    fn a_change_outside_a_stream_block_is_an_error() {
        let mut streamed = StreamedTransactions::new(OPTIONS, 100);
        assert!(matches!(
            streamed.keep(1, &insert(1, "x")),
            Err(StreamedError::OutsideStream)
        ));
    }
}
