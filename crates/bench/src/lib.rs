//! sluice's measuring tools. Performance is judged by these benchmarks, never by timed tests.

pub mod compare;
pub mod drain;
pub mod process;
pub mod replication;
pub(crate) mod stats;
