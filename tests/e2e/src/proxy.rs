//! A TCP proxy in front of the stack's PostgreSQL, for sluice to connect through: it numbers
//! the connections in the order they arrive, passes them on, and can answer one itself (an
//! impostor), hold one's data from the server back after some bytes (a stalled COPY), or cut
//! every connection passed on (a network cut).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The first message of a client asking for TLS: length 8, code 80877103.
pub const SSL_REQUEST: [u8; 8] = [0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f];

/// What the proxy saw of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    /// Not through its first message yet.
    Open,
    /// Passed on to PostgreSQL: whether it began by asking for TLS, and the port of the
    /// proxy's side of it (the backend's `client_port`).
    Forwarded { asked_for_tls: bool, port: u16 },
    /// Answered by the impostor, with what it reported.
    Answered(String),
}

/// What the proxy does with the connections from now on.
#[derive(Clone, Default)]
struct Rule {
    /// The number (from 1) of the connection the impostor answers, and the impostor.
    impostor: Option<(usize, Impostor)>,
    /// The number of the connection whose data from the server stops after so many bytes.
    hold: Option<(usize, u64)>,
}

/// Answers a connection in PostgreSQL's place, reporting what happened.
pub type Impostor = Arc<dyn Fn(TcpStream) -> String + Send + Sync>;

/// Both ends of each connection passed on, for [`PgProxy::cut`].
type Passed = Arc<Mutex<Vec<(TcpStream, TcpStream)>>>;

pub struct PgProxy {
    pub port: u16,
    seen: Arc<Mutex<Vec<Seen>>>,
    rule: Arc<Mutex<Rule>>,
    stop: Arc<AtomicBool>,
    passed: Passed,
}

impl PgProxy {
    /// Listens on a port of its own choosing, passing connections on to `127.0.0.1:upstream`.
    pub fn start(upstream: u16) -> PgProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let proxy = PgProxy {
            port: listener.local_addr().unwrap().port(),
            seen: Arc::default(),
            rule: Arc::default(),
            stop: Arc::default(),
            passed: Arc::default(),
        };
        let (seen, rule, stop, passed) = (
            Arc::clone(&proxy.seen),
            Arc::clone(&proxy.rule),
            Arc::clone(&proxy.stop),
            Arc::clone(&proxy.passed),
        );
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
                // The slot in `seen` is taken now, so numbers follow the order of arrival.
                let number = {
                    let mut seen = seen.lock().unwrap();
                    seen.push(Seen::Open);
                    seen.len()
                };
                let rule = rule.lock().unwrap().clone();
                let seen = Arc::clone(&seen);
                let passed = Arc::clone(&passed);
                let record = move |outcome| {
                    if let Some(slot) = seen.lock().unwrap().get_mut(number - 1) {
                        *slot = outcome;
                    }
                };
                std::thread::spawn(move || match rule.impostor {
                    Some((at, impostor)) if at == number => {
                        record(Seen::Answered(impostor(client)))
                    }
                    _ => {
                        let hold = rule.hold.filter(|(at, _)| *at == number).map(|(_, n)| n);
                        forward(client, upstream, hold, &passed, record);
                    }
                });
            }
        });
        proxy
    }

    /// What it saw of each connection so far, by number.
    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    /// Forgets what it saw (numbering starts again from 1) and passes every connection on.
    pub fn reset(&self) {
        self.seen.lock().unwrap().clear();
        *self.rule.lock().unwrap() = Rule::default();
    }

    /// The `number`-th connection from the last reset is answered by `impostor`.
    pub fn answer(&self, number: usize, impostor: Impostor) {
        self.rule.lock().unwrap().impostor = Some((number, impostor));
    }

    /// The `number`-th connection from the last reset gets only the first `bytes` the server
    /// sends; then its data is held back (for good).
    pub fn hold(&self, number: usize, bytes: u64) {
        self.rule.lock().unwrap().hold = Some((number, bytes));
    }

    /// Cuts every connection passed on so far, both ways, as a network failure would: each
    /// side sees its connection end.
    pub fn cut(&self) {
        for (client, server) in self.passed.lock().unwrap().drain(..) {
            let _ = client.shutdown(Shutdown::Both);
            let _ = server.shutdown(Shutdown::Both);
        }
    }

    /// Waits (60 s at most) until the `number`-th connection is through its first message.
    pub async fn wait_for(&self, number: usize) -> Seen {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(seen) = self.seen().get(number - 1).filter(|s| **s != Seen::Open) {
                return seen.clone();
            }
            assert!(
                Instant::now() < deadline,
                "connection {number} came through the proxy: {:?}",
                self.seen()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for PgProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Passes the connection on to PostgreSQL, both ways, until either side closes it (the
/// server's side only up to `hold` bytes, if set); `record`s it once its first message is
/// through.
fn forward(
    mut client: TcpStream,
    upstream: u16,
    hold: Option<u64>,
    passed: &Passed,
    record: impl FnOnce(Seen),
) {
    let mut first = [0; 8];
    let mut server = TcpStream::connect(("127.0.0.1", upstream)).unwrap();
    passed
        .lock()
        .unwrap()
        .push((client.try_clone().unwrap(), server.try_clone().unwrap()));
    let port = server.local_addr().unwrap().port();
    let asked_for_tls = client.read_exact(&mut first).is_ok() && first == SSL_REQUEST;
    record(Seen::Forwarded {
        asked_for_tls,
        port,
    });
    if server.write_all(&first).is_err() {
        return;
    }
    let (mut client_in, mut server_out) =
        (client.try_clone().unwrap(), server.try_clone().unwrap());
    let upward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut client_in, &mut server_out);
        let _ = server_out.shutdown(Shutdown::Write);
    });
    match hold {
        None => {
            let _ = std::io::copy(&mut server, &mut client);
            let _ = client.shutdown(Shutdown::Write);
        }
        Some(bytes) => {
            let _ = std::io::copy(&mut (&mut server).take(bytes), &mut client);
            // Held: the rest stays unread until the client goes away.
            let _ = upward.join();
        }
    }
}
