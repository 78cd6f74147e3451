//! The section structs: what each key is, its type and its default.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use secrecy::SecretString;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use sluice_avro::{HstoreMode, NumericMode, TimePrecision, TypeOptions};
use sluice_kafka::KafkaConfig;
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
    /// Servers to try in turn instead of `host` and `port`, each `host` or `host:port` (the
    /// port defaults to `port`): the first that is a primary is used, found again at every
    /// start, so that after a failover sluice follows the promoted standby.
    #[serde(default)]
    pub hosts: Vec<String>,
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
    /// The servers `hosts` names, each as a section of its own with `host` and `port` set
    /// (and no `hosts`); `None` without `hosts`. A `host:port` with a bad port is left whole,
    /// to fail as a host name.
    pub fn candidates(&self) -> Option<Vec<PostgresSection>> {
        if self.hosts.is_empty() {
            return None;
        }
        let one = |entry: &String| {
            let (host, port) = match entry.rsplit_once(':') {
                Some((host, port)) if !host.contains(':') || host.ends_with(']') => {
                    match port.parse() {
                        Ok(port) => (host.trim_start_matches('[').trim_end_matches(']'), port),
                        Err(_) => (entry.as_str(), self.port),
                    }
                }
                _ => (entry.as_str(), self.port),
            };
            PostgresSection {
                host: host.to_owned(),
                port,
                hosts: Vec::new(),
                ..self.clone()
            }
        };
        Some(self.hosts.iter().map(one).collect())
    }

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

    /// libpq's connection string for the ordinary (catalog, COPY) connections made through
    /// tokio-postgres, with sluice's session settings; it holds the password, so it is secret.
    pub fn conninfo(&self) -> SecretString {
        let mut conninfo = format!(
            "host={} port={} dbname={} user={} application_name=sluice connect_timeout={} options={} \
             keepalives_idle=30 keepalives_interval=10 keepalives_retries=3 tcp_user_timeout=60",
            conninfo_value(&self.host),
            self.port,
            conninfo_value(&self.database),
            conninfo_value(&self.user),
            // libpq counts whole seconds, and 0 would mean no limit.
            self.connect_timeout.as_secs().max(1),
            conninfo_value(&sluice_postgres::session_options()),
        );
        if let Some(password) = &self.password {
            conninfo.push_str(" password=");
            conninfo.push_str(&conninfo_value(password.expose()));
        }
        // tokio-postgres knows disable, prefer and require; verification is the connector's.
        conninfo.push_str(match self.sslmode {
            SslMode::Disable => " sslmode=disable",
            SslMode::Prefer => " sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => " sslmode=require",
        });
        conninfo.into()
    }
}

/// A libpq connection-string value, quoted.
fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

const MIB: u64 = 1024 * 1024;

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
    /// Once streaming, how long sluice keeps starting again after transient failures in a row
    /// (PostgreSQL restarting, a connection cut) before it exits; zero: exit at once.
    #[serde(default = "default_reconnect_timeout", with = "humantime_serde")]
    pub reconnect_timeout: Duration,
    /// Create the slot as a failover slot (PostgreSQL 17 on), and make an existing one so:
    /// standbys with `sync_replication_slots = on` keep a copy to stream from after a
    /// promotion.
    #[serde(default)]
    pub failover: bool,
}

impl ReplicationSection {
    /// `streamed_memory_mib` in bytes, the unit `sluice-postgres` takes.
    pub fn streamed_memory_bytes(&self) -> usize {
        usize::try_from(u64::from(self.streamed_memory_mib) * MIB).unwrap_or(usize::MAX)
    }

    /// `retained_wal_warn_mib` in bytes, the unit the slot's figures come in.
    pub fn retained_wal_warn_bytes(&self) -> u64 {
        self.retained_wal_warn_mib.saturating_mul(MIB)
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
            reconnect_timeout: default_reconnect_timeout(),
            failover: false,
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
    /// Rows per chunk of an incremental snapshot: what one round of reading holds in memory.
    #[serde(default = "default_incremental_chunk_rows")]
    pub incremental_chunk_rows: u64,
    /// How often progress is logged when stderr is not a terminal.
    #[serde(default = "default_progress_interval", with = "humantime_serde")]
    pub progress_interval: Duration,
}

impl SnapshotSection {
    /// Whether the selected tables are copied when the slot is created.
    pub fn copies_tables(&self) -> bool {
        self.mode == SnapshotMode::Initial
    }

    /// Whether tables are snapshotted at all on their own (at the start, or when they join):
    /// then their progress is recorded in the state topic.
    pub fn snapshots_tables(&self) -> bool {
        self.mode != SnapshotMode::Never
    }
}

impl Default for SnapshotSection {
    fn default() -> Self {
        SnapshotSection {
            mode: SnapshotMode::default(),
            parallelism: default_parallelism(),
            chunk_rows: default_chunk_rows(),
            incremental_chunk_rows: default_incremental_chunk_rows(),
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
    /// Stream from the slot's creation on, and snapshot every selected table in chunks
    /// meanwhile (resumable; see docs/semantics.md).
    Incremental,
    /// Stream only what changes after the slot is created.
    Never,
}

impl SnapshotMode {
    pub fn as_str(self) -> &'static str {
        match self {
            SnapshotMode::Initial => "initial",
            SnapshotMode::Incremental => "incremental",
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

impl KafkaSection {
    /// The client settings `sluice-kafka` takes.
    pub fn client_config(&self) -> KafkaConfig {
        KafkaConfig {
            bootstrap_servers: self.bootstrap_servers.clone(),
            compression: self.compression.as_str().to_owned(),
            partitions: self.partitions,
            replication_factor: self.replication_factor,
            properties: self
                .producer
                .iter()
                .map(|(key, value)| (key.to_owned(), value.to_owned()))
                .collect(),
        }
    }
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
    /// How long one request to the registry may take; not a setting.
    pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

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

impl EventsSection {
    /// How types are carried, as `sluice-avro` takes it; what depends on the database (the
    /// money scale, interval infinities) at its defaults, to be set once connected.
    pub fn type_options(&self) -> TypeOptions {
        TypeOptions {
            numeric: match self.numeric {
                NumericHandling::Decimal => NumericMode::Decimal,
                NumericHandling::String => NumericMode::String,
            },
            hstore: match self.hstore {
                HstoreHandling::Json => HstoreMode::Json,
                HstoreHandling::Map => HstoreMode::Map,
            },
            time_precision: match self.time_precision {
                TimePrecisionHandling::Adaptive => TimePrecision::Adaptive,
                TimePrecisionHandling::Microseconds => TimePrecision::Microseconds,
            },
            ..TypeOptions::default()
        }
    }

    /// Upsert mode: the value is the bare row, a delete is a tombstone only.
    pub fn is_upsert(&self) -> bool {
        self.mode == EventsMode::Upsert
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

impl MetricsSection {
    /// Where `/metrics`, `/health` and `/ready` are served, if anywhere.
    pub fn endpoint(&self) -> Option<SocketAddr> {
        self.enabled.then_some(self.bind)
    }
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

fn default_reconnect_timeout() -> Duration {
    Duration::from_secs(300)
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

fn default_incremental_chunk_rows() -> u64 {
    8192
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

#[cfg(test)]
mod tests {
    use secrecy::ExposeSecret;

    use super::*;

    fn section<T: serde::de::DeserializeOwned>(toml: &str) -> T {
        toml::from_str(toml).unwrap()
    }

    #[test]
    fn conninfo_reads_back_as_the_section() {
        let pg: PostgresSection = section(
            r#"
            host = "db.internal"
            port = 6432
            database = "app db"
            user = "o'brien"
            password = "p\\ss 'word'"
            sslmode = "verify-full"
            sslrootcert = "/ca.pem"
            connect_timeout = "2s 500ms"
            "#,
        );
        let conninfo = pg.conninfo();
        assert!(!format!("{conninfo:?}").contains("word"));
        let parsed: tokio_postgres::Config = conninfo.expose_secret().parse().unwrap();
        assert_eq!(
            parsed.get_hosts(),
            [tokio_postgres::config::Host::Tcp("db.internal".to_owned())]
        );
        assert_eq!(parsed.get_ports(), [6432]);
        assert_eq!(parsed.get_dbname(), Some("app db"));
        assert_eq!(parsed.get_user(), Some("o'brien"));
        assert_eq!(parsed.get_password(), Some(&b"p\\ss 'word'"[..]));
        assert_eq!(parsed.get_application_name(), Some("sluice"));
        assert_eq!(
            parsed.get_options(),
            Some(sluice_postgres::session_options().as_str())
        );
        assert_eq!(parsed.get_connect_timeout(), Some(&Duration::from_secs(2)));
        // Verification is the TLS connector's; tokio-postgres only requires TLS.
        assert_eq!(
            parsed.get_ssl_mode(),
            tokio_postgres::config::SslMode::Require
        );

        let pg: PostgresSection = section(
            r#"
            host = "/var/run/postgresql"
            database = "app"
            user = "cdc"
            sslmode = "disable"
            connect_timeout = "100ms"
            "#,
        );
        let parsed: tokio_postgres::Config = pg.conninfo().expose_secret().parse().unwrap();
        assert_eq!(
            parsed.get_hosts(),
            [tokio_postgres::config::Host::Unix(
                "/var/run/postgresql".into()
            )]
        );
        assert_eq!(parsed.get_ports(), [5432]);
        assert_eq!(parsed.get_password(), None);
        assert_eq!(
            parsed.get_connect_timeout(),
            Some(&Duration::from_secs(1)),
            "under a second is a second, not libpq's 0 = forever"
        );
        assert_eq!(
            parsed.get_ssl_mode(),
            tokio_postgres::config::SslMode::Disable
        );
    }

    #[test]
    fn kafka_client_config() {
        let kafka: KafkaSection = section(
            r#"
            bootstrap_servers = "k1:9092,k2:9092"
            topic_prefix = "shop"
            partitions = 12
            replication_factor = 3
            compression = "zstd"
            [producer]
            "linger.ms" = 5
            "sasl.password" = "kafka-secret"
            "#,
        );
        let client = kafka.client_config();
        assert_eq!(client.bootstrap_servers, "k1:9092,k2:9092");
        assert_eq!(client.compression, "zstd");
        assert_eq!(client.partitions, 12);
        assert_eq!(client.replication_factor, 3);
        assert_eq!(
            client.properties.get("linger.ms").map(String::as_str),
            Some("5")
        );
        assert_eq!(client.properties.len(), 2);
        assert!(!format!("{client:?}").contains("kafka-secret"));
    }

    #[test]
    fn event_type_options() {
        let defaults = EventsSection::default().type_options();
        assert_eq!(defaults, TypeOptions::default());
        let events: EventsSection = section(
            r#"
            mode = "upsert"
            numeric = "string"
            time_precision = "microseconds"
            hstore = "map"
            "#,
        );
        let options = events.type_options();
        assert_eq!(options.numeric, NumericMode::String);
        assert_eq!(options.time_precision, TimePrecision::Microseconds);
        assert_eq!(options.hstore, HstoreMode::Map);
        assert_eq!(options.money_scale, TypeOptions::default().money_scale);
        assert!(events.is_upsert());
        assert!(!EventsSection::default().is_upsert());
    }

    #[test]
    fn derived_values() {
        let replication: ReplicationSection =
            section("streamed_memory_mib = 3\nretained_wal_warn_mib = 5");
        assert_eq!(replication.streamed_memory_bytes(), 3 << 20);
        assert_eq!(replication.retained_wal_warn_bytes(), 5 << 20);
        let huge: ReplicationSection = section(&format!("retained_wal_warn_mib = {}", u64::MAX));
        assert_eq!(huge.retained_wal_warn_bytes(), u64::MAX);

        assert!(SnapshotSection::default().copies_tables());
        assert!(!section::<SnapshotSection>("mode = \"never\"").copies_tables());

        assert_eq!(
            MetricsSection::default().endpoint(),
            Some(SocketAddr::from(([127, 0, 0, 1], 9187)))
        );
        assert_eq!(
            section::<MetricsSection>("enabled = false").endpoint(),
            None
        );
    }
}
