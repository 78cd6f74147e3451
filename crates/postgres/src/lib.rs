//! sluice's PostgreSQL side: a replication connection written on postgres-protocol (startup,
//! TLS, trust / password / md5 / SCRAM-SHA-256 authentication, the replication commands), the
//! replication stream with its LSN bookkeeping, and the choice of pgoutput protocol by server
//! version.
//!
//! Decoding the bytes is the pure `sluice-pgoutput` crate's job; this crate moves them.

mod changes;
mod config;
mod connection;
mod error;
mod options;
mod stream;
mod streamed;
mod transport;

pub use changes::{Change, ChangeStream};
pub use config::{ConnectConfig, Host, SslMode};
pub use connection::{
    CreatedSlot, IdentifySystem, ReplicationConnection, Row, SESSION_SETTINGS, SnapshotAction,
};
pub use error::{Error, ServerError, ServerErrorKind};
pub use options::{PgOutputOptions, ProtocolChoice, Streaming};
pub use stream::{DEFAULT_STATUS_INTERVAL, ReplicationStream, StreamEvent};
pub use streamed::{
    DEFAULT_MEMORY_BUDGET, Replay, StreamedError, StreamedStats, StreamedTransactions,
};
