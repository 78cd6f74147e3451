//! sluice killed with SIGKILL, again and again, while a writer keeps committing: twice in the
//! middle of the snapshot (its copy held back by a proxy after some rows), twice soon after
//! starting, then at random points while streaming. After each kill, every event in Kafka must
//! carry values the row really had, each key's events must follow the row's history without
//! skipping a change (a replay after a restart may repeat some: at-least-once, counted and
//! reported), and the slot's confirmed position must not have passed a transaction whose
//! changes are not in Kafka. After the last restart, replaying the topic must give exactly the
//! table PostgreSQL holds, value for value.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Event, Sluice, decode_records, events_of, read_raw_to_end, snapshot_phase, wait_for_records,
    wait_until_streaming,
};
use sluice_e2e::proxy::PgProxy;
use sluice_e2e::{ScratchPg, Stack, unique_name};
use sluice_pipeline::state::SnapshotPhase;

const KILLS: u32 = 20;
/// Kills while the snapshot's copy is held back, then kills soon after starting.
const MID_SNAPSHOT_KILLS: u32 = 2;
const EARLY_KILLS: u32 = 2;
const INITIAL_ROWS: i64 = 3000;
/// The snapshot's copier: after the catalog's, the replication and the planner's connection.
const COPIER_CONNECTION: usize = 4;

/// One writer transaction, in commit order: the row it inserted, the row it updated, the row
/// it deleted (if any), and the WAL position read right after its commit (at or past its
/// commit's end; `None` until read).
#[derive(Debug, Clone)]
pub(crate) struct Transaction {
    inserted: i64,
    updated: i64,
    deleted: Option<i64>,
    lsn_after: Option<u64>,
}

impl Transaction {
    /// The writer's transaction number `next`: it inserts row `next`, updates the row before
    /// it and deletes an older one every fifth time.
    fn number(next: i64) -> Transaction {
        Transaction {
            inserted: next,
            updated: next - 1,
            deleted: (next % 5 == 0).then_some(next % INITIAL_ROWS + 1),
            lsn_after: None,
        }
    }

    fn sql(&self, schema: &str) -> String {
        format!(
            "BEGIN;
             INSERT INTO {schema}.t VALUES ({}, 0, 'new');
             UPDATE {schema}.t SET v = v + 1 WHERE id = {};
             DELETE FROM {schema}.t WHERE id = {};
             COMMIT;",
            self.inserted,
            self.updated,
            self.deleted.unwrap_or(0)
        )
    }
}

/// A version of a row: its values, or gone.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Version {
    Row { v: i64, pad: String },
    Deleted,
}

/// Each row's versions in order, and what each transaction made: (row, version index).
struct History {
    rows: HashMap<i64, Vec<Version>>,
    made: Vec<Vec<(i64, usize)>>,
}

impl History {
    fn of(transactions: &[Transaction]) -> History {
        let mut rows: HashMap<i64, Vec<Version>> = (1..=INITIAL_ROWS)
            .map(|id| {
                let initial = Version::Row {
                    v: 0,
                    pad: "p".repeat(100),
                };
                (id, vec![initial])
            })
            .collect();
        let mut made = Vec::new();
        for transaction in transactions {
            let mut changes = Vec::new();
            let new = Version::Row {
                v: 0,
                pad: "new".to_owned(),
            };
            rows.insert(transaction.inserted, vec![new]);
            changes.push((transaction.inserted, 0));
            let versions = rows.get_mut(&transaction.updated).unwrap();
            if let Some(Version::Row { v, pad }) = versions.last().cloned() {
                versions.push(Version::Row { v: v + 1, pad });
                changes.push((transaction.updated, versions.len() - 1));
            }
            if let Some(id) = transaction.deleted {
                // A row already deleted: the DELETE finds nothing.
                let versions = rows.get_mut(&id).unwrap();
                if versions.last() != Some(&Version::Deleted) {
                    versions.push(Version::Deleted);
                    changes.push((id, versions.len() - 1));
                }
            }
            made.push(changes);
        }
        History { rows, made }
    }
}

/// What a check of the topic found.
#[derive(Default)]
struct Check {
    violations: Vec<String>,
    /// Events that repeat one the key already had (op and version).
    duplicates: usize,
    /// Per row, the latest version its events reached.
    reached: HashMap<i64, usize>,
}

fn long(value: &Value) -> Option<i64> {
    match value {
        Value::Long(n) => Some(*n),
        _ => None,
    }
}

/// The row version an `r`, `c` or `u` event's `after` holds.
fn version_of(id: i64, after: Option<&BTreeMap<String, Value>>) -> Result<Version, String> {
    let after = after.ok_or("no after")?;
    match (&after["id"], &after["v"], &after["pad"]) {
        (Value::Long(row), Value::Long(v), Value::String(pad)) if *row == id => Ok(Version::Row {
            v: *v,
            pad: pad.clone(),
        }),
        _ => Err(format!("after {after:?}")),
    }
}

/// Checks every event of the topic (each key's in its partition's order) against the rows'
/// histories.
fn check_events(events: &[Event], history: &History) -> Check {
    let mut check = Check::default();
    // Per row: the op and version of its previous event, and the (op, version)s seen.
    let mut previous: HashMap<i64, (Option<String>, usize)> = HashMap::new();
    let mut seen: HashSet<(i64, Option<String>, usize)> = HashSet::new();
    for event in events {
        let Some(id) = event.key.get("id").and_then(long) else {
            check
                .violations
                .push(format!("an event without a long id key: {event:?}"));
            continue;
        };
        let Some(versions) = history.rows.get(&id) else {
            check
                .violations
                .push(format!("row {id} was never written: {event:?}"));
            continue;
        };
        let position = |version: &Version| versions.iter().position(|v| v == version);
        let last = previous.get(&id).cloned();
        let index = match event.op.as_deref() {
            Some(op @ ("r" | "c" | "u")) => match version_of(id, event.after.as_ref()) {
                Ok(version) => position(&version).filter(|i| op != "c" || *i == 0),
                Err(err) => {
                    check
                        .violations
                        .push(format!("row {id}: {op} event with {err}"));
                    continue;
                }
            },
            // A retaken snapshot's delete of a row gone since: its before is the last
            // version the topic held.
            Some("d") if event.snapshot.as_deref() == Some("true") => {
                let held = version_of(id, event.before.as_ref())
                    .ok()
                    .and_then(|version| position(&version));
                if held.is_none() {
                    check.violations.push(format!(
                        "row {id}: a retaken snapshot's delete's before {:?}",
                        event.before
                    ));
                }
                position(&Version::Deleted)
            }
            Some("d") => {
                let key_only = event.before.as_ref().is_some_and(|before| {
                    long(&before["id"]) == Some(id)
                        && before["v"] == Value::Null
                        && before["pad"] == Value::Null
                });
                if !key_only {
                    check
                        .violations
                        .push(format!("row {id}: delete's before {:?}", event.before));
                }
                position(&Version::Deleted)
            }
            // A delete's tombstone, or one a retaken snapshot sends for a row gone since.
            None => match &last {
                Some((Some(op), index)) if op == "d" => Some(*index),
                _ => position(&Version::Deleted),
            },
            Some(op) => {
                check.violations.push(format!("row {id}: op {op}"));
                continue;
            }
        };
        let Some(index) = index else {
            check.violations.push(format!(
                "row {id}: {:?} event with values it never had: {event:?}; its history {versions:?}",
                event.op
            ));
            continue;
        };
        // A change streamed comes right after the version before it (or repeats an earlier
        // one, replayed after a restart); a snapshot's row may be any version.
        let streamed = matches!(event.op.as_deref(), Some("c" | "u" | "d"))
            && event.snapshot.as_deref() == Some("false");
        let follows = match &last {
            Some((_, before)) => index <= before + 1,
            None => index == 0,
        };
        if streamed && !follows {
            check.violations.push(format!(
                "row {id}: version {index} ({:?}) follows {last:?}: a change was skipped",
                event.op
            ));
        }
        if !seen.insert((id, event.op.clone(), index)) {
            check.duplicates += 1;
        }
        let reached = check.reached.entry(id).or_insert(index);
        *reached = (*reached).max(index);
        previous.insert(id, (event.op.clone(), index));
    }
    check
}

/// Every event of `topic`, decoded, each key's in its order.
async fn events_in(stack: &Stack, topic: &str) -> Vec<Event> {
    let raw = read_raw_to_end(stack, &[topic.to_owned()], 0).await;
    events_of(decode_records(stack, raw).await)
}

/// The table a replay of `events` gives: the rows alive at the end, with their values.
fn replay(events: &[Event]) -> BTreeMap<i64, Version> {
    let mut rows = BTreeMap::new();
    for event in events {
        let Some(id) = event.key.get("id").and_then(long) else {
            continue;
        };
        match event.op.as_deref() {
            Some("r" | "c" | "u") => {
                if let Ok(version) = version_of(id, event.after.as_ref()) {
                    rows.insert(id, version);
                }
            }
            _ => {
                rows.remove(&id);
            }
        }
    }
    rows
}

fn parse_lsn(text: &str) -> u64 {
    let (high, low) = text.split_once('/').unwrap();
    (u64::from_str_radix(high, 16).unwrap() << 32) | u64::from_str_radix(low, 16).unwrap()
}

fn spawn_sluice(config: &std::path::Path) -> Child {
    Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--config"])
        .arg(config)
        .env("SLUICE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .expect("sluice starts")
}

fn signal(child: &Child, signal: &str) {
    Command::new("kill")
        .args([signal, &child.id().to_string()])
        .status()
        .unwrap();
}

/// A small deterministic generator, so a failing run can be repeated.
struct Lcg(u64);

impl Lcg {
    fn next_in(&mut self, low: u64, high: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        low + (self.0 >> 33) % (high - low)
    }
}

/// The writer: a transaction every few milliseconds until `stop`, each recorded in
/// `transactions` before it commits (so that no event in Kafka is of a transaction the test
/// does not know) and given its WAL position after.
pub(crate) async fn writer(stack: &Stack, schema: String) -> Writer {
    let client = stack.pg_connect("sluice").await;
    let writer = Writer {
        transactions: Arc::default(),
        stop: Arc::default(),
        task: None,
    };
    let (transactions, stop) = (Arc::clone(&writer.transactions), Arc::clone(&writer.stop));
    let task = tokio::spawn(async move {
        let mut next = INITIAL_ROWS + 1;
        while !stop.load(Ordering::Relaxed) {
            let transaction = Transaction::number(next);
            transactions.lock().unwrap().push(transaction.clone());
            client
                .batch_execute(&transaction.sql(&schema))
                .await
                .unwrap();
            let lsn: String = client
                .query_one("SELECT pg_current_wal_lsn()::text", &[])
                .await
                .unwrap()
                .get(0);
            transactions.lock().unwrap().last_mut().unwrap().lsn_after = Some(parse_lsn(&lsn));
            next += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    Writer {
        task: Some(task),
        ..writer
    }
}

/// The writer's task and what the test shares with it.
pub(crate) struct Writer {
    pub(crate) transactions: Arc<Mutex<Vec<Transaction>>>,
    stop: Arc<AtomicBool>,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Writer {
    /// Stops it after the transaction it is writing.
    pub(crate) async fn stop(self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(task) = self.task {
            task.await.unwrap();
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigkill_at_random_points_loses_nothing_and_confirms_nothing_unwritten() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("crash");
    let prefix = unique_name("crash");
    let slot = unique_name("crash_slot");
    let publication = unique_name("crash_pub");
    create_table(&sql, &schema).await;
    let topic = format!("{prefix}.{schema}.t");
    // Through a proxy, which can hold the snapshot's copy back after some rows.
    let proxy = PgProxy::start(stack.pg_port);
    let config = config_file(&stack, proxy.port, &prefix, &slot, &publication, &schema);

    let writer = writer(&stack, schema.clone()).await;
    let transactions = Arc::clone(&writer.transactions);

    let mut random = Lcg(0x5eed);
    let mut violations = Vec::new();
    let mut duplicates = 0;
    for kill in 0..KILLS {
        proxy.reset();
        let held = kill < MID_SNAPSHOT_KILLS;
        let mut before = 0;
        if held {
            // The copy gets 64 KiB (some 500 rows of the 3000) and then nothing more.
            proxy.hold(COPIER_CONNECTION, 64 * 1024);
            before = read_raw_to_end(&stack, std::slice::from_ref(&topic), 0)
                .await
                .len();
        }
        let mut child = spawn_sluice(&config);
        let when = if held {
            wait_for_records(&stack, std::slice::from_ref(&topic), before + 100).await;
            "with its snapshot's copy held back".to_owned()
        } else if kill < MID_SNAPSHOT_KILLS + EARLY_KILLS {
            let wait = random.next_in(20, 400);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            format!("{wait} ms after starting")
        } else {
            wait_until_streaming(&sql, &slot).await;
            let wait = random.next_in(0, 1500);
            tokio::time::sleep(Duration::from_millis(wait)).await;
            format!("{wait} ms into streaming")
        };
        signal(&child, "-KILL");
        child.wait().unwrap();

        let confirmed: Option<String> = sql
            .query_opt(
                "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = $1",
                &[&slot],
            )
            .await
            .unwrap()
            .and_then(|row| row.get(0));
        let phase = snapshot_phase(&stack, &prefix, &slot).await;
        eprintln!("kill {kill} {when}: confirmed {confirmed:?}, snapshot {phase:?}");
        if held {
            assert_eq!(
                phase,
                Some(SnapshotPhase::Started),
                "kill {kill}: mid-snapshot"
            );
        } else if kill >= MID_SNAPSHOT_KILLS + EARLY_KILLS {
            assert_eq!(
                phase,
                Some(SnapshotPhase::Complete),
                "kill {kill}: streaming"
            );
        }

        // Every event so far carries true values, in each row's order.
        let events = events_in(&stack, &topic).await;
        let done = transactions.lock().unwrap().clone();
        let history = History::of(&done);
        let check = check_events(&events, &history);
        eprintln!(
            "kill {kill}: {} events, {} duplicates so far",
            events.len(),
            check.duplicates
        );
        violations.extend(check.violations.iter().map(|v| format!("kill {kill}: {v}")));
        duplicates = check.duplicates;

        // What the slot says is durable is in Kafka. A slot whose snapshot is not recorded
        // complete is one sluice drops on its next start (the snapshot is taken again from a
        // new slot): sluice confirmed nothing on it.
        let Some(confirmed) = confirmed.map(|c| parse_lsn(&c)) else {
            continue;
        };
        if phase != Some(SnapshotPhase::Complete) {
            continue;
        }
        for (transaction, made) in done.iter().zip(&history.made) {
            if transaction.lsn_after.is_none_or(|lsn| lsn > confirmed) {
                continue;
            }
            for (id, index) in made {
                // A row deleted before the snapshot read it needs no event.
                let gone = history.rows[id][*index] == Version::Deleted;
                let reached = check.reached.get(id);
                if !(gone && reached.is_none()) && reached.is_none_or(|reached| reached < index) {
                    violations.push(format!(
                        "kill {kill}: slot confirmed {confirmed:X} past {transaction:?}, but row {id}'s version {index} is not in Kafka"
                    ));
                }
            }
        }
    }
    writer.stop().await;
    assert!(violations.is_empty(), "{violations:#?}");

    // The last run: everything committed arrives; then a clean stop, after which the topic
    // holds the table exactly.
    proxy.reset();
    let mut child = spawn_sluice(&config);
    let expected = table_rows(&sql, &schema).await;
    wait_for_replay(&stack, &topic, &expected).await;
    signal(&child, "-TERM");
    assert!(child.wait().unwrap().success(), "sluice exits 0 on SIGTERM");
    let events = events_in(&stack, &topic).await;
    let history = History::of(&transactions.lock().unwrap());
    let check = check_events(&events, &history);
    assert!(check.violations.is_empty(), "{:#?}", check.violations);
    let replayed = replay(&events);
    assert!(replayed == expected, "{}", difference(&expected, &replayed));
    eprintln!(
        "crash test: {KILLS} kills, {} events in Kafka, {} rows in PostgreSQL, {} duplicate events ({duplicates} before the last run)",
        events.len(),
        expected.len(),
        check.duplicates,
    );
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .ok();
}

/// sluice's configuration for the tests here: `schema.t` through PostgreSQL on `port`, one
/// copier, and a reconnect timeout that outlasts any restart a test makes.
fn config_file(
    stack: &Stack,
    port: u16,
    prefix: &str,
    slot: &str,
    publication: &str,
    schema: &str,
) -> std::path::PathBuf {
    let config = std::env::temp_dir().join(format!("{prefix}.toml"));
    std::fs::write(
        &config,
        format!(
            "[postgres]\nport = {port}\ndatabase = \"{}\"\nuser = \"sluice\"\npassword = \"sluice\"\nsslmode = \"disable\"\n\
             [replication]\nslot = \"{slot}\"\npublication = \"{publication}\"\nreconnect_timeout = \"2m\"\n\
             [tables]\ninclude = [\"{schema}.t\"]\n\
             [snapshot]\nparallelism = 1\n\
             [kafka]\nbootstrap_servers = \"{}\"\ntopic_prefix = \"{prefix}\"\npartitions = 3\n\
             [registry]\nurl = \"{}\"\n[metrics]\nenabled = false\n",
            stack.pg_database, stack.kafka_bootstrap, stack.registry_url
        ),
    )
    .unwrap();
    config
}

/// `schema.t` with [`INITIAL_ROWS`] rows, as [`History::of`] expects them.
pub(crate) async fn create_table(sql: &tokio_postgres::Client, schema: &str) {
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id bigint PRIMARY KEY, v bigint NOT NULL, pad text);
         INSERT INTO {schema}.t SELECT g, 0, repeat('p', 100) FROM generate_series(1, {INITIAL_ROWS}) g;"
    ))
    .await
    .unwrap();
}

/// The rows `schema.t` holds.
async fn table_rows(sql: &tokio_postgres::Client, schema: &str) -> BTreeMap<i64, Version> {
    sql.query(&format!("SELECT id, v, pad FROM {schema}.t"), &[])
        .await
        .unwrap()
        .iter()
        .map(|row| {
            let version = Version::Row {
                v: row.get(1),
                pad: row.get(2),
            };
            (row.get(0), version)
        })
        .collect()
}

/// Waits until a replay of `topic` gives `expected` (a deadline bounds a hang only).
async fn wait_for_replay(stack: &Stack, topic: &str, expected: &BTreeMap<i64, Version>) {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut replayed = BTreeMap::new();
    while replayed != *expected {
        assert!(
            Instant::now() < deadline,
            "the topic never replayed into the table: {}",
            difference(expected, &replayed)
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        replayed = replay(&events_in(stack, topic).await);
    }
}

/// The pid of the walsender streaming from `slot` (its command START_REPLICATION), if any.
pub(crate) async fn walsender(sql: &tokio_postgres::Client, slot: &str) -> Option<i32> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let pid = sql
            .query_opt(
                "SELECT a.pid FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
                  WHERE s.slot_name = $1 AND a.query LIKE 'START_REPLICATION%'",
                &[&slot],
            )
            .await
            .unwrap()
            .map(|row| row.get(0));
        if pid.is_some() || Instant::now() > deadline {
            return pid;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The names of a test's table, topics and slot (also its publication).
pub(crate) struct Names {
    pub(crate) schema: String,
    prefix: String,
    pub(crate) slot: String,
}

impl Names {
    pub(crate) fn new(purpose: &str) -> Names {
        Names {
            schema: unique_name(purpose),
            prefix: unique_name(purpose),
            slot: unique_name(&format!("{purpose}_slot")),
        }
    }

    fn topic(&self) -> String {
        format!("{}.{}.t", self.prefix, self.schema)
    }

    pub(crate) fn config(&self, stack: &Stack, port: u16) -> std::path::PathBuf {
        config_file(
            stack,
            port,
            &self.prefix,
            &self.slot,
            &self.slot,
            &self.schema,
        )
    }
}

/// Once the writer stopped: everything committed arrives in each row's order with true
/// values, while the same sluice process still runs, having started again at least
/// `interruptions` times; it then stops cleanly, and the slot is dropped. A line of figures
/// for the output.
pub(crate) async fn carried_on(
    stack: &Stack,
    sql: &tokio_postgres::Client,
    names: &Names,
    (mut sluice, interruptions): (Sluice, usize),
    transactions: &Mutex<Vec<Transaction>>,
) -> String {
    let topic = names.topic();
    let expected = table_rows(sql, &names.schema).await;
    wait_for_replay(stack, &topic, &expected).await;
    assert!(sluice.running(), "{}", sluice.stderr());
    let (status, stderr) = sluice.stop_with_stderr();
    assert!(status.success(), "sluice exits 0 on SIGTERM:\n{stderr}");
    let events = events_in(stack, &topic).await;
    let done = transactions.lock().unwrap().clone();
    let check = check_events(&events, &History::of(&done));
    assert!(check.violations.is_empty(), "{:#?}", check.violations);
    let started_again = stderr.matches("starting again from the slot").count();
    assert!(
        started_again >= interruptions,
        "{started_again} starts again logged after {interruptions} interruptions:\n{stderr}"
    );
    sql.execute("SELECT pg_drop_replication_slot($1)", &[&names.slot])
        .await
        .ok();
    format!(
        "{} transactions, {} events, {} duplicate events, {started_again} starts again",
        done.len(),
        events.len(),
        check.duplicates
    )
}

/// The rows that differ between what PostgreSQL holds and a replay of the topic.
fn difference(expected: &BTreeMap<i64, Version>, replayed: &BTreeMap<i64, Version>) -> String {
    let missing: Vec<_> = expected
        .iter()
        .filter(|(id, version)| replayed.get(id) != Some(version))
        .take(20)
        .collect();
    let extra: Vec<_> = replayed
        .iter()
        .filter(|(id, _)| !expected.contains_key(id))
        .take(20)
        .collect();
    format!("in PostgreSQL, not so in Kafka: {missing:?}; alive in Kafka only: {extra:?}")
}

/// The writer of the restart test: like [`writer`], against a server that goes away. The
/// server is restarted only by whoever holds `restarts` (and counts it there), never while a
/// transaction of the writer is in flight, and the writer connects again after each restart
/// before it writes, to the server `port` names then (after a failover, the promoted
/// standby): so every transaction it records committed, and none it did not record was sent.
pub(crate) async fn writer_across_restarts(
    stack: &Stack,
    port: Arc<AtomicU16>,
    schema: String,
    transactions: Arc<Mutex<Vec<Transaction>>>,
    stop: Arc<AtomicBool>,
    restarts: Arc<tokio::sync::Mutex<u32>>,
) -> tokio::task::JoinHandle<()> {
    let stack = stack.clone();
    tokio::spawn(async move {
        let mut client = stack
            .pg_connect_port(port.load(Ordering::Relaxed), "sluice")
            .await;
        let mut connected_after = 0;
        let mut next = INITIAL_ROWS + 1;
        while !stop.load(Ordering::Relaxed) {
            let restarted = restarts.lock().await;
            if *restarted != connected_after {
                client = stack
                    .pg_connect_port(port.load(Ordering::Relaxed), "sluice")
                    .await;
                connected_after = *restarted;
            }
            let transaction = Transaction::number(next);
            client
                .batch_execute(&transaction.sql(&schema))
                .await
                .unwrap();
            transactions.lock().unwrap().push(transaction);
            next += 1;
            drop(restarted);
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_restarted_five_times_during_writes_sluice_carries_on_and_loses_nothing() {
    let stack = Stack::from_env();
    let scratch = ScratchPg::up("crash_restarts", &[]);
    let sql = stack.pg_connect_port(scratch.port, "sluice").await;
    let names = Names::new("restarts");
    create_table(&sql, &names.schema).await;
    drop(sql);
    let config = names.config(&stack, scratch.port);
    let mut sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "warn");
    let admin = stack.pg_connect_port(scratch.port, "postgres").await;
    wait_until_streaming(&admin, &names.slot).await;
    drop(admin);

    let transactions: Arc<Mutex<Vec<Transaction>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let restarts = Arc::new(tokio::sync::Mutex::new(0));
    let writer = writer_across_restarts(
        &stack,
        Arc::new(AtomicU16::new(scratch.port)),
        names.schema.clone(),
        Arc::clone(&transactions),
        Arc::clone(&stop),
        Arc::clone(&restarts),
    )
    .await;
    for restart in 0..5 {
        let mode = if restart % 2 == 0 {
            "fast"
        } else {
            "immediate"
        };
        // Writes before the restart, some of them not yet read by sluice when it comes.
        let written = transactions.lock().unwrap().len();
        while transactions.lock().unwrap().len() < written + 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        {
            let mut count = restarts.lock().await;
            scratch.restart(mode);
            *count += 1;
        }
        assert!(
            sluice.running(),
            "sluice ended after restart {restart} ({mode}):\n{}",
            sluice.stderr()
        );
        let admin = stack.pg_connect_port(scratch.port, "postgres").await;
        wait_until_streaming(&admin, &names.slot).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let sql = stack.pg_connect_port(scratch.port, "sluice").await;
    let outcome = carried_on(&stack, &sql, &names, (sluice, 5), &transactions).await;
    eprintln!("restart test: 5 restarts, {outcome}");
}

#[tokio::test(flavor = "multi_thread")]
async fn replication_connections_cut_or_terminated_during_writes_sluice_carries_on_and_loses_nothing()
 {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let names = Names::new("cuts");
    create_table(&sql, &names.schema).await;
    let proxy = PgProxy::start(stack.pg_port);
    let config = names.config(&stack, proxy.port);
    let mut sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "warn");
    wait_until_streaming(&sql, &names.slot).await;

    let writer = writer(&stack, names.schema.clone()).await;
    let transactions = Arc::clone(&writer.transactions);
    for round in 0..6 {
        let written = transactions.lock().unwrap().len();
        while transactions.lock().unwrap().len() < written + 50 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let streaming = walsender(&sql, &names.slot).await.expect("sluice streams");
        let how = if round % 2 == 0 {
            // Every connection of sluice's ends at once, as in a network failure.
            proxy.cut();
            "cut"
        } else {
            // The server ends the replication connection (FATAL 57P01).
            sql.execute(
                "SELECT pg_terminate_backend(active_pid) FROM pg_replication_slots \
                 WHERE slot_name = $1 AND active_pid IS NOT NULL",
                &[&names.slot],
            )
            .await
            .unwrap();
            "terminated"
        };
        assert!(
            sluice.running(),
            "sluice ended after round {round} ({how}):\n{}",
            sluice.stderr()
        );
        // A walsender of the new session, not the old one before it noticed its end.
        let deadline = Instant::now() + Duration::from_secs(60);
        while walsender(&sql, &names.slot)
            .await
            .is_none_or(|pid| pid == streaming)
        {
            assert!(
                Instant::now() < deadline,
                "sluice streams again after round {round}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    writer.stop().await;

    let outcome = carried_on(&stack, &sql, &names, (sluice, 6), &transactions).await;
    eprintln!("cut test: 3 cuts and 3 terminations, {outcome}");
}
