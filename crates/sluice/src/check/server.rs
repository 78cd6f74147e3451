//! What the server is and allows: version, settings and the user's rights, read in one query.

use sluice_pipeline::describe;
use tokio_postgres::Client;

use super::features::Role;
use super::{PG_TIMEOUT, bounded};

/// Settings and rights that decide whether sluice can replicate, read in one query.
#[derive(Debug)]
pub(super) struct ServerFacts {
    pub(super) version_num: i32,
    pub(super) version: String,
    pub(super) wal_level: String,
    pub(super) max_slots: i32,
    pub(super) used_slots: i32,
    pub(super) max_senders: i32,
    pub(super) active_senders: i32,
    /// None before PostgreSQL 13, which has no such setting.
    pub(super) max_slot_wal_keep_size: Option<String>,
    pub(super) superuser: bool,
    pub(super) replication: bool,
    pub(super) user: String,
    pub(super) database: String,
    pub(super) can_create_in_database: bool,
    /// Standby or primary, and the settings that matter for either.
    pub(super) role: Role,
}

pub(super) async fn server_facts(sql: &Client) -> Result<ServerFacts, String> {
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
                    has_database_privilege(current_database(), 'CREATE'),
                    pg_is_in_recovery(), current_setting('hot_standby_feedback')::bool,
                    NULLIF(current_setting('primary_slot_name', true), ''),
                    NULLIF(current_setting('synchronized_standby_slots', true), ''),
                    NULLIF(current_setting('idle_replication_slot_timeout', true), '0')
               FROM pg_roles r WHERE r.rolname = current_user",
            &[],
        ),
        |e| describe::pg(&e),
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
        role: Role {
            standby: row.get(13),
            hot_standby_feedback: row.get(14),
            primary_slot_name: row.get(15),
            synchronized_standby_slots: row.get(16),
            idle_slot_timeout: row.get(17),
        },
    })
}
