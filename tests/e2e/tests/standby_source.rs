//! A physical standby as the source (logical decoding on a standby, PostgreSQL 16 on): sluice
//! connects only to the standby, takes the snapshot there and streams what the primary
//! commits, as the standby replays it; the topic then holds every change in each row's order
//! and replays into the table. The publication is the primary's (a standby cannot create one):
//! without it, sluice says so and where to create it. A heartbeat cannot be written there
//! either: sluice says so once and stops them.

use std::sync::atomic::{AtomicBool, AtomicU16};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{Sluice, run_until_exit};
use sluice_e2e::{ScratchPg, Stack};

use crate::crash::{Names, Transaction, carried_on, create_table, writer_across_restarts};

/// The stack's major, or 16 below it: logical decoding on a standby came with 16.
fn major(stack: &Stack) -> u32 {
    stack.pg_major.max(16)
}

#[tokio::test(flavor = "multi_thread")]
async fn sluice_streams_from_a_standby_what_the_primary_commits() {
    let stack = Stack::from_env();
    let primary = ScratchPg::up_major("standby_source_primary", major(&stack), &[]);
    let standby = primary.standby_of("standby_source", &[]);
    let sql = stack.pg_connect_port(primary.port, "sluice").await;
    let names = Names::new("standbysrc");
    create_table(&sql, &names.schema).await;
    let config = names.config(&stack, standby.port);
    // Heartbeats cannot be written on a standby: sluice says so once and stops them.
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[replication]\n",
        "[replication]\nheartbeat_interval = \"1s\"\n",
        1,
    );
    std::fs::write(&config, text).unwrap();

    // Without the publication: refused, naming the primary as where to create it.
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &config,
        Duration::from_secs(60),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("standby") && stderr.contains("on the primary"),
        "{stderr}"
    );

    sql.batch_execute(&format!(
        "CREATE PUBLICATION {} FOR TABLE {}.t",
        names.slot, names.schema
    ))
    .await
    .unwrap();
    let mut sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "info");
    // A logical slot on a standby is created once the primary has logged its running
    // transactions; it does so every 15 s, or at once when asked. Until sluice streams.
    let on_standby = stack.pg_connect_port(standby.port, "postgres").await;
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let streaming = on_standby
            .query_opt(
                "SELECT 1 FROM pg_replication_slots s JOIN pg_stat_activity a ON a.pid = s.active_pid
                  WHERE s.slot_name = $1 AND a.query LIKE 'START_REPLICATION%'",
                &[&names.slot],
            )
            .await
            .unwrap()
            .is_some();
        if streaming {
            break;
        }
        assert!(
            Instant::now() < deadline && sluice.running(),
            "sluice streams from the standby:\n{}",
            sluice.stderr()
        );
        sql.batch_execute("SELECT pg_log_standby_snapshot()")
            .await
            .ok();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let transactions: Arc<Mutex<Vec<Transaction>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let writer = writer_across_restarts(
        &stack,
        Arc::new(AtomicU16::new(primary.port)),
        names.schema.clone(),
        Arc::clone(&transactions),
        Arc::clone(&stop),
        Arc::default(),
    )
    .await;
    while transactions.lock().unwrap().len() < 500 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    writer.await.unwrap();
    assert!(sluice.running(), "{}", sluice.stderr());
    let stderr = sluice.stderr();
    assert_eq!(
        stderr.matches("no heartbeat can be written").count(),
        1,
        "{stderr}"
    );
    assert!(!stderr.contains("heartbeat failed"), "{stderr}");

    let outcome = carried_on(&stack, &sql, &names, (sluice, 0), &transactions).await;
    eprintln!(
        "standby source test: PostgreSQL {}, {outcome}",
        major(&stack)
    );
}
