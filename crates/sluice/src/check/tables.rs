//! The chosen tables: which match, whether the user may read them, whether each has a key.

use sluice_pipeline::catalog::{self, CapturedTable, quote_ident};
use sluice_pipeline::config::Config;
use sluice_pipeline::describe;
use sluice_pipeline::run::choose_tables;
use tokio_postgres::Client;

use super::report::Report;
use super::{PG_TIMEOUT, Tables, abbreviated, bounded};

/// What the connected user may do with one table.
#[derive(Debug)]
struct TableRights {
    select: bool,
    schema_usage: bool,
    owner: bool,
}

async fn table_rights(sql: &Client, oid: u32) -> Result<TableRights, String> {
    let row = bounded(
        PG_TIMEOUT,
        sql.query_one(
            "SELECT has_table_privilege(c.oid, 'SELECT'),
                    has_schema_privilege(c.relnamespace, 'USAGE'),
                    pg_has_role(c.relowner, 'USAGE')
               FROM pg_class c WHERE c.oid = $1",
            &[&oid],
        ),
        |e| describe::pg(&e),
    )
    .await?;
    Ok(TableRights {
        select: row.get(0),
        schema_usage: row.get(1),
        owner: row.get(2),
    })
}

/// The chosen tables: which match, whether the user may read each, and whether each has a
/// key.
pub(super) async fn check_tables(
    sql: &Client,
    config: &Config,
    user: &str,
    report: &mut Report,
) -> Tables {
    const ITEM: &str = "tables";
    let selection = &config.tables;
    let listed = match bounded(PG_TIMEOUT, catalog::list_tables(sql), |e| e.to_string()).await {
        Ok(listed) => listed,
        Err(err) => {
            report.fail(
                ITEM,
                format!("listing the tables failed: {err}"),
                "check that the user may read pg_class and pg_namespace",
            );
            return Tables::default();
        }
    };
    let chosen: Vec<(u32, String, String, char)> = listed
        .into_iter()
        .filter(|(_, schema, name, _)| selection.selects(schema, name))
        .collect();
    if chosen.is_empty() {
        let include: Vec<String> = selection.include.iter().map(ToString::to_string).collect();
        report.fail(
            ITEM,
            format!(
                "no table in database {} matches tables.include [{}] minus tables.exclude",
                config.postgres.database,
                include.join(", ")
            ),
            "check the patterns (schema.table, * as wildcard, names as PostgreSQL stores \
             them: unquoted names are lower case) and that the tables exist",
        );
        return Tables::default();
    }
    let names: Vec<String> = chosen
        .iter()
        .map(|(_, schema, name, _)| format!("{schema}.{name}"))
        .collect();
    report.ok(
        ITEM,
        format!("{} chosen: {}", names.len(), abbreviated(&names)),
    );

    let mut tables = Tables::default();
    let mut all_capturable = true;
    // Per table, then summed up: only problems get a line of their own.
    let mut select = Report::default();
    let mut keys = Report::default();
    let mut keyless = Vec::new();
    for (oid, schema, name, identity) in chosen {
        let describing = catalog::describe(sql, oid, &schema, &name, identity);
        let table = match bounded(PG_TIMEOUT, describing, |e| e.to_string()).await {
            Ok(table) => table,
            Err(err) => {
                keys.fail(
                    &format!("key of {schema}.{name}"),
                    format!("reading its columns failed: {err}"),
                    "check that the user may read pg_attribute and pg_index",
                );
                all_capturable = false;
                continue;
            }
        };
        if check_select(sql, &table, user, &mut select).await {
            tables.owned.insert(table.oid);
        }
        let capturable = check_key(&table, selection.allow_keyless, &mut keys);
        if capturable && !table.has_key() {
            keyless.push(table.qualified());
        }
        all_capturable &= capturable;
        tables.described.push(table);
    }
    report.summarize("SELECT on tables", select, |fine| {
        format!("{user} may read {} chosen table(s)", fine.len())
    });
    report.summarize("keys", keys, |fine| {
        let mut detail = format!("{} chosen table(s) have a key sluice can use", fine.len());
        if !keyless.is_empty() {
            detail.push_str(&format!(
                "; these have none, but REPLICA IDENTITY FULL and tables.allow_keyless, so \
                 their events carry no Kafka key: {}",
                abbreviated(&keyless)
            ));
        }
        detail
    });
    // Only when `sluice run` would get that far: its choice fails on the first keyless table.
    if all_capturable {
        tables.capturable = bounded(PG_TIMEOUT, choose_tables(sql, selection), |e| e.to_string())
            .await
            .ok();
    }
    tables
}

/// Reports whether the user may read `table`; returns whether the user owns it.
async fn check_select(
    sql: &Client,
    table: &CapturedTable,
    user: &str,
    report: &mut Report,
) -> bool {
    let item = format!("SELECT on {}", table.qualified());
    let rights = match table_rights(sql, table.oid).await {
        Ok(rights) => rights,
        Err(err) => {
            report.fail(
                &item,
                format!("reading the privileges failed: {err}"),
                "check that the user may read pg_class",
            );
            return false;
        }
    };
    let role = quote_ident(user);
    let mut grants = Vec::new();
    if !rights.schema_usage {
        grants.push(format!(
            "GRANT USAGE ON SCHEMA {} TO {role}",
            quote_ident(&table.spec.schema)
        ));
    }
    if !rights.select {
        grants.push(format!("GRANT SELECT ON {} TO {role}", table.quoted()));
    }
    if grants.is_empty() {
        report.ok(&item, format!("{user} may read {}", table.qualified()));
    } else {
        report.fail(
            &item,
            format!(
                "{user} may not read {}, which the snapshot copies",
                table.qualified()
            ),
            format!("as the owner: {}", grants.join("; ")),
        );
    }
    rights.owner
}

/// Reports whether `table` has a key sluice can use; returns whether `sluice run` accepts it.
fn check_key(table: &CapturedTable, allow_keyless: bool, report: &mut Report) -> bool {
    let qualified = table.qualified();
    let quoted = table.quoted();
    let item = format!("key of {qualified}");
    if catalog::check_capturable(table, allow_keyless).is_err() {
        report.fail(
            &item,
            format!(
                "{qualified} has no primary key (nor replica identity index), so its events \
                 would have no key and its updates and deletes no old row"
            ),
            format!(
                "add a primary key (ALTER TABLE {quoted} ADD PRIMARY KEY (...)), or set \
                 REPLICA IDENTITY FULL on it (ALTER TABLE {quoted} REPLICA IDENTITY FULL) and \
                 allow keyless tables with tables.allow_keyless = true"
            ),
        );
        return false;
    }
    if !table.has_key() {
        report.ok(
            &item,
            "no key, but REPLICA IDENTITY FULL and tables.allow_keyless: its events carry no \
             Kafka key",
        );
        return true;
    }
    let columns: Vec<&str> = table
        .spec
        .columns
        .iter()
        .filter(|c| c.is_key)
        .map(|c| c.name.as_str())
        .collect();
    let key = format!(
        "{} ({})",
        if table.replica_identity == 'i' {
            "replica identity index"
        } else {
            "primary key"
        },
        columns.join(", ")
    );
    if table.replica_identity == 'n' {
        // Accepted by `sluice run`, but PostgreSQL then refuses the application's writes.
        report.fail(
            &item,
            format!(
                "{key}, but REPLICA IDENTITY NOTHING: once {qualified} is published, \
                 PostgreSQL refuses its UPDATEs and DELETEs"
            ),
            format!("ALTER TABLE {quoted} REPLICA IDENTITY DEFAULT"),
        );
    } else {
        report.ok(&item, key);
    }
    true
}
