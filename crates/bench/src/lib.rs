//! sluice's measuring tools. Performance is judged by these benchmarks, never by timed tests.

pub mod drain;
pub mod replication;
