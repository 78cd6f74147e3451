//! sluice's Kafka side: the producer, topic creation, and delivery reports turned into an
//! ordered acknowledgement of the replication slot.
//!
//! # The pieces
//!
//! - [`KafkaConfig`] and [`client_config`]: the one place librdkafka configurations are built,
//!   with [`TracingContext`] routing librdkafka's logs to `tracing` (target `librdkafka`).
//! - [`Producer`]: `send(topic, key, payload, ticket)`; each accepted message comes back once as
//!   a [`Delivery`] with its ticket, through [`Deliveries`]. [`Producer::ensure_topics`] and
//!   [`Producer::check_reachable`] are the startup checks.
//! - [`AckTracker`]: turns deliveries, which arrive out of order, into the position up to
//!   which the slot may be confirmed.
//!
//! # Why a `ThreadedProducer` and integer tickets
//!
//! The pipeline wants a synchronous, non-blocking `send` (it holds the decoded event and must
//! learn about back-pressure at once, as [`SendError::QueueFull`]) and one stream of delivery
//! reports it can `select!` on. rdkafka's `FutureProducer` instead boxes a oneshot sender per
//! message and hands back one future per message. The `ThreadedProducer` runs librdkafka's
//! polling on its own thread and calls our `ProducerContext::delivery` there, which appends
//! each report to a queue the pipeline empties in one go: a produce response acknowledges
//! hundreds of messages, and the pipeline wakes once for all of them. The report's opaque is the caller's ticket carried as a
//! pointer-sized integer, not a pointer to a heap object, so a message costs nothing on the
//! Rust side beyond librdkafka's copies of key and payload (and the topic name rdkafka turns
//! into a C string). Tickets are 64-bit, hence the refusal to build on narrower targets.
//!
//! # Why `message.timeout.ms` = 0
//!
//! librdkafka fails a message it could not deliver within `message.timeout.ms` (default five
//! minutes). For sluice a failed message is an event that is not in Kafka: the slot cannot be
//! confirmed past it, and sending it again would put it behind later events of the same key.
//! So a broker outage must not fail messages: with 0 (infinite) librdkafka keeps retrying
//! transient errors (broker down, leader elections, not enough replicas) and the pipeline simply
//! waits, its back-pressure coming from the full queue. What still fails a delivery is what
//! retrying cannot fix, see [`is_fatal`]. Idempotence keeps a partition's messages in order and
//! free of duplicates across those retries; acks=all means a delivery report says every in-sync
//! replica has the message.
//!
//! # How the slot is confirmed only after everything before it is acknowledged
//!
//! The pipeline calls [`AckTracker::begin`] with a transaction's end position, uses the returned
//! ticket for every event of that transaction ([`AckTracker::sent`] per event), and
//! [`AckTracker::seal`] once the last event is handed to the producer. Each successful
//! [`Delivery`] goes to [`AckTracker::acknowledged`]. The tracker keeps open transactions in
//! ticket order and confirms a position only by completing the *oldest* one: a transaction
//! completes when it is sealed (so no more events can join it) and none of its events is
//! unacknowledged, and then its end position becomes the confirmed position, followed by any
//! already-complete transactions behind it. A later transaction finishing first moves nothing.
//! So the confirmed position is always the end of a prefix of transactions all of whose events
//! Kafka has written, and the pipeline confirms the slot with exactly that. A failed delivery is
//! never passed to the tracker: its transaction stays open and the position stays behind it.

#[cfg(not(target_pointer_width = "64"))]
compile_error!("sluice-kafka carries 64-bit delivery tickets in librdkafka's pointer-sized opaque");

mod ack;
mod admin;
mod config;
mod error;
mod producer;
mod read_back;

pub use ack::AckTracker;
pub use config::{COMPRESSIONS, KafkaConfig, TracingContext, client_config};
pub use error::{DeliveryError, KafkaError, SendError, is_fatal};
pub use producer::{Delivered, Deliveries, Delivery, Producer};
/// rdkafka's error codes, so callers can match on them without depending on rdkafka.
pub use rdkafka::error::RDKafkaErrorCode;
pub use read_back::{Record, end_offsets, read_to, read_to_end};
