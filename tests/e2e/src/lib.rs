//! Shared support for sluice's end-to-end tests: where the local stack's services listen
//! (read from `deploy/local/stack.env`, the one place the stack's settings are written) and
//! names that keep concurrently running tests out of each other's way.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::collections::{BTreeMap, HashMap};
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

/// The environment variable that picks the PostgreSQL major the tests run on (`stack.pg_port`,
/// [`ScratchPg::up`]): `SLUICE_TEST_PG_MAJOR=18`. Without it, the stack's `PG_MAJOR` (15).
pub const TEST_PG_MAJOR_VAR: &str = "SLUICE_TEST_PG_MAJOR";

/// Every PostgreSQL major of the local stack and the port its server listens on: `PG_MAJOR`
/// (Debian's, started by `stack up`) and each of `PG_MATRIX_MAJORS` (`PG<major>_PORT`, started
/// by `stack up --pg-matrix`).
pub fn stack_pg_ports() -> BTreeMap<u32, u16> {
    let env = stack_env();
    let get = |key: &str| {
        env.get(key)
            .unwrap_or_else(|| panic!("stack.env has no {key}"))
            .clone()
    };
    let major = |text: &str| -> u32 {
        text.trim()
            .parse()
            .unwrap_or_else(|_| panic!("stack.env: {text:?} is not a PostgreSQL major"))
    };
    let port = |key: &str| -> u16 {
        get(key)
            .parse()
            .unwrap_or_else(|_| panic!("stack.env: {key} is not a port"))
    };
    let mut ports = BTreeMap::from([(major(&get("PG_MAJOR")), port("PG_PORT"))]);
    for text in get("PG_MATRIX_MAJORS").split(',') {
        let major = major(text);
        ports.insert(major, port(&format!("PG{major}_PORT")));
    }
    ports
}

/// The PostgreSQL major the tests run on: that of [`TEST_PG_MAJOR_VAR`], else the stack's
/// `PG_MAJOR`. Panics when the variable names a major the stack does not have.
pub fn test_pg_major() -> u32 {
    let ports = stack_pg_ports();
    let Some(wanted) = std::env::var_os(TEST_PG_MAJOR_VAR) else {
        let env = stack_env();
        return env["PG_MAJOR"].parse().expect("PG_MAJOR is a major");
    };
    let wanted = wanted.to_string_lossy();
    let major = wanted
        .trim()
        .parse::<u32>()
        .ok()
        .filter(|m| ports.contains_key(m));
    major.unwrap_or_else(|| {
        panic!(
            "{TEST_PG_MAJOR_VAR}={wanted}: the stack's PostgreSQL majors are {:?}",
            ports.keys().collect::<Vec<_>>()
        )
    })
}

/// Connection settings of the running local stack.
#[derive(Clone)]
pub struct Stack {
    /// The port of the PostgreSQL the tests run on: that of [`Stack::pg_major`].
    pub pg_port: u16,
    /// The PostgreSQL major the tests run on ([`test_pg_major`]): 15 unless
    /// `SLUICE_TEST_PG_MAJOR` names another. Tests whose outcome depends on the major assert
    /// each major's outcome by it; none skips.
    pub pg_major: u32,
    /// Every PostgreSQL major of the stack and its port ([`stack_pg_ports`]); all but 15 run
    /// after `deploy/local/stack up --pg-matrix`.
    pub pg_ports: BTreeMap<u32, u16>,
    /// PostgreSQL 17's port (`stack up --pg-matrix`), the one matrix major before there were
    /// more: [`Stack::pg_port_of`] gives any major's.
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
        let pg_ports = stack_pg_ports();
        let pg_major = test_pg_major();
        Stack {
            pg_port: pg_ports[&pg_major],
            pg_major,
            pg_matrix_port: *pg_ports.get(&17).expect("stack.env has PostgreSQL 17"),
            pg_ports,
            pg_database: get("PG_DATABASE"),
            kafka_bootstrap: format!("127.0.0.1:{}", get("KAFKA_PORT")),
            registry_url: format!("http://127.0.0.1:{}/apis/ccompat/v7", get("REGISTRY_PORT")),
            state_dir,
        }
    }

    /// The port of the stack's PostgreSQL `major` (all but 15 after `stack up --pg-matrix`).
    pub fn pg_port_of(&self, major: u32) -> u16 {
        *self.pg_ports.get(&major).unwrap_or_else(|| {
            panic!(
                "the stack has no PostgreSQL {major}: its majors are {:?} (stack.env)",
                self.pg_ports.keys().collect::<Vec<_>>()
            )
        })
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
                panic!(
                    "connecting to PostgreSQL as {user} ({config}; is the stack up? \
                     majors other than 15 need `deploy/local/stack up --pg-matrix`): {err}"
                )
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

/// A throwaway PostgreSQL cluster with the stack's users and some settings of its own (from
/// `deploy/local/stack scratch-up`), for setups the shared server must not have; or a physical
/// standby of one (`scratch-standby`). Removed when dropped (a standby also drops its slot on
/// its primary then: drop a standby before its primary, as declaring it later does).
pub struct ScratchPg {
    name: String,
    pub port: u16,
    /// Its PostgreSQL major.
    pub major: u32,
}

impl ScratchPg {
    /// Starts a cluster of the major the tests run on ([`test_pg_major`]) named after
    /// `purpose`, on a port free at the time, with `settings` (`key=value`) added to its
    /// configuration. PostgreSQL binds its port itself: when another process took the port
    /// meanwhile, it tries again on another.
    pub fn up(purpose: &str, settings: &[&str]) -> ScratchPg {
        Self::up_major(purpose, test_pg_major(), settings)
    }

    /// Like [`ScratchPg::up`], of PostgreSQL `major` (one of stack.env's; the script fetches
    /// its binaries when `stack up --pg-matrix` has not).
    pub fn up_major(purpose: &str, major: u32, settings: &[&str]) -> ScratchPg {
        let name = unique_name(purpose);
        let port = start_scratch(&name, |port| {
            let mut args = vec!["scratch-up".to_owned(), name.clone(), port.to_string()];
            args.extend(["--major".to_owned(), major.to_string()]);
            args.extend(settings.iter().map(|s| (*s).to_owned()));
            args
        });
        ScratchPg { name, port, major }
    }

    /// A physical standby of this cluster (which must run), named after `purpose`: a base
    /// backup, streaming through a physical slot on this cluster named as the standby is
    /// ([`ScratchPg::name`]), with `primary_conninfo` (including `dbname=postgres`, for
    /// PostgreSQL 17's slot sync), `hot_standby_feedback=on` and `settings` (`key=value`, e.g.
    /// `sync_replication_slots=on`). Returns once this cluster shows it streaming. `purpose`
    /// must be lower case, digits and `_`, short enough for a slot name with the unique suffix.
    pub fn standby_of(&self, purpose: &str, settings: &[&str]) -> ScratchPg {
        let name = unique_name(purpose);
        assert!(
            name.len() <= 63
                && name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "a standby's name is its slot's: {name:?} is not a slot name (a-z, 0-9, _, at most 63)"
        );
        let port = start_scratch(&name, |port| {
            let mut args = vec![
                "scratch-standby".to_owned(),
                name.clone(),
                self.name.clone(),
                port.to_string(),
            ];
            args.extend(settings.iter().map(|s| (*s).to_owned()));
            args
        });
        ScratchPg {
            name,
            port,
            major: self.major,
        }
    }

    /// Promotes this standby (`pg_ctl promote`) and waits until it is out of recovery.
    pub fn promote(&self) {
        stack_command(&["scratch-promote", &self.name]);
    }

    /// Its name: the scratch cluster's, and a standby's physical slot on its primary (and its
    /// `application_name` there, in `pg_stat_replication`).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Stops the cluster in `mode` (`fast`, or `immediate`: as a crash of its machine) and
    /// leaves it stopped.
    pub fn stop(&self, mode: &str) {
        stack_command(&["scratch-stop", &self.name, mode]);
    }

    /// Stops the cluster in `mode` (`fast`, or `immediate`: a crash, recovered when it starts)
    /// and starts it again on the same port, waiting until it accepts connections.
    pub fn restart(&self, mode: &str) {
        stack_command(&["scratch-restart", &self.name, mode]);
    }
}

/// Runs `deploy/local/stack` with `args` on ports free at the time until PostgreSQL could bind
/// one (5 tries); returns the port. A failure for another reason panics with the script's
/// output.
fn start_scratch(name: &str, args: impl Fn(u16) -> Vec<String>) -> u16 {
    for _ in 0..5 {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
            .port();
        let args = args(port);
        let output = std::process::Command::new(repo_root().join("deploy/local/stack"))
            .args(&args)
            .output()
            .expect("deploy/local/stack runs");
        if output.status.success() {
            return port;
        }
        scratch_down(name);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let taken = ["could not bind", "already in use", "lock file"]
            .iter()
            .any(|said| stderr.contains(said));
        assert!(taken, "stack {} failed:\n{stderr}", args.join(" "));
    }
    panic!("stack scratch cluster {name}: every port tried was taken");
}

/// Runs `deploy/local/stack` with `args`, panicking with its output when it fails.
fn stack_command(args: &[&str]) {
    let output = std::process::Command::new(repo_root().join("deploy/local/stack"))
        .args(args)
        .output()
        .expect("deploy/local/stack runs");
    assert!(
        output.status.success(),
        "stack {} failed:\n{}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
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
