//! A table described by PostgreSQL (a Relation message): captured under its name and shape
//! from then on, or skipped when outside the selection.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::time::Duration;

use sluice_avro::{ColumnSpec, Registry, RegistryError, TableSpec, TypeOptions};
use sluice_kafka::Producer;
use sluice_pgoutput::{Relation, ReplicaIdentity};
use tokio_postgres::Client;

use crate::catalog::{self, Shape};
use crate::config::{Config, TablesSection};
use crate::error::{PipelineError, pg};
use crate::naming;
use crate::outputs::{Patience, TableOut, table_out};

/// Whether PostgreSQL's description of a table (a Relation message) asks for capturing it
/// under a new name or shape. A table outside the selection is not: its changes are skipped
/// from here on (the publication covers more than the selection: FOR ALL TABLES, FOR TABLES
/// IN SCHEMA, a table excluded after it was published), and the slot still moves past them.
/// Neither is one already captured under that name and shape.
pub(crate) fn needs_describing(
    relation: &Relation,
    selection: &TablesSection,
    outs: &mut HashMap<u32, TableOut>,
    skipped: &mut HashSet<u32>,
) -> bool {
    let oid = relation.relation_id();
    if !selection.selects(relation.namespace(), relation.name()) {
        let table = format!("{}.{}", relation.namespace(), relation.name());
        if outs.remove(&oid).is_some() {
            tracing::warn!(%table, "a captured table is no longer selected (renamed out of tables.include, or excluded): its changes are skipped from here on");
        } else if !skipped.contains(&oid) {
            tracing::debug!(%table, "the publication covers a table outside the selection: its changes are skipped");
        }
        skipped.insert(oid);
        return false;
    }
    skipped.remove(&oid);
    !outs.get(&oid).is_some_and(|out| {
        out.shape == shape_of(relation)
            && out.collection == format!("{}.{}", relation.namespace(), relation.name())
    })
}

/// A table's columns as a Relation message describes them.
fn shape_of(relation: &Relation) -> Shape {
    relation
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_oid(), c.type_modifier()))
        .collect()
}

/// Says what a new description of a table changed.
pub(crate) fn note_described(before: Option<&TableOut>, out: &TableOut) {
    let table = &out.collection;
    match before {
        None => {
            tracing::info!(%table, topic = %out.topic, "a table joined the publication or the selection; capturing it from here on");
        }
        Some(before) if before.topic != out.topic => {
            tracing::warn!(%table, from = %before.topic, to = %out.topic, "a captured table was renamed; its events go to the topic of its new name from here on");
        }
        Some(_) => {
            tracing::info!(%table, "table shape changed; new schema versions registered");
        }
    }
}

/// Where the stream loop has a table described: its columns, keys and types from the
/// catalog, its topic and registered schemas. The catalog, or a test's fake.
pub(crate) trait Describe {
    /// The outputs of the table `relation` describes (`before`: how it was captured until
    /// now), sent in transaction `xid`. A transient error (the registry or the broker away)
    /// is tried again later.
    fn describe(
        &mut self,
        relation: &Relation,
        before: Option<&TableOut>,
        xid: Option<u32>,
    ) -> impl Future<Output = Result<TableOut, PipelineError>>;
}

/// Whether transaction `xid` (32 bits, as pgoutput sends it) is visible to a new snapshot:
/// widened to 64 bits by the epoch of the snapshot's xmax (one less when above it).
const VISIBLE: &str = "WITH s AS (SELECT pg_current_snapshot() AS snap),
     x AS (SELECT snap, pg_snapshot_xmax(snap)::text::bigint AS xmax FROM s),
     c AS (SELECT snap, xmax, ((xmax >> 32) << 32) | $1::bigint AS candidate FROM x)
SELECT pg_visible_in_snapshot(
         (CASE WHEN candidate > xmax THEN candidate - 4294967296 ELSE candidate END)::text::xid8,
         snap)
  FROM c";

/// Waits until transaction `xid` is visible to the catalog session. The walsender decodes a
/// commit as soon as its record is flushed, before the committing backend makes it visible:
/// the catalog read in between would describe the table as it was before that transaction's
/// DDL (a column added with its default, a primary key added). Bounded by the caller
/// ([`crate::stream::DESCRIBE_TIMEOUT`]).
async fn wait_until_visible(sql: &Client, xid: u32) -> Result<(), PipelineError> {
    loop {
        let visible: bool = sql
            .query_one(VISIBLE, &[&i64::from(xid)])
            .await
            .map_err(|e| pg("asking whether the transaction is visible", &e))?
            .get(0);
        if visible {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Tables described from the catalog, their schemas registered and their topics created.
pub(crate) struct Catalog<'a> {
    pub(crate) sql: &'a Client,
    pub(crate) registry: &'a Registry,
    pub(crate) producer: &'a Producer,
    pub(crate) config: &'a Config,
    /// How values are carried in this database.
    pub(crate) type_options: &'a TypeOptions,
    /// Whether the stream is in binary mode: a table whose binary form sluice cannot decode
    /// then ends it, to start again in text mode.
    pub(crate) binary: bool,
}

impl Describe for Catalog<'_> {
    async fn describe(
        &mut self,
        relation: &Relation,
        before: Option<&TableOut>,
        xid: Option<u32>,
    ) -> Result<TableOut, PipelineError> {
        let (sql, config) = (self.sql, self.config);
        if let Some(xid) = xid {
            wait_until_visible(sql, xid).await?;
        }
        let oid = relation.relation_id();
        let table = format!("{}.{}", relation.namespace(), relation.name());
        let shape = shape_of(relation);
        let key_columns = key_columns(sql, relation).await?;
        let mut spec = TableSpec {
            schema: relation.namespace().to_owned(),
            name: relation.name().to_owned(),
            columns: relation
                .columns()
                .iter()
                .map(|c| {
                    let is_key = key_columns.iter().any(|k| k == c.name());
                    ColumnSpec {
                        name: c.name().to_owned(),
                        type_oid: c.type_oid(),
                        type_modifier: c.type_modifier(),
                        nullable: !is_key,
                        is_key,
                        type_info: Default::default(),
                        default: None,
                    }
                })
                .collect(),
        };
        if key_columns.is_empty()
            && !(config.tables.allow_keyless
                && relation.replica_identity() == ReplicaIdentity::Full)
        {
            return Err(catalog::CatalogError::NoKey(table).into());
        }
        catalog::resolve_defaults(sql, oid, &mut spec.columns).await?;
        catalog::resolve_types(sql, &mut spec.columns).await?;
        let topic = naming::table_topic(&config.kafka.topic_prefix, &spec.schema, &spec.name);
        let partitions = match before {
            Some(before) if before.topic == topic => before.partitions,
            // A table added to the publication while sluice runs, or renamed: its topic may
            // not exist yet.
            _ => self
                .producer
                .ensure_topics(std::slice::from_ref(&topic))
                .await?
                .first()
                .copied()
                .unwrap_or(config.kafka.partitions),
        };
        let out = match table_out(
            self.registry,
            (topic, partitions),
            &spec,
            shape.clone(),
            config,
            self.type_options,
            Patience::Once,
        )
        .await
        {
            Err(PipelineError::Registry(err @ RegistryError::Incompatible { .. })) => {
                let changed =
                    before.map_or_else(String::new, |before| shape_changes(&before.shape, &shape));
                return Err(PipelineError::Setup(format!(
                    "table {table}: the new shape ({changed}) was refused: {err}"
                )));
            }
            other => other?,
        };
        if self.binary {
            let undecodable = binary_undecodable(sql, std::iter::once(&out)).await?;
            if !undecodable.is_empty() {
                return Err(PipelineError::BinaryUndecodable(undecodable.join(", ")));
            }
        }
        Ok(out)
    }
}

/// The names of the key columns of a table as `relation` describes it. pgoutput flags the
/// replica identity's columns, which under `REPLICA IDENTITY FULL` are all of them: the key
/// of such a table is its primary key, from the catalog (none for a keyless table).
pub(crate) async fn key_columns(
    sql: &Client,
    relation: &Relation,
) -> Result<Vec<String>, PipelineError> {
    if relation.replica_identity() == ReplicaIdentity::Full {
        return Ok(catalog::primary_key_columns(sql, relation.relation_id()).await?);
    }
    Ok(relation
        .columns()
        .iter()
        .filter(|c| c.is_key())
        .map(|c| c.name().to_owned())
        .collect())
}

/// The columns of `outs` whose binary form sluice cannot decode, as `schema.table.column
/// (type): why`: pgoutput's binary mode sends a column in binary whenever its type has a
/// send function, so such a column is carried in text mode.
pub(crate) async fn binary_undecodable(
    sql: &Client,
    outs: impl Iterator<Item = &TableOut>,
) -> Result<Vec<String>, PipelineError> {
    let mut undecodable = Vec::new();
    for out in outs {
        for (column, why) in out.codec.binary_unsupported() {
            let declared = out.shape.iter().find(|(name, ..)| name == column);
            let type_name: String = match declared {
                Some((_, oid, modifier)) => sql
                    .query_one("SELECT format_type($1, NULLIF($2, -1))", &[oid, modifier])
                    .await
                    .map_err(|e| pg("naming a column's type", &e))?
                    .get(0),
                None => String::new(),
            };
            undecodable.push(format!("{}.{column} ({type_name}): {why}", out.collection));
        }
    }
    Ok(undecodable)
}

/// The columns that differ between two shapes of a table, for an error message.
pub(crate) fn shape_changes(before: &Shape, after: &Shape) -> String {
    let find = |shape: &Shape, name: &str| shape.iter().find(|(n, _, _)| n == name).cloned();
    let mut changes = Vec::new();
    for (name, oid, modifier) in after {
        match find(before, name) {
            None => changes.push(format!("column {name} added")),
            Some((_, old_oid, old_modifier)) if (old_oid, old_modifier) != (*oid, *modifier) => {
                changes.push(format!("column {name} changed type"));
            }
            Some(_) => {}
        }
    }
    for (name, _, _) in before {
        if find(after, name).is_none() {
            changes.push(format!("column {name} dropped"));
        }
    }
    changes.join(", ")
}

#[cfg(test)]
mod shape_tests {
    use super::shape_changes;

    #[test]
    pub(crate) fn shape_changes_name_added_dropped_and_retyped_columns() {
        let col = |name: &str, oid: u32| (name.to_owned(), oid, -1);
        let before = vec![col("id", 23), col("v", 25), col("gone", 25)];
        let after = vec![col("id", 23), col("v", 23), col("new", 16)];
        assert_eq!(
            shape_changes(&before, &after),
            "column v changed type, column new added, column gone dropped"
        );
    }
}
