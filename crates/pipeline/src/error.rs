//! The pipeline's errors: each names the thing that failed and, where sluice knows it, the fix.

use sluice_avro::error_chain;
use sluice_kafka::{DeliveryError, KafkaError, SendError};
use sluice_postgres::ServerError;

#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PipelineError {
    #[error(transparent)]
    Catalog(#[from] crate::catalog::CatalogError),
    #[error("PostgreSQL: {0}")]
    Postgres(String),
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
    /// In binary mode, a table's columns whose binary form sluice cannot decode (named with
    /// their types): the stream is started again in text mode.
    #[error("binary values of these columns cannot be decoded: {0}")]
    BinaryUndecodable(String),
}

/// The server's error a tokio-postgres error carries, if it is one: with the remedy sluice
/// knows for it.
pub fn server_error(err: &tokio_postgres::Error) -> Option<ServerError> {
    let db = err.as_db_error()?;
    Some(ServerError::new(
        db.severity().to_owned(),
        db.code().code().to_owned(),
        db.message().to_owned(),
        db.detail().map(str::to_owned),
        db.hint().map(str::to_owned),
    ))
}

/// A tokio-postgres error in words: the server's error whole (SQLSTATE, detail, hint and the
/// fix sluice knows), or the client's error with its causes (a refused connection).
pub fn describe_pg(err: &tokio_postgres::Error) -> String {
    match server_error(err) {
        Some(server) => server.to_string(),
        None => error_chain(err),
    }
}

/// A tokio-postgres error as what was said and, apart, the fix sluice knows: for reports
/// that show the fix in a column of its own.
pub fn pg_failure(err: &tokio_postgres::Error) -> (String, Option<&'static str>) {
    match server_error(err) {
        Some(server) => (server.summary(), server.remedy()),
        None => (error_chain(err), None),
    }
}

/// A tokio-postgres error, in words that say what failed and (for server errors the
/// replication layer knows) how to fix it.
pub(crate) fn pg(context: &str, err: &tokio_postgres::Error) -> PipelineError {
    PipelineError::Postgres(format!("{context}: {}", describe_pg(err)))
}

impl From<SendError> for PipelineError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::QueueFull => PipelineError::QueueFull,
            other => PipelineError::Send(other),
        }
    }
}
