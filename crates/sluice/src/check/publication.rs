//! The publication: whether it publishes every chosen table, or sluice can make it do so.

use std::collections::HashSet;

use sluice_pipeline::catalog::{CapturedTable, quote_ident};
use sluice_pipeline::describe;
use sluice_pipeline::run::Settings;
use tokio_postgres::Client;

use super::postgres::ServerFacts;
use super::report::Report;
use super::{PG_TIMEOUT, Tables, abbreviated, bounded};

pub(super) async fn check_publication(
    sql: &Client,
    settings: &Settings,
    facts: &ServerFacts,
    tables: &Tables,
    report: &mut Report,
) {
    let item = format!("publication {}", settings.publication);
    let publication = quote_ident(&settings.publication);
    let list = |tables: &[&CapturedTable]| {
        tables
            .iter()
            .map(|t| t.quoted())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let unowned = |chosen: &[&CapturedTable]| -> Vec<String> {
        if facts.superuser {
            return Vec::new();
        }
        chosen
            .iter()
            .filter(|t| !tables.owned.contains(&t.oid))
            .map(|t| t.qualified())
            .collect()
    };
    let found = bounded(
        PG_TIMEOUT,
        sql.query_opt(
            "SELECT pg_has_role(pubowner, 'USAGE'), pubinsert, pubupdate, pubdelete
               FROM pg_publication WHERE pubname = $1",
            &[&settings.publication],
        ),
        |e| describe::pg(&e),
    )
    .await;
    let row = match found {
        Ok(row) => row,
        Err(err) => {
            report.fail(
                &item,
                format!("reading pg_publication failed: {err}"),
                "check that the user may read pg_publication",
            );
            return;
        }
    };
    let chosen: Vec<&CapturedTable> = tables.described.iter().collect();
    let Some(row) = row else {
        let create = format!(
            "CREATE PUBLICATION {publication} FOR TABLE {}",
            list(&chosen)
        );
        let unowned = unowned(&chosen);
        if !settings.create_publication {
            report.fail(
                &item,
                "does not exist, and replication.create_publication is false",
                format!(
                    "as the tables' owner: {create}; or set replication.create_publication = true"
                ),
            );
        } else if !facts.superuser && !facts.can_create_in_database {
            report.fail(
                &item,
                format!(
                    "does not exist, and {} may not create one (no CREATE on database {})",
                    facts.user, facts.database
                ),
                format!("as the tables' owner: {create}"),
            );
        } else if !unowned.is_empty() {
            report.fail(
                &item,
                format!(
                    "does not exist, and {} may not create it: it does not own {}",
                    facts.user,
                    abbreviated(&unowned)
                ),
                format!("as the tables' owner (or a superuser): {create}"),
            );
        } else {
            report.warn(
                &item,
                format!(
                    "does not exist; sluice will create it for the {} chosen table(s)",
                    chosen.len()
                ),
                format!("nothing to do; or create it beforehand: {create}"),
            );
        }
        return;
    };
    let owns_publication: bool = row.get(0);
    let operations: Vec<&str> = [(1, "inserts"), (2, "updates"), (3, "deletes")]
        .into_iter()
        .filter(|&(column, _)| !row.get::<_, bool>(column))
        .map(|(_, operation)| operation)
        .collect();
    let published = bounded(
        PG_TIMEOUT,
        sql.query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables
              WHERE pubname = $1",
            &[&settings.publication],
        ),
        |e| describe::pg(&e),
    )
    .await;
    let published: HashSet<(String, String)> = match published {
        Ok(rows) => rows.iter().map(|row| (row.get(0), row.get(1))).collect(),
        Err(err) => {
            report.fail(
                &item,
                format!("reading pg_publication_tables failed: {err}"),
                "check that the user may read pg_publication_tables",
            );
            return;
        }
    };
    let missing: Vec<&CapturedTable> = chosen
        .iter()
        .copied()
        .filter(|t| !published.contains(&(t.spec.schema.clone(), t.spec.name.clone())))
        .collect();
    if missing.is_empty() {
        if operations.is_empty() {
            report.ok(
                &item,
                format!("exists and publishes all {} chosen table(s)", chosen.len()),
            );
        } else {
            report.warn(
                &item,
                format!(
                    "exists and publishes every chosen table, but not their {}: those changes \
                     never reach Kafka",
                    operations.join(" or ")
                ),
                format!(
                    "ALTER PUBLICATION {publication} SET (publish = 'insert, update, delete, \
                     truncate')"
                ),
            );
        }
        return;
    }
    let add = format!(
        "ALTER PUBLICATION {publication} ADD TABLE {}",
        list(&missing)
    );
    let names: Vec<String> = missing.iter().map(|t| t.qualified()).collect();
    let unowned = unowned(&missing);
    if (facts.superuser || owns_publication) && unowned.is_empty() {
        report.warn(
            &item,
            format!(
                "exists but lacks {}; sluice will add them",
                abbreviated(&names)
            ),
            format!("nothing to do; or add them beforehand: {add}"),
        );
    } else {
        report.fail(
            &item,
            format!(
                "exists but lacks {}, and {} may not add them (that needs owning the \
                 publication and the tables)",
                abbreviated(&names),
                facts.user
            ),
            format!("as the publication's owner: {add}"),
        );
    }
}
