//! Kafka settings and the one place that turns them into a librdkafka configuration.

use std::collections::BTreeMap;
use std::fmt;

use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::config::RDKafkaLogLevel;
use rdkafka::error::RDKafkaErrorCode;

use crate::error::{KafkaError, is_fatal};

/// Compression codecs librdkafka accepts for `compression.type`.
pub const COMPRESSIONS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

/// Properties sluice's delivery guarantee depends on; `properties` may not set them.
/// `request.required.acks` is librdkafka's alias of `acks`.
const FIXED: [&str; 3] = ["acks", "request.required.acks", "enable.idempotence"];

/// How sluice talks to Kafka. The pipeline maps its own configuration into this.
#[derive(Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `bootstrap.servers`: comma-separated `host:port` list.
    pub bootstrap_servers: String,
    /// `compression.type`: none, gzip, snappy, lz4 or zstd.
    pub compression: String,
    /// Partitions of the topics sluice creates.
    pub partitions: i32,
    /// Replication factor of the topics sluice creates (-1: the broker's default).
    pub replication_factor: i32,
    /// Passed through to librdkafka (security, tuning...); may override any default
    /// except `acks` and `enable.idempotence`.
    pub properties: BTreeMap<String, String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            compression: "lz4".to_owned(),
            partitions: 3,
            replication_factor: 1,
            properties: BTreeMap::new(),
        }
    }
}

// Hand-written so that passwords and keys in `properties` never reach a log.
impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let properties: BTreeMap<&str, &str> = self
            .properties
            .iter()
            .map(|(key, value)| {
                let shown = if is_secret(key) {
                    "<redacted>"
                } else {
                    value.as_str()
                };
                (key.as_str(), shown)
            })
            .collect();
        f.debug_struct("KafkaConfig")
            .field("bootstrap_servers", &self.bootstrap_servers)
            .field("compression", &self.compression)
            .field("partitions", &self.partitions)
            .field("replication_factor", &self.replication_factor)
            .field("properties", &properties)
            .finish()
    }
}

fn is_secret(key: &str) -> bool {
    [
        "password",
        "secret",
        "jaas",
        "pem",
        "token",
        "oauthbearer.config",
    ]
    .iter()
    .any(|word| key.contains(word))
}

impl KafkaConfig {
    /// Checks what librdkafka would accept but sluice must not.
    pub fn validate(&self) -> Result<(), KafkaError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(KafkaError::Config(
                "kafka.bootstrap_servers is empty".to_owned(),
            ));
        }
        if !COMPRESSIONS.contains(&self.compression.as_str()) {
            return Err(KafkaError::Config(format!(
                "unknown compression `{}`; use one of {}",
                self.compression,
                COMPRESSIONS.join(", ")
            )));
        }
        if self.partitions < 1 {
            return Err(KafkaError::Config(format!(
                "topic partitions must be at least 1, not {}",
                self.partitions
            )));
        }
        if self.replication_factor < 1 && self.replication_factor != -1 {
            return Err(KafkaError::Config(format!(
                "topic replication factor must be at least 1 (or -1 for the broker's default), \
                 not {}",
                self.replication_factor
            )));
        }
        if self.properties.contains_key("partitioner") {
            return Err(KafkaError::Config(
                "kafka property `partitioner` cannot be overridden: one key must always land on \
                 one partition, placed as Java's default partitioner places it (murmur2 of the \
                 key), so that per-key order holds and Kafka Streams and ksqlDB find keys where \
                 they expect them"
                    .to_owned(),
            ));
        }
        if let Some(key) = FIXED.iter().find(|key| self.properties.contains_key(**key)) {
            return Err(KafkaError::Config(format!(
                "kafka property `{key}` cannot be overridden: sluice confirms the replication slot \
                 only after every broker in the in-sync set has the event, which needs acks=all \
                 and enable.idempotence=true (the latter keeps a key's events in order across \
                 retries)"
            )));
        }
        Ok(())
    }
}

/// The librdkafka configuration shared by every client sluice builds: bootstrap servers, the
/// log level `tracing` wants, no topic auto-creation through metadata requests, then the
/// passthrough properties, which win.
///
/// Use it with [`TracingContext`] (or a context that forwards to it) so librdkafka's logs and
/// errors reach `tracing`.
pub fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut conf = ClientConfig::new();
    conf.set_log_level(log_level());
    conf.set("bootstrap.servers", &config.bootstrap_servers);
    conf.set("client.id", "sluice");
    // Otherwise a metadata request for a missing topic creates it with the broker's defaults
    // on brokers with auto.create.topics.enable, instead of sluice's partition count.
    conf.set("allow.auto.create.topics", "false");
    for (key, value) in &config.properties {
        conf.set(key, value);
    }
    conf
}

/// The producer's configuration: [`client_config`], sluice's producer defaults where the
/// properties do not set them (or an alias of them), then the fixed delivery guarantee.
pub(crate) fn producer_config(config: &KafkaConfig) -> Result<ClientConfig, KafkaError> {
    config.validate()?;
    let mut conf = client_config(config);
    // librdkafka applies a HashMap of properties in no particular order, so a default must not
    // be set beside an alias of it that the user set: which one won would be random.
    let defaults: [(&str, &[&str], &str); 3] = [
        ("linger.ms", &["queue.buffering.max.ms"], "5"),
        (
            "compression.type",
            &["compression.codec"],
            &config.compression,
        ),
        // Infinite: a broker outage must stall the pipeline, never drop an event.
        ("message.timeout.ms", &["delivery.timeout.ms"], "0"),
    ];
    for (key, aliases, value) in defaults {
        let set_by_user = std::iter::once(key)
            .chain(aliases.iter().copied())
            .any(|name| config.properties.contains_key(name));
        if !set_by_user {
            conf.set(key, value);
        }
    }
    conf.set("acks", "all");
    conf.set("enable.idempotence", "true");
    // Java's partitioner, so a key lands where Kafka Streams and ksqlDB expect it; fixed, so a
    // key always lands on one partition.
    conf.set("partitioner", "murmur2_random");
    Ok(conf)
}

/// librdkafka filters its logs before calling back, so ask it only for what `tracing` keeps.
fn log_level() -> RDKafkaLogLevel {
    use tracing::Level;
    if tracing::enabled!(target: "librdkafka", Level::DEBUG) {
        RDKafkaLogLevel::Debug
    } else if tracing::enabled!(target: "librdkafka", Level::INFO) {
        RDKafkaLogLevel::Info
    } else if tracing::enabled!(target: "librdkafka", Level::WARN) {
        RDKafkaLogLevel::Warning
    } else {
        RDKafkaLogLevel::Error
    }
}

/// A librdkafka client context that sends its logs to `tracing` (target `librdkafka`) and
/// reports client-wide errors there too (target `sluice_kafka`).
#[derive(Debug, Clone, Copy, Default)]
pub struct TracingContext;

impl ClientContext for TracingContext {
    fn log(&self, level: RDKafkaLogLevel, fac: &str, log_message: &str) {
        forward_log(level, fac, log_message);
    }

    fn error(&self, error: rdkafka::error::KafkaError, reason: &str) {
        report_error(&error, reason);
    }
}

// Reading sluice's state topic back needs a consumer; default rebalance handling serves.
impl rdkafka::consumer::ConsumerContext for TracingContext {}

pub(crate) fn forward_log(level: RDKafkaLogLevel, facility: &str, message: &str) {
    match level {
        RDKafkaLogLevel::Emerg
        | RDKafkaLogLevel::Alert
        | RDKafkaLogLevel::Critical
        | RDKafkaLogLevel::Error => {
            tracing::error!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Warning => tracing::warn!(target: "librdkafka", facility, "{message}"),
        RDKafkaLogLevel::Notice | RDKafkaLogLevel::Info => {
            tracing::info!(target: "librdkafka", facility, "{message}");
        }
        RDKafkaLogLevel::Debug => tracing::debug!(target: "librdkafka", facility, "{message}"),
    }
}

/// Client-wide errors: most (a broker connection dropping, all brokers down) are transient and
/// librdkafka keeps retrying, so they are warnings; the fatal ones also fail every queued message,
/// which the pipeline sees in the delivery reports.
pub(crate) fn report_error(error: &rdkafka::error::KafkaError, reason: &str) {
    let code = error.rdkafka_error_code();
    let fatal = code.is_some_and(|code| code == RDKafkaErrorCode::Fatal || is_fatal(code));
    if fatal {
        tracing::error!(target: "sluice_kafka", code = ?code, "Kafka client error: {reason}");
    } else {
        // librdkafka logs transient errors (a broker down, a refused connection) itself, at
        // its own level; repeating them here would double every line of an outage.
        tracing::debug!(target: "sluice_kafka", code = ?code, "Kafka client error: {reason}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn producer_defaults_then_properties_then_fixed_guarantee() {
        let mut config = KafkaConfig::default();
        config
            .properties
            .insert("linger.ms".to_owned(), "50".to_owned());
        config
            .properties
            .insert("compression.codec".to_owned(), "gzip".to_owned());
        config
            .properties
            .insert("security.protocol".to_owned(), "ssl".to_owned());
        let conf = producer_config(&config).unwrap();
        assert_eq!(conf.get("bootstrap.servers"), Some("127.0.0.1:9092"));
        assert_eq!(conf.get("linger.ms"), Some("50"));
        assert_eq!(conf.get("compression.codec"), Some("gzip"));
        assert_eq!(
            conf.get("compression.type"),
            None,
            "alias set by the user wins"
        );
        assert_eq!(conf.get("security.protocol"), Some("ssl"));
        assert_eq!(conf.get("partitioner"), Some("murmur2_random"));
        assert_eq!(conf.get("message.timeout.ms"), Some("0"));
        assert_eq!(conf.get("acks"), Some("all"));
        assert_eq!(conf.get("enable.idempotence"), Some("true"));
    }

    #[test]
    fn default_compression_is_lz4() {
        let conf = producer_config(&KafkaConfig::default()).unwrap();
        assert_eq!(conf.get("compression.type"), Some("lz4"));
        assert_eq!(conf.get("linger.ms"), Some("5"));
    }

    #[test]
    fn delivery_guarantee_cannot_be_overridden() {
        for key in ["acks", "request.required.acks", "enable.idempotence"] {
            let mut config = KafkaConfig::default();
            config.properties.insert(key.to_owned(), "1".to_owned());
            let error = producer_config(&config).unwrap_err().to_string();
            assert!(error.contains(key), "{error}");
            assert!(error.contains("acks=all"), "{error}");
        }
    }

    #[test]
    fn the_partitioner_cannot_be_overridden() {
        let mut config = KafkaConfig::default();
        config
            .properties
            .insert("partitioner".to_owned(), "random".to_owned());
        let error = producer_config(&config).unwrap_err().to_string();
        assert!(
            error.contains("`partitioner` cannot be overridden"),
            "{error}"
        );
    }

    #[test]
    fn invalid_settings_are_refused() {
        let bad = [
            KafkaConfig {
                compression: "brotli".to_owned(),
                ..KafkaConfig::default()
            },
            KafkaConfig {
                partitions: 0,
                ..KafkaConfig::default()
            },
            KafkaConfig {
                replication_factor: 0,
                ..KafkaConfig::default()
            },
            KafkaConfig {
                bootstrap_servers: " ".to_owned(),
                ..KafkaConfig::default()
            },
        ];
        for config in bad {
            assert!(config.validate().is_err(), "{config:?}");
        }
        let broker_default_rf = KafkaConfig {
            replication_factor: -1,
            ..KafkaConfig::default()
        };
        broker_default_rf.validate().unwrap();
    }

    #[test]
    fn debug_hides_secrets() {
        let mut config = KafkaConfig::default();
        config
            .properties
            .insert("sasl.password".to_owned(), "hunter2".to_owned());
        config
            .properties
            .insert("sasl.username".to_owned(), "sluice".to_owned());
        let shown = format!("{config:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(shown.contains("sluice"), "{shown}");
    }
}
