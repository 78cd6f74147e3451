//! `sluice check`: the preflight. Connects to PostgreSQL, Kafka and the schema registry as
//! `sluice run` would and reports, item by item, whether each is ready, with the fix when not.
//!
//! It only reads: no slot, publication, topic or subject is created or changed, so it is safe
//! to run against production at any time. Every probe is bounded in time, so an unreachable
//! service costs seconds, not a hang.

mod features;
mod kafka;
mod postgres;
mod publication;
mod registry;
mod report;
mod server;
mod slot;
mod tables;

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use sluice_pipeline::catalog::CapturedTable;
use sluice_pipeline::config::{self, Config};
use sluice_pipeline::format;
use sluice_pipeline::naming::state_topic;
use sluice_pipeline::run::topic_of;

use self::kafka::check_kafka;
use self::postgres::check_postgres;
use self::registry::check_registry;
use self::report::Report;

/// Bound on connecting to PostgreSQL and on each query.
const PG_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `sluice check`.
#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The configuration file (TOML); `SLUICE_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Report format: one line per item, or one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Output {
    Human,
    Json,
}

/// Runs `sluice check`: exit 0 when every item is OK, 1 with warnings only, 2 with any
/// failure (a configuration that does not load included).
pub(crate) fn main(args: &CheckArgs) -> ExitCode {
    let config = match config::load(args.config.as_deref(), std::env::vars()) {
        Ok(config) => config,
        Err(err) => {
            let mut report = Report::default();
            report.fail(
                "configuration",
                err.to_string(),
                "correct the setting named (docs/configuration.md lists every key)",
            );
            report.print(args.output);
            return ExitCode::from(2);
        }
    };
    let runtime = match crate::runtime(2) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    let report = runtime.block_on(check(&config));
    report.print(args.output);
    // librdkafka's and the connections' threads are not waited for: everything is reported.
    runtime.shutdown_background();
    report.status().exit_code()
}

async fn check(config: &Config) -> Report {
    let mut report = Report::default();
    let tables = check_postgres(config, &mut report).await;
    let prefix = &config.kafka.topic_prefix;
    let mut topics: Vec<String> = tables
        .described
        .iter()
        .map(|table| topic_of(prefix, table))
        .collect();
    topics.push(state_topic(prefix));
    check_kafka(&config.kafka, &topics, &mut report).await;
    check_registry(config, tables.capturable.as_deref(), &mut report).await;
    report
}

/// What the PostgreSQL checks learnt about the chosen tables.
#[derive(Debug, Default)]
struct Tables {
    /// Every chosen table the catalog described, whether capturable or not.
    described: Vec<CapturedTable>,
    /// The tables as `sluice run` would capture them (its nullability rule applied), when all
    /// of them can be captured.
    capturable: Option<Vec<CapturedTable>>,
    /// The oids of the chosen tables the user owns (may put in a publication).
    owned: HashSet<u32>,
}

/// Awaits `future` for at most `limit`; a timeout and an error both become a message.
async fn bounded<T, E>(
    limit: Duration,
    future: impl Future<Output = Result<T, E>>,
    error: impl FnOnce(E) -> String,
) -> Result<T, String> {
    match tokio::time::timeout(limit, future).await {
        Ok(Ok(value)) => Ok(value),
        Ok(Err(err)) => Err(error(err)),
        Err(_) => Err(format!("no answer within {}", format::duration(limit))),
    }
}

/// Up to ten names, then how many more.
fn abbreviated(names: &[String]) -> String {
    const SHOWN: usize = 10;
    let mut text = names
        .iter()
        .take(SHOWN)
        .cloned()
        .collect::<Vec<_>>()
        .join(", ");
    if names.len() > SHOWN {
        text.push_str(&format!(" and {} more", names.len() - SHOWN));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_lists_are_cut() {
        let names: Vec<String> = (0..12).map(|i| format!("t{i}")).collect();
        assert_eq!(
            abbreviated(&names),
            "t0, t1, t2, t3, t4, t5, t6, t7, t8, t9 and 2 more"
        );
        assert_eq!(abbreviated(&names[..2]), "t0, t1");
    }
}
