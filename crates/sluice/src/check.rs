//! `sluice check`: the preflight. Connects to PostgreSQL, Kafka and the schema registry as
//! `sluice run` would and reports, item by item, whether each is ready, with the fix when not.
//!
//! It only reads: no slot, publication, topic or subject is created or changed, so it is safe
//! to run against production at any time. Every probe is bounded in time, so an unreachable
//! service costs seconds, not a hang.

use std::collections::HashSet;
use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigResourceResult, ResourceSpecifier};
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::error::RDKafkaErrorCode;
use secrecy::ExposeSecret;
use serde::Serialize;
use sluice_avro::{Method, Registry, StatusCode, TableCodec};
use sluice_kafka::{KafkaError, Producer, TracingContext, client_config};
use sluice_pipeline::catalog::{self, CapturedTable, quote_ident, quote_literal};
use sluice_pipeline::config::{self, Config};
use sluice_pipeline::run::{Settings, choose_tables, sql_tls, topic_of};
use sluice_pipeline::state::state_topic;
use sluice_postgres::{ReplicationConnection, ServerError};
use tokio_postgres::Client;

/// Bound on connecting to PostgreSQL and on each query.
const PG_TIMEOUT: Duration = Duration::from_secs(10);
/// Bound on each Kafka round trip (metadata, configs).
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);
/// Bound on each registry request.
const REGISTRY_TIMEOUT: Duration = Duration::from_secs(5);

/// Server versions, as `server_version_num` counts them.
const PG_10: i32 = 100_000;
const PG_13: i32 = 130_000;
const PG_14: i32 = 140_000;
const PG_16: i32 = 160_000;
const PG_17: i32 = 170_000;

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

/// Ordered so that the worst status of a report is its maximum.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

impl Status {
    fn label(self) -> &'static str {
        match self {
            Status::Ok => "OK",
            Status::Warn => "WARN",
            Status::Fail => "FAIL",
        }
    }

    fn exit_code(self) -> ExitCode {
        match self {
            Status::Ok => ExitCode::SUCCESS,
            Status::Warn => ExitCode::from(1),
            Status::Fail => ExitCode::from(2),
        }
    }
}

/// One finding: what was checked, how it stands, what was found, and what to do about it.
#[derive(Debug, Serialize)]
struct Item {
    item: String,
    status: Status,
    detail: String,
    fix: Option<String>,
}

/// The findings, in the order they were made.
#[derive(Debug, Default)]
struct Report {
    items: Vec<Item>,
}

impl Report {
    fn push(&mut self, status: Status, item: &str, detail: String, fix: Option<String>) {
        self.items.push(Item {
            item: item.to_owned(),
            status,
            detail,
            fix,
        });
    }

    fn ok(&mut self, item: &str, detail: impl Into<String>) {
        self.push(Status::Ok, item, detail.into(), None);
    }

    fn warn(&mut self, item: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Warn, item, detail.into(), Some(fix.into()));
    }

    fn fail(&mut self, item: &str, detail: impl Into<String>, fix: impl Into<String>) {
        self.push(Status::Fail, item, detail.into(), Some(fix.into()));
    }

    /// Adds the findings of `part`, about many things of one kind: each problem as its own
    /// item, everything fine as one item `item` (described by `summary`), so that a database
    /// with hundreds of tables still reads in a screen.
    fn summarize(&mut self, item: &str, part: Report, summary: impl FnOnce(&[Item]) -> String) {
        let (fine, problems): (Vec<Item>, Vec<Item>) = part
            .items
            .into_iter()
            .partition(|item| item.status == Status::Ok);
        if !fine.is_empty() {
            self.ok(item, summary(&fine));
        }
        self.items.extend(problems);
    }

    fn status(&self) -> Status {
        self.items
            .iter()
            .map(|item| item.status)
            .max()
            .unwrap_or(Status::Ok)
    }

    fn print(&self, output: Output) {
        match output {
            Output::Json => {
                #[derive(Serialize)]
                struct Document<'a> {
                    items: &'a [Item],
                    status: Status,
                }
                let document = Document {
                    items: &self.items,
                    status: self.status(),
                };
                match serde_json::to_string_pretty(&document) {
                    Ok(text) => println!("{text}"),
                    Err(err) => eprintln!("error: writing the report as JSON: {err}"),
                }
            }
            Output::Human => {
                for item in &self.items {
                    let mut line =
                        format!("{:<4}  {}: {}", item.status.label(), item.item, item.detail);
                    if let Some(fix) = &item.fix {
                        line.push_str(" -- fix: ");
                        line.push_str(fix);
                    }
                    println!("{line}");
                }
                let count = |status| self.items.iter().filter(|i| i.status == status).count();
                println!(
                    "{}: {} ok, {} warning(s), {} failure(s)",
                    self.status().label(),
                    count(Status::Ok),
                    count(Status::Warn),
                    count(Status::Fail)
                );
            }
        }
    }
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
    let settings = Settings::from_config(config);
    let mut report = Report::default();
    let tables = check_postgres(&settings, &mut report).await;
    let mut topics: Vec<String> = tables
        .described
        .iter()
        .map(|table| topic_of(&settings, table))
        .collect();
    topics.push(state_topic(&settings.topic_prefix));
    check_kafka(&settings, &topics, &mut report).await;
    check_registry(config, &settings, tables.capturable.as_deref(), &mut report).await;
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
        Err(_) => Err(format!("no answer within {}s", limit.as_secs())),
    }
}

/// A tokio-postgres error as the server's message (with SQLSTATE, detail and hint), and the
/// remedy sluice knows for it.
fn pg_error(err: &tokio_postgres::Error) -> (String, Option<&'static str>) {
    if let Some(db) = err.as_db_error() {
        let server = ServerError::new(
            db.severity().to_owned(),
            db.code().code().to_owned(),
            db.message().to_owned(),
            db.detail().map(str::to_owned),
            db.hint().map(str::to_owned),
        );
        let mut text = format!("{} (SQLSTATE {})", server.message(), server.code());
        if let Some(detail) = server.detail() {
            text.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = server.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
        return (text, server.remedy());
    }
    let mut text = err.to_string();
    let mut source = std::error::Error::source(err);
    while let Some(cause) = source {
        text.push_str(&format!(": {cause}"));
        source = cause.source();
    }
    (text, None)
}

fn pg_message(err: tokio_postgres::Error) -> String {
    pg_error(&err).0
}

const PG_UNREACHABLE_FIX: &str = "check postgres.host and postgres.port, that PostgreSQL runs \
     there and accepts connections from this host (listen_addresses, pg_hba.conf, firewalls)";

/// Settings and rights that decide whether sluice can replicate, read in one query.
#[derive(Debug)]
struct ServerFacts {
    version_num: i32,
    version: String,
    wal_level: String,
    max_slots: i32,
    used_slots: i32,
    max_senders: i32,
    active_senders: i32,
    /// None before PostgreSQL 13, which has no such setting.
    max_slot_wal_keep_size: Option<String>,
    superuser: bool,
    replication: bool,
    user: String,
    database: String,
    can_create_in_database: bool,
}

async fn server_facts(sql: &Client) -> Result<ServerFacts, String> {
    let row = bounded(
        PG_TIMEOUT,
        sql.query_one(
            "SELECT current_setting('server_version_num')::int4,
                    current_setting('server_version'),
                    current_setting('wal_level'),
                    current_setting('max_replication_slots')::int4,
                    (SELECT count(*) FROM pg_replication_slots)::int4,
                    current_setting('max_wal_senders')::int4,
                    (SELECT count(*) FROM pg_stat_replication)::int4,
                    current_setting('max_slot_wal_keep_size', true),
                    r.rolsuper, r.rolreplication, current_user::text, current_database()::text,
                    has_database_privilege(current_database(), 'CREATE')
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        ),
        pg_message,
    )
    .await?;
    Ok(ServerFacts {
        version_num: row.get(0),
        version: row.get(1),
        wal_level: row.get(2),
        max_slots: row.get(3),
        used_slots: row.get(4),
        max_senders: row.get(5),
        active_senders: row.get(6),
        max_slot_wal_keep_size: row.get(7),
        superuser: row.get(8),
        replication: row.get(9),
        user: row.get(10),
        database: row.get(11),
        can_create_in_database: row.get(12),
    })
}

/// The configured slot as `pg_replication_slots` shows it.
#[derive(Debug)]
struct SlotFacts {
    plugin: Option<String>,
    database: Option<String>,
    slot_type: String,
    active_pid: Option<i32>,
    /// Bytes between the current WAL position and the slot's confirmed position.
    lag: Option<i64>,
    /// Bytes of WAL the slot keeps from being removed.
    retained: Option<i64>,
    wal_status: Option<String>,
    invalidation: Option<String>,
}

async fn slot_facts(sql: &Client, slot: &str, version: i32) -> Result<Option<SlotFacts>, String> {
    // Columns come and go with the server version; a standby has no current WAL position.
    let wal_status = if version >= PG_13 {
        "wal_status::text"
    } else {
        "NULL::text"
    };
    let invalidation = if version >= PG_17 {
        "invalidation_reason::text"
    } else if version >= PG_16 {
        "CASE WHEN conflicting THEN 'conflict with recovery' END"
    } else {
        "NULL::text"
    };
    let query = format!(
        "SELECT plugin::text, database::text, slot_type::text, active_pid,
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::int8 END,
                CASE WHEN pg_is_in_recovery() THEN NULL
                     ELSE pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::int8 END,
                {wal_status}, {invalidation}
           FROM pg_replication_slots WHERE slot_name = $1"
    );
    let row = bounded(PG_TIMEOUT, sql.query_opt(&query, &[&slot]), pg_message).await?;
    Ok(row.map(|row| SlotFacts {
        plugin: row.get(0),
        database: row.get(1),
        slot_type: row.get(2),
        active_pid: row.get(3),
        lag: row.get(4),
        retained: row.get(5),
        wal_status: row.get(6),
        invalidation: row.get(7),
    }))
}

/// What the connected user may do with one table.
#[derive(Debug)]
struct TableRights {
    select: bool,
    schema_usage: bool,
    owner: bool,
}

async fn table_rights(sql: &Client, oid: u32) -> Result<TableRights, String> {
    let row = bounded(
        PG_TIMEOUT,
        sql.query_one(
            "SELECT has_table_privilege(c.oid, 'SELECT'),
                    has_schema_privilege(c.relnamespace, 'USAGE'),
                    pg_has_role(c.relowner, 'USAGE')
               FROM pg_class c WHERE c.oid = $1",
            &[&oid],
        ),
        pg_message,
    )
    .await?;
    Ok(TableRights {
        select: row.get(0),
        schema_usage: row.get(1),
        owner: row.get(2),
    })
}

async fn connect_sql(settings: &Settings) -> Result<Client, (String, String)> {
    let tls = sql_tls(&settings.postgres).map_err(|err| {
        (
            err.to_string(),
            "check postgres.sslmode and postgres.sslrootcert".to_owned(),
        )
    })?;
    let connecting = tokio_postgres::connect(settings.postgres_conninfo.expose_secret(), tls);
    let (client, connection) = match tokio::time::timeout(PG_TIMEOUT, connecting).await {
        Err(_) => {
            return Err((
                format!("no answer within {}s", PG_TIMEOUT.as_secs()),
                PG_UNREACHABLE_FIX.to_owned(),
            ));
        }
        Ok(Err(err)) => {
            let (message, remedy) = pg_error(&err);
            return Err((message, remedy.unwrap_or(PG_UNREACHABLE_FIX).to_owned()));
        }
        Ok(Ok(pair)) => pair,
    };
    // A connection that breaks shows up as the next query's error, reported there.
    tokio::spawn(async move {
        let _ = connection.await;
    });
    // The server, too, gives up on a query that outlives the probe.
    let _ = bounded(
        PG_TIMEOUT,
        client.batch_execute(&format!(
            "SET statement_timeout = {}",
            quote_literal(&format!("{}s", PG_TIMEOUT.as_secs()))
        )),
        pg_message,
    )
    .await;
    Ok(client)
}

async fn check_postgres(settings: &Settings, report: &mut Report) -> Tables {
    let pg = &settings.postgres;
    let target = format!("{} database {} as {}", pg.target(), pg.dbname, pg.user);
    let sql = match connect_sql(settings).await {
        Ok(sql) => sql,
        Err((detail, fix)) => {
            report.fail("postgres", format!("{target}: {detail}"), fix);
            return Tables::default();
        }
    };
    let facts = match server_facts(&sql).await {
        Ok(facts) => facts,
        Err(err) => {
            report.fail(
                "postgres",
                format!("{target}: connected, but reading the server's settings failed: {err}"),
                "check that the user may read pg_settings and pg_roles",
            );
            return Tables::default();
        }
    };
    report.ok("postgres", format!("connected to {target}"));

    let version = format!("PostgreSQL {}", facts.version);
    if facts.version_num < PG_10 {
        report.fail(
            "postgres version",
            format!("{version}: logical replication with pgoutput needs 10 or later"),
            "upgrade PostgreSQL (14 or later recommended)",
        );
        return Tables::default();
    } else if facts.version_num < PG_14 {
        report.warn(
            "postgres version",
            format!(
                "{version}: before 14 there is no streaming of large in-progress transactions \
                 (each is decoded whole on the server first) and no binary transfer"
            ),
            "upgrade to PostgreSQL 14 or later",
        );
    } else {
        report.ok("postgres version", version);
    }

    if facts.wal_level == "logical" {
        report.ok("wal_level", "logical");
    } else {
        report.fail(
            "wal_level",
            format!("{}: logical decoding needs logical", facts.wal_level),
            "ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL",
        );
    }

    check_replication_right(settings, &facts, report).await;

    let slot = match slot_facts(&sql, &settings.slot, facts.version_num).await {
        Ok(slot) => slot,
        Err(err) => {
            report.fail(
                &format!("slot {}", settings.slot),
                format!("reading pg_replication_slots failed: {err}"),
                "check that the user may read pg_replication_slots",
            );
            return Tables::default();
        }
    };
    let free_slots = facts.max_slots - facts.used_slots;
    let slots_detail = format!(
        "{free_slots} of max_replication_slots = {} free",
        facts.max_slots
    );
    if slot.is_some() {
        report.ok(
            "replication slots",
            format!("{slots_detail}; slot {} exists already", settings.slot),
        );
    } else if free_slots <= 0 {
        report.fail(
            "replication slots",
            format!("{slots_detail}: none left for slot {}", settings.slot),
            "raise max_replication_slots (ALTER SYSTEM SET max_replication_slots = ..., then \
             restart PostgreSQL), or drop unused slots (SELECT pg_drop_replication_slot(name))",
        );
    } else {
        report.ok("replication slots", slots_detail);
    }

    let free_senders = facts.max_senders - facts.active_senders;
    let senders_detail = format!(
        "{free_senders} of max_wal_senders = {} free",
        facts.max_senders
    );
    if free_senders <= 0 {
        report.fail(
            "wal senders",
            format!("{senders_detail}: sluice needs one"),
            "raise max_wal_senders (ALTER SYSTEM SET max_wal_senders = ..., then restart \
             PostgreSQL), or stop idle replication clients (see pg_stat_replication)",
        );
    } else {
        report.ok("wal senders", senders_detail);
    }

    check_wal_keep(&facts, report);

    let tables = check_tables(&sql, settings, &facts.user, report).await;
    if !tables.described.is_empty() {
        check_publication(&sql, settings, &facts, &tables, report).await;
    }
    check_slot(settings, slot.as_ref(), &facts.database, report);
    tables
}

/// The REPLICATION attribute, then a real replication connection: it proves pg_hba.conf lets
/// the user in for replication and that a WAL sender is free.
async fn check_replication_right(settings: &Settings, facts: &ServerFacts, report: &mut Report) {
    const ITEM: &str = "replication privilege";
    if !facts.replication && !facts.superuser {
        report.fail(
            ITEM,
            format!("{} lacks the REPLICATION attribute", facts.user),
            format!(
                "as a superuser: ALTER ROLE {} REPLICATION",
                quote_ident(&facts.user)
            ),
        );
        return;
    }
    let attribute = if facts.superuser {
        "a superuser"
    } else {
        "REPLICATION"
    };
    let connecting = ReplicationConnection::connect(&settings.postgres);
    let (detail, fix) = match tokio::time::timeout(PG_TIMEOUT, connecting).await {
        Ok(Ok(conn)) => {
            let _ = tokio::time::timeout(PG_TIMEOUT, conn.close()).await;
            report.ok(
                ITEM,
                format!(
                    "{} is {attribute}; a replication connection opened",
                    facts.user
                ),
            );
            return;
        }
        Ok(Err(err)) => match err.server() {
            Some(server) => (
                format!("{} (SQLSTATE {})", server.message(), server.code()),
                server.remedy().unwrap_or(PG_UNREACHABLE_FIX),
            ),
            None => (err.to_string(), PG_UNREACHABLE_FIX),
        },
        Err(_) => (
            format!("no answer within {}s", PG_TIMEOUT.as_secs()),
            PG_UNREACHABLE_FIX,
        ),
    };
    report.fail(
        ITEM,
        format!(
            "{} is {attribute}, but a replication connection failed: {detail}",
            facts.user
        ),
        fix,
    );
}

fn check_wal_keep(facts: &ServerFacts, report: &mut Report) {
    const ITEM: &str = "max_slot_wal_keep_size";
    const STALL: &str = "a slot that stalls (sluice stopped, Kafka away) keeps WAL without \
                         bound and can fill the server's disk";
    match facts.max_slot_wal_keep_size.as_deref() {
        None => report.warn(
            ITEM,
            format!("PostgreSQL {} has no such setting: {STALL}", facts.version),
            "watch the slot's retained WAL (sluice status), or upgrade to 13 or later and set \
             max_slot_wal_keep_size",
        ),
        Some("-1") => report.warn(
            ITEM,
            format!("-1 (no bound): {STALL}"),
            "set a bound the disk can hold: ALTER SYSTEM SET max_slot_wal_keep_size = '50GB'; \
             SELECT pg_reload_conf(); (a slot further behind is then invalidated, and sluice \
             needs a new snapshot)",
        ),
        Some(size) => report.ok(
            ITEM,
            format!(
                "{size}: a slot further behind is invalidated rather than filling the disk \
                 (sluice then needs a new snapshot)"
            ),
        ),
    }
}

/// The chosen tables: which match, whether the user may read each, and whether each has a
/// key.
async fn check_tables(
    sql: &Client,
    settings: &Settings,
    user: &str,
    report: &mut Report,
) -> Tables {
    const ITEM: &str = "tables";
    let listed = match bounded(PG_TIMEOUT, catalog::list_tables(sql), |e| e.to_string()).await {
        Ok(listed) => listed,
        Err(err) => {
            report.fail(
                ITEM,
                format!("listing the tables failed: {err}"),
                "check that the user may read pg_class and pg_namespace",
            );
            return Tables::default();
        }
    };
    let chosen: Vec<(u32, String, String, char)> = listed
        .into_iter()
        .filter(|(_, schema, name, _)| settings.tables.selects(schema, name))
        .collect();
    if chosen.is_empty() {
        let include: Vec<String> = settings
            .tables
            .include
            .iter()
            .map(ToString::to_string)
            .collect();
        report.fail(
            ITEM,
            format!(
                "no table in database {} matches tables.include [{}] minus tables.exclude",
                settings.postgres.dbname,
                include.join(", ")
            ),
            "check the patterns (schema.table, * as wildcard, names as PostgreSQL stores \
             them: unquoted names are lower case) and that the tables exist",
        );
        return Tables::default();
    }
    let names: Vec<String> = chosen
        .iter()
        .map(|(_, schema, name, _)| format!("{schema}.{name}"))
        .collect();
    report.ok(
        ITEM,
        format!("{} chosen: {}", names.len(), abbreviated(&names)),
    );

    let mut tables = Tables::default();
    let mut all_capturable = true;
    // Per table, then summed up: only problems get a line of their own.
    let mut select = Report::default();
    let mut keys = Report::default();
    let mut keyless = Vec::new();
    for (oid, schema, name, identity) in chosen {
        let describing = catalog::describe(sql, oid, &schema, &name, identity);
        let table = match bounded(PG_TIMEOUT, describing, |e| e.to_string()).await {
            Ok(table) => table,
            Err(err) => {
                keys.fail(
                    &format!("key of {schema}.{name}"),
                    format!("reading its columns failed: {err}"),
                    "check that the user may read pg_attribute and pg_index",
                );
                all_capturable = false;
                continue;
            }
        };
        if check_select(sql, &table, user, &mut select).await {
            tables.owned.insert(table.oid);
        }
        let capturable = check_key(&table, settings.tables.allow_keyless, &mut keys);
        if capturable && !table.has_key() {
            keyless.push(table.qualified());
        }
        all_capturable &= capturable;
        tables.described.push(table);
    }
    report.summarize("SELECT on tables", select, |fine| {
        format!("{user} may read {} chosen table(s)", fine.len())
    });
    report.summarize("keys", keys, |fine| {
        let mut detail = format!("{} chosen table(s) have a key sluice can use", fine.len());
        if !keyless.is_empty() {
            detail.push_str(&format!(
                "; these have none, but REPLICA IDENTITY FULL and tables.allow_keyless, so \
                 their events carry no Kafka key: {}",
                abbreviated(&keyless)
            ));
        }
        detail
    });
    // Only when `sluice run` would get that far: its choice fails on the first keyless table.
    if all_capturable {
        tables.capturable = bounded(PG_TIMEOUT, choose_tables(sql, settings), |e| e.to_string())
            .await
            .ok();
    }
    tables
}

/// Reports whether the user may read `table`; returns whether the user owns it.
async fn check_select(
    sql: &Client,
    table: &CapturedTable,
    user: &str,
    report: &mut Report,
) -> bool {
    let item = format!("SELECT on {}", table.qualified());
    let rights = match table_rights(sql, table.oid).await {
        Ok(rights) => rights,
        Err(err) => {
            report.fail(
                &item,
                format!("reading the privileges failed: {err}"),
                "check that the user may read pg_class",
            );
            return false;
        }
    };
    let role = quote_ident(user);
    let mut grants = Vec::new();
    if !rights.schema_usage {
        grants.push(format!(
            "GRANT USAGE ON SCHEMA {} TO {role}",
            quote_ident(&table.spec.schema)
        ));
    }
    if !rights.select {
        grants.push(format!("GRANT SELECT ON {} TO {role}", table.quoted()));
    }
    if grants.is_empty() {
        report.ok(&item, format!("{user} may read {}", table.qualified()));
    } else {
        report.fail(
            &item,
            format!(
                "{user} may not read {}, which the snapshot copies",
                table.qualified()
            ),
            format!("as the owner: {}", grants.join("; ")),
        );
    }
    rights.owner
}

/// Reports whether `table` has a key sluice can use; returns whether `sluice run` accepts it.
fn check_key(table: &CapturedTable, allow_keyless: bool, report: &mut Report) -> bool {
    let qualified = table.qualified();
    let quoted = table.quoted();
    let item = format!("key of {qualified}");
    if catalog::check_capturable(table, allow_keyless).is_err() {
        report.fail(
            &item,
            format!(
                "{qualified} has no primary key (nor replica identity index), so its events \
                 would have no key and its updates and deletes no old row"
            ),
            format!(
                "add a primary key (ALTER TABLE {quoted} ADD PRIMARY KEY (...)), or set \
                 REPLICA IDENTITY FULL on it (ALTER TABLE {quoted} REPLICA IDENTITY FULL) and \
                 allow keyless tables with tables.allow_keyless = true"
            ),
        );
        return false;
    }
    if !table.has_key() {
        report.ok(
            &item,
            "no key, but REPLICA IDENTITY FULL and tables.allow_keyless: its events carry no \
             Kafka key",
        );
        return true;
    }
    let columns: Vec<&str> = table
        .spec
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| c.name.as_str())
        .collect();
    let key = format!(
        "{} ({})",
        if table.replica_identity == 'i' {
            "replica identity index"
        } else {
            "primary key"
        },
        columns.join(", ")
    );
    if table.replica_identity == 'n' {
        // Accepted by `sluice run`, but PostgreSQL then refuses the application's writes.
        report.fail(
            &item,
            format!(
                "{key}, but REPLICA IDENTITY NOTHING: once {qualified} is published, \
                 PostgreSQL refuses its UPDATEs and DELETEs"
            ),
            format!("ALTER TABLE {quoted} REPLICA IDENTITY DEFAULT"),
        );
    } else {
        report.ok(&item, key);
    }
    true
}

async fn check_publication(
    sql: &Client,
    settings: &Settings,
    facts: &ServerFacts,
    tables: &Tables,
    report: &mut Report,
) {
    let item = format!("publication {}", settings.publication);
    let publication = quote_ident(&settings.publication);
    let list = |tables: &[&CapturedTable]| {
        tables
            .iter()
            .map(|t| t.quoted())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unowned = |chosen: &[&CapturedTable]| -> Vec<String> {
        if facts.superuser {
            return Vec::new();
        }
        chosen
            .iter()
            .filter(|t| !tables.owned.contains(&t.oid))
            .map(|t| t.qualified())
            .collect()
    };
    let found = bounded(
        PG_TIMEOUT,
        sql.query_opt(
            "SELECT pg_has_role(pubowner, 'USAGE'), pubinsert, pubupdate, pubdelete
               FROM pg_publication WHERE pubname = $1",
            &[&settings.publication],
        ),
        pg_message,
    )
    .await;
    let row = match found {
        Ok(row) => row,
        Err(err) => {
            report.fail(
                &item,
                format!("reading pg_publication failed: {err}"),
                "check that the user may read pg_publication",
            );
            return;
        }
    };
    let chosen: Vec<&CapturedTable> = tables.described.iter().collect();
    let Some(row) = row else {
        let create = format!(
            "CREATE PUBLICATION {publication} FOR TABLE {}",
            list(&chosen)
        );
        let unowned = unowned(&chosen);
        if !settings.create_publication {
            report.fail(
                &item,
                "does not exist, and replication.create_publication is false",
                format!(
                    "as the tables' owner: {create}; or set replication.create_publication = true"
                ),
            );
        } else if !facts.superuser && !facts.can_create_in_database {
            report.fail(
                &item,
                format!(
                    "does not exist, and {} may not create one (no CREATE on database {})",
                    facts.user, facts.database
                ),
                format!("as the tables' owner: {create}"),
            );
        } else if !unowned.is_empty() {
            report.fail(
                &item,
                format!(
                    "does not exist, and {} may not create it: it does not own {}",
                    facts.user,
                    abbreviated(&unowned)
                ),
                format!("as the tables' owner (or a superuser): {create}"),
            );
        } else {
            report.warn(
                &item,
                format!(
                    "does not exist; sluice will create it for the {} chosen table(s)",
                    chosen.len()
                ),
                format!("nothing to do; or create it beforehand: {create}"),
            );
        }
        return;
    };
    let owns_publication: bool = row.get(0);
    let operations: Vec<&str> = [(1, "inserts"), (2, "updates"), (3, "deletes")]
        .into_iter()
        .filter(|&(column, _)| !row.get::<_, bool>(column))
        .map(|(_, operation)| operation)
        .collect();
    let published = bounded(
        PG_TIMEOUT,
        sql.query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables
              WHERE pubname = $1",
            &[&settings.publication],
        ),
        pg_message,
    )
    .await;
    let published: HashSet<(String, String)> = match published {
        Ok(rows) => rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        Err(err) => {
            report.fail(
                &item,
                format!("reading pg_publication_tables failed: {err}"),
                "check that the user may read pg_publication_tables",
            );
            return;
        }
    };
    let missing: Vec<&CapturedTable> = chosen
        .iter()
        .copied()
        .filter(|t| !published.contains(&(t.spec.schema.clone(), t.spec.name.clone())))
        .collect();
    if missing.is_empty() {
        if operations.is_empty() {
            report.ok(
                &item,
                format!("exists and publishes all {} chosen table(s)", chosen.len()),
            );
        } else {
            report.warn(
                &item,
                format!(
                    "exists and publishes every chosen table, but not their {}: those changes \
                     never reach Kafka",
                    operations.join(" or ")
                ),
                format!(
                    "ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, \
                     truncate')"
                ),
            );
        }
        return;
    }
    let add = format!(
        "ALTER PUBLICATION {publication} ADD TABLE {}",
        list(&missing)
    );
    let names: Vec<String> = missing.iter().map(|t| t.qualified()).collect();
    let unowned = unowned(&missing);
    if (facts.superuser || owns_publication) && unowned.is_empty() {
        report.warn(
            &item,
            format!(
                "exists but lacks {}; sluice will add them",
                abbreviated(&names)
            ),
            format!("nothing to do; or add them beforehand: {add}"),
        );
    } else {
        report.fail(
            &item,
            format!(
                "exists but lacks {}, and {} may not add them (that needs owning the \
                 publication and the tables)",
                abbreviated(&names),
                facts.user
            ),
            format!("as the publication's owner: {add}"),
        );
    }
}

fn check_slot(settings: &Settings, slot: Option<&SlotFacts>, database: &str, report: &mut Report) {
    let item = format!("slot {}", settings.slot);
    let Some(slot) = slot else {
        let then = if settings.snapshot {
            "then take a snapshot of the chosen tables"
        } else {
            "then stream changes from that point (snapshot.mode = never)"
        };
        report.ok(
            &item,
            format!("does not exist; sluice will create it, {then}"),
        );
        return;
    };
    let drop = format!(
        "SELECT pg_drop_replication_slot({})",
        quote_literal(&settings.slot)
    );
    let another = "choose another replication.slot";
    if slot.slot_type != "logical" {
        report.fail(&item, format!("is a {} slot", slot.slot_type), another);
        return;
    }
    if slot.database.as_deref() != Some(database) {
        report.fail(
            &item,
            format!(
                "belongs to database {}, not {database} (slot names are per server)",
                slot.database.as_deref().unwrap_or("?")
            ),
            another,
        );
        return;
    }
    let plugin = slot.plugin.as_deref().unwrap_or("?");
    if plugin != "pgoutput" {
        report.fail(
            &item,
            format!("uses the {plugin} plugin, not pgoutput"),
            format!("{another}, or if nothing else uses this slot drop it: {drop}"),
        );
        return;
    }
    let position = match (slot.lag, slot.retained) {
        (Some(lag), Some(retained)) => format!(
            "{} behind the current WAL position, retaining {} of WAL",
            human_bytes(lag),
            human_bytes(retained)
        ),
        _ => "its lag is unknown on a standby".to_owned(),
    };
    if slot.wal_status.as_deref() == Some("lost") || slot.invalidation.is_some() {
        let why = slot
            .invalidation
            .as_deref()
            .unwrap_or("the WAL it needs was removed");
        report.fail(
            &item,
            format!("is invalidated ({why}): it can no longer stream"),
            format!("drop the slot ({drop}) and let sluice create it again and re-snapshot"),
        );
        return;
    }
    if let Some(pid) = slot.active_pid {
        report.warn(
            &item,
            format!("exists (pgoutput), {position}, but is in use by pid {pid}: another sluice?"),
            format!(
                "stop the other process reading it (if it is stale: SELECT \
                 pg_terminate_backend({pid})), or give this sluice another replication.slot"
            ),
        );
        return;
    }
    if slot.wal_status.as_deref() == Some("unreserved") {
        report.warn(
            &item,
            format!(
                "exists (pgoutput), {position}: more than max_slot_wal_keep_size, so the next \
                 checkpoint invalidates it"
            ),
            "start sluice now so that it catches up, or raise max_slot_wal_keep_size",
        );
        return;
    }
    report.ok(
        &item,
        format!(
            "exists (pgoutput), {position}; sluice resumes from it (or takes a new snapshot \
             if the last one did not complete)"
        ),
    );
}

/// What a metadata request says about one topic.
#[derive(Debug)]
enum TopicState {
    Missing,
    Exists { partitions: usize, replicas: usize },
    Refused(String),
}

/// The brokers, and the state of each topic sluice writes to.
#[derive(Debug)]
struct Cluster {
    brokers: Vec<i32>,
    topics: Vec<(String, TopicState)>,
}

/// One metadata request per topic, so that a large cluster's other topics are not fetched.
fn describe_topics(
    admin: &AdminClient<TracingContext>,
    topics: &[String],
) -> Result<Cluster, String> {
    let mut cluster = Cluster {
        brokers: Vec::new(),
        topics: Vec::new(),
    };
    for topic in topics {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
            .map_err(|err| format!("describing topic {topic}: {err}"))?;
        cluster.brokers = metadata.brokers().iter().map(|b| b.id()).collect();
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        let state = match found {
            None => TopicState::Missing,
            Some(found) => match found.error().map(RDKafkaErrorCode::from) {
                None | Some(RDKafkaErrorCode::LeaderNotAvailable) => TopicState::Exists {
                    partitions: found.partitions().len(),
                    replicas: found
                        .partitions()
                        .iter()
                        .map(|p| p.replicas().len())
                        .min()
                        .unwrap_or(0),
                },
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                ) => TopicState::Missing,
                Some(code) => TopicState::Refused(code.to_string()),
            },
        };
        cluster.topics.push((topic.clone(), state));
    }
    Ok(cluster)
}

async fn check_kafka(settings: &Settings, topics: &[String], report: &mut Report) {
    const ITEM: &str = "kafka";
    let kafka = &settings.kafka;
    let producer = match Producer::new(kafka) {
        Ok((producer, _deliveries)) => producer,
        Err(err) => {
            report.fail(
                ITEM,
                err.to_string(),
                "correct [kafka] and [kafka.producer] in the configuration",
            );
            return;
        }
    };
    let reachable = producer.check_reachable(KAFKA_TIMEOUT).await;
    // Dropping a librdkafka client waits for its threads.
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    if let Err(err) = reachable {
        let (detail, fix) = match err {
            KafkaError::Unreachable {
                bootstrap_servers,
                timeout,
                reason,
            } => (
                format!(
                    "no broker at {bootstrap_servers} answered within {}s: {reason}",
                    timeout.as_secs()
                ),
                "check kafka.bootstrap_servers, that the brokers run, that their advertised \
                 listeners resolve and are reachable from this host, and the security settings \
                 in [kafka.producer]",
            ),
            other => (other.to_string(), "check [kafka] and [kafka.producer]"),
        };
        report.fail(ITEM, detail, fix);
        return;
    }
    let admin = match AdminClient::from_config_and_context(&client_config(kafka), TracingContext) {
        Ok(admin) => Arc::new(admin),
        Err(err) => {
            report.fail(
                ITEM,
                format!("cannot create the Kafka admin client: {err}"),
                "correct [kafka.producer] in the configuration",
            );
            return;
        }
    };
    let describing = {
        let admin = Arc::clone(&admin);
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || describe_topics(&admin, &topics))
    };
    let cluster = match describing.await {
        Ok(Ok(cluster)) => cluster,
        Ok(Err(err)) => {
            report.fail(
                ITEM,
                format!("reachable, but {err}"),
                "check the principal's DESCRIBE rights and the brokers' health",
            );
            return;
        }
        Err(err) => {
            report.fail(
                ITEM,
                format!("describing the topics: {err}"),
                "run it again",
            );
            return;
        }
    };
    report.ok(
        ITEM,
        format!(
            "{} broker(s) reachable through {}",
            cluster.brokers.len(),
            kafka.bootstrap_servers
        ),
    );
    check_topics(&cluster, settings, report);
    check_acks(&admin, &cluster, settings, report).await;
}

/// The topics sluice writes to: those that exist, those sluice will create (and whether it
/// can), those the broker will not describe.
fn check_topics(cluster: &Cluster, settings: &Settings, report: &mut Report) {
    const ITEM: &str = "topics";
    let kafka = &settings.kafka;
    let state_topic = state_topic(&settings.topic_prefix);
    let mut existing = Vec::new();
    let mut other_partitions = Vec::new();
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    for (topic, state) in &cluster.topics {
        match state {
            TopicState::Exists { partitions, .. } => {
                existing.push(topic.clone());
                let wanted = if *topic == state_topic {
                    1
                } else {
                    kafka.partitions
                };
                if i32::try_from(*partitions).ok() != Some(wanted) {
                    other_partitions.push(format!("{topic} ({partitions})"));
                }
            }
            TopicState::Missing => missing.push(topic.clone()),
            TopicState::Refused(code) => refused.push((topic, code)),
        }
    }
    let found = if existing.is_empty() {
        "none exists yet".to_owned()
    } else {
        format!("{} exist", existing.len())
    };
    if !other_partitions.is_empty() {
        report.warn(
            "topic partitions",
            format!(
                "{} have another partition count than kafka.partitions = {}; sluice keeps each \
                 topic as it is and places a key by murmur2 over the partitions it has",
                abbreviated(&other_partitions),
                kafka.partitions,
            ),
            "nothing to do if the topics were made so; if partitions were added after events \
             were written, a key's earlier and later events are in different partitions and \
             their order across that change is lost: re-create the topic and take a new \
             snapshot, or accept it",
        );
    }
    let factor = kafka.replication_factor;
    let brokers = cluster.brokers.len();
    if missing.is_empty() {
        if refused.is_empty() || !existing.is_empty() {
            report.ok(ITEM, found);
        }
    } else if usize::try_from(factor).is_ok_and(|factor| factor > brokers) {
        report.fail(
            ITEM,
            format!(
                "{found}; {} do not, and sluice cannot create them with replication factor \
                 {factor}: the cluster has {brokers} broker(s)",
                abbreviated(&missing)
            ),
            format!(
                "set kafka.replication_factor to at most {brokers}, or create the topics \
                 beforehand"
            ),
        );
    } else {
        let tables: Vec<String> = missing
            .iter()
            .filter(|topic| **topic != state_topic)
            .cloned()
            .collect();
        let mut creates = Vec::new();
        if !tables.is_empty() {
            creates.push(format!(
                "{} with {} partition(s)",
                abbreviated(&tables),
                kafka.partitions
            ));
        }
        if missing.contains(&state_topic) {
            creates.push(format!(
                "its state topic {state_topic} with 1 compacted partition"
            ));
        }
        report.warn(
            ITEM,
            format!(
                "{found}; sluice will create {}, replication factor {factor}",
                creates.join(" and ")
            ),
            "nothing to do if the principal may create topics; otherwise create them beforehand",
        );
    }
    for (topic, code) in refused {
        report.fail(
            &format!("topic {topic}"),
            format!("the broker refused to describe it: {code}"),
            "grant the principal DESCRIBE, WRITE and CREATE on the topic (or create it \
             beforehand and grant DESCRIBE and WRITE)",
        );
    }
}

/// Whether acks=all can succeed: every partition needs `min.insync.replicas` replicas in sync,
/// so a topic with fewer replicas than that refuses every write.
async fn check_acks(
    admin: &AdminClient<TracingContext>,
    cluster: &Cluster,
    settings: &Settings,
    report: &mut Report,
) {
    const ITEM: &str = "acks=all";
    let factor = settings.kafka.replication_factor;
    let existing: Vec<(&str, usize)> = cluster
        .topics
        .iter()
        .filter_map(|(topic, state)| match state {
            TopicState::Exists { replicas, .. } => Some((topic.as_str(), *replicas)),
            _ => None,
        })
        .collect();
    let any_missing = existing.len() < cluster.topics.len();
    let Some(&broker) = cluster.brokers.first() else {
        report.ok(
            ITEM,
            format!("topics are created with replication factor {factor}"),
        );
        return;
    };
    let mut specifiers = vec![ResourceSpecifier::Broker(broker)];
    specifiers.extend(
        existing
            .iter()
            .map(|(topic, _)| ResourceSpecifier::Topic(topic)),
    );
    let options = AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT));
    let described = bounded(
        KAFKA_TIMEOUT,
        admin.describe_configs(&specifiers, &options),
        |err| err.to_string(),
    )
    .await;
    let results = match described {
        Ok(results) if results.len() == specifiers.len() => results,
        Ok(_) => {
            report.ok(
                ITEM,
                format!(
                    "topics are created with replication factor {factor} (min.insync.replicas \
                     not readable: an incomplete answer)"
                ),
            );
            return;
        }
        Err(err) => {
            report.ok(
                ITEM,
                format!(
                    "topics are created with replication factor {factor} (min.insync.replicas \
                     not readable: {err})"
                ),
            );
            return;
        }
    };
    let setting = |result: &ConfigResourceResult, name: &str| -> Option<i64> {
        result
            .as_ref()
            .ok()?
            .get(name)?
            .value
            .as_deref()?
            .parse()
            .ok()
    };
    let Some((broker_config, topic_configs)) = results.split_first() else {
        return;
    };
    check_state_policy(&existing, topic_configs, settings, report);
    let min_isr = setting(broker_config, "min.insync.replicas");
    // -1 asks the broker for its default.
    let new_factor = if factor == -1 {
        setting(broker_config, "default.replication.factor")
    } else {
        Some(i64::from(factor))
    };
    let mut problems = Vec::new();
    if any_missing
        && let (Some(min_isr), Some(new_factor)) = (min_isr, new_factor)
        && min_isr > new_factor
    {
        problems.push(format!(
            "the topics sluice creates get replication factor {new_factor}, below the broker's \
             min.insync.replicas {min_isr}"
        ));
    }
    for ((topic, replicas), result) in existing.iter().zip(topic_configs) {
        if let Some(topic_min_isr) = setting(result, "min.insync.replicas")
            && i64::try_from(*replicas).is_ok_and(|replicas| topic_min_isr > replicas)
        {
            problems.push(format!(
                "topic {topic} has {replicas} replica(s), below its min.insync.replicas \
                 {topic_min_isr}"
            ));
        }
    }
    if !problems.is_empty() {
        // A failure, not a warning: every acks=all write is refused, and sluice (whose
        // messages never time out) would wait forever.
        report.fail(
            ITEM,
            format!(
                "{}: the broker refuses every acks=all write there, and sluice would wait \
                 forever",
                problems.join("; ")
            ),
            "raise the replication factor (kafka.replication_factor for the topics sluice \
             creates) to at least min.insync.replicas, or lower min.insync.replicas",
        );
        return;
    }
    let min_isr = min_isr.map_or_else(|| "unknown".to_owned(), |m| m.to_string());
    let new_factor =
        new_factor.map_or_else(|| "the broker's default".to_owned(), |f| f.to_string());
    let mut detail = format!(
        "min.insync.replicas {min_isr} (broker), replication factor {new_factor} for the topics \
         sluice creates"
    );
    if !existing.is_empty() {
        detail.push_str("; the existing topics allow acks=all too");
    }
    report.ok(ITEM, detail);
}

/// The state topic, if it exists, must be compacted only: under a delete policy its records
/// expire, and sluice would then find a slot without a recorded snapshot.
fn check_state_policy(
    existing: &[(&str, usize)],
    configs: &[ConfigResourceResult],
    settings: &Settings,
    report: &mut Report,
) {
    let state_topic = state_topic(&settings.topic_prefix);
    let Some(config) = existing
        .iter()
        .zip(configs)
        .find(|((topic, _), _)| *topic == state_topic)
        .and_then(|(_, config)| config.as_ref().ok())
    else {
        return;
    };
    let policy = config
        .get("cleanup.policy")
        .and_then(|entry| entry.value.clone())
        .unwrap_or_default();
    if policy == "compact" {
        report.ok(
            "state topic",
            format!("{state_topic} is compacted (cleanup.policy = compact)"),
        );
    } else {
        report.fail(
            "state topic",
            format!(
                "{state_topic} has cleanup.policy = {policy:?}: its records expire, and sluice \
                 then cannot tell whether the slot's snapshot completed (it stops rather than \
                 guess)"
            ),
            format!(
                "set cleanup.policy = compact on {state_topic} (kafka-configs --alter \
                 --entity-type topics --entity-name {state_topic} --add-config \
                 cleanup.policy=compact)"
            ),
        );
    }
}

const REGISTRY_URL_FIX: &str = "check registry.url: the base of the Confluent-compatible API \
     (for Apicurio it ends in /apis/ccompat/v7)";

async fn check_registry(
    config: &Config,
    settings: &Settings,
    tables: Option<&[CapturedTable]>,
    report: &mut Report,
) {
    const ITEM: &str = "registry";
    let registry = match Registry::new(&config.registry.client_config(REGISTRY_TIMEOUT)) {
        Ok(registry) => registry,
        Err(err) => {
            report.fail(
                ITEM,
                err.to_string(),
                "check registry.url, registry.ca_file, registry.cert_file and registry.key_file",
            );
            return;
        }
    };
    let base = registry.url().trim_end_matches('/').to_owned();
    let get = |segments: &'static [&'static str]| registry.call(Method::GET, segments, &[], None);

    let url = format!("{base}/subjects");
    let subjects = match get(&["subjects"]).await {
        Err(err) => Err((
            err.to_string(),
            "check registry.url, that the registry runs and that this host can reach it",
        )),
        Ok(answer)
            if answer.status == StatusCode::UNAUTHORIZED
                || answer.status == StatusCode::FORBIDDEN =>
        {
            Err((
                format!("GET {url} answered {}", answer.status),
                "check registry.username and registry.password (or registry.token)",
            ))
        }
        Ok(answer) if !answer.status.is_success() => Err((
            format!("GET {url} answered {}: {}", answer.status, answer.snippet()),
            REGISTRY_URL_FIX,
        )),
        Ok(answer) => serde_json::from_str::<Vec<String>>(&answer.body).map_err(|err| {
            (
                format!(
                    "GET {url} answered what is not a list of subjects ({err}): {}",
                    answer.snippet()
                ),
                REGISTRY_URL_FIX,
            )
        }),
    };
    let listed = match subjects {
        Ok(subjects) => subjects.len(),
        Err((detail, fix)) => {
            report.fail(ITEM, detail, fix);
            return;
        }
    };
    report.ok(
        ITEM,
        format!("reachable at {base}; {listed} subject(s) listed"),
    );

    const RULE: &str = "registry compatibility";
    let url = format!("{base}/config");
    let rule = match get(&["config"]).await {
        Ok(answer) if answer.status.is_success() => {
            serde_json::from_str::<serde_json::Value>(&answer.body)
                .ok()
                .and_then(|value| {
                    ["compatibilityLevel", "compatibility"]
                        .iter()
                        .find_map(|key| value.get(key)?.as_str().map(str::to_owned))
                })
                .ok_or_else(|| format!("GET {url} answered {}", answer.snippet()))
        }
        Ok(answer) => Err(format!(
            "GET {url} answered {}: {}",
            answer.status,
            answer.snippet()
        )),
        Err(err) => Err(err.to_string()),
    };
    match rule {
        Ok(rule) if rule == "NONE" => report.warn(
            RULE,
            "NONE: the registry accepts any schema change, so a column change can break \
             consumers unnoticed",
            format!("set a global rule: PUT {base}/config {{\"compatibility\": \"BACKWARD\"}}"),
        ),
        Ok(rule) => report.ok(RULE, format!("global rule {rule}")),
        Err(err) => report.warn(
            RULE,
            format!("the global rule is not readable: {err}"),
            REGISTRY_URL_FIX,
        ),
    }

    let Some(tables) = tables else { return };
    let mut checked = Report::default();
    let (mut compatible, mut new) = (0, 0);
    for table in tables {
        let topic = topic_of(settings, table);
        let codec = TableCodec::with_options(&topic, &table.spec, &settings.type_options);
        // As `sluice run` registers them: the row alone in upsert mode, else the envelope.
        let value = if settings.upsert {
            codec.row_schema()
        } else {
            codec.value_schema()
        };
        for (subject, schema) in [
            (format!("{topic}-key"), codec.key_schema()),
            (format!("{topic}-value"), value),
        ] {
            let item = format!("subject {subject}");
            // Asked one by one: a registry lists a limited number of subjects (Apicurio
            // 1000), and Apicurio calls any schema compatible with a subject it lacks.
            let latest = format!("{base}/subjects/{subject}/versions/latest");
            let path = ["subjects", subject.as_str(), "versions", "latest"];
            match registry.call(Method::GET, &path, &[], None).await {
                Ok(answer) if answer.status == StatusCode::NOT_FOUND => {
                    new += 1;
                    continue;
                }
                Ok(answer) if answer.status.is_success() => {}
                Ok(answer) => {
                    checked.warn(
                        &item,
                        format!(
                            "GET {latest} answered {}: {}",
                            answer.status,
                            answer.snippet()
                        ),
                        REGISTRY_URL_FIX,
                    );
                    continue;
                }
                Err(err) => {
                    checked.warn(
                        &item,
                        format!("GET {latest} failed: {err}"),
                        "run the check again",
                    );
                    continue;
                }
            }
            let path = [
                "compatibility",
                "subjects",
                subject.as_str(),
                "versions",
                "latest",
            ];
            let body = serde_json::json!({ "schema": schema }).to_string();
            let asked = registry
                .call(Method::POST, &path, &[("verbose", "true")], Some(body))
                .await;
            match asked {
                Ok(answer) if answer.status.is_success() => {
                    let value: serde_json::Value =
                        serde_json::from_str(&answer.body).unwrap_or_default();
                    match value
                        .get("is_compatible")
                        .and_then(serde_json::Value::as_bool)
                    {
                        Some(true) => compatible += 1,
                        Some(false) => {
                            let mut detail = "incompatible: the registry would refuse the schema \
                                              sluice registers for this table now"
                                .to_owned();
                            if let Some(messages) = value
                                .get("messages")
                                .and_then(serde_json::Value::as_array)
                                .filter(|m| !m.is_empty())
                            {
                                let messages: Vec<String> =
                                    messages.iter().map(ToString::to_string).collect();
                                detail.push_str(&format!(" ({})", messages.join("; ")));
                            }
                            checked.fail(
                                &item,
                                detail,
                                format!(
                                    "set the subject's compatibility (PUT {base}/config/{subject}) \
                                     or use another kafka.topic_prefix"
                                ),
                            );
                        }
                        None => checked.warn(
                            &item,
                            format!("the compatibility check answered {}", answer.snippet()),
                            REGISTRY_URL_FIX,
                        ),
                    }
                }
                // No such subject (or no version of it) yet.
                Ok(answer) if answer.status == StatusCode::NOT_FOUND => new += 1,
                Ok(answer) => checked.warn(
                    &item,
                    format!(
                        "the compatibility check answered {}: {}",
                        answer.status,
                        answer.snippet()
                    ),
                    REGISTRY_URL_FIX,
                ),
                Err(err) => checked.warn(
                    &item,
                    format!("the compatibility check failed: {err}"),
                    "run the check again",
                ),
            }
        }
    }
    // Counted rather than listed: only problems get a line of their own.
    let mut fine = Vec::new();
    if compatible > 0 {
        fine.push(format!(
            "{compatible} registered, and the schemas sluice registers now are compatible"
        ));
    }
    if new > 0 {
        fine.push(format!(
            "{new} not registered yet (sluice will register them)"
        ));
    }
    if !fine.is_empty() {
        report.ok("subjects", fine.join("; "));
    }
    report.items.extend(checked.items);
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

/// A byte count in binary units, one decimal: `12.5 MiB`.
fn human_bytes(bytes: i64) -> String {
    const UNITS: [&str; 5] = ["KiB", "MiB", "GiB", "TiB", "PiB"];
    let magnitude = u128::from(bytes.unsigned_abs());
    let sign = if bytes < 0 { "-" } else { "" };
    if magnitude < 1024 {
        return format!("{bytes} bytes");
    }
    let mut unit = 1024u128;
    for name in UNITS {
        if magnitude < unit * 1024 || name == "PiB" {
            let tenths = magnitude * 10 / unit;
            return format!("{sign}{}.{} {name}", tenths / 10, tenths % 10);
        }
        unit *= 1024;
    }
    format!("{bytes} bytes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_read_as_people_write_them() {
        assert_eq!(human_bytes(0), "0 bytes");
        assert_eq!(human_bytes(1023), "1023 bytes");
        assert_eq!(human_bytes(1024), "1.0 KiB");
        assert_eq!(human_bytes(1536), "1.5 KiB");
        assert_eq!(human_bytes(13_107_200), "12.5 MiB");
        assert_eq!(human_bytes(-2048), "-2.0 KiB");
        // Truncated, never rounded up past what there is.
        assert_eq!(human_bytes(i64::MAX), "8191.9 PiB");
    }

    #[test]
    fn the_worst_item_decides() {
        let mut report = Report::default();
        assert_eq!(report.status(), Status::Ok);
        report.ok("a", "fine");
        assert_eq!(report.status(), Status::Ok);
        report.warn("b", "meh", "do this");
        assert_eq!(report.status(), Status::Warn);
        report.fail("c", "broken", "do that");
        report.ok("d", "fine");
        assert_eq!(report.status(), Status::Fail);
    }

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
