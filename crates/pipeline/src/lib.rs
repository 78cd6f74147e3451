//! sluice's pipeline: configuration, the choice of tables, publication and slot, a consistent
//! snapshot, then the stream, every event Avro-encoded and produced to Kafka, and the slot
//! confirmed only after the broker acknowledged everything up to it.

pub mod catalog;
mod clock;
pub mod config;
mod copier;
mod copy;
mod delivery;
mod emit;
mod error;
pub mod metrics;
pub mod naming;
mod outbox;
mod outputs;
mod progress;
pub mod publication;
mod reconcile;
pub mod run;
mod schema_change;
mod settings;
pub mod slot;
mod snapshot;
pub mod state;
mod stream;

pub use error::PipelineError;
