//! The replication slot: whether sluice can create it or resume from it.

use sluice_pipeline::config::Config;
use sluice_pipeline::format;
use sluice_pipeline::slot::{self, SlotFacts};

use super::report::Report;

pub(super) fn check_slot(
    config: &Config,
    slot: Option<&SlotFacts>,
    database: &str,
    report: &mut Report,
) {
    let name = &config.replication.slot;
    let item = format!("slot {name}");
    let Some(slot) = slot else {
        let then = if config.snapshot.copies_tables() {
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
    let drop = slot::drop_sql(name);
    let another = "choose another replication.slot";
    if slot.slot_type != "logical" {
        report.fail(&item, format!("is a {} slot", slot.slot_type), another);
        return;
    }
    if !slot.in_current_database {
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
    let position = match (slot.lag_bytes, slot.retained_bytes) {
        (Some(lag), Some(retained)) => format!(
            "{} behind the current WAL position, retaining {} of WAL",
            format::bytes(lag),
            format::bytes(retained)
        ),
        _ => "its lag is unknown (no WAL position to measure it from)".to_owned(),
    };
    if slot.invalidated() {
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
