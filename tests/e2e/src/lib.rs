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
    pub fn from_env() -> Self {
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

    /// A CA that signed nothing the stack serves.
    pub fn unrelated_ca_cert(&self) -> PathBuf {
        self.state_dir.join("tls/other-ca.crt")
    }

    /// The directory of PostgreSQL's Unix socket.
    pub fn pg_socket_dir(&self) -> PathBuf {
        self.state_dir.join("run")
    }
}

/// A name no other test of this run or of an earlier run uses: `prefix_<time>_<counter>`.
pub fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970")
        .as_millis();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}_{millis}_{n}")
}

/// A throwaway PostgreSQL 15 cluster with the stack's users and some settings of its own (from
/// `deploy/local/stack scratch-up`), for setups the shared server must not have. Removed when
/// dropped.
pub struct ScratchPg {
    name: String,
    pub port: u16,
}

impl ScratchPg {
    /// Starts cluster `name` on `port` with `settings` (`key=value`) added to its configuration.
    pub fn up(name: &str, port: u16, settings: &[&str]) -> ScratchPg {
        let status = std::process::Command::new(repo_root().join("deploy/local/stack"))
            .args(["scratch-up", name, &port.to_string()])
            .args(settings)
            .status()
            .expect("deploy/local/stack runs");
        assert!(status.success(), "stack scratch-up {name} failed");
        ScratchPg {
            name: name.to_owned(),
            port,
        }
    }
}

impl Drop for ScratchPg {
    fn drop(&mut self) {
        let _ = std::process::Command::new(repo_root().join("deploy/local/stack"))
            .args(["scratch-down", &self.name])
            .status();
    }
}
