//! The data every contestant reads: the tables, the backlog of changes, the warm-up rows, and
//! how many Kafka records each of them becomes.
//!
//! Rows have four fixed columns (`id bigint` key, `n integer`, `ts timestamptz`,
//! `amount numeric(12,2)`, about 28 bytes) and a text payload that fills the row to the chosen
//! size with hexadecimal MD5 digests of the id, so that lz4 finds as little to squeeze as in
//! real data and the broker carries full-size batches.

use std::time::Instant;

use anyhow::Context as _;
use sluice_pgoutput::Lsn;
use tokio_postgres::Client;

use super::args::{Changes, DrainSpec, SnapshotSpec};

/// The table of the drain workloads; `<DRAIN_TABLE><tables>_<i>` when spread over several.
pub(crate) const DRAIN_TABLE: &str = "sluicebench_drain";
/// Snapshot tables are `<prefix><tables>_<i>`.
pub(crate) const SNAPSHOT_TABLE_PREFIX: &str = "sluicebench_snap";
/// Bytes of the fixed columns; the payload is the rest of the row.
const FIXED_COLUMN_BYTES: u64 = 28;
/// Updates cycle over the ids below this, which no delete touches.
const UPDATE_RANGE: u64 = 10_000;

/// Out of every ten changes, how many insert, update and delete (in that order).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Shares {
    pub inserts: u64,
    pub updates: u64,
    pub deletes: u64,
}

impl Shares {
    /// The shares of a drain's `changes`.
    pub(crate) fn of(changes: Changes) -> Shares {
        match changes {
            Changes::Insert => Shares::INSERT_ONLY,
            Changes::Mix => Shares::MIX,
        }
    }

    pub(crate) const INSERT_ONLY: Shares = Shares {
        inserts: 10,
        updates: 0,
        deletes: 0,
    };
    pub(crate) const MIX: Shares = Shares {
        inserts: 6,
        updates: 3,
        deletes: 1,
    };

    /// The digit ranges of change numbers (mod 10) that insert, update, delete.
    fn ranges(self) -> [(u64, u64); 3] {
        let updates_end = self.inserts + self.updates;
        [
            (0, self.inserts),
            (self.inserts, updates_end),
            (updates_end, updates_end + self.deletes),
        ]
    }
}

/// How many change numbers below `n` have their last decimal digit in `from..upto`.
fn count_below(n: u64, (from, upto): (u64, u64)) -> u64 {
    n / 10 * (upto - from) + (n % 10).clamp(from, upto) - from
}

/// [`count_below`] as SQL over the bigint expression `n`.
fn count_below_sql(n: &str, (from, upto): (u64, u64)) -> String {
    format!(
        "(({n}) / 10 * {width} + least(greatest(({n}) % 10, {from}), {upto}) - {from})",
        width = upto - from
    )
}

/// `CREATE TABLE` for a benchmark table.
fn create_table(name: &str) -> String {
    format!(
        "DROP TABLE IF EXISTS {name};
         CREATE TABLE {name} (id bigint PRIMARY KEY, n integer NOT NULL, ts timestamptz NOT NULL,
                              amount numeric(12,2) NOT NULL, payload text NOT NULL);"
    )
}

/// The column values of the row whose id is the bigint expression `id`.
fn row_values(id: &str, row_bytes: u64) -> String {
    let payload = row_bytes.saturating_sub(FIXED_COLUMN_BYTES);
    format!(
        "{id}, ({id} % 1000000)::integer, timestamptz '2026-01-01 00:00:00+00' + {id} * interval '1 second', \
         ({id} % 10000000) / 100.0, \
         left((SELECT string_agg(md5({id}::text || '.' || j), '') FROM generate_series(1, {digests}) j), {payload})",
        digests = payload.div_ceil(32).max(1)
    )
}

/// An LSN that PostgreSQL printed.
pub(crate) async fn query_lsn(sql: &Client, query: &str) -> anyhow::Result<Lsn> {
    let text: String = sql.query_one(query, &[]).await?.get(0);
    text.parse()
        .with_context(|| format!("PostgreSQL's answer to {query}"))
}

/// The tables of a drain workload.
pub(crate) fn drain_tables(spec: &DrainSpec) -> Vec<String> {
    if spec.tables <= 1 {
        return vec![DRAIN_TABLE.to_owned()];
    }
    (0..spec.tables)
        .map(|i| format!("{DRAIN_TABLE}{}_{i}", spec.tables))
        .collect()
}

/// The drain workload's tables, each with the rows its updates and deletes touch (written
/// before any slot exists, so no contestant sees them).
pub(crate) async fn create_drain_tables(sql: &Client, spec: &DrainSpec) -> anyhow::Result<()> {
    let shares = Shares::of(spec.mix);
    for table in drain_tables(spec) {
        sql.batch_execute(&create_table(&table)).await?;
        if shares.updates + shares.deletes > 0 {
            let prefill = UPDATE_RANGE + count_below(spec.changes, shares.ranges()[2]);
            sql.batch_execute(&format!(
                "INSERT INTO {table} SELECT {} FROM generate_series(0, {}) g",
                row_values("g", spec.row_bytes),
                prefill - 1
            ))
            .await?;
            sql.batch_execute(&format!("VACUUM (ANALYZE) {table}"))
                .await?;
        }
    }
    Ok(())
}

/// Commits one insert of row `-number` into `table`; returns the WAL position after the insert,
/// before the commit.
pub(crate) async fn warm_row(
    sql: &Client,
    table: &str,
    row_bytes: u64,
    number: u64,
) -> anyhow::Result<Lsn> {
    let id = format!("(-{number})::bigint");
    let after = in_transaction(
        sql,
        &format!("INSERT INTO {table} SELECT {}", row_values(&id, row_bytes)),
    )
    .await?;
    Ok(after)
}

/// Runs `statements` in a transaction; returns the WAL insert position after them, before the
/// commit: a slot confirmed at or past it has seen the commit (sluice confirms commits' ends).
async fn in_transaction(sql: &Client, statements: &str) -> anyhow::Result<Lsn> {
    sql.batch_execute("BEGIN").await?;
    let after = async {
        sql.batch_execute(statements).await?;
        query_lsn(sql, "SELECT pg_current_wal_insert_lsn()::text").await
    }
    .await;
    sql.batch_execute(if after.is_ok() { "COMMIT" } else { "ROLLBACK" })
        .await?;
    after
}

/// What the backlog is, once written.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backlog {
    pub changes: u64,
    /// Kafka records it becomes: a delete is an event and a tombstone, for sluice and Debezium
    /// alike.
    pub records: u64,
    /// After the last transaction's changes, before its commit.
    pub last_changed: Lsn,
    /// The WAL write position after the last commit: pg_recvlogical's `--endpos`.
    pub end: Lsn,
    pub seconds: f64,
}

/// Writes the drain workload's backlog: `spec.changes` changes in transactions of
/// `spec.rows_per_transaction`, change number `i` inserting, updating or deleting by its last
/// decimal digit (all inserts, or 6/3/1 of ten), in one server-side loop; transaction `t`
/// writes to table `t % spec.tables`.
pub(crate) async fn write_backlog(sql: &Client, spec: &DrainSpec) -> anyhow::Result<Backlog> {
    let k = spec.rows_per_transaction;
    let transactions = spec.changes / k;
    anyhow::ensure!(transactions > 0, "fewer changes than rows per transaction");
    let changes = transactions * k;
    let shares = Shares::of(spec.mix);
    let [inserts, updates, deletes] = shares.ranges();
    let insert_base = if shares.updates + shares.deletes > 0 {
        UPDATE_RANGE + count_below(changes, deletes)
    } else {
        0
    };
    // The statements of transaction `t` (a plpgsql variable): its changes are lo..hi.
    let (lo, hi) = (format!("t::bigint * {k}"), format!("(t::bigint + 1) * {k}"));
    let table_body = |table: &str| {
        let mut body = format!(
            "INSERT INTO {table} SELECT {} FROM generate_series({insert_base} + {}, {insert_base} + {} - 1) g;",
            row_values("g", spec.row_bytes),
            count_below_sql(&lo, inserts),
            count_below_sql(&hi, inserts)
        );
        if shares.updates > 0 {
            body.push_str(&format!(
                " UPDATE {table} SET n = n + 1 WHERE id IN \
                 (SELECT x % {UPDATE_RANGE} FROM generate_series({}, {} - 1) x);",
                count_below_sql(&lo, updates),
                count_below_sql(&hi, updates)
            ));
        }
        if shares.deletes > 0 {
            body.push_str(&format!(
                " DELETE FROM {table} WHERE id >= {UPDATE_RANGE} + {} AND id < {UPDATE_RANGE} + {};",
                count_below_sql(&lo, deletes),
                count_below_sql(&hi, deletes)
            ));
        }
        body
    };
    let tables = drain_tables(spec);
    let body = match tables.as_slice() {
        [table] => table_body(table),
        _ => {
            let cases: String = tables
                .iter()
                .enumerate()
                .map(|(i, table)| format!(" WHEN {i} THEN {}", table_body(table)))
                .collect();
            format!("CASE t % {}{cases} END CASE;", tables.len())
        }
    };
    let started = Instant::now();
    if transactions > 1 {
        sql.batch_execute(&format!(
            "DO $$ BEGIN FOR t IN 0..{} LOOP {body} COMMIT; END LOOP; END $$",
            transactions - 2
        ))
        .await
        .context("writing the backlog")?;
    }
    let last_changed = in_transaction(
        sql,
        &format!(
            "DO $$ DECLARE t bigint := {}; BEGIN {body} END $$",
            transactions - 1
        ),
    )
    .await
    .context("writing the backlog's last transaction")?;
    let end = query_lsn(sql, "SELECT pg_current_wal_lsn()::text").await?;
    let records = count_below(changes, inserts)
        + count_below(changes, updates)
        + 2 * count_below(changes, deletes);
    Ok(Backlog {
        changes,
        records,
        last_changed,
        end,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// Creates and fills the snapshot workload's tables; returns their names.
pub(crate) async fn create_snapshot_tables(
    sql: &Client,
    spec: &SnapshotSpec,
) -> anyhow::Result<Vec<String>> {
    let tables = u64::from(spec.tables);
    let mut names = Vec::new();
    let mut next_id = 0;
    for i in 0..tables {
        let name = format!("{SNAPSHOT_TABLE_PREFIX}{tables}_{i}");
        let rows = spec.rows / tables + u64::from(i < spec.rows % tables);
        create_filled_table(sql, &name, next_id..next_id + rows, spec.row_bytes).await?;
        next_id += rows;
        names.push(name);
    }
    Ok(names)
}

/// Creates table `name` (again) with the rows whose ids are `ids`, at rest: vacuumed and
/// analyzed.
pub(crate) async fn create_filled_table(
    sql: &Client,
    name: &str,
    ids: std::ops::Range<u64>,
    row_bytes: u64,
) -> anyhow::Result<()> {
    sql.batch_execute(&format!(
        "{} INSERT INTO {name} SELECT {} FROM generate_series({}, {}) g;",
        create_table(name),
        row_values("g", row_bytes),
        ids.start,
        // An empty range is an empty table.
        i128::from(ids.end) - 1
    ))
    .await
    .with_context(|| format!("filling {name}"))?;
    // Visibility map and statistics set, as on a table at rest, for every contestant alike.
    sql.batch_execute(&format!("VACUUM (ANALYZE) {name}"))
        .await?;
    Ok(())
}

pub(crate) async fn drop_tables(sql: &Client, names: &[String]) -> anyhow::Result<()> {
    if !names.is_empty() {
        sql.batch_execute(&format!("DROP TABLE IF EXISTS {}", names.join(", ")))
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_by_last_digit() {
        let [inserts, updates, deletes] = Shares::MIX.ranges();
        assert_eq!(count_below(0, inserts), 0);
        assert_eq!(count_below(1, inserts), 1);
        assert_eq!(count_below(10, inserts), 6);
        assert_eq!(count_below(10, updates), 3);
        assert_eq!(count_below(10, deletes), 1);
        assert_eq!(count_below(9, deletes), 0);
        assert_eq!(count_below(17, updates), 4);
        for n in 0..100 {
            let total: u64 = Shares::MIX
                .ranges()
                .iter()
                .map(|r| count_below(n, *r))
                .sum();
            assert_eq!(total, n);
            assert_eq!(count_below(n, Shares::INSERT_ONLY.ranges()[0]), n);
        }
    }
}
