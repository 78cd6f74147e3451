//! Prometheus metrics, `/health` and `/ready` over a small HTTP endpoint (loopback by default).
//!
//! Counters are plain atomics bumped on the hot path (relaxed: a scrape needs no ordering
//! with the events themselves); the text form is built only when scraped. Metric names are
//! constants here and listed in docs/metrics.md.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

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

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let load = |v: &AtomicU64| v.load(Ordering::Relaxed);
        let tables = match self.tables.lock() {
            Ok(tables) => tables.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        header(
            &mut out,
            "sluice_events_total",
            "counter",
            "Events produced, by table and op (c, u, d, r; t: tombstone).",
        );
        for (table, m) in &tables {
            for (op, value) in [
                ("c", &m.created),
                ("u", &m.updated),
                ("d", &m.deleted),
                ("r", &m.read),
                ("t", &m.truncated),
                ("tombstone", &m.tombstones),
            ] {
                let _ = writeln!(
                    out,
                    "sluice_events_total{{table=\"{table}\",op=\"{op}\"}} {}",
                    load(value)
                );
            }
        }
        header(
            &mut out,
            "sluice_event_bytes_total",
            "counter",
            "Bytes of keys and values produced, by table.",
        );
        for (table, m) in &tables {
            let _ = writeln!(
                out,
                "sluice_event_bytes_total{{table=\"{table}\"}} {}",
                load(&m.bytes)
            );
        }
        header(
            &mut out,
            "sluice_snapshot_rows",
            "gauge",
            "Snapshot rows copied, by table.",
        );
        for (table, m) in &tables {
            let _ = writeln!(
                out,
                "sluice_snapshot_rows{{table=\"{table}\"}} {}",
                load(&m.snapshot_rows)
            );
        }
        header(
            &mut out,
            "sluice_snapshot_rows_estimated",
            "gauge",
            "The catalog's estimate of each table's rows at snapshot start.",
        );
        for (table, m) in &tables {
            let _ = writeln!(
                out,
                "sluice_snapshot_rows_estimated{{table=\"{table}\"}} {}",
                load(&m.snapshot_rows_estimate)
            );
        }
        let received = load(&self.received_lsn);
        let confirmed = load(&self.confirmed_lsn);
        let gauges: [(&str, &str, &str, String); 14] = [
            (
                "sluice_slot_retained_wal_bytes",
                "gauge",
                "WAL the replication slot holds back (measured every minute).",
                load(&self.retained_wal_bytes).to_string(),
            ),
            (
                "sluice_in_flight_events",
                "gauge",
                "Events produced and not yet acknowledged by the broker.",
                load(&self.in_flight).to_string(),
            ),
            (
                "sluice_produce_errors_total",
                "counter",
                "Events the broker refused.",
                load(&self.produce_errors).to_string(),
            ),
            (
                "sluice_produce_retries_total",
                "counter",
                "Times the producer's queue was full and sluice waited.",
                load(&self.produce_retries).to_string(),
            ),
            (
                "sluice_registry_calls_total",
                "counter",
                "Calls to the schema registry.",
                load(&self.registry_calls).to_string(),
            ),
            (
                "sluice_registry_cache_hits_total",
                "counter",
                "Schema lookups answered from sluice's cache.",
                load(&self.registry_cache_hits).to_string(),
            ),
            (
                "sluice_received_lsn",
                "gauge",
                "The WAL position the server has sent up to.",
                received.to_string(),
            ),
            (
                "sluice_confirmed_lsn",
                "gauge",
                "The WAL position confirmed to PostgreSQL (everything before it is in Kafka).",
                confirmed.to_string(),
            ),
            (
                "sluice_replication_lag_bytes",
                "gauge",
                "Received minus confirmed WAL position.",
                received.saturating_sub(confirmed).to_string(),
            ),
            (
                "sluice_replication_lag_seconds",
                "gauge",
                "How far behind its commit time the newest transaction was when sluice processed it.",
                seconds(self.lag_us.load(Ordering::Relaxed)),
            ),
            (
                "sluice_last_commit_timestamp_seconds",
                "gauge",
                "Commit time of the newest transaction processed.",
                seconds(self.last_commit_us.load(Ordering::Relaxed)),
            ),
            (
                "sluice_streamed_transactions_open",
                "gauge",
                "Streamed in-progress transactions kept until their commit.",
                load(&self.streamed_open).to_string(),
            ),
            (
                "sluice_streamed_memory_bytes",
                "gauge",
                "Memory holding streamed in-progress transactions.",
                load(&self.streamed_memory_bytes).to_string(),
            ),
            (
                "sluice_streamed_spilled_total",
                "counter",
                "Streamed transactions moved to disk past the memory budget.",
                load(&self.streamed_spilled).to_string(),
            ),
        ];
        for (name, kind, help, value) in gauges {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "sluice_streaming",
            "gauge",
            "1 once the replication stream runs.",
        );
        let _ = writeln!(
            out,
            "sluice_streaming {}",
            u8::from(self.streaming.load(Ordering::Relaxed))
        );
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

fn seconds(micros: i64) -> String {
    format!(
        "{}.{:06}",
        micros.div_euclid(1_000_000),
        micros.rem_euclid(1_000_000)
    )
}

/// Serves `/metrics`, `/health` (the process answers) and `/ready` (streaming) on `bind`.
pub async fn serve(bind: SocketAddr) -> Result<(), PipelineError> {
    let metrics = global();
    let listener = TcpListener::bind(bind).await.map_err(|e| {
        PipelineError::Setup(format!(
            "cannot listen for metrics on {bind} ({e}): choose another metrics.bind or set metrics.enabled = false"
        ))
    })?;
    // The address bound: with port 0 in `bind`, the one the system chose.
    let bound = listener.local_addr().unwrap_or(bind);
    tracing::info!(%bound, "metrics on http://{bound}/metrics");
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                // Read the whole request head (clients may send it in pieces): answering
                // before it is all read would reset the connection.
                let mut request = Vec::with_capacity(512);
                let mut chunk = [0u8; 512];
                while !request.windows(4).any(|w| w == b"\r\n\r\n") && request.len() < 8192 {
                    match socket.read(&mut chunk).await {
                        Ok(0) | Err(_) => break,
                        Ok(read) => {
                            request.extend_from_slice(chunk.get(..read).unwrap_or_default())
                        }
                    }
                }
                let line = String::from_utf8_lossy(&request);
                let path = line.split_whitespace().nth(1).unwrap_or("/");
                let (status, body) = match path {
                    "/metrics" => ("200 OK", metrics.render()),
                    "/health" => ("200 OK", "ok\n".to_owned()),
                    "/ready" if metrics.streaming.load(Ordering::Relaxed) => {
                        ("200 OK", "ready\n".to_owned())
                    }
                    "/ready" => ("503 Service Unavailable", "not streaming yet\n".to_owned()),
                    _ => (
                        "404 Not Found",
                        "try /metrics, /health or /ready\n".to_owned(),
                    ),
                };
                let response = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = socket.write_all(response.as_bytes()).await;
            });
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_text_form_has_every_table_and_op() {
        let metrics = Metrics::default();
        metrics
            .table("public.t")
            .created
            .fetch_add(3, Ordering::Relaxed);
        metrics.received_lsn.store(100, Ordering::Relaxed);
        metrics.confirmed_lsn.store(60, Ordering::Relaxed);
        let text = metrics.render();
        assert!(
            text.contains("sluice_events_total{table=\"public.t\",op=\"c\"} 3"),
            "{text}"
        );
        assert!(text.contains("sluice_replication_lag_bytes 40"), "{text}");
        assert!(text.contains("# TYPE sluice_events_total counter"));
        assert_eq!(seconds(-1), "-1.999999");
        assert_eq!(seconds(1_500_000), "1.500000");
    }
}
