//! Housekeeping beside the stream: heartbeat messages and the slot's retained WAL, on a task
//! of its own with its own timers, each query bounded in time, so the stream loop never waits
//! on them.

use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_postgres::Client;

use crate::config::ReplicationSection;
use crate::connect;
use crate::describe;
use crate::metrics;
use crate::slot;

/// How often the slot's retained WAL is measured.
const RETENTION_CHECK: Duration = Duration::from_secs(60);

/// How long one housekeeping query may take before it is given up (and tried at its next
/// turn).
const QUERY_TIMEOUT: Duration = Duration::from_secs(10);

/// The housekeeping task; it stops when dropped.
#[derive(Debug)]
pub(crate) struct Housekeeping(tokio::task::JoinHandle<()>);

impl Drop for Housekeeping {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Starts housekeeping on `sql` for the configured slot.
pub(crate) fn start(sql: Arc<Client>, replication: &ReplicationSection) -> Housekeeping {
    let (slot, warn_bytes, heartbeat) = (
        replication.slot.clone(),
        replication.retained_wal_warn_bytes(),
        replication.heartbeat_interval,
    );
    Housekeeping(tokio::spawn(async move {
        let mut heartbeat = heartbeat.map(tokio::time::interval);
        let mut retention = tokio::time::interval(RETENTION_CHECK);
        loop {
            tokio::select! {
                () = tick(&mut heartbeat) => {
                    if bounded("heartbeat", emit_heartbeat(&sql)).await == Some(false) {
                        heartbeat = None;
                    }
                }
                _ = retention.tick() => {
                    bounded("retained WAL check", check_retention(&sql, &slot, warn_bytes)).await;
                }
            }
        }
    }))
}

/// Runs `work`, giving up (with a warning, and `None`) after [`QUERY_TIMEOUT`].
async fn bounded<T>(what: &str, work: impl Future<Output = T>) -> Option<T> {
    let done = tokio::time::timeout(QUERY_TIMEOUT, work).await.ok();
    if done.is_none() {
        tracing::warn!(timeout = ?QUERY_TIMEOUT, "{what} took too long; it is tried again at its next turn");
    }
    done
}

/// The next tick of an optional interval; never, without one.
async fn tick(interval: &mut Option<tokio::time::Interval>) {
    match interval {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}

/// A non-transactional logical decoding message: WAL in this database that the walsender
/// decodes, so its keepalives (and with them the confirmed position) move on. `false` when
/// heartbeats are impossible: on a standby, where nothing can be written.
async fn emit_heartbeat(sql: &Client) -> bool {
    let Err(err) = sql
        .execute(
            "SELECT pg_logical_emit_message(false, 'sluice-heartbeat', '')",
            &[],
        )
        .await
    else {
        return true;
    };
    if connect::in_recovery(sql).await.unwrap_or(false) {
        tracing::warn!(
            "replication.heartbeat_interval: sluice reads a standby, where no heartbeat can be \
             written; heartbeats stop (the slot moves on with the primary's WAL of this \
             database; run a heartbeat on the primary if it idles)"
        );
        return false;
    }
    tracing::warn!(error = %describe::pg(&err), "heartbeat failed");
    true
}

/// Measures the WAL the slot holds back and warns past the configured threshold.
async fn check_retention(sql: &Client, slot: &str, warn_bytes: u64) {
    let Ok(Some(facts)) = slot::read(sql, slot).await else {
        return;
    };
    let Some(bytes) = facts.retained_bytes.and_then(|b| u64::try_from(b).ok()) else {
        return;
    };
    metrics::global().retained_wal_bytes.store(bytes, Relaxed);
    if bytes > warn_bytes {
        tracing::warn!(
            %slot,
            retained_mib = bytes / (1024 * 1024),
            "the slot holds back more WAL than replication.retained_wal_warn_mib: is the broker keeping up?"
        );
    }
}
