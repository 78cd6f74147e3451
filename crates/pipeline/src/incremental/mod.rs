//! Snapshots inside the stream ("incremental"): a table read in chunks by primary-key range
//! while streaming goes on, each chunk produced at a watermark its reader wrote into the WAL
//! after reading it, without the rows whose keys the stream changed meanwhile.
//!
//! ```text
//!  snapshot task (task.rs, chunk.rs)             stream loop (window.rs)
//!  emit watermark "open" ──── WAL ──────────▶    open the table's window
//!                        ◀──── Seen::Opened ──
//!  REPEATABLE READ: the chunk's upper key,
//!  COPY its rows; encode them; keep them
//!  under watermark n; emit watermark n ─ WAL ▶   drop the rows whose keys changed in the
//!                                                window, produce the rest as `r` events on
//!                                                a ticket at n's position; a new window
//!                        ◀──── Seen::Emitted ─   begins
//!  the next chunk                                n's position confirmed: the chunk's upper
//!                                                key recorded in the state topic
//! ```
//!
//! Why the stream's copy of a row wins: a chunk's rows are as of its snapshot S, taken after
//! the loop saw the watermark before it. A change committed before that watermark is in S
//! (and was produced before the chunk), so the chunk's row is at least as new. A change not
//! in S commits after the watermark, so the stream brings it inside the window: the chunk's
//! copy of that key is dropped, and the stream's events are the key's latest. Dropping a row
//! is always safe: its key's latest change was produced. What is left open: a transaction
//! whose commit record precedes a watermark but which the server has not yet made visible
//! when S is taken, after the loop received that watermark (the gap between writing a
//! commit record and showing it is microseconds; the loop's round trip is milliseconds).
//!
//! Watermarks are logical decoding messages (prefix [`WATERMARK_PREFIX`]), each in a
//! transaction of its own: nothing is written to the user's tables and no table of sluice's
//! own is needed. Transactional, because the commit flushes the WAL: a non-transactional
//! message waits for the WAL writer (up to `wal_writer_delay`, 200 ms) before the walsender
//! sends it, which made a chunk take 200 ms whatever its size. Their content names this
//! process's run, so another sluice's (or an earlier run's) are ignored.

mod chunk;
pub(crate) mod task;
mod window;

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

pub(crate) use task::{SnapshotTask, TableJob};
pub(crate) use window::{Incremental, Watermark, Window};

use crate::outputs::TableOut;

/// The prefix of the watermark messages sluice writes into the WAL.
pub const WATERMARK_PREFIX: &str = "sluice-watermark";

/// The prefix of the messages that ask a running sluice to snapshot tables, or to stop
/// (`sluice snapshot`): transactional, so they take effect once committed.
pub const SIGNAL_PREFIX: &str = "sluice-signal";

/// What a signal asks, as JSON: `{"slot": ..., "snapshot": [tables]}` or with `"cancel"`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Signal {
    /// The slot of the sluice it is for: another one on the same database ignores it.
    pub slot: String,
    /// Tables (`schema.table`) to snapshot again from their first row.
    #[serde(default)]
    pub snapshot: Vec<String>,
    /// Tables whose snapshot stops where it is.
    #[serde(default)]
    pub cancel: Vec<String>,
}

/// A chunk read and encoded, waiting for its watermark.
#[derive(Debug)]
pub(crate) struct ChunkRead {
    pub(crate) oid: u32,
    /// The schema ids it was encoded with: if the table's changed meanwhile, it is read again.
    pub(crate) key_id: u32,
    pub(crate) value_id: u32,
    /// Every row's key, one after the other; `rows` says where each ends.
    pub(crate) keys: Vec<u8>,
    pub(crate) values: Vec<u8>,
    /// For each row, where its key and its value end in `keys` and `values`.
    pub(crate) rows: Vec<(usize, usize)>,
    /// The chunk's last key (each column's text), where the next begins after; `None` when
    /// the chunk reached the table's end.
    pub(crate) upper: Option<Vec<String>>,
}

impl ChunkRead {
    /// Each row's key and value.
    pub(crate) fn records(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        let mut at = (0, 0);
        self.rows.iter().map(move |&(key_end, value_end)| {
            let row = (
                self.keys.get(at.0..key_end).unwrap_or_default(),
                self.values.get(at.1..value_end).unwrap_or_default(),
            );
            at = (key_end, value_end);
            row
        })
    }
}

/// What a watermark stands for.
#[derive(Debug)]
pub(crate) enum Mark {
    /// A table's snapshot begins: its window opens.
    Open { oid: u32 },
    /// A chunk was read before it.
    Chunk(ChunkRead),
}

/// Watermarks written and not yet seen by the stream loop, under their sequence number.
#[derive(Debug)]
pub(crate) struct Marks {
    /// This run's identity, in every watermark's content.
    run: u64,
    next: AtomicU64,
    waiting: Mutex<HashMap<u64, Mark>>,
}

impl Marks {
    pub(crate) fn new() -> Self {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        // Distinct between runs and between processes started in the same nanosecond.
        let run = u64::try_from(nanos & u128::from(u64::MAX)).unwrap_or(0)
            ^ (u64::from(std::process::id()) << 32);
        Marks {
            run,
            next: AtomicU64::new(1),
            waiting: Mutex::new(HashMap::new()),
        }
    }

    /// Keeps `mark` until its watermark is seen: the watermark's content.
    pub(crate) fn put(&self, mark: Mark) -> (u64, String) {
        let seq = self.next.fetch_add(1, Relaxed);
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.insert(seq, mark);
        }
        (seq, format!("{}:{seq}", self.run))
    }

    /// The mark a watermark's content names, if it is this run's and still waiting.
    pub(crate) fn take(&self, content: &[u8]) -> Option<(u64, Mark)> {
        let text = std::str::from_utf8(content).ok()?;
        let (run, seq) = text.split_once(':')?;
        if run.parse::<u64>().ok()? != self.run {
            return None;
        }
        let seq = seq.parse::<u64>().ok()?;
        let mark = self.waiting.lock().ok()?.remove(&seq)?;
        Some((seq, mark))
    }
}

/// What the loop tells the snapshot task of a watermark it saw.
#[derive(Debug)]
pub(crate) enum Seen {
    /// The table's window is open; its output as the loop has it now.
    Opened { seq: u64, out: Option<TableOut> },
    /// The chunk's rows were produced (`kept`) or dropped as changed meanwhile.
    Emitted { seq: u64, kept: u64, dropped: u64 },
    /// The table's shape changed since the chunk was read: read it again with `out` (`None`
    /// when the table is no longer captured).
    Stale { seq: u64, out: Option<TableOut> },
}

impl Seen {
    fn seq(&self) -> u64 {
        match self {
            Seen::Opened { seq, .. } | Seen::Emitted { seq, .. } | Seen::Stale { seq, .. } => *seq,
        }
    }
}

/// What the loop asks the snapshot task.
#[derive(Debug)]
pub(crate) enum Request {
    Snapshot(TableJob),
    Cancel(u32),
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn a_watermark_names_its_run_and_is_taken_once() {
        let marks = Marks::new();
        let (seq, content) = marks.put(Mark::Open { oid: 7 });
        let other = Marks::new();
        assert!(other.take(content.as_bytes()).is_none() || other.run == marks.run);
        let (taken, mark) = marks.take(content.as_bytes()).unwrap();
        assert_eq!(taken, seq);
        assert!(matches!(mark, Mark::Open { oid: 7 }));
        assert!(marks.take(content.as_bytes()).is_none(), "taken once");
        assert!(marks.take(b"garbage").is_none());
        assert!(marks.take(b"1:x").is_none());
    }

    #[test]
    fn a_chunk_gives_back_each_row() {
        let chunk = ChunkRead {
            oid: 1,
            key_id: 1,
            value_id: 2,
            keys: b"k1k22".to_vec(),
            values: b"v1v2".to_vec(),
            rows: vec![(2, 2), (5, 4)],
            upper: None,
        };
        let rows: Vec<_> = chunk.records().collect();
        assert_eq!(rows, [(&b"k1"[..], &b"v1"[..]), (&b"k22"[..], &b"v2"[..])]);
    }
}
