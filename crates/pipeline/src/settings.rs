//! What the pipeline needs to know, resolved from the configuration, and its ordinary
//! PostgreSQL connections.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sluice_avro::{HstoreMode, NumericMode, RegistryConfig, TimePrecision, TypeOptions};
use sluice_kafka::KafkaConfig;
use sluice_postgres::{ConnectConfig, SslMode};
use tokio_postgres::Client;

use crate::error::{PipelineError, pg, tls_refused};

/// What the pipeline needs to know, resolved from the configuration.
#[derive(Debug, Clone)]
pub struct Settings {
    pub postgres: ConnectConfig,
    /// libpq-style connection string for ordinary (catalog, COPY) connections.
    /// libpq conninfo for tokio-postgres, password included: secret.
    pub postgres_conninfo: SecretString,
    pub slot: String,
    pub publication: String,
    pub create_publication: bool,
    pub binary: bool,
    pub streamed_memory_bytes: usize,
    pub status_interval: Duration,
    /// Which tables are captured.
    pub tables: crate::config::TablesSection,
    pub snapshot: bool,
    pub snapshot_parallelism: usize,
    /// Tables estimated to hold more rows are copied in pieces of about this many rows (by
    /// ctid page ranges), by several connections at once.
    pub snapshot_chunk_rows: u64,
    pub snapshot_progress_interval: Duration,
    /// How types are carried; the money scale is the database's, set once connected.
    pub type_options: TypeOptions,
    pub kafka: KafkaConfig,
    pub topic_prefix: String,
    pub registry: RegistryConfig,
    pub tombstones: bool,
    /// Upsert mode: the value is the bare row, a delete is a tombstone only.
    pub upsert: bool,
    /// TRUNCATE becomes an event per table.
    pub truncate: bool,
    /// The compatibility rule sluice sets on each subject it registers, if any.
    pub compatibility: Option<String>,
    /// Prefixes of the logical decoding messages sent to the messages topic.
    pub message_prefixes: Vec<String>,
    pub transactions: bool,
    pub unchanged_placeholder: String,
    pub drain_timeout: Duration,
    /// How often to emit a heartbeat message, if at all.
    pub heartbeat_interval: Option<Duration>,
    /// Warn when the slot retains more WAL than this many bytes.
    pub retained_wal_warn_bytes: u64,
    /// Where `/metrics`, `/health` and `/ready` are served, if anywhere.
    pub metrics_bind: Option<std::net::SocketAddr>,
}

/// An ordinary connection (catalog, COPY) with the same TLS rules as the replication one.
pub async fn connect_sql(settings: &Settings) -> Result<Client, PipelineError> {
    let tls = sql_tls(&settings.postgres)?;
    let (client, connection) =
        tokio_postgres::connect(settings.postgres_conninfo.expose_secret(), tls)
            .await
            .map_err(|e| {
                let target = settings.postgres.target();
                let hint = if tls_refused(&e) {
                    " (check postgres.sslmode and postgres.sslrootcert: the server's certificate \
                     must be signed by that CA and, for verify-full, name postgres.host)"
                } else if e.as_db_error().is_none() {
                    " (check postgres.host and postgres.port, and that PostgreSQL listens there)"
                } else {
                    ""
                };
                pg(&format!("connecting to PostgreSQL at {target}{hint}"), &e)
            })?;
    tokio::spawn(async move {
        if let Err(err) = connection.await {
            tracing::warn!(error = %err, "a PostgreSQL connection ended");
        }
    });
    Ok(client)
}

/// The TLS of ordinary connections, with the same rules as the replication connection's.
pub fn sql_tls(
    postgres: &ConnectConfig,
) -> Result<postgres_native_tls::MakeTlsConnector, PipelineError> {
    Ok(postgres_native_tls::MakeTlsConnector::new(
        postgres.tls_connector()?,
    ))
}

impl Settings {
    /// The pipeline's settings from a loaded configuration.
    pub fn from_config(config: &crate::config::Config) -> Self {
        let pg = &config.postgres;
        let mut conninfo = format!(
            "host={} port={} dbname={} user={} application_name=sluice connect_timeout={} options={}",
            conninfo_value(&pg.host),
            pg.port,
            conninfo_value(&pg.database),
            conninfo_value(&pg.user),
            pg.connect_timeout.as_secs().max(1),
            conninfo_value(&sluice_postgres::session_options()),
        );
        if let Some(password) = &pg.password {
            conninfo.push_str(&format!(" password={}", conninfo_value(password.expose())));
        }
        let options: Vec<String> = sluice_postgres::SESSION_SETTINGS
            .iter()
            .map(|(name, value)| format!("-c {name}={value}"))
            .collect();
        conninfo.push_str(&format!(" options={}", conninfo_value(&options.join(" "))));
        // tokio-postgres knows disable, prefer and require; verification is the connector's.
        conninfo.push_str(match pg.sslmode {
            SslMode::Disable => " sslmode=disable",
            SslMode::Prefer => " sslmode=prefer",
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => " sslmode=require",
        });
        let kafka = KafkaConfig {
            bootstrap_servers: config.kafka.bootstrap_servers.clone(),
            compression: config.kafka.compression.as_str().to_owned(),
            partitions: config.kafka.partitions,
            replication_factor: config.kafka.replication_factor,
            properties: config
                .kafka
                .producer
                .iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        };
        Settings {
            postgres: pg.connect_config(),
            postgres_conninfo: conninfo.into(),
            slot: config.replication.slot.clone(),
            publication: config.replication.publication.clone(),
            create_publication: config.replication.create_publication,
            binary: config.replication.binary,
            streamed_memory_bytes: config.replication.streamed_memory_bytes(),
            status_interval: config.replication.status_interval,
            tables: config.tables.clone(),
            snapshot: config.snapshot.mode == crate::config::SnapshotMode::Initial,
            snapshot_parallelism: config.snapshot.parallelism,
            snapshot_chunk_rows: config.snapshot.chunk_rows,
            snapshot_progress_interval: config.snapshot.progress_interval,
            type_options: TypeOptions {
                numeric: match config.events.numeric {
                    crate::config::NumericHandling::Decimal => NumericMode::Decimal,
                    crate::config::NumericHandling::String => NumericMode::String,
                },
                hstore: match config.events.hstore {
                    crate::config::HstoreHandling::Json => HstoreMode::Json,
                    crate::config::HstoreHandling::Map => HstoreMode::Map,
                },
                time_precision: match config.events.time_precision {
                    crate::config::TimePrecisionHandling::Adaptive => TimePrecision::Adaptive,
                    crate::config::TimePrecisionHandling::Microseconds => {
                        TimePrecision::Microseconds
                    }
                },
                ..TypeOptions::default()
            },
            kafka,
            topic_prefix: config.kafka.topic_prefix.clone(),
            registry: config.registry.client_config(Duration::from_secs(10)),
            tombstones: config.events.tombstones,
            upsert: config.events.mode == crate::config::EventsMode::Upsert,
            truncate: config.events.truncate,
            compatibility: config
                .registry
                .compatibility
                .map(|level| level.as_str().to_owned()),
            message_prefixes: config.events.message_prefixes.clone(),
            transactions: config.events.transactions,
            unchanged_placeholder: config.events.unchanged_placeholder.clone(),
            drain_timeout: config.shutdown.drain_timeout,
            metrics_bind: config.metrics.enabled.then_some(config.metrics.bind),
            heartbeat_interval: config.replication.heartbeat_interval,
            retained_wal_warn_bytes: config
                .replication
                .retained_wal_warn_mib
                .saturating_mul(1024 * 1024),
        }
    }
}

/// A libpq connection-string value, quoted.
pub(crate) fn conninfo_value(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}
