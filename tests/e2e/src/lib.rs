//! Shared support for sluice's end-to-end tests: where the local stack's services listen
//! (read from `deploy/local/stack.env`, the one place the stack's settings are written) and
//! names that keep concurrently running tests out of each other's way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

pub mod connect;
pub mod pipeline;
pub mod proxy;
pub mod registry_proxy;

/// The repository's root directory.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The settings of `deploy/local/stack.env` as key/value pairs.
pub fn stack_env() -> HashMap<String, String> {
    let path = repo_root().join("deploy/local/stack.env");
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|err| panic!("reading {}: {err}", path.display()));
    text.lines()
        .map(str::trim)
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (key, value) = line
                .split_once('=')
                .unwrap_or_else(|| panic!("{}: not KEY=VALUE: {line}", path.display()));
            (key.to_owned(), value.to_owned())
        })
        .collect()
}

/// Connection settings of the running local stack.
#[derive(Clone)]
pub struct Stack {
    pub pg_port: u16,
    /// The newer PostgreSQL major of `stack up --pg-matrix`.
    pub pg_matrix_port: u16,
    pub pg_database: String,
    pub kafka_bootstrap: String,
    pub registry_url: String,
    pub state_dir: PathBuf,
}

impl Stack {
    /// The stack's settings; the first call in a test process also drops what earlier runs
    /// left behind (see [`drop_leftovers`]).
    pub fn from_env() -> Self {
        static CLEANED: std::sync::OnceLock<()> = std::sync::OnceLock::new();
        let stack = Self::settings();
        CLEANED.get_or_init(|| drop_leftovers(&stack));
        stack
    }

    fn settings() -> Self {
        let env = stack_env();
        let get = |key: &str| {
            env.get(key)
                .unwrap_or_else(|| panic!("stack.env has no {key}"))
                .clone()
        };
        let state_dir = std::env::var_os("SLUICE_STATE_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| {
                PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                    .join(".local/state/sluice")
            });
        Stack {
            pg_port: get("PG_PORT").parse().expect("PG_PORT is a port"),
            pg_matrix_port: get("PG_MATRIX_PORT")
                .parse()
                .expect("PG_MATRIX_PORT is a port"),
            pg_database: get("PG_DATABASE"),
            kafka_bootstrap: format!("127.0.0.1:{}", get("KAFKA_PORT")),
            registry_url: format!("http://127.0.0.1:{}/apis/ccompat/v7", get("REGISTRY_PORT")),
            state_dir,
        }
    }

    /// A libpq-style connection string for `user`, whose password is its name on this stack.
    pub fn pg_config(&self, user: &str) -> String {
        format!(
            "host=127.0.0.1 port={} dbname={} user={user} password={user}",
            self.pg_port, self.pg_database
        )
    }

    /// Connects with tokio-postgres as `user`, driving the connection on a background task.
    pub async fn pg_connect(&self, user: &str) -> tokio_postgres::Client {
        self.pg_connect_port(self.pg_port, user).await
    }

    /// Like [`Stack::pg_connect`], to the server on `port`.
    pub async fn pg_connect_port(&self, port: u16, user: &str) -> tokio_postgres::Client {
        let config = self
            .pg_config(user)
            .replace(&format!("port={}", self.pg_port), &format!("port={port}"));
        Self::pg_connect_config(&config, user).await
    }

    /// Like [`Stack::pg_connect`], to another database of the stack's server.
    pub async fn pg_connect_database(&self, database: &str, user: &str) -> tokio_postgres::Client {
        let config = self.pg_config(user).replace(
            &format!("dbname={}", self.pg_database),
            &format!("dbname={database}"),
        );
        Self::pg_connect_config(&config, user).await
    }

    async fn pg_connect_config(config: &str, user: &str) -> tokio_postgres::Client {
        let (client, connection) = tokio_postgres::connect(config, tokio_postgres::NoTls)
            .await
            .unwrap_or_else(|err| {
                panic!("connecting to PostgreSQL as {user} (is the stack up?): {err}")
            });
        tokio::spawn(connection);
        client
    }
}

impl Stack {
    /// Replication-connection settings for `user` over TCP, without TLS.
    pub fn replication_config(&self, user: &str) -> sluice_postgres::ConnectConfig {
        let mut config = sluice_postgres::ConnectConfig::new(
            sluice_postgres::Host::Tcp("127.0.0.1".to_owned()),
            self.pg_port,
            user,
            &self.pg_database,
        );
        config.password = Some(user.to_owned().into());
        config.sslmode = sluice_postgres::SslMode::Disable;
        config
    }

    /// The CA that signed the stack's PostgreSQL server certificate.
    pub fn ca_cert(&self) -> PathBuf {
        self.state_dir.join("tls/ca.crt")
    }

    /// The client certificate (CN=sluice-client) and its key that the broker's mutual-TLS
    /// listener accepts.
    pub fn client_cert(&self) -> (PathBuf, PathBuf) {
        (
            self.state_dir.join("tls/client.crt"),
            self.state_dir.join("tls/client.key"),
        )
    }

    /// A CA that signed nothing the stack serves.
    pub fn unrelated_ca_cert(&self) -> PathBuf {
        self.state_dir.join("tls/other-ca.crt")
    }

    /// The directory of PostgreSQL's Unix socket.
    pub fn pg_socket_dir(&self) -> PathBuf {
        self.state_dir.join("run")
    }
}

/// A name no other test of this run or of an earlier run uses:
/// `prefix_<milliseconds since 1970>_p<test process id>_<counter>`. The process id tells a later
/// run whether what carries the name (a slot, a publication) was left behind by a run that
/// ended without cleaning up.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{}_p{}_{n}", now_millis(), std::process::id())
}

fn now_millis() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis()
}

/// Names made by [`unique_name`] before it carried the process id are left behind once they
/// are older than this: no test runs so long.
const LEGACY_AGE_MS: u128 = 3_600_000;

/// Whether `name` is a [`unique_name`] (or contains one) of a test process that has ended.
fn left_behind(name: &str, now_ms: u128) -> bool {
    let parts: Vec<&str> = name.split('_').collect();
    let digits = |part: &&str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
    for (i, part) in parts.iter().enumerate() {
        let Some(millis) = Some(part)
            .filter(|p| p.len() == 13 && digits(p))
            .and_then(|p| p.parse::<u128>().ok())
        else {
            continue;
        };
        let next = parts.get(i + 1);
        if let Some(pid) = next.and_then(|p| p.strip_prefix('p')).filter(|p| digits(p))
            && parts.get(i + 2).is_some_and(digits)
        {
            return !Path::new(&format!("/proc/{pid}")).exists();
        }
        if next.is_some_and(digits) {
            return now_ms.saturating_sub(millis) > LEGACY_AGE_MS;
        }
    }
    false
}

/// Drops the replication slots (inactive), publications and databases of the stack's
/// PostgreSQL, and the scratch clusters, that tests of runs which have ended left behind (a
/// failed test does not clean up): a slot left behind pins WAL and takes one of the server's
/// few slots. What a running test (of this run or another) made is left alone.
pub fn drop_leftovers(stack: &Stack) {
    let now = now_millis();
    let config = stack.pg_config("postgres");
    let dropped = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let (sql, connection) = tokio_postgres::connect(&config, tokio_postgres::NoTls)
                .await
                .unwrap_or_else(|err| panic!("connecting to PostgreSQL (is the stack up?): {err}"));
            tokio::spawn(connection);
            let names = |rows: Vec<tokio_postgres::Row>| -> Vec<String> {
                rows.iter()
                    .map(|row| row.get::<_, String>(0))
                    .filter(|name| left_behind(name, now))
                    .collect()
            };
            let mut dropped = Vec::new();
            let slots = sql
                .query(
                    "SELECT slot_name::text FROM pg_replication_slots WHERE NOT active",
                    &[],
                )
                .await
                .unwrap();
            for slot in names(slots) {
                // It may have become active meanwhile: then it is not left behind.
                if sql
                    .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
                    .await
                    .is_ok()
                {
                    dropped.push(format!("slot {slot}"));
                }
            }
            // Publications of the stack's database, and databases of their own.
            for (kind, query, drop) in [
                (
                    "publication",
                    "SELECT pubname::text FROM pg_publication",
                    "DROP PUBLICATION IF EXISTS",
                ),
                (
                    "database",
                    "SELECT datname::text FROM pg_database WHERE datname <> current_database()",
                    "DROP DATABASE IF EXISTS",
                ),
            ] {
                for name in names(sql.query(query, &[]).await.unwrap()) {
                    let force = if kind == "database" {
                        " WITH (FORCE)"
                    } else {
                        ""
                    };
                    let statement = format!("{drop} \"{name}\"{force}");
                    if sql.batch_execute(&statement).await.is_ok() {
                        dropped.push(format!("{kind} {name}"));
                    }
                }
            }
            dropped
        })
    })
    .join()
    .expect("dropping what earlier runs left behind");
    let mut dropped = dropped;
    let scratch = stack.state_dir.join("scratch");
    for entry in std::fs::read_dir(&scratch).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if left_behind(&name, now) {
            scratch_down(&name);
            dropped.push(format!("scratch cluster {name}"));
        }
    }
    if !dropped.is_empty() {
        eprintln!(
            "dropped what ended test runs left behind: {}",
            dropped.join(", ")
        );
    }
}

fn scratch_down(name: &str) {
    let _ = std::process::Command::new(repo_root().join("deploy/local/stack"))
        .args(["scratch-down", name])
        .status();
}

/// A throwaway PostgreSQL 15 cluster with the stack's users and some settings of its own (from
/// `deploy/local/stack scratch-up`), for setups the shared server must not have. Removed when
/// dropped.
pub struct ScratchPg {
    name: String,
    pub port: u16,
}

impl ScratchPg {
    /// Starts a cluster named after `purpose`, on a port free at the time, with `settings`
    /// (`key=value`) added to its configuration. PostgreSQL binds its port itself: when another
    /// process took the port meanwhile, it tries again on another.
    pub fn up(purpose: &str, settings: &[&str]) -> ScratchPg {
        let name = unique_name(purpose);
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|listener| listener.local_addr())
                .expect("a free port")
                .port();
            let output = std::process::Command::new(repo_root().join("deploy/local/stack"))
                .args(["scratch-up", &name, &port.to_string()])
                .args(settings)
                .output()
                .expect("deploy/local/stack runs");
            if output.status.success() {
                return ScratchPg { name, port };
            }
            scratch_down(&name);
            let stderr = String::from_utf8_lossy(&output.stderr);
            let taken = ["could not bind", "already in use", "lock file"]
                .iter()
                .any(|said| stderr.contains(said));
            assert!(taken, "stack scratch-up {name} failed:\n{stderr}");
        }
        panic!("stack scratch-up {name}: every port tried was taken");
    }
}

impl ScratchPg {
    /// Stops the cluster in `mode` (`fast`, or `immediate`: a crash, recovered when it starts)
    /// and starts it again on the same port, waiting until it accepts connections.
    pub fn restart(&self, mode: &str) {
        let output = std::process::Command::new(repo_root().join("deploy/local/stack"))
            .args(["scratch-restart", &self.name, mode])
            .output()
            .expect("deploy/local/stack runs");
        assert!(
            output.status.success(),
            "stack scratch-restart {} {mode} failed:\n{}",
            self.name,
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        scratch_down(&self.name);
    }
}

#[cfg(test)]
mod tests {
    use super::left_behind;

    #[test]
    fn names_of_ended_processes_are_left_behind() {
        let now = 1_796_646_000_000;
        // This process runs; pid 0 is no process's.
        let mine = super::unique_name("crash_slot");
        assert!(!left_behind(&mine, now), "{mine}");
        assert!(left_behind("crash_slot_1796645000000_p0_2", now));
        assert!(left_behind("check_ok_1796645000000_p0_3_slot", now));
        // Legacy names, without the process: by their age.
        assert!(left_behind("crash_slot_1796640000000_2", now));
        assert!(!left_behind("crash_slot_1796645900000_2", now));
        // Not made by unique_name.
        assert!(!left_behind("sluice", now));
        assert!(!left_behind("walrep_slot", now));
        assert!(!left_behind("a_1796640000000", now));
    }
}
