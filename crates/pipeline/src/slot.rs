//! The replication slot as PostgreSQL shows it: one query for `run`, `check` and `status`,
//! and what startup does about the slot.

use sluice_pgoutput::Lsn;
use tokio_postgres::Client;

use crate::catalog::quote_literal;
use crate::error::PipelineError;
use crate::state::{SlotState, SnapshotPhase};

/// One row of `pg_replication_slots`, with the WAL positions it is measured against. Columns a
/// server version lacks read as `None`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlotFacts {
    /// The database the slot decodes (`None` for a physical slot).
    pub database: Option<String>,
    /// Whether that is the database connected to.
    pub in_current_database: bool,
    /// The output plugin (`None` for a physical slot).
    pub plugin: Option<String>,
    /// `logical` or `physical`.
    pub slot_type: String,
    pub active: bool,
    pub active_pid: Option<i32>,
    pub confirmed_flush_lsn: Option<Lsn>,
    pub restart_lsn: Option<Lsn>,
    /// PostgreSQL 13 on: `reserved`, `extended`, `unreserved` or `lost`.
    pub wal_status: Option<String>,
    /// PostgreSQL 13 on: bytes that may still be written before the slot is lost.
    pub safe_wal_size: Option<i64>,
    /// Why the slot was invalidated: PostgreSQL 17's `invalidation_reason`, or PostgreSQL
    /// 16's `conflicting` as `conflict with recovery`.
    pub invalidation: Option<String>,
    /// PostgreSQL 17 on: how long the slot has been unused, in milliseconds.
    pub inactive_ms: Option<i64>,
    /// PostgreSQL 17 on: whether standbys with `sync_replication_slots` keep a copy of it.
    pub failover: Option<bool>,
    /// The server's current WAL position (its replay position on a standby).
    pub current_lsn: Option<Lsn>,
    /// WAL the slot holds back: from its restart LSN to the current position, in bytes.
    pub retained_bytes: Option<i64>,
    /// How far the confirmed position is behind the current one, in bytes.
    pub lag_bytes: Option<i64>,
}

impl SlotFacts {
    /// Whether PostgreSQL has invalidated the slot: its WAL is gone, it cannot be streamed.
    pub fn invalidated(&self) -> bool {
        self.wal_status.as_deref() == Some("lost") || self.invalidation.is_some()
    }
}

/// The slot named `name` (in any database: slot names are cluster-wide), if it exists.
pub async fn read(sql: &Client, name: &str) -> Result<Option<SlotFacts>, tokio_postgres::Error> {
    // Columns newer than the oldest supported server are read through to_jsonb, which yields
    // null where a column does not exist.
    let row = sql
        .query_opt(
            "WITH w AS (
               SELECT CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                           ELSE pg_current_wal_lsn() END AS lsn
             )
             SELECT s.database::text, s.database IS NOT DISTINCT FROM current_database(),
                    s.plugin::text, s.slot_type::text, s.active, s.active_pid,
                    s.confirmed_flush_lsn::text, s.restart_lsn::text,
                    to_jsonb(s) ->> 'wal_status',
                    (to_jsonb(s) ->> 'safe_wal_size')::bigint,
                    COALESCE(to_jsonb(s) ->> 'invalidation_reason',
                             CASE WHEN (to_jsonb(s) ->> 'conflicting')::boolean
                                  THEN 'conflict with recovery' END),
                    (EXTRACT(EPOCH FROM now() - (to_jsonb(s) ->> 'inactive_since')::timestamptz)
                       * 1000)::bigint,
                    w.lsn::text,
                    pg_wal_lsn_diff(w.lsn, s.restart_lsn)::bigint,
                    pg_wal_lsn_diff(w.lsn, s.confirmed_flush_lsn)::bigint,
                    (to_jsonb(s) ->> 'failover')::boolean
               FROM pg_replication_slots s, w
              WHERE s.slot_name = $1",
            &[&name],
        )
        .await?;
    let lsn = |text: Option<String>| text.and_then(|text| text.parse().ok());
    Ok(row.map(|row| SlotFacts {
        database: row.get(0),
        in_current_database: row.get(1),
        plugin: row.get(2),
        slot_type: row.get(3),
        active: row.get(4),
        active_pid: row.get(5),
        confirmed_flush_lsn: lsn(row.get(6)),
        restart_lsn: lsn(row.get(7)),
        wal_status: row.get(8),
        safe_wal_size: row.get(9),
        invalidation: row.get(10),
        inactive_ms: row.get(11),
        current_lsn: lsn(row.get(12)),
        retained_bytes: row.get(13),
        lag_bytes: row.get(14),
        failover: row.get(15),
    }))
}

/// The slot `name` if it exists in this database, refusing one of another database or plugin.
pub(crate) async fn existing(sql: &Client, name: &str) -> Result<Option<SlotFacts>, PipelineError> {
    let Some(slot) = read(sql, name)
        .await
        .map_err(|e| crate::error::pg("reading pg_replication_slots", &e))?
    else {
        return Ok(None);
    };
    if !slot.in_current_database {
        return Err(PipelineError::Setup(format!(
            "replication slot {name} decodes database {}, not this one: choose another \
             replication.slot",
            slot.database
                .as_deref()
                .unwrap_or("(none: a physical slot)")
        )));
    }
    let plugin = slot.plugin.as_deref().unwrap_or_default();
    if plugin != "pgoutput" {
        return Err(PipelineError::Setup(format!(
            "replication slot {name} uses the {plugin} plugin, not pgoutput: choose another \
             replication.slot or drop that slot"
        )));
    }
    Ok(Some(slot))
}

/// The statement that drops the slot `name`, for people to run.
pub fn drop_sql(name: &str) -> String {
    format!("SELECT pg_drop_replication_slot({})", quote_literal(name))
}

/// What startup does about the replication slot.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum SlotPlan {
    /// Stream from the existing slot's confirmed position.
    Stream,
    /// Create the slot (dropping the one of that name first), and take the snapshot when one
    /// is configured.
    Create { drop_existing: bool },
}

/// Decides from the existing slot's confirmed position (if it exists) and the state recorded
/// for its name whether to stream from it or start again from a new slot and snapshot. The
/// recorded state describes the slot only if that slot has got at least to the recorded
/// consistent point; a slot without any recorded state, when snapshots are on, is refused:
/// whether its snapshot completed cannot be known, and dropping it could lose changes.
pub(crate) fn plan(
    slot: &str,
    existing: Option<Lsn>,
    recorded: Option<SlotState>,
    snapshot: bool,
) -> Result<SlotPlan, PipelineError> {
    let Some(confirmed) = existing else {
        return Ok(SlotPlan::Create {
            drop_existing: false,
        });
    };
    if !snapshot {
        return Ok(SlotPlan::Stream);
    }
    match recorded {
        Some(SlotState {
            phase: SnapshotPhase::Complete,
            consistent_point: Some(point),
            ..
        }) if confirmed >= point => Ok(SlotPlan::Stream),
        Some(SlotState {
            phase: SnapshotPhase::Complete,
            consistent_point,
            ..
        }) => {
            tracing::warn!(%slot, confirmed = %confirmed, recorded_consistent_point = ?consistent_point.map(|p| p.to_string()), "the slot is not the one the recorded snapshot was taken from (it is confirmed before that snapshot's consistent point); taking a new snapshot from a new slot");
            Ok(SlotPlan::Create {
                drop_existing: true,
            })
        }
        Some(SlotState {
            phase: SnapshotPhase::Started,
            ..
        }) => {
            // A snapshot began from this slot and never completed: its rows may be partial
            // and its snapshot point is gone. Start again from a new slot and snapshot point.
            tracing::warn!(%slot, "the previous snapshot did not complete; taking a new one");
            Ok(SlotPlan::Create {
                drop_existing: true,
            })
        }
        None => Err(PipelineError::Setup(format!(
            "replication slot {slot} exists, but the state topic records no snapshot for it \
             (the topic was deleted, its records expired under a delete policy, or another \
             program made the slot): sluice cannot tell whether a snapshot completed, and \
             dropping the slot could lose changes. To take a new snapshot, drop the slot \
             (sluice teardown, or {}); to stream from it as it is, set snapshot.mode = \
             \"never\"",
            drop_sql(slot)
        ))),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn recorded(phase: SnapshotPhase, point: Option<u64>) -> Option<SlotState> {
        Some(SlotState {
            phase,
            consistent_point: point.map(Lsn),
            per_table: true,
        })
    }

    #[test]
    fn a_slot_is_streamed_only_when_the_recorded_snapshot_is_of_it() {
        let plan =
            |existing: Option<u64>, state, snapshot| plan("s", existing.map(Lsn), state, snapshot);
        let create = SlotPlan::Create {
            drop_existing: false,
        };
        let recreate = SlotPlan::Create {
            drop_existing: true,
        };
        // No slot: create one, whatever the state says (an old slot's `complete` included).
        assert_eq!(plan(None, None, true).unwrap(), create);
        let complete = recorded(SnapshotPhase::Complete, Some(100));
        assert_eq!(plan(None, complete, true).unwrap(), create);
        // A slot that got at least to the recorded snapshot's point is the one it was of.
        assert_eq!(plan(Some(100), complete, true).unwrap(), SlotPlan::Stream);
        assert_eq!(plan(Some(500), complete, true).unwrap(), SlotPlan::Stream);
        // One confirmed before that point is another slot: a new snapshot.
        assert_eq!(plan(Some(99), complete, true).unwrap(), recreate);
        let started = recorded(SnapshotPhase::Started, None);
        assert_eq!(plan(Some(500), started, true).unwrap(), recreate);
        // Without snapshots there is nothing to match.
        assert_eq!(plan(Some(500), None, false).unwrap(), SlotPlan::Stream);
    }

    #[test]
    fn a_slot_without_recorded_state_is_refused_not_dropped() {
        let error = plan("s", Some(Lsn(500)), None, true)
            .unwrap_err()
            .to_string();
        assert!(error.contains("records no snapshot"), "{error}");
        assert!(error.contains("snapshot.mode"), "{error}");
    }
}
