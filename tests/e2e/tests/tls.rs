//! TLS to PostgreSQL with `sslmode = "verify-full"`: every connection sluice makes (the
//! catalog's, which also emits the heartbeat, the replication connection, the snapshot's
//! planner and copier) asks for TLS, and refuses a server whose certificate its CA did not
//! sign. sluice connects through a proxy of the test's that forwards each connection to the
//! stack's PostgreSQL, or answers the n-th one itself with a certificate from another CA.

use std::io::Read;
use std::net::TcpStream;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{
    Sluice, read_events_exactly, slot_exists, stop_and_drop_slot, wait_for_records,
    wait_until_streaming, write_config,
};
use sluice_e2e::proxy::{Impostor, PgProxy, SSL_REQUEST, Seen};
use sluice_e2e::{Stack, unique_name};

/// What the impostor says when the client refused its certificate.
const REFUSED: &str = "asked for TLS, refused the certificate";

/// Answers an SSLRequest with yes and the TLS handshake with a certificate from another CA.
fn impostor(stack: &Stack) -> Impostor {
    let tls = stack.state_dir.join("tls");
    let identity = native_tls::Identity::from_pkcs8(
        &std::fs::read(tls.join("other-ca.crt")).unwrap(),
        &std::fs::read(tls.join("other-ca.key")).unwrap(),
    )
    .unwrap();
    let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
    Arc::new(move |mut client: TcpStream| {
        let mut first = [0; 8];
        if client.read_exact(&mut first).is_err() || first != SSL_REQUEST {
            return "did not ask for TLS".to_owned();
        }
        std::io::Write::write_all(&mut client, b"S").unwrap();
        match acceptor.accept(client) {
            Ok(_) => "asked for TLS, and went on with another CA's certificate".to_owned(),
            Err(_) => REFUSED.to_owned(),
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn every_postgresql_connection_asks_for_tls_and_verifies_the_servers_certificate() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("tls");
    let (prefix, slot) = (unique_name("tls"), unique_name("tls_slot"));
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY);
         INSERT INTO {schema}.t VALUES (1), (2), (3);"
    ))
    .await
    .unwrap();
    let proxy = PgProxy::start(stack.pg_port);
    let config = write_config(&stack, &prefix, &slot, &unique_name("tls_pub"), &schema);
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace("host = \"127.0.0.1\"", "host = \"localhost\"")
        .replace(
            &format!("port = {}", stack.pg_port),
            &format!("port = {}", proxy.port),
        )
        .replace(
            "sslmode = \"disable\"",
            &format!(
                "sslmode = \"verify-full\"\nsslrootcert = \"{}\"",
                stack.ca_cert().display()
            ),
        )
        .replace(
            "[replication]\n",
            "[replication]\nheartbeat_interval = \"200ms\"\n",
        );
    std::fs::write(&config, text).unwrap();
    let binary = env!("CARGO_BIN_EXE_sluice-cli");
    let topic = [format!("{prefix}.{schema}.t")];

    // Everything passed on: the snapshot and the stream go through, every connection asked
    // for TLS, and PostgreSQL shows TLS on the backends still open: the walsender and the
    // catalog connection, seen emitting a heartbeat.
    let sluice = Sluice::start(binary, &config);
    wait_until_streaming(&sql, &slot).await;
    wait_for_records(&stack, &topic, 3).await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let backends = loop {
        let ports: Vec<i32> = proxy
            .seen()
            .iter()
            .filter_map(|seen| match seen {
                Seen::Forwarded { port, .. } => Some(i32::from(*port)),
                _ => None,
            })
            .collect();
        let rows = sql
            .query(
                "SELECT a.backend_type, a.query, s.ssl FROM pg_stat_activity a
                   JOIN pg_stat_ssl s USING (pid) WHERE a.client_port = ANY($1)",
                &[&ports],
            )
            .await
            .unwrap();
        let backends: Vec<(String, String, bool)> = rows
            .iter()
            .map(|row| (row.get(0), row.get(1), row.get(2)))
            .collect();
        let heartbeat = backends
            .iter()
            .any(|(kind, query, _)| kind == "client backend" && query.contains("sluice-heartbeat"));
        if heartbeat {
            break backends;
        }
        assert!(
            Instant::now() < deadline,
            "a heartbeat from sluice's catalog connection: {backends:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert!(
        backends.iter().any(|(kind, _, _)| kind == "walsender"),
        "{backends:?}"
    );
    assert!(backends.iter().all(|(_, _, ssl)| *ssl), "{backends:?}");
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let connections = proxy.seen();
    // The catalog's, the replication connection, the snapshot's planner and its copier.
    assert_eq!(connections.len(), 4, "{connections:?}");
    assert!(
        connections.iter().all(|seen| matches!(
            seen,
            Seen::Forwarded {
                asked_for_tls: true,
                ..
            }
        )),
        "{connections:?}"
    );
    read_events_exactly(&stack, &topic, 3).await;

    // Each connection in turn meets a server whose certificate the CA did not sign: sluice
    // asks for TLS, refuses the certificate, and stops naming it.
    for number in 1..=connections.len() {
        proxy.reset();
        proxy.answer(number, impostor(&stack));
        let mut sluice = Sluice::start_capturing(binary, &config, "error");
        let seen = proxy.wait_for(number).await;
        assert_eq!(
            seen,
            Seen::Answered(REFUSED.to_owned()),
            "connection {number}"
        );
        let (code, stderr) = sluice.wait_for_exit("a certificate it refused").await;
        assert_eq!(code, Some(1), "connection {number}: {stderr}");
        assert!(
            stderr.to_lowercase().contains("certificate"),
            "connection {number}: {stderr}"
        );
        if slot_exists(&sql, &slot).await {
            sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await
                .unwrap();
        }
    }
}
