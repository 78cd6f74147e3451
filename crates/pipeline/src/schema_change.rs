//! A table described by PostgreSQL (a Relation message): captured under its name and shape
//! from then on, or skipped when outside the selection.

use std::collections::{HashMap, HashSet};

use sluice_avro::{ColumnSpec, Registry, RegistryError, TableSpec};
use sluice_kafka::Producer;
use sluice_pgoutput::{Relation, ReplicaIdentity};
use sluice_postgres::ChangeStream;
use tokio_postgres::Client;

use crate::catalog::{self, Shape};
use crate::error::{PipelineError, pg};
use crate::naming;
use crate::outputs::{TableOut, table_out};
use crate::settings::Settings;

/// What a Relation message means for the table it describes: nothing when its name and shape
/// are those already captured; otherwise the table is captured from here on under its name
/// and shape (a table that joined the publication, a shape change, a rename), or, when it is
/// outside the selection, its changes are skipped from here on.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn on_relation(
    sql: &Client,
    registry: &mut Registry,
    outs: &mut HashMap<u32, TableOut>,
    skipped: &mut HashSet<u32>,
    relation: &Relation,
    settings: &Settings,
    producer: &Producer,
    changes: &mut ChangeStream,
) -> Result<(), PipelineError> {
    let oid = relation.relation_id();
    let table = format!("{}.{}", relation.namespace(), relation.name());
    if !settings
        .tables
        .selects(relation.namespace(), relation.name())
    {
        // The publication covers more than the selection (FOR ALL TABLES, FOR TABLES IN
        // SCHEMA, a table excluded after it was published): its changes are skipped, and the
        // slot still moves past them.
        if outs.remove(&oid).is_some() {
            tracing::warn!(%table, "a captured table is no longer selected (renamed out of tables.include, or excluded): its changes are skipped from here on");
        } else if !skipped.contains(&oid) {
            tracing::debug!(%table, "the publication covers a table outside the selection: its changes are skipped");
        }
        skipped.insert(oid);
        return Ok(());
    }
    skipped.remove(&oid);
    let shape: Shape = relation
        .columns()
        .iter()
        .map(|c| (c.name().to_owned(), c.type_oid(), c.type_modifier()))
        .collect();
    if outs
        .get(&oid)
        .is_some_and(|out| out.shape == shape && out.collection == table)
    {
        return Ok(());
    }
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
        && !(settings.tables.allow_keyless && relation.replica_identity() == ReplicaIdentity::Full)
    {
        return Err(catalog::CatalogError::NoKey(table).into());
    }
    catalog::resolve_defaults(sql, oid, &mut spec.columns).await?;
    catalog::resolve_types(sql, &mut spec.columns).await?;
    let topic = naming::table_topic(&settings.topic_prefix, &spec.schema, &spec.name);
    let before = outs
        .get(&oid)
        .map(|out| (out.shape.clone(), out.topic.clone(), out.partitions));
    let partitions = match &before {
        Some((_, old, partitions)) if *old == topic => *partitions,
        // A table added to the publication while sluice runs, or renamed: its topic may not
        // exist yet.
        _ => producer
            .ensure_topics(std::slice::from_ref(&topic))
            .await?
            .first()
            .copied()
            .unwrap_or(settings.kafka.partitions),
    };
    let out = match table_out(
        registry,
        (topic, partitions),
        &spec,
        shape.clone(),
        settings,
        Some(changes),
    )
    .await
    {
        Err(PipelineError::Registry(err @ RegistryError::Incompatible { .. })) => {
            let changed =
                before.map_or_else(String::new, |(before, _, _)| shape_changes(&before, &shape));
            return Err(PipelineError::Setup(format!(
                "table {table}: the new shape ({changed}) was refused: {err}"
            )));
        }
        other => other?,
    };
    if settings.binary {
        let undecodable = binary_undecodable(sql, std::iter::once(&out)).await?;
        if !undecodable.is_empty() {
            return Err(PipelineError::BinaryUndecodable(undecodable.join(", ")));
        }
    }
    match before {
        None => {
            tracing::info!(%table, topic = %out.topic, "a table joined the publication or the selection; capturing it from here on");
        }
        Some((_, old_topic, _)) if old_topic != out.topic => {
            tracing::warn!(%table, from = %old_topic, to = %out.topic, "a captured table was renamed; its events go to the topic of its new name from here on");
        }
        Some(_) => {
            tracing::info!(%table, "table shape changed; new schema versions registered");
        }
    }
    outs.insert(oid, out);
    Ok(())
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
