//! End-to-end tests: one binary, so the stack is shared and the link step runs once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod check;
mod compose;
mod crash;
mod debezium_sink;
mod errors;
mod large_transactions;
mod metrics;
mod pipeline;
mod privacy;
mod progress;
mod registry;
mod replication;
mod stack;
mod status;
mod tail;
mod text_binary;
mod types;
mod versions;
