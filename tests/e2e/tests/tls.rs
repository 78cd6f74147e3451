//! TLS to PostgreSQL with `sslmode = "verify-full"`: every connection sluice makes (the
//! catalog's, which also emits the heartbeat, the replication connection, the snapshot's
//! planner and copier) asks for TLS, and refuses a server whose certificate its CA did not
//! sign. sluice connects through a proxy of the test's that forwards each connection to the
//! stack's PostgreSQL, or answers the n-th one itself with a certificate from another CA.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sluice_e2e::pipeline::{
    Sluice, read_events_exactly, stop_and_drop_slot, wait_for_records, wait_until_streaming,
    write_config,
};
use sluice_e2e::{Stack, unique_name};

/// The first message of a client asking for TLS: length 8, code 80877103.
const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What the proxy saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Seen {
    /// Not through its first message yet.
    Open,
    /// Passed on to PostgreSQL; whether it began by asking for TLS, and the port the
    /// proxy's side of it had (the backend's `client_port`).
    Forwarded { asked_for_tls: bool, port: u16 },
    /// Answered by the proxy with the wrong certificate: whether the client asked for TLS,
    /// and whether it went on with that certificate (it must not).
    Impostor { asked_for_tls: bool, accepted: bool },
}

/// A TCP proxy in front of PostgreSQL that lets through every connection but the n-th.
struct Proxy {
    port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    /// The number (from 1) of the connection the proxy answers itself; 0 for none.
    impostor_at: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Proxy {
    fn start(stack: &Stack) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        // A certificate the stack's CA did not sign, for the impostor.
        let tls = stack.state_dir.join("tls");
        let identity = native_tls::Identity::from_pkcs8(
            &std::fs::read(tls.join("other-ca.crt")).unwrap(),
            &std::fs::read(tls.join("other-ca.key")).unwrap(),
        )
        .unwrap();
        let acceptor = native_tls::TlsAcceptor::new(identity).unwrap();
        let proxy = Proxy {
            port,
            seen: Arc::default(),
            impostor_at: Arc::default(),
            stop: Arc::default(),
        };
        let (seen, impostor_at, stop) = (
            Arc::clone(&proxy.seen),
            Arc::clone(&proxy.impostor_at),
            Arc::clone(&proxy.stop),
        );
        let upstream = stack.pg_port;
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let client = match listener.accept() {
                    Ok((client, _)) => client,
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(10));
                        continue;
                    }
                    Err(err) => panic!("accepting: {err}"),
                };
                client.set_nonblocking(false).unwrap();
                let number = seen.lock().unwrap().len() + 1;
                let impostor = number == impostor_at.load(Ordering::Relaxed);
                // The slot in `seen` is taken now, so numbers follow the order of arrival.
                seen.lock().unwrap().push(Seen::Open);
                let (seen, acceptor) = (Arc::clone(&seen), acceptor.clone());
                let record = move |outcome| {
                    if let Some(slot) = seen.lock().unwrap().get_mut(number - 1) {
                        *slot = outcome;
                    }
                };
                std::thread::spawn(move || {
                    if impostor {
                        record(impersonate(client, &acceptor));
                    } else {
                        forward(client, upstream, record);
                    }
                });
            }
        });
        proxy
    }

    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets what it saw; the `number`-th connection from now on (0: none) is the impostor's.
    fn reset(&self, number: usize) {
        self.seen.lock().unwrap().clear();
        self.impostor_at.store(number, Ordering::Relaxed);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Answers an SSLRequest with yes and a TLS handshake with a certificate from another CA.
fn impersonate(mut client: TcpStream, acceptor: &native_tls::TlsAcceptor) -> Seen {
    let mut first = [0; 8];
    if client.read_exact(&mut first).is_err() || first != SSL_REQUEST {
        return Seen::Impostor {
            asked_for_tls: false,
            accepted: false,
        };
    }
    client.write_all(b"S").unwrap();
    let accepted = acceptor.accept(client).is_ok();
    Seen::Impostor {
        asked_for_tls: true,
        accepted,
    }
}

/// Passes the connection on to PostgreSQL, both ways, until either side closes it; `record`s
/// it once its first message is through.
fn forward(mut client: TcpStream, upstream: u16, record: impl FnOnce(Seen)) {
    let mut first = [0; 8];
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    let port = server.local_addr().unwrap().port();
    let asked_for_tls = client.read_exact(&mut first).is_ok() && first == SSL_REQUEST;
    record(Seen::Forwarded {
        asked_for_tls,
        port,
    });
    if server.write_all(&first).is_ok() {
        let (mut client_in, mut server_out) =
            (client.try_clone().unwrap(), server.try_clone().unwrap());
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut client_in, &mut server_out);
            let _ = server_out.shutdown(std::net::Shutdown::Write);
        });
        let _ = std::io::copy(&mut server, &mut client);
        let _ = client.shutdown(std::net::Shutdown::Write);
    }
}

/// Waits (60 s at most) until the proxy's `number`-th connection is through its first message.
async fn wait_for_outcome(proxy: &Proxy, number: usize) -> Seen {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(seen) = proxy.seen().get(number - 1).filter(|s| **s != Seen::Open) {
            return seen.clone();
        }
        assert!(
            Instant::now() < deadline,
            "connection {number} reached the impostor: {:?}",
            proxy.seen()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
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
    let proxy = Proxy::start(&stack);
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
        proxy.reset(number);
        let mut sluice = Sluice::start_capturing(binary, &config, "error");
        let seen = wait_for_outcome(&proxy, number).await;
        assert_eq!(
            seen,
            Seen::Impostor {
                asked_for_tls: true,
                accepted: false
            },
            "connection {number}"
        );
        let (code, stderr) = sluice.wait_for_exit("a certificate it refused").await;
        assert_eq!(code, Some(1), "connection {number}: {stderr}");
        assert!(
            stderr.to_lowercase().contains("certificate"),
            "connection {number}: {stderr}"
        );
        if sluice_e2e::pipeline::slot_exists(&sql, &slot).await {
            sql.execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                .await
                .unwrap();
        }
    }
}
