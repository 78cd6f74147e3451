//! What the database says about the captured tables: which exist, their columns and keys, and
//! whether each can be captured.

use sluice_avro::{ColumnSpec, ElementType, TableSpec, TypeInfo};
use tokio_postgres::Client;

/// A table chosen for capture, as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CapturedTable {
    pub oid: u32,
    pub spec: TableSpec,
    /// The columns as declared (names, type OIDs and modifiers before domains are resolved),
    /// to compare with the server's Relation messages.
    pub shape: Shape,
    /// `d`efault, `n`othing, `f`ull or `i`ndex.
    pub replica_identity: char,
    /// A partitioned table: its rows live in its partitions, and it is published through
    /// this root (`publish_via_partition_root`), one topic for all partitions.
    pub partitioned: bool,
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

/// Column names, declared type OIDs and type modifiers, in column order.
pub type Shape = Vec<(String, u32, i32)>;

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
    let mut columns: Vec<ColumnSpec> = rows
        .iter()
        .map(|row| ColumnSpec {
            name: row.get(0),
            type_oid: row.get(1),
            type_modifier: row.get(2),
            nullable: row.get(3),
            is_key: row.get(4),
            type_info: Default::default(),
            default: None,
        })
        .collect();
    resolve_defaults(client, oid, &mut columns).await?;
    let shape = columns
        .iter()
        .map(|c| (c.name.clone(), c.type_oid, c.type_modifier))
        .collect();
    resolve_types(client, &mut columns).await?;
    let partitioned: bool = client
        .query_one("SELECT relkind = 'p' FROM pg_class WHERE oid = $1", &[&oid])
        .await
        .map_err(|e| CatalogError::Query(query_error(&e)))?
        .get(0);
    Ok(CapturedTable {
        oid,
        shape,
        partitioned,
        spec: TableSpec {
            schema: schema.to_owned(),
            name: name.to_owned(),
            columns,
        },
        replica_identity,
    })
}

/// Sets each column's `default` where its default is a constant: PostgreSQL's text form of
/// that constant in the column's type (so `numeric(6,2) DEFAULT 1.5` gives `1.50`). Defaults
/// that are expressions (`now()`, `nextval(...)`, `CURRENT_TIMESTAMP`) are left out: they
/// have no single value.
pub async fn resolve_defaults(
    client: &Client,
    oid: u32,
    columns: &mut [ColumnSpec],
) -> Result<(), CatalogError> {
    let rows = client
        .query(
            "SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid),
                    format_type(a.atttypid, a.atttypmod)
               FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = ''",
            &[&oid],
        )
        .await
        .map_err(|e| CatalogError::Query(query_error(&e)))?;
    for row in rows {
        let (name, expression, type_name): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let Some(column) = columns.iter_mut().find(|c| c.name == name) else {
            continue;
        };
        if !is_constant(&expression) {
            continue;
        }
        // A constant that does not convert (it should) is simply not carried.
        column.default = client
            .query_one(&format!("SELECT (({expression})::{type_name})::text"), &[])
            .await
            .ok()
            .and_then(|row| row.get(0));
    }
    Ok(())
}

/// Whether a default expression, as `pg_get_expr` prints it, is a literal with casts:
/// `5`, `(-1)`, `'abc'::text`, `true`. Anything calling a function or naming a special value
/// (`now()`, `CURRENT_TIMESTAMP`) is not.
fn is_constant(expression: &str) -> bool {
    let inner = expression.trim_start_matches('(').trim_end_matches(')');
    let literal_start = inner.starts_with('\'')
        || inner.starts_with('-')
        || inner.starts_with(|c: char| c.is_ascii_digit())
        || inner.starts_with("true")
        || inner.starts_with("false");
    // Outside quoted text: no call, no sub-expression.
    let mut quoted = false;
    let calls = inner.chars().any(|c| {
        if c == '\'' {
            quoted = !quoted;
        }
        !quoted && c == '('
    });
    literal_start && !calls
}

/// Objects with OIDs below this were made by initdb: the built-in types, which need no lookup.
const FIRST_NORMAL_OBJECT_ID: u32 = 16384;

/// How deep types inside types (a composite's fields, a range's subtype, an array's element)
/// are looked up; a deeper one is left undescribed, and a column holding it is streamed in
/// text mode.
const MAX_TYPE_DEPTH: usize = 32;

/// Fills in each column's [`TypeInfo`] from `pg_type` for types that are not built in: enums
/// (with their labels), domains (mapped as their base type, the domain's name kept),
/// extension types such as hstore and citext (by name), arrays of such types, and composite,
/// range and multirange types (carried as text; their fields' and subtypes' types described
/// too, to print their binary form as text).
pub async fn resolve_types(
    client: &Client,
    columns: &mut [ColumnSpec],
) -> Result<(), CatalogError> {
    for column in columns.iter_mut() {
        if column.type_oid < FIRST_NORMAL_OBJECT_ID {
            continue;
        }
        let (oid, modifier, info) =
            resolve_type(client, column.type_oid, column.type_modifier, 0).await?;
        column.type_oid = oid;
        column.type_modifier = modifier;
        column.type_info = info;
    }
    Ok(())
}

/// One row of `pg_type`, with what a lookup needs.
struct PgType {
    name: String,
    display: String,
    typtype: char,
    base: u32,
    base_modifier: i32,
    element: u32,
    is_array: bool,
    enum_labels: Vec<String>,
    has_send: bool,
    /// A composite type's `pg_class` row.
    relation: u32,
}

async fn pg_type(client: &Client, oid: u32) -> Result<PgType, CatalogError> {
    let row = client
        .query_one(
            "SELECT t.typname::text, format_type(t.oid, NULL), t.typtype::text, t.typbasetype,
                    t.typtypmod, t.typelem, t.typcategory = 'A' AND t.typlen = -1,
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                           WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
                    t.typsend::oid <> 0, t.typrelid
               FROM pg_type t WHERE t.oid = $1",
            &[&oid],
        )
        .await
        .map_err(|e| CatalogError::Query(query_error(&e)))?;
    let typtype: String = row.get(2);
    Ok(PgType {
        name: row.get(0),
        display: row.get(1),
        typtype: typtype.chars().next().unwrap_or('b'),
        base: row.get(3),
        base_modifier: row.get(4),
        element: row.get(5),
        is_array: row.get(6),
        enum_labels: row.get(7),
        has_send: row.get(8),
        relation: row.get(9),
    })
}

/// The OID and modifier to map a column of type `oid` as (a domain's base type's), and its
/// [`TypeInfo`]; `depth` is how deep inside other types it is.
async fn resolve_type(
    client: &Client,
    oid: u32,
    modifier: i32,
    depth: usize,
) -> Result<(u32, i32, TypeInfo), CatalogError> {
    let (mut oid, mut modifier) = (oid, modifier);
    let mut domain = None;
    let mut found = pg_type(client, oid).await?;
    // A domain over a domain: the outermost name is the column's, the innermost base its type.
    while found.typtype == 'd' {
        domain.get_or_insert_with(|| found.display.clone());
        if modifier < 0 {
            modifier = found.base_modifier;
        }
        oid = found.base;
        found = pg_type(client, oid).await?;
    }
    let mut info = TypeInfo {
        typtype: found.typtype,
        domain,
        enum_labels: std::mem::take(&mut found.enum_labels),
        no_send: !found.has_send,
        ..TypeInfo::default()
    };
    if depth >= MAX_TYPE_DEPTH {
        info.name = found.name;
        return Ok((oid, modifier, info));
    }
    if found.is_array && found.element != 0 {
        let (element_oid, element_modifier, element_info) =
            Box::pin(resolve_type(client, found.element, modifier, depth + 1)).await?;
        // An array of a domain has no modifier of its own: its elements' is the domain's
        // (numeric(8,2) elements are a Decimal(8,2) then, as the domain's own column is).
        if modifier < 0 {
            modifier = element_modifier;
        }
        info.element = Some(Box::new(ElementType {
            type_oid: element_oid,
            declared_oid: found.element,
            info: element_info,
        }));
    }
    let subtype_query = match found.typtype {
        'r' => Some("SELECT rngsubtype FROM pg_range WHERE rngtypid = $1"),
        'm' => Some("SELECT rngsubtype FROM pg_range WHERE rngmultitypid = $1"),
        _ => None,
    };
    if let Some(query) = subtype_query {
        let subtype: u32 = client
            .query_one(query, &[&oid])
            .await
            .map_err(|e| CatalogError::Query(query_error(&e)))?
            .get(0);
        info.subtype = Some(Box::new(resolve_inner(client, subtype, depth + 1).await?));
    }
    if found.typtype == 'c' {
        let rows = client
            .query(
                "SELECT atttypid FROM pg_attribute
                  WHERE attrelid = $1 AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                &[&found.relation],
            )
            .await
            .map_err(|e| CatalogError::Query(query_error(&e)))?;
        for row in rows {
            let field = resolve_inner(client, row.get(0), depth + 1).await?;
            info.fields.push(field);
        }
    }
    info.name = found.name;
    Ok((oid, modifier, info))
}

/// A type inside another (a composite's field, a range's subtype): built-in ones need no
/// lookup.
async fn resolve_inner(
    client: &Client,
    oid: u32,
    depth: usize,
) -> Result<ElementType, CatalogError> {
    if oid < FIRST_NORMAL_OBJECT_ID {
        return Ok(ElementType {
            type_oid: oid,
            declared_oid: oid,
            info: TypeInfo::default(),
        });
    }
    let (type_oid, _, info) = Box::pin(resolve_type(client, oid, -1, depth)).await?;
    Ok(ElementType {
        type_oid,
        declared_oid: oid,
        info,
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

#[cfg(test)]
mod tests {
    use super::is_constant;

    #[test]
    fn only_literal_defaults_count_as_constant() {
        for constant in [
            "5",
            "(-1)",
            "'abc'::text",
            "'a(b'::character varying",
            "true",
            "1.5",
        ] {
            assert!(is_constant(constant), "{constant}");
        }
        for expression in [
            "now()",
            "nextval('t_id_seq'::regclass)",
            "CURRENT_TIMESTAMP",
            "lower('A'::text)",
        ] {
            assert!(!is_constant(expression), "{expression}");
        }
    }
}
