//! The pipeline's errors: each names the thing that failed and, where sluice knows it, the fix.

use sluice_kafka::{DeliveryError, KafkaError, SendError};

use crate::describe;

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

/// A tokio-postgres error, in words that say what failed and (for server errors the
/// replication layer knows) how to fix it.
pub(crate) fn pg(context: &str, err: &tokio_postgres::Error) -> PipelineError {
    PipelineError::Postgres(format!("{context}: {}", describe::pg(err)))
}

impl From<SendError> for PipelineError {
    fn from(err: SendError) -> Self {
        match err {
            SendError::QueueFull => PipelineError::QueueFull,
            other => PipelineError::Send(other),
        }
    }
}
