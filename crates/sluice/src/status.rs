//! `sluice status`: where capture stands, read from PostgreSQL and Kafka only, so it answers
//! the same whether `sluice run` is running or not.

use std::collections::HashMap;
use std::fmt::Write as _;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use serde::Serialize;
use sluice_kafka::{KafkaConfig, TracingContext, client_config};
use sluice_pipeline::catalog;
use sluice_pipeline::config::Config;
use sluice_pipeline::connect::connect_primary;
use sluice_pipeline::describe;
use sluice_pipeline::format;
use sluice_pipeline::naming;
use sluice_pipeline::publication;
use sluice_pipeline::slot;
use sluice_pipeline::state::{self, SnapshotPhase, TablePhase};
use tokio_postgres::Client;

/// Bound on each Kafka round trip: a broker that is away fails the command in seconds.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(10);

/// Arguments of `sluice status`.
#[derive(Debug, clap::Args)]
pub(crate) struct StatusArgs {
    /// The configuration file (TOML); `SLUICE_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// `human`: aligned lines; `json`: one JSON document.
    #[arg(long, value_enum, default_value_t = Output::Human)]
    output: Output,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Output {
    Human,
    Json,
}

/// Runs `sluice status`: 0 when capture can go on from the slot, 1 when it cannot (no slot, an
/// invalidated one) or something could not be read, 2 for a bad configuration.
pub(crate) fn main(args: &StatusArgs) -> ExitCode {
    let (config, runtime) = match crate::configured_runtime(args.config.as_deref(), 1) {
        Ok(both) => both,
        Err(code) => return code,
    };
    let report = match runtime.block_on(gather(&config)) {
        Ok(report) => report,
        Err(message) => {
            eprintln!("error: {message}");
            return ExitCode::FAILURE;
        }
    };
    match args.output {
        Output::Human => {
            print!("{}", human(&report));
            for error in &report.errors {
                eprintln!("error: {error}");
            }
        }
        Output::Json => {
            match serde_json::to_string_pretty(&report) {
                Ok(json) => println!("{json}"),
                Err(err) => {
                    eprintln!("error: writing the report as JSON: {err}");
                    return ExitCode::FAILURE;
                }
            }
            // The document says it too; stderr is for whoever reads the terminal.
            for error in &report.errors {
                eprintln!("error: {error}");
            }
            if let Some(problem) = &report.problem {
                eprintln!("{problem}");
            }
        }
    }
    if report.problem.is_some() || !report.errors.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

/// Everything `status` shows, in the shape of its JSON document.
#[derive(Debug, Serialize)]
struct Report {
    slot: Slot,
    wal: Wal,
    lag: Lag,
    publication: Publication,
    snapshot: Snapshot,
    tables: Vec<Table>,
    /// Why capture cannot go on from here, and what to do; null when it can.
    problem: Option<String>,
    /// What is worth knowing but needs no action yet.
    warnings: Vec<String>,
    /// Parts that could not be read.
    errors: Vec<String>,
}

/// The replication slot as `pg_replication_slots` shows it.
#[derive(Debug, Serialize)]
pub(crate) struct Slot {
    pub(crate) name: String,
    pub(crate) exists: bool,
    pub(crate) database: Option<String>,
    pub(crate) plugin: Option<String>,
    pub(crate) active: bool,
    /// The walsender's process id on the database server, not sluice's.
    pub(crate) active_pid: Option<i32>,
    pub(crate) walsender: Option<Walsender>,
    pub(crate) confirmed_flush_lsn: Option<String>,
    pub(crate) restart_lsn: Option<String>,
    /// PostgreSQL 13 and later: reserved, extended, unreserved or lost.
    pub(crate) wal_status: Option<String>,
    /// PostgreSQL 13 and later, with max_slot_wal_keep_size set: WAL that may still be written
    /// before the slot is at risk of invalidation.
    pub(crate) safe_wal_size_bytes: Option<i64>,
    /// PostgreSQL 17 and later (16: `conflict with recovery` for a standby's slot).
    pub(crate) invalidation_reason: Option<String>,
    /// Whether PostgreSQL has invalidated it (`wal_status` lost, or an invalidation reason).
    #[serde(skip)]
    pub(crate) invalidated: bool,
    /// Whether the slot belongs to the configured database.
    #[serde(skip)]
    pub(crate) in_this_database: bool,
    #[serde(skip)]
    pub(crate) current_database: String,
}

impl Slot {
    /// Where the slot is, when it is not sluice's to use: another database's, or another
    /// plugin's.
    pub(crate) fn foreign(&self) -> Option<String> {
        if !self.exists {
            return None;
        }
        let database = self.database.as_deref().unwrap_or("none");
        let plugin = self.plugin.as_deref().unwrap_or("none");
        if !self.in_this_database {
            Some(format!(
                "replication slot {} belongs to database {database}, not {}: it is not this \
                 configuration's; choose another replication.slot",
                self.name, self.current_database
            ))
        } else if plugin != "pgoutput" {
            Some(format!(
                "replication slot {} uses the {plugin} plugin, not pgoutput: it is not sluice's; \
                 choose another replication.slot",
                self.name
            ))
        } else {
            None
        }
    }
}

/// The walsender streaming from the slot, from `pg_stat_replication`.
#[derive(Debug, Serialize)]
pub(crate) struct Walsender {
    pub(crate) application_name: Option<String>,
    pub(crate) client_addr: Option<String>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Wal {
    /// The server's current WAL position (on a standby, the last replayed one).
    current_lsn: Option<String>,
    /// WAL the server keeps for the slot: current position minus restart_lsn.
    retained_bytes: Option<i64>,
    /// WAL not yet confirmed: current position minus confirmed_flush_lsn.
    confirmed_lag_bytes: Option<i64>,
}

#[derive(Debug, Default, Serialize)]
pub(crate) struct Lag {
    /// `pg_stat_replication.replay_lag` of the slot's walsender: the time from the walsender
    /// sending recent changes to sluice confirming them (after the broker acknowledged them).
    /// Null while no walsender runs, and once sluice has been caught up for a while.
    replay_lag_ms: Option<i64>,
    /// How long ago sluice last sent a status update (`now() - reply_time`).
    last_status_ms_ago: Option<i64>,
    /// PostgreSQL 17 and later, slot inactive: how long ago sluice disconnected.
    inactive_for_ms: Option<i64>,
    /// The walsender runs but PostgreSQL shows its figures only to roles with
    /// pg_read_all_stats, which the configured user lacks.
    hidden_from: Option<String>,
}

#[derive(Debug, Serialize)]
struct Publication {
    name: String,
    exists: bool,
}

#[derive(Debug, Serialize)]
struct Snapshot {
    state_topic: String,
    /// none, started or complete; null when Kafka could not be read.
    phase: Option<&'static str>,
}

#[derive(Debug, Serialize)]
struct Table {
    table: String,
    topic: String,
    /// Null when Kafka could not be read.
    topic_exists: Option<bool>,
    /// The topic's end offsets summed over its partitions: every event (tombstones included)
    /// ever written to it. Null when the topic does not exist or Kafka could not be read.
    events: Option<i64>,
    /// The table's own snapshot as the state topic records it (running, complete, cancelled),
    /// rows produced so far; null without a record.
    snapshot: Option<TableSnapshot>,
}

#[derive(Debug, Serialize)]
struct TableSnapshot {
    phase: &'static str,
    rows: u64,
    /// The key the next chunk starts after (each key column's text), while running.
    after: Option<Vec<String>>,
}

async fn gather(config: &Config) -> Result<Report, String> {
    let (_, sql) = connect_primary(&config.postgres)
        .await
        .map_err(|e| e.to_string())?;
    let replication = &config.replication;
    let (slot, wal, lag) = read_slot(&sql, &replication.slot).await?;
    let publication = Publication {
        name: replication.publication.clone(),
        exists: publication_exists(&sql, &replication.publication).await?,
    };
    let prefix = &config.kafka.topic_prefix;
    let mut errors = Vec::new();
    let mut tables: Vec<Table> = match catalog::list_tables(&sql).await {
        Ok(tables) => tables
            .into_iter()
            .filter(|(_, schema, name, _)| config.tables.selects(schema, name))
            .map(|(_, schema, name, _)| Table {
                table: format!("{schema}.{name}"),
                topic: naming::table_topic(prefix, &schema, &name),
                topic_exists: None,
                events: None,
                snapshot: None,
            })
            .collect(),
        Err(err) => {
            errors.push(format!("listing the chosen tables: {err}"));
            Vec::new()
        }
    };

    let state_topic = naming::state_topic(prefix);
    let kafka_client = config.kafka.client_config();
    let mut phase = None;
    // librdkafka's calls block; this runtime runs nothing else meanwhile.
    let counted = tokio::task::block_in_place(|| {
        let kafka = Kafka::connect(&kafka_client)?;
        let topics = kafka.topics()?;
        for table in &mut tables {
            let partitions = topics.get(&table.topic);
            table.topic_exists = Some(partitions.is_some());
            if let Some(partitions) = partitions {
                table.events = Some(kafka.end_offsets(&table.topic, partitions)?);
            }
        }
        Ok::<_, String>(topics.contains_key(&state_topic))
    });
    match counted {
        // Absent, the topic holds no record: no need to wait on reading it.
        Ok(false) => phase = Some("none"),
        Ok(true) => match state::recorded(&kafka_client, &state_topic, &replication.slot).await {
            Ok(recorded) => {
                let point = recorded.slot.and_then(|s| s.consistent_point);
                let mut progress = recorded.tables_of(point);
                for table in &mut tables {
                    table.snapshot = progress.remove(&table.table).map(|p| TableSnapshot {
                        phase: p.snapshot.as_str(),
                        rows: p.rows,
                        after: p.after.filter(|_| p.snapshot == TablePhase::Running),
                    });
                }
                phase = Some(phase_name(recorded.slot.map(|s| s.phase)));
            }
            Err(err) => errors.push(format!("reading {state_topic}: {err}")),
        },
        Err(err) => errors.push(err),
    }

    let snapshot_due = config.snapshot.copies_tables();
    let problem = problem(snapshot_due, &slot);
    let warnings = warnings(snapshot_due, &slot, phase);
    Ok(Report {
        slot,
        wal,
        lag,
        publication,
        snapshot: Snapshot { state_topic, phase },
        tables,
        problem,
        warnings,
        errors,
    })
}

fn phase_name(phase: Option<SnapshotPhase>) -> &'static str {
    match phase {
        None => "none",
        Some(SnapshotPhase::Started) => "started",
        Some(SnapshotPhase::Complete) => "complete",
    }
}

/// Why capture cannot go on from the slot, with what to do (`snapshot_due`: a new slot's
/// tables are copied first).
fn problem(snapshot_due: bool, slot: &Slot) -> Option<String> {
    if !slot.exists {
        let next = if snapshot_due {
            "takes a new snapshot of the chosen tables"
        } else {
            "streams the changes made from then on (snapshot.mode = never)"
        };
        return Some(format!(
            "replication slot {} does not exist: `sluice run` creates it and {next}",
            slot.name
        ));
    }
    if let Some(foreign) = slot.foreign() {
        return Some(foreign);
    }
    if slot.invalidated {
        let reason = slot
            .invalidation_reason
            .as_deref()
            .map_or_else(|| "wal_status lost".to_owned(), |r| format!("reason {r}"));
        return Some(format!(
            "replication slot {} is invalidated ({reason}): PostgreSQL no longer keeps the WAL \
             it needs, so sluice cannot resume from it. Drop it with `sluice teardown` (keeping \
             the state topic), then `sluice run` takes a new snapshot and sends tombstones for \
             rows deleted meanwhile",
            slot.name
        ));
    }
    None
}

fn warnings(snapshot_due: bool, slot: &Slot, phase: Option<&str>) -> Vec<String> {
    let mut warnings = Vec::new();
    if slot.exists && !slot.active && !slot.invalidated {
        warnings.push(format!(
            "sluice is not connected to slot {}: the server keeps all WAL from its restart_lsn \
             on until sluice resumes; if sluice is retired, `sluice teardown` drops the slot",
            slot.name
        ));
    }
    if slot.wal_status.as_deref() == Some("unreserved") {
        warnings.push(format!(
            "replication slot {} holds more WAL than max_slot_wal_keep_size allows: the next \
             checkpoint invalidates it unless sluice catches up first",
            slot.name
        ));
    }
    let usable = slot.exists && slot.foreign().is_none() && !slot.invalidated;
    if usable && snapshot_due {
        match phase {
            Some("none") => warnings.push(format!(
                "no snapshot is recorded for slot {}: the next `sluice run` drops the slot and \
                 takes a snapshot",
                slot.name
            )),
            Some("started") if !slot.active => warnings.push(format!(
                "the snapshot from slot {} did not complete: the next `sluice run` takes it again",
                slot.name
            )),
            _ => {}
        }
    }
    warnings
}

/// The slot (by name, in any database, since slot names are cluster-wide), the WAL it holds
/// and the lag its walsender reports.
pub(crate) async fn read_slot(sql: &Client, name: &str) -> Result<(Slot, Wal, Lag), String> {
    let query =
        |what: &str, e: tokio_postgres::Error| format!("reading {what}: {}", describe::pg(&e));
    let facts = slot::read(sql, name)
        .await
        .map_err(|e| query("pg_replication_slots", e))?;
    let current_database: String = sql
        .query_one("SELECT current_database()::text", &[])
        .await
        .map_err(|e| query("the current database", e))?
        .get(0);
    let Some(facts) = facts else {
        let slot = Slot {
            name: name.to_owned(),
            exists: false,
            database: None,
            plugin: None,
            active: false,
            active_pid: None,
            walsender: None,
            confirmed_flush_lsn: None,
            restart_lsn: None,
            wal_status: None,
            safe_wal_size_bytes: None,
            invalidation_reason: None,
            invalidated: false,
            in_this_database: false,
            current_database,
        };
        return Ok((slot, Wal::default(), Lag::default()));
    };
    let mut lag = Lag {
        inactive_for_ms: if facts.active {
            None
        } else {
            facts.inactive_ms
        },
        ..Lag::default()
    };
    let mut walsender = None;
    if let Some(pid) = facts.active_pid {
        let sender = sql
            .query_opt(
                "SELECT r.application_name, host(r.client_addr),
                        (EXTRACT(EPOCH FROM r.replay_lag) * 1000)::bigint,
                        (EXTRACT(EPOCH FROM now() - (to_jsonb(r) ->> 'reply_time')::timestamptz)
                           * 1000)::bigint,
                        CASE WHEN r.sent_lsn IS NULL THEN current_user::text END
                   FROM pg_stat_replication r WHERE r.pid = $1",
                &[&pid],
            )
            .await
            .map_err(|e| query("pg_stat_replication", e))?;
        if let Some(sender) = sender {
            walsender = Some(Walsender {
                application_name: sender.get(0),
                client_addr: sender.get(1),
            });
            lag.replay_lag_ms = sender.get(2);
            lag.last_status_ms_ago = sender.get(3);
            lag.hidden_from = sender.get(4);
        }
    }
    let wal = Wal {
        current_lsn: facts.current_lsn.map(|lsn| lsn.to_string()),
        retained_bytes: facts.retained_bytes,
        confirmed_lag_bytes: facts.lag_bytes,
    };
    let slot = Slot {
        name: name.to_owned(),
        exists: true,
        invalidated: facts.invalidated(),
        database: facts.database,
        plugin: facts.plugin,
        active: facts.active,
        active_pid: facts.active_pid,
        walsender,
        confirmed_flush_lsn: facts.confirmed_flush_lsn.map(|lsn| lsn.to_string()),
        restart_lsn: facts.restart_lsn.map(|lsn| lsn.to_string()),
        wal_status: facts.wal_status,
        safe_wal_size_bytes: facts.safe_wal_size,
        invalidation_reason: facts.invalidation,
        in_this_database: facts.in_current_database,
        current_database,
    };
    Ok((slot, wal, lag))
}

pub(crate) async fn publication_exists(sql: &Client, name: &str) -> Result<bool, String> {
    let found = publication::read(sql, name)
        .await
        .map_err(|e| format!("reading the publication: {}", describe::pg(&e)))?;
    Ok(found.is_some())
}

/// A plain Kafka client for metadata and offsets: it joins no group and commits nothing.
pub(crate) struct Kafka {
    consumer: BaseConsumer<TracingContext>,
    bootstrap_servers: String,
}

impl Kafka {
    pub(crate) fn connect(config: &KafkaConfig) -> Result<Kafka, String> {
        let mut client = client_config(config);
        // librdkafka wants a group for a consumer even when it only asks for metadata.
        client
            .set("group.id", "sluice-status")
            .set("enable.auto.commit", "false");
        let consumer = BaseConsumer::from_config_and_context(&client, TracingContext)
            .map_err(|err| format!("creating the Kafka client: {err}"))?;
        Ok(Kafka {
            consumer,
            bootstrap_servers: config.bootstrap_servers.clone(),
        })
    }

    /// Every existing topic with its partition ids, from one metadata request.
    pub(crate) fn topics(&self) -> Result<HashMap<String, Vec<i32>>, String> {
        let metadata = self
            .consumer
            .fetch_metadata(None, KAFKA_TIMEOUT)
            .map_err(|err| self.unreachable(&err))?;
        Ok(metadata
            .topics()
            .iter()
            .filter(|topic| topic.error().is_none())
            .map(|topic| {
                let partitions = topic.partitions().iter().map(|p| p.id()).collect();
                (topic.name().to_owned(), partitions)
            })
            .collect())
    }

    /// The sum of the partitions' high watermarks: how many offsets were ever assigned, which
    /// retention and compaction do not lower.
    fn end_offsets(&self, topic: &str, partitions: &[i32]) -> Result<i64, String> {
        let mut sum = 0;
        for &partition in partitions {
            let (_, high) = self
                .consumer
                .fetch_watermarks(topic, partition, KAFKA_TIMEOUT)
                .map_err(|err| self.unreachable(&err))?;
            sum += high;
        }
        Ok(sum)
    }

    fn unreachable(&self, err: &rdkafka::error::KafkaError) -> String {
        format!(
            "cannot read from Kafka at {} (kafka.bootstrap_servers): {err}; is the broker \
             running and the address right?",
            self.bootstrap_servers
        )
    }
}

/// The report as aligned `name  value` lines, then the problem, warnings.
fn human(report: &Report) -> String {
    let mut rows: Vec<(String, String)> = Vec::new();
    let mut row = |name: &str, value: String| rows.push((name.to_owned(), value));
    let slot = &report.slot;
    if slot.exists {
        row(
            "replication slot",
            format!(
                "{} ({} plugin, database {})",
                slot.name,
                slot.plugin.as_deref().unwrap_or("no"),
                slot.database.as_deref().unwrap_or("none")
            ),
        );
        row("  state", slot_state(slot, &report.lag));
        if let Some(status) = &slot.wal_status {
            let mut value = status.clone();
            if let Some(reason) = &slot.invalidation_reason {
                let _ = write!(value, " (invalidated: {reason})");
            }
            if let Some(safe) = slot.safe_wal_size_bytes {
                let _ = write!(
                    value,
                    "; {} more before it is at risk",
                    format::bytes_exact(safe)
                );
            }
            row("  wal_status", value);
        }
        row("  confirmed_flush_lsn", or_none(&slot.confirmed_flush_lsn));
        row("  restart_lsn", or_none(&slot.restart_lsn));
        let wal = &report.wal;
        row(
            "WAL retained",
            format!(
                "{}, from restart_lsn to the server's position {}",
                wal.retained_bytes
                    .map_or_else(|| "unknown".to_owned(), format::bytes_exact),
                or_none(&wal.current_lsn)
            ),
        );
        row(
            "confirmed lag",
            format!(
                "{} of WAL past confirmed_flush_lsn",
                wal.confirmed_lag_bytes
                    .map_or_else(|| "unknown".to_owned(), format::bytes_exact)
            ),
        );
        row("lag (time)", time_lag(slot, &report.lag));
    } else {
        row("replication slot", format!("{}: does not exist", slot.name));
    }
    let publication = &report.publication;
    row(
        "publication",
        if publication.exists {
            publication.name.clone()
        } else {
            format!("{}: does not exist", publication.name)
        },
    );
    row(
        "snapshot",
        match report.snapshot.phase {
            Some("none") => format!("none (no record in {})", report.snapshot.state_topic),
            Some(phase) => format!("{phase} (recorded in {})", report.snapshot.state_topic),
            None => format!("unknown ({} not read)", report.snapshot.state_topic),
        },
    );
    let chosen = report.tables.len();
    row(
        "tables",
        if report.tables.iter().any(|t| t.topic_exists.is_none()) {
            format!("{chosen} chosen")
        } else {
            let total: i64 = report.tables.iter().filter_map(|t| t.events).sum();
            format!("{chosen} chosen, {total} events written to their topics")
        },
    );

    let width = rows
        .iter()
        .map(|(name, _)| name.chars().count())
        .max()
        .unwrap_or(0);
    let mut out = String::new();
    for (name, value) in &rows {
        let _ = writeln!(out, "{name:<width$}  {value}");
    }
    // Under the other lines' values where the names fit; else a block of their own, so that one
    // long name does not push every line right.
    let name_width = report
        .tables
        .iter()
        .map(|t| t.table.chars().count())
        .max()
        .unwrap_or(0)
        .max(width.saturating_sub(2));
    let events: Vec<String> = report
        .tables
        .iter()
        .map(|t| match (t.topic_exists, t.events) {
            (None, _) => "unknown".to_owned(),
            (Some(false), _) => "no topic yet".to_owned(),
            (Some(true), events) => format!("{} events", events.unwrap_or(0)),
        })
        .collect();
    let events_width = events.iter().map(String::len).max().unwrap_or(0);
    for (table, events) in report.tables.iter().zip(&events) {
        let snapshot = match &table.snapshot {
            None => String::new(),
            Some(s) if s.phase == "complete" && s.rows == 0 => "  snapshot complete".to_owned(),
            Some(s) => match &s.after {
                Some(after) => format!(
                    "  snapshot {}: {} rows, next after ({})",
                    s.phase,
                    s.rows,
                    after.join(", ")
                ),
                None => format!("  snapshot {}: {} rows", s.phase, s.rows),
            },
        };
        let _ = writeln!(
            out,
            "  {:<name_width$}  {events:>events_width$}  {}{snapshot}",
            table.table, table.topic
        );
    }
    for warning in &report.warnings {
        let _ = writeln!(out, "warning: {warning}");
    }
    if let Some(problem) = &report.problem {
        let _ = writeln!(out, "{problem}");
    }
    out
}

fn slot_state(slot: &Slot, lag: &Lag) -> String {
    if !slot.active {
        return match lag.inactive_for_ms {
            Some(ms) => format!(
                "inactive for {}: sluice is not connected",
                format::millis(ms)
            ),
            None => "inactive: sluice is not connected".to_owned(),
        };
    }
    let pid = slot
        .active_pid
        .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
    match &slot.walsender {
        Some(sender) => format!(
            "active, walsender pid {pid} on the server (application {}, client {})",
            sender.application_name.as_deref().unwrap_or("unknown"),
            sender.client_addr.as_deref().unwrap_or("local socket")
        ),
        None => format!("active, walsender pid {pid} on the server"),
    }
}

fn time_lag(slot: &Slot, lag: &Lag) -> String {
    if !slot.active {
        return "unknown while sluice is not connected".to_owned();
    }
    if let Some(role) = &lag.hidden_from {
        return format!(
            "unknown: PostgreSQL shows it only to roles with pg_read_all_stats \
             (GRANT pg_read_all_stats TO {role})"
        );
    }
    let mut text = match lag.replay_lag_ms {
        Some(ms) => format!("{} (replay_lag)", format::millis(ms)),
        None => "none (replay_lag null: sluice had confirmed all it was sent)".to_owned(),
    };
    if let Some(ms) = lag.last_status_ms_ago {
        let _ = write!(text, "; last status from sluice {} ago", format::millis(ms));
    }
    text
}

fn or_none(value: &Option<String>) -> String {
    value.clone().unwrap_or_else(|| "none".to_owned())
}
