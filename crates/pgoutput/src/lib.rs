//! Pure decoding of PostgreSQL logical replication traffic: the walsender envelope
//! (XLogData, primary keepalive, standby status update) and pgoutput messages; and of the
//! binary COPY format the snapshot reads ([`CopyReader`]).
//!
//! No I/O and no async runtime: bytes in, typed messages out. Every length read from the
//! wire is checked and every malformed input is a typed error, never a panic.
//!
//! Decoding is zero-copy: names, tuple data and message contents are slices of the
//! [`Bytes`](bytes::Bytes) handed in, and a row event allocates nothing. A [`Tuple`] is
//! validated once when its message is decoded and then iterated infallibly.
//!
//! ```
//! use bytes::Bytes;
//! use sluice_pgoutput::{ColumnValue, Decoder, DecoderOptions, LogicalMessage};
//!
//! // 'I', relation 16384, 'N', 2 columns: text "42" and NULL.
//! let wire = Bytes::from_static(b"I\0\0\x40\0N\0\x02t\0\0\0\x0242n");
//! let mut decoder = Decoder::new(DecoderOptions { protocol_version: 1, streaming_abort_info: false });
//! let LogicalMessage::Insert(insert) = decoder.decode(wire)? else { unreachable!() };
//! assert_eq!(insert.relation_id(), 16384);
//! let columns: Vec<_> = insert.new_tuple().iter().collect();
//! assert_eq!(columns, [ColumnValue::Text(b"42"), ColumnValue::Null]);
//! # Ok::<(), sluice_pgoutput::DecodeError>(())
//! ```

#![warn(missing_docs)]

pub mod copy;
mod decoder;
mod error;
mod messages;
mod reader;
mod tuple;
mod types;
mod walsender;

pub use copy::{CopyFormatError, CopyReader, CopyRow};
pub use decoder::{Decoder, DecoderOptions, LogicalMessage};
pub use error::{DecodeError, DecodeErrorKind};
pub use messages::{
    Begin, BeginPrepare, Commit, CommitPrepared, Delete, Insert, LogicalDecodingMessage, Origin,
    Prepare, Relation, RelationColumn, ReplicaIdentity, RollbackPrepared, StreamAbort,
    StreamCommit, StreamStart, Truncate, TypeMessage, Update,
};
pub use tuple::{ColumnValue, Columns, OldTuple, Tuple};
pub use types::{Lsn, Oid, ParseLsnError, PgTimestamp, Xid};
pub use walsender::{PrimaryKeepalive, ReplicationMessage, StandbyStatusUpdate, XLogData};
