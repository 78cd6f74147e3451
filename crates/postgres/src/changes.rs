//! Committed changes in commit order, whatever way the server sent them.
//!
//! The walsender sends an ordinary transaction as Begin, changes, Commit; a large one with
//! `streaming` on as interleaved Stream Start .. Stream Stop blocks and a final Stream Commit
//! or Stream Abort. [`ChangeStream`] hides the difference: it keeps streamed transactions
//! aside ([`StreamedTransactions`], bounded memory) and yields every committed transaction as
//! `Begin`, its messages, `Commit`, in commit order, and nothing of an aborted one.

use bytes::Bytes;
use sluice_pgoutput::{Decoder, LogicalMessage, Lsn, PgTimestamp, Xid};

use crate::error::Error;
use crate::stream::{ReplicationStream, StreamEvent};
use crate::streamed::{Replay, StreamedStats, StreamedTransactions};

/// How many replayed messages pass between checks that a status update is due, so that a
/// long replay never lets the walsender's timeout run out.
const REPLAY_STATUS_CHECK: u32 = 4096;

/// One step of the committed change stream.
#[derive(Debug)]
#[non_exhaustive]
pub enum Change {
    /// A transaction begins; all its messages follow, then its `Commit`.
    Begin {
        xid: Xid,
        /// The LSN of the commit record.
        commit_lsn: Lsn,
        commit_time: PgTimestamp,
        /// Whether it arrived as a streamed in-progress transaction.
        streamed: bool,
    },
    /// A message of the current transaction (Relation, Type, Insert, Update, Delete, Truncate,
    /// a transactional logical decoding message, Origin), or a non-transactional logical
    /// decoding message between transactions.
    Message(LogicalMessage),
    /// The current transaction committed; once everything of it is durable downstream, the
    /// slot may be confirmed up to `end_lsn`.
    Commit { xid: Xid, end_lsn: Lsn },
    /// A block of a streamed in-progress transaction begins arriving: nothing to emit yet
    /// (it is kept until its Stream Commit), but a sign of progress for metrics.
    StreamBlock { xid: Xid, first_segment: bool },
    /// The server is alive and has sent everything up to `wal_end`.
    Keepalive { wal_end: Lsn },
}

/// Pending end of a replayed streamed transaction.
#[derive(Debug)]
struct Replaying {
    replay: Replay,
    xid: Xid,
    end_lsn: Lsn,
    since_status_check: u32,
}

/// The committed changes of a replication stream.
#[derive(Debug)]
pub struct ChangeStream {
    stream: ReplicationStream,
    decoder: Decoder,
    streamed: StreamedTransactions,
    replaying: Option<Replaying>,
    framing: Framing,
    aborted_streams: u64,
}

/// Where the stream stands between transactions: the walsender sends each ordinary
/// transaction whole, as Begin, its messages, Commit, and streamed blocks only between
/// transactions. Anything else is a protocol error, never skipped: a row change outside a
/// transaction would have no commit to confirm it by.
#[derive(Debug, Default)]
struct Framing {
    /// The ordinary transaction being received: its xid and the LSN of its commit record.
    open: Option<(Xid, Lsn)>,
}

impl Framing {
    /// Checks that `message` may come now (outside a stream block) and follows it.
    fn follow(&mut self, message: &LogicalMessage) -> Result<(), Error> {
        match (message, self.open) {
            (LogicalMessage::Begin(begin), None) => {
                self.open = Some((begin.xid(), begin.final_lsn()));
                Ok(())
            }
            (LogicalMessage::Begin(begin), Some((xid, _))) => Err(Error::protocol(format!(
                "a Begin of transaction {} arrived inside transaction {xid}",
                begin.xid()
            ))),
            (LogicalMessage::Commit(commit), Some((xid, commit_lsn))) => {
                if commit.commit_lsn() != commit_lsn {
                    return Err(Error::protocol(format!(
                        "the Commit of transaction {xid} names commit LSN {}, its Begin {commit_lsn}",
                        commit.commit_lsn()
                    )));
                }
                self.open = None;
                Ok(())
            }
            (LogicalMessage::Commit(commit), None) => Err(Error::protocol(format!(
                "a Commit (commit LSN {}) arrived outside any transaction",
                commit.commit_lsn()
            ))),
            (
                LogicalMessage::Insert(_)
                | LogicalMessage::Update(_)
                | LogicalMessage::Delete(_)
                | LogicalMessage::Truncate(_)
                | LogicalMessage::Origin(_),
                None,
            ) => Err(Error::protocol(format!(
                "a '{}' message arrived outside any transaction",
                char::from(message.tag())
            ))),
            (LogicalMessage::Message(m), None) if m.transactional() => Err(Error::protocol(
                "a transactional logical decoding message arrived outside any transaction",
            )),
            (
                LogicalMessage::StreamStart(_)
                | LogicalMessage::StreamCommit(_)
                | LogicalMessage::StreamAbort(_),
                Some((xid, _)),
            ) => Err(Error::protocol(format!(
                "a streamed transaction's '{}' message arrived inside transaction {xid}",
                char::from(message.tag())
            ))),
            _ => Ok(()),
        }
    }

    /// The xid of the transaction being received.
    fn xid(&self) -> Xid {
        self.open.map_or(0, |(xid, _)| xid)
    }
}

impl ChangeStream {
    pub fn new(stream: ReplicationStream, streamed_memory_budget: usize) -> Self {
        let options = stream.protocol().decoder_options();
        ChangeStream {
            stream,
            decoder: Decoder::new(options),
            streamed: StreamedTransactions::new(options, streamed_memory_budget),
            replaying: None,
            framing: Framing::default(),
            aborted_streams: 0,
        }
    }

    /// The underlying stream, for LSNs and status updates.
    pub fn stream(&mut self) -> &mut ReplicationStream {
        &mut self.stream
    }

    pub fn streamed_stats(&self) -> StreamedStats {
        self.streamed.stats()
    }

    /// How many streamed transactions were aborted and dropped.
    pub fn aborted_streams(&self) -> u64 {
        self.aborted_streams
    }

    /// Ends the stream cleanly (see [`ReplicationStream::finish`]).
    pub async fn finish(self) -> Result<crate::ReplicationConnection, Error> {
        self.stream.finish().await
    }

    /// The next change; `None` when the server ended the stream.
    pub async fn next(&mut self) -> Result<Option<Change>, Error> {
        loop {
            if let Some(replaying) = &mut self.replaying {
                replaying.since_status_check += 1;
                if replaying.since_status_check >= REPLAY_STATUS_CHECK {
                    replaying.since_status_check = 0;
                    if self.stream.status_due() {
                        self.stream.send_status(false).await?;
                    }
                }
                return self.next_replayed().map(Some);
            }
            let Some(event) = self.stream.next().await? else {
                return Ok(None);
            };
            if let Some(change) = self.on_event(event)? {
                return Ok(Some(change));
            }
        }
    }

    /// The next change, reading the socket as needed but never writing: cancel-safe. The
    /// caller sends the status updates, when [`ChangeStream::status_at`] says, so that no
    /// write is ever cut short by a `select!`. `None` when the server ended the stream.
    pub async fn recv(&mut self) -> Result<Option<Change>, Error> {
        loop {
            if let Some(replaying) = &mut self.replaying {
                // The caller's turn of its loop, with its status update, came in between.
                replaying.since_status_check = 0;
                return self.next_replayed().map(Some);
            }
            let Some(event) = self.stream.recv().await? else {
                return Ok(None);
            };
            if let Some(change) = self.on_event(event)? {
                return Ok(Some(change));
            }
        }
    }

    /// When the next status update is due (see [`ReplicationStream::status_at`]).
    pub fn status_at(&self) -> tokio::time::Instant {
        self.stream.status_at()
    }

    /// The next change that needs no waiting and no writing: one from what the socket already
    /// delivered, or from a streamed transaction being replayed. `None` means "call
    /// [`ChangeStream::next`]", not the end of the stream. Lets a caller handle every change a
    /// read brought in one go, instead of one change per wake-up.
    pub fn try_next(&mut self) -> Result<Option<Change>, Error> {
        loop {
            if let Some(replaying) = &mut self.replaying {
                // A status update may be due: that takes a write, so it is left to `next`.
                if replaying.since_status_check + 1 >= REPLAY_STATUS_CHECK {
                    return Ok(None);
                }
                replaying.since_status_check += 1;
                return self.next_replayed().map(Some);
            }
            let Some(event) = self.stream.try_next()? else {
                return Ok(None);
            };
            if let Some(change) = self.on_event(event)? {
                return Ok(Some(change));
            }
        }
    }

    /// See [`ReplicationStream::read_ahead`].
    pub fn read_ahead(&mut self) -> Result<bool, Error> {
        self.stream.read_ahead()
    }

    /// What one message from the server means for the committed change stream: a change, or
    /// nothing yet (a streamed block's message kept aside, a stream abort).
    fn on_event(&mut self, event: StreamEvent) -> Result<Option<Change>, Error> {
        let data = match event {
            StreamEvent::Keepalive(keepalive) => {
                return Ok(Some(Change::Keepalive {
                    wal_end: keepalive.wal_end(),
                }));
            }
            StreamEvent::XLogData(xlog) => xlog.into_data(),
        };
        if self.decoder.in_stream() {
            return self.on_streamed(data);
        }
        let message = self.decoder.decode(data)?;
        let xid = self.framing.xid();
        self.framing.follow(&message)?;
        match message {
            LogicalMessage::Begin(begin) => Ok(Some(Change::Begin {
                xid: begin.xid(),
                commit_lsn: begin.final_lsn(),
                commit_time: begin.commit_time(),
                streamed: false,
            })),
            LogicalMessage::Commit(commit) => Ok(Some(Change::Commit {
                xid,
                end_lsn: commit.end_lsn(),
            })),
            LogicalMessage::StreamStart(start) => {
                self.streamed.start(start.xid());
                Ok(Some(Change::StreamBlock {
                    xid: start.xid(),
                    first_segment: start.first_segment(),
                }))
            }
            LogicalMessage::StreamAbort(abort) => {
                if abort.xid() == abort.subxid() {
                    self.aborted_streams += 1;
                }
                self.streamed.abort(abort.xid(), abort.subxid())?;
                Ok(None)
            }
            LogicalMessage::StreamCommit(commit) => {
                let replay = self.streamed.commit(&commit)?;
                self.replaying = Some(Replaying {
                    replay,
                    xid: commit.xid(),
                    end_lsn: commit.end_lsn(),
                    since_status_check: 0,
                });
                Ok(Some(Change::Begin {
                    xid: commit.xid(),
                    commit_lsn: commit.commit_lsn(),
                    commit_time: commit.commit_time(),
                    streamed: true,
                }))
            }
            LogicalMessage::BeginPrepare(_)
            | LogicalMessage::Prepare(_)
            | LogicalMessage::CommitPrepared(_)
            | LogicalMessage::RollbackPrepared(_)
            | LogicalMessage::StreamPrepare(_) => Err(Error::protocol(
                "two-phase messages arrived, but sluice never asks for two_phase",
            )),
            other => Ok(Some(Change::Message(other))),
        }
    }

    /// A message inside a Stream Start .. Stream Stop block: kept with its transaction, except
    /// what is not part of it.
    fn on_streamed(&mut self, data: Bytes) -> Result<Option<Change>, Error> {
        let message = self.decoder.decode(data.clone())?;
        match &message {
            LogicalMessage::StreamStop => self.streamed.stop(),
            // The origin of a streamed transaction: sluice does not filter by origin.
            LogicalMessage::Origin(_) => {}
            // Not part of the transaction: due now, whatever becomes of it.
            LogicalMessage::Message(m) if !m.transactional() => {
                return Ok(Some(Change::Message(message)));
            }
            other => {
                let xid = streamed_xid(other).ok_or_else(|| {
                    Error::protocol(format!(
                        "message '{}' without xid inside a stream block",
                        char::from(other.tag())
                    ))
                })?;
                self.streamed.keep(xid, &data)?;
            }
        }
        Ok(None)
    }

    /// The next message of the streamed transaction being replayed, or its Commit after the
    /// last one.
    fn next_replayed(&mut self) -> Result<Change, Error> {
        let Some(replaying) = &mut self.replaying else {
            return Err(Error::protocol("no streamed transaction is being replayed"));
        };
        if let Some(message) = replaying.replay.next_message()? {
            return Ok(Change::Message(message));
        }
        let change = Change::Commit {
            xid: replaying.xid,
            end_lsn: replaying.end_lsn,
        };
        self.replaying = None;
        Ok(change)
    }
}

/// The xid a message inside a stream block carries.
fn streamed_xid(message: &LogicalMessage) -> Option<Xid> {
    match message {
        LogicalMessage::Relation(m) => m.xid(),
        LogicalMessage::Type(m) => m.xid(),
        LogicalMessage::Insert(m) => m.xid(),
        LogicalMessage::Update(m) => m.xid(),
        LogicalMessage::Delete(m) => m.xid(),
        LogicalMessage::Truncate(m) => m.xid(),
        LogicalMessage::Message(m) => m.xid(),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use sluice_pgoutput::DecoderOptions;

    fn decode(bytes: Vec<u8>) -> LogicalMessage {
        Decoder::new(DecoderOptions::default())
            .decode(Bytes::from(bytes))
            .unwrap()
    }

    fn begin(xid: u32, final_lsn: u64) -> LogicalMessage {
        let mut bytes = vec![b'B'];
        bytes.extend_from_slice(&final_lsn.to_be_bytes());
        bytes.extend_from_slice(&0i64.to_be_bytes());
        bytes.extend_from_slice(&xid.to_be_bytes());
        decode(bytes)
    }

    fn commit(commit_lsn: u64) -> LogicalMessage {
        let mut bytes = vec![b'C', 0];
        bytes.extend_from_slice(&commit_lsn.to_be_bytes());
        bytes.extend_from_slice(&(commit_lsn + 8).to_be_bytes());
        bytes.extend_from_slice(&0i64.to_be_bytes());
        decode(bytes)
    }

    /// An insert of one NULL column into relation 16384.
    fn insert() -> LogicalMessage {
        let mut bytes = vec![b'I'];
        bytes.extend_from_slice(&16384u32.to_be_bytes());
        bytes.extend_from_slice(&[b'N', 0, 1, b'n']);
        decode(bytes)
    }

    fn message(transactional: bool) -> LogicalMessage {
        let mut bytes = vec![b'M', u8::from(transactional)];
        bytes.extend_from_slice(&100u64.to_be_bytes());
        bytes.extend_from_slice(b"p\0");
        bytes.extend_from_slice(&0u32.to_be_bytes());
        decode(bytes)
    }

    fn error_of(framing: &mut Framing, message: &LogicalMessage) -> String {
        framing.follow(message).unwrap_err().to_string()
    }

    #[test]
    fn a_transaction_in_order_passes() {
        let mut framing = Framing::default();
        for message in [begin(7, 100), insert(), message(true), commit(100)] {
            framing.follow(&message).unwrap();
        }
        // Between transactions: a message that belongs to none.
        framing.follow(&message(false)).unwrap();
        framing.follow(&begin(8, 200)).unwrap();
        assert_eq!(framing.xid(), 8);
    }

    #[test]
    fn a_row_change_outside_a_transaction_is_an_error() {
        let mut framing = Framing::default();
        assert!(error_of(&mut framing, &insert()).contains("outside any transaction"));
        assert!(error_of(&mut framing, &message(true)).contains("outside any transaction"));
    }

    #[test]
    fn a_commit_without_begin_is_an_error() {
        let mut framing = Framing::default();
        assert!(error_of(&mut framing, &commit(100)).contains("outside any transaction"));
    }

    #[test]
    fn a_nested_begin_is_an_error() {
        let mut framing = Framing::default();
        framing.follow(&begin(7, 100)).unwrap();
        assert!(error_of(&mut framing, &begin(8, 200)).contains("inside transaction 7"));
    }

    #[test]
    fn a_commit_of_another_transaction_is_an_error() {
        let mut framing = Framing::default();
        framing.follow(&begin(7, 100)).unwrap();
        assert!(error_of(&mut framing, &commit(150)).contains("names commit LSN"));
    }
}
