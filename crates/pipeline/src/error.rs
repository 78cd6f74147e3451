//! The pipeline's errors: each names the thing that failed and, where sluice knows it, the fix.

use std::time::Duration;

use sluice_kafka::{DeliveryError, KafkaError, SendError};

use crate::describe;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
    /// PostgreSQL could not be reached, or ended the connection, or is shutting down or
    /// starting: trying again later may succeed.
    #[error("PostgreSQL unavailable: {0}")]
    PostgresUnavailable(String),
    #[error(transparent)]
    Replication(#[from] sluice_postgres::Error),
    #[error("{0}")]
    Setup(String),
    #[error(transparent)]
    Registry(#[from] sluice_avro::RegistryError),
    #[error("encoding an event: {0}")]
    Encode(#[from] sluice_avro::EncodeError),
    #[error(transparent)]
    Kafka(#[from] KafkaError),
    #[error("the broker refused an event: {0}")]
    Delivery(#[from] DeliveryError),
    #[error("producing an event failed: {0}")]
    Send(SendError),
    /// The producer's queue is full: wait for deliveries, then send again.
    #[error("the producer's queue is full")]
    QueueFull,
    #[error("writing or reading a temporary file: {0}")]
    TempFile(#[from] std::io::Error),
    #[error("internal error: {0}")]
    Internal(String),
    /// Something the stream loop waited for took longer than its bound.
    #[error("{what} took longer than {after:?}")]
    TimedOut { what: &'static str, after: Duration },
    /// In binary mode, a table's columns whose binary form sluice cannot decode (named with
    /// their types): the stream is started again in text mode.
    #[error("binary values of these columns cannot be decoded: {0}")]
    BinaryUndecodable(String),
}

/// A tokio-postgres error, in words that say what failed and (for server errors the
/// replication layer knows) how to fix it.
pub(crate) fn pg(context: &str, err: &tokio_postgres::Error) -> PipelineError {
    let text = format!("{context}: {}", describe::pg(err));
    let unavailable = match err.as_db_error() {
        // Class 08: connection exceptions; 57P01-57P03: shutting down, starting up.
        Some(db) => {
            let code = db.code().code();
            // 57014: cancelled, by statement_timeout or by someone: the query may pass later.
            code.starts_with("08") || matches!(code, "57014" | "57P01" | "57P02" | "57P03")
        }
        // No answer from the server: the connection failed or was lost, unless the server's
        // certificate was refused, which only a configuration change helps.
        None => !tls_refused(err),
    };
    if unavailable {
        PipelineError::PostgresUnavailable(text)
    } else {
        PipelineError::Postgres(text)
    }
}

/// Whether TLS with the server failed for a reason of its own (a certificate refused, no
/// common protocol), not because the connection broke during the handshake.
pub(crate) fn tls_refused(err: &tokio_postgres::Error) -> bool {
    let mut tls = false;
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        if cause.is::<std::io::Error>() {
            return false;
        }
        tls |= cause.is::<native_tls::Error>();
        source = cause.source();
    }
    tls
}

/// The exit code of a transient error: the supervisor may start sluice again (`EX_TEMPFAIL`).
pub const EXIT_TRANSIENT: u8 = 75;

/// The exit code of a definite error: something needs fixing before a new start can succeed.
pub const EXIT_DEFINITE: u8 = 1;

impl PipelineError {
    /// Whether trying again later may succeed (an outage: the database, the broker or the
    /// registry unreachable or restarting), rather than a definite error that needs a fix
    /// (a refused password, a missing table, an incompatible schema, a lost slot). One
    /// classification for the retries of the stream loop and the exit code.
    pub fn is_transient(&self) -> bool {
        match self {
            PipelineError::PostgresUnavailable(_)
            | PipelineError::QueueFull
            | PipelineError::TimedOut { .. } => true,
            PipelineError::Catalog(err) => err.is_transient(),
            PipelineError::Replication(err) => err.is_transient(),
            PipelineError::Registry(err) => err.is_transient(),
            PipelineError::Kafka(err) => err.is_transient(),
            _ => false,
        }
    }

    /// The process exit code this error ends sluice with: [`EXIT_TRANSIENT`] or
    /// [`EXIT_DEFINITE`], so that a supervisor does not restart a misconfiguration in a loop.
    pub fn exit_code(&self) -> u8 {
        if self.is_transient() {
            EXIT_TRANSIENT
        } else {
            EXIT_DEFINITE
        }
    }
}

impl From<SendError> for PipelineError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::QueueFull => PipelineError::QueueFull,
            other => PipelineError::Send(other),
        }
    }
}
