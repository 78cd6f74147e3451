//! Avro for sluice: schemas derived from PostgreSQL tables in the shape Debezium's PostgreSQL
//! connector gives them, values encoded straight from PostgreSQL's text or binary form
//! (no generic value tree), the Confluent wire format, and the schema registry.

mod array;
mod binary_form;
mod column;
mod confluent;
mod decimal;
mod exact;
mod formats;
#[doc(hidden)]
pub mod fuzzing;
mod hstore;
mod inet_macaddr;
mod kind;
mod output;
#[cfg(test)]
mod output_pairs;
#[cfg(test)]
mod pairs;
#[cfg(test)]
mod properties;
mod registry;
mod scalar;
mod schema;
mod scratch;
mod special;
mod table;
mod temporal;
mod transaction;
mod types;
mod writer;

pub use confluent::confluent_frame;
pub use kind::{ColumnKind, Raw, ScalarKind, UNCHANGED_PLACEHOLDER, ValueError};
pub use output::{OutputError, Unsupported, money_text};
pub use registry::{
    Answer, ClientCertificate, Registry, RegistryAuth, RegistryConfig, RegistryError,
    RegistryStats, error_chain,
};
pub use reqwest::{Method, StatusCode};
pub use schema::avro_name;
pub use scratch::Scratch;
pub use table::{
    ColumnSpec, EncodeError, MessageCodec, Op, Row, SOURCE_VERSION, SnapshotMarker, Source,
    TableCodec, TableSpec, mark_snapshot_last,
};
pub use temporal::civil_from_days;
pub use transaction::{TransactionBlock, TransactionCodec};
pub use types::{ElementType, HstoreMode, NumericMode, TimePrecision, TypeInfo, TypeOptions};
