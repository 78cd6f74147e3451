//! The stream loop against fakes: a change source, a sink with a bounded queue and delivery
//! reports the test hands out, and a describer of tables. Ordering, back-pressure and
//! confirmation, without services.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use sluice_avro::{ColumnSpec, RegistryError, TableCodec, TableSpec};
use sluice_kafka::{Delivered, Delivery, SendError};
use sluice_pgoutput::{Decoder, DecoderOptions, LogicalMessage, Lsn, PgTimestamp, Relation};
use sluice_postgres::Change;
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::*;
use crate::config::fixture::minimal;
use crate::incremental::Incremental;
use crate::metrics;
use crate::outbox::{Outbox, Record, Reports, Sink};
use crate::outputs::TableOut;
use crate::schema_change::Describe;

const TABLE: u32 = 16_384;

fn decode(bytes: Vec<u8>) -> LogicalMessage {
    Decoder::new(DecoderOptions::default())
        .decode(Bytes::from(bytes))
        .unwrap()
}

fn cstring(out: &mut Vec<u8>, text: &str) {
    out.extend_from_slice(text.as_bytes());
    out.push(0);
}

/// `public.t (id int4 key, v text)`.
fn relation() -> Change {
    let mut bytes = vec![b'R'];
    bytes.extend_from_slice(&TABLE.to_be_bytes());
    cstring(&mut bytes, "public");
    cstring(&mut bytes, "t");
    bytes.push(b'd');
    bytes.extend_from_slice(&2u16.to_be_bytes());
    for (flags, name, oid) in [(1u8, "id", 23u32), (0, "v", 25)] {
        bytes.push(flags);
        cstring(&mut bytes, name);
        bytes.extend_from_slice(&oid.to_be_bytes());
        bytes.extend_from_slice(&(-1i32).to_be_bytes());
    }
    Change::Message(decode(bytes))
}

fn insert(id: i32) -> Change {
    let mut bytes = vec![b'I'];
    bytes.extend_from_slice(&TABLE.to_be_bytes());
    bytes.push(b'N');
    bytes.extend_from_slice(&2u16.to_be_bytes());
    for text in [id.to_string(), format!("v{id}")] {
        bytes.push(b't');
        bytes.extend_from_slice(&u32::try_from(text.len()).unwrap().to_be_bytes());
        bytes.extend_from_slice(text.as_bytes());
    }
    Change::Message(decode(bytes))
}

fn begin(xid: u32, commit_lsn: u64) -> Change {
    Change::Begin {
        xid,
        commit_lsn: Lsn(commit_lsn),
        commit_time: PgTimestamp::from_system_time(std::time::SystemTime::now()),
        streamed: false,
    }
}

fn commit(xid: u32, end_lsn: u64) -> Change {
    Change::Commit {
        xid,
        end_lsn: Lsn(end_lsn),
    }
}

/// How often the fake source's status update is due, as the replication stream's is.
const STATUS_EVERY: Duration = Duration::from_secs(1);

/// Changes handed out in order; then none, ever.
struct FakeSource {
    changes: VecDeque<Change>,
    confirmed: Arc<Mutex<Vec<Lsn>>>,
    status_due: Instant,
    /// When each status update went out.
    statuses: Vec<Instant>,
}

impl Source for FakeSource {
    async fn recv(&mut self) -> Result<Option<Change>, PipelineError> {
        match self.changes.pop_front() {
            Some(change) => Ok(Some(change)),
            None => std::future::pending().await,
        }
    }

    fn try_recv(&mut self) -> Result<Option<Change>, PipelineError> {
        Ok(self.changes.pop_front())
    }

    fn read_ahead(&mut self) -> Result<bool, PipelineError> {
        Ok(false)
    }

    fn status_at(&self) -> Instant {
        self.status_due
    }

    async fn send_status(&mut self) -> Result<(), PipelineError> {
        self.statuses.push(Instant::now());
        self.status_due = Instant::now() + STATUS_EVERY;
        Ok(())
    }

    fn confirm(&mut self, lsn: Lsn) {
        self.confirmed.lock().unwrap().push(lsn);
    }
}

/// What the fake producer holds: records queued (up to `capacity`, then refused) in order.
#[derive(Default)]
struct Queue {
    capacity: usize,
    queued: VecDeque<(String, Option<Vec<u8>>, u64)>,
    /// Every record the queue took, in order: (topic, key, ticket).
    taken: Vec<(String, Option<Vec<u8>>, u64)>,
}

#[derive(Clone)]
struct FakeSink {
    queue: Arc<Mutex<Queue>>,
    reports: mpsc::UnboundedSender<Delivery>,
}

impl FakeSink {
    /// Acknowledges the `n` oldest queued records (or all), freeing their room.
    fn deliver(&self, n: usize) -> usize {
        let mut queue = self.queue.lock().unwrap();
        let n = n.min(queue.queued.len());
        for (_, _, ticket) in queue.queued.drain(..n) {
            let delivered = Ok(Delivered {
                partition: 0,
                offset: 0,
            });
            self.reports
                .send(Delivery {
                    ticket,
                    result: delivered,
                })
                .unwrap();
        }
        n
    }

    fn taken(&self) -> Vec<(String, Option<Vec<u8>>, u64)> {
        self.queue.lock().unwrap().taken.clone()
    }
}

impl Sink for FakeSink {
    fn send(&self, record: &Record<'_>, ticket: u64) -> Result<(), SendError> {
        let mut queue = self.queue.lock().unwrap();
        if queue.queued.len() >= queue.capacity {
            return Err(SendError::QueueFull);
        }
        let entry = (
            record.topic.to_owned(),
            record.key.map(<[u8]>::to_vec),
            ticket,
        );
        queue.queued.push_back(entry.clone());
        queue.taken.push(entry);
        Ok(())
    }
}

struct FakeReports(mpsc::UnboundedReceiver<Delivery>);

impl Reports for FakeReports {
    fn recv(&mut self) -> impl Future<Output = Option<Delivery>> + Send {
        self.0.recv()
    }

    fn try_recv(&mut self) -> Option<Delivery> {
        self.0.try_recv().ok()
    }
}

fn fake_outbox(capacity: usize) -> (Outbox<FakeSink, FakeReports>, FakeSink) {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = FakeSink {
        queue: Arc::new(Mutex::new(Queue {
            capacity,
            ..Queue::default()
        })),
        reports: tx,
    };
    (Outbox::new(sink.clone(), FakeReports(rx)), sink)
}

/// Describes every table as itself, with fixed schema ids; refuses `outages` times first
/// with an unavailable registry.
struct FakeDescribe {
    outages: usize,
    calls: usize,
}

impl Describe for FakeDescribe {
    async fn describe(
        &mut self,
        relation: &Relation,
        _before: Option<&TableOut>,
        _xid: Option<u32>,
    ) -> Result<TableOut, PipelineError> {
        self.calls += 1;
        if self.outages > 0 {
            self.outages -= 1;
            return Err(PipelineError::Registry(RegistryError::Unavailable {
                url: "http://registry".into(),
                detail: "down".into(),
            }));
        }
        let spec = TableSpec {
            schema: relation.namespace().to_owned(),
            name: relation.name().to_owned(),
            columns: relation
                .columns()
                .iter()
                .map(|c| ColumnSpec {
                    name: c.name().to_owned(),
                    type_oid: c.type_oid(),
                    type_modifier: c.type_modifier(),
                    nullable: !c.is_key(),
                    is_key: c.is_key(),
                    type_info: Default::default(),
                    default: None,
                })
                .collect(),
        };
        let topic = format!("shop.{}.{}", spec.schema, spec.name);
        Ok(TableOut {
            codec: TableCodec::new(&topic, &spec),
            topic,
            key_id: 1,
            value_id: 2,
            upsert: false,
            metrics: metrics::global().table("public.t"),
            collection: "public.t".to_owned(),
            columns: spec.columns.len(),
            partitions: 1,
            shape: relation
                .columns()
                .iter()
                .map(|c| (c.name().to_owned(), c.type_oid(), c.type_modifier()))
                .collect(),
        })
    }
}

/// Runs the loop over `changes` while `drive` (given the sink) hands out reports, until
/// `drive` returns; then what the source was confirmed to.
async fn run_loop(
    changes: Vec<Change>,
    capacity: usize,
    describe: &mut FakeDescribe,
    drive: impl AsyncFnOnce(FakeSink, Arc<Mutex<Vec<Lsn>>>),
) -> (Vec<Lsn>, FakeSink) {
    run_loop_with(changes, capacity, describe, None, drive).await
}

/// [`run_loop`] with incremental snapshots' side of the loop.
async fn run_loop_with(
    changes: Vec<Change>,
    capacity: usize,
    describe: &mut FakeDescribe,
    incremental: Option<Incremental>,
    drive: impl AsyncFnOnce(FakeSink, Arc<Mutex<Vec<Lsn>>>),
) -> (Vec<Lsn>, FakeSink) {
    let config = minimal();
    let mut outs = HashMap::new();
    let mut state = StreamState::new(&config, None, None, &mut outs);
    state.incremental = incremental;
    let mut source = FakeSource {
        changes: changes.into(),
        confirmed: Arc::default(),
        status_due: Instant::now() + STATUS_EVERY,
        statuses: Vec::new(),
    };
    let confirmed = Arc::clone(&source.confirmed);
    let (mut outbox, sink) = fake_outbox(capacity);
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let driver = {
        let (sink, confirmed) = (sink.clone(), Arc::clone(&confirmed));
        async move {
            drive(sink, confirmed).await;
            stop.send(()).unwrap();
        }
    };
    let shutdown = async {
        stopped.await.unwrap();
    };
    let (looped, ()) = tokio::join!(
        stream_changes(&mut state, &mut source, &mut outbox, describe, shutdown),
        driver
    );
    looped.unwrap();
    let confirmed = confirmed.lock().unwrap().clone();
    (confirmed, sink)
}

/// Waits (10 s at most) until `condition` holds.
async fn until(what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !condition() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

fn key_of(id: u8) -> Option<Vec<u8>> {
    // Confluent framing with schema id 1, then the Avro int (zigzag).
    Some(vec![0, 0, 0, 0, 1, id * 2])
}

#[tokio::test]
async fn events_go_out_in_commit_order_and_the_slot_is_confirmed_only_past_acknowledged_ones() {
    let changes = vec![
        begin(1, 100),
        relation(),
        insert(1),
        insert(2),
        commit(1, 108),
        begin(2, 200),
        insert(3),
        commit(2, 208),
    ];
    let mut describe = FakeDescribe {
        outages: 0,
        calls: 0,
    };
    let (confirmed, sink) = run_loop(changes, 100, &mut describe, async |sink, confirmed| {
        until("every event queued", || sink.taken().len() == 3).await;
        assert!(
            confirmed.lock().unwrap().is_empty(),
            "nothing acknowledged yet"
        );
        // The first transaction's first event only: not yet confirmable.
        sink.deliver(1);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(confirmed.lock().unwrap().is_empty(), "half a transaction");
        sink.deliver(1);
        until("the first transaction confirmed", || {
            confirmed.lock().unwrap().last() == Some(&Lsn(108))
        })
        .await;
        sink.deliver(1);
        until("the second transaction confirmed", || {
            confirmed.lock().unwrap().last() == Some(&Lsn(208))
        })
        .await;
    })
    .await;
    let keys: Vec<_> = sink.taken().into_iter().map(|(_, key, _)| key).collect();
    assert_eq!(keys, [key_of(1), key_of(2), key_of(3)]);
    assert_eq!(confirmed, [Lsn(108), Lsn(208)]);
}

#[tokio::test]
async fn a_full_queue_stops_intake_until_reports_free_it_and_order_holds() {
    let mut changes = vec![begin(1, 100), relation()];
    changes.extend((1..=5).map(insert));
    changes.push(commit(1, 108));
    let mut describe = FakeDescribe {
        outages: 0,
        calls: 0,
    };
    let (confirmed, sink) = run_loop(changes, 2, &mut describe, async |sink, confirmed| {
        // Two fit; the third is kept by the outbox, which blocks intake.
        until("the queue full", || sink.taken().len() == 2).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(sink.taken().len(), 2, "intake stopped while blocked");
        while sink.taken().len() < 5 || !sink.queue.lock().unwrap().queued.is_empty() {
            sink.deliver(1);
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        until("the transaction confirmed", || {
            confirmed.lock().unwrap().last() == Some(&Lsn(108))
        })
        .await;
    })
    .await;
    let keys: Vec<_> = sink.taken().into_iter().map(|(_, key, _)| key).collect();
    assert_eq!(keys, (1..=5).map(key_of).collect::<Vec<_>>());
    assert_eq!(confirmed, [Lsn(108)]);
}

#[tokio::test]
async fn a_keepalive_confirms_the_servers_position_only_when_nothing_is_in_flight() {
    let changes = vec![
        begin(1, 100),
        relation(),
        insert(1),
        commit(1, 108),
        Change::Keepalive { wal_end: Lsn(150) },
    ];
    let mut describe = FakeDescribe {
        outages: 0,
        calls: 0,
    };
    let (confirmed, _) = run_loop(changes, 100, &mut describe, async |sink, confirmed| {
        until("the event queued", || sink.taken().len() == 1).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            confirmed.lock().unwrap().is_empty(),
            "the keepalive's position is past an unacknowledged event"
        );
        sink.deliver(1);
        until("confirmed", || !confirmed.lock().unwrap().is_empty()).await;
    })
    .await;
    assert_eq!(confirmed, [Lsn(108)]);

    // Idle: the keepalive's position is confirmed as it comes.
    let changes = vec![Change::Keepalive { wal_end: Lsn(300) }];
    let (confirmed, _) = run_loop(changes, 100, &mut describe, async |_, confirmed| {
        until("confirmed", || !confirmed.lock().unwrap().is_empty()).await;
    })
    .await;
    assert_eq!(confirmed, [Lsn(300)]);
}

// Paused time: the outage lasts 200 + 400 + 800 + 1,600 + 3,200 ms of waits, longer than the
// status interval, whose updates must not put the next try off.
#[tokio::test(start_paused = true)]
async fn a_table_waiting_for_the_registry_holds_intake_and_is_described_again() {
    let changes = vec![begin(1, 100), relation(), insert(1), commit(1, 108)];
    let mut describe = FakeDescribe {
        outages: 5,
        calls: 0,
    };
    let (confirmed, sink) = run_loop(changes, 100, &mut describe, async |sink, confirmed| {
        until("the event queued after the registry came back", || {
            sink.taken().len() == 1
        })
        .await;
        sink.deliver(1);
        until("confirmed", || !confirmed.lock().unwrap().is_empty()).await;
    })
    .await;
    assert_eq!(describe.calls, 6, "five refusals, then the description");
    assert_eq!(sink.taken()[0].1, key_of(1));
    assert_eq!(confirmed, [Lsn(108)]);
}

// Paused time: a table's description (a slow registry, a slow catalog) takes 30 s, three
// times the local stack's wal_sender_timeout; status updates must go on meanwhile.
#[tokio::test(start_paused = true)]
async fn status_updates_go_on_while_a_table_is_described_and_a_stuck_one_is_given_up() {
    let mut source = FakeSource {
        changes: VecDeque::new(),
        confirmed: Arc::default(),
        status_due: Instant::now() + STATUS_EVERY,
        statuses: Vec::new(),
    };
    let started = Instant::now();
    let slow = async {
        tokio::time::sleep(Duration::from_secs(30)).await;
        Ok(())
    };
    keeping_alive(
        &mut source,
        slow,
        Some(("describing a table", DESCRIBE_TIMEOUT)),
    )
    .await
    .unwrap();
    // One each second; at 30 s the description is done first.
    assert_eq!(source.statuses.len(), 29);
    let mut last = started;
    for sent in &source.statuses {
        assert!(*sent - last <= STATUS_EVERY, "a gap of {:?}", *sent - last);
        last = *sent;
    }

    let stuck = std::future::pending::<Result<(), PipelineError>>();
    let err = keeping_alive(
        &mut source,
        stuck,
        Some(("describing a table", DESCRIBE_TIMEOUT)),
    )
    .await
    .unwrap_err();
    assert!(
        matches!(err, PipelineError::TimedOut { .. }) && err.is_transient(),
        "{err}"
    );
    assert_eq!(
        Instant::now() - started,
        Duration::from_secs(30) + DESCRIBE_TIMEOUT
    );
}

/// A transactional logical decoding message.
fn message(lsn: u64, prefix: &str, content: &str) -> Change {
    let mut bytes = vec![b'M', 1];
    bytes.extend_from_slice(&lsn.to_be_bytes());
    cstring(&mut bytes, prefix);
    bytes.extend_from_slice(&u32::try_from(content.len()).unwrap().to_be_bytes());
    bytes.extend_from_slice(content.as_bytes());
    Change::Message(decode(bytes))
}

/// An encoded chunk of rows keyed 1 to `n`, as the snapshot task hands it over.
fn chunk_of(n: u8) -> crate::incremental::ChunkRead {
    let (mut keys, mut values, mut rows) = (Vec::new(), Vec::new(), Vec::new());
    for id in 1..=n {
        keys.extend(key_of(id).unwrap());
        values.extend_from_slice(b"row");
        rows.push((keys.len(), values.len()));
    }
    crate::incremental::ChunkRead {
        oid: TABLE,
        key_id: 1,
        value_id: 2,
        keys,
        values,
        rows,
        upper: None,
    }
}

#[tokio::test]
async fn a_chunk_goes_out_at_its_watermark_without_the_rows_the_stream_changed_meanwhile() {
    use crate::incremental::{Incremental, Mark, Seen, TableJob};
    let config = minimal();
    let (mut incremental, mut task) = Incremental::new(
        &config,
        "shop._sluice_state".to_owned(),
        None,
        std::collections::HashSet::new(),
    );
    let job = TableJob {
        oid: TABLE,
        table: "public.t".to_owned(),
        after: None,
    };
    incremental.start(job, 0);
    let (_, open) = task.marks.put(Mark::Open { oid: TABLE });
    let (_, high) = task.marks.put(Mark::Chunk(chunk_of(4)));
    let changes = vec![
        begin(1, 100),
        relation(),
        insert(9),
        commit(1, 108),
        begin(2, 200),
        message(150, WATERMARK_PREFIX, &open),
        commit(2, 208),
        // Inside the window: row 2 changes; row 9 is outside the chunk.
        begin(3, 300),
        insert(2),
        insert(9),
        commit(3, 308),
        begin(4, 400),
        message(350, WATERMARK_PREFIX, &high),
        commit(4, 408),
        // After the watermark: a new window, row 3's change comes after the chunk's copy.
        begin(5, 500),
        insert(3),
        commit(5, 508),
    ];
    let (confirmed, sink) = run_loop_with(
        changes,
        100,
        &mut FakeDescribe {
            outages: 0,
            calls: 0,
        },
        Some(incremental),
        async |sink, confirmed| {
            until("all sent", || sink.taken().len() >= 7).await;
            sink.deliver(usize::MAX);
            until("all confirmed", || {
                confirmed.lock().unwrap().last() == Some(&Lsn(508))
            })
            .await;
        },
    )
    .await;
    let keys: Vec<_> = sink
        .taken()
        .into_iter()
        .filter(|(topic, _, _)| topic == "shop.public.t")
        .map(|(_, key, _)| key)
        .collect();
    assert_eq!(
        keys,
        [
            key_of(9),
            key_of(2),
            key_of(9),
            // The chunk: rows 1, 3 and 4; row 2's copy is older than its change.
            key_of(1),
            key_of(3),
            key_of(4),
            key_of(3),
        ]
    );
    let progress: Vec<_> = sink
        .taken()
        .into_iter()
        .filter(|(topic, _, _)| topic == "shop._sluice_state")
        .collect();
    assert_eq!(
        progress.len(),
        1,
        "the chunk's progress recorded once confirmed"
    );
    assert_eq!(confirmed.last(), Some(&Lsn(508)));
    assert!(matches!(
        task.seen.try_recv(),
        Ok(Seen::Opened { out: Some(_), .. })
    ));
    assert!(matches!(
        task.seen.try_recv(),
        Ok(Seen::Emitted {
            kept: 3,
            dropped: 1,
            ..
        })
    ));
}

#[tokio::test]
async fn a_snapshot_asked_again_while_a_chunk_is_out_drops_that_chunk_and_starts_anew() {
    use crate::incremental::{Incremental, Mark, SIGNAL_PREFIX, Seen, TableJob};
    let config = minimal();
    let (mut incremental, mut task) = Incremental::new(
        &config,
        "shop._sluice_state".to_owned(),
        None,
        std::collections::HashSet::new(),
    );
    incremental.start(
        TableJob {
            oid: TABLE,
            table: "public.t".to_owned(),
            after: None,
        },
        0,
    );
    let (_, open) = task.marks.put(Mark::Open { oid: TABLE });
    let (_, old_chunk) = task.marks.put(Mark::Chunk(chunk_of(3)));
    let (_, reopen) = task.marks.put(Mark::Open { oid: TABLE });
    let signal = format!(
        r#"{{"slot":"{}","snapshot":["public.t"]}}"#,
        config.replication.slot
    );
    let changes = vec![
        begin(1, 100),
        relation(),
        message(110, WATERMARK_PREFIX, &open),
        commit(1, 120),
        begin(2, 200),
        message(210, SIGNAL_PREFIX, &signal),
        commit(2, 220),
        begin(3, 300),
        message(310, WATERMARK_PREFIX, &old_chunk),
        commit(3, 320),
        begin(4, 400),
        message(410, WATERMARK_PREFIX, &reopen),
        commit(4, 420),
    ];
    let (_, sink) = run_loop_with(
        changes,
        100,
        &mut FakeDescribe {
            outages: 0,
            calls: 0,
        },
        Some(incremental),
        async |sink, confirmed| {
            until("the signal's record sent", || !sink.taken().is_empty()).await;
            sink.deliver(usize::MAX);
            until("all confirmed", || {
                confirmed.lock().unwrap().last() == Some(&Lsn(420))
            })
            .await;
        },
    )
    .await;
    let rows = sink
        .taken()
        .iter()
        .filter(|(topic, _, _)| topic == "shop.public.t")
        .count();
    assert_eq!(rows, 0, "the chunk read before the request is dropped");
    let seen: Vec<Seen> = std::iter::from_fn(|| task.seen.try_recv().ok()).collect();
    assert!(matches!(seen[0], Seen::Opened { out: Some(_), .. }));
    assert!(matches!(seen[1], Seen::Stale { out: None, .. }));
    assert!(
        matches!(seen[2], Seen::Opened { out: Some(_), .. }),
        "the new run opens: {seen:?}"
    );
}
