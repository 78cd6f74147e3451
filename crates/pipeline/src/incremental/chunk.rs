//! Reading one chunk of a table: its rows after a key, up to `rows` of them, in one
//! REPEATABLE READ transaction, encoded as `r` events.

use std::sync::atomic::Ordering::Relaxed;

use sluice_avro::{Op, Scratch, SnapshotMarker};
use tokio_postgres::Client;

use crate::catalog::{quote_ident, quote_literal};
use crate::clock::now_us;
use crate::config::Config;
use crate::copier::{copy_reader, select_list, snapshot_source};
use crate::error::{PipelineError, pg};
use crate::incremental::ChunkRead;
use crate::outputs::TableOut;

/// Where a table is, as the chunks' queries name it.
#[derive(Debug, Clone)]
pub(crate) struct TableFacts {
    pub(crate) oid: u32,
    /// `schema.table`, for messages and records.
    pub(crate) qualified: String,
    /// Quoted, ready for a query.
    pub(crate) quoted: String,
    /// A partitioned table is read through its root (no `ONLY`).
    pub(crate) partitioned: bool,
}

/// The table `oid` as it is now; `None` when it no longer exists.
pub(crate) async fn table_facts(
    sql: &Client,
    oid: u32,
) -> Result<Option<TableFacts>, PipelineError> {
    let row = sql
        .query_opt(
            "SELECT n.nspname::text, c.relname::text, c.relkind = 'p'
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.oid = $1",
            &[&oid],
        )
        .await
        .map_err(|e| pg("looking up a table to snapshot", &e))?;
    Ok(row.map(|row| {
        let (schema, name): (String, String) = (row.get(0), row.get(1));
        TableFacts {
            oid,
            qualified: format!("{schema}.{name}"),
            quoted: format!("{}.{}", quote_ident(&schema), quote_ident(&name)),
            partitioned: row.get(2),
        }
    }))
}

/// The session settings chunks are read with: literals as written (a key's text is quoted,
/// never escaped otherwise), floats exact in their text, each statement bounded.
pub(crate) const SESSION_SETTINGS: &str = "SET standard_conforming_strings = on; \
     SET extra_float_digits = 3; SET statement_timeout = '300s'";

/// Reads the chunk of `table` after `after` (from its start without), at most `rows` rows,
/// and encodes them with `out`.
pub(crate) async fn read_chunk(
    sql: &Client,
    config: &Config,
    table: &TableFacts,
    out: &TableOut,
    after: Option<&[String]>,
    rows: u64,
) -> Result<ChunkRead, PipelineError> {
    use futures_util::StreamExt as _;
    let names: Vec<&str> = out.shape.iter().map(|(name, _, _)| name.as_str()).collect();
    let keys: Vec<String> = out
        .codec
        .key_columns()
        .iter()
        .filter_map(|&i| names.get(i).map(|name| quote_ident(name)))
        .collect();
    if keys.is_empty() {
        return Err(PipelineError::Setup(format!(
            "{} has no primary key: an incremental snapshot reads a table in key ranges",
            table.qualified
        )));
    }
    let key = format!("({})", keys.join(", "));
    let only = if table.partitioned { "" } else { "ONLY " };
    let from = format!("{only}{}", table.quoted);
    let lower = after.map(|after| format!("{key} > ({})", literals(after)));
    let context = |what: &str| format!("{what} of {}", table.qualified);
    sql.batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ, READ ONLY")
        .await
        .map_err(|e| pg(&context("beginning a chunk"), &e))?;
    // The chunk's last key: the `rows`-th after `after`, by the primary key's index.
    let texts: Vec<String> = keys.iter().map(|k| format!("{k}::text")).collect();
    // Ordered by the columns qualified: a bare name would order by the output column of that
    // name, the key's text.
    let order: Vec<String> = keys
        .iter()
        .map(|k| format!("{}.{k}", table.quoted))
        .collect();
    let upper_query = format!(
        "SELECT {} FROM {from}{} ORDER BY {} OFFSET {} LIMIT 1",
        texts.join(", "),
        lower
            .as_ref()
            .map(|l| format!(" WHERE {l}"))
            .unwrap_or_default(),
        order.join(", "),
        rows.saturating_sub(1)
    );
    let upper = sql
        .query_opt(&upper_query, &[])
        .await
        .map_err(|e| pg(&context("finding a chunk's end"), &e))?
        .map(|row| {
            (0..keys.len())
                .map(|i| row.try_get::<_, String>(i))
                .collect::<Result<Vec<String>, _>>()
        })
        .transpose()
        .map_err(|e| pg(&context("reading a chunk's end"), &e))?;
    let mut range: Vec<String> = lower.into_iter().collect();
    if let Some(upper) = &upper {
        range.push(format!("{key} <= ({})", literals(upper)));
    }
    let range = if range.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", range.join(" AND "))
    };
    let copy = format!(
        "COPY (SELECT {} FROM {from}{range}) TO STDOUT (FORMAT binary)",
        select_list(names.iter().copied(), out)
    );
    tracing::trace!(%upper_query, %copy, "reading a chunk");
    let stream = sql
        .copy_out(&copy)
        .await
        .map_err(|e| pg(&context("reading a chunk"), &e))?;
    futures_util::pin_mut!(stream);
    let mut reader = copy_reader(out);
    let mut chunk = ChunkRead {
        oid: table.oid,
        key_id: out.key_id,
        value_id: out.value_id,
        keys: Vec::new(),
        values: Vec::new(),
        rows: Vec::new(),
        upper,
    };
    let source = snapshot_source(config, SnapshotMarker::Incremental);
    let mut scratch = Scratch::default();
    while let Some(data) = stream.next().await {
        let data = data.map_err(|e| pg(&context("reading a chunk"), &e))?;
        reader.push(&data);
        let time_us = now_us();
        reader
            .rows(|row| {
                out.codec
                    .encode_key(out.key_id, row, &mut chunk.keys, &mut scratch)?;
                out.encode_value(
                    Op::Read,
                    None,
                    Some(row),
                    &source,
                    time_us,
                    &mut chunk.values,
                    &mut scratch,
                )?;
                chunk.rows.push((chunk.keys.len(), chunk.values.len()));
                Ok::<(), PipelineError>(())
            })
            .map_err(|e| PipelineError::Postgres(format!("{}: {e}", context("a chunk"))))??;
    }
    if !reader.finished() {
        return Err(PipelineError::Postgres(format!(
            "{} ended before its end marker",
            context("a chunk's COPY")
        )));
    }
    sql.batch_execute("COMMIT")
        .await
        .map_err(|e| pg(&context("ending a chunk"), &e))?;
    out.metrics
        .snapshot_rows
        .fetch_add(u64::try_from(chunk.rows.len()).unwrap_or(0), Relaxed);
    Ok(chunk)
}

/// A key's column texts as SQL literals, for a row comparison (untyped: each takes its
/// column's type).
fn literals(values: &[String]) -> String {
    values
        .iter()
        .map(|v| quote_literal(v))
        .collect::<Vec<_>>()
        .join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_becomes_quoted_literals() {
        assert_eq!(
            literals(&["1".to_owned(), "it's".to_owned()]),
            "'1', 'it''s'"
        );
    }
}
