//! Kafka Connect workers of `deploy/local/connect` (Debezium's connectors, Apicurio's Avro
//! converter), started and stopped from tests.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    missing_debug_implementations
)]

use std::path::PathBuf;
use std::process::Command;

use crate::{Stack, repo_root};

fn connect(args: &[&str]) -> Command {
    let mut command = Command::new(repo_root().join("deploy/local/connect"));
    command.args(args);
    command
}

/// A running worker. Dropping it without [`ConnectWorker::stop_and_forget`] (a failing test)
/// stops it and keeps its log.
pub struct ConnectWorker {
    name: String,
    port: u16,
    log: PathBuf,
    running: bool,
}

impl ConnectWorker {
    /// `deploy/local/connect start NAME FILE...` with `env` added to the environment (a
    /// template's `@VAR@`s); returns once every connector and task is RUNNING, panics with
    /// the script's output if one failed (the script has stopped the worker then). The stack's
    /// PostgreSQL and registry are set explicitly, whatever the caller's environment holds.
    pub fn start(stack: &Stack, name: &str, files: &[&str], env: &[(&str, &str)]) -> Self {
        let registry = stack
            .registry_url
            .replace("/apis/ccompat/v7", "/apis/registry/v2");
        let port = stack.pg_port.to_string();
        let mut command = connect(&["start", name]);
        command
            .args(files.iter().map(|file| repo_root().join(file)))
            .envs([
                ("PG_HOST", "127.0.0.1"),
                ("PG_PORT", &port),
                ("PG_USER", "sluice"),
                ("PG_PASSWORD", "sluice"),
                ("REGISTRY_URL", &registry),
            ])
            .envs(env.iter().copied());
        let output = command.output().expect("deploy/local/connect runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprint!("{stderr}");
        assert!(
            output.status.success(),
            "connect start {name} failed:\n{stderr}"
        );
        let worker_dir = stack.state_dir.join("connect").join(name);
        let port = std::fs::read_to_string(worker_dir.join("port")).unwrap();
        ConnectWorker {
            name: name.to_owned(),
            port: port.trim().parse().unwrap(),
            log: stack.state_dir.join(format!("logs/connect-{name}.log")),
            running: true,
        }
    }

    /// The first lines of each FAILED connector's or task's trace, from the worker's REST API.
    pub fn failures(&self) -> Vec<String> {
        let url = format!("http://127.0.0.1:{}/connectors?expand=status", self.port);
        let Ok(output) = Command::new("curl")
            .args(["-fsS", "-m", "5", &url])
            .output()
        else {
            return Vec::new();
        };
        let Ok(connectors) = serde_json::from_slice::<serde_json::Value>(&output.stdout) else {
            return Vec::new();
        };
        let mut failures = Vec::new();
        for (connector, info) in connectors.as_object().into_iter().flatten() {
            let status = &info["status"];
            let tasks = status["tasks"].as_array().into_iter().flatten();
            for state in std::iter::once(&status["connector"]).chain(tasks) {
                if state["state"] == "FAILED" {
                    let trace = state["trace"].as_str().unwrap_or_default();
                    let head: Vec<&str> = trace.lines().take(8).collect();
                    failures.push(format!("{connector}: {}", head.join("\n")));
                }
            }
        }
        failures
    }

    /// Stops the worker, then deletes its offsets, configuration and logs (`connect forget`).
    pub fn stop_and_forget(mut self) {
        self.stop();
        let status = connect(&["forget", &self.name]).status().unwrap();
        assert!(status.success(), "connect forget {} failed", self.name);
    }

    fn stop(&mut self) {
        if std::mem::take(&mut self.running) {
            let status = connect(&["stop", &self.name]).status().unwrap();
            assert!(status.success(), "connect stop {} failed", self.name);
        }
    }
}

impl Drop for ConnectWorker {
    fn drop(&mut self) {
        if self.running {
            self.running = false;
            let _ = connect(&["stop", &self.name]).status();
            eprintln!("worker {}'s log: {}", self.name, self.log.display());
        }
    }
}
