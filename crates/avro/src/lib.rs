//! Avro for sluice: schemas derived from PostgreSQL tables in the shape Debezium's PostgreSQL
//! connector gives them, values encoded straight from PostgreSQL's text or binary form
//! (no generic value tree), the Confluent wire format, and the schema registry.

mod column;
mod decimal;
mod registry;
mod table;
mod temporal;

pub use temporal::civil_from_days;
mod writer;

pub use column::{ColumnKind, Raw, Scratch, UNCHANGED_PLACEHOLDER, ValueError};
pub use registry::{Registry, RegistryConfig, RegistryError, RegistryStats};
pub use table::{
    ColumnSpec, EncodeError, MessageCodec, Op, Row, SOURCE_VERSION, SnapshotMarker, Source,
    TableCodec, TableSpec, avro_name,
};
