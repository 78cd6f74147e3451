//! A primary fails and its standby is promoted while a writer keeps committing: sluice, given
//! both servers in `postgres.hosts` and `replication.failover = true`, carries on from the
//! failover slot the standby kept in sync, on the promoted standby, and loses nothing.
//!
//! PostgreSQL 17's failover slots, whatever `SLUICE_TEST_PG_MAJOR` says: a primary and a
//! physical standby of its own (`deploy/local/stack scratch-up`, `scratch-standby`). The
//! standby synchronizes the slot (`sync_replication_slots`); the primary's walsenders send
//! sluice nothing the standby has not flushed (`synchronized_standby_slots`), and commits wait
//! for the standby (`synchronous_standby_names`), so no commit the writer saw is lost with the
//! primary.

use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{Sluice, wait_until_streaming};
use sluice_e2e::{ScratchPg, Stack};

use crate::crash::{Names, Transaction, carried_on, create_table, writer_across_restarts};

/// Waits until the standby holds a synchronized, persistent copy of `slot` (a deadline bounds
/// a hang only).
async fn wait_until_synced(standby: &tokio_postgres::Client, slot: &str) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let synced = standby
            .query_opt(
                "SELECT 1 FROM pg_replication_slots WHERE slot_name = $1 AND synced AND NOT temporary",
                &[&slot],
            )
            .await
            .unwrap()
            .is_some();
        if synced {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the standby synchronizes slot {slot}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_primary_fails_the_standby_is_promoted_and_sluice_carries_on_from_the_synced_slot() {
    let stack = Stack::from_env();
    let primary = ScratchPg::up_major("failover_primary", 17, &[]);
    let standby = primary.standby_of("failover_standby", &["sync_replication_slots=on"]);
    let admin = stack.pg_connect_port(primary.port, "postgres").await;
    for setting in ["synchronized_standby_slots", "synchronous_standby_names"] {
        admin
            .batch_execute(&format!(
                "ALTER SYSTEM SET {setting} = '{}'",
                standby.name()
            ))
            .await
            .unwrap();
    }
    admin
        .batch_execute("SELECT pg_reload_conf()")
        .await
        .unwrap();
    drop(admin);
    let sql = stack.pg_connect_port(primary.port, "sluice").await;
    let names = Names::new("failover");
    create_table(&sql, &names.schema).await;
    drop(sql);
    let config = names.config(&stack, primary.port);
    let text = std::fs::read_to_string(&config).unwrap().replacen(
        "[postgres]\n",
        &format!(
            "[postgres]\nhosts = [\"127.0.0.1:{}\", \"127.0.0.1:{}\"]\n",
            primary.port, standby.port
        ),
        1,
    );
    let text = text.replacen("[replication]\n", "[replication]\nfailover = true\n", 1);
    std::fs::write(&config, text).unwrap();
    let mut sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "info");
    let on_primary = stack.pg_connect_port(primary.port, "postgres").await;
    wait_until_streaming(&on_primary, &names.slot).await;
    let failover: bool = on_primary
        .query_one(
            "SELECT failover FROM pg_replication_slots WHERE slot_name = $1",
            &[&names.slot],
        )
        .await
        .unwrap()
        .get(0);
    assert!(failover, "sluice created a failover slot");
    drop(on_primary);
    let on_standby = stack.pg_connect_port(standby.port, "postgres").await;
    wait_until_synced(&on_standby, &names.slot).await;

    let transactions: Arc<Mutex<Vec<Transaction>>> = Arc::default();
    let stop = Arc::new(AtomicBool::new(false));
    let failovers = Arc::new(tokio::sync::Mutex::new(0));
    let port = Arc::new(AtomicU16::new(primary.port));
    let writer = writer_across_restarts(
        &stack,
        Arc::clone(&port),
        names.schema.clone(),
        Arc::clone(&transactions),
        Arc::clone(&stop),
        Arc::clone(&failovers),
    )
    .await;
    while transactions.lock().unwrap().len() < 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let failed_at = Instant::now();
    {
        let mut count = failovers.lock().await;
        // The primary's machine is gone: no shutdown checkpoint, no goodbye to anyone.
        primary.stop("immediate");
        standby.promote();
        port.store(standby.port, Ordering::Relaxed);
        *count += 1;
    }
    wait_until_streaming(&on_standby, &names.slot).await;
    eprintln!(
        "failover test: streaming from the promoted standby {:?} after the primary stopped",
        failed_at.elapsed()
    );
    assert!(sluice.running(), "{}", sluice.stderr());
    let written = transactions.lock().unwrap().len();
    while transactions.lock().unwrap().len() < written + 300 {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    writer.await.unwrap();

    let sql = stack.pg_connect_port(standby.port, "sluice").await;
    let outcome = carried_on(&stack, &sql, &names, (sluice, 1), &transactions).await;
    eprintln!("failover test: {outcome}");
}
