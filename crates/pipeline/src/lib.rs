//! sluice's pipeline: configuration, the choice of tables, publication and slot, a consistent
//! snapshot, then the stream, every event Avro-encoded and produced to Kafka, and the slot
//! confirmed only after the broker acknowledged everything up to it.

pub mod catalog;
pub mod config;
mod copy;
mod delivery;
pub mod describe;
mod error;
pub mod format;
pub mod metrics;
pub mod naming;
mod progress;
pub mod publication;
mod reconcile;
pub mod run;
pub mod slot;
pub mod state;

pub use error::PipelineError;
