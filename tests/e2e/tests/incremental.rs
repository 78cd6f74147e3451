//! Incremental snapshots: tables read in chunks while streaming goes on. Rows changed
//! (inserted, updated, deleted, their key changed) inside the very chunks being read; sluice
//! killed with SIGKILL again and again in the middle, each restart going on from the last
//! acknowledged chunk; a table that joins the selection arriving whole; a snapshot asked
//! for with `sluice snapshot`. Each time the topic, replayed, must equal the table.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::{Duration, Instant};

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Event, Sluice, events_of, read_records_to_end, recorded_state, stop_and_drop_slot,
    wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};
use sluice_pipeline::state::{TablePhase, TableProgress};

const BINARY: &str = env!("CARGO_BIN_EXE_sluice-cli");

/// How long a snapshot may take in these tests before they fail.
const LIMIT: Duration = Duration::from_secs(180);

/// A configuration capturing `schema` with an incremental snapshot of `chunk` rows a chunk.
fn incremental_config(
    stack: &Stack,
    name: &str,
    schema: &str,
    chunk: u64,
) -> (std::path::PathBuf, String, String) {
    let (prefix, slot) = (unique_name(name), unique_name(&format!("{name}_slot")));
    let config = write_config(
        stack,
        &prefix,
        &slot,
        &unique_name(&format!("{name}_pub")),
        schema,
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}\n[snapshot]\nmode = \"incremental\"\nincremental_chunk_rows = {chunk}\n"),
    )
    .unwrap();
    (config, prefix, slot)
}

/// What the state topic records of `table`'s snapshot.
async fn progress(stack: &Stack, prefix: &str, slot: &str, table: &str) -> Option<TableProgress> {
    recorded_state(stack, prefix, slot)
        .await
        .tables
        .remove(table)
}

/// Waits until `table`'s snapshot is recorded complete.
async fn wait_for_complete(stack: &Stack, prefix: &str, slot: &str, table: &str) -> TableProgress {
    let deadline = Instant::now() + LIMIT;
    loop {
        if let Some(p) = progress(stack, prefix, slot, table).await
            && p.snapshot == TablePhase::Complete
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "{table}'s snapshot never completed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn int(value: &Value) -> i64 {
    match value {
        Value::Int(n) => i64::from(*n),
        Value::Long(n) => *n,
        other => panic!("not an integer: {other:?}"),
    }
}

/// A row as the test compares it: (v, pad).
type Row = (i64, String);

fn row_of(after: &BTreeMap<String, Value>) -> Row {
    let Value::String(pad) = &after["pad"] else {
        panic!("pad: {after:?}")
    };
    (int(&after["v"]), pad.clone())
}

/// The table the events give, replayed in order: each key's latest row.
fn replay(events: &[Event]) -> BTreeMap<i64, Row> {
    let mut rows = BTreeMap::new();
    for event in events {
        let id = int(&event.key["id"]);
        match (event.op.as_deref(), &event.after) {
            (Some("r" | "c" | "u"), Some(after)) => {
                rows.insert(id, row_of(after));
            }
            (Some("d") | None, _) => {
                rows.remove(&id);
            }
            other => panic!("unexpected event {other:?}"),
        }
    }
    rows
}

async fn table_rows(sql: &tokio_postgres::Client, table: &str) -> BTreeMap<i64, Row> {
    sql.query(&format!("SELECT id::int8, v::int8, pad FROM {table}"), &[])
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// Writes a last row and reads the topic to it: every event before it is there.
async fn events_through_marker(
    stack: &Stack,
    sql: &tokio_postgres::Client,
    table: &str,
    topic: &str,
) -> Vec<Event> {
    sql.batch_execute(&format!(
        "INSERT INTO {table} VALUES (-999999999, 0, 'marker')"
    ))
    .await
    .unwrap();
    let deadline = Instant::now() + LIMIT;
    loop {
        let events = events_of(read_records_to_end(stack, &[topic.to_owned()], 1).await);
        if events.iter().any(|e| int(&e.key["id"]) == -999_999_999) {
            return events;
        }
        assert!(Instant::now() < deadline, "the marker row never arrived");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn assert_topic_is_table(events: &[Event], table: &BTreeMap<i64, Row>) {
    let topic = replay(events);
    if &topic != table {
        let missing: Vec<_> = table
            .iter()
            .filter(|(k, v)| topic.get(k) != Some(v))
            .take(10)
            .collect();
        let extra: Vec<_> = topic
            .iter()
            .filter(|(k, v)| table.get(k) != Some(v))
            .take(10)
            .collect();
        panic!(
            "the topic replayed ({} rows) is not the table ({} rows): differing in the table \
             {missing:?}, in the topic {extra:?}",
            topic.len(),
            table.len()
        );
    }
}

/// A small deterministic random sequence (xorshift).
struct Random(u64);

impl Random {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n.max(1)
    }
}

/// Changes rows near `frontier` (the key the snapshot recorded last, so in the chunks being
/// read or about to be) until `stop`: inserts, updates, deletes and key changes, forward
/// (into chunks not read yet) and back (into chunks read). The number of transactions.
async fn write_near_frontier(
    stack: Stack,
    table: String,
    frontier: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
    span: i64,
) -> u64 {
    let sql = stack.pg_connect("sluice").await;
    let mut random = Random(0x9e37_79b9_7f4a_7c15);
    let mut fresh = 10_000_000i64;
    let mut transactions = 0;
    while !stop.load(Ordering::Relaxed) {
        let near = frontier.load(Ordering::Relaxed)
            + i64::try_from(random.below(u64::try_from(span).unwrap())).unwrap();
        fresh += 1;
        let statement = match random.below(5) {
            0 => format!(
                "INSERT INTO {table} VALUES ({near}, 1, 'inserted') ON CONFLICT (id) DO UPDATE SET v = {table}.v + 1"
            ),
            1 => format!("UPDATE {table} SET v = v + 1, pad = 'updated' WHERE id = {near}"),
            2 => format!("DELETE FROM {table} WHERE id = {near}"),
            3 => format!("UPDATE {table} SET id = {fresh} WHERE id = {near}"),
            _ => format!("UPDATE {table} SET id = -{fresh} WHERE id = {near}"),
        };
        sql.batch_execute(&statement).await.unwrap();
        transactions += 1;
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    transactions
}

/// Changes near the rows being read, while a snapshot runs (see [`write_near_frontier`]).
struct Writer {
    stop: Arc<AtomicBool>,
    writer: tokio::task::JoinHandle<u64>,
    follower: tokio::task::JoinHandle<()>,
}

impl Writer {
    fn start(stack: &Stack, prefix: &str, slot: &str, table: &str, span: i64) -> Writer {
        let (frontier, stop) = (
            Arc::new(AtomicI64::new(1)),
            Arc::new(AtomicBool::new(false)),
        );
        let writer = tokio::spawn(write_near_frontier(
            stack.clone(),
            table.to_owned(),
            Arc::clone(&frontier),
            Arc::clone(&stop),
            span,
        ));
        let follower = tokio::spawn(follow_frontier(
            stack.clone(),
            prefix.to_owned(),
            slot.to_owned(),
            table.to_owned(),
            frontier,
            Arc::clone(&stop),
        ));
        Writer {
            stop,
            writer,
            follower,
        }
    }

    /// Stops writing: the number of transactions written.
    async fn stop(self) -> u64 {
        self.stop.store(true, Ordering::Relaxed);
        self.follower.await.unwrap();
        self.writer.await.unwrap()
    }
}

/// Follows the key the state topic records for `table` into `frontier`.
async fn follow_frontier(
    stack: Stack,
    prefix: String,
    slot: String,
    table: String,
    frontier: Arc<AtomicI64>,
    stop: Arc<AtomicBool>,
) {
    while !stop.load(Ordering::Relaxed) {
        if let Some(after) = progress(&stack, &prefix, &slot, &table)
            .await
            .and_then(|p| p.after)
            .and_then(|after| after.first().and_then(|id| id.parse::<i64>().ok()))
        {
            frontier.store(after, Ordering::Relaxed);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn filled_table(sql: &tokio_postgres::Client, schema: &str, rows: i64) -> String {
    let table = format!("{schema}.t");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {table} (id int8 PRIMARY KEY, v int8 NOT NULL, pad text NOT NULL);
         INSERT INTO {table} SELECT g, 0, repeat('p', 100) FROM generate_series(1, {rows}) g;"
    ))
    .await
    .unwrap();
    table
}

#[tokio::test(flavor = "multi_thread")]
async fn rows_changed_inside_the_chunks_being_read_come_out_as_the_table_holds_them() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("incr");
    let table = filled_table(&sql, &schema, 100_000).await;
    let (config, prefix, slot) = incremental_config(&stack, "incr", &schema, 250);
    let name = format!("{schema}.t");
    let topic = format!("{prefix}.{name}");
    let sluice = Sluice::start(BINARY, &config);
    let writer = Writer::start(&stack, &prefix, &slot, &table, 600);
    // Midway, the table gains a column: the chunk read before it is read again with it.
    let deadline = Instant::now() + LIMIT;
    while progress(&stack, &prefix, &slot, &name)
        .await
        .is_none_or(|p| p.rows < 5000)
    {
        assert!(Instant::now() < deadline, "no progress");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    sql.batch_execute(&format!(
        "ALTER TABLE {table} ADD COLUMN extra int8 NOT NULL DEFAULT 7"
    ))
    .await
    .unwrap();
    let done = wait_for_complete(&stack, &prefix, &slot, &name).await;
    let transactions = writer.stop().await;
    let events = events_through_marker(&stack, &sql, &table, &topic).await;
    let read = events
        .iter()
        .filter(|e| e.op.as_deref() == Some("r"))
        .count();
    assert!(
        events
            .iter()
            .filter(|e| e.op.as_deref() == Some("r"))
            .all(|e| e.snapshot.as_deref() == Some("incremental"))
    );
    eprintln!(
        "{transactions} transactions during the snapshot; {read} rows read, {} recorded",
        done.rows
    );
    assert!(transactions > 100, "the writer ran along: {transactions}");
    let with_column = |op: &str| {
        events
            .iter()
            .filter(|e| e.op.as_deref() == Some(op))
            .filter(|e| e.after.as_ref().and_then(|a| a.get("extra")) == Some(&Value::Long(7)))
            .count()
    };
    eprintln!(
        "r with the new column: {}, c/u with it: {}",
        with_column("r"),
        with_column("u") + with_column("c")
    );
    assert!(
        with_column("r") > 1000,
        "the chunks after the column came carry it"
    );
    assert_topic_is_table(&events, &table_rows(&sql, &table).await);
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn ten_sigkills_during_an_incremental_snapshot_lose_nothing_and_each_restart_resumes() {
    const KILLS: usize = 10;
    const CHUNK: u64 = 200;
    const ROWS: i64 = 300_000;
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("incrkill");
    let table = filled_table(&sql, &schema, ROWS).await;
    let (config, prefix, slot) = incremental_config(&stack, "incrkill", &schema, CHUNK);
    let name = format!("{schema}.t");
    let topic = format!("{prefix}.{name}");
    let writer = Writer::start(&stack, &prefix, &slot, &table, 2000);
    let mut recorded_at_kills = Vec::new();
    let mut random = Random(0x2545_f491_4f6c_dd1d);
    for _ in 0..KILLS {
        let sluice = Sluice::start(BINARY, &config);
        wait_until_streaming(&sql, &slot).await;
        // Killed at some point while it reads chunks.
        tokio::time::sleep(Duration::from_millis(100 + random.below(250))).await;
        sluice.kill();
        let p = progress(&stack, &prefix, &slot, &name).await;
        assert!(
            p.as_ref().is_none_or(|p| p.snapshot == TablePhase::Running),
            "the snapshot completed before the kills: make the table larger ({p:?})"
        );
        recorded_at_kills.push(p.map_or(0, |p| p.rows));
    }
    let sluice = Sluice::start(BINARY, &config);
    let done = wait_for_complete(&stack, &prefix, &slot, &name).await;
    writer.stop().await;
    let events = events_through_marker(&stack, &sql, &table, &topic).await;
    assert_topic_is_table(&events, &table_rows(&sql, &table).await);
    // Rows read more than once: a restart reads again only what was produced after the last
    // chunk recorded (acknowledged) before the kill.
    let mut reads: HashMap<i64, usize> = HashMap::new();
    for event in events.iter().filter(|e| e.op.as_deref() == Some("r")) {
        *reads.entry(int(&event.key["id"])).or_default() += 1;
    }
    let again: usize = reads.values().map(|n| n - 1).sum();
    eprintln!(
        "recorded rows at each kill: {recorded_at_kills:?}; {} rows read in all, {again} of them again; {} recorded",
        reads.values().sum::<usize>(),
        done.rows
    );
    let bound = KILLS * 4 * usize::try_from(CHUNK).unwrap();
    assert!(
        again <= bound,
        "{again} rows read again over {KILLS} restarts: more than {bound} (4 chunks a restart), so a restart did not resume from its last acknowledged chunk"
    );
    assert!(
        recorded_at_kills.windows(2).all(|w| w[0] <= w[1]),
        "progress went back: {recorded_at_kills:?}"
    );
    // Asked again, then cancelled while it runs: it stops where it is, and says so.
    command(&config, &["snapshot", &name]);
    let deadline = Instant::now() + LIMIT;
    while progress(&stack, &prefix, &slot, &name)
        .await
        .is_none_or(|p| p.snapshot != TablePhase::Running || p.rows == 0)
    {
        assert!(Instant::now() < deadline, "the asked snapshot never ran");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    command(&config, &["snapshot", "--cancel", &name]);
    while progress(&stack, &prefix, &slot, &name)
        .await
        .is_none_or(|p| p.snapshot != TablePhase::Cancelled)
    {
        assert!(Instant::now() < deadline, "the cancel never took");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let status = command(&config, &["status"]);
    assert!(status.contains("snapshot cancelled"), "{status}");
    sql.batch_execute(&format!("DELETE FROM {table} WHERE id = -999999999"))
        .await
        .unwrap();
    let events = events_through_marker(&stack, &sql, &table, &topic).await;
    assert_topic_is_table(&events, &table_rows(&sql, &table).await);
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_joins_the_selection_arrives_whole_and_a_signal_snapshots_it_again() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("incrjoin");
    let first = filled_table(&sql, &schema, 100).await;
    let joining = format!("{schema}.joins");
    sql.batch_execute(&format!(
        "CREATE TABLE {joining} (id int8 PRIMARY KEY, v int8 NOT NULL, pad text NOT NULL);
         INSERT INTO {joining} SELECT g, g, 'before' FROM generate_series(1, 3000) g;"
    ))
    .await
    .unwrap();
    let (prefix, slot) = (unique_name("incrjoin"), unique_name("incrjoin_slot"));
    let config = write_config(
        &stack,
        &prefix,
        &slot,
        &unique_name("incrjoin_pub"),
        &schema,
    );
    only_table(&config, &first);
    // An initial snapshot of the first table; the other is not selected.
    let sluice = Sluice::start(BINARY, &config);
    let first_topic = format!("{prefix}.{first}");
    read_records_to_end(&stack, &[first_topic], 100).await;
    wait_until_streaming(&sql, &slot).await;
    assert!(sluice.stop().success());
    // The table joins the selection; changes go on while it is read.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("include = [\"{first}\"]"),
        &format!("include = [\"{schema}.*\"]"),
    );
    std::fs::write(
        &config,
        format!("{text}\n[snapshot]\nincremental_chunk_rows = 200\n"),
    )
    .unwrap();
    let sluice = Sluice::start(BINARY, &config);
    let topic = format!("{prefix}.{joining}");
    let writer = Writer::start(&stack, &prefix, &slot, &joining, 400);
    let joined = wait_for_complete(&stack, &prefix, &slot, &joining).await;
    writer.stop().await;
    let events = events_through_marker(&stack, &sql, &joining, &topic).await;
    assert_topic_is_table(&events, &table_rows(&sql, &joining).await);
    let before = events
        .iter()
        .filter(|e| e.op.as_deref() == Some("r"))
        .count();
    assert!(
        before >= 2900,
        "the joining table's rows were read: {before}"
    );
    // `sluice snapshot` reads it again, every row.
    let output = std::process::Command::new(BINARY)
        .args(["snapshot", "--config"])
        .arg(&config)
        .arg(&joining)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sluice snapshot: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let deadline = Instant::now() + LIMIT;
    loop {
        let p = progress(&stack, &prefix, &slot, &joining).await.unwrap();
        if p.snapshot == TablePhase::Complete && p != joined {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the signalled snapshot never completed"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    sql.batch_execute(&format!("DELETE FROM {joining} WHERE id = -999999999"))
        .await
        .unwrap();
    let events = events_through_marker(&stack, &sql, &joining, &topic).await;
    let rows = table_rows(&sql, &joining).await;
    let read_again = events
        .iter()
        .filter(|e| e.op.as_deref() == Some("r"))
        .count()
        - before;
    assert!(
        read_again >= rows.len() - 1,
        "the signal read the table again: {read_again} rows of {}",
        rows.len()
    );
    assert_topic_is_table(&events, &rows);
    // A table outside the selection is refused, saying why.
    let output = std::process::Command::new(BINARY)
        .args(["snapshot", "--config"])
        .arg(&config)
        .arg("pg_catalog.pg_class")
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert!(String::from_utf8_lossy(&output.stderr).contains("not in the selection"));
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

/// Runs `sluice ARGS --config CONFIG` to success: its standard output.
fn command(config: &Path, args: &[&str]) -> String {
    let output = std::process::Command::new(BINARY)
        .args(args)
        .arg("--config")
        .arg(config)
        .env("SLUICE_LOG", "warn")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "sluice {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Selects `table` alone.
fn only_table(config: &Path, table: &str) {
    let text = std::fs::read_to_string(config).unwrap();
    let start = text.find("include = [").unwrap();
    let end = start + text[start..].find('\n').unwrap();
    let text = format!("{}include = [\"{table}\"]{}", &text[..start], &text[end..]);
    std::fs::write(config, text).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lost_slot_in_incremental_mode_is_recovered_with_deletes_for_rows_gone_meanwhile() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("incrlost");
    let table = filled_table(&sql, &schema, 500).await;
    let (config, prefix, slot) = incremental_config(&stack, "incrlost", &schema, 100);
    let (name, topic) = (format!("{schema}.t"), format!("{prefix}.{schema}.t"));
    let sluice = Sluice::start(BINARY, &config);
    wait_for_complete(&stack, &prefix, &slot, &name).await;
    assert!(sluice.stop().success());
    // While sluice is away its slot is lost, and rows go that no stream will tell of.
    sql.batch_execute(&format!(
        "DELETE FROM {table} WHERE id IN (7, 8, 9); UPDATE {table} SET v = 5 WHERE id = 10;
         SELECT pg_drop_replication_slot('{slot}');"
    ))
    .await
    .unwrap();
    let sluice = Sluice::start(BINARY, &config);
    // The new slot's snapshot is taken before streaming: the marker row comes after it.
    wait_until_streaming(&sql, &slot).await;
    let events = events_through_marker(&stack, &sql, &table, &topic).await;
    assert_topic_is_table(&events, &table_rows(&sql, &table).await);
    let mut deleted: Vec<i64> = events
        .iter()
        .filter(|e| e.op.as_deref() == Some("d"))
        .map(|e| int(&e.key["id"]))
        .collect();
    deleted.sort_unstable();
    assert_eq!(deleted, [7, 8, 9], "a delete for each row gone meanwhile");
    stop_and_drop_slot(sluice, &sql, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_that_joins_the_publication_while_streaming_is_read_whole() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let admin = stack.pg_connect("postgres").await;
    let schema = unique_name("incrpub");
    let first = filled_table(&sql, &schema, 10).await;
    let publication = unique_name("incrpub_pub");
    // A schema's publication, or (before 15, which has none) every table's: either way the
    // table moved in below joins it.
    let covering = if stack.pg_major >= 15 {
        format!("TABLES IN SCHEMA {schema}")
    } else {
        "ALL TABLES".to_owned()
    };
    admin
        .batch_execute(&format!("CREATE PUBLICATION {publication} FOR {covering}"))
        .await
        .unwrap();
    let (prefix, slot) = (unique_name("incrpub"), unique_name("incrpub_slot"));
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let sluice = Sluice::start(BINARY, &config);
    read_records_to_end(&stack, &[format!("{prefix}.{first}")], 10).await;
    wait_until_streaming(&sql, &slot).await;
    // Filled elsewhere, then moved into the published schema: its rows reach Kafka only by
    // a snapshot.
    let late = format!("{schema}.late");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}_side;
         CREATE TABLE {schema}_side.late (id int8 PRIMARY KEY, v int8 NOT NULL, pad text NOT NULL);
         INSERT INTO {schema}_side.late SELECT g, g, 'before' FROM generate_series(1, 1500) g;
         ALTER TABLE {schema}_side.late SET SCHEMA {schema};"
    ))
    .await
    .unwrap();
    let topic = format!("{prefix}.{late}");
    // Its first change brings it to sluice; its snapshot follows.
    sql.batch_execute(&format!("UPDATE {late} SET v = -1 WHERE id = 1"))
        .await
        .unwrap();
    let done = wait_for_complete(&stack, &prefix, &slot, &late).await;
    assert!(
        done.rows >= 1500,
        "its rows arrived as a snapshot: {done:?}"
    );
    let events = events_through_marker(&stack, &sql, &late, &topic).await;
    assert_topic_is_table(&events, &table_rows(&sql, &late).await);
    stop_and_drop_slot(sluice, &sql, &slot).await;
    admin
        .batch_execute(&format!("DROP PUBLICATION {publication}"))
        .await
        .unwrap();
}
