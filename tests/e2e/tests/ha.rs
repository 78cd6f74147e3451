//! An HA pair: two `sluice run` processes with the same configuration, started at the same
//! moment on a table no slot exists for yet. One takes the snapshot and streams; the other
//! stands by (alive, not ready, producing nothing). While a writer keeps committing, the one
//! streaming is killed with SIGKILL three times; each time the other takes over, and the
//! killed one is started again, as its supervisor would, and stands by in turn. At the end
//! the topic holds every committed change in each row's order, with true values, and replays
//! to the table.

use std::time::{Duration, Instant};

use sluice_e2e::Stack;
use sluice_e2e::pipeline::Sluice;

use crate::crash::{Names, carried_on, create_table, walsender, writer};
use crate::metrics::{get, metrics_port, sample};

const TAKEOVERS: usize = 3;

/// One process of the pair and the port of its metrics endpoint.
struct Member {
    sluice: Sluice,
    port: u16,
}

impl Member {
    async fn start(config: &std::path::Path) -> Member {
        let sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), config, "info");
        let port = metrics_port(&sluice).await;
        Member { sluice, port }
    }

    /// `sluice_streaming`, `sluice_standing_by` and the events it produced, from `/metrics`.
    fn role(&self) -> Option<(bool, bool, f64)> {
        let (_, text) = get(self.port, "/metrics")?;
        let produced = text
            .lines()
            .filter(|line| line.starts_with("sluice_events_total{"))
            .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
            .sum();
        Some((
            sample(&text, "sluice_streaming")? == 1.0,
            sample(&text, "sluice_standing_by")? == 1.0,
            produced,
        ))
    }

    fn ready(&self) -> Option<u16> {
        get(self.port, "/ready").map(|(code, _)| code)
    }
}

/// Waits until one member streams and the other stands by (a deadline bounds a hang only);
/// returns them as (streaming, standing by).
async fn roles(a: Member, b: Member) -> (Member, Member) {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        match (a.role(), b.role()) {
            (Some((true, false, _)), Some((false, true, _))) => return (a, b),
            (Some((false, true, _)), Some((true, false, _))) => return (b, a),
            seen => assert!(
                Instant::now() < deadline,
                "one streams, one stands by: {seen:?}\nA:\n{}\nB:\n{}",
                a.sluice.stderr(),
                b.sluice.stderr()
            ),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn an_ha_pair_streams_from_one_process_and_the_other_takes_over_when_it_is_killed() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let names = Names::new("ha");
    create_table(&sql, &names.schema).await;
    let config = names.config(&stack, stack.pg_port);
    let text = std::fs::read_to_string(&config).unwrap();
    // Both serve metrics, each on a port of its own.
    let text = text.replace(
        "[metrics]\nenabled = false",
        "[metrics]\nbind = \"127.0.0.1:0\"",
    );
    std::fs::write(&config, text).unwrap();

    // No slot yet: both start at once, and only one may create it and take the snapshot.
    let (a, b) = tokio::join!(Member::start(&config), Member::start(&config));
    let (mut active, mut standby) = roles(a, b).await;
    let writer = writer(&stack, names.schema.clone()).await;
    let transactions = std::sync::Arc::clone(&writer.transactions);
    let mut takeovers = Vec::new();
    for round in 0..TAKEOVERS {
        let written = transactions.lock().unwrap().len();
        while transactions.lock().unwrap().len() < written + 100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let (_, _, produced) = standby.role().expect("the standby answers");
        assert_eq!(produced, 0.0, "round {round}: the standby produced nothing");
        assert_eq!(
            standby.ready(),
            Some(503),
            "round {round}: the standby is not ready"
        );
        assert_eq!(
            active.ready(),
            Some(200),
            "round {round}: the active one is ready"
        );
        assert!(
            standby.sluice.stderr().contains("standing by"),
            "round {round}: {}",
            standby.sluice.stderr()
        );
        let streaming = walsender(&sql, &names.slot).await.expect("a walsender");

        let killed = Instant::now();
        active.sluice.kill();
        let deadline = Instant::now() + Duration::from_secs(120);
        while !matches!(standby.role(), Some((true, false, _))) {
            assert!(
                Instant::now() < deadline,
                "round {round}: the standby takes over:\n{}",
                standby.sluice.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        takeovers.push(killed.elapsed());
        assert_ne!(walsender(&sql, &names.slot).await, Some(streaming));
        assert!(standby.sluice.stderr().contains("taking over"));
        // Its supervisor starts the killed one again: it stands by now.
        let restarted = Member::start(&config).await;
        (active, standby) = roles(standby, restarted).await;
    }
    writer.stop().await;

    let Member { sluice: idle, .. } = standby;
    let (status, stderr) = idle.stop_with_stderr();
    assert!(status.success(), "a standby exits 0 on SIGTERM:\n{stderr}");
    let outcome = carried_on(&stack, &sql, &names, (active.sluice, 0), &transactions).await;
    eprintln!("HA test: {TAKEOVERS} takeovers after SIGKILL in {takeovers:?}, {outcome}");
}
