//! End-to-end tests: one binary, so the stack is shared and the link step runs once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod broker_security;
mod check;
mod compose;
mod crash;
mod debezium_compare;
mod debezium_sink;
mod defaults;
mod errors;
mod identity;
mod large_transactions;
mod metrics;
mod pipeline;
mod progress;
mod registry;
mod replication;
mod selection;
mod sessions;
mod stack;
mod state;
mod status;
mod tail;
mod text_binary;
mod types;
mod versions;
