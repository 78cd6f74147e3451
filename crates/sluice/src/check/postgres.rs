//! The server: connecting, its version and settings, the replication right.

use secrecy::ExposeSecret;
use sluice_pipeline::catalog::{quote_ident, quote_literal};
use sluice_pipeline::config::{Config, PostgresSection};
use sluice_pipeline::connect::sql_tls;
use sluice_pipeline::describe;
use sluice_pipeline::format;
use sluice_pipeline::slot;
use sluice_postgres::{ConnectConfig, ReplicationConnection};
use tokio_postgres::Client;

use super::features::{self, Asks};
use super::publication::check_publication;
use super::report::Report;
use super::server::{ServerFacts, server_facts};
use super::slot::check_slot;
use super::tables::check_tables;
use super::{PG_TIMEOUT, Tables, bounded};

const PG_UNREACHABLE_FIX: &str = "check postgres.host and postgres.port, that PostgreSQL runs \
     there and accepts connections from this host (listen_addresses, pg_hba.conf, firewalls)";

async fn connect_sql(postgres: &PostgresSection) -> Result<Client, (String, String)> {
    let tls = sql_tls(&postgres.connect_config()).map_err(|err| {
        (
            err.to_string(),
            "check postgres.sslmode and postgres.sslrootcert".to_owned(),
        )
    })?;
    let conninfo = postgres.conninfo();
    let connecting = tokio_postgres::connect(conninfo.expose_secret(), tls);
    let (client, connection) = match tokio::time::timeout(PG_TIMEOUT, connecting).await {
        Err(_) => {
            return Err((
                format!("no answer within {}", format::duration(PG_TIMEOUT)),
                PG_UNREACHABLE_FIX.to_owned(),
            ));
        }
        Ok(Err(err)) => {
            let (message, remedy) = describe::pg_parts(&err);
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
        |e| describe::pg(&e),
    )
    .await;
    Ok(client)
}

pub(super) async fn check_postgres(config: &Config, report: &mut Report) -> Tables {
    let pg = config.postgres.connect_config();
    let target = format!("{} database {} as {}", pg.target(), pg.dbname, pg.user);
    let sql = match connect_sql(&config.postgres).await {
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
    let major = features::major_of(facts.version_num);
    if let Some(reason) = features::below_minimum(major) {
        report.fail(
            "postgres version",
            format!("{version}: {reason}"),
            format!(
                "upgrade PostgreSQL to {} or later (14 or later streams large transactions, 17 \
                 or later has failover slots)",
                features::MINIMUM_MAJOR
            ),
        );
        return Tables::default();
    }
    report.ok("postgres version", version);
    let asks = Asks {
        binary: config.replication.binary,
        messages: !config.events.message_prefixes.is_empty(),
        heartbeat: config.replication.heartbeat_interval.is_some(),
        failover: config.replication.failover,
    };
    let verdict = features::verdict(major, &facts.role, asks);
    report.push(
        verdict.status,
        "postgres features",
        verdict.detail,
        verdict.fix,
    );

    if facts.wal_level == "logical" {
        report.ok("wal_level", "logical");
    } else {
        report.fail(
            "wal_level",
            format!("{}: logical decoding needs logical", facts.wal_level),
            "ALTER SYSTEM SET wal_level = logical, then restart PostgreSQL",
        );
    }

    check_replication_right(&pg, &facts, report).await;

    let name = &config.replication.slot;
    let slot = match bounded(PG_TIMEOUT, slot::read(&sql, name), |e| describe::pg(&e)).await {
        Ok(slot) => slot,
        Err(err) => {
            report.fail(
                &format!("slot {name}"),
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
            format!("{slots_detail}; slot {name} exists already"),
        );
    } else if free_slots <= 0 {
        report.fail(
            "replication slots",
            format!("{slots_detail}: none left for slot {name}"),
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

    let tables = check_tables(&sql, config, &facts.user, report).await;
    if !tables.described.is_empty() {
        check_publication(&sql, &config.replication, &facts, &tables, report).await;
    }
    check_slot(config, slot.as_ref(), &facts.database, report);
    tables
}

/// The REPLICATION attribute, then a real replication connection: it proves pg_hba.conf lets
/// the user in for replication and that a WAL sender is free.
async fn check_replication_right(pg: &ConnectConfig, facts: &ServerFacts, report: &mut Report) {
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
    let connecting = ReplicationConnection::connect(pg);
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
                server.summary(),
                server.remedy().unwrap_or(PG_UNREACHABLE_FIX),
            ),
            None => (err.to_string(), PG_UNREACHABLE_FIX),
        },
        Err(_) => (
            format!("no answer within {}", format::duration(PG_TIMEOUT)),
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
