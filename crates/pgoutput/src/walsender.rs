//! The walsender envelope: what travels in the CopyData messages of a replication
//! connection (CopyBoth mode), around and beside the pgoutput payload.

use bytes::{BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, DecodeErrorKind, Layer};
use crate::reader::Reader;
use crate::types::{Lsn, PgTimestamp};

/// A message from the server on a replication connection.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplicationMessage {
    /// 'w': a piece of the stream (one pgoutput message).
    XLogData(XLogData),
    /// 'k': the server's heartbeat, and its request for a status update.
    PrimaryKeepalive(PrimaryKeepalive),
}

impl ReplicationMessage {
    /// Decodes the payload of one CopyData message, zero-copy.
    pub fn decode(buf: Bytes) -> Result<Self, DecodeError> {
        let (mut r, tag) = Reader::new(buf, Layer::Walsender)?;
        match tag {
            b'w' => Ok(ReplicationMessage::XLogData(XLogData {
                wal_start: r.lsn()?,
                wal_end: r.lsn()?,
                send_time: r.timestamp()?,
                data: r.rest(),
            })),
            b'k' => {
                let keepalive = PrimaryKeepalive {
                    wal_end: r.lsn()?,
                    send_time: r.timestamp()?,
                    reply_requested: r.u8()? != 0,
                };
                r.finish()?;
                Ok(ReplicationMessage::PrimaryKeepalive(keepalive))
            }
            other => Err(r.error(0, DecodeErrorKind::UnknownTag(other))),
        }
    }
}

/// 'w': WAL data; with pgoutput, exactly one pgoutput message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XLogData {
    wal_start: Lsn,
    wal_end: Lsn,
    send_time: PgTimestamp,
    data: Bytes,
}

impl XLogData {
    /// The WAL position of the data's record (0 for some messages, e.g. Stream Stop).
    pub fn wal_start(&self) -> Lsn {
        self.wal_start
    }

    /// The end of WAL on the server when it sent this.
    pub fn wal_end(&self) -> Lsn {
        self.wal_end
    }

    /// The server's clock when it sent this.
    pub fn send_time(&self) -> PgTimestamp {
        self.send_time
    }

    /// The payload: a pgoutput message for [`Decoder::decode`](crate::Decoder::decode).
    pub fn data(&self) -> &Bytes {
        &self.data
    }

    /// The payload, without cloning.
    pub fn into_data(self) -> Bytes {
        self.data
    }
}

/// 'k': the server is alive; it may want a [`StandbyStatusUpdate`] right away.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrimaryKeepalive {
    wal_end: Lsn,
    send_time: PgTimestamp,
    reply_requested: bool,
}

impl PrimaryKeepalive {
    /// The end of WAL on the server.
    pub fn wal_end(&self) -> Lsn {
        self.wal_end
    }

    /// The server's clock when it sent this.
    pub fn send_time(&self) -> PgTimestamp {
        self.send_time
    }

    /// Whether the server asks for a status update now; ignoring it gets the connection
    /// closed after `wal_sender_timeout`.
    pub fn reply_requested(&self) -> bool {
        self.reply_requested
    }
}

/// 'r': the client's progress report; `flushed` is what lets the server discard WAL and
/// what a restart resumes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StandbyStatusUpdate {
    /// Everything up to here was received.
    pub written: Lsn,
    /// Everything up to here is durably handled; the slot's confirmed position.
    pub flushed: Lsn,
    /// Everything up to here was applied.
    pub applied: Lsn,
    /// The client's clock.
    pub client_time: PgTimestamp,
    /// Asks the server to answer with a keepalive at once.
    pub reply_requested: bool,
}

impl StandbyStatusUpdate {
    /// Size of the encoded message.
    pub const ENCODED_LEN: usize = 34;

    /// Appends the message, ready to be sent as the payload of a CopyData.
    pub fn encode(&self, out: &mut BytesMut) {
        out.reserve(Self::ENCODED_LEN);
        out.put_u8(b'r');
        out.put_u64(self.written.0);
        out.put_u64(self.flushed.0);
        out.put_u64(self.applied.0);
        out.put_i64(self.client_time.0);
        out.put_u8(u8::from(self.reply_requested));
    }
}
