//! Settings of docs/configuration.md end to end, one test each: `snapshot.mode = "never"`,
//! `events.tombstones = false`, `events.truncate = false`, `tables.exclude`,
//! `tables.allow_keyless = true`, `replication.create_publication = false`,
//! `shutdown.drain_timeout`, a table with REPLICA IDENTITY NOTHING, and the registry's basic
//! auth.

use std::path::PathBuf;
use std::time::Duration;

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Event, Sluice, confirmed_below, current_wal_lsn, read_events_exactly, read_raw_to_end,
    run_until_exit, slot_exists, stop_and_drop_slot, wait_for_records, wait_until_streaming,
    write_config,
};
use sluice_e2e::{Stack, unique_name};

/// A new schema made by `setup` (`{s}` stands for it), and a configuration capturing it,
/// edited by `edit`.
struct Case {
    stack: Stack,
    sql: tokio_postgres::Client,
    schema: String,
    prefix: String,
    slot: String,
    publication: String,
    config: PathBuf,
}

impl Case {
    async fn new(name: &str, setup: &str, edit: impl Fn(String) -> String) -> Case {
        let stack = Stack::from_env();
        let sql = stack.pg_connect("sluice").await;
        let schema = unique_name(name);
        sql.batch_execute(&format!(
            "CREATE SCHEMA {schema}; {}",
            setup.replace("{s}", &schema)
        ))
        .await
        .unwrap();
        let (prefix, slot, publication) = (
            unique_name(name),
            unique_name(&format!("{name}_slot")),
            unique_name(&format!("{name}_pub")),
        );
        let config = write_config(&stack, &prefix, &slot, &publication, &schema);
        let text = edit(std::fs::read_to_string(&config).unwrap()).replace("{s}", &schema);
        std::fs::write(&config, text).unwrap();
        Case {
            stack,
            sql,
            schema,
            prefix,
            slot,
            publication,
            config,
        }
    }

    fn topic(&self, table: &str) -> [String; 1] {
        [format!("{}.{}.{table}", self.prefix, self.schema)]
    }

    /// Starts sluice and waits until it streams.
    async fn start(&self) -> Sluice {
        let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &self.config);
        wait_until_streaming(&self.sql, &self.slot).await;
        sluice
    }

    async fn sql(&self, statements: &str) {
        self.sql
            .batch_execute(&statements.replace("{s}", &self.schema))
            .await
            .unwrap();
    }

    /// Stops `sluice` once `table`'s topic holds `count` events, and reads exactly those.
    async fn events(&self, sluice: Sluice, table: &str, count: usize) -> Vec<Event> {
        wait_for_records(&self.stack, &self.topic(table), count).await;
        stop_and_drop_slot(sluice, &self.sql, &self.slot).await;
        read_events_exactly(&self.stack, &self.topic(table), count).await
    }
}

/// Each event's op (`tombstone` for none) and row id, in order.
fn ops(events: &[Event]) -> Vec<(String, Value)> {
    events
        .iter()
        .map(|e| {
            let op = e.op.clone().unwrap_or_else(|| "tombstone".to_owned());
            let row = e.after.as_ref().or(e.before.as_ref());
            let id = row.map_or_else(|| e.key["id"].clone(), |row| row["id"].clone());
            (op, id)
        })
        .collect()
}

fn op(op: &str, id: i32) -> (String, Value) {
    (op.to_owned(), Value::Int(id))
}

/// Appends TOML `section` (a `[name]` line and keys) to a configuration.
fn with(section: &'static str) -> impl Fn(String) -> String {
    move |config| format!("{config}\n{section}\n")
}

/// A case's table `t` after `changes` while sluice streams: the op and row id of each of its
/// `count` events (exactly), sorted.
async fn seen_after(case: &Case, changes: &str, count: usize) -> Vec<(String, Value)> {
    let sluice = case.start().await;
    case.sql(changes).await;
    let mut seen = ops(&case.events(sluice, "t", count).await);
    seen.sort_by_key(|(op, id)| (op.clone(), format!("{id:?}")));
    seen
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshot_mode_never_streams_only_changes_made_after_the_slot() {
    let case = Case::new(
        "never",
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text); INSERT INTO {s}.t VALUES (1, 'a'), (2, 'b');",
        with("[snapshot]\nmode = \"never\""),
    )
    .await;
    let changes = "INSERT INTO {s}.t VALUES (3, 'c'); UPDATE {s}.t SET v = 'a2' WHERE id = 1;";
    // The two changes, and neither existing row as a snapshot row.
    let seen = seen_after(&case, changes, 2).await;
    assert_eq!(seen, [op("c", 3), op("u", 1)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn without_tombstones_a_delete_and_a_key_change_send_no_tombstone() {
    let case = Case::new(
        "notomb",
        "CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1), (2);",
        with("[events]\ntombstones = false"),
    )
    .await;
    let changes = "DELETE FROM {s}.t WHERE id = 1; UPDATE {s}.t SET id = 20 WHERE id = 2;";
    // Two snapshot rows, the delete, the key change's delete and create: no tombstone.
    let seen = seen_after(&case, changes, 5).await;
    assert_eq!(
        seen,
        [op("c", 20), op("d", 1), op("d", 2), op("r", 1), op("r", 2)]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_truncate_events_a_truncate_sends_nothing() {
    let case = Case::new(
        "notrunc",
        "CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1);",
        with("[events]\ntruncate = false"),
    )
    .await;
    // The snapshot row and the insert after the TRUNCATE; no op t.
    let seen = seen_after(&case, "TRUNCATE {s}.t; INSERT INTO {s}.t VALUES (2);", 2).await;
    assert_eq!(seen, [op("c", 2), op("r", 1)]);
}

/// A schema with a captured table and one `tables.exclude` leaves out.
const EXCLUDE_SETUP: &str = "CREATE TABLE {s}.kept (id int PRIMARY KEY);
     CREATE TABLE {s}.skipped (id int PRIMARY KEY);
     INSERT INTO {s}.kept VALUES (1); INSERT INTO {s}.skipped VALUES (1);";

fn excluding(config: String) -> String {
    config.replace("[tables]\n", "[tables]\nexclude = [\"{s}.skipped\"]\n")
}

/// Changes both tables while `sluice` streams; then `kept`'s topic must hold its snapshot row
/// and the insert, and `skipped` have no events: its topic not even made.
async fn assert_excluded(case: &Case, sluice: Sluice) {
    case.sql("INSERT INTO {s}.skipped VALUES (2); INSERT INTO {s}.kept VALUES (2);")
        .await;
    let mut seen = ops(&case.events(sluice, "kept", 2).await);
    seen.sort_by_key(|(op, _)| op.clone());
    assert_eq!(seen, [op("c", 2), op("r", 1)]);
    let skipped = read_raw_to_end(&case.stack, &case.topic("skipped"), 0).await;
    assert!(skipped.is_empty(), "{skipped:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_table_is_left_out_of_the_publication_and_the_topics() {
    let case = Case::new("exclude", EXCLUDE_SETUP, excluding).await;
    let sluice = case.start().await;
    let published: Vec<String> = case
        .sql
        .query(
            "SELECT tablename::text FROM pg_publication_tables WHERE pubname = $1",
            &[&case.publication],
        )
        .await
        .unwrap()
        .iter()
        .map(|row| row.get(0))
        .collect();
    assert_eq!(published, ["kept"]);
    assert_excluded(&case, sluice).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_excluded_table_stays_out_when_the_publication_already_covers_it() {
    // A publication made beforehand for both tables, the excluded one too.
    let case = Case::new("reexclude", EXCLUDE_SETUP, excluding).await;
    case.sql(&format!(
        "CREATE PUBLICATION {} FOR TABLE {{s}}.kept, {{s}}.skipped",
        case.publication
    ))
    .await;
    let sluice = case.start().await;
    assert_excluded(&case, sluice).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_keyless_table_with_full_identity_is_captured_when_allowed_with_no_kafka_key() {
    let case = Case::new(
        "keyless",
        "CREATE TABLE {s}.t (id int, v text); ALTER TABLE {s}.t REPLICA IDENTITY FULL;
         INSERT INTO {s}.t VALUES (1, 'a');",
        |c| c.replace("[tables]\n", "[tables]\nallow_keyless = true\n"),
    )
    .await;
    let sluice = case.start().await;
    case.sql(
        "INSERT INTO {s}.t VALUES (2, 'b'); UPDATE {s}.t SET v = 'a2' WHERE id = 1;
         DELETE FROM {s}.t WHERE id = 2;",
    )
    .await;
    // Snapshot row, insert, update, delete: no key, so no tombstone either.
    wait_for_records(&case.stack, &case.topic("t"), 4).await;
    stop_and_drop_slot(sluice, &case.sql, &case.slot).await;
    let raw = read_raw_to_end(&case.stack, &case.topic("t"), 4).await;
    assert!(raw.iter().all(|(_, key, _)| key.is_none()), "{raw:?}");
    let events = read_events_exactly(&case.stack, &case.topic("t"), 4).await;
    let row = |id: i32, v: &str| {
        Some(
            [
                ("id".to_owned(), Value::Int(id)),
                ("v".to_owned(), Value::String(v.to_owned())),
            ]
            .into(),
        )
    };
    let mut seen: Vec<_> = events
        .iter()
        .map(|e| (e.op.clone().unwrap(), e.before.clone(), e.after.clone()))
        .collect();
    seen.sort_by_key(|(op, _, _)| op.clone());
    assert_eq!(
        seen,
        [
            ("c".to_owned(), None, row(2, "b")),
            ("d".to_owned(), row(2, "b"), None),
            ("r".to_owned(), None, row(1, "a")),
            ("u".to_owned(), row(1, "a"), row(1, "a2")),
        ]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn without_create_publication_a_missing_one_is_refused_and_an_existing_one_used() {
    let case = Case::new(
        "nocreate",
        "CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1);",
        |c| {
            c.replace(
                "[replication]\n",
                "[replication]\ncreate_publication = false\n",
            )
        },
    )
    .await;
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &case.config,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    for needle in [
        format!("publication {} does not exist", case.publication),
        "create_publication is false".to_owned(),
        format!("CREATE PUBLICATION \"{}\" FOR TABLE", case.publication),
    ] {
        assert!(stderr.contains(&needle), "{needle:?} in {stderr}");
    }
    assert!(!slot_exists(&case.sql, &case.slot).await, "no slot made");
    let publications: i64 = case
        .sql
        .query_one(
            "SELECT count(*) FROM pg_publication WHERE pubname = $1",
            &[&case.publication],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(publications, 0, "none made");

    // A publication a DBA made: used as it is.
    case.sql(&format!(
        "CREATE PUBLICATION {} FOR TABLE {{s}}.t",
        case.publication
    ))
    .await;
    let seen = seen_after(&case, "INSERT INTO {s}.t VALUES (2)", 2).await;
    assert_eq!(seen, [op("c", 2), op("r", 1)]);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_stops_waiting_for_acknowledgements_at_the_drain_timeout() {
    // The producer holds what it is given for ten minutes before sending it (linger.ms): at
    // SIGTERM the insert is in flight, and stays unacknowledged.
    let case = Case::new(
        "drain",
        "CREATE TABLE {s}.t (id int PRIMARY KEY);",
        |c| {
            c.replace(
                "[registry]",
                "[kafka.producer]\n\"linger.ms\" = 600000\n\"message.timeout.ms\" = 900000\n\n[registry]",
            ) + "\n[snapshot]\nmode = \"never\"\n\n[shutdown]\ndrain_timeout = \"1s\"\n"
        },
    )
    .await;
    let sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &case.config, "warn");
    wait_until_streaming(&case.sql, &case.slot).await;
    case.sql("INSERT INTO {s}.t VALUES (1)").await;
    let after_insert = current_wal_lsn(&case.sql).await;
    // sluice has the insert once its walsender sent it.
    let admin_sql = case.stack.pg_connect("postgres").await;
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while admin_sql
        .query_opt(
            "SELECT 1 FROM pg_stat_replication r JOIN pg_replication_slots s ON s.active_pid = r.pid
              WHERE s.slot_name = $1 AND r.sent_lsn >= $2::text::pg_lsn",
            &[&case.slot, &after_insert],
        )
        .await
        .unwrap()
        .is_none()
    {
        assert!(std::time::Instant::now() < deadline, "the insert was sent");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // It stops (within Sluice::stop's bound on a hang) though nothing is acknowledged, and says
    // the drain timed out; the slot is not confirmed past the insert.
    let (status, log) = sluice.stop_with_stderr();
    assert!(status.success(), "{status:?}: {log}");
    assert!(
        log.contains("drain timeout: unacknowledged events will be sent again after restart"),
        "{log}"
    );
    assert!(confirmed_below(&case.sql, &case.slot, &after_insert).await);
    case.sql
        .execute("SELECT pg_drop_replication_slot($1)", &[&case.slot])
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_with_replica_identity_nothing_sends_its_inserts_and_postgresql_refuses_the_rest() {
    let case = Case::new(
        "nothing",
        "CREATE TABLE {s}.t (id int PRIMARY KEY, v text); ALTER TABLE {s}.t REPLICA IDENTITY NOTHING;
         INSERT INTO {s}.t VALUES (1, 'a');",
        |c| c,
    )
    .await;
    let mut sluice = case.start().await;
    case.sql("INSERT INTO {s}.t VALUES (2, 'b')").await;
    // Published without an identity: PostgreSQL refuses its updates and deletes.
    for statement in [
        "UPDATE {s}.t SET v = 'a2' WHERE id = 1",
        "DELETE FROM {s}.t WHERE id = 1",
    ] {
        let err = case
            .sql
            .batch_execute(&statement.replace("{s}", &case.schema))
            .await
            .unwrap_err();
        let message = err.as_db_error().map(|db| db.message().to_owned());
        assert!(
            message
                .as_deref()
                .is_some_and(|m| m.contains("does not have a replica identity")),
            "{statement}: {err:?}"
        );
    }
    assert!(sluice.running());
    // The snapshot row and the insert, keyed by the primary key.
    let events = case.events(sluice, "t", 2).await;
    let mut seen = ops(&events);
    seen.sort_by_key(|(op, _)| op.clone());
    assert_eq!(seen, [op("c", 2), op("r", 1)]);
    for event in &events {
        assert_eq!(
            event.key,
            event
                .after
                .as_ref()
                .map(|row| [("id".to_owned(), row["id"].clone())].into())
                .unwrap()
        );
    }
}

/// Base64 of `text`, for an HTTP basic-auth header.
fn base64(text: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in text.as_bytes().chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                let index = usize::try_from((n >> (18 - 6 * i)) & 63).unwrap();
                out.push(char::from(ALPHABET[index]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// An HTTP proxy in front of the stack's registry that asks for basic auth: a request with the
/// right `Authorization` header is passed on (one per connection), any other answered 401.
struct AuthProxy {
    port: u16,
    /// Requests let through, and requests refused.
    counts: std::sync::Arc<std::sync::Mutex<(u32, u32)>>,
}

impl AuthProxy {
    fn start(upstream: u16, user: &str, password: &str) -> AuthProxy {
        use std::io::{Read, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let counts: std::sync::Arc<std::sync::Mutex<(u32, u32)>> = std::sync::Arc::default();
        let expected = format!("basic {}", base64(&format!("{user}:{password}")));
        let tally = std::sync::Arc::clone(&counts);
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { continue };
                let (expected, tally) = (expected.clone(), std::sync::Arc::clone(&tally));
                std::thread::spawn(move || {
                    let mut request = Vec::new();
                    let mut byte = [0; 1];
                    while !request.ends_with(b"\r\n\r\n") && client.read_exact(&mut byte).is_ok() {
                        request.push(byte[0]);
                    }
                    let head = String::from_utf8_lossy(&request).into_owned();
                    let header = |name: &str| {
                        head.lines().find_map(|line| {
                            let (key, value) = line.split_once(':')?;
                            key.eq_ignore_ascii_case(name)
                                .then(|| value.trim().to_owned())
                        })
                    };
                    let length: usize = header("content-length").map_or(0, |l| l.parse().unwrap());
                    let mut body = vec![0; length];
                    client.read_exact(&mut body).unwrap();
                    let authorized = header("authorization")
                        .is_some_and(|value| value.to_lowercase() == expected.to_lowercase());
                    if !authorized {
                        tally.lock().unwrap().1 += 1;
                        let _ = client.write_all(
                            b"HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"registry\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                        );
                        return;
                    }
                    tally.lock().unwrap().0 += 1;
                    // One request per connection: the registry closes it after answering.
                    let head: String = head
                        .lines()
                        .filter(|line| !line.to_lowercase().starts_with("connection:"))
                        .filter(|line| !line.is_empty())
                        .map(|line| format!("{line}\r\n"))
                        .collect();
                    let mut server = std::net::TcpStream::connect(("127.0.0.1", upstream)).unwrap();
                    server
                        .write_all(format!("{head}Connection: close\r\n\r\n").as_bytes())
                        .unwrap();
                    server.write_all(&body).unwrap();
                    let mut response = Vec::new();
                    server.read_to_end(&mut response).unwrap();
                    let _ = client.write_all(&response);
                });
            }
        });
        AuthProxy { port, counts }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_is_called_with_basic_auth_and_wrong_credentials_are_named() {
    let registry_port: u16 = sluice_e2e::stack_env()["REGISTRY_PORT"].parse().unwrap();
    let (user, password) = ("sluice-registry", "s3cret:with colon");
    let proxy = AuthProxy::start(registry_port, user, password);
    let password_file = std::env::temp_dir().join(format!("{}.password", unique_name("registry")));
    std::fs::write(&password_file, format!("{password}\n")).unwrap();
    let url = format!("http://127.0.0.1:{}/apis/ccompat/v7", proxy.port);
    let registry = |password: &str| {
        format!("[registry]\nurl = \"{url}\"\nusername = \"{user}\"\n{password}\n")
    };
    let right = registry(&format!("password_file = \"{}\"", password_file.display()));
    let case = Case::new(
        "regauth",
        "CREATE TABLE {s}.t (id int PRIMARY KEY); INSERT INTO {s}.t VALUES (1);",
        |c| {
            let (before, after) = c.split_once("[registry]").unwrap();
            let (_, rest) = after.split_once("[metrics]").unwrap();
            format!("{before}{right}\n[metrics]{rest}")
        },
    )
    .await;
    let seen = seen_after(&case, "INSERT INTO {s}.t VALUES (2)", 2).await;
    assert_eq!(seen, [op("c", 2), op("r", 1)]);
    let (let_through, refused) = *proxy.counts.lock().unwrap();
    assert!(
        let_through >= 2,
        "the key and value schemas were registered: {let_through}"
    );
    assert_eq!(refused, 0, "every call carried the credentials");

    // A wrong password: refused at startup, naming the registry and the answer.
    let text = std::fs::read_to_string(&case.config)
        .unwrap()
        .replace(&right, &registry("password = \"wrong\""));
    std::fs::write(&case.config, text).unwrap();
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &case.config,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(stderr.contains("401") && stderr.contains(&url), "{stderr}");
    assert!(proxy.counts.lock().unwrap().1 >= 1);
    let _ = std::fs::remove_file(&password_file);
}
