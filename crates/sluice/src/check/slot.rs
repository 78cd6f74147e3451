//! The replication slot: whether sluice can create it or resume from it.

use sluice_pipeline::catalog::quote_literal;
use sluice_pipeline::error::describe_pg;
use sluice_pipeline::format;
use sluice_pipeline::run::Settings;
use tokio_postgres::Client;

use super::postgres::{PG_13, PG_16, PG_17};
use super::report::Report;
use super::{PG_TIMEOUT, bounded};

/// The configured slot as `pg_replication_slots` shows it.
#[derive(Debug)]
pub(super) struct SlotFacts {
    pub(super) plugin: Option<String>,
    pub(super) database: Option<String>,
    pub(super) slot_type: String,
    pub(super) active_pid: Option<i32>,
    /// Bytes between the current WAL position and the slot's confirmed position.
    pub(super) lag: Option<i64>,
    /// Bytes of WAL the slot keeps from being removed.
    pub(super) retained: Option<i64>,
    pub(super) wal_status: Option<String>,
    pub(super) invalidation: Option<String>,
}

pub(super) async fn slot_facts(
    sql: &Client,
    slot: &str,
    version: i32,
) -> Result<Option<SlotFacts>, String> {
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
    let row = bounded(PG_TIMEOUT, sql.query_opt(&query, &[&slot]), |e| {
        describe_pg(&e)
    })
    .await?;
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

pub(super) fn check_slot(
    settings: &Settings,
    slot: Option<&SlotFacts>,
    database: &str,
    report: &mut Report,
) {
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
            format::bytes(lag),
            format::bytes(retained)
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
