//! The metrics endpoint of a running sluice: Prometheus text that moves as events flow, and
//! `/health` and `/ready`.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{Sluice, read_records_exactly, stop_and_drop_slot, write_config};
use sluice_e2e::{Stack, unique_name};

/// `GET path` on 127.0.0.1:`port`: the status code and body.
pub(crate) fn get(port: u16, path: &str) -> Option<(u16, String)> {
    let mut socket = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let request = format!("GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n");
    socket.write_all(request.as_bytes()).ok()?;
    let mut response = String::new();
    socket.read_to_string(&mut response).ok()?;
    let status = response.split_whitespace().nth(1)?.parse().ok()?;
    let body = response.split_once("\r\n\r\n")?.1.to_owned();
    Some((status, body))
}

/// The value of the sample `name{labels}` (or bare `name`) in Prometheus text.
pub(crate) fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .filter(|line| !line.starts_with('#'))
        .find_map(|line| line.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}

/// The port sluice's metrics endpoint listens on, from its log line (60 s at most).
pub(crate) async fn metrics_port(sluice: &Sluice) -> u16 {
    const SAID: &str = "metrics on http://127.0.0.1:";
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let stderr = sluice.stderr();
        if let Some((_, rest)) = stderr.split_once(SAID) {
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            return digits.parse().unwrap();
        }
        assert!(Instant::now() < deadline, "sluice said where: {stderr}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_metrics_endpoint_reports_events_lsns_and_readiness() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("metrics");
    let (prefix, slot) = (unique_name("metrics"), unique_name("metrics_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.t (id int PRIMARY KEY, v text);
         INSERT INTO {schema}.t VALUES (1, 'a'), (2, 'b');"
    ))
    .await
    .unwrap();
    let config = write_config(&stack, &prefix, &slot, &unique_name("metrics_pub"), &schema);
    // Port 0: the system chooses a free one, and sluice says which.
    let text = std::fs::read_to_string(&config).unwrap().replace(
        "[metrics]\nenabled = false",
        "[metrics]\nbind = \"127.0.0.1:0\"",
    );
    std::fs::write(&config, text).unwrap();
    let sluice = Sluice::start_capturing(env!("CARGO_BIN_EXE_sluice-cli"), &config, "info");
    let port = metrics_port(&sluice).await;

    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some((200, body)) = get(port, "/ready") {
            assert_eq!(body, "ready\n");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "sluice became ready (streaming) within 60 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(get(port, "/health").map(|(code, _)| code), Some(200));
    assert_eq!(get(port, "/nothing").map(|(code, _)| code), Some(404));

    let table = format!("{schema}.t");
    let series = |op: &str| format!("sluice_events_total{{table=\"{table}\",op=\"{op}\"}}");
    let (_, before) = get(port, "/metrics").unwrap();
    assert_eq!(
        sample(&before, &series("r")),
        Some(2.0),
        "two snapshot rows:\n{before}"
    );
    assert!(sample(&before, "sluice_registry_calls_total").unwrap() >= 2.0);

    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (3, 'c'), (4, 'd'), (5, 'e'); DELETE FROM {schema}.t WHERE id = 1;"
    ))
    .await
    .unwrap();
    read_records_exactly(&stack, &[format!("{prefix}.{schema}.t")], 2 + 3 + 2).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    let after = loop {
        let (_, after) = get(port, "/metrics").unwrap();
        if sample(&after, &series("c")) == Some(3.0)
            && sample(&after, "sluice_in_flight_events") == Some(0.0)
            && sample(&after, "sluice_confirmed_lsn").unwrap_or(0.0) > 0.0
        {
            break after;
        }
        assert!(Instant::now() < deadline, "the metrics caught up:\n{after}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(sample(&after, &series("d")), Some(1.0), "{after}");
    assert_eq!(
        sample(&after, &series("tombstone")),
        Some(1.0),
        "a tombstone after the delete"
    );
    assert!(
        sample(
            &after,
            &format!("sluice_event_bytes_total{{table=\"{table}\"}}")
        )
        .unwrap()
            > 0.0
    );
    assert_eq!(sample(&after, "sluice_streaming"), Some(1.0));

    stop_and_drop_slot(sluice, &sql, &slot).await;
}
