//! sluice's pipeline: configuration, the choice of tables, publication and slot, a consistent
//! snapshot, then the stream, every event Avro-encoded and produced to Kafka, and the slot
//! confirmed only after the broker acknowledged everything up to it.

pub mod catalog;
mod clock;
pub mod config;
pub mod connect;
mod copier;
mod copy;
pub mod describe;
mod emit;
mod error;
pub mod format;
mod housekeeping;
pub mod incremental;
pub mod metrics;
pub mod naming;
mod outbox;
mod outputs;
mod progress;
pub mod publication;
mod reconcile;
mod retry;
pub mod run;
mod schema_change;
pub mod slot;
mod slot_lock;
mod snapshot;
pub mod state;
mod stream;

pub use error::{EXIT_DEFINITE, EXIT_TRANSIENT, PipelineError};
