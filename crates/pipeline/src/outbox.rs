//! Producing records and following their delivery: the producer, its delivery reports and
//! the tracker that turns them into the position the slot may be confirmed to.

use std::time::Duration;

use sluice_kafka::{AckTracker, Deliveries, Delivery, Producer, SendError};
use sluice_pgoutput::Lsn;
use sluice_postgres::ChangeStream;

use crate::delivery::{SNAPSHOT_TICKET, STATE_TICKET};
use crate::error::PipelineError;
use crate::metrics::{self};
use crate::settings::Settings;
use std::sync::atomic::Ordering::Relaxed;

pub(crate) fn acknowledge(
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
    delivery: Delivery,
) -> Result<(), PipelineError> {
    if let Err(err) = delivery.result {
        metrics::global().produce_errors.fetch_add(1, Relaxed);
        return Err(PipelineError::Delivery(err));
    }
    if delivery.ticket != SNAPSHOT_TICKET
        && delivery.ticket != STATE_TICKET
        && let Some(confirmed) = tracker.acknowledged(delivery.ticket)
    {
        confirm(changes, Lsn(confirmed));
    }
    metrics::global()
        .in_flight
        .store(tracker.in_flight(), Relaxed);
    Ok(())
}

/// Confirms `lsn` to the server (with the next status update) and reports it.
pub(crate) fn confirm(changes: &mut ChangeStream, lsn: Lsn) {
    let stream = changes.stream();
    stream.confirm(lsn);
    let metrics = metrics::global();
    metrics.confirmed_lsn.store(stream.flushed().0, Relaxed);
    metrics.received_lsn.store(stream.received().0, Relaxed);
}

/// Waits for the deliveries of everything produced, up to the drain timeout, confirming as
/// they come.
pub(crate) async fn drain(
    settings: &Settings,
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
    deliveries: &mut Deliveries,
) -> Result<(), PipelineError> {
    let deadline = tokio::time::Instant::now() + settings.drain_timeout;
    while tracker.in_flight() > 0 {
        match tokio::time::timeout_at(deadline, deliveries.recv()).await {
            Ok(Some(delivery)) => acknowledge(tracker, changes, delivery)?,
            Ok(None) => break,
            Err(_) => {
                tracing::warn!(
                    in_flight = tracker.in_flight(),
                    "drain timeout: unacknowledged events will be sent again after restart"
                );
                break;
            }
        }
    }
    Ok(())
}

/// Produces to `topic` (to the key's partition, or to the one given), handling deliveries while
/// the producer's queue is full.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn send_waiting(
    producer: &Producer,
    (topic, partition): (&str, Option<i32>),
    key: Option<&[u8]>,
    payload: Option<&[u8]>,
    ticket: u64,
    deliveries: &mut Deliveries,
    tracker: &mut AckTracker,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    // Counted before it is sent: its delivery may be handled in the loop below.
    tracker.sent(ticket);
    loop {
        match producer.send_to(topic, partition, key, payload, ticket) {
            Ok(()) => return Ok(()),
            // The broker is behind or away: take deliveries as they come, and keep the
            // replication stream alive meanwhile.
            Err(SendError::QueueFull) => {
                metrics::global().produce_retries.fetch_add(1, Relaxed);
                tokio::select! {
                    delivery = deliveries.recv() => {
                        if let Some(delivery) = delivery {
                            acknowledge(tracker, changes, delivery)?;
                        }
                    }
                    () = tokio::time::sleep(KEEP_ALIVE_WHILE_WAITING) => keep_alive(changes).await?,
                }
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// How often a waiting pipeline (registry away, broker queue full) checks that the stream
/// gets its status update.
pub(crate) const KEEP_ALIVE_WHILE_WAITING: Duration = Duration::from_millis(500);

/// Sends the stream's status update if one is due.
pub(crate) async fn keep_alive(changes: &mut ChangeStream) -> Result<(), PipelineError> {
    if changes.stream().status_due() {
        changes.stream().send_status(false).await?;
    }
    Ok(())
}
