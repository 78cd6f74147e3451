//! sluice's configuration: a TOML file, then `SLUICE_<SECTION>__<KEY>` environment overrides.
//!
//! Every key is checked on its own against the type of its field before the whole file is
//! deserialized, so an error always names the key at fault (and the variable, for an override)
//! instead of serde's bare "invalid type". The key list below (`SCHEMA`) mirrors the structs; a
//! test keeps the two in step.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, Visitor};
use sluice_postgres::{ConnectConfig, Host, SslMode};
use toml::{Table, Value};

/// Prefix of every environment override; only names that also contain `__` are overrides, so
/// the tooling's own `SLUICE_LOG`, `SLUICE_PG_HOST`, … pass through untouched.
const ENV_PREFIX: &str = "SLUICE_";
/// Separator between the path segments of an override's name.
const ENV_SEPARATOR: &str = "__";
/// PostgreSQL truncates identifiers beyond NAMEDATALEN - 1 bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

/// Reads the configuration: the file at `path` (if any), then every `SLUICE_<SECTION>__<KEY>`
/// override in `env`, then defaults; checks it and reads the password files it names.
///
/// `env` is passed in (the binary gives `std::env::vars()`) so that tests never depend on, or
/// change, the process environment.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut sources = Sources {
        file: path.map(Path::to_path_buf),
        env: BTreeMap::new(),
    };
    let mut root = match path {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    check_file_keys(&root, &sources)?;
    flatten_producer(&mut root, &sources)?;

    // Sorted so that the outcome never depends on the environment's order.
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    overrides.sort();
    for (name, raw) in &overrides {
        apply_override(&mut root, &mut sources, name, raw)?;
    }
    // An override may set the whole producer table inline, nested keys and all.
    flatten_producer(&mut root, &sources)?;

    check_values(&root, &sources)?;
    check_required(&root)?;
    let mut config = Config::deserialize(root).map_err(|error| ConfigError::Deserialize {
        message: error.to_string().trim_end().to_owned(),
    })?;
    validate(&mut config, &sources)?;
    Ok(config)
}

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

/// `[tables]`: which tables are captured.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TablesSection {
    #[serde(default = "default_include")]
    pub include: Vec<TablePattern>,
    #[serde(default)]
    pub exclude: Vec<TablePattern>,
    /// Capture tables without a primary key or replica identity (their events have no key).
    #[serde(default)]
    pub allow_keyless: bool,
}

impl TablesSection {
    /// Whether `schema.table` is captured: some include pattern matches it and no exclude
    /// pattern does.
    pub fn selects(&self, schema: &str, table: &str) -> bool {
        self.include.iter().any(|p| p.matches(schema, table))
            && !self.exclude.iter().any(|p| p.matches(schema, table))
    }
}

impl Default for TablesSection {
    fn default() -> Self {
        TablesSection {
            include: default_include(),
            exclude: Vec::new(),
            allow_keyless: false,
        }
    }
}

/// `schema.table`, either part with `*` wildcards, each matching any run of characters
/// (possibly empty).
///
/// The parts are matched separately, so `*` never spans the dot, and case-sensitively, as
/// PostgreSQL stores the names.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub struct TablePattern {
    schema: String,
    table: String,
}

impl TablePattern {
    pub fn matches(&self, schema: &str, table: &str) -> bool {
        glob(self.schema.as_bytes(), schema.as_bytes())
            && glob(self.table.as_bytes(), table.as_bytes())
    }
}

impl std::str::FromStr for TablePattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut parts = s.split('.');
        match (parts.next(), parts.next(), parts.next()) {
            (Some(schema), Some(table), None) if !schema.is_empty() && !table.is_empty() => {
                Ok(TablePattern {
                    schema: schema.to_owned(),
                    table: table.to_owned(),
                })
            }
            _ => Err(format!(
                "invalid table pattern {s:?}: expected schema.table, e.g. \"public.*\""
            )),
        }
    }
}

impl TryFrom<String> for TablePattern {
    type Error = String;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl fmt::Display for TablePattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
    }
}

/// `*`-only glob over bytes. Byte-wise is safe for UTF-8: a literal run can only match where a
/// character starts, since no character's encoding begins with a continuation byte.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    // Where the last `*` was seen, and where in `text` it currently stops: on a mismatch the
    // star swallows one more byte and matching resumes after it.
    let mut backtrack: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                p += 1;
                backtrack = Some((p, t));
            }
            Some(&c) if text.get(t) == Some(&c) => {
                p += 1;
                t += 1;
            }
            _ => match backtrack {
                Some((star_p, star_t)) => {
                    p = star_p;
                    t = star_t + 1;
                    backtrack = Some((star_p, t));
                }
                None => return false,
            },
        }
    }
    pattern
        .get(p..)
        .is_some_and(|rest| rest.iter().all(|&c| c == b'*'))
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

/// `[kafka.producer]`: librdkafka properties passed through as they are, all as strings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProducerProperties(BTreeMap<String, String>);

impl ProducerProperties {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for ProducerProperties {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        ProducerProperties(iter.into_iter().collect())
    }
}

// SASL and SSL passwords travel through here too; they must not reach a log.
impl fmt::Debug for ProducerProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, redact_property(k, v))))
            .finish()
    }
}

impl<'de> Deserialize<'de> for ProducerProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;

        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = ProducerProperties;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of librdkafka properties")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut properties = BTreeMap::new();
                while let Some((key, PropertyValue(value))) = map.next_entry()? {
                    properties.insert(key, value);
                }
                Ok(ProducerProperties(properties))
            }
        }

        deserializer.deserialize_map(PropertiesVisitor)
    }
}

/// A librdkafka property value: librdkafka takes strings only, so numbers and booleans written
/// naturally in TOML are turned into their text.
struct PropertyValue(String);

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl Visitor<'_> for ValueVisitor {
            type Value = PropertyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Whether a librdkafka property's value is a credential (passwords, secrets, PEM keys, SASL
/// configuration), to be hidden from Debug and the summary.
fn is_secret_property(key: &str) -> bool {
    [
        "password",
        "secret",
        "pem",
        "jaas",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|word| key.contains(word))
}

fn redact_property<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_property(key) {
        "<redacted>"
    } else {
        value
    }
}

const ALWAYS_ACKS_ALL: &str = "sluice always uses acks=all and enable.idempotence=true, so that \
     no acknowledged event is lost or duplicated; remove this setting";

/// Producer properties sluice sets itself, and why they cannot be overridden.
const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("acks", ALWAYS_ACKS_ALL),
    ("request.required.acks", ALWAYS_ACKS_ALL),
    ("enable.idempotence", ALWAYS_ACKS_ALL),
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    (
        "metadata.broker.list",
        "set kafka.bootstrap_servers instead",
    ),
    ("compression.type", "set kafka.compression instead"),
    ("compression.codec", "set kafka.compression instead"),
    (
        "partitioner",
        "sluice places keys as Java's default partitioner does, so a key always lands on one \
         partition; remove this setting",
    ),
];

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
    fn auth_summary(&self) -> String {
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

/// A password, token or key: a [`secrecy::SecretString`] (wiped from memory when dropped),
/// whose Debug and Display print `<redacted>`, so it cannot leak through a log line.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(SecretString::from(secret.into()))
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret as the library clients take it.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Where a key's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// Neither: the key is absent (or has its default).
    NotSet,
}

/// A configuration that cannot be used, naming the key (and the variable or file) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: unknown key{}", at(.key, .origin), did_you_mean(.suggestion.as_deref(), .origin))]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The closest known key, if one is near enough to be a likely typo.
        suggestion: Option<String>,
    },
    /// A wrong type or an unacceptable value.
    #[error("{}: {message}", at(.key, .origin))]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
    #[error("{key}: required key missing; set it in the file or with {env_var}")]
    Missing { key: String, env_var: String },
    #[error("{}: cannot read {}: {error}", at(.key, .origin), .path.display())]
    PasswordFile {
        key: String,
        origin: Origin,
        path: PathBuf,
        error: std::io::Error,
    },
    /// Deserialization failed after every key passed its own check: the key list and the
    /// structs disagree, which is a bug.
    #[error("configuration: {message}")]
    Deserialize { message: String },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::PasswordFile { key, .. } => Some(key),
            ConfigError::Read { .. }
            | ConfigError::Syntax { .. }
            | ConfigError::Deserialize { .. } => None,
        }
    }
}

fn at(key: &str, origin: &Origin) -> String {
    match origin {
        Origin::File(path) => format!("{}: {key}", path.display()),
        Origin::Env(var) => format!("{key} (from {var})"),
        Origin::NotSet => key.to_owned(),
    }
}

fn did_you_mean(suggestion: Option<&str>, origin: &Origin) -> String {
    match (suggestion, origin) {
        (None, _) => String::new(),
        // Someone writing a variable wants the variable's spelling too.
        (Some(key), Origin::Env(_)) => format!("; did you mean {key} ({})?", env_var_for(key)),
        (Some(key), _) => format!("; did you mean {key}?"),
    }
}

// ---------------------------------------------------------------------------------------------
// The key list.

/// How an override's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A string field: the text as it is (unless it is a quoted TOML string), so a password
    /// of digits or a database named `true` is not turned into a number or a boolean.
    Text,
    /// Parsed as a TOML value when it parses (numbers, booleans, arrays), else a string.
    Typed,
    /// `kafka.producer`: a table whose keys are librdkafka property names.
    Producer,
}

/// Deserializes one value as its field would, for an error that names the key.
type Check = fn(Value) -> Result<(), toml::de::Error>;

#[derive(Debug)]
struct KeySpec {
    section: &'static str,
    key: &'static str,
    kind: Kind,
    required: bool,
    check: Check,
}

const fn opt(section: &'static str, key: &'static str, kind: Kind, check: Check) -> KeySpec {
    KeySpec {
        section,
        key,
        kind,
        required: false,
        check,
    }
}

const fn req(section: &'static str, key: &'static str, check: Check) -> KeySpec {
    KeySpec {
        section,
        key,
        kind: Kind::Text,
        required: true,
        check,
    }
}

fn check<T: DeserializeOwned>(value: Value) -> Result<(), toml::de::Error> {
    T::deserialize(value).map(drop)
}

fn check_duration(value: Value) -> Result<(), toml::de::Error> {
    humantime_serde::deserialize::<Duration, _>(value).map(drop)
}

fn check_sslmode(value: Value) -> Result<(), toml::de::Error> {
    deserialize_sslmode(value).map(drop)
}

use Kind::{Producer, Text, Typed};

const SECTIONS: [&str; 9] = [
    "postgres",
    "replication",
    "tables",
    "snapshot",
    "kafka",
    "registry",
    "events",
    "shutdown",
    "metrics",
];

/// Every key, in the structs' order; `kind` and `check` follow each field's type.
const SCHEMA: &[KeySpec] = &[
    opt("postgres", "host", Text, check::<String>),
    opt("postgres", "port", Typed, check::<u16>),
    req("postgres", "database", check::<String>),
    req("postgres", "user", check::<String>),
    opt("postgres", "password", Text, check::<Secret>),
    opt("postgres", "password_file", Text, check::<PathBuf>),
    opt("postgres", "sslmode", Text, check_sslmode),
    opt("postgres", "sslrootcert", Text, check::<PathBuf>),
    opt("postgres", "connect_timeout", Text, check_duration),
    opt("replication", "slot", Text, check::<String>),
    opt("replication", "publication", Text, check::<String>),
    opt("replication", "create_publication", Typed, check::<bool>),
    opt("replication", "binary", Typed, check::<bool>),
    opt("replication", "status_interval", Text, check_duration),
    opt("replication", "streamed_memory_mib", Typed, check::<u32>),
    opt("replication", "heartbeat_interval", Text, check_duration),
    opt("replication", "retained_wal_warn_mib", Typed, check::<u64>),
    opt("tables", "include", Typed, check::<Vec<TablePattern>>),
    opt("tables", "exclude", Typed, check::<Vec<TablePattern>>),
    opt("tables", "allow_keyless", Typed, check::<bool>),
    opt("snapshot", "mode", Text, check::<SnapshotMode>),
    opt("snapshot", "parallelism", Typed, check::<usize>),
    opt("snapshot", "chunk_rows", Typed, check::<u64>),
    opt("snapshot", "progress_interval", Text, check_duration),
    req("kafka", "bootstrap_servers", check::<String>),
    req("kafka", "topic_prefix", check::<String>),
    opt("kafka", "partitions", Typed, check::<i32>),
    opt("kafka", "replication_factor", Typed, check::<i32>),
    opt("kafka", "compression", Text, check::<Compression>),
    opt("kafka", "producer", Producer, check::<ProducerProperties>),
    req("registry", "url", check::<String>),
    opt("registry", "username", Text, check::<String>),
    opt("registry", "password", Text, check::<Secret>),
    opt("registry", "password_file", Text, check::<PathBuf>),
    opt("registry", "token", Text, check::<Secret>),
    opt("registry", "token_file", Text, check::<PathBuf>),
    opt("registry", "ca_file", Text, check::<PathBuf>),
    opt("registry", "cert_file", Text, check::<PathBuf>),
    opt("registry", "key_file", Text, check::<PathBuf>),
    opt("registry", "compatibility", Text, check::<Compatibility>),
    opt("events", "mode", Text, check::<EventsMode>),
    opt("events", "tombstones", Typed, check::<bool>),
    opt("events", "key_change", Text, check::<KeyChange>),
    opt("events", "truncate", Typed, check::<bool>),
    opt("events", "message_prefixes", Typed, check::<Vec<String>>),
    opt("events", "numeric", Text, check::<NumericHandling>),
    opt(
        "events",
        "time_precision",
        Text,
        check::<TimePrecisionHandling>,
    ),
    opt("events", "hstore", Text, check::<HstoreHandling>),
    opt("events", "transactions", Typed, check::<bool>),
    opt("events", "unchanged_placeholder", Text, check::<String>),
    opt("shutdown", "drain_timeout", Text, check_duration),
    opt("metrics", "bind", Text, check::<SocketAddr>),
    opt("metrics", "enabled", Typed, check::<bool>),
];

fn spec_for(section: &str, key: &str) -> Option<&'static KeySpec> {
    SCHEMA
        .iter()
        .find(|spec| spec.section == section && spec.key == key)
}

/// The override that sets a dotted key: `postgres.port` → `SLUICE_POSTGRES__PORT`,
/// `kafka.producer.linger.ms` → `SLUICE_KAFKA__PRODUCER__LINGER_MS`.
fn env_var_for(dotted: &str) -> String {
    let mut parts = dotted.splitn(3, '.');
    let segments: Vec<String> = match (parts.next(), parts.next(), parts.next()) {
        (Some(section), Some(key), Some(rest)) => {
            vec![section.to_owned(), key.to_owned(), rest.replace('.', "_")]
        }
        _ => dotted.split('.').map(str::to_owned).collect(),
    };
    format!(
        "{ENV_PREFIX}{}",
        segments.join(ENV_SEPARATOR).to_ascii_uppercase()
    )
}

// ---------------------------------------------------------------------------------------------
// Suggestions.

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so `prot`
/// is one edit from `port`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        if let Some(first) = row.first_mut() {
            *first = i;
        }
    }
    if let Some(first) = rows.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The candidate within two edits of `name`, the nearest first.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The known key an unknown `section.key` was probably meant to be.
fn suggest_key(section: &str, key: &str) -> Option<String> {
    let section = if SECTIONS.contains(&section) {
        section
    } else {
        closest(section, SECTIONS.iter().copied())?
    };
    if spec_for(section, key).is_some() {
        return Some(format!("{section}.{key}"));
    }
    let in_section = SCHEMA
        .iter()
        .filter(|spec| spec.section == section)
        .map(|spec| spec.key);
    if let Some(near) = closest(key, in_section) {
        return Some(format!("{section}.{near}"));
    }
    // The right key in the wrong section, e.g. `kafka.url` for `registry.url`.
    SCHEMA
        .iter()
        .find(|spec| spec.key == key)
        .map(|spec| format!("{}.{}", spec.section, spec.key))
}

/// The section (or key) an unknown top-level name was probably meant to be.
fn suggest_section(name: &str) -> Option<String> {
    closest(name, SECTIONS.iter().copied())
        .map(str::to_owned)
        .or_else(|| {
            SCHEMA
                .iter()
                .find(|spec| spec.key == name)
                .map(|spec| format!("{}.{}", spec.section, spec.key))
        })
}

// ---------------------------------------------------------------------------------------------
// Loading.

/// Where each value came from: the variable that set it, else the file (if there is one; a
/// key in neither has its default, and the file is where to set it).
#[derive(Debug)]
struct Sources {
    file: Option<PathBuf>,
    /// Key path (section, key[, property]) → the variable that set it.
    env: BTreeMap<Vec<String>, String>,
}

impl Sources {
    fn file_origin(&self) -> Origin {
        self.file.clone().map_or(Origin::NotSet, Origin::File)
    }

    fn origin(&self, path: &[&str]) -> Origin {
        // A variable may have set the key itself or a table holding it.
        for len in (1..=path.len()).rev() {
            let prefix: Vec<String> = path.iter().take(len).map(|s| (*s).to_owned()).collect();
            if let Some(var) = self.env.get(&prefix) {
                return Origin::Env(var.clone());
            }
        }
        self.file_origin()
    }

    fn invalid(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: path.join("."),
            origin: self.origin(path),
            message: message.into(),
        }
    }
}

fn lookup<'a>(root: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = root.get(*first)?;
    for part in rest {
        value = value.as_table()?.get(*part)?;
    }
    Some(value)
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    text.parse::<Table>().map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().to_owned(),
    })
}

/// Every section and key of the file must be known.
fn check_file_keys(root: &Table, sources: &Sources) -> Result<(), ConfigError> {
    let origin = sources.file_origin();
    for (section, value) in root {
        if !SECTIONS.contains(&section.as_str()) {
            return Err(ConfigError::UnknownKey {
                key: section.clone(),
                origin,
                suggestion: suggest_section(section),
            });
        }
        let Some(table) = value.as_table() else {
            return Err(ConfigError::Invalid {
                key: section.clone(),
                origin,
                message: format!("expected a table ([{section}]), found {}", value.type_str()),
            });
        };
        for key in table.keys() {
            if spec_for(section, key).is_none() {
                return Err(ConfigError::UnknownKey {
                    key: format!("{section}.{key}"),
                    origin,
                    suggestion: suggest_key(section, key),
                });
            }
        }
    }
    Ok(())
}

/// Turns `[kafka.producer] linger.ms = 5`, which TOML reads as nested tables, into the one
/// property `linger.ms`, so both the dotted and the quoted spelling work.
fn flatten_producer(root: &mut Table, sources: &Sources) -> Result<(), ConfigError> {
    let Some(Value::Table(producer)) = root
        .get_mut("kafka")
        .and_then(Value::as_table_mut)
        .and_then(|kafka| kafka.get_mut("producer"))
    else {
        return Ok(());
    };
    if producer.values().all(|value| !value.is_table()) {
        return Ok(());
    }
    let mut flat = Table::new();
    flatten_into(&mut flat, "", std::mem::take(producer), sources)?;
    *producer = flat;
    Ok(())
}

fn flatten_into(
    flat: &mut Table,
    prefix: &str,
    table: Table,
    sources: &Sources,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(inner) => flatten_into(flat, &name, inner, sources)?,
            value => {
                if flat.insert(name.clone(), value).is_some() {
                    return Err(ConfigError::Invalid {
                        key: format!("kafka.producer.{name}"),
                        origin: sources.origin(&["kafka", "producer", &name]),
                        message: "given twice (once quoted, once as dotted keys)".to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Applies one `SLUICE_<SECTION>__<KEY>` variable to the table.
fn apply_override(
    root: &mut Table,
    sources: &mut Sources,
    name: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let rest = name.strip_prefix(ENV_PREFIX).unwrap_or(name);
    let segments: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    let origin = Origin::Env(name.to_owned());
    let unknown = |suggestion: Option<String>| ConfigError::UnknownKey {
        key: segments.join("."),
        origin: origin.clone(),
        suggestion,
    };
    if segments.iter().any(String::is_empty) {
        return Err(unknown(None));
    }
    let (path, kind) = match segments.as_slice() {
        // librdkafka names use dots, which cannot appear in a variable name: `_` stands for them.
        [section, table, property @ ..]
            if section == "kafka" && table == "producer" && !property.is_empty() =>
        {
            let property = property
                .iter()
                .map(|part| part.replace('_', "."))
                .collect::<Vec<_>>()
                .join(".");
            (
                vec![section.clone(), table.clone(), property],
                // The value becomes a string anyway; keep it exactly as written.
                Text,
            )
        }
        [section, key] => match spec_for(section, key) {
            Some(spec) => (vec![section.clone(), key.clone()], spec.kind),
            None => return Err(unknown(suggest_key(section, key))),
        },
        [section, key, ..] => return Err(unknown(suggest_key(section, key))),
        _ => return Err(unknown(None)),
    };
    let value = override_value(raw, kind);

    let mut table = &mut *root;
    let (last, parents) = path.split_last().ok_or_else(|| unknown(None))?;
    for (depth, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => table = inner,
            other => {
                let parent: Vec<&str> = path.iter().take(depth + 1).map(String::as_str).collect();
                return Err(ConfigError::Invalid {
                    key: parent.join("."),
                    origin: sources.origin(&parent),
                    message: format!(
                        "expected a table, found {}; {name} cannot set a key inside it",
                        other.type_str()
                    ),
                });
            }
        }
    }
    table.insert(last.clone(), value);
    sources.env.insert(path, name.to_owned());
    Ok(())
}

fn override_value(raw: &str, kind: Kind) -> Value {
    match (raw.parse::<Value>(), kind) {
        (Ok(Value::String(s)), _) => Value::String(s),
        (Ok(value), Typed | Producer) => value,
        _ => Value::String(raw.to_owned()),
    }
}

/// Each present key must deserialize as its field does.
fn check_values(root: &Table, sources: &Sources) -> Result<(), ConfigError> {
    for spec in SCHEMA {
        let path = [spec.section, spec.key];
        let Some(value) = lookup(root, &path) else {
            continue;
        };
        if spec.kind == Producer {
            check_producer(value, sources)?;
        }
        (spec.check)(value.clone()).map_err(|error| sources.invalid(&path, error.message()))?;
    }
    Ok(())
}

/// Checked per property, so the error names the property rather than the whole table.
fn check_producer(value: &Value, sources: &Sources) -> Result<(), ConfigError> {
    let Some(table) = value.as_table() else {
        return Err(sources.invalid(
            &["kafka", "producer"],
            format!(
                "expected a table of librdkafka properties, found {}",
                value.type_str()
            ),
        ));
    };
    for (key, value) in table {
        if !matches!(
            value,
            Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_)
        ) {
            return Err(sources.invalid(
                &["kafka", "producer", key],
                format!(
                    "expected a string, number or boolean, found {}",
                    value.type_str()
                ),
            ));
        }
    }
    Ok(())
}

fn check_required(root: &Table) -> Result<(), ConfigError> {
    for spec in SCHEMA.iter().filter(|spec| spec.required) {
        if lookup(root, &[spec.section, spec.key]).is_none() {
            let key = format!("{}.{}", spec.section, spec.key);
            return Err(ConfigError::Missing {
                env_var: env_var_for(&key),
                key,
            });
        }
    }
    Ok(())
}

/// What the types alone cannot say; also reads the password files.
fn validate(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    validate_postgres(&mut config.postgres, sources)?;
    validate_replication(&config.replication, sources)?;
    if config.tables.include.is_empty() {
        return Err(sources.invalid(
            &["tables", "include"],
            "is empty, so no table would be captured",
        ));
    }
    if config.snapshot.parallelism == 0 {
        return Err(sources.invalid(&["snapshot", "parallelism"], "must be at least 1"));
    }
    if config.snapshot.chunk_rows == 0 {
        return Err(sources.invalid(&["snapshot", "chunk_rows"], "must be at least 1"));
    }
    validate_kafka(&config.kafka, sources)?;
    validate_registry(&mut config.registry, sources)?;
    Ok(())
}

fn validate_postgres(pg: &mut PostgresSection, sources: &Sources) -> Result<(), ConfigError> {
    for (key, value) in [
        ("host", &pg.host),
        ("database", &pg.database),
        ("user", &pg.user),
    ] {
        if value.is_empty() {
            return Err(sources.invalid(&["postgres", key], "must not be empty"));
        }
    }
    if pg.port == 0 {
        return Err(sources.invalid(&["postgres", "port"], "must be between 1 and 65535"));
    }
    resolve_password(
        "postgres",
        &mut pg.password,
        pg.password_file.as_deref(),
        sources,
    )?;
    if matches!(pg.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && pg.sslrootcert.is_none() {
        return Err(sources.invalid(
            &["postgres", "sslrootcert"],
            format!(
                "required when postgres.sslmode is {}: the CA certificate to verify the server with",
                sslmode_str(pg.sslmode)
            ),
        ));
    }
    if pg.connect_timeout.is_zero() {
        return Err(sources.invalid(&["postgres", "connect_timeout"], "must be more than 0"));
    }
    Ok(())
}

/// Rejects `password` with `password_file`, and reads the file into `password`.
fn resolve_password(
    section: &str,
    password: &mut Option<Secret>,
    password_file: Option<&Path>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    resolve_secret(
        [section, "password"],
        [section, "password_file"],
        password,
        password_file,
        sources,
    )
}

/// Rejects a secret given both inline (`key`) and in a file (`file_key`), and reads the file
/// into `secret`.
fn resolve_secret(
    key: [&str; 2],
    file_key: [&str; 2],
    secret: &mut Option<Secret>,
    file: Option<&Path>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    match (secret.as_ref(), file) {
        (Some(_), Some(_)) => Err(sources.invalid(
            &file_key,
            format!("give {} or {}, not both", key.join("."), file_key.join(".")),
        )),
        (Some(inline), None) if inline.expose().is_empty() => Err(sources.invalid(
            &key,
            format!("is empty; leave the key out for no {}", key[1]),
        )),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| ConfigError::PasswordFile {
                    key: file_key.join("."),
                    origin: sources.origin(&file_key),
                    path: path.to_path_buf(),
                    error,
                })?;
            // Files written by `echo` or an editor end in a newline that is not the secret.
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(sources.invalid(&file_key, format!("{} is empty", path.display())));
            }
            *secret = Some(Secret::new(text));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_replication(rep: &ReplicationSection, sources: &Sources) -> Result<(), ConfigError> {
    // PostgreSQL's own rule for slot names.
    let slot_ok = !rep.slot.is_empty()
        && rep.slot.len() <= MAX_IDENTIFIER_LEN
        && rep
            .slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !slot_ok {
        return Err(sources.invalid(
            &["replication", "slot"],
            format!(
                "invalid slot name {:?}: use 1 to {MAX_IDENTIFIER_LEN} lower-case letters, digits and underscores",
                rep.slot
            ),
        ));
    }
    if rep.publication.is_empty() || rep.publication.len() > MAX_IDENTIFIER_LEN {
        return Err(sources.invalid(
            &["replication", "publication"],
            format!("must be 1 to {MAX_IDENTIFIER_LEN} bytes long"),
        ));
    }
    if rep.status_interval.is_zero() {
        return Err(sources.invalid(&["replication", "status_interval"], "must be more than 0"));
    }
    if rep.streamed_memory_mib == 0 {
        return Err(sources.invalid(
            &["replication", "streamed_memory_mib"],
            "must be at least 1",
        ));
    }
    Ok(())
}

fn validate_kafka(kafka: &KafkaSection, sources: &Sources) -> Result<(), ConfigError> {
    if kafka.bootstrap_servers.trim().is_empty() {
        return Err(sources.invalid(&["kafka", "bootstrap_servers"], "must not be empty"));
    }
    let prefix = &kafka.topic_prefix;
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(sources.invalid(
            &["kafka", "topic_prefix"],
            format!(
                "invalid topic prefix {prefix:?}: use letters, digits, '_', '-' and '.' (at least one)"
            ),
        ));
    }
    for (key, value) in [
        ("partitions", kafka.partitions),
        ("replication_factor", kafka.replication_factor),
    ] {
        if value < 1 {
            return Err(sources.invalid(&["kafka", key], "must be at least 1"));
        }
    }
    for &(property, why) in RESERVED_PROPERTIES {
        if kafka.producer.get(property).is_some() {
            return Err(sources.invalid(&["kafka", "producer", property], why));
        }
    }
    Ok(())
}

fn validate_registry(registry: &mut RegistrySection, sources: &Sources) -> Result<(), ConfigError> {
    let url = &registry.url;
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(sources.invalid(
            &["registry", "url"],
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(sources.invalid(&["registry", "url"], format!("{url:?} has no host")));
    }
    // Credentials in the URL would be logged with it.
    if authority.contains('@') {
        return Err(sources.invalid(
            &["registry", "url"],
            "must not hold credentials; set registry.username and registry.password (or password_file)",
        ));
    }
    resolve_password(
        "registry",
        &mut registry.password,
        registry.password_file.as_deref(),
        sources,
    )?;
    resolve_secret(
        ["registry", "token"],
        ["registry", "token_file"],
        &mut registry.token,
        registry.token_file.as_deref(),
        sources,
    )?;
    // The key a secret came from: its file's, when read from one.
    let given = |key: &'static str, file: &Option<PathBuf>| {
        if file.is_some() {
            ["registry", key]
        } else {
            ["registry", key.trim_end_matches("_file")]
        }
    };
    match (&registry.username, &registry.password, &registry.token) {
        (Some(_), None, _) => {
            return Err(sources.invalid(
                &["registry", "username"],
                "basic auth needs registry.password or registry.password_file too",
            ));
        }
        (None, Some(_), _) => {
            return Err(sources.invalid(
                &given("password_file", &registry.password_file),
                "basic auth needs registry.username too",
            ));
        }
        (Some(_), Some(_), Some(_)) => {
            return Err(sources.invalid(
                &given("token_file", &registry.token_file),
                "give basic auth (registry.username and password) or a bearer token, not both",
            ));
        }
        _ => {}
    }
    match (&registry.cert_file, &registry.key_file) {
        (Some(_), None) => {
            return Err(sources.invalid(
                &["registry", "cert_file"],
                "a client certificate needs its key too: set registry.key_file",
            ));
        }
        (None, Some(_)) => {
            return Err(sources.invalid(
                &["registry", "key_file"],
                "a client key needs its certificate too: set registry.cert_file",
            ));
        }
        _ => {}
    }
    if !url.starts_with("https://") {
        for (key, set) in [
            ("ca_file", registry.ca_file.is_some()),
            ("cert_file", registry.cert_file.is_some()),
        ] {
            if set {
                return Err(sources.invalid(
                    &["registry", key],
                    "takes effect over TLS only: registry.url must start with https://",
                ));
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Field helpers.

fn deserialize_sslmode<'de, D: Deserializer<'de>>(deserializer: D) -> Result<SslMode, D::Error> {
    let text = String::deserialize(deserializer)?;
    text.parse().map_err(de::Error::custom)
}

fn sslmode_str(mode: SslMode) -> &'static str {
    match mode {
        SslMode::Disable => "disable",
        SslMode::Prefer => "prefer",
        SslMode::Require => "require",
        SslMode::VerifyCa => "verify-ca",
        SslMode::VerifyFull => "verify-full",
    }
}

fn human(duration: Duration) -> String {
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

fn default_include() -> Vec<TablePattern> {
    vec![TablePattern {
        schema: "public".to_owned(),
        table: "*".to_owned(),
    }]
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

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
        [postgres]
        database = "app"
        user = "cdc"

        [kafka]
        bootstrap_servers = "broker:9092"
        topic_prefix = "shop"

        [registry]
        url = "http://registry:8081"
    "#;

    /// A file under the temp directory, removed when dropped.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, contents: &str) -> Self {
            let path = std::env::temp_dir()
                .join(format!("sluice-config-test-{}-{name}", std::process::id()));
            std::fs::write(&path, contents).unwrap();
            TempFile(path)
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn env(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn load_str(name: &str, toml: &str, vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        let file = TempFile::new(name, toml);
        load(Some(&file.0), env(vars))
    }

    fn error_str(name: &str, toml: &str, vars: &[(&str, &str)]) -> String {
        load_str(name, toml, vars).unwrap_err().to_string()
    }

    #[test]
    fn defaults() {
        let config = load_str("defaults.toml", MINIMAL, &[]).unwrap();
        let pg = &config.postgres;
        assert_eq!(pg.host, "127.0.0.1");
        assert_eq!(pg.port, 5432);
        assert_eq!(pg.database, "app");
        assert_eq!(pg.user, "cdc");
        assert_eq!(pg.password, None);
        assert_eq!(pg.password_file, None);
        assert_eq!(pg.sslmode, SslMode::Prefer);
        assert_eq!(pg.sslrootcert, None);
        assert_eq!(pg.connect_timeout, Duration::from_secs(10));
        assert!(!pg.is_unix_socket());
        assert_eq!(config.replication, ReplicationSection::default());
        assert_eq!(config.replication.slot, "sluice");
        assert_eq!(config.replication.publication, "sluice");
        assert!(config.replication.create_publication);
        assert!(!config.replication.binary);
        assert_eq!(config.replication.status_interval, Duration::from_secs(1));
        assert_eq!(config.replication.streamed_memory_mib, 64);
        assert_eq!(config.replication.heartbeat_interval, None);
        assert_eq!(config.replication.streamed_memory_bytes(), 64 << 20);
        assert_eq!(config.tables.include, vec!["public.*".parse().unwrap()]);
        assert!(config.tables.exclude.is_empty());
        assert!(!config.tables.allow_keyless);
        assert_eq!(config.snapshot.mode, SnapshotMode::Initial);
        assert_eq!(config.snapshot.parallelism, 2);
        assert_eq!(config.snapshot.chunk_rows, 100_000);
        assert_eq!(config.kafka.bootstrap_servers, "broker:9092");
        assert_eq!(config.kafka.topic_prefix, "shop");
        assert_eq!(config.kafka.partitions, 3);
        assert_eq!(config.kafka.replication_factor, 1);
        assert_eq!(config.kafka.compression, Compression::Lz4);
        assert!(config.kafka.producer.is_empty());
        assert_eq!(config.registry.url, "http://registry:8081");
        assert_eq!(config.registry.username, None);
        assert_eq!(config.registry.password, None);
        assert_eq!(config.registry.compatibility, None);
        assert_eq!(config.events.mode, EventsMode::Debezium);
        assert!(config.events.tombstones);
        assert_eq!(config.events.key_change, KeyChange::DeleteCreate);
        assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(30));
        assert_eq!(config.metrics.bind, "127.0.0.1:9187".parse().unwrap());
        assert!(config.metrics.enabled);
    }

    #[test]
    fn only_environment() {
        let config = load(
            None,
            env(&[
                ("SLUICE_POSTGRES__DATABASE", "app"),
                ("SLUICE_POSTGRES__USER", "cdc"),
                ("SLUICE_KAFKA__BOOTSTRAP_SERVERS", "broker:9092"),
                ("SLUICE_KAFKA__TOPIC_PREFIX", "shop"),
                ("SLUICE_REGISTRY__URL", "https://registry"),
            ]),
        )
        .unwrap();
        assert_eq!(config.postgres.database, "app");
        assert_eq!(config.registry.url, "https://registry");
    }

    const FULL: &str = r#"
        [postgres]
        host = "/var/run/postgresql"
        port = 6432
        database = "app"
        user = "cdc"
        password = "hunter2-secret"
        sslmode = "verify-full"
        sslrootcert = "/etc/ssl/pg-ca.pem"
        connect_timeout = "2s 500ms"

        [replication]
        slot = "shop_cdc_1"
        publication = "shop_pub"
        create_publication = false
        binary = true
        status_interval = "250ms"
        streamed_memory_mib = 128
        heartbeat_interval = "30s"
        retained_wal_warn_mib = 2048

        [tables]
        include = ["public.*", "sales.order*"]
        exclude = ["public.tmp_*"]
        allow_keyless = true

        [snapshot]
        mode = "never"
        parallelism = 8
        chunk_rows = 5000
        progress_interval = "2s"

        [kafka]
        bootstrap_servers = "k1:9092,k2:9092"
        topic_prefix = "shop.prod-1"
        partitions = 12
        replication_factor = 3
        compression = "zstd"

        [kafka.producer]
        linger.ms = 20
        "batch.size" = "131072"
        "socket.keepalive.enable" = true
        "sasl.password" = "kafka-secret"

        [registry]
        url = "https://registry.example:8081/apis/ccompat/v7"
        username = "sr-user"
        password = "registry-secret"
        ca_file = "/etc/sluice/registry-ca.pem"
        cert_file = "/etc/sluice/registry-client.pem"
        key_file = "/etc/sluice/registry-client.key"
        compatibility = "FULL_TRANSITIVE"

        [events]
        mode = "upsert"
        tombstones = false
        key_change = "delete_create"
        truncate = true
        message_prefixes = ["audit", "app."]
        numeric = "string"
        time_precision = "microseconds"
        hstore = "map"
        transactions = true
        unchanged_placeholder = "<unchanged>"

        [shutdown]
        drain_timeout = "1m"

        [metrics]
        bind = "0.0.0.0:9000"
        enabled = false
    "#;

    #[test]
    fn full_file() {
        let config = load_str("full.toml", FULL, &[]).unwrap();
        let pg = &config.postgres;
        assert_eq!(pg.host, "/var/run/postgresql");
        assert!(pg.is_unix_socket());
        assert_eq!(pg.port, 6432);
        assert_eq!(pg.password.as_ref().unwrap().expose(), "hunter2-secret");
        assert_eq!(pg.sslmode, SslMode::VerifyFull);
        assert_eq!(pg.sslrootcert, Some(PathBuf::from("/etc/ssl/pg-ca.pem")));
        assert_eq!(pg.connect_timeout, Duration::from_millis(2500));
        let connect = pg.connect_config();
        assert_eq!(
            connect.host,
            Host::UnixSocketDir(PathBuf::from("/var/run/postgresql"))
        );
        assert_eq!(
            connect.password.as_ref().map(ExposeSecret::expose_secret),
            Some("hunter2-secret")
        );
        assert_eq!(connect.sslmode, SslMode::VerifyFull);

        let rep = &config.replication;
        assert_eq!(rep.slot, "shop_cdc_1");
        assert_eq!(rep.publication, "shop_pub");
        assert!(!rep.create_publication);
        assert!(rep.binary);
        assert_eq!(rep.status_interval, Duration::from_millis(250));
        assert_eq!(rep.streamed_memory_mib, 128);
        assert_eq!(rep.heartbeat_interval, Some(Duration::from_secs(30)));
        assert_eq!(rep.retained_wal_warn_mib, 2048);

        assert_eq!(config.tables.include.len(), 2);
        assert_eq!(config.tables.exclude[0].to_string(), "public.tmp_*");
        assert!(config.tables.allow_keyless);
        assert_eq!(config.snapshot.mode, SnapshotMode::Never);
        assert_eq!(config.snapshot.parallelism, 8);
        assert_eq!(config.snapshot.chunk_rows, 5000);

        let kafka = &config.kafka;
        assert_eq!(kafka.bootstrap_servers, "k1:9092,k2:9092");
        assert_eq!(kafka.topic_prefix, "shop.prod-1");
        assert_eq!(kafka.partitions, 12);
        assert_eq!(kafka.replication_factor, 3);
        assert_eq!(kafka.compression, Compression::Zstd);
        // Dotted keys are flattened; numbers and booleans become strings.
        assert_eq!(kafka.producer.get("linger.ms"), Some("20"));
        assert_eq!(kafka.producer.get("batch.size"), Some("131072"));
        assert_eq!(kafka.producer.get("socket.keepalive.enable"), Some("true"));
        assert_eq!(kafka.producer.len(), 4);

        let registry = &config.registry;
        assert_eq!(registry.username.as_deref(), Some("sr-user"));
        assert_eq!(
            registry.password.as_ref().unwrap().expose(),
            "registry-secret"
        );
        assert_eq!(registry.compatibility, Some(Compatibility::FullTransitive));
        let client = registry.client_config(Duration::from_secs(5));
        match &client.auth {
            sluice_avro::RegistryAuth::Basic { username, password } => {
                assert_eq!(username, "sr-user");
                assert_eq!(password.expose_secret(), "registry-secret");
            }
            other => panic!("{other:?}"),
        }

        assert_eq!(config.events.mode, EventsMode::Upsert);
        assert!(!config.events.tombstones);
        assert!(config.events.truncate);
        assert_eq!(
            config.events.time_precision,
            TimePrecisionHandling::Microseconds
        );
        assert_eq!(config.events.hstore, HstoreHandling::Map);
        assert_eq!(config.shutdown.drain_timeout, Duration::from_secs(60));
        assert_eq!(config.metrics.bind, "0.0.0.0:9000".parse().unwrap());
        assert!(!config.metrics.enabled);
    }

    #[test]
    fn full_file_sets_every_key() {
        // Keeps SCHEMA and the structs in step: every listed key is accepted by serde (the
        // file loads, with deny_unknown_fields), and the file exercises all of them but the
        // password files, which exclude the passwords (password_file_is_read_and_trimmed), and
        // the registry's token, which excludes basic auth
        // (registry_tls_and_a_bearer_token_reach_the_client).
        let table: Table = FULL.parse().unwrap();
        let excluded = ["password_file", "token", "token_file"];
        for spec in SCHEMA.iter().filter(|spec| !excluded.contains(&spec.key)) {
            assert!(
                lookup(&table, &[spec.section, spec.key]).is_some(),
                "{}.{} missing from FULL",
                spec.section,
                spec.key
            );
        }
        for section in SECTIONS {
            assert!(SCHEMA.iter().any(|spec| spec.section == section));
        }
    }

    #[test]
    fn environment_overrides_each_kind() {
        let config = load_str(
            "env.toml",
            MINIMAL,
            &[
                ("SLUICE_POSTGRES__HOST", "db.internal"),
                ("SLUICE_POSTGRES__PORT", "6543"),
                ("SLUICE_REPLICATION__BINARY", "true"),
                (
                    "SLUICE_TABLES__INCLUDE",
                    r#"["inventory.*", "public.orders"]"#,
                ),
                ("SLUICE_KAFKA__PRODUCER__LINGER_MS", "5"),
                ("SLUICE_KAFKA__PRODUCER__QUEUE_BUFFERING_MAX_KBYTES", "2048"),
                ("SLUICE_POSTGRES__CONNECT_TIMEOUT", "3s"),
                ("SLUICE_SNAPSHOT__MODE", "never"),
                // String keys keep their text even when it reads as a number or boolean…
                ("SLUICE_POSTGRES__PASSWORD", "123456"),
                ("SLUICE_POSTGRES__DATABASE", "true"),
                // …and a quoted TOML string is unquoted.
                ("SLUICE_POSTGRES__USER", r#""cdc user""#),
                // Overrides the file's value.
                ("SLUICE_KAFKA__TOPIC_PREFIX", "other"),
            ],
        )
        .unwrap();
        assert_eq!(config.postgres.host, "db.internal");
        assert_eq!(config.postgres.port, 6543);
        assert!(config.replication.binary);
        assert!(config.tables.selects("inventory", "items"));
        assert!(config.tables.selects("public", "orders"));
        assert!(!config.tables.selects("public", "customers"));
        assert_eq!(config.kafka.producer.get("linger.ms"), Some("5"));
        assert_eq!(
            config.kafka.producer.get("queue.buffering.max.kbytes"),
            Some("2048")
        );
        assert_eq!(config.postgres.connect_timeout, Duration::from_secs(3));
        assert_eq!(config.snapshot.mode, SnapshotMode::Never);
        assert_eq!(config.postgres.password.unwrap().expose(), "123456");
        assert_eq!(config.postgres.database, "true");
        assert_eq!(config.postgres.user, "cdc user");
        assert_eq!(config.kafka.topic_prefix, "other");
    }

    #[test]
    fn producer_table_overridden_inline() {
        let config = load_str(
            "inline-producer.toml",
            MINIMAL,
            &[(
                "SLUICE_KAFKA__PRODUCER",
                "{ linger.ms = 7, \"batch.size\" = 1 }",
            )],
        )
        .unwrap();
        assert_eq!(config.kafka.producer.get("linger.ms"), Some("7"));
        assert_eq!(config.kafka.producer.get("batch.size"), Some("1"));
    }

    #[test]
    fn other_sluice_variables_are_ignored() {
        let config = load_str(
            "ignored.toml",
            MINIMAL,
            &[
                ("SLUICE_LOG", "debug"),
                ("SLUICE_LOG_FORMAT", "json"),
                ("SLUICE_CONFIG", "/etc/sluice.toml"),
                ("SLUICE_STATE_DIR", "/tmp/x"),
                ("SLUICE_CACHE_DIR", "/tmp/y"),
                ("SLUICE_KEEP_STACK", "1"),
                ("SLUICE_PG_HOST", "elsewhere"),
                ("SLUICE_PG_PORT", "1"),
                ("POSTGRES__HOST", "not ours"),
                ("PATH", "/usr/bin"),
            ],
        )
        .unwrap();
        assert_eq!(config.postgres.host, "127.0.0.1");
    }

    #[test]
    fn unknown_key_in_file_suggests_the_closest() {
        let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\npasword = \"x\"");
        let error = load_str("typo.toml", &toml, &[]).unwrap_err();
        let message = error.to_string();
        assert!(
            message.ends_with("postgres.pasword: unknown key; did you mean postgres.password?"),
            "{message}"
        );
        assert!(message.contains("typo.toml"), "{message}");
        assert_eq!(error.key(), Some("postgres.pasword"));

        // An unknown section, and a key in the wrong section.
        let message = error_str("section.toml", &format!("{MINIMAL}\n[postgress]\n"), &[]);
        assert!(
            message.ends_with("postgress: unknown key; did you mean postgres?"),
            "{message}"
        );
        let toml = MINIMAL.replace("topic_prefix", "url = \"x\"\ntopic_prefix");
        let message = error_str("wrong-section.toml", &toml, &[]);
        assert!(
            message.ends_with("kafka.url: unknown key; did you mean registry.url?"),
            "{message}"
        );
        // Nothing near: no suggestion.
        let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\nfrobnicate = 1");
        let message = error_str("far.toml", &toml, &[]);
        assert!(
            message.ends_with("postgres.frobnicate: unknown key"),
            "{message}"
        );
    }

    #[test]
    fn unknown_key_in_environment_names_the_variable() {
        let message = error_str(
            "env-typo.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__PASWORD", "x")],
        );
        assert_eq!(
            message,
            "postgres.pasword (from SLUICE_POSTGRES__PASWORD): unknown key; \
             did you mean postgres.password (SLUICE_POSTGRES__PASSWORD)?"
        );
        let message = error_str(
            "env-section.toml",
            MINIMAL,
            &[("SLUICE_REPLICATON__SLOT", "x")],
        );
        assert!(
            message.ends_with("did you mean replication.slot (SLUICE_REPLICATION__SLOT)?"),
            "{message}"
        );
        let message = error_str("env-empty.toml", MINIMAL, &[("SLUICE_POSTGRES__", "x")]);
        assert!(message.contains("(from SLUICE_POSTGRES__)"), "{message}");
    }

    #[test]
    fn wrong_type_names_key_and_expected_type() {
        let toml = MINIMAL.replace("user = \"cdc\"", "user = \"cdc\"\nport = \"5432\"");
        let message = error_str("type.toml", &toml, &[]);
        assert!(message.contains("postgres.port: invalid type"), "{message}");
        assert!(message.contains("expected u16"), "{message}");

        let message = error_str(
            "type-env.toml",
            MINIMAL,
            &[("SLUICE_REPLICATION__BINARY", "yes")],
        );
        assert!(
            message.starts_with("replication.binary (from SLUICE_REPLICATION__BINARY): "),
            "{message}"
        );
        assert!(message.contains("expected a boolean"), "{message}");

        let message = error_str(
            "range-env.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__PORT", "70000")],
        );
        assert!(message.contains("postgres.port (from SLUICE_POSTGRES__PORT)"));
        assert!(message.contains("expected u16"), "{message}");

        let message = error_str(
            "enum.toml",
            MINIMAL,
            &[("SLUICE_KAFKA__COMPRESSION", "brotli")],
        );
        assert!(message.contains("kafka.compression"), "{message}");
        assert!(message.contains("`zstd`"), "{message}");

        let message = error_str(
            "duration.toml",
            MINIMAL,
            &[("SLUICE_SHUTDOWN__DRAIN_TIMEOUT", "soon")],
        );
        assert!(message.contains("shutdown.drain_timeout"), "{message}");

        let message = error_str(
            "sslmode.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__SSLMODE", "always")],
        );
        assert!(message.contains("postgres.sslmode"), "{message}");
        assert!(message.contains("verify-full"), "{message}");

        let toml = format!("{MINIMAL}\n[kafka.producer]\n\"linger.ms\" = [1]\n");
        let message = error_str("producer-type.toml", &toml, &[]);
        assert!(
            message.contains("kafka.producer.linger.ms: expected a string, number or boolean"),
            "{message}"
        );

        let message = error_str(
            "section-type.toml",
            &format!("snapshot = 1\n{MINIMAL}"),
            &[],
        );
        assert!(message.contains("snapshot: expected a table"), "{message}");
    }

    #[test]
    fn missing_required_key_is_named() {
        let toml = MINIMAL.replace("database = \"app\"", "");
        let error = load_str("missing.toml", &toml, &[]).unwrap_err();
        assert_eq!(
            error.to_string(),
            "postgres.database: required key missing; set it in the file or with \
             SLUICE_POSTGRES__DATABASE"
        );
        let message = load(None, env(&[])).unwrap_err().to_string();
        assert!(message.starts_with("postgres.database:"), "{message}");
        let toml = MINIMAL.replace("[registry]\n        url = \"http://registry:8081\"", "");
        let message = error_str("missing-registry.toml", &toml, &[]);
        assert!(message.starts_with("registry.url: required"), "{message}");
    }

    #[test]
    fn syntax_error_names_the_file() {
        let message = error_str("syntax.toml", "[postgres\n", &[]);
        assert!(message.contains("syntax.toml"), "{message}");
        assert!(message.contains("line 1"), "{message}");
        let error = load(Some(Path::new("/nonexistent/sluice.toml")), env(&[])).unwrap_err();
        assert!(matches!(error, ConfigError::Read { .. }), "{error}");
    }

    #[test]
    fn password_and_password_file_conflict() {
        let toml = MINIMAL.replace(
            "user = \"cdc\"",
            "user = \"cdc\"\npassword = \"a\"\npassword_file = \"/run/secrets/pg\"",
        );
        let message = error_str("both.toml", &toml, &[]);
        assert!(
            message.ends_with(
                "postgres.password_file: give postgres.password or postgres.password_file, not both"
            ),
            "{message}"
        );
        // The file may give one and the environment the other.
        let toml = MINIMAL.replace(
            "url = \"http://registry:8081\"",
            "url = \"http://registry:8081\"\nusername = \"u\"\npassword = \"a\"",
        );
        let message = error_str(
            "both-env.toml",
            &toml,
            &[("SLUICE_REGISTRY__PASSWORD_FILE", "/run/secrets/sr")],
        );
        assert!(
            message.starts_with("registry.password_file (from SLUICE_REGISTRY__PASSWORD_FILE)"),
            "{message}"
        );
    }

    #[test]
    fn password_file_is_read_and_trimmed() {
        let secret = TempFile::new("pg-password", "s3cret with spaces \n");
        let secret_path = secret.0.to_str().unwrap();
        let config = load_str(
            "password-file.toml",
            MINIMAL,
            &[
                ("SLUICE_POSTGRES__PASSWORD_FILE", secret_path),
                ("SLUICE_REGISTRY__USERNAME", "sr"),
                ("SLUICE_REGISTRY__PASSWORD_FILE", secret_path),
            ],
        )
        .unwrap();
        assert_eq!(
            config.postgres.password.as_ref().unwrap().expose(),
            "s3cret with spaces "
        );
        assert_eq!(
            config.postgres.password_file.as_deref(),
            Some(secret.0.as_path())
        );
        assert_eq!(
            config.registry.password.as_ref().unwrap().expose(),
            "s3cret with spaces "
        );

        let crlf = TempFile::new("pg-password-crlf", "abc\r\n");
        let toml = MINIMAL.replace(
            "user = \"cdc\"",
            &format!(
                "user = \"cdc\"\npassword_file = {:?}",
                crlf.0.to_str().unwrap()
            ),
        );
        let config = load_str("password-file-crlf.toml", &toml, &[]).unwrap();
        assert_eq!(config.postgres.password.unwrap().expose(), "abc");

        let message = error_str(
            "password-file-missing.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__PASSWORD_FILE", "/nonexistent/pg-password")],
        );
        assert!(
            message.starts_with(
                "postgres.password_file (from SLUICE_POSTGRES__PASSWORD_FILE): cannot read /nonexistent/pg-password"
            ),
            "{message}"
        );
    }

    #[test]
    fn registry_tls_and_a_bearer_token_reach_the_client() {
        let token_file = TempFile::new("registry-token", "t0ken-secret\n");
        let https = ("SLUICE_REGISTRY__URL", "https://registry:8081");
        let config = load_str(
            "registry-tls.toml",
            MINIMAL,
            &[
                https,
                (
                    "SLUICE_REGISTRY__TOKEN_FILE",
                    token_file.0.to_str().unwrap(),
                ),
                ("SLUICE_REGISTRY__CA_FILE", "/etc/ca.pem"),
                ("SLUICE_REGISTRY__CERT_FILE", "/etc/client.pem"),
                ("SLUICE_REGISTRY__KEY_FILE", "/etc/client.key"),
            ],
        )
        .unwrap();
        let client = config.registry.client_config(Duration::from_secs(5));
        match &client.auth {
            sluice_avro::RegistryAuth::Bearer(token) => {
                assert_eq!(token.expose_secret(), "t0ken-secret");
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(client.ca_file, Some(PathBuf::from("/etc/ca.pem")));
        assert_eq!(
            client.client_certificate,
            Some(sluice_avro::ClientCertificate {
                cert_file: "/etc/client.pem".into(),
                key_file: "/etc/client.key".into(),
            })
        );
        let summary = config.redacted_summary();
        assert!(
            summary.contains("registry_auth=bearer")
                && summary.contains("registry_tls=ca_file+client_cert"),
            "{summary}"
        );
        for shown in [format!("{config:?}"), format!("{client:?}"), summary] {
            assert!(!shown.contains("t0ken"), "{shown}");
        }

        for (vars, key, says) in [
            (
                &[
                    ("SLUICE_REGISTRY__USERNAME", "u"),
                    ("SLUICE_REGISTRY__PASSWORD", "p"),
                    ("SLUICE_REGISTRY__TOKEN", "t"),
                ][..],
                "registry.token",
                "not both",
            ),
            (
                &[https, ("SLUICE_REGISTRY__CERT_FILE", "/c")],
                "registry.cert_file",
                "registry.key_file",
            ),
            (
                &[https, ("SLUICE_REGISTRY__KEY_FILE", "/k")],
                "registry.key_file",
                "registry.cert_file",
            ),
            (
                &[("SLUICE_REGISTRY__CA_FILE", "/ca")],
                "registry.ca_file",
                "https://",
            ),
            (
                &[
                    ("SLUICE_REGISTRY__TOKEN", "t"),
                    ("SLUICE_REGISTRY__TOKEN_FILE", "/t"),
                ],
                "registry.token_file",
                "not both",
            ),
        ] {
            let message = error_str("registry-invalid.toml", MINIMAL, vars);
            assert!(
                message.starts_with(key) && message.contains(says),
                "{vars:?}: {message}"
            );
        }
    }

    #[test]
    fn secrets_never_printed() {
        let secret_file = TempFile::new("registry-password", "from-a-file-secret\n");
        let config = load_str(
            "secrets.toml",
            FULL,
            &[("SLUICE_KAFKA__PRODUCER__SSL_KEY_PASSWORD", "ssl-key-secret")],
        )
        .unwrap();
        let debug = format!("{config:?}");
        let pretty = format!("{config:#?}");
        let summary = config.redacted_summary();
        // What the pipeline runs with, built from the configuration, the clients' settings
        // (PostgreSQL, Kafka, the registry) included.
        let settings = format!("{:#?}", crate::run::Settings::from_config(&config));
        for text in [&debug, &pretty, &summary, &settings] {
            for secret in [
                "hunter2-secret",
                "registry-secret",
                "kafka-secret",
                "ssl-key-secret",
            ] {
                assert!(!text.contains(secret), "{secret} leaked: {text}");
            }
        }
        assert!(debug.contains("<redacted>"));
        assert!(summary.contains("linger.ms=20"), "{summary}");
        assert_eq!(Secret::new("x").to_string(), "<redacted>");

        let config = load_str(
            "secrets-file.toml",
            MINIMAL,
            &[
                ("SLUICE_REGISTRY__USERNAME", "sr"),
                (
                    "SLUICE_REGISTRY__PASSWORD_FILE",
                    secret_file.0.to_str().unwrap(),
                ),
            ],
        )
        .unwrap();
        assert!(!format!("{config:?}").contains("from-a-file-secret"));
        assert!(!config.redacted_summary().contains("from-a-file-secret"));
    }

    #[test]
    fn summary_reads_well() {
        let config = load_str("summary.toml", MINIMAL, &[]).unwrap();
        let summary = config.redacted_summary();
        assert!(
            summary.starts_with("postgres=cdc@127.0.0.1:5432/app sslmode=prefer password=none"),
            "{summary}"
        );
        assert!(summary.contains(" include=[public.*] "), "{summary}");
        assert!(summary.contains(" drain_timeout=30s "), "{summary}");
        assert!(summary.ends_with(" metrics=127.0.0.1:9187"), "{summary}");
    }

    #[test]
    fn table_patterns() {
        let p = |s: &str| s.parse::<TablePattern>().unwrap();
        assert!(p("public.*").matches("public", "orders"));
        assert!(p("public.*").matches("public", ""));
        assert!(!p("public.*").matches("sales", "orders"));
        assert!(p("*.orders").matches("sales", "orders"));
        assert!(p("public.order*").matches("public", "orders"));
        assert!(p("public.order*").matches("public", "order"));
        assert!(!p("public.order*").matches("public", "porder"));
        assert!(p("public.*_log").matches("public", "audit_log"));
        assert!(!p("public.*_log").matches("public", "audit_logs"));
        assert!(p("public.a*b*c").matches("public", "aXbYbZc"));
        assert!(!p("public.a*b*c").matches("public", "aXbYcZ"));
        assert!(p("*.*").matches("any", "thing"));
        assert!(p("p*c.**").matches("public", "x"));
        // Case-sensitive, and the parts are matched separately.
        assert!(!p("public.orders").matches("public", "Orders"));
        assert!(!p("*.b").matches("a.b", "c"));
        assert!(p("public.zähler*").matches("public", "zähler_2024"));
        assert_eq!(p("sales.order*").to_string(), "sales.order*");
        for bad in ["public", "a.b.c", ".orders", "public.", ""] {
            assert!(bad.parse::<TablePattern>().is_err(), "{bad}");
        }

        let tables = TablesSection {
            include: vec![p("public.*"), p("sales.orders")],
            exclude: vec![p("public.tmp_*"), p("*.secrets")],
            allow_keyless: false,
        };
        assert!(tables.selects("public", "customers"));
        assert!(tables.selects("sales", "orders"));
        assert!(!tables.selects("sales", "invoices"));
        assert!(!tables.selects("public", "tmp_import"));
        assert!(!tables.selects("public", "secrets"));

        let message = error_str(
            "bad-pattern.toml",
            MINIMAL,
            &[("SLUICE_TABLES__EXCLUDE", r#"["public"]"#)],
        );
        assert!(
            message.starts_with(
                "tables.exclude (from SLUICE_TABLES__EXCLUDE): invalid table pattern \"public\""
            ),
            "{message}"
        );
        let message = error_str(
            "no-include.toml",
            MINIMAL,
            &[("SLUICE_TABLES__INCLUDE", "[]")],
        );
        assert!(message.contains("tables.include"), "{message}");
    }

    #[test]
    fn slot_names() {
        for good in ["sluice", "a", "slot_2", &"s".repeat(63)] {
            let config = load_str(
                "slot-ok.toml",
                MINIMAL,
                &[("SLUICE_REPLICATION__SLOT", good)],
            )
            .unwrap();
            assert_eq!(config.replication.slot, good);
        }
        for bad in ["", "Sluice", "my-slot", "slot.1", "slöt", &"s".repeat(64)] {
            let message = error_str(
                "slot-bad.toml",
                MINIMAL,
                &[("SLUICE_REPLICATION__SLOT", bad)],
            );
            assert!(
                message.starts_with(
                    "replication.slot (from SLUICE_REPLICATION__SLOT): invalid slot name"
                ),
                "{bad}: {message}"
            );
        }
    }

    #[test]
    fn reserved_producer_properties_are_refused() {
        let message = error_str(
            "acks-env.toml",
            MINIMAL,
            &[("SLUICE_KAFKA__PRODUCER__ACKS", "1")],
        );
        assert!(
            message.starts_with("kafka.producer.acks (from SLUICE_KAFKA__PRODUCER__ACKS): sluice always uses acks=all and enable.idempotence=true"),
            "{message}"
        );
        let toml = format!("{MINIMAL}\n[kafka.producer]\nenable.idempotence = false\n");
        let message = error_str("idempotence.toml", &toml, &[]);
        assert!(
            message.contains("kafka.producer.enable.idempotence: sluice always uses acks=all"),
            "{message}"
        );
        let toml = format!("{MINIMAL}\n[kafka.producer]\n\"bootstrap.servers\" = \"x:1\"\n");
        let message = error_str("bootstrap.toml", &toml, &[]);
        assert!(
            message.contains("set kafka.bootstrap_servers instead"),
            "{message}"
        );
        let toml = format!("{MINIMAL}\n[kafka.producer]\npartitioner = \"random\"\n");
        let message = error_str("partitioner.toml", &toml, &[]);
        assert!(
            message.contains("kafka.producer.partitioner: sluice places keys"),
            "{message}"
        );
    }

    #[test]
    fn producer_key_given_twice() {
        let toml = format!("{MINIMAL}\n[kafka.producer]\nlinger.ms = 1\n\"linger.ms\" = 2\n");
        let message = error_str("twice.toml", &toml, &[]);
        assert!(
            message.contains("kafka.producer.linger.ms: given twice"),
            "{message}"
        );
    }

    #[test]
    fn other_validation() {
        let message = error_str(
            "verify.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__SSLMODE", "verify-ca")],
        );
        assert!(
            message.contains("postgres.sslrootcert: required when postgres.sslmode is verify-ca"),
            "{message}"
        );
        let message = error_str(
            "prefix.toml",
            MINIMAL,
            &[("SLUICE_KAFKA__TOPIC_PREFIX", "shop/prod")],
        );
        assert!(message.contains("kafka.topic_prefix"), "{message}");
        let message = error_str(
            "user-only.toml",
            MINIMAL,
            &[("SLUICE_REGISTRY__USERNAME", "u")],
        );
        assert!(message.contains("registry.username"), "{message}");
        let message = error_str(
            "pw-only.toml",
            MINIMAL,
            &[("SLUICE_REGISTRY__PASSWORD", "p")],
        );
        assert!(message.contains("registry.password"), "{message}");
        let message = error_str(
            "url.toml",
            MINIMAL,
            &[("SLUICE_REGISTRY__URL", "registry:8081")],
        );
        assert!(message.contains("registry.url"), "{message}");
        let message = error_str(
            "url-creds.toml",
            MINIMAL,
            &[("SLUICE_REGISTRY__URL", "http://u:p@registry:8081")],
        );
        assert!(message.contains("must not hold credentials"), "{message}");
        assert!(!message.contains("u:p@"), "{message}");
        let message = error_str(
            "parallelism.toml",
            MINIMAL,
            &[("SLUICE_SNAPSHOT__PARALLELISM", "0")],
        );
        assert!(message.contains("snapshot.parallelism"), "{message}");
        let message = error_str(
            "partitions.toml",
            MINIMAL,
            &[("SLUICE_KAFKA__PARTITIONS", "0")],
        );
        assert!(message.contains("kafka.partitions"), "{message}");
        let message = error_str(
            "empty-password.toml",
            MINIMAL,
            &[("SLUICE_POSTGRES__PASSWORD", "")],
        );
        assert!(message.contains("postgres.password"), "{message}");
    }

    #[test]
    fn documentation_lists_every_key() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/configuration.md");
        let docs = std::fs::read_to_string(path).unwrap();
        for spec in SCHEMA.iter().filter(|spec| spec.kind != Producer) {
            let row = format!(
                "| `{}` | `{}` |",
                spec.key,
                env_var_for(&format!("{}.{}", spec.section, spec.key))
            );
            assert!(docs.contains(&row), "docs/configuration.md lacks {row}");
        }
    }

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_for("postgres.port"), "SLUICE_POSTGRES__PORT");
        assert_eq!(
            env_var_for("kafka.producer.linger.ms"),
            "SLUICE_KAFKA__PRODUCER__LINGER_MS"
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("password", "password"), 0);
        assert_eq!(edit_distance("pasword", "password"), 1);
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("slott", ["slot", "publication"].into_iter()),
            Some("slot")
        );
        assert_eq!(closest("xyz", ["slot", "publication"].into_iter()), None);
    }

    #[test]
    fn example_file_loads() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/sluice.example.toml");
        let config = load(Some(&path), env(&[])).unwrap();
        assert_eq!(config.postgres.host, "127.0.0.1");
        assert_eq!(config.postgres.port, 15432);
        assert_eq!(config.postgres.database, "sluice");
        assert_eq!(config.postgres.user, "sluice");
        assert_eq!(
            config.postgres.password.as_ref().unwrap().expose(),
            "sluice"
        );
        assert_eq!(config.kafka.bootstrap_servers, "127.0.0.1:9092");
        assert_eq!(config.kafka.topic_prefix, "sluice");
        assert_eq!(config.registry.url, "http://127.0.0.1:8081/apis/ccompat/v7");
    }
}
