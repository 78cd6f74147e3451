//! Prometheus metrics, `/health` and `/ready` over a small HTTP endpoint (loopback by default).
//!
//! Counters are plain atomics bumped on the hot path (relaxed: a scrape needs no ordering
//! with the events themselves); the text form is built only when scraped, by
//! `prometheus-client`, and served by hyper with a bound on each connection. Metric names are
//! constants here and listed in docs/metrics.md.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::prometheus_text::CONTENT_TYPE;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric, MetricEncoder};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

use crate::error::PipelineError;

/// Events and bytes produced for one table, by kind.
#[derive(Debug, Default)]
pub struct TableMetrics {
    pub created: AtomicU64,
    pub updated: AtomicU64,
    pub deleted: AtomicU64,
    pub read: AtomicU64,
    pub tombstones: AtomicU64,
    pub truncated: AtomicU64,
    pub bytes: AtomicU64,
    /// Snapshot rows copied, and the catalog's estimate of the table's rows.
    pub snapshot_rows: AtomicU64,
    pub snapshot_rows_estimate: AtomicU64,
}

/// The process's metrics: one pipeline runs per process.
pub fn global() -> &'static Metrics {
    static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
    METRICS.get_or_init(Metrics::default)
}

/// Everything sluice reports.
#[derive(Debug, Default)]
pub struct Metrics {
    tables: Mutex<Vec<(String, Arc<TableMetrics>)>>,
    pub in_flight: AtomicU64,
    pub produce_errors: AtomicU64,
    pub produce_retries: AtomicU64,
    /// Times streaming started again after a transient failure.
    pub restarts: AtomicU64,
    pub registry_calls: AtomicU64,
    pub registry_cache_hits: AtomicU64,
    pub received_lsn: AtomicU64,
    pub confirmed_lsn: AtomicU64,
    /// Commit time (µs since 1970) of the newest transaction processed, and how far behind
    /// the wall clock it was when processed.
    pub last_commit_us: AtomicI64,
    pub lag_us: AtomicI64,
    pub streamed_memory_bytes: AtomicU64,
    pub streamed_spilled: AtomicU64,
    /// WAL the slot holds back (measured every minute).
    pub retained_wal_bytes: AtomicU64,
    pub streamed_open: AtomicU64,
    /// Set once the replication stream runs: the snapshot (if any) is done.
    pub streaming: AtomicBool,
    /// Set while this process waits for another sluice that holds the same slot (the standby
    /// of an HA pair).
    pub standing_by: AtomicBool,
}

impl Metrics {
    /// The counters of `table` (`schema.table`), created on first use.
    pub fn table(&self, table: &str) -> Arc<TableMetrics> {
        let mut tables = match self.tables.lock() {
            Ok(tables) => tables,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some((_, metrics)) = tables.iter().find(|(name, _)| name == table) {
            return Arc::clone(metrics);
        }
        let metrics = Arc::new(TableMetrics::default());
        tables.push((table.to_owned(), Arc::clone(&metrics)));
        metrics
    }

    /// The Prometheus text exposition (format 0.0.4) of every metric, encoded by
    /// `prometheus-client` (which escapes label values) from a snapshot of the counters.
    pub fn render(&self) -> String {
        let mut registry = prometheus_client::registry::Registry::default();
        registry.register_collector(Box::new(self.snapshot()));
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::prometheus_text::encode(&mut out, &registry);
        out
    }

    fn snapshot(&self) -> Snapshot {
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let tables = match self.tables.lock() {
            Ok(tables) => tables.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let received = load(&self.received_lsn);
        let confirmed = load(&self.confirmed_lsn);
        let seconds = |v: &AtomicI64| Value::Seconds(v.load(Ordering::Relaxed));
        use MetricType::{Counter, Gauge};
        Snapshot {
            tables: tables
                .iter()
                .map(|(table, m)| TableSnapshot {
                    table: table.clone(),
                    events: [
                        ("c", load(&m.created)),
                        ("u", load(&m.updated)),
                        ("d", load(&m.deleted)),
                        ("r", load(&m.read)),
                        ("t", load(&m.truncated)),
                        ("tombstone", load(&m.tombstones)),
                    ],
                    bytes: load(&m.bytes),
                    snapshot_rows: load(&m.snapshot_rows),
                    snapshot_rows_estimate: load(&m.snapshot_rows_estimate),
                })
                .collect(),
            scalars: vec![
                (
                    "sluice_slot_retained_wal_bytes",
                    Gauge,
                    "WAL the replication slot holds back (measured every minute).",
                    Value::Count(load(&self.retained_wal_bytes)),
                ),
                (
                    "sluice_in_flight_events",
                    Gauge,
                    "Events produced and not yet acknowledged by the broker.",
                    Value::Count(load(&self.in_flight)),
                ),
                (
                    "sluice_produce_errors",
                    Counter,
                    "Events the broker refused.",
                    Value::Count(load(&self.produce_errors)),
                ),
                (
                    "sluice_produce_retries",
                    Counter,
                    "Times the producer's queue was full and sluice waited.",
                    Value::Count(load(&self.produce_retries)),
                ),
                (
                    "sluice_restarts",
                    Counter,
                    "Times streaming started again after a transient failure.",
                    Value::Count(load(&self.restarts)),
                ),
                (
                    "sluice_registry_calls",
                    Counter,
                    "Calls to the schema registry.",
                    Value::Count(load(&self.registry_calls)),
                ),
                (
                    "sluice_registry_cache_hits",
                    Counter,
                    "Schema lookups answered from sluice's cache.",
                    Value::Count(load(&self.registry_cache_hits)),
                ),
                (
                    "sluice_received_lsn",
                    Gauge,
                    "The WAL position the server has sent up to.",
                    Value::Count(received),
                ),
                (
                    "sluice_confirmed_lsn",
                    Gauge,
                    "The WAL position confirmed to PostgreSQL (everything before it is in Kafka).",
                    Value::Count(confirmed),
                ),
                (
                    "sluice_replication_lag_bytes",
                    Gauge,
                    "Received minus confirmed WAL position.",
                    Value::Count(received.saturating_sub(confirmed)),
                ),
                (
                    "sluice_replication_lag_seconds",
                    Gauge,
                    "How far behind its commit time the newest transaction was when sluice processed it.",
                    seconds(&self.lag_us),
                ),
                (
                    "sluice_last_commit_timestamp_seconds",
                    Gauge,
                    "Commit time of the newest transaction processed.",
                    seconds(&self.last_commit_us),
                ),
                (
                    "sluice_streamed_transactions_open",
                    Gauge,
                    "Streamed in-progress transactions kept until their commit.",
                    Value::Count(load(&self.streamed_open)),
                ),
                (
                    "sluice_streamed_memory_bytes",
                    Gauge,
                    "Memory holding streamed in-progress transactions.",
                    Value::Count(load(&self.streamed_memory_bytes)),
                ),
                (
                    "sluice_streamed_spilled",
                    Counter,
                    "Streamed transactions moved to disk past the memory budget.",
                    Value::Count(load(&self.streamed_spilled)),
                ),
                (
                    "sluice_streaming",
                    Gauge,
                    "1 once the replication stream runs.",
                    Value::Count(u64::from(self.streaming.load(Ordering::Relaxed))),
                ),
                (
                    "sluice_standing_by",
                    Gauge,
                    "1 while this process waits for another sluice holding the same slot.",
                    Value::Count(u64::from(self.standing_by.load(Ordering::Relaxed))),
                ),
            ],
        }
    }
}

/// The metrics' values at one scrape, encoded by `prometheus-client`.
#[derive(Debug)]
struct Snapshot {
    tables: Vec<TableSnapshot>,
    /// Name (without a counter's `_total`, which the encoder adds), type, help, value.
    scalars: Vec<(&'static str, MetricType, &'static str, Value)>,
}

#[derive(Debug)]
struct TableSnapshot {
    table: String,
    events: [(&'static str, u64); 6],
    bytes: u64,
    snapshot_rows: u64,
    snapshot_rows_estimate: u64,
}

/// A metric with one sample per table: name, type, help, and the table's value.
type PerTable = (
    &'static str,
    MetricType,
    &'static str,
    fn(&TableSnapshot) -> u64,
);

#[derive(Debug, Clone, Copy)]
enum Value {
    Count(u64),
    /// Microseconds, shown as seconds.
    Seconds(i64),
}

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let mut family = encoder.encode_descriptor(
            "sluice_events",
            "Events produced, by table and op (c, u, d, r; t: truncate; tombstone).",
            None,
            MetricType::Counter,
        )?;
        for table in &self.tables {
            for (op, count) in table.events {
                let labels = [("table", table.table.as_str()), ("op", op)];
                ConstCounter::new(count).encode(family.encode_family(&labels)?)?;
            }
        }
        let per_table: [PerTable; 3] = [
            (
                "sluice_event_bytes",
                MetricType::Counter,
                "Bytes of keys and values produced, by table.",
                |t| t.bytes,
            ),
            (
                "sluice_snapshot_rows",
                MetricType::Gauge,
                "Snapshot rows copied, by table.",
                |t| t.snapshot_rows,
            ),
            (
                "sluice_snapshot_rows_estimated",
                MetricType::Gauge,
                "The catalog's estimate of each table's rows at snapshot start.",
                |t| t.snapshot_rows_estimate,
            ),
        ];
        for (name, kind, help, value) in per_table {
            let mut family = encoder.encode_descriptor(name, help, None, kind)?;
            for table in &self.tables {
                let labels = [("table", table.table.as_str())];
                encode_value(
                    family.encode_family(&labels)?,
                    kind,
                    Value::Count(value(table)),
                )?;
            }
        }
        for (name, kind, help, value) in &self.scalars {
            encode_value(
                encoder.encode_descriptor(name, help, None, *kind)?,
                *kind,
                *value,
            )?;
        }
        Ok(())
    }
}

fn encode_value(
    encoder: MetricEncoder<'_>,
    kind: MetricType,
    value: Value,
) -> Result<(), std::fmt::Error> {
    match (kind, value) {
        (MetricType::Counter, Value::Count(count)) => ConstCounter::new(count).encode(encoder),
        (_, Value::Count(count)) => ConstGauge::new(count).encode(encoder),
        // Exact to the microsecond: an f64 holds every µs count below 2^53.
        (_, Value::Seconds(micros)) => {
            #[allow(clippy::as_conversions)]
            let seconds = micros as f64 / 1e6;
            ConstGauge::new(seconds).encode(encoder)
        }
    }
}

/// Bounds on one connection of the endpoint.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    /// To read a request's head, from the connection's start.
    pub(crate) read: Duration,
    /// For the whole connection (one request: keep-alive is off).
    pub(crate) connection: Duration,
    /// Connections served at once; more wait to be accepted.
    pub(crate) connections: usize,
}

const LIMITS: Limits = Limits {
    read: Duration::from_secs(10),
    connection: Duration::from_secs(30),
    connections: 32,
};

/// How long accepting pauses after a failed accept (out of file descriptors, say), so that a
/// persistent failure is not a busy loop.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(200);

/// Serves `/metrics`, `/health` (the process answers) and `/ready` (streaming) on `bind`;
/// returns the address it listens on.
pub async fn serve(bind: SocketAddr) -> Result<SocketAddr, PipelineError> {
    let listener = TcpListener::bind(bind).await.map_err(|e| {
        PipelineError::Setup(format!(
            "cannot listen for metrics on {bind} ({e}): choose another metrics.bind or set metrics.enabled = false"
        ))
    })?;
    let address = listener.local_addr().unwrap_or(bind);
    tracing::info!(%address, "metrics on http://{address}/metrics");
    tokio::spawn(accept_loop(listener, global(), LIMITS));
    Ok(address)
}

pub(crate) async fn accept_loop(listener: TcpListener, metrics: &'static Metrics, limits: Limits) {
    let permits = Arc::new(Semaphore::new(limits.connections));
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let socket = match listener.accept().await {
            Ok((socket, _)) => socket,
            Err(err) => {
                tracing::warn!(error = %err, "metrics endpoint: accepting a connection failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        tokio::spawn(async move {
            let service = service_fn(move |request| async move {
                Ok::<_, std::convert::Infallible>(respond(metrics, &request))
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.read)
                .keep_alive(false)
                .serve_connection(TokioIo::new(socket), service);
            // A client that stalls past the bound is dropped with its connection.
            let _ = tokio::time::timeout(limits.connection, connection).await;
            drop(permit);
        });
    }
}

fn respond<B>(metrics: &Metrics, request: &Request<B>) -> Response<Full<Bytes>> {
    let (status, content_type, body) = match (request.method(), request.uri().path()) {
        (&Method::GET, "/metrics") => (StatusCode::OK, CONTENT_TYPE, metrics.render()),
        (&Method::GET, "/health") => (StatusCode::OK, PLAIN, "ok\n".to_owned()),
        (&Method::GET, "/ready") if metrics.streaming.load(Ordering::Relaxed) => {
            (StatusCode::OK, PLAIN, "ready\n".to_owned())
        }
        (&Method::GET, "/ready") => (
            StatusCode::SERVICE_UNAVAILABLE,
            PLAIN,
            "not streaming yet\n".to_owned(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            PLAIN,
            "try GET /metrics, /health or /ready\n".to_owned(),
        ),
    };
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

const PLAIN: &str = "text/plain; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    #[test]
    fn the_text_form_has_every_table_and_op() {
        let metrics = Metrics::default();
        metrics
            .table("public.t")
            .created
            .fetch_add(3, Ordering::Relaxed);
        metrics.received_lsn.store(100, Ordering::Relaxed);
        metrics.confirmed_lsn.store(60, Ordering::Relaxed);
        metrics.lag_us.store(1_500_000, Ordering::Relaxed);
        metrics.last_commit_us.store(-1, Ordering::Relaxed);
        let text = metrics.render();
        for line in [
            "sluice_events_total{table=\"public.t\",op=\"c\"} 3",
            "sluice_events_total{table=\"public.t\",op=\"tombstone\"} 0",
            "sluice_event_bytes_total{table=\"public.t\"} 0",
            "sluice_snapshot_rows{table=\"public.t\"} 0",
            "sluice_replication_lag_bytes 40",
            "sluice_replication_lag_seconds 1.5",
            "sluice_last_commit_timestamp_seconds -0.000001",
            "sluice_produce_errors_total 0",
            "sluice_streaming 0",
            "sluice_standing_by 0",
            "# TYPE sluice_events_total counter",
            "# TYPE sluice_snapshot_rows gauge",
            "# TYPE sluice_standing_by gauge",
        ] {
            assert!(text.lines().any(|l| l == line), "{line:?} in {text}");
        }
    }

    #[test]
    fn a_standby_is_alive_and_not_ready() {
        let metrics = Metrics::default();
        metrics.standing_by.store(true, Ordering::Relaxed);
        assert!(
            metrics
                .render()
                .lines()
                .any(|l| l == "sluice_standing_by 1")
        );
        let status = |path: &str| {
            let request = Request::get(path).body(()).unwrap();
            respond(&metrics, &request).status()
        };
        assert_eq!(status("/health"), StatusCode::OK);
        assert_eq!(status("/ready"), StatusCode::SERVICE_UNAVAILABLE);
    }

    /// The metric names in `text` (`sluice_` then lower-case letters, digits and `_`), each
    /// once, in order of appearance.
    fn metric_names(text: &str) -> Vec<&str> {
        let word = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_';
        let mut names = Vec::new();
        for (at, _) in text.match_indices("sluice_") {
            // A whole token: not the end of a longer word such as `_sluice_state`.
            if text[..at]
                .chars()
                .next_back()
                .is_some_and(|c| word(c) || c.is_ascii_uppercase())
            {
                continue;
            }
            let tail = &text[at..];
            let name = &tail[..tail.find(|c| !word(c)).unwrap_or(tail.len())];
            if !names.contains(&name) {
                names.push(name);
            }
        }
        names
    }

    #[test]
    fn the_grafana_dashboard_names_only_metrics_sluice_exposes() {
        let dashboard = include_str!("../../../deploy/grafana/sluice-dashboard.json");
        let metrics = Metrics::default();
        metrics.table("public.t");
        let text = metrics.render();
        // Every family, whether or not it has a sample: `# TYPE <name> <type>`.
        let exposed: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next())
            .collect();
        assert!(exposed.contains(&"sluice_events_total"), "{text}");
        let used = metric_names(dashboard);
        assert!(used.contains(&"sluice_standing_by"), "{used:?}");
        let unknown: Vec<&str> = used
            .iter()
            .copied()
            .filter(|name| !exposed.contains(name))
            .collect();
        assert!(
            unknown.is_empty(),
            "deploy/grafana/sluice-dashboard.json names metrics sluice does not expose: {unknown:?}; exposed: {exposed:?}"
        );
    }

    #[test]
    fn metric_names_are_whole_tokens() {
        assert_eq!(
            metric_names(
                "rate(sluice_events_total{a=\"b\"}[5m]) x_sluice_state sluice_up2 sluice_events_total"
            ),
            ["sluice_events_total", "sluice_up2"]
        );
    }

    #[test]
    fn label_values_are_escaped() {
        let metrics = Metrics::default();
        let table = "s.\"we\\ird\nname\"";
        metrics.table(table).read.fetch_add(7, Ordering::Relaxed);
        let text = metrics.render();
        let escaped = r#"sluice_events_total{table="s.\"we\\ird\nname\"",op="r"} 7"#;
        assert!(text.lines().any(|l| l == escaped), "{text}");
        // Every sample is one line: the newline did not split one.
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(line.starts_with("sluice_"), "{line:?} in {text}");
        }
    }

    async fn endpoint(limits: Limits) -> SocketAddr {
        static METRICS: std::sync::OnceLock<Metrics> = std::sync::OnceLock::new();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(accept_loop(
            listener,
            METRICS.get_or_init(Metrics::default),
            limits,
        ));
        address
    }

    async fn get(address: SocketAddr, path: &str) -> String {
        let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
        let request = format!("GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n");
        socket.write_all(request.as_bytes()).await.unwrap();
        let mut response = String::new();
        socket.read_to_string(&mut response).await.unwrap();
        response
    }

    #[tokio::test]
    async fn a_stalled_client_is_cut_off_and_others_are_served_meanwhile() {
        let limits = Limits {
            read: Duration::from_millis(300),
            connection: Duration::from_secs(60),
            connections: 2,
        };
        let address = endpoint(limits).await;
        // Two clients that send half a request head and then nothing, taking every slot.
        let mut stalled = Vec::new();
        for _ in 0..2 {
            let mut socket = tokio::net::TcpStream::connect(address).await.unwrap();
            socket
                .write_all(b"GET /metrics HTTP/1.1\r\nHo")
                .await
                .unwrap();
            stalled.push(socket);
        }
        // Served once the read timeout has freed a slot.
        let response = get(address, "/metrics").await;
        assert!(response.starts_with("HTTP/1.1 200"), "{response}");
        assert!(response.contains("sluice_streaming 0"), "{response}");
        for mut socket in stalled {
            let mut rest = Vec::new();
            // The server closed it (with a 408, or without a word): read to its end.
            let read = tokio::time::timeout(Duration::from_secs(60), socket.read_to_end(&mut rest))
                .await
                .expect("the stalled connection is closed");
            assert!(read.is_ok() || rest.is_empty(), "{rest:?}");
        }
        assert!(get(address, "/health").await.ends_with("\r\n\r\nok\n"));
        assert!(get(address, "/ready").await.starts_with("HTTP/1.1 503"));
        assert!(get(address, "/nothing").await.starts_with("HTTP/1.1 404"));
    }
}
