//! Protocol negotiation on every PostgreSQL major of the stack: v2 with `streaming 'on'` on 15,
//! v4 with `streaming 'parallel'` on 16+ (`stack up --pg-matrix`), and streamed transactions
//! with subtransaction and whole-transaction aborts assembled right on each.

use std::time::Duration;

use sluice_e2e::{Stack, unique_name};
use sluice_pgoutput::LogicalMessage;
use sluice_postgres::{
    Change, ChangeStream, PgOutputOptions, ReplicationConnection, SnapshotAction, Streaming,
};

const WAIT: Duration = Duration::from_secs(60);

/// Streams a transaction with a rolled-back savepoint, then a rolled-back transaction, on
/// the server at `port`; returns the protocol version used.
async fn streamed_transactions_assemble(port: u16) -> (u32, Streaming) {
    let stack = Stack::from_env();
    let admin = stack.pg_connect_port(port, "postgres").await;
    let role = unique_name("streamer");
    // A tiny logical_decoding_work_mem for this role's walsender only: every transaction
    // bigger than 64 kB is streamed, while other tests' walsenders are left as they are.
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{role}';
             ALTER ROLE {role} SET logical_decoding_work_mem = '64kB';"
        ))
        .await
        .unwrap();
    let sql = stack.pg_connect_port(port, "sluice").await;
    let table = unique_name("versions");
    let publication = unique_name("versions_pub");
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, payload text);
         CREATE PUBLICATION {publication} FOR TABLE {table};"
    ))
    .await
    .unwrap();

    let mut config = stack.replication_config(&role);
    config.port = port;
    let mut conn = ReplicationConnection::connect(&config).await.unwrap();
    let slot = unique_name("versions_slot");
    let created = conn
        .create_slot(&slot, true, SnapshotAction::NoExport)
        .await
        .unwrap();
    let options = PgOutputOptions::new(vec![publication]);
    let choice = conn.negotiate(&options);
    let stream = conn
        .start_replication(&slot, created.consistent_point, &options, choice)
        .await
        .unwrap();
    let mut changes = ChangeStream::new(stream, 1024 * 1024);

    sql.batch_execute(&format!(
        "BEGIN;
         INSERT INTO {table} SELECT g, repeat('a', 200) FROM generate_series(1, 2000) g;
         SAVEPOINT dropped;
         INSERT INTO {table} SELECT g, repeat('b', 200) FROM generate_series(2001, 4000) g;
         ROLLBACK TO SAVEPOINT dropped;
         INSERT INTO {table} SELECT g, repeat('c', 200) FROM generate_series(4001, 6000) g;
         COMMIT;
         BEGIN;
         INSERT INTO {table} SELECT g, repeat('d', 200) FROM generate_series(6001, 9000) g;
         ROLLBACK;
         INSERT INTO {table} VALUES (0, 'last');"
    ))
    .await
    .unwrap();

    let mut transactions = Vec::new();
    let mut ids = Vec::new();
    loop {
        let change = tokio::time::timeout(WAIT, changes.next())
            .await
            .expect("changes arrive")
            .unwrap()
            .expect("the stream goes on");
        match change {
            Change::Begin { streamed, .. } => transactions.push((streamed, 0)),
            Change::Message(LogicalMessage::Insert(insert)) => {
                let id = insert.new_tuple().get(0).unwrap();
                let sluice_pgoutput::ColumnValue::Text(id) = id else {
                    panic!("{id:?}")
                };
                ids.push(std::str::from_utf8(id).unwrap().parse::<i32>().unwrap());
                transactions.last_mut().unwrap().1 += 1;
            }
            Change::Commit { end_lsn, .. } => {
                changes.stream().confirm(end_lsn);
                if ids.last() == Some(&0) {
                    break;
                }
            }
            _ => {}
        }
    }
    assert_eq!(
        transactions,
        [(true, 4000), (false, 1)],
        "the savepoint's rows and the rolled-back transaction are gone"
    );
    let expected: Vec<i32> = (1..=2000).chain(4001..=6000).chain([0]).collect();
    assert_eq!(ids, expected, "every kept row once, in order");
    assert_eq!(changes.aborted_streams(), 1);
    admin.batch_execute(&format!("DROP ROLE {role}")).await.ok();
    (choice.protocol_version, choice.streaming)
}

#[tokio::test]
async fn postgresql_15_streams_with_protocol_2() {
    let stack = Stack::from_env();
    assert_eq!(
        streamed_transactions_assemble(stack.pg_port_of(15)).await,
        (2, Streaming::On)
    );
}

#[tokio::test]
async fn postgresql_16_and_later_stream_with_protocol_4_in_parallel_mode() {
    let stack = Stack::from_env();
    assert_eq!(
        streamed_transactions_assemble(stack.pg_port_of(17)).await,
        (4, Streaming::Parallel),
        "the stack's matrix PostgreSQL (deploy/local/stack up --pg-matrix) speaks v4"
    );
}
