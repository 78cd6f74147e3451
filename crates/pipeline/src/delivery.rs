//! Records that belong to no transaction (snapshot rows, the deletes a snapshot finds, state
//! records): their tickets, producing them while the producer's queue is full, and taking
//! their delivery reports. The stream's own records wait in the stream loop instead, which
//! must keep the replication connection alive meanwhile.

use std::time::Duration;

use sluice_kafka::{Deliveries, Producer};

use crate::error::PipelineError;

/// The ticket of snapshot records: they are not part of any transaction; the snapshot is
/// complete once the producer has nothing left in flight.
pub(crate) const SNAPSHOT_TICKET: u64 = u64::MAX;

/// The ticket of state records, which belong to no transaction.
pub(crate) const STATE_TICKET: u64 = u64::MAX - 1;

/// How long a full producer queue is waited on before sending again.
const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// Produces one record outside any transaction (`ticket` is [`SNAPSHOT_TICKET`] or
/// [`STATE_TICKET`]), taking delivery reports while the producer's queue is full.
pub(crate) async fn send_outside_transactions(
    producer: &Producer,
    deliveries: &mut Deliveries,
    topic: &str,
    key: Option<&[u8]>,
    value: Option<&[u8]>,
    ticket: u64,
) -> Result<(), PipelineError> {
    while_full(deliveries, || {
        producer
            .send(topic, key, value, ticket)
            .map_err(PipelineError::from)
    })
    .await
}

/// Calls `send` until it is not refused for a full producer queue, taking delivery reports
/// between tries.
pub(crate) async fn while_full(
    deliveries: &mut Deliveries,
    mut send: impl FnMut() -> Result<(), PipelineError>,
) -> Result<(), PipelineError> {
    loop {
        match send() {
            Err(PipelineError::QueueFull) => {
                take_deliveries(deliveries)?;
                tokio::time::sleep(QUEUE_FULL_PAUSE).await;
            }
            other => return other,
        }
    }
}

/// Takes every delivery report waiting, failing on the first refused one.
pub(crate) fn take_deliveries(deliveries: &mut Deliveries) -> Result<(), PipelineError> {
    while let Some(delivery) = deliveries.try_recv() {
        delivery.result.map_err(PipelineError::Delivery)?;
    }
    Ok(())
}
