//! Errors, and which Kafka error codes a restart cannot fix.

use std::time::Duration;

use rdkafka::error::RDKafkaErrorCode;

/// Setting up or talking to Kafka outside the per-message path failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum KafkaError {
    /// The configuration is invalid; nothing was sent.
    #[error("invalid Kafka configuration: {0}")]
    Config(String),

    /// librdkafka refused to build a client (usually a property it rejects).
    #[error("cannot create the Kafka {client}: {source}")]
    Create {
        /// "producer" or "admin client".
        client: &'static str,
        /// What librdkafka said.
        #[source]
        source: rdkafka::error::KafkaError,
    },

    /// No broker answered a metadata request in time.
    #[error(
        "Kafka is not reachable at {bootstrap_servers} (no metadata within {timeout:?}: {reason}); \
         check kafka.bootstrap_servers, that the brokers run, that their advertised listeners \
         resolve and are reachable from this host, and the security settings in kafka.properties"
    )]
    Unreachable {
        /// The configured bootstrap servers.
        bootstrap_servers: String,
        /// How long we waited.
        timeout: Duration,
        /// What librdkafka reported.
        reason: String,
    },

    /// The brokers refused the client's credentials or certificate (or the client theirs):
    /// a definite error, unlike an outage.
    #[error(
        "Kafka at {bootstrap_servers} refused the connection's security ({reason}): check the \
         SASL mechanism, user and password, or the TLS certificates, in [kafka.producer]"
    )]
    Authentication {
        /// The configured bootstrap servers.
        bootstrap_servers: String,
        /// What librdkafka reported.
        reason: String,
    },

    /// The principal may not describe or create a topic sluice needs.
    #[error(
        "not authorized to use Kafka topic `{topic}` ({code}): the principal needs the CREATE, \
         DESCRIBE and WRITE ACLs on this topic (CREATE may be granted on the cluster instead), \
         or the topic must be created beforehand and DESCRIBE and WRITE granted"
    )]
    TopicAuthorization {
        /// The topic.
        topic: String,
        /// TopicAuthorizationFailed or ClusterAuthorizationFailed.
        code: RDKafkaErrorCode,
    },

    /// Creating or inspecting a topic failed for another reason.
    #[error("Kafka topic `{topic}`: {message}")]
    Topic {
        /// The topic.
        topic: String,
        /// The broker's error code, if it gave one.
        code: Option<RDKafkaErrorCode>,
        /// What went wrong, with a hint when one is known.
        message: String,
    },

    /// A blocking librdkafka call could not run (the runtime is shutting down).
    #[error("a blocking Kafka call was cancelled: {0}")]
    Cancelled(String),
}

impl KafkaError {
    /// Whether trying again later may succeed without anyone changing anything: the broker
    /// unreachable, or a topic's creation or leader election that ran out of time.
    pub fn is_transient(&self) -> bool {
        use RDKafkaErrorCode as C;
        match self {
            Self::Unreachable { .. } | Self::Cancelled(_) => true,
            // No code: created, but no leader yet within the wait.
            Self::Topic { code: None, .. } => true,
            Self::Topic {
                code: Some(code), ..
            } => matches!(
                code,
                C::RequestTimedOut
                    | C::OperationTimedOut
                    | C::LeaderNotAvailable
                    | C::NotController
                    | C::BrokerNotAvailable
                    | C::NetworkException
                    | C::AllBrokersDown
                    | C::BrokerTransportFailure
            ),
            _ => false,
        }
    }

    /// The Kafka error code behind this error, when there is one.
    pub fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            Self::Create { source, .. } => source.rdkafka_error_code(),
            Self::TopicAuthorization { code, .. } => Some(*code),
            Self::Topic { code, .. } => *code,
            Self::Config(_)
            | Self::Unreachable { .. }
            | Self::Authentication { .. }
            | Self::Cancelled(_) => None,
        }
    }
}

/// [`Producer::send`](crate::Producer::send) could not enqueue a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SendError {
    /// librdkafka's local queue is full (`queue.buffering.max.messages` / `.kbytes`): this is
    /// back-pressure, not a failure. Wait for some deliveries, then send the same message again.
    #[error("the Kafka producer queue is full (wait for deliveries, then retry)")]
    QueueFull,

    /// librdkafka refused the message outright (too large, unknown topic or partition, fatal
    /// producer state...). Retrying the same message cannot succeed.
    #[error("Kafka refused a message for topic `{topic}`: {code}{}", hint(*code))]
    Rejected {
        /// The topic.
        topic: String,
        /// librdkafka's reason.
        code: RDKafkaErrorCode,
    },

    /// The topic name contains a NUL byte, which librdkafka cannot take.
    #[error("invalid Kafka topic name {0:?}")]
    InvalidTopicName(String),

    /// The ticket does not fit the delivery opaque (only possible on targets whose pointers are
    /// narrower than 64 bits, which this crate refuses to build for).
    #[error("delivery ticket {0} does not fit a pointer-sized integer")]
    TicketOutOfRange(u64),
}

/// A message could not be delivered. With `message.timeout.ms` = 0 this only happens for errors
/// retrying cannot fix, or when the producer is shut down with messages still queued.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("delivery to Kafka topic `{topic}` failed: {code}{}", hint(*code))]
pub struct DeliveryError {
    /// librdkafka's error code.
    pub code: RDKafkaErrorCode,
    /// The topic the message was for.
    pub topic: String,
}

impl DeliveryError {
    /// Whether restarting from the last confirmed position cannot help (see [`is_fatal`]).
    pub fn is_fatal(&self) -> bool {
        is_fatal(self.code)
    }
}

/// Whether an error code means an operator must act: restarting and replaying from the last
/// confirmed slot position would fail the same way.
///
/// Transient conditions (broker down, leader elections, timeouts, not enough in-sync replicas)
/// are not in this list: librdkafka retries them itself for as long as `message.timeout.ms`
/// allows, which sluice sets to infinite. A delivery failure with a code outside this list
/// (a purge at shutdown, a timeout when the user set `message.timeout.ms`) is still a failure
/// (the event was not written) but restarting may fix it.
pub fn is_fatal(code: RDKafkaErrorCode) -> bool {
    use RDKafkaErrorCode as C;
    matches!(
        code,
        // Authentication and authorization: needs credentials or ACLs.
        C::TopicAuthorizationFailed
            | C::ClusterAuthorizationFailed
            | C::TransactionalIdAuthorizationFailed
            | C::SaslAuthenticationFailed
            | C::Authentication
            | C::UnsupportedSASLMechanism
            | C::IllegalSASLState
            // The record itself is unacceptable: the same event would be refused again.
            | C::MessageSizeTooLarge
            | C::InvalidMessageSize
            | C::MessageBatchTooLarge
            | C::InvalidRecord
            | C::InvalidMessage
            | C::BadMessage
            | C::InvalidTimestamp
            | C::UnsupportedForMessageFormat
            | C::UnsupportedCompressionType
            | C::BadCompression
            | C::InvalidRequiredAcks
            | C::PolicyViolation
            | C::InvalidTopic
            // The idempotent producer lost its ordering guarantee; librdkafka stops producing.
            | C::Fatal
            | C::OutOfOrderSequenceNumber
            | C::InvalidProducerEpoch
            | C::InvalidProducerIdMapping
            | C::ProducerFenced
            | C::GaplessGuarantee
            | C::Inconsistent
            // The topic or partition is gone although sluice created or checked it at startup.
            | C::UnknownTopic
            | C::UnknownTopicOrPartition
            | C::UnknownPartition
            // The configuration or the broker cannot do what was asked.
            | C::InvalidArgument
            | C::InvalidConfig
            | C::UnsupportedFeature
            | C::UnsupportedVersion
            | C::NotImplemented
    )
}

/// A short fix for the errors that need one.
fn hint(code: RDKafkaErrorCode) -> &'static str {
    use RDKafkaErrorCode as C;
    match code {
        C::MessageSizeTooLarge | C::InvalidMessageSize | C::MessageBatchTooLarge => {
            "; raise the topic's max.message.bytes and the producer's message.max.bytes \
             (kafka.properties), or make the row smaller"
        }
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => {
            "; the principal needs the WRITE and DESCRIBE ACLs on the topic (and IDEMPOTENT_WRITE \
             on the cluster for brokers older than 2.8)"
        }
        C::UnknownTopic | C::UnknownTopicOrPartition | C::UnknownPartition => {
            "; the topic does not exist (was it deleted?); sluice creates missing topics only \
             at startup"
        }
        C::Fatal
        | C::OutOfOrderSequenceNumber
        | C::InvalidProducerEpoch
        | C::InvalidProducerIdMapping
        | C::ProducerFenced
        | C::GaplessGuarantee
        | C::Inconsistent => {
            "; the idempotent producer can no longer guarantee order and has stopped; \
             restart sluice (it replays from the last confirmed position)"
        }
        C::QueueFull => "; the local queue is full",
        C::PurgeQueue | C::PurgeInflight => {
            "; the producer was shut down before the message was delivered"
        }
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fatal_and_transient_codes_are_told_apart() {
        for code in [
            RDKafkaErrorCode::TopicAuthorizationFailed,
            RDKafkaErrorCode::MessageSizeTooLarge,
            RDKafkaErrorCode::InvalidRecord,
            RDKafkaErrorCode::Fatal,
            RDKafkaErrorCode::OutOfOrderSequenceNumber,
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ] {
            assert!(is_fatal(code), "{code:?} should be fatal");
        }
        for code in [
            RDKafkaErrorCode::BrokerTransportFailure,
            RDKafkaErrorCode::AllBrokersDown,
            RDKafkaErrorCode::RequestTimedOut,
            RDKafkaErrorCode::MessageTimedOut,
            RDKafkaErrorCode::NotEnoughReplicas,
            RDKafkaErrorCode::NotEnoughReplicasAfterAppend,
            RDKafkaErrorCode::LeaderNotAvailable,
            RDKafkaErrorCode::NotLeaderForPartition,
            RDKafkaErrorCode::QueueFull,
            RDKafkaErrorCode::PurgeQueue,
        ] {
            assert!(!is_fatal(code), "{code:?} should be transient");
        }
    }

    #[test]
    fn a_topic_operation_that_ran_out_of_time_is_transient_a_refused_one_is_not() {
        let topic = |code| KafkaError::Topic {
            topic: "t".to_owned(),
            code,
            message: String::new(),
        };
        assert!(topic(Some(RDKafkaErrorCode::RequestTimedOut)).is_transient());
        assert!(topic(Some(RDKafkaErrorCode::OperationTimedOut)).is_transient());
        assert!(topic(None).is_transient(), "no leader yet");
        assert!(!topic(Some(RDKafkaErrorCode::PolicyViolation)).is_transient());
        assert!(!topic(Some(RDKafkaErrorCode::InvalidReplicationFactor)).is_transient());
    }

    #[test]
    fn delivery_error_names_topic_and_fix() {
        let error = DeliveryError {
            code: RDKafkaErrorCode::MessageSizeTooLarge,
            topic: "shop.public.orders".to_owned(),
        };
        let text = error.to_string();
        assert!(text.contains("shop.public.orders"), "{text}");
        assert!(text.contains("max.message.bytes"), "{text}");
        assert!(error.is_fatal());
    }
}
