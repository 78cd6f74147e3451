//! The publication: what it is now, what it must become for the chosen tables (one plan, for
//! `run`, which carries it out, and `check`, which reports it), and the SQL of each step.

use std::collections::HashSet;

use tokio_postgres::Client;

use crate::catalog::{CapturedTable, quote_ident};
use crate::connect;
use crate::describe;
use crate::error::{PipelineError, pg};

/// A publication as `pg_publication` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publication {
    /// Whether the connected user may alter it (owns it, or is a member of its owner).
    pub owned: bool,
    pub inserts: bool,
    pub updates: bool,
    pub deletes: bool,
    /// `publish_via_partition_root`.
    pub via_root: bool,
    /// The tables it publishes or lists, `(schema, table)`.
    pub tables: HashSet<(String, String)>,
}

impl Publication {
    /// The operations it does not publish, by name (`updates`, ...): their changes never reach
    /// sluice.
    pub fn unpublished_operations(&self) -> Vec<&'static str> {
        [
            (self.inserts, "inserts"),
            (self.updates, "updates"),
            (self.deletes, "deletes"),
        ]
        .into_iter()
        .filter(|(published, _)| !published)
        .map(|(_, operation)| operation)
        .collect()
    }

    fn publishes(&self, table: &CapturedTable) -> bool {
        self.tables
            .contains(&(table.spec.schema.clone(), table.spec.name.clone()))
    }
}

/// The publication `name`, if it exists.
pub async fn read(sql: &Client, name: &str) -> Result<Option<Publication>, tokio_postgres::Error> {
    let Some(row) = sql
        .query_opt(
            "SELECT pg_has_role(pubowner, 'USAGE'), pubinsert, pubupdate, pubdelete, pubviaroot
               FROM pg_publication WHERE pubname = $1",
            &[&name],
        )
        .await?
    else {
        return Ok(None);
    };
    // The tables it publishes, and those it lists: a partitioned table it lists shows in
    // pg_publication_tables only as its partitions until it publishes through the root, and
    // must not be added again (PostgreSQL refuses a table already listed).
    let tables = sql
        .query(
            "SELECT schemaname::text, tablename::text FROM pg_publication_tables
              WHERE pubname = $1
             UNION
             SELECT n.nspname::text, c.relname::text
               FROM pg_publication p
               JOIN pg_publication_rel r ON r.prpubid = p.oid
               JOIN pg_class c ON c.oid = r.prrelid
               JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE p.pubname = $1",
            &[&name],
        )
        .await?
        .iter()
        .map(|row| (row.get(0), row.get(1)))
        .collect();
    Ok(Some(Publication {
        owned: row.get(0),
        inserts: row.get(1),
        updates: row.get(2),
        deletes: row.get(3),
        via_root: row.get(4),
        tables,
    }))
}

/// What the publication needs so that it publishes every chosen table, partitioned ones
/// through their root. A publication that publishes more than the selection is left as it
/// is: sluice skips those tables' changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan<'a> {
    /// Nothing: it publishes them all, as sluice needs.
    Ready,
    /// It does not exist: create it for the chosen tables, through partition roots.
    Create { tables: Vec<&'a CapturedTable> },
    /// It exists: add the tables it lacks, and publish partitions through their root when a
    /// chosen table is partitioned and it does not yet.
    Alter {
        add: Vec<&'a CapturedTable>,
        via_root: bool,
    },
}

/// The plan for publication `existing` (`None`: it does not exist) and the chosen `tables`.
pub fn plan<'a>(existing: Option<&Publication>, tables: &'a [CapturedTable]) -> Plan<'a> {
    let Some(publication) = existing else {
        return Plan::Create {
            tables: tables.iter().collect(),
        };
    };
    let add: Vec<&CapturedTable> = tables
        .iter()
        .filter(|t| !publication.publishes(t))
        .collect();
    let via_root = !publication.via_root && tables.iter().any(|t| t.partitioned);
    if add.is_empty() && !via_root {
        Plan::Ready
    } else {
        Plan::Alter { add, via_root }
    }
}

/// `CREATE PUBLICATION` for `tables`, through partition roots: a partitioned table's
/// changes arrive as the root's, on one topic.
pub fn create_sql(name: &str, tables: &[&CapturedTable]) -> String {
    format!(
        "CREATE PUBLICATION {} FOR TABLE {} WITH (publish_via_partition_root = true)",
        quote_ident(name),
        list(tables)
    )
}

/// `ALTER PUBLICATION ... ADD TABLE` for `tables`.
pub fn add_sql(name: &str, tables: &[&CapturedTable]) -> String {
    format!(
        "ALTER PUBLICATION {} ADD TABLE {}",
        quote_ident(name),
        list(tables)
    )
}

/// `ALTER PUBLICATION ... SET (publish_via_partition_root = true)`.
pub fn via_root_sql(name: &str) -> String {
    format!(
        "ALTER PUBLICATION {} SET (publish_via_partition_root = true)",
        quote_ident(name)
    )
}

/// `DROP PUBLICATION`, for `sluice teardown`.
pub fn drop_sql(name: &str) -> String {
    format!("DROP PUBLICATION {}", quote_ident(name))
}

/// `ALTER PUBLICATION ... SET (publish = ...)` with every operation sluice captures.
pub fn publish_all_sql(name: &str) -> String {
    format!(
        "ALTER PUBLICATION {} SET (publish = 'insert, update, delete, truncate')",
        quote_ident(name)
    )
}

fn list(tables: &[&CapturedTable]) -> String {
    tables
        .iter()
        .map(|t| t.quoted())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads publication `name` and carries out its plan for `tables`; `create` says whether
/// sluice may create it.
pub(crate) async fn ensure(
    sql: &Client,
    name: &str,
    tables: &[CapturedTable],
    create: bool,
) -> Result<(), PipelineError> {
    let existing = read(sql, name)
        .await
        .map_err(|e| pg("reading the publication", &e))?;
    let plan = plan(existing.as_ref(), tables);
    if !matches!(plan, Plan::Ready) && connect::in_recovery(sql).await? {
        let statement = match &plan {
            Plan::Create { tables } => create_sql(name, tables),
            Plan::Alter { add, .. } if !add.is_empty() => add_sql(name, add),
            _ => via_root_sql(name),
        };
        return Err(PipelineError::Setup(format!(
            "publication {name} does not publish what sluice captures, and sluice reads a \
             standby, where nothing can be created: run {statement} on the primary"
        )));
    }
    match plan {
        Plan::Ready => {
            tracing::info!(publication = %name, "reusing the publication");
        }
        Plan::Create { tables } => {
            let statement = create_sql(name, &tables);
            if !create {
                return Err(PipelineError::Setup(format!(
                    "publication {name} does not exist and replication.create_publication is \
                     false: create it ({statement}) or let sluice create it"
                )));
            }
            sql.batch_execute(&statement).await.map_err(|e| {
                PipelineError::Setup(format!(
                    "creating publication {name} failed ({}): the user must own the tables, \
                     or create the publication beforehand",
                    describe::pg(&e)
                ))
            })?;
            tracing::info!(publication = %name, tables = tables.len(), "created the publication");
        }
        Plan::Alter { add, via_root } => {
            if via_root {
                let statement = via_root_sql(name);
                sql.batch_execute(&statement).await.map_err(|e| {
                    PipelineError::Setup(format!(
                        "publication {name} publishes partitions as tables of their own, but \
                         sluice captures a partitioned table through its root ({}): run \
                         {statement} as the publication's owner",
                        describe::pg(&e)
                    ))
                })?;
                tracing::info!(publication = %name, "the publication now publishes partitions through their root");
            }
            if !add.is_empty() {
                let names: Vec<String> = add.iter().map(|t| t.quoted()).collect();
                sql.batch_execute(&add_sql(name, &add)).await.map_err(|e| {
                    PipelineError::Setup(format!(
                        "adding {} to publication {name} failed ({}): add them by hand or let \
                         the user own the publication",
                        names.join(", "),
                        describe::pg(&e)
                    ))
                })?;
                tracing::info!(publication = %name, added = %names.join(", "), "reusing the publication, with tables added");
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use sluice_avro::TableSpec;

    use super::*;

    fn table(name: &str, partitioned: bool) -> CapturedTable {
        CapturedTable {
            oid: 0,
            spec: TableSpec {
                schema: "s".to_owned(),
                name: name.to_owned(),
                columns: Vec::new(),
            },
            shape: Vec::new(),
            replica_identity: 'd',
            partitioned,
        }
    }

    fn publication(tables: &[&str], via_root: bool) -> Publication {
        Publication {
            owned: true,
            inserts: true,
            updates: true,
            deletes: false,
            via_root,
            tables: tables
                .iter()
                .map(|t| ("s".to_owned(), (*t).to_owned()))
                .collect(),
        }
    }

    #[test]
    fn the_plan_adds_what_is_missing_and_publishes_partitions_through_their_root() {
        let tables = [table("a", false), table("p", true)];
        let [a, p] = [&tables[0], &tables[1]];
        assert_eq!(plan(None, &tables), Plan::Create { tables: vec![a, p] });
        assert_eq!(
            plan(Some(&publication(&["a", "p"], true)), &tables),
            Plan::Ready
        );
        // A partitioned table listed without the root setting: the setting only, for
        // PostgreSQL refuses to add a table the publication lists.
        assert_eq!(
            plan(Some(&publication(&["a", "p"], false)), &tables),
            Plan::Alter {
                add: vec![],
                via_root: true
            }
        );
        assert_eq!(
            plan(Some(&publication(&["a"], false)), &tables),
            Plan::Alter {
                add: vec![p],
                via_root: true
            }
        );
        // Without a partitioned table the setting does not matter.
        assert_eq!(
            plan(Some(&publication(&[], false)), &tables[..1]),
            Plan::Alter {
                add: vec![a],
                via_root: false
            }
        );
        assert_eq!(
            plan(Some(&publication(&["a"], false)), &tables[..1]),
            Plan::Ready
        );
    }

    #[test]
    fn statements_quote_their_names() {
        let tables = [table("a", false), table("p\"q", true)];
        let chosen: Vec<&CapturedTable> = tables.iter().collect();
        assert_eq!(
            create_sql("pub", &chosen),
            "CREATE PUBLICATION \"pub\" FOR TABLE \"s\".\"a\", \"s\".\"p\"\"q\" WITH \
             (publish_via_partition_root = true)"
        );
        assert_eq!(
            add_sql("pub", &chosen[..1]),
            "ALTER PUBLICATION \"pub\" ADD TABLE \"s\".\"a\""
        );
        assert_eq!(
            via_root_sql("pub"),
            "ALTER PUBLICATION \"pub\" SET (publish_via_partition_root = true)"
        );
        assert_eq!(publication(&[], true).unpublished_operations(), ["deletes"]);
    }
}
