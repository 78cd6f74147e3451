//! One sluice per slot: a second process with the same configuration (the other half of an
//! HA pair) stands by until the first one's session ends, then takes over.
//!
//! The lock is a session-level advisory lock of the catalog connection, keyed by the slot's
//! name. PostgreSQL releases it when that session ends, whether the process holding it
//! stopped, crashed, was killed or lost its connection. The slot is exclusive too, but only
//! while it streams: the lock also keeps two processes from creating the slot, reading the
//! snapshot state or taking the snapshot at the same time.

use std::sync::atomic::Ordering::Relaxed;
use std::time::Duration;

use tokio_postgres::Client;

use crate::error::{PipelineError, pg};
use crate::metrics;
use crate::slot;

/// How often a standing-by process tries the lock, and then looks whether the slot is free.
const POLL: Duration = Duration::from_millis(250);

/// How long the walsender of a sluice that just ended may keep the slot before its holder is
/// named: PostgreSQL ends it as soon as it sees the connection gone.
const HOLDER_GRACE: Duration = Duration::from_secs(5);

/// The advisory lock's key for `slot`: a 64-bit FNV-1a hash of the slot's name, the same in
/// every version of sluice (processes of two versions side by side, during an upgrade, must
/// take the same lock).
fn lock_key(slot: &str) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in b"sluice slot ".iter().chain(slot.as_bytes()) {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

/// Takes the lock of `slot` on `sql`'s session, standing by (for as long as it takes) while
/// another session holds it; then waits until no walsender holds the slot either (the
/// previous holder's ends when PostgreSQL sees its connection gone). The lock is held until
/// `sql`'s session ends.
pub(crate) async fn hold(sql: &Client, slot: &str) -> Result<(), PipelineError> {
    let key = lock_key(slot);
    let mut standing_by = false;
    let mut started = tokio::time::Instant::now();
    loop {
        let taken: bool = sql
            .query_one("SELECT pg_try_advisory_lock($1)", &[&key])
            .await
            .map_err(|e| pg("taking the lock of the replication slot", &e))?
            .get(0);
        if taken {
            break;
        }
        started = tokio::time::Instant::now();
        if !standing_by {
            standing_by = true;
            metrics::global().standing_by.store(true, Relaxed);
            let holder = holder(sql, key).await?;
            tracing::info!(
                %slot,
                holder = holder.as_deref().unwrap_or("unknown"),
                "another sluice streams this slot: standing by to take over when it stops"
            );
        }
        tokio::time::sleep(POLL).await;
    }
    let mut waited = false;
    loop {
        let facts = slot::read(sql, slot)
            .await
            .map_err(|e| pg("reading the replication slot", &e))?;
        let Some(pid) = facts
            .filter(|facts| facts.active)
            .map(|facts| facts.active_pid)
        else {
            break;
        };
        // Past a moment, not the walsender of a sluice that just ended: someone else's.
        if !waited && started.elapsed() > HOLDER_GRACE {
            waited = true;
            standing_by = true;
            metrics::global().standing_by.store(true, Relaxed);
            tracing::warn!(
                %slot,
                holder = %pid.map_or_else(|| "unknown".to_owned(), |pid| format!("PostgreSQL backend {pid}")),
                "the replication slot is in use by a process that holds no sluice lock (another program, or a sluice cut off from PostgreSQL): waiting for it to let go"
            );
        }
        tokio::time::sleep(POLL).await;
    }
    if standing_by {
        metrics::global().standing_by.store(false, Relaxed);
        tracing::info!(%slot, "the other sluice stopped: taking over");
    }
    Ok(())
}

/// Who holds the lock `key`, as PostgreSQL shows the session: its backend pid, application
/// name and client address.
async fn holder(sql: &Client, key: i64) -> Result<Option<String>, PipelineError> {
    // A bigint advisory lock shows as its high half in classid, its low half in objid.
    let [a, b, c, d, e, f, g, h] = key.to_be_bytes();
    let (high, low) = (
        u32::from_be_bytes([a, b, c, d]),
        u32::from_be_bytes([e, f, g, h]),
    );
    let row = sql
        .query_opt(
            "SELECT format('backend %s (%s from %s)', a.pid, a.application_name,
                           COALESCE(a.client_addr::text, 'a local socket'))
               FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
              WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
                AND l.classid = $1 AND l.objid = $2
                AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
            &[&high, &low],
        )
        .await
        .map_err(|e| pg("reading who holds the lock of the replication slot", &e))?;
    Ok(row.map(|row| row.get(0)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lock_key_is_the_same_in_every_version() {
        // Fixed: a change would let two versions of sluice stream one slot side by side.
        assert_eq!(lock_key("sluice"), lock_key("sluice"));
        assert_ne!(lock_key("sluice"), lock_key("sluice2"));
        assert_eq!(lock_key(""), 0x4d84_3359_996f_25cc);
    }
}
