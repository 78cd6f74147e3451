//! `sluice snapshot`: asks the sluice streaming from the configured slot to snapshot tables
//! again (or to stop their snapshot), through a logical decoding message it reads from its own
//! stream. Nothing else is needed: no signal table, no port to reach.

use std::path::PathBuf;
use std::process::ExitCode;

use sluice_pipeline::config::Config;
use sluice_pipeline::connect::connect_primary;
use sluice_pipeline::describe;
use sluice_pipeline::incremental::{SIGNAL_PREFIX, Signal};

/// Arguments of `sluice snapshot`.
#[derive(Debug, clap::Args)]
pub(crate) struct SnapshotArgs {
    /// The configuration file (TOML); `SLUICE_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Stop the tables' snapshots where they are instead of starting them.
    #[arg(long)]
    cancel: bool,
    /// Captured tables, as `schema.table`.
    #[arg(required = true, value_name = "TABLE")]
    tables: Vec<String>,
}

/// Runs `sluice snapshot`: 0 once the request is committed, 1 when refused or failed, 2 for a
/// bad configuration.
pub(crate) fn main(args: &SnapshotArgs) -> ExitCode {
    let (config, runtime) = match crate::configured_runtime(args.config.as_deref(), 1) {
        Ok(both) => both,
        Err(code) => return code,
    };
    match runtime.block_on(signal(&config, args)) {
        Ok(()) => {
            let what = if args.cancel { "stop" } else { "snapshot" };
            println!(
                "asked the sluice streaming slot {} to {what}: {}",
                config.replication.slot,
                args.tables.join(", ")
            );
            println!(
                "it acts once it streams to this request; `sluice status` shows each table's progress"
            );
            ExitCode::SUCCESS
        }
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn signal(config: &Config, args: &SnapshotArgs) -> Result<(), String> {
    let (_, sql) = connect_primary(&config.postgres)
        .await
        .map_err(|e| e.to_string())?;
    for table in &args.tables {
        let Some((schema, name)) = table.split_once('.') else {
            return Err(format!("{table}: name a table as schema.table"));
        };
        if !config.tables.selects(schema, name) {
            return Err(format!(
                "{table} is not in the selection (tables.include / tables.exclude): sluice does \
                 not capture it, so it cannot snapshot it"
            ));
        }
        let found = sql
            .query_opt(
                "SELECT 1 FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
                  WHERE n.nspname = $1 AND c.relname = $2 AND c.relkind IN ('r', 'p')",
                &[&schema, &name],
            )
            .await
            .map_err(|e| format!("looking up {table}: {}", describe::pg(&e)))?;
        if found.is_none() {
            return Err(format!(
                "{table}: no such table in database {}",
                config.postgres.database
            ));
        }
    }
    let request = Signal {
        slot: config.replication.slot.clone(),
        snapshot: if args.cancel {
            Vec::new()
        } else {
            args.tables.clone()
        },
        cancel: if args.cancel {
            args.tables.clone()
        } else {
            Vec::new()
        },
    };
    let content = serde_json::to_string(&request).map_err(|e| e.to_string())?;
    sql.execute(
        "SELECT pg_logical_emit_message(true, $1, $2)",
        &[&SIGNAL_PREFIX, &content],
    )
    .await
    .map_err(|e| {
        format!(
            "writing the request (a logical decoding message, which needs a primary and \
             PostgreSQL 14 or later): {}",
            describe::pg(&e)
        )
    })?;
    Ok(())
}
