//! The publication: whether it publishes every chosen table as `sluice run` needs, or sluice
//! can make it do so. The verdict follows the plan `run` carries out (`publication::plan`),
//! so the two never disagree.

use sluice_pipeline::catalog::CapturedTable;
use sluice_pipeline::config::ReplicationSection;
use sluice_pipeline::describe;
use sluice_pipeline::publication::{self, Plan, Publication};
use tokio_postgres::Client;

use super::report::Report;
use super::server::ServerFacts;
use super::{PG_TIMEOUT, Tables, abbreviated, bounded};

pub(super) async fn check_publication(
    sql: &Client,
    replication: &ReplicationSection,
    facts: &ServerFacts,
    tables: &Tables,
    report: &mut Report,
) {
    let name = &replication.publication;
    let item = format!("publication {name}");
    let found = bounded(PG_TIMEOUT, publication::read(sql, name), |e| {
        describe::pg(&e)
    })
    .await;
    let existing = match found {
        Ok(existing) => existing,
        Err(err) => {
            report.fail(
                &item,
                format!("reading the publication failed: {err}"),
                "check that the user may read pg_publication, pg_publication_rel and \
                 pg_publication_tables",
            );
            return;
        }
    };
    // The tables sluice's user may not put in a publication: those it does not own.
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
    match publication::plan(existing.as_ref(), &tables.described) {
        Plan::Ready => {
            if let Some(existing) = &existing {
                ready(&item, name, existing, tables.described.len(), report);
            }
        }
        Plan::Create { tables: chosen } => {
            let create = publication::create_sql(name, &chosen);
            let unowned = unowned(&chosen);
            if !replication.create_publication {
                report.fail(
                    &item,
                    "does not exist, and replication.create_publication is false",
                    format!(
                        "as the tables' owner: {create}; or set replication.create_publication \
                         = true"
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
        }
        Plan::Alter { add, via_root } => {
            let mut lacks = Vec::new();
            let mut statements = Vec::new();
            if via_root {
                let partitioned: Vec<String> = tables
                    .described
                    .iter()
                    .filter(|t| t.partitioned)
                    .map(CapturedTable::qualified)
                    .collect();
                lacks.push(format!(
                    "publish_via_partition_root (it publishes the partitions of {} as tables \
                     of their own; sluice captures a partitioned table through its root, on \
                     one topic)",
                    abbreviated(&partitioned)
                ));
                statements.push(publication::via_root_sql(name));
            }
            if !add.is_empty() {
                let names: Vec<String> = add.iter().map(|t| t.qualified()).collect();
                lacks.push(abbreviated(&names));
                statements.push(publication::add_sql(name, &add));
            }
            let lacks = lacks.join(" and ");
            let statements = statements.join("; ");
            let owns_publication = existing.as_ref().is_some_and(|p| p.owned);
            if (facts.superuser || owns_publication) && unowned(&add).is_empty() {
                report.warn(
                    &item,
                    format!("exists but lacks {lacks}; sluice will change it so"),
                    format!("nothing to do; or change it beforehand: {statements}"),
                );
            } else {
                let needs = if add.is_empty() {
                    "owning the publication"
                } else {
                    "owning the publication and the tables"
                };
                report.fail(
                    &item,
                    format!(
                        "exists but lacks {lacks}, and {} may not change it (that needs {needs})",
                        facts.user
                    ),
                    format!("as the publication's owner: {statements}"),
                );
            }
        }
    }
}

/// A publication that publishes every chosen table: fine, unless it leaves operations out.
fn ready(item: &str, name: &str, existing: &Publication, chosen: usize, report: &mut Report) {
    let operations = existing.unpublished_operations();
    if operations.is_empty() {
        report.ok(
            item,
            format!("exists and publishes all {chosen} chosen table(s)"),
        );
    } else {
        report.warn(
            item,
            format!(
                "exists and publishes every chosen table, but not their {}: those changes \
                 never reach Kafka",
                operations.join(" or ")
            ),
            publication::publish_all_sql(name),
        );
    }
}
