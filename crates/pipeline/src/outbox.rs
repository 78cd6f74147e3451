//! The outbox: every record sluice produces goes through it, and it is the only place that
//! waits on the broker.
//!
//! It holds the producer, its delivery reports and the tracker that turns them into the
//! position the slot may be confirmed to. Records of a transaction count against the
//! transaction's ticket; records outside any transaction (snapshot rows, the deletes a
//! snapshot finds, state records) are counted apart, also when snapshot copiers produce them
//! from tasks of their own ([`OutsideSender`]).
//!
//! Sending never waits: a record the producer's queue refuses is kept, copied, and the outbox
//! is *blocked* until the queue takes it (and every record after it, in order). The stream
//! loop stops taking changes while the outbox is blocked, and retries when delivery reports
//! free the queue; outside the stream, [`Outbox::send_when_room`] waits for room instead.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use sluice_kafka::{AckTracker, Deliveries, Delivery, Producer, SendError};
use sluice_pgoutput::Lsn;

use crate::error::PipelineError;
use crate::metrics;

/// The ticket of records outside any transaction.
pub(crate) const OUTSIDE: u64 = u64::MAX;

/// How long a waiting sender waits for delivery reports before it tries a full queue again.
pub(crate) const QUEUE_FULL_PAUSE: Duration = Duration::from_millis(5);

/// One record: where it goes, its key and value (`None`: absent; a value of `None` is a
/// tombstone).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Record<'a> {
    pub(crate) topic: &'a str,
    /// The partition, or `None` for the key's.
    pub(crate) partition: Option<i32>,
    pub(crate) key: Option<&'a [u8]>,
    pub(crate) value: Option<&'a [u8]>,
}

/// Where the outbox's records go: the Kafka producer, or a test's fake.
pub(crate) trait Sink {
    /// Enqueues `record` under `ticket`, never waiting ([`SendError::QueueFull`] when the queue
    /// is full).
    fn send(&self, record: &Record<'_>, ticket: u64) -> Result<(), SendError>;
}

impl Sink for Producer {
    fn send(&self, record: &Record<'_>, ticket: u64) -> Result<(), SendError> {
        self.send_to(
            record.topic,
            record.partition,
            record.key,
            record.value,
            ticket,
        )
    }
}

impl<S: Sink> Sink for Arc<S> {
    fn send(&self, record: &Record<'_>, ticket: u64) -> Result<(), SendError> {
        S::send(self, record, ticket)
    }
}

/// The delivery reports of the records sent: the producer's, or a test's fake.
pub(crate) trait Reports {
    /// The next report, waiting for one (cancel-safe); `None` once none can come.
    fn recv(&mut self) -> impl Future<Output = Option<Delivery>> + Send;
    /// The next report already there.
    fn try_recv(&mut self) -> Option<Delivery>;
}

impl Reports for Deliveries {
    fn recv(&mut self) -> impl Future<Output = Option<Delivery>> + Send {
        Deliveries::recv(self)
    }

    fn try_recv(&mut self) -> Option<Delivery> {
        Deliveries::try_recv(self)
    }
}

/// A record the queue refused, kept until it takes it.
#[derive(Debug)]
struct Kept {
    topic: String,
    partition: Option<i32>,
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    ticket: u64,
}

impl Kept {
    fn record(&self) -> Record<'_> {
        Record {
            topic: &self.topic,
            partition: self.partition,
            key: self.key.as_deref(),
            value: self.value.as_deref(),
        }
    }
}

/// See the module documentation.
#[derive(Debug)]
pub(crate) struct Outbox<S = Arc<Producer>, R = Deliveries> {
    sink: S,
    reports: R,
    tracker: AckTracker,
    /// Records the queue refused, in order.
    blocked: VecDeque<Kept>,
    /// Records outside transactions: sent (by anyone holding an [`OutsideSender`]) and
    /// acknowledged.
    outside_sent: Arc<AtomicU64>,
    outside_acked: u64,
    /// A position newly confirmable, not yet taken.
    confirmed: Option<Lsn>,
}

impl<S: Sink, R: Reports> Outbox<S, R> {
    pub(crate) fn new(sink: S, reports: R) -> Self {
        Outbox {
            sink,
            reports,
            tracker: AckTracker::new(),
            blocked: VecDeque::new(),
            outside_sent: Arc::default(),
            outside_acked: 0,
            confirmed: None,
        }
    }

    /// Where the records go (the producer, for what else it does: creating topics).
    pub(crate) fn sink(&self) -> &S {
        &self.sink
    }

    /// A transaction begins, ending at `position` as far as is known yet: its ticket.
    pub(crate) fn begin(&mut self, position: Lsn) -> u64 {
        self.tracker.begin(position.0)
    }

    /// Every record of transaction `ticket` has been sent; it ends at `end`.
    pub(crate) fn seal(&mut self, ticket: u64, end: Lsn) {
        if let Some(confirmed) = self.tracker.seal_at(ticket, end.0) {
            self.confirmed = Some(Lsn(confirmed));
        }
    }

    /// Sends `record` for transaction `ticket` (or [`OUTSIDE`]), never waiting: kept when the
    /// queue is full (or records before it are kept), and the outbox is blocked until the
    /// queue takes them.
    pub(crate) fn send(&mut self, record: Record<'_>, ticket: u64) -> Result<(), PipelineError> {
        self.count(ticket);
        if self.blocked.is_empty() {
            match self.sink.send(&record, ticket) {
                Ok(()) => return Ok(()),
                Err(SendError::QueueFull) => {
                    metrics::global().produce_retries.fetch_add(1, Relaxed);
                }
                Err(err) => return Err(err.into()),
            }
        }
        self.blocked.push_back(Kept {
            topic: record.topic.to_owned(),
            partition: record.partition,
            key: record.key.map(<[u8]>::to_vec),
            value: record.value.map(<[u8]>::to_vec),
            ticket,
        });
        Ok(())
    }

    fn count(&mut self, ticket: u64) {
        if ticket == OUTSIDE {
            self.outside_sent.fetch_add(1, Relaxed);
        } else {
            self.tracker.sent(ticket);
        }
    }

    /// Whether records wait for room in the producer's queue.
    pub(crate) fn is_blocked(&self) -> bool {
        !self.blocked.is_empty()
    }

    /// Offers the queue the records kept, in order, until it refuses one again.
    pub(crate) fn retry(&mut self) -> Result<(), PipelineError> {
        while let Some(kept) = self.blocked.front() {
            match self.sink.send(&kept.record(), kept.ticket) {
                Ok(()) => {
                    self.blocked.pop_front();
                }
                Err(SendError::QueueFull) => return Ok(()),
                Err(err) => return Err(err.into()),
            }
        }
        Ok(())
    }

    /// Waits for delivery reports and takes every one there (cancel-safe: a report taken is
    /// handled before this returns). An error when a record was refused for good.
    pub(crate) async fn reports(&mut self) -> Result<(), PipelineError> {
        match self.reports.recv().await {
            Some(delivery) => self.acknowledge(delivery)?,
            None => {
                return Err(PipelineError::Internal(
                    "the producer's delivery reports ended".to_owned(),
                ));
            }
        }
        self.take_reports()
    }

    /// Takes every delivery report already there, then offers the queue the records kept.
    pub(crate) fn take_reports(&mut self) -> Result<(), PipelineError> {
        while let Some(delivery) = self.reports.try_recv() {
            self.acknowledge(delivery)?;
        }
        metrics::global()
            .in_flight
            .store(self.tracker.in_flight(), Relaxed);
        self.retry()
    }

    fn acknowledge(&mut self, delivery: Delivery) -> Result<(), PipelineError> {
        if let Err(err) = delivery.result {
            metrics::global().produce_errors.fetch_add(1, Relaxed);
            return Err(PipelineError::Delivery(err));
        }
        if delivery.ticket == OUTSIDE {
            self.outside_acked += 1;
        } else if let Some(confirmed) = self.tracker.acknowledged(delivery.ticket) {
            self.confirmed = Some(Lsn(confirmed));
        }
        Ok(())
    }

    /// The newest position every record up to which is acknowledged, once, when it moved.
    pub(crate) fn take_confirmed(&mut self) -> Option<Lsn> {
        self.confirmed.take()
    }

    /// No transaction is open or unacknowledged: everything the server sent so far may be
    /// confirmed.
    pub(crate) fn idle(&self) -> bool {
        self.tracker.open_transactions() == 0
    }

    /// Records of transactions sent and not acknowledged.
    pub(crate) fn in_flight(&self) -> u64 {
        self.tracker.in_flight()
    }

    fn outside_in_flight(&self) -> u64 {
        self.outside_sent
            .load(Relaxed)
            .saturating_sub(self.outside_acked)
    }

    /// Sends `record`, waiting for room while the outbox is blocked: for records produced
    /// outside the stream loop (snapshot, state), where nothing else must go on meanwhile.
    pub(crate) async fn send_when_room(
        &mut self,
        record: Record<'_>,
        ticket: u64,
    ) -> Result<(), PipelineError> {
        self.wait_for_room().await?;
        self.send(record, ticket)?;
        self.wait_for_room().await
    }

    /// Waits until no record is kept.
    async fn wait_for_room(&mut self) -> Result<(), PipelineError> {
        while self.is_blocked() {
            // Reports free the queue; librdkafka's own retries may free it without one.
            if let Ok(taken) = tokio::time::timeout(QUEUE_FULL_PAUSE, self.reports()).await {
                taken?;
            } else {
                self.retry()?;
            }
        }
        Ok(())
    }

    /// Waits until every record outside transactions, sent by anyone, is acknowledged (the
    /// snapshot's rows and deletes, a state record): nothing else can be in flight then.
    pub(crate) async fn drain_outside(&mut self) -> Result<(), PipelineError> {
        self.wait_for_room().await?;
        while self.outside_in_flight() > 0 {
            self.reports().await?;
        }
        Ok(())
    }

    /// Waits, at most `timeout`, until every record is acknowledged, confirming as they are:
    /// the end of streaming. Whether all were.
    pub(crate) async fn drain(&mut self, timeout: Duration) -> Result<bool, PipelineError> {
        let drained = tokio::time::timeout(timeout, async {
            while self.is_blocked() || self.in_flight() > 0 || self.outside_in_flight() > 0 {
                match tokio::time::timeout(QUEUE_FULL_PAUSE, self.reports()).await {
                    Ok(taken) => taken?,
                    Err(_) => self.retry()?,
                }
            }
            Ok::<(), PipelineError>(())
        })
        .await;
        match drained {
            Ok(done) => done.map(|()| true),
            Err(_) => Ok(false),
        }
    }

    /// A sender of records outside transactions for another task (a snapshot copier), counted
    /// with the outbox's own.
    pub(crate) fn outside_sender(&self) -> OutsideSender<S>
    where
        S: Clone,
    {
        OutsideSender {
            sink: self.sink.clone(),
            sent: Arc::clone(&self.outside_sent),
        }
    }
}

/// Sends records outside transactions from another task; their reports reach the outbox.
#[derive(Debug, Clone)]
pub(crate) struct OutsideSender<S = Arc<Producer>> {
    sink: S,
    sent: Arc<AtomicU64>,
}

impl<S: Sink> OutsideSender<S> {
    /// Sends `record`, never waiting ([`PipelineError::QueueFull`] when the queue is full:
    /// offer it again later).
    pub(crate) fn send(&self, record: &Record<'_>) -> Result<(), PipelineError> {
        // Counted before it is sent: its report may be taken before `send` returns.
        self.sent.fetch_add(1, Relaxed);
        self.sink.send(record, OUTSIDE).map_err(|err| {
            self.sent.fetch_sub(1, Relaxed);
            PipelineError::from(err)
        })
    }
}
