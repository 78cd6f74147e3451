//! What the database says about the captured tables: which exist, their columns and keys, and
//! whether each can be captured.

use sluice_avro::{ColumnSpec, TableSpec};
use tokio_postgres::Client;

/// A table chosen for capture, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedTable {
    pub oid: u32,
    pub spec: TableSpec,
    /// `d`efault, `n`othing, `f`ull or `i`ndex.
    pub replica_identity: char,
}

impl CapturedTable {
    pub fn qualified(&self) -> String {
        format!("{}.{}", self.spec.schema, self.spec.name)
    }

    /// The identifier for SQL: `"schema"."table"`.
    pub fn quoted(&self) -> String {
        format!(
            "{}.{}",
            quote_ident(&self.spec.schema),
            quote_ident(&self.spec.name)
        )
    }

    pub fn has_key(&self) -> bool {
        self.spec.columns.iter().any(|c| c.is_key)
    }
}

/// A table that cannot be captured as configured.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CatalogError {
    #[error(
        "table {0} has no primary key, so its events would have no key and its updates and deletes \
         no old row: add a primary key (ALTER TABLE {0} ADD PRIMARY KEY (...)), or set \
         REPLICA IDENTITY FULL on it (ALTER TABLE {0} REPLICA IDENTITY FULL) and allow keyless \
         tables with tables.allow_keyless = true"
    )]
    NoKey(String),
    #[error(
        "no table matches tables.include {include:?} (minus tables.exclude) in the database: \
         check the patterns (schema.table, * as wildcard) and that the user can see the tables"
    )]
    NothingSelected { include: Vec<String> },
    #[error("reading the catalog failed: {0}")]
    Query(String),
}

/// All ordinary and partitioned root tables outside the system schemas, as
/// (oid, schema, name, replica identity).
pub async fn list_tables(
    client: &Client,
) -> Result<Vec<(u32, String, String, char)>, CatalogError> {
    let rows = client
        .query(
            "SELECT c.oid, n.nspname::text, c.relname::text, c.relreplident::text
               FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
                AND n.nspname NOT IN ('pg_catalog', 'information_schema')
                AND n.nspname NOT LIKE 'pg\\_toast%' AND n.nspname NOT LIKE 'pg\\_temp%'
              ORDER BY 2, 3",
            &[],
        )
        .await
        .map_err(|e| CatalogError::Query(query_error(&e)))?;
    Ok(rows
        .iter()
        .map(|row| {
            let identity: String = row.get(3);
            (
                row.get::<_, u32>(0),
                row.get(1),
                row.get(2),
                identity.chars().next().unwrap_or('d'),
            )
        })
        .collect())
}

/// The columns and key of table `oid`. The key is the primary key, or the replica identity
/// index for REPLICA IDENTITY USING INDEX.
pub async fn describe(
    client: &Client,
    oid: u32,
    schema: &str,
    name: &str,
    replica_identity: char,
) -> Result<CapturedTable, CatalogError> {
    let rows = client
        .query(
            "SELECT a.attname::text, a.atttypid, a.atttypmod, NOT a.attnotnull,
                    COALESCE(a.attnum = ANY (
                      SELECT unnest(i.indkey) FROM pg_index i
                       WHERE i.indrelid = a.attrelid
                         AND (CASE WHEN $2 = 'i' THEN i.indisreplident ELSE i.indisprimary END)
                    ), false)
               FROM pg_attribute a
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = ''
              ORDER BY a.attnum",
            &[&oid, &replica_identity.to_string()],
        )
        .await
        .map_err(|e| CatalogError::Query(query_error(&e)))?;
    let columns = rows
        .iter()
        .map(|row| ColumnSpec {
            name: row.get(0),
            type_oid: row.get(1),
            type_modifier: row.get(2),
            nullable: row.get(3),
            is_key: row.get(4),
            type_info: Default::default(),
        })
        .collect();
    Ok(CapturedTable {
        oid,
        spec: TableSpec {
            schema: schema.to_owned(),
            name: name.to_owned(),
            columns,
        },
        replica_identity,
    })
}

/// Refuses a table without a key unless keyless tables are allowed and it has
/// REPLICA IDENTITY FULL.
pub fn check_capturable(table: &CapturedTable, allow_keyless: bool) -> Result<(), CatalogError> {
    if table.has_key() || (allow_keyless && table.replica_identity == 'f') {
        Ok(())
    } else {
        Err(CatalogError::NoKey(table.qualified()))
    }
}

fn query_error(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{} (SQLSTATE {})", db.message(), db.code().code()),
        None => err.to_string(),
    }
}

/// An SQL identifier, quoted.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal.
pub fn quote_literal(value: &str) -> String {
    format!("'{}'", value.replace('\'', "''"))
}
