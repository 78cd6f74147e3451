//! What the database says about the captured tables: which exist, their columns and keys, and
//! whether each can be captured.

use sluice_avro::{ColumnSpec, ElementType, TableSpec, TypeInfo};
use tokio_postgres::Client;

use crate::describe;

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
    #[error("reading the catalog failed: {text}")]
    Query {
        text: String,
        /// The connection failed, the server is going away, or the query ran out of time:
        /// trying again later may succeed.
        transient: bool,
    },
}

impl CatalogError {
    pub(crate) fn query(err: &tokio_postgres::Error) -> Self {
        CatalogError::Query {
            text: describe::pg(err),
            transient: crate::error::pg("", err).is_transient(),
        }
    }

    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            CatalogError::Query {
                transient: true,
                ..
            }
        )
    }
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
        .map_err(|e| CatalogError::query(&e))?;
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
        .map_err(|e| CatalogError::query(&e))?;
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
        .map_err(|e| CatalogError::query(&e))?
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

/// The names of the primary key's columns of table `oid`, in key order; none for a table
/// without one (or that no longer exists).
pub async fn primary_key_columns(client: &Client, oid: u32) -> Result<Vec<String>, CatalogError> {
    let rows = client
        .query(
            "SELECT a.attname::text
               FROM pg_index i, unnest(i.indkey) WITH ORDINALITY AS k(attnum, n), pg_attribute a
              WHERE i.indrelid = $1 AND i.indisprimary
                AND a.attrelid = i.indrelid AND a.attnum = k.attnum
              ORDER BY k.n",
            &[&oid],
        )
        .await
        .map_err(|e| CatalogError::query(&e))?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Sets each column's `default` where its default is a constant: PostgreSQL's text form of
/// that constant in the column's type (so `numeric(6,2) DEFAULT 1.5` gives `1.50`). Defaults
/// that are expressions (`now()`, `nextval(...)`, `CURRENT_TIMESTAMP`) are left out: they
/// have no single value. Nothing from the catalog is executed: the constant is read from the
/// default's deparsed form (`pg_get_expr`), a literal with at most a cast.
pub async fn resolve_defaults(
    client: &Client,
    oid: u32,
    columns: &mut [ColumnSpec],
) -> Result<(), CatalogError> {
    let rows = client
        .query(
            "SELECT a.attname::text, pg_get_expr(d.adbin, d.adrelid)
               FROM pg_attribute a JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped
                AND a.attgenerated = ''",
            &[&oid],
        )
        .await
        .map_err(|e| CatalogError::query(&e))?;
    for row in rows {
        let (name, expression): (String, String) = (row.get(0), row.get(1));
        let Some(column) = columns.iter_mut().find(|c| c.name == name) else {
            continue;
        };
        column.default = constant_literal(&expression)
            .and_then(|literal| in_column_type(literal, column.type_oid, column.type_modifier));
    }
    Ok(())
}

/// The text of the constant a default expression is, as `pg_get_expr` prints one: a literal
/// (`5`, `(-1)`, `1.5`, `true`, `'it''s'`), possibly parenthesised, with at most one cast
/// (`'abc'::character varying`, `'1.5'::double precision`). `None` for anything else: a call,
/// an operator, an array, several casts.
fn constant_literal(expression: &str) -> Option<String> {
    let mut rest = expression.trim();
    while let Some(inner) = rest.strip_prefix('(').and_then(|r| r.strip_suffix(')')) {
        rest = inner.trim();
    }
    let (literal, after) = if let Some(quoted) = rest.strip_prefix('\'') {
        // A quoted literal: '' stands for a quote; it ends at the first lone quote.
        let mut text = String::new();
        let mut chars = quoted.char_indices().peekable();
        let mut end = None;
        while let Some((i, c)) = chars.next() {
            if c == '\'' {
                if chars.peek().is_some_and(|&(_, next)| next == '\'') {
                    chars.next();
                    text.push('\'');
                } else {
                    end = Some(i + 1);
                    break;
                }
            } else {
                text.push(c);
            }
        }
        (text, &quoted[end?..])
    } else {
        // A bare literal: a number (signed, with a fraction or exponent) or a boolean.
        let end = rest.find("::").unwrap_or(rest.len());
        let (token, after) = rest.split_at(end);
        let token = token.trim();
        if !(is_number(token) || token == "true" || token == "false") {
            return None;
        }
        (token.to_owned(), after)
    };
    match after.trim().strip_prefix("::") {
        None if after.trim().is_empty() => Some(literal),
        // One cast to a type name: words, spaces, a modifier in parentheses, quotes of a
        // quoted identifier, dots of a qualified name, array brackets.
        Some(cast)
            if !cast.contains("::")
                && cast.chars().all(|c| {
                    c.is_alphanumeric()
                        || matches!(c, ' ' | '_' | '"' | '.' | '(' | ')' | ',' | '[' | ']')
                }) =>
        {
            Some(literal)
        }
        _ => None,
    }
}

/// Whether `token` is a number as PostgreSQL prints one: `-12`, `1.5`, `1.5e-07`.
fn is_number(token: &str) -> bool {
    fn digits(text: &str) -> Option<&str> {
        let end = text
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(text.len());
        (end > 0).then(|| &text[end..])
    }
    let unsigned = token.strip_prefix('-').unwrap_or(token);
    let Some(mut rest) = digits(unsigned) else {
        return false;
    };
    if let Some(fraction) = rest.strip_prefix('.') {
        match digits(fraction) {
            Some(after) => rest = after,
            None => return false,
        }
    }
    if let Some(exponent) = rest.strip_prefix(['e', 'E']) {
        let exponent = exponent.strip_prefix(['+', '-']).unwrap_or(exponent);
        return digits(exponent) == Some("");
    }
    rest.is_empty()
}

/// A constant's text as PostgreSQL prints it in a column of type `type_oid` with modifier
/// `type_modifier`, where that differs from the literal: `char(n)` pads to n characters, a
/// `numeric(p, s)` prints s decimals. `None` where the literal would be rounded.
fn in_column_type(literal: String, type_oid: u32, type_modifier: i32) -> Option<String> {
    const BPCHAR: u32 = 1042;
    const NUMERIC: u32 = 1700;
    // PostgreSQL's type modifiers count a 4-byte header.
    let modifier = usize::try_from(type_modifier.checked_sub(4)?).ok();
    match (type_oid, modifier) {
        (BPCHAR, Some(length)) => {
            let count = literal.chars().count();
            Some(literal + &" ".repeat(length.saturating_sub(count)))
        }
        (NUMERIC, Some(modifier)) => {
            let scale = modifier & 0xffff;
            if literal.contains(['e', 'E']) {
                return None;
            }
            let decimals = literal
                .split_once('.')
                .map_or(0, |(_, fraction)| fraction.len());
            if decimals > scale {
                return None;
            }
            let point = if decimals == 0 && scale > 0 { "." } else { "" };
            Some(literal + point + &"0".repeat(scale - decimals))
        }
        _ => Some(literal),
    }
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

/// The `pg_type` row of `oid`; `None` when the type no longer exists (a Relation message
/// describes a table as of its WAL position: a type dropped since is still named there).
async fn pg_type(client: &Client, oid: u32) -> Result<Option<PgType>, CatalogError> {
    let row = client
        .query_opt(
            "SELECT t.typname::text, format_type(t.oid, NULL), t.typtype::text, t.typbasetype,
                    t.typtypmod, t.typelem, t.typcategory = 'A' AND t.typlen = -1,
                    ARRAY(SELECT e.enumlabel::text FROM pg_enum e
                           WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
                    t.typsend::oid <> 0, t.typrelid
               FROM pg_type t WHERE t.oid = $1",
            &[&oid],
        )
        .await
        .map_err(|e| CatalogError::query(&e))?;
    let Some(row) = row else { return Ok(None) };
    let typtype: String = row.get(2);
    Ok(Some(PgType {
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
    }))
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
    let Some(mut found) = pg_type(client, oid).await? else {
        return Ok((oid, modifier, dropped_type(oid)));
    };
    // A domain over a domain: the outermost name is the column's, the innermost base its type.
    while found.typtype == 'd' {
        domain.get_or_insert_with(|| found.display.clone());
        if modifier < 0 {
            modifier = found.base_modifier;
        }
        oid = found.base;
        let Some(base) = pg_type(client, oid).await? else {
            return Ok((oid, modifier, dropped_type(oid)));
        };
        found = base;
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
            .map_err(|e| CatalogError::query(&e))?
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
            .map_err(|e| CatalogError::query(&e))?;
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

/// What is known of a type that no longer exists in the catalog: nothing, so its values are
/// carried as their text form, a string (the walsender still prints them with the catalog of
/// their time).
fn dropped_type(oid: u32) -> TypeInfo {
    tracing::warn!(
        type_oid = oid,
        "a column's type no longer exists (dropped since the change was written): its values are carried as their text form"
    );
    // Its binary form cannot be printed without the catalog: binary mode streams in text.
    TypeInfo {
        typtype: 'b',
        no_send: true,
        ..TypeInfo::default()
    }
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
    use super::{constant_literal, in_column_type};

    #[test]
    fn a_literal_with_at_most_a_cast_is_a_constant() {
        for (expression, text) in [
            ("5", "5"),
            ("(-1)", "-1"),
            ("1.5", "1.5"),
            ("1.5e-3", "1.5e-3"),
            ("true", "true"),
            ("'abc'::text", "abc"),
            ("'a(b'::character varying", "a(b"),
            ("'it''s'::text", "it's"),
            ("'1.5'::double precision", "1.5"),
            ("'2024-01-01'::date", "2024-01-01"),
            ("'happy'::\"My Schema\".mood", "happy"),
            ("'{1,2}'::integer[]", "{1,2}"),
            ("''::text", ""),
        ] {
            assert_eq!(
                constant_literal(expression).as_deref(),
                Some(text),
                "{expression}"
            );
        }
    }

    #[test]
    fn anything_else_is_not_a_constant() {
        for expression in [
            "now()",
            "nextval('t_id_seq'::regclass)",
            "CURRENT_TIMESTAMP",
            "lower('A'::text)",
            "('a'::text || 'b'::text)",
            "(1 + 2)",
            "'1'::integer::bigint",
            "ARRAY[1, 2]",
            "'a'::text; DROP TABLE t",
            "'unterminated",
            "x",
            "1+2",
            "1.",
            "--1",
            "1e",
        ] {
            assert_eq!(constant_literal(expression), None, "{expression}");
        }
    }

    #[test]
    fn constants_print_as_the_column_type_does() {
        let char_5 = 5 + 4;
        assert_eq!(
            in_column_type("ab".into(), 1042, char_5).as_deref(),
            Some("ab   ")
        );
        let numeric_6_2 = (6 << 16) + 2 + 4;
        for (literal, text) in [
            ("1.5", Some("1.50")),
            ("1", Some("1.00")),
            ("-0.25", Some("-0.25")),
        ] {
            assert_eq!(
                in_column_type(literal.into(), 1700, numeric_6_2).as_deref(),
                text
            );
        }
        assert_eq!(
            in_column_type("1.555".into(), 1700, numeric_6_2),
            None,
            "rounded"
        );
        assert_eq!(in_column_type("5".into(), 23, -1).as_deref(), Some("5"));
        assert_eq!(
            in_column_type("1.5".into(), 1700, -1).as_deref(),
            Some("1.5")
        );
    }
}
