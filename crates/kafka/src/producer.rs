//! The producer: messages in with a ticket, delivery reports out in batches.

use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use rdkafka::client::ClientContext;
use rdkafka::config::{FromClientConfigAndContext, RDKafkaLogLevel};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{DeliveryResult, Message};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use tokio::sync::Notify;

use crate::config::{KafkaConfig, forward_log, producer_config, report_error};
use crate::error::{DeliveryError, KafkaError, SendError};

/// Where a message was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Delivered {
    /// The partition librdkafka's murmur2 partitioner chose (Java-compatible).
    pub partition: i32,
    /// The message's offset in that partition.
    pub offset: i64,
}

/// The outcome of one [`Producer::send`], reported once per accepted message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delivery {
    /// The ticket given to `send`.
    pub ticket: u64,
    /// Written (acknowledged by all in-sync replicas), or failed for good.
    pub result: Result<Delivered, DeliveryError>,
}

/// Delivery reports on their way from librdkafka's polling thread to the pipeline.
///
/// The polling thread appends each report to `pending` and rings `ready`; the receiver takes
/// everything pending in one swap. A produce response acknowledges hundreds of messages at
/// once, so the pipeline wakes once per response and handles its reports in a tight loop,
/// instead of taking a channel message (and a turn of its `select!`) per report.
#[derive(Debug, Default)]
struct DeliveryQueue {
    pending: Mutex<Pending>,
    ready: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    reports: Vec<Delivery>,
    /// The producer is gone: no report will come any more.
    closed: bool,
    /// Why the brokers refused the connection's security, if they did (librdkafka reports it
    /// through the error callback; a metadata request then only times out).
    refused: Option<String>,
}

impl DeliveryQueue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        // A panic while holding the lock leaves only a Vec behind: still consistent.
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The receiving end of a [`Producer`]'s delivery reports: one [`Delivery`] per message `send`
/// accepted, taken from librdkafka in batches.
#[derive(Debug)]
pub struct Deliveries {
    queue: Arc<DeliveryQueue>,
    /// Reports taken from the queue, handed out from `next` on; the buffer is swapped with the
    /// queue's, so neither side allocates once both have grown.
    taken: Vec<Delivery>,
    next: usize,
}

impl Deliveries {
    /// The next report, waiting for one; `None` once the producer is gone and every report was
    /// handed out. Cancel-safe: a report is only taken when it is returned.
    pub async fn recv(&mut self) -> Option<Delivery> {
        let queue = Arc::clone(&self.queue);
        loop {
            // Made before looking, so a report that arrives after the look still wakes us.
            let ready = queue.ready.notified();
            match self.try_take() {
                Taken::Report(delivery) => return Some(delivery),
                Taken::Closed => return None,
                Taken::Empty => ready.await,
            }
        }
    }

    /// The next report if one has arrived, without waiting.
    pub fn try_recv(&mut self) -> Option<Delivery> {
        match self.try_take() {
            Taken::Report(delivery) => Some(delivery),
            Taken::Empty | Taken::Closed => None,
        }
    }

    fn try_take(&mut self) -> Taken {
        if self.next == self.taken.len() {
            self.taken.clear();
            self.next = 0;
            let mut pending = self.queue.lock();
            std::mem::swap(&mut pending.reports, &mut self.taken);
            if self.taken.is_empty() {
                return if pending.closed {
                    Taken::Closed
                } else {
                    Taken::Empty
                };
            }
        }
        let delivery = self.taken.get_mut(self.next).map(|slot| Delivery {
            ticket: slot.ticket,
            result: std::mem::replace(&mut slot.result, Ok(Delivered::NONE)),
        });
        self.next += 1;
        delivery.map_or(Taken::Empty, Taken::Report)
    }
}

enum Taken {
    Report(Delivery),
    Empty,
    Closed,
}

impl Delivered {
    /// What a report handed out leaves in its place.
    const NONE: Delivered = Delivered {
        partition: -1,
        offset: -1,
    };
}

/// Runs on librdkafka's polling thread: turns each delivery report into a [`Delivery`].
pub(crate) struct DeliveryContext {
    queue: Arc<DeliveryQueue>,
}

impl Drop for DeliveryContext {
    fn drop(&mut self) {
        self.queue.lock().closed = true;
        self.queue.ready.notify_one();
    }
}

impl ClientContext for DeliveryContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        if matches!(
            error.rdkafka_error_code(),
            Some(
                RDKafkaErrorCode::Authentication
                    | RDKafkaErrorCode::SaslAuthenticationFailed
                    | RDKafkaErrorCode::SSL
            )
        ) {
            self.queue.lock().refused = Some(reason.to_owned());
        }
        report_error(&error, reason);
    }
}

impl DeliveryContext {
    /// Why the brokers refused the connection's security, if they did.
    pub(crate) fn refused(&self) -> Option<String> {
        self.queue.lock().refused.clone()
    }
}

impl ProducerContext for DeliveryContext {
    // The ticket itself travels as librdkafka's opaque pointer: no box per message.
    type DeliveryOpaque = usize;

    fn delivery(&self, delivery_result: &DeliveryResult<'_>, delivery_opaque: usize) {
        // Lossless: the opaque was made from a u64 on a 64-bit target (see lib.rs).
        let ticket = u64::try_from(delivery_opaque).unwrap_or(u64::MAX);
        let result = match delivery_result {
            Ok(message) => Ok(Delivered {
                partition: message.partition(),
                offset: message.offset(),
            }),
            Err((error, message)) => Err(DeliveryError {
                code: error.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                topic: message.topic().to_owned(),
            }),
        };
        self.queue.lock().reports.push(Delivery { ticket, result });
        // Stores a single permit when nobody waits, so ringing once per report costs little.
        self.queue.ready.notify_one();
    }
}

/// An idempotent, acks=all Kafka producer whose delivery reports carry caller-chosen tickets.
///
/// Dropping it purges what librdkafka still holds (those messages are reported as failed, if
/// the receiver still listens): wait for every message's [`Delivery`] first for a clean stop.
pub struct Producer {
    pub(crate) inner: ThreadedProducer<DeliveryContext>,
    pub(crate) config: KafkaConfig,
}

impl fmt::Debug for Producer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Producer")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("in_flight", &self.in_flight())
            .finish_non_exhaustive()
    }
}

impl Producer {
    /// Builds the producer (acks=all, enable.idempotence=true, murmur2_random partitioner,
    /// infinite message timeout, then the passthrough properties). Connecting happens in the
    /// background; use [`Producer::check_reachable`] to fail fast.
    ///
    /// The receiver yields one [`Delivery`] per message `send` accepted.
    pub fn new(config: &KafkaConfig) -> Result<(Producer, Deliveries), KafkaError> {
        let conf = producer_config(config)?;
        let queue = Arc::new(DeliveryQueue::default());
        let receiver = Deliveries {
            queue: Arc::clone(&queue),
            taken: Vec::new(),
            next: 0,
        };
        let inner = ThreadedProducer::from_config_and_context(&conf, DeliveryContext { queue })
            .map_err(|source| KafkaError::Create {
                client: "producer",
                source,
            })?;
        let producer = Producer {
            inner,
            config: config.clone(),
        };
        Ok((producer, receiver))
    }

    /// The configuration this producer was built from.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// Enqueues one message; never blocks. librdkafka copies key and payload, and the ticket
    /// comes back in the message's [`Delivery`].
    ///
    /// [`SendError::QueueFull`] is back-pressure: wait for deliveries and send again. Any other
    /// error means this message can never be sent.
    pub fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        ticket: u64,
    ) -> Result<(), SendError> {
        self.send_to(topic, None, key, payload, ticket)
    }

    /// Like [`Producer::send`], to the given partition, or to the key's (`None`).
    pub fn send_to(
        &self,
        topic: &str,
        partition: Option<i32>,
        key: Option<&[u8]>,
        payload: Option<&[u8]>,
        ticket: u64,
    ) -> Result<(), SendError> {
        let opaque = usize::try_from(ticket).map_err(|_| SendError::TicketOutOfRange(ticket))?;
        let mut record = BaseRecord::<[u8], [u8], usize>::with_opaque_to(topic, opaque);
        if let Some(partition) = partition {
            record = record.partition(partition);
        }
        if let Some(key) = key {
            record = record.key(key);
        }
        if let Some(payload) = payload {
            record = record.payload(payload);
        }
        self.inner
            .send(record)
            .map_err(|(error, _record)| match error {
                rdkafka::error::KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull) => {
                    SendError::QueueFull
                }
                rdkafka::error::KafkaError::Nul(_) => SendError::InvalidTopicName(topic.to_owned()),
                other => SendError::Rejected {
                    topic: topic.to_owned(),
                    code: other.rdkafka_error_code().unwrap_or(RDKafkaErrorCode::Fail),
                },
            })
    }

    /// Messages librdkafka holds: queued, in flight, or reported in a batch whose handling has
    /// not finished (so it may briefly trail the reports already received).
    pub fn in_flight(&self) -> i32 {
        self.inner.in_flight_count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shareable_across_tasks() {
        fn send_sync<T: Send + Sync>() {}
        send_sync::<Producer>();
        send_sync::<Delivery>();
        send_sync::<crate::AckTracker>();
        send_sync::<KafkaError>();
        send_sync::<SendError>();
    }

    #[test]
    fn unknown_property_is_refused_at_creation() {
        let mut config = KafkaConfig::default();
        config
            .properties
            .insert("no.such.property".to_owned(), "1".to_owned());
        let error = Producer::new(&config).unwrap_err().to_string();
        assert!(error.contains("no.such.property"), "{error}");
    }

    #[test]
    fn every_compression_is_built_in() {
        for compression in crate::config::COMPRESSIONS {
            let config = KafkaConfig {
                compression: compression.to_owned(),
                ..KafkaConfig::default()
            };
            if let Err(error) = Producer::new(&config) {
                panic!("compression {compression}: {error}");
            }
        }
    }

    #[test]
    fn nul_in_topic_name_is_typed() {
        let (producer, _deliveries) = Producer::new(&KafkaConfig::default()).unwrap();
        assert_eq!(
            producer.send("bad\0topic", None, Some(b"x"), 1),
            Err(SendError::InvalidTopicName("bad\0topic".to_owned()))
        );
        assert_eq!(producer.in_flight(), 0);
    }
}
