//! The section structs: what each key is, its type and its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, Deserializer};
use sluice_postgres::{ConnectConfig, Host, SslMode};

use super::producer::ProducerProperties;
use super::secret::Secret;

/// `[postgres]`: the source database.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostgresSection {
    /// Host name or address; starting with `/`, the directory of the server's Unix socket.
    #[serde(default = "default_pg_host")]
    pub host: String,
    #[serde(default = "default_pg_port")]
    pub port: u16,
    pub database: String,
    pub user: String,
    /// After `load`, the password whether given inline or read from `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    /// Where the password was read from, if it was.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    #[serde(default, deserialize_with = "deserialize_sslmode")]
    pub sslmode: SslMode,
    /// CA certificate (PEM) trusted for verify-ca and verify-full.
    #[serde(default)]
    pub sslrootcert: Option<PathBuf>,
    #[serde(default = "default_connect_timeout", with = "humantime_serde")]
    pub connect_timeout: Duration,
}

impl PostgresSection {
    /// Whether `host` names a Unix socket directory rather than a network host.
    pub fn is_unix_socket(&self) -> bool {
        self.host.starts_with('/')
    }

    /// The connection settings `sluice-postgres` takes.
    pub fn connect_config(&self) -> ConnectConfig {
        let host = if self.is_unix_socket() {
            Host::UnixSocketDir(PathBuf::from(&self.host))
        } else {
            Host::Tcp(self.host.clone())
        };
        let mut config = ConnectConfig::new(host, self.port, &self.user, &self.database);
        config.password = self.password.as_ref().map(Secret::to_secret_string);
        config.sslmode = self.sslmode;
        config.ssl_root_cert = self.sslrootcert.clone();
        config.connect_timeout = self.connect_timeout;
        config
    }
}

/// `[replication]`: the slot, the publication and the replication protocol.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReplicationSection {
    #[serde(default = "default_sluice")]
    pub slot: String,
    #[serde(default = "default_sluice")]
    pub publication: String,
    #[serde(default = "default_true")]
    pub create_publication: bool,
    #[serde(default)]
    pub binary: bool,
    #[serde(default = "default_status_interval", with = "humantime_serde")]
    pub status_interval: Duration,
    #[serde(default = "default_streamed_memory_mib")]
    pub streamed_memory_mib: u32,
    /// Emit a `pg_logical_emit_message` this often, so the slot moves even when nothing in
    /// this database writes WAL; unset: no heartbeat.
    #[serde(default, with = "humantime_serde")]
    pub heartbeat_interval: Option<Duration>,
    /// Warn when the slot holds back more WAL than this, in MiB.
    #[serde(default = "default_retained_wal_warn_mib")]
    pub retained_wal_warn_mib: u64,
}

impl ReplicationSection {
    /// `streamed_memory_mib` in bytes, the unit `sluice-postgres` takes.
    pub fn streamed_memory_bytes(&self) -> usize {
        usize::try_from(u64::from(self.streamed_memory_mib) * 1024 * 1024).unwrap_or(usize::MAX)
    }
}

impl Default for ReplicationSection {
    fn default() -> Self {
        ReplicationSection {
            slot: default_sluice(),
            publication: default_sluice(),
            create_publication: true,
            binary: false,
            status_interval: default_status_interval(),
            streamed_memory_mib: default_streamed_memory_mib(),
            heartbeat_interval: None,
            retained_wal_warn_mib: default_retained_wal_warn_mib(),
        }
    }
}

/// `[snapshot]`: the initial copy of the tables.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotSection {
    #[serde(default)]
    pub mode: SnapshotMode,
    #[serde(default = "default_parallelism")]
    pub parallelism: usize,
    #[serde(default = "default_chunk_rows")]
    pub chunk_rows: u64,
    /// How often progress is logged when stderr is not a terminal.
    #[serde(default = "default_progress_interval", with = "humantime_serde")]
    pub progress_interval: Duration,
}

impl Default for SnapshotSection {
    fn default() -> Self {
        SnapshotSection {
            mode: SnapshotMode::default(),
            parallelism: default_parallelism(),
            chunk_rows: default_chunk_rows(),
            progress_interval: default_progress_interval(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SnapshotMode {
    /// Copy every selected table when the slot is created, then stream.
    #[default]
    Initial,
    /// Stream only what changes after the slot is created.
    Never,
}

impl SnapshotMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMode::Initial => "initial",
            SnapshotMode::Never => "never",
        }
    }
}

/// `[kafka]`: the brokers and the topics sluice creates.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaSection {
    /// Comma-separated `host:port` list, as librdkafka takes it.
    pub bootstrap_servers: String,
    /// The logical server name: first part of every topic name and the Avro namespace.
    pub topic_prefix: String,
    /// `i32` because that is what the Kafka admin API takes.
    #[serde(default = "default_partitions")]
    pub partitions: i32,
    #[serde(default = "default_replication_factor")]
    pub replication_factor: i32,
    #[serde(default)]
    pub compression: Compression,
    #[serde(default)]
    pub producer: ProducerProperties,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    #[default]
    Lz4,
    Zstd,
}

impl Compression {
    /// The value of librdkafka's `compression.type`.
    pub fn as_str(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}
/// `[registry]`: the Confluent-compatible schema registry.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistrySection {
    /// Base URL of the Confluent-compatible API, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub url: String,
    /// Basic-auth user; given together with a password.
    #[serde(default)]
    pub username: Option<String>,
    /// After `load`, the password whether given inline or read from `password_file`.
    #[serde(default)]
    pub password: Option<Secret>,
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// Bearer token (instead of basic auth); after `load`, whether given inline or read from
    /// `token_file`.
    #[serde(default)]
    pub token: Option<Secret>,
    #[serde(default)]
    pub token_file: Option<PathBuf>,
    /// CA certificates (PEM) trusted for an `https://` registry, besides the system's.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// Client certificate (PEM) for mutual TLS, with `key_file`.
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// The client certificate's private key (PEM, PKCS#8).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// When set, sluice sets this compatibility rule on each subject it registers.
    #[serde(default)]
    pub compatibility: Option<Compatibility>,
}

impl RegistrySection {
    /// The client settings `sluice-avro` takes.
    pub fn client_config(&self, timeout: Duration) -> sluice_avro::RegistryConfig {
        let auth = match (&self.username, &self.password, &self.token) {
            (Some(username), Some(password), _) => sluice_avro::RegistryAuth::Basic {
                username: username.clone(),
                password: password.to_secret_string(),
            },
            (_, _, Some(token)) => sluice_avro::RegistryAuth::Bearer(token.to_secret_string()),
            _ => sluice_avro::RegistryAuth::None,
        };
        let client_certificate =
            self.cert_file
                .as_ref()
                .zip(self.key_file.as_ref())
                .map(|(cert_file, key_file)| sluice_avro::ClientCertificate {
                    cert_file: cert_file.clone(),
                    key_file: key_file.clone(),
                });
        sluice_avro::RegistryConfig {
            url: self.url.clone(),
            auth,
            ca_file: self.ca_file.clone(),
            client_certificate,
            timeout,
        }
    }

    /// How sluice authenticates, for the startup log: `none`, `basic:<user>` or `bearer`.
    pub(super) fn auth_summary(&self) -> String {
        match (&self.username, &self.token) {
            (Some(user), _) => format!("basic:{user}"),
            (None, Some(_)) => "bearer".to_owned(),
            (None, None) => "none".to_owned(),
        }
    }
}

/// A subject's compatibility rule, spelled as the registry API spells it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Compatibility {
    None,
    Backward,
    BackwardTransitive,
    Forward,
    ForwardTransitive,
    Full,
    FullTransitive,
}

impl Compatibility {
    pub fn as_str(self) -> &'static str {
        match self {
            Compatibility::None => "NONE",
            Compatibility::Backward => "BACKWARD",
            Compatibility::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Compatibility::Forward => "FORWARD",
            Compatibility::ForwardTransitive => "FORWARD_TRANSITIVE",
            Compatibility::Full => "FULL",
            Compatibility::FullTransitive => "FULL_TRANSITIVE",
        }
    }
}

/// `[events]`: the shape of what is written to Kafka.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventsSection {
    #[serde(default)]
    pub mode: EventsMode,
    #[serde(default = "default_true")]
    pub tombstones: bool,
    #[serde(default)]
    pub key_change: KeyChange,
    /// A TRUNCATE becomes an event (op `t`, no key) on each truncated table's topic. Off by
    /// default, as Debezium skips them (`skipped.operations = t`).
    #[serde(default)]
    pub truncate: bool,
    /// Logical decoding messages (`pg_logical_emit_message`) whose prefix starts with one of
    /// these go to the `<topic_prefix>.message` topic; empty: none.
    #[serde(default)]
    pub message_prefixes: Vec<String>,
    /// How `numeric` values are carried: Avro decimals (NaN and ±Infinity beside them), or
    /// exact strings.
    #[serde(default)]
    pub numeric: NumericHandling,
    /// How `time` and `timestamp` values are carried: as Debezium's adaptive precision, or
    /// always in microseconds.
    #[serde(default)]
    pub time_precision: TimePrecisionHandling,
    /// How `hstore` values are carried: a JSON string, as Debezium's default, or an Avro map.
    #[serde(default)]
    pub hstore: HstoreHandling,
    /// Transaction metadata: BEGIN and END records on `<topic_prefix>.transaction`, and a
    /// `transaction` block (id, order) in every streamed event.
    #[serde(default)]
    pub transactions: bool,
    /// What an unchanged TOASTed text or bytes value is sent as (Debezium's
    /// `unavailable.value.placeholder`); the event also lists such columns by name.
    #[serde(default = "default_unchanged_placeholder")]
    pub unchanged_placeholder: String,
}

fn default_unchanged_placeholder() -> String {
    sluice_avro::UNCHANGED_PLACEHOLDER.to_owned()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum NumericHandling {
    /// `numeric(p, s)` as Connect's Decimal, unconstrained as Debezium's VariableScaleDecimal;
    /// NaN and ±Infinity are null there, exact in the event's `exact` field.
    #[default]
    Decimal,
    /// PostgreSQL's own text form in an Avro string.
    String,
}

impl NumericHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            NumericHandling::Decimal => "decimal",
            NumericHandling::String => "string",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimePrecisionHandling {
    /// `time(0..3)` and `timestamp(0..3)` in milliseconds (Debezium's `Time`, `Timestamp`),
    /// the others in microseconds: Debezium's default, `time.precision.mode = adaptive`.
    #[default]
    Adaptive,
    /// Always microseconds (`MicroTime`, `MicroTimestamp`).
    Microseconds,
}

impl TimePrecisionHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            TimePrecisionHandling::Adaptive => "adaptive",
            TimePrecisionHandling::Microseconds => "microseconds",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HstoreHandling {
    /// A JSON object of nullable strings (`io.debezium.data.Json`): Debezium's default,
    /// `hstore.handling.mode = json`.
    #[default]
    Json,
    /// An Avro map of nullable strings.
    Map,
}

impl HstoreHandling {
    pub fn as_str(self) -> &'static str {
        match self {
            HstoreHandling::Json => "json",
            HstoreHandling::Map => "map",
        }
    }
}

impl Default for EventsSection {
    fn default() -> Self {
        EventsSection {
            mode: EventsMode::default(),
            tombstones: true,
            key_change: KeyChange::default(),
            truncate: false,
            message_prefixes: Vec::new(),
            numeric: NumericHandling::default(),
            time_precision: TimePrecisionHandling::default(),
            hstore: HstoreHandling::default(),
            transactions: false,
            unchanged_placeholder: default_unchanged_placeholder(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventsMode {
    /// Debezium's envelope: before, after, source, op, ts_ms.
    #[default]
    Debezium,
    /// The row as it is after the change; a delete is a tombstone.
    Upsert,
}

impl EventsMode {
    pub fn as_str(self) -> &'static str {
        match self {
            EventsMode::Debezium => "debezium",
            EventsMode::Upsert => "upsert",
        }
    }
}

/// What an update that changes the primary key becomes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeyChange {
    /// As Debezium does: a delete under the old key (and its tombstone), then a create under
    /// the new one, so each key's history stays in its own partition.
    #[default]
    DeleteCreate,
}

impl KeyChange {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyChange::DeleteCreate => "delete_create",
        }
    }
}

/// `[shutdown]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ShutdownSection {
    /// How long a stop waits for in-flight events to be acknowledged before giving up on them.
    #[serde(default = "default_drain_timeout", with = "humantime_serde")]
    pub drain_timeout: Duration,
}

impl Default for ShutdownSection {
    fn default() -> Self {
        ShutdownSection {
            drain_timeout: default_drain_timeout(),
        }
    }
}

/// `[metrics]`: the Prometheus endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsSection {
    #[serde(default = "default_metrics_bind")]
    pub bind: SocketAddr,
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for MetricsSection {
    fn default() -> Self {
        MetricsSection {
            bind: default_metrics_bind(),
            enabled: true,
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Field helpers.

pub(super) fn deserialize_sslmode<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<SslMode, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(de::Error::custom)
}

pub(super) fn sslmode_str(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

pub(super) fn human(duration: Duration) -> String {
    humantime_serde::re::humantime::format_duration(duration).to_string()
}

fn default_pg_host() -> String {
    "127.0.0.1".to_owned()
}

fn default_pg_port() -> u16 {
    5432
}

fn default_connect_timeout() -> Duration {
    Duration::from_secs(10)
}

fn default_sluice() -> String {
    "sluice".to_owned()
}

fn default_true() -> bool {
    true
}

fn default_status_interval() -> Duration {
    Duration::from_secs(1)
}

fn default_retained_wal_warn_mib() -> u64 {
    1024
}

fn default_streamed_memory_mib() -> u32 {
    64
}

fn default_parallelism() -> usize {
    2
}

fn default_progress_interval() -> Duration {
    Duration::from_secs(10)
}

fn default_chunk_rows() -> u64 {
    100_000
}

fn default_partitions() -> i32 {
    3
}

fn default_replication_factor() -> i32 {
    1
}

fn default_drain_timeout() -> Duration {
    Duration::from_secs(30)
}

fn default_metrics_bind() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9187))
}
