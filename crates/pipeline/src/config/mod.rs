//! sluice's configuration: a TOML file, then `SLUICE_<SECTION>__<KEY>` environment overrides,
//! then defaults.
//!
//! The section structs are the one model: what the pipeline reads, and the only list of keys.
//! An error names the key at fault and where it was set (the file, or the variable), and for
//! an unknown key the known key nearest to it.

mod error;
#[cfg(test)]
pub(crate) mod fixture;
mod keys;
mod load;
mod producer;
mod secret;
mod sections;
mod sources;
mod tables;
#[cfg(test)]
mod tests;
mod validate;

use serde::Deserialize;

pub use error::{ConfigError, Origin};
pub use load::load;
pub use producer::ProducerProperties;
pub use secret::Secret;
pub use sections::{
    Compatibility, Compression, EventsMode, EventsSection, HstoreHandling, KafkaSection, KeyChange,
    MetricsSection, NumericHandling, PostgresSection, RegistrySection, ReplicationSection,
    ShutdownSection, SnapshotMode, SnapshotSection, TimePrecisionHandling,
};
pub use tables::{TablePattern, TablesSection};

use producer::redact_property;
use sections::{human, sslmode_str};

/// The whole configuration, one field per TOML section.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub postgres: PostgresSection,
    #[serde(default)]
    pub replication: ReplicationSection,
    #[serde(default)]
    pub tables: TablesSection,
    #[serde(default)]
    pub snapshot: SnapshotSection,
    pub kafka: KafkaSection,
    pub registry: RegistrySection,
    #[serde(default)]
    pub events: EventsSection,
    #[serde(default)]
    pub shutdown: ShutdownSection,
    #[serde(default)]
    pub metrics: MetricsSection,
}

impl Config {
    /// One line for the startup log: every setting that matters, no secret.
    pub fn redacted_summary(&self) -> String {
        let pg = &self.postgres;
        let rep = &self.replication;
        let tables = &self.tables;
        let kafka = &self.kafka;
        let registry = &self.registry;
        let list = |patterns: &[TablePattern]| {
            patterns
                .iter()
                .map(TablePattern::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let producer = kafka
            .producer
            .iter()
            .map(|(key, value)| format!("{key}={}", redact_property(key, value)))
            .collect::<Vec<_>>()
            .join(",");
        let parts = [
            format!(
                "postgres={}@{}:{}/{}",
                pg.user, pg.host, pg.port, pg.database
            ),
            format!("sslmode={}", sslmode_str(pg.sslmode)),
            format!(
                "password={}",
                if pg.password.is_some() { "set" } else { "none" }
            ),
            format!("connect_timeout={}", human(pg.connect_timeout)),
            format!("slot={}", rep.slot),
            format!("publication={}", rep.publication),
            format!("create_publication={}", rep.create_publication),
            format!("binary={}", rep.binary),
            format!("status_interval={}", human(rep.status_interval)),
            format!("streamed_memory_mib={}", rep.streamed_memory_mib),
            format!("include=[{}]", list(&tables.include)),
            format!("exclude=[{}]", list(&tables.exclude)),
            format!("allow_keyless={}", tables.allow_keyless),
            format!("snapshot={}", self.snapshot.mode.as_str()),
            format!("parallelism={}", self.snapshot.parallelism),
            format!("chunk_rows={}", self.snapshot.chunk_rows),
            format!(
                "progress_interval={}",
                human(self.snapshot.progress_interval)
            ),
            format!("kafka={}", kafka.bootstrap_servers),
            format!("topic_prefix={}", kafka.topic_prefix),
            format!("partitions={}", kafka.partitions),
            format!("replication_factor={}", kafka.replication_factor),
            format!("compression={}", kafka.compression.as_str()),
            format!("producer={{{producer}}}"),
            format!("registry={}", registry.url),
            format!("registry_auth={}", registry.auth_summary()),
            format!(
                "registry_tls={}",
                match (&registry.ca_file, &registry.cert_file) {
                    (None, None) => "system",
                    (Some(_), None) => "ca_file",
                    (None, Some(_)) => "client_cert",
                    (Some(_), Some(_)) => "ca_file+client_cert",
                }
            ),
            format!(
                "compatibility={}",
                registry
                    .compatibility
                    .map_or("unchanged", Compatibility::as_str)
            ),
            format!("events={}", self.events.mode.as_str()),
            format!("numeric={}", self.events.numeric.as_str()),
            format!("time_precision={}", self.events.time_precision.as_str()),
            format!("hstore={}", self.events.hstore.as_str()),
            format!("truncate={}", self.events.truncate),
            format!("transactions={}", self.events.transactions),
            format!("tombstones={}", self.events.tombstones),
            format!("key_change={}", self.events.key_change.as_str()),
            format!("drain_timeout={}", human(self.shutdown.drain_timeout)),
            format!(
                "metrics={}",
                if self.metrics.enabled {
                    self.metrics.bind.to_string()
                } else {
                    "off".to_owned()
                }
            ),
        ];
        parts.join(" ")
    }
}
