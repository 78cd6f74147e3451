//! The pgoutput decoder: one XLogData payload in, one [`LogicalMessage`] out.

use bytes::Bytes;

use crate::error::{DecodeError, DecodeErrorKind, Layer};
use crate::messages::{
    Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalDecodingMessage, Origin,
    Prepare, Relation, RelationColumn, ReplicaIdentity, RollbackPrepared, StreamAbort,
    StreamCommit, StreamStart, Truncate, TypeMessage, Update,
};
use crate::reader::Reader;
use crate::tuple::OldTuple;
use crate::types::Xid;

/// How the stream was requested, which decides the layout of some messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct DecoderOptions {
    /// The `proto_version` given to START_REPLICATION. Messages introduced in a later
    /// version (streaming in 2, two-phase in 3) are rejected, since receiving them means
    /// the stream and this decoder disagree.
    pub protocol_version: u32,
    /// Whether Stream Abort carries the abort LSN and time: true exactly when
    /// `proto_version` is 4 or more and `streaming` is `parallel`.
    pub streaming_abort_info: bool,
}

impl Default for DecoderOptions {
    /// Protocol version 1, the one every pgoutput speaks.
    fn default() -> Self {
        DecoderOptions {
            protocol_version: 1,
            streaming_abort_info: false,
        }
    }
}

/// One decoded pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LogicalMessage {
    /// 'B'
    Begin(Begin),
    /// 'C'
    Commit(Commit),
    /// 'O'
    Origin(Origin),
    /// 'R'
    Relation(Relation),
    /// 'Y'
    Type(TypeMessage),
    /// 'I'
    Insert(Insert),
    /// 'U'
    Update(Update),
    /// 'D'
    Delete(Delete),
    /// 'T'
    Truncate(Truncate),
    /// 'M'
    Message(LogicalDecodingMessage),
    /// 'S'
    StreamStart(StreamStart),
    /// 'E': the end of a block of streamed changes (it has no fields).
    StreamStop,
    /// 'c'
    StreamCommit(StreamCommit),
    /// 'A'
    StreamAbort(StreamAbort),
    /// 'b'
    BeginPrepare(BeginPrepare),
    /// 'P'
    Prepare(Prepare),
    /// 'K'
    CommitPrepared(CommitPrepared),
    /// 'r'
    RollbackPrepared(RollbackPrepared),
    /// 'p'
    StreamPrepare(Prepare),
}

impl LogicalMessage {
    /// The message's wire tag, for logs and metrics.
    pub fn tag(&self) -> u8 {
        match self {
            LogicalMessage::Begin(_) => b'B',
            LogicalMessage::Commit(_) => b'C',
            LogicalMessage::Origin(_) => b'O',
            LogicalMessage::Relation(_) => b'R',
            LogicalMessage::Type(_) => b'Y',
            LogicalMessage::Insert(_) => b'I',
            LogicalMessage::Update(_) => b'U',
            LogicalMessage::Delete(_) => b'D',
            LogicalMessage::Truncate(_) => b'T',
            LogicalMessage::Message(_) => b'M',
            LogicalMessage::StreamStart(_) => b'S',
            LogicalMessage::StreamStop => b'E',
            LogicalMessage::StreamCommit(_) => b'c',
            LogicalMessage::StreamAbort(_) => b'A',
            LogicalMessage::BeginPrepare(_) => b'b',
            LogicalMessage::Prepare(_) => b'P',
            LogicalMessage::CommitPrepared(_) => b'K',
            LogicalMessage::RollbackPrepared(_) => b'r',
            LogicalMessage::StreamPrepare(_) => b'p',
        }
    }
}

/// The protocol version that introduced a tag (unknown tags pass, to be reported as such).
fn required_version(tag: u8) -> u32 {
    match tag {
        b'S' | b'E' | b'c' | b'A' => 2,
        b'b' | b'P' | b'K' | b'r' | b'p' => 3,
        _ => 1,
    }
}

/// Decodes pgoutput messages in stream order.
///
/// Stateful because the layout depends on history: between Stream Start and Stream Stop,
/// Relation, Type, Insert, Update, Delete, Truncate and Message carry a leading xid. Feed it
/// every message of the replication stream, in order, and only those. A message that fails
/// to decode leaves the state unchanged. The state is not policed: a Stream Start inside a
/// block or a Stream Stop outside one is decoded and simply sets the state, since only the
/// layout of later messages depends on it.
#[derive(Debug, Clone)]
pub struct Decoder {
    options: DecoderOptions,
    in_stream: bool,
}

impl Decoder {
    /// A decoder outside any stream block.
    pub fn new(options: DecoderOptions) -> Self {
        Decoder {
            options,
            in_stream: false,
        }
    }

    /// The options it was made with.
    pub fn options(&self) -> DecoderOptions {
        self.options
    }

    /// Whether the last Stream Start has not yet been followed by a Stream Stop.
    pub fn in_stream(&self) -> bool {
        self.in_stream
    }

    /// Decodes one message: the whole payload of one XLogData, zero-copy.
    pub fn decode(&mut self, data: Bytes) -> Result<LogicalMessage, DecodeError> {
        let (mut r, tag) = Reader::new(data, Layer::Pgoutput)?;
        let required = required_version(tag);
        if self.options.protocol_version < required {
            return Err(r.error(
                0,
                DecodeErrorKind::UnsupportedByProtocolVersion {
                    required,
                    configured: self.options.protocol_version,
                },
            ));
        }
        let message = self.decode_body(&mut r, tag)?;
        r.finish()?;
        match message {
            LogicalMessage::StreamStart(_) => self.in_stream = true,
            LogicalMessage::StreamStop => self.in_stream = false,
            _ => {}
        }
        Ok(message)
    }

    fn streamed_xid(&self, r: &mut Reader) -> Result<Option<Xid>, DecodeError> {
        if self.in_stream {
            r.u32().map(Some)
        } else {
            Ok(None)
        }
    }

    fn decode_body(&self, r: &mut Reader, tag: u8) -> Result<LogicalMessage, DecodeError> {
        Ok(match tag {
            b'B' => LogicalMessage::Begin(Begin {
                final_lsn: r.lsn()?,
                commit_time: r.timestamp()?,
                xid: r.u32()?,
            }),
            b'C' => LogicalMessage::Commit(Commit {
                flags: r.u8()?,
                commit_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                commit_time: r.timestamp()?,
            }),
            b'O' => LogicalMessage::Origin(Origin {
                commit_lsn: r.lsn()?,
                name: r.name()?,
            }),
            b'R' => LogicalMessage::Relation(self.relation(r)?),
            b'Y' => LogicalMessage::Type(TypeMessage {
                xid: self.streamed_xid(r)?,
                type_oid: r.u32()?,
                namespace: r.name()?,
                name: r.name()?,
            }),
            b'I' => {
                let xid = self.streamed_xid(r)?;
                let relation_id = r.u32()?;
                expect_byte(r, b'N', "'N' (new tuple)")?;
                LogicalMessage::Insert(Insert {
                    xid,
                    relation_id,
                    new_tuple: r.tuple()?,
                })
            }
            b'U' => LogicalMessage::Update(self.update(r)?),
            b'D' => {
                let xid = self.streamed_xid(r)?;
                let relation_id = r.u32()?;
                let at = r.position();
                let old_tuple = match r.u8()? {
                    b'K' => OldTuple::Key(r.tuple()?),
                    b'O' => OldTuple::Full(r.tuple()?),
                    found => {
                        return Err(r.error(
                            at,
                            DecodeErrorKind::UnexpectedByte {
                                expected: "'K' (old key) or 'O' (old tuple)",
                                found,
                            },
                        ));
                    }
                };
                LogicalMessage::Delete(Delete {
                    xid,
                    relation_id,
                    old_tuple,
                })
            }
            b'T' => LogicalMessage::Truncate(self.truncate(r)?),
            b'M' => LogicalMessage::Message(LogicalDecodingMessage {
                xid: self.streamed_xid(r)?,
                flags: r.u8()?,
                lsn: r.lsn()?,
                prefix: r.name()?,
                content: {
                    let len = r.length()?;
                    r.bytes(len)?
                },
            }),
            b'S' => LogicalMessage::StreamStart(StreamStart {
                xid: r.u32()?,
                first_segment: r.u8()? == 1,
            }),
            b'E' => LogicalMessage::StreamStop,
            b'c' => LogicalMessage::StreamCommit(StreamCommit {
                xid: r.u32()?,
                flags: r.u8()?,
                commit_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                commit_time: r.timestamp()?,
            }),
            b'A' => LogicalMessage::StreamAbort(StreamAbort {
                xid: r.u32()?,
                subxid: r.u32()?,
                abort_info: if self.options.streaming_abort_info {
                    Some((r.lsn()?, r.timestamp()?))
                } else {
                    None
                },
            }),
            b'b' => LogicalMessage::BeginPrepare(BeginPrepare {
                prepare_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                prepare_time: r.timestamp()?,
                xid: r.u32()?,
                gid: r.name()?,
            }),
            b'P' => LogicalMessage::Prepare(prepare(r)?),
            b'K' => LogicalMessage::CommitPrepared(CommitPrepared {
                flags: r.u8()?,
                commit_lsn: r.lsn()?,
                end_lsn: r.lsn()?,
                commit_time: r.timestamp()?,
                xid: r.u32()?,
                gid: r.name()?,
            }),
            b'r' => LogicalMessage::RollbackPrepared(RollbackPrepared {
                flags: r.u8()?,
                prepare_end_lsn: r.lsn()?,
                rollback_end_lsn: r.lsn()?,
                prepare_time: r.timestamp()?,
                rollback_time: r.timestamp()?,
                xid: r.u32()?,
                gid: r.name()?,
            }),
            b'p' => LogicalMessage::StreamPrepare(prepare(r)?),
            other => return Err(r.error(0, DecodeErrorKind::UnknownTag(other))),
        })
    }

    fn relation(&self, r: &mut Reader) -> Result<Relation, DecodeError> {
        let xid = self.streamed_xid(r)?;
        let relation_id = r.u32()?;
        let namespace = r.name()?;
        let name = r.name()?;
        let at = r.position();
        let identity_byte = r.u8()?;
        let Some(replica_identity) = ReplicaIdentity::from_byte(identity_byte) else {
            return Err(r.error(at, DecodeErrorKind::UnknownReplicaIdentity(identity_byte)));
        };
        let count = r.u16()?;
        // Each column takes at least 10 bytes (flags, NUL, oid, typmod); never reserve for
        // more than the message can hold.
        let mut columns = Vec::with_capacity(usize::from(count).min(r.remaining() / 10));
        for _ in 0..count {
            columns.push(RelationColumn {
                flags: r.u8()?,
                name: r.name()?,
                type_oid: r.u32()?,
                type_modifier: r.i32()?,
            });
        }
        Ok(Relation {
            xid,
            relation_id,
            namespace,
            name,
            replica_identity,
            columns,
        })
    }

    fn update(&self, r: &mut Reader) -> Result<Update, DecodeError> {
        let xid = self.streamed_xid(r)?;
        let relation_id = r.u32()?;
        let mut at = r.position();
        let mut kind = r.u8()?;
        let old_tuple = match kind {
            b'K' => Some(OldTuple::Key(r.tuple()?)),
            b'O' => Some(OldTuple::Full(r.tuple()?)),
            _ => None,
        };
        if old_tuple.is_some() {
            at = r.position();
            kind = r.u8()?;
        }
        if kind != b'N' {
            let expected = if old_tuple.is_some() {
                "'N' (new tuple)"
            } else {
                "'K' (old key), 'O' (old tuple) or 'N' (new tuple)"
            };
            return Err(r.error(
                at,
                DecodeErrorKind::UnexpectedByte {
                    expected,
                    found: kind,
                },
            ));
        }
        Ok(Update {
            xid,
            relation_id,
            old_tuple,
            new_tuple: r.tuple()?,
        })
    }

    fn truncate(&self, r: &mut Reader) -> Result<Truncate, DecodeError> {
        let xid = self.streamed_xid(r)?;
        let count = r.length()?;
        let options = r.u8()?;
        // Check the whole array fits before reserving, so a bogus count cannot make us
        // allocate gigabytes.
        let needed = count.saturating_mul(4);
        let available = r.remaining();
        if needed > available {
            return Err(r.error(
                r.position(),
                DecodeErrorKind::UnexpectedEof { needed, available },
            ));
        }
        let mut relation_ids = Vec::with_capacity(count);
        for _ in 0..count {
            relation_ids.push(r.u32()?);
        }
        Ok(Truncate {
            xid,
            options,
            relation_ids,
        })
    }
}

fn expect_byte(r: &mut Reader, wanted: u8, expected: &'static str) -> Result<(), DecodeError> {
    let at = r.position();
    match r.u8()? {
        found if found == wanted => Ok(()),
        found => Err(r.error(at, DecodeErrorKind::UnexpectedByte { expected, found })),
    }
}

/// Prepare ('P') and Stream Prepare ('p') share one layout.
fn prepare(r: &mut Reader) -> Result<Prepare, DecodeError> {
    Ok(Prepare {
        flags: r.u8()?,
        prepare_lsn: r.lsn()?,
        end_lsn: r.lsn()?,
        prepare_time: r.timestamp()?,
        xid: r.u32()?,
        gid: r.name()?,
    })
}
