//! Kafka Connect with Debezium's PostgreSQL connector, as `deploy/local/connect` installs and
//! runs it: where it is, and the settings a reader of the results needs to know.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::args::CompareArgs;
use super::kafka::LINGER_MS;

/// Where Connect is installed and run.
#[derive(Debug, Clone)]
pub(crate) struct Connect {
    /// `deploy/local/connect`.
    pub script: PathBuf,
    /// `deploy/local/connect.d/debezium-postgres.properties.template`.
    pub template: PathBuf,
    /// `$SLUICE_STATE_DIR/connect`: each worker's pid file.
    pub workers: PathBuf,
    pub settings: DebeziumSettings,
}

/// The Debezium settings a reader of the results needs to know.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct DebeziumSettings {
    /// What `deploy/local/connect install` installed (plugin versions).
    pub plugins: String,
    /// The worker's maximum heap (`SLUICE_CONNECT_HEAP`, the script's default 1g).
    pub heap: String,
    /// Connect's offset flush interval (set by `deploy/local/connect`): Debezium confirms the
    /// slot after a flush.
    pub offset_flush_interval_ms: u32,
    /// Debezium's defaults, left as they are.
    pub max_batch_size: u32,
    pub max_queue_size: u32,
    pub poll_interval_ms: u32,
    /// Producer settings given to the worker (`producer.override.*`).
    pub producer: Vec<(String, String)>,
    pub snapshot_max_threads: u32,
    pub partitions: i32,
}

impl Connect {
    /// Connect beside the stack, or None when its plugins are not installed and `install` is
    /// false (`start` installs them when missing).
    pub(crate) fn discover(
        deploy: &Path,
        state: &Path,
        cache: &Path,
        install: bool,
    ) -> Option<Connect> {
        let plugins = std::fs::read_to_string(cache.join("connect-plugins/.complete")).ok();
        if plugins.is_none() && !install {
            return None;
        }
        Some(Connect {
            script: deploy.join("connect"),
            template: deploy.join("connect.d/debezium-postgres.properties.template"),
            workers: state.join("connect"),
            settings: DebeziumSettings {
                plugins: plugins.map_or_else(
                    || "installed by the first start".to_owned(),
                    |p| p.trim().to_owned(),
                ),
                heap: std::env::var("SLUICE_CONNECT_HEAP").unwrap_or_else(|_| "1g".to_owned()),
                offset_flush_interval_ms: 1000,
                max_batch_size: 2048,
                max_queue_size: 8192,
                poll_interval_ms: 500,
                producer: Vec::new(),
                snapshot_max_threads: 0,
                partitions: 0,
            },
        })
    }

    /// Fills in what depends on the run's arguments.
    pub(crate) fn configure(&mut self, bench_args: &CompareArgs) {
        self.settings.snapshot_max_threads = bench_args.snapshot_parallelism;
        self.settings.partitions = bench_args.partitions;
        self.settings.producer = vec![
            ("acks".to_owned(), "all".to_owned()),
            ("enable.idempotence".to_owned(), "true".to_owned()),
            (
                "compression.type".to_owned(),
                bench_args.compression.clone(),
            ),
            ("linger.ms".to_owned(), LINGER_MS.to_string()),
        ];
    }
}
