//! The replication layer against the stack's real PostgreSQL: authentication, TLS, the
//! replication commands, and a scripted workload decoded into exactly the expected messages.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::time::Duration;

use sluice_e2e::{Stack, unique_name};
use sluice_pgoutput::{
    ColumnValue, Decoder, LogicalMessage, OldTuple, Relation, ReplicaIdentity, Tuple,
};
use sluice_postgres::{
    ConnectConfig, Host, PgOutputOptions, ReplicationConnection, ReplicationStream,
    ServerErrorKind, SnapshotAction, SslMode, StreamEvent,
};

const WAIT: Duration = Duration::from_secs(30);

async fn connect(config: &ConnectConfig) -> ReplicationConnection {
    ReplicationConnection::connect(config)
        .await
        .unwrap_or_else(|err| panic!("connecting as {}: {err}", config.user))
}

#[tokio::test]
async fn every_authentication_method_of_the_stack_connects() {
    let stack = Stack::from_env();
    for user in [
        "sluice_trust",
        "sluice_password",
        "sluice_md5",
        "sluice_scram",
        "sluice_least",
    ] {
        let mut conn = connect(&stack.replication_config(user)).await;
        let system = conn.identify_system().await.unwrap();
        assert_eq!(
            system.dbname.as_deref(),
            Some(stack.pg_database.as_str()),
            "{user}"
        );
        assert!(system.timeline >= 1);
        assert!(conn.server_version_num() >= 150_000);
        conn.close().await.unwrap();
    }
}

/// How the server sees the connection of `application_name`: its client address (None over a
/// Unix socket) and whether it uses TLS. Asked as the superuser, who sees every role's.
async fn negotiated(stack: &Stack, application_name: &str) -> (Option<String>, bool) {
    let row = stack
        .pg_connect("postgres")
        .await
        .query_one(
            "SELECT host(a.client_addr), s.ssl FROM pg_stat_activity a JOIN pg_stat_ssl s USING (pid)
              WHERE a.application_name = $1",
            &[&application_name],
        )
        .await
        .unwrap();
    (row.get(0), row.get(1))
}

#[tokio::test]
async fn a_unix_socket_connection_works() {
    let stack = Stack::from_env();
    let mut config = stack.replication_config("sluice");
    config.host = Host::UnixSocketDir(stack.pg_socket_dir());
    config.application_name = unique_name("repl_socket");
    let mut conn = connect(&config).await;
    conn.identify_system().await.unwrap();
    assert_eq!(
        negotiated(&stack, &config.application_name).await,
        (None, false),
        "over the socket, without TLS"
    );
}

#[tokio::test]
async fn a_wrong_password_is_an_authentication_error_with_a_fix() {
    let stack = Stack::from_env();
    for user in ["sluice_scram", "sluice_md5", "sluice_password"] {
        let mut config = stack.replication_config(user);
        config.password = Some("wrong".to_owned().into());
        let err = ReplicationConnection::connect(&config).await.unwrap_err();
        let server = err.server().unwrap_or_else(|| panic!("{user}: {err}"));
        assert_eq!(
            server.kind(),
            ServerErrorKind::AuthenticationFailed,
            "{user}: {err}"
        );
        assert!(
            err.to_string().contains("check the user and password"),
            "{err}"
        );
        assert!(!err.is_transient());
    }
}

#[tokio::test]
async fn tls_verifies_the_server_certificate() {
    let stack = Stack::from_env();
    let mut config = stack.replication_config("sluice_scram");
    config.host = Host::Tcp("localhost".to_owned());
    config.sslmode = SslMode::VerifyFull;
    config.ssl_root_cert = Some(stack.ca_cert());
    config.application_name = unique_name("repl_verified");
    let mut conn = connect(&config).await;
    conn.identify_system().await.unwrap();
    let tls = (Some("127.0.0.1".to_owned()), true);
    assert_eq!(negotiated(&stack, &config.application_name).await, tls);
    conn.close().await.unwrap();

    config.ssl_root_cert = Some(stack.unrelated_ca_cert());
    let err = ReplicationConnection::connect(&config).await.unwrap_err();
    assert!(
        matches!(err, sluice_postgres::Error::Tls { .. }),
        "a certificate from another CA is refused: {err}"
    );

    config.sslmode = SslMode::Require;
    config.ssl_root_cert = None;
    config.application_name = unique_name("repl_required");
    let mut conn = connect(&config).await;
    conn.identify_system().await.unwrap();
    assert_eq!(negotiated(&stack, &config.application_name).await, tls);
}

#[tokio::test]
async fn replication_commands_create_and_drop_slots() {
    let stack = Stack::from_env();
    let mut conn = connect(&stack.replication_config("sluice")).await;
    let slot = unique_name("repl_cmd");
    let created = conn
        .create_slot(&slot, false, SnapshotAction::Export)
        .await
        .unwrap();
    assert_eq!(created.slot_name, slot);
    assert_eq!(created.output_plugin, "pgoutput");
    assert!(
        created.snapshot_name.is_some(),
        "an exported snapshot has a name"
    );
    assert!(created.consistent_point.0 > 0);

    let again = conn
        .create_slot(&slot, false, SnapshotAction::NoExport)
        .await
        .unwrap_err();
    assert_eq!(
        again.server().unwrap().kind(),
        ServerErrorKind::SlotExists,
        "{again}"
    );

    conn.drop_slot(&slot, false).await.unwrap();
    let missing = conn.drop_slot(&slot, false).await.unwrap_err();
    assert_eq!(
        missing.server().unwrap().kind(),
        ServerErrorKind::SlotMissing,
        "{missing}"
    );
    assert!(missing.to_string().contains("to fix"), "{missing}");
}

#[tokio::test]
async fn a_slot_in_use_elsewhere_is_refused_with_the_fix() {
    let stack = Stack::from_env();
    let slot = unique_name("repl_busy");
    let options = PgOutputOptions::new(vec![own_publication(&stack).await]);
    let mut first = connect(&stack.replication_config("sluice")).await;
    let created = first
        .create_slot(&slot, true, SnapshotAction::NoExport)
        .await
        .unwrap();
    let choice = first.negotiate(&options);
    let _stream = first
        .start_replication(&slot, created.consistent_point, &options, choice)
        .await
        .unwrap();

    let second = connect(&stack.replication_config("sluice")).await;
    let err = second
        .start_replication(&slot, created.consistent_point, &options, choice)
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().kind(),
        ServerErrorKind::SlotInUse,
        "{err}"
    );
    assert!(
        err.is_transient(),
        "a slot in use may be freed by a dying process"
    );
}

#[tokio::test]
async fn a_missing_publication_is_reported_when_changes_arrive() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("repl_nopub");
    sql.batch_execute(&format!("CREATE TABLE {table} (id int PRIMARY KEY)"))
        .await
        .unwrap();
    let (mut stream, _) = start_stream(&stack, vec![unique_name("missing_pub")], false).await;
    sql.batch_execute(&format!("INSERT INTO {table} VALUES (1)"))
        .await
        .unwrap();
    let err = loop {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an answer")
        {
            Ok(Some(_)) => continue,
            Ok(None) => panic!("the stream ended without an error"),
            Err(err) => break err,
        }
    };
    assert_eq!(
        err.server().unwrap().kind(),
        ServerErrorKind::PublicationMissing,
        "{err}"
    );
}

#[tokio::test]
async fn a_role_without_replication_rights_is_told_how_to_fix_it() {
    let stack = Stack::from_env();
    let admin = stack.pg_connect("postgres").await;
    let role = unique_name("norepl");
    admin
        .batch_execute(&format!("CREATE ROLE {role} LOGIN PASSWORD '{role}'"))
        .await
        .unwrap();
    let err = ReplicationConnection::connect(&stack.replication_config(&role))
        .await
        .unwrap_err();
    assert_eq!(
        err.server().unwrap().kind(),
        ServerErrorKind::NoReplicationPrivilege,
        "{err}"
    );
    assert!(err.to_string().contains("ALTER ROLE"), "{err}");
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
}

#[tokio::test]
async fn a_keepalive_asking_for_a_reply_is_answered() {
    let stack = Stack::from_env();
    let (mut stream, _) = start_stream(&stack, vec![own_publication(&stack).await], false).await;
    // No unprompted status updates: only answers to keepalives keep us connected past the
    // stack's 10 s wal_sender_timeout. The walsender asks once, half a timeout after the last
    // reply, and ends the stream at the timeout if none came: a second request shows the
    // first was answered.
    stream.set_status_interval(Duration::from_secs(3600));
    let mut asked = 0;
    while asked < 2 {
        match tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("an answer")
        {
            Ok(Some(StreamEvent::Keepalive(keepalive))) if keepalive.reply_requested() => {
                asked += 1;
            }
            Ok(Some(_)) => {}
            other => panic!("the walsender ended the stream after {asked} requests: {other:?}"),
        }
    }
}

/// A new publication of a new, empty table: a stream on it sees no other test's writes.
async fn own_publication(stack: &Stack) -> String {
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("repl_quiet");
    let publication = unique_name("repl_quiet_pub");
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY);
         CREATE PUBLICATION {publication} FOR TABLE {table};"
    ))
    .await
    .unwrap();
    publication
}

/// A replication connection streaming from a new temporary slot on `publications`.
async fn start_stream(
    stack: &Stack,
    publications: Vec<String>,
    binary: bool,
) -> (ReplicationStream, Decoder) {
    let mut conn = connect(&stack.replication_config("sluice")).await;
    let slot = unique_name("repl_slot");
    let created = conn
        .create_slot(&slot, true, SnapshotAction::NoExport)
        .await
        .unwrap();
    let mut options = PgOutputOptions::new(publications);
    options.binary = binary;
    let choice = conn.negotiate(&options);
    let stream = conn
        .start_replication(&slot, created.consistent_point, &options, choice)
        .await
        .unwrap();
    let decoder = Decoder::new(stream.protocol().decoder_options());
    (stream, decoder)
}

/// Decodes messages until `until` matches one, returning each as a line of text; logical
/// decoding messages count only with `prefix`.
async fn collect(
    stream: &mut ReplicationStream,
    decoder: &mut Decoder,
    prefix: &str,
    until: impl Fn(&LogicalMessage) -> bool,
) -> Vec<String> {
    let mut relations: HashMap<u32, String> = HashMap::new();
    let mut lines = Vec::new();
    loop {
        let event = tokio::time::timeout(WAIT, stream.next())
            .await
            .expect("messages arrive")
            .unwrap()
            .expect("the stream goes on");
        let StreamEvent::XLogData(xlog) = event else {
            continue;
        };
        let message = decoder.decode(xlog.into_data()).unwrap();
        let done = until(&message);
        // Logical decoding messages are not filtered by publication: other tests' show up.
        if let LogicalMessage::Message(m) = &message
            && m.prefix() != prefix
        {
            continue;
        }
        let line = describe(&message, &mut relations);
        if line == "COMMIT" && lines.last().is_some_and(|last| last == "BEGIN") {
            // A transaction of nothing but other tests' messages.
            lines.pop();
        } else if !(line.starts_with("RELATION") && lines.contains(&line)) {
            // pgoutput describes a relation again whenever its cache entry was invalidated
            // (by TRUNCATE, or DDL elsewhere); an unchanged repeat says nothing new.
            lines.push(line);
        }
        if done {
            return lines;
        }
    }
}

fn describe(message: &LogicalMessage, relations: &mut HashMap<u32, String>) -> String {
    let name = |relations: &HashMap<u32, String>, oid: u32| {
        relations
            .get(&oid)
            .cloned()
            .unwrap_or_else(|| format!("?{oid}"))
    };
    match message {
        LogicalMessage::Begin(_) => "BEGIN".to_owned(),
        LogicalMessage::Commit(_) => "COMMIT".to_owned(),
        LogicalMessage::Relation(relation) => {
            relations.insert(relation.relation_id(), relation.name().to_owned());
            describe_relation(relation)
        }
        LogicalMessage::Insert(insert) => format!(
            "INSERT {} {}",
            name(relations, insert.relation_id()),
            describe_tuple(insert.new_tuple())
        ),
        LogicalMessage::Update(update) => format!(
            "UPDATE {}{} {}",
            name(relations, update.relation_id()),
            match update.old_tuple() {
                None => String::new(),
                Some(OldTuple::Key(key)) => format!(" key {}", describe_tuple(key)),
                Some(OldTuple::Full(old)) => format!(" old {}", describe_tuple(old)),
                Some(_) => " ?".to_owned(),
            },
            describe_tuple(update.new_tuple())
        ),
        LogicalMessage::Delete(delete) => format!(
            "DELETE {} {}",
            name(relations, delete.relation_id()),
            match delete.old_tuple() {
                OldTuple::Key(key) => format!("key {}", describe_tuple(key)),
                OldTuple::Full(old) => format!("old {}", describe_tuple(old)),
                _ => "?".to_owned(),
            }
        ),
        LogicalMessage::Truncate(truncate) => format!(
            "TRUNCATE {} cascade={} restart_identity={}",
            truncate
                .relation_ids()
                .iter()
                .map(|oid| name(relations, *oid))
                .collect::<Vec<_>>()
                .join(","),
            truncate.cascade(),
            truncate.restart_identity()
        ),
        LogicalMessage::Message(message) => format!(
            "MESSAGE transactional={} {} {:?}",
            message.transactional(),
            message.prefix(),
            String::from_utf8_lossy(message.content())
        ),
        other => format!("{other:?}"),
    }
}

fn describe_relation(relation: &Relation) -> String {
    let mut line = format!(
        "RELATION {}.{} identity={}",
        relation.namespace(),
        relation.name(),
        match relation.replica_identity() {
            ReplicaIdentity::Default => "default",
            ReplicaIdentity::Nothing => "nothing",
            ReplicaIdentity::Full => "full",
            ReplicaIdentity::Index => "index",
            _ => "?",
        }
    );
    for column in relation.columns() {
        let _ = write!(
            line,
            " {}:{}{}",
            column.name(),
            column.type_oid(),
            if column.is_key() { ":key" } else { "" }
        );
    }
    line
}

fn describe_tuple(tuple: &Tuple) -> String {
    let values: Vec<String> = tuple
        .iter()
        .map(|value| match value {
            ColumnValue::Null => "null".to_owned(),
            ColumnValue::UnchangedToast => "toast".to_owned(),
            ColumnValue::Text(text) => format!("t:{}", String::from_utf8_lossy(text)),
            ColumnValue::Binary(bytes) => {
                let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
                format!("b:{hex}")
            }
            _ => "?".to_owned(),
        })
        .collect();
    format!("({})", values.join(", "))
}

/// Runs the scripted workload on `table` (already in `publication`) and returns the
/// description of what a stream in `binary` mode decodes.
async fn scripted_workload(binary: bool) -> (String, Vec<String>) {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("repl_script");
    let publication = unique_name("repl_script_pub");
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, name text, amount numeric, flag bool);
         CREATE PUBLICATION {publication} FOR TABLE {table};"
    ))
    .await
    .unwrap();
    let (mut stream, mut decoder) = start_stream(&stack, vec![publication.clone()], binary).await;
    // One statement per call: each commits on its own (a multi-statement simple query would
    // run as one transaction).
    for statement in [
        format!(
            "BEGIN; INSERT INTO {table} VALUES (1, 'a', 1.5, true), (2, 'b', NULL, false); COMMIT"
        ),
        format!("UPDATE {table} SET name = 'aa' WHERE id = 1"),
        format!("UPDATE {table} SET id = 3 WHERE id = 2"),
        format!("DELETE FROM {table} WHERE id = 1"),
        format!("TRUNCATE {table}"),
        format!("SELECT pg_logical_emit_message(true, '{table}', 'in a transaction')"),
        format!("SELECT pg_logical_emit_message(false, '{table}', 'outside')"),
    ] {
        sql.batch_execute(&statement).await.unwrap();
    }
    let lines = collect(&mut stream, &mut decoder, &table, |message| {
        matches!(message, LogicalMessage::Message(m) if !m.transactional() && m.prefix() == table)
    })
    .await;
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP TABLE {table}"
    ))
    .await
    .unwrap();
    (table, lines)
}

/// The column values the scripted workload writes, as each mode shows them.
struct Values {
    id: [&'static str; 3],
    name: [&'static str; 3],
    amount: &'static str,
    flag: [&'static str; 2],
}

/// What the scripted workload must decode into, on `table`.
fn expected_script(t: &str, v: &Values) -> Vec<String> {
    let [id1, id2, id3] = v.id;
    let [a, aa, b] = v.name;
    let amount = v.amount;
    let [yes, no] = v.flag;
    vec![
        "BEGIN".to_owned(),
        format!("RELATION public.{t} identity=default id:23:key name:25 amount:1700 flag:16"),
        format!("INSERT {t} ({id1}, {a}, {amount}, {yes})"),
        format!("INSERT {t} ({id2}, {b}, null, {no})"),
        "COMMIT".to_owned(),
        "BEGIN".to_owned(),
        format!("UPDATE {t} ({id1}, {aa}, {amount}, {yes})"),
        "COMMIT".to_owned(),
        "BEGIN".to_owned(),
        format!("UPDATE {t} key ({id2}, null, null, null) ({id3}, {b}, null, {no})"),
        "COMMIT".to_owned(),
        "BEGIN".to_owned(),
        format!("DELETE {t} key ({id1}, null, null, null)"),
        "COMMIT".to_owned(),
        "BEGIN".to_owned(),
        format!("TRUNCATE {t} cascade=false restart_identity=false"),
        "COMMIT".to_owned(),
        "BEGIN".to_owned(),
        format!(r#"MESSAGE transactional=true {t} "in a transaction""#),
        "COMMIT".to_owned(),
        format!(r#"MESSAGE transactional=false {t} "outside""#),
    ]
}

#[tokio::test]
async fn a_scripted_workload_decodes_exactly_in_text_mode() {
    let (t, lines) = scripted_workload(false).await;
    let text = Values {
        id: ["t:1", "t:2", "t:3"],
        name: ["t:a", "t:aa", "t:b"],
        amount: "t:1.5",
        flag: ["t:t", "t:f"],
    };
    assert_eq!(lines, expected_script(&t, &text));
}

#[tokio::test]
async fn a_scripted_workload_decodes_exactly_in_binary_mode() {
    let (t, lines) = scripted_workload(true).await;
    // int4 big-endian; text as its bytes; numeric 1.5 = 2 digits, weight 0, sign +, dscale 1,
    // base-10000 digits [1, 5000]; bool as one byte.
    let binary = Values {
        id: ["b:00000001", "b:00000002", "b:00000003"],
        name: ["b:61", "b:6161", "b:62"],
        amount: "b:000200000000000100011388",
        flag: ["b:01", "b:00"],
    };
    assert_eq!(lines, expected_script(&t, &binary));
}

#[tokio::test]
async fn a_slot_created_with_use_snapshot_sees_exactly_the_rows_before_it() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("repl_snap");
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY); INSERT INTO {table} VALUES (1), (2);"
    ))
    .await
    .unwrap();
    let mut conn = connect(&stack.replication_config("sluice")).await;
    conn.simple_query("BEGIN READ ONLY ISOLATION LEVEL REPEATABLE READ")
        .await
        .unwrap();
    let slot = unique_name("repl_snap_slot");
    let created = conn
        .create_slot(&slot, true, SnapshotAction::Use)
        .await
        .unwrap();
    assert_eq!(created.snapshot_name, None);
    sql.batch_execute(&format!("INSERT INTO {table} VALUES (3)"))
        .await
        .unwrap();
    let rows = conn
        .simple_query(&format!("SELECT count(*) FROM {table}"))
        .await
        .unwrap();
    assert_eq!(
        rows[0].get(0),
        Some("2"),
        "the slot's snapshot predates row 3"
    );
    conn.simple_query("COMMIT").await.unwrap();
}

#[tokio::test]
async fn finishing_a_stream_returns_a_connection_ready_for_commands() {
    let stack = Stack::from_env();
    let (mut stream, _) = start_stream(&stack, vec![own_publication(&stack).await], false).await;
    let position = stream.received();
    stream.confirm(position);
    let mut conn = tokio::time::timeout(WAIT, stream.finish())
        .await
        .expect("the server ends the copy")
        .unwrap();
    let system = conn.identify_system().await.unwrap();
    assert!(system.xlog_position >= position);
    conn.close().await.unwrap();
}
