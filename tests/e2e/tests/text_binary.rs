//! sluice's conversion of binary values. The same rows go through pgoutput's text mode and
//! binary mode; sluice's table codec (built from the catalog as `sluice run` builds it) turns
//! each into Avro, and
//! - the binary row's Avro must equal the text row's, byte for byte (or both be refused, for
//!   the same column and reason);
//! - each value whose Avro form is PostgreSQL's own text (strings, the types carried as their
//!   text form, enums, integers, ...) must be what PostgreSQL prints for the stored value.
//!
//! The values are the type test's (types.rs: every type and its extremes, arrays of each,
//! multi-dimensional ones) and nested composites, ranges and multiranges of this file's own.
//!
//! And `sluice run` in binary mode streams in text mode, values exact, when a column's binary
//! form is one sluice cannot decode (`regclass` prints a catalog name): from the start, or
//! from when such a column appears.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value;
use sluice_avro::{ColumnKind, Raw, Row, ScalarKind, Scratch, TableCodec, TypeOptions};
use sluice_e2e::pipeline::{
    Sluice, read_events, stop_and_drop_slot, streams_binary, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};
use sluice_pgoutput::{ColumnValue, LogicalMessage};
use sluice_postgres::{
    Change, ChangeStream, PgOutputOptions, ReplicationConnection, SnapshotAction,
};

use crate::types::{
    BINARY_TYPES, Column, TEXT_FORM_TYPES, col, columns_of, create_table, create_types, row_count,
};

/// Nested types of this file's own: ranges over a float and a text subtype, and composites
/// holding ranges, enums, domains, arrays of composites and values that need quoting.
const NESTED_TYPES: &[Column] = &[
    col(
        "floatrange",
        "{s}.floatrange",
        &[
            "'[-Infinity,NaN]'",
            "'(1.5,2)'",
            "'[-0,1e-300)'",
            "'empty'",
            "'(,)'",
        ],
    ),
    col(
        "textrange",
        "{s}.textrange",
        &[
            r#"'["a b","q\"x"]'"#,
            r#"'["",z)'"#,
            r#"'["(","\\")'"#,
            r#"'["[c]","a,b")'"#,
        ],
    ),
    col(
        "inner",
        "{s}.inner_t",
        &[
            r#"$$("[a,""b c"")",it's,7,"'x' & !'y'","2024-02-29 12:00:00+00","-1 days +02:03:00","\\x00ff",NaN,"(1e300,-0)")$$"#,
            "'(,,,,,,,,)'",
            r#"$$("[,)",happy,2147483647,"'a':* <-> 'b':AB","4714-11-24 00:00:00+00 BC","178000000 years","\\x",-Infinity,"(5e-324,1.7976931348623157e308)")$$"#,
        ],
    ),
    col(
        "outer",
        "{s}.outer_t",
        &[
            "ROW(ROW('[a,b)', 'so so', 1, 'a', 'infinity', '0', '', 0.1, '(0,0)')::{s}.inner_t, \
             ARRAY[ROW(NULL, 'happy', 2, 'b <-> c', NULL, NULL, NULL, NULL, NULL)::{s}.inner_t, NULL], \
             ROW(1, 'p \"q\" r')::{s}.pair, '{[1,3),[5,7)}')",
            "ROW(NULL, '{}', NULL, '{}')",
            "ROW(NULL, NULL, ROW(NULL, ''), (SELECT range_agg(int4range(i * 3, i * 3 + 1)) \
             FROM generate_series(1, 200) i))",
        ],
    ),
    col(
        "multirange",
        "tstzmultirange",
        &[
            "'{[2024-01-01,2024-02-01),[2024-03-01,infinity)}'",
            "'{}'",
            "'{(,)}'",
        ],
    ),
    col("oidvector", "oidvector", &["'1 4294967295'", "''"]),
];

/// Creates the nested types of [`NESTED_TYPES`] in `schema` (after types.rs's own).
async fn create_nested_types(sql: &tokio_postgres::Client, schema: &str) {
    sql.batch_execute(&format!(
        "CREATE TYPE {schema}.floatrange AS RANGE (subtype = float8);
         CREATE TYPE {schema}.textrange AS RANGE (subtype = text, collation = \"C\");
         CREATE TYPE {schema}.inner_t AS (
           r {schema}.textrange, m {schema}.mood, d {schema}.posint, q tsquery,
           ts timestamptz, iv interval, b bytea, f float8, p point);
         CREATE TYPE {schema}.outer_t AS (
           i {schema}.inner_t, l {schema}.inner_t[], p {schema}.pair, mr int4multirange);"
    ))
    .await
    .unwrap();
}

/// The tables: name and columns.
const TABLES: &[(&str, &[Column])] = &[
    ("binary_types", BINARY_TYPES),
    ("text_form_types", TEXT_FORM_TYPES),
    ("nested_types", NESTED_TYPES),
];

/// Rows inserted while the slots stream are copies of the tables' rows, their ids this much
/// higher.
const STREAMED: i32 = 1000;

/// A column value as it arrived, owned.
#[derive(Debug, Clone)]
enum Arrived {
    Null,
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

/// A row as it arrived, in column order.
struct ArrivedRow(Vec<Arrived>);

impl Row for ArrivedRow {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        self.0.iter().map(|value| match value {
            Arrived::Null => Raw::Null,
            Arrived::Text(text) => Raw::Text(text),
            Arrived::Binary(bytes) => Raw::Binary(bytes),
        })
    }
}

/// A replication connection holding a new temporary slot: it goes away with the connection,
/// whatever becomes of the test.
async fn connection_with_slot(stack: &Stack, user: &str) -> (ReplicationConnection, String) {
    let mut conn = ReplicationConnection::connect(&stack.replication_config(user))
        .await
        .unwrap();
    let slot = unique_name("types");
    conn.create_slot(&slot, true, SnapshotAction::NoExport)
        .await
        .unwrap();
    (conn, slot)
}

/// The first `count` inserted rows through one mode, by table name, in arrival order.
async fn capture(
    (conn, slot): (ReplicationConnection, String),
    publication: &str,
    binary: bool,
    count: usize,
) -> HashMap<String, Vec<ArrivedRow>> {
    let mut options = PgOutputOptions::new(vec![publication.to_owned()]);
    options.binary = binary;
    let choice = conn.negotiate(&options);
    assert_eq!(choice.binary, binary);
    let stream = conn
        .start_replication(&slot, sluice_pgoutput::Lsn::ZERO, &options, choice)
        .await
        .unwrap();
    let mut changes = ChangeStream::new(stream, 1 << 24);
    let mut names: HashMap<u32, String> = HashMap::new();
    let mut rows: HashMap<String, Vec<ArrivedRow>> = HashMap::new();
    let mut seen = 0;
    while seen < count {
        let change = tokio::time::timeout(Duration::from_secs(60), changes.next())
            .await
            .expect("the rows arrive")
            .unwrap()
            .unwrap();
        match change {
            Change::Message(LogicalMessage::Relation(relation)) => {
                names.insert(relation.relation_id(), relation.name().to_owned());
            }
            Change::Message(LogicalMessage::Insert(insert)) => {
                let values = insert
                    .new_tuple()
                    .iter()
                    .map(|value| match value {
                        ColumnValue::Null => Arrived::Null,
                        ColumnValue::Text(bytes) => Arrived::Text(bytes.to_vec()),
                        ColumnValue::Binary(bytes) => Arrived::Binary(bytes.to_vec()),
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                let name = names[&insert.relation_id()].clone();
                rows.entry(name).or_default().push(ArrivedRow(values));
                seen += 1;
            }
            _ => {}
        }
    }
    rows
}

/// What PostgreSQL prints for each value of row `id` of `table`, where the column's Avro
/// value is that text (or its elements' texts, for an array of such a kind); None for the
/// other columns, and for NULL. Arrays are flattened in row-major order, as sluice does.
async fn postgres_texts(
    sql: &tokio_postgres::Client,
    schema: &str,
    table: &str,
    kinds: &[(String, ColumnKind)],
    id: i32,
) -> Vec<Option<Value>> {
    let expressions: Vec<String> = kinds
        .iter()
        .map(|(name, kind)| match kind {
            ColumnKind::Scalar(kind) if prints_as_postgres(*kind) => {
                format!("CASE WHEN num_nulls({name}) = 1 THEN NULL ELSE format('%s', {name}) END")
            }
            // The text cast of these element types is their output function.
            ColumnKind::Array {
                element: ScalarKind::Text,
                ..
            } => format!(
                "CASE WHEN {name} IS NULL THEN NULL ELSE ARRAY(SELECT unnest({name}::text[])) END"
            ),
            _ => "NULL::text".to_owned(),
        })
        .collect();
    let row = sql
        .query_one(
            &format!(
                "SELECT {} FROM {schema}.{table} WHERE id = $1",
                expressions.join(", ")
            ),
            &[&id],
        )
        .await
        .unwrap();
    kinds
        .iter()
        .enumerate()
        .map(|(i, (_, kind))| match kind {
            ColumnKind::Array {
                element: ScalarKind::Text,
                ..
            } => row.get::<_, Option<Vec<Option<String>>>>(i).map(|items| {
                Value::Array(
                    items
                        .into_iter()
                        .map(|item| item.map_or(Value::Null, Value::String))
                        .collect(),
                )
            }),
            _ => row.get::<_, Option<String>>(i).map(Value::String),
        })
        .collect()
}

/// Kinds whose Avro value is PostgreSQL's text output of the value, verbatim, or (integers
/// and booleans) reads back as it ([`as_postgres_text`]).
fn prints_as_postgres(kind: ScalarKind) -> bool {
    matches!(
        kind,
        ScalarKind::Text
            | ScalarKind::String
            | ScalarKind::Enum
            | ScalarKind::Char
            | ScalarKind::Json
            | ScalarKind::Jsonb
            | ScalarKind::JsonPath
            | ScalarKind::Xml
            | ScalarKind::Tsvector
            | ScalarKind::Inet
            | ScalarKind::Cidr
            | ScalarKind::MacAddr
            | ScalarKind::MacAddr8
            | ScalarKind::PgLsn
            | ScalarKind::Tid
            | ScalarKind::Uuid
            | ScalarKind::Boolean
            | ScalarKind::Int16
            | ScalarKind::Int32
            | ScalarKind::Int64
            | ScalarKind::UInt32
            | ScalarKind::UInt64
    )
}

/// An Avro value as PostgreSQL would print it, for the kinds [`prints_as_postgres`] and the
/// integers and booleans: unions unwrapped, arrays of unions too.
fn as_postgres_text(value: &Value) -> Value {
    match value {
        Value::Union(_, inner) => as_postgres_text(inner),
        Value::Array(items) => Value::Array(items.iter().map(as_postgres_text).collect()),
        Value::Int(n) => Value::String(n.to_string()),
        Value::Long(n) => Value::String(n.to_string()),
        Value::Boolean(b) => Value::String(if *b { "t" } else { "f" }.to_owned()),
        other => other.clone(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_values_convert_to_text_modes_avro_and_to_what_postgres_prints() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("text_binary");
    create_types(&stack, &sql, &schema).await;
    create_nested_types(&sql, &schema).await;
    let publication = unique_name("text_binary_pub");
    for table in TABLES {
        create_table(&sql, &schema, *table).await;
    }
    let names: Vec<String> = TABLES
        .iter()
        .map(|(name, _)| format!("{schema}.{name}"))
        .collect();
    sql.batch_execute(&format!(
        "CREATE PUBLICATION {publication} FOR TABLE {}",
        names.join(", ")
    ))
    .await
    .unwrap();
    let text_slot = connection_with_slot(&stack, "sluice").await;
    let binary_slot = connection_with_slot(&stack, "sluice").await;
    let mut count = 0;
    for (name, columns) in TABLES {
        let list: Vec<String> = columns_of(&schema, columns)
            .into_iter()
            .map(|(column, _, _)| column)
            .collect();
        sql.batch_execute(&format!(
            "INSERT INTO {schema}.{name} SELECT id + {STREAMED}, {} FROM {schema}.{name}",
            list.join(", ")
        ))
        .await
        .unwrap();
        count += usize::try_from(row_count(columns)).unwrap();
    }
    let (text, binary) = tokio::join!(
        capture(text_slot, &publication, false, count),
        capture(binary_slot, &publication, true, count),
    );

    let mut mismatches = Vec::new();
    let mut compared = 0;
    for (name, _) in TABLES {
        compared += compare_modes(&sql, &schema, name, &text, &binary, &mut mismatches).await;
    }
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP SCHEMA {schema} CASCADE"
    ))
    .await
    .unwrap();
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert!(compared > 200, "{compared} values compared with PostgreSQL");
}

#[tokio::test(flavor = "multi_thread")]
async fn values_print_the_same_whatever_the_roles_settings() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let admin = stack.pg_connect("postgres").await;
    let schema = unique_name("text_binary_settings");
    let role = format!("{schema}_role");
    let publication = unique_name("text_binary_settings_pub");
    // A role whose sessions would print timestamps at +05:30, dates day first, intervals as
    // ISO durations, floats rounded to 15 digits and bytea escaped.
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{role}';
             ALTER ROLE {role} SET TimeZone = 'Asia/Kolkata';
             ALTER ROLE {role} SET DateStyle = 'SQL, DMY';
             ALTER ROLE {role} SET IntervalStyle = 'iso_8601';
             ALTER ROLE {role} SET extra_float_digits = 0;
             ALTER ROLE {role} SET bytea_output = 'escape';"
        ))
        .await
        .unwrap();
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TYPE {schema}.stamped AS (
           at timestamptz, during tstzrange, d date, iv interval, f float8, b bytea);
         CREATE TABLE {schema}.t (id int PRIMARY KEY, s {schema}.stamped, r tstzrange,
                                  m tstzmultirange, a {schema}.stamped[], ts timestamptz,
                                  d date, iv interval, f float8, b bytea);
         CREATE PUBLICATION {publication} FOR TABLE {schema}.t;"
    ))
    .await
    .unwrap();
    let text_slot = connection_with_slot(&stack, &role).await;
    let binary_slot = connection_with_slot(&stack, &role).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (1,
           ROW('2024-02-29 12:00:00+00', '[2024-01-01 00:00+00,infinity)', '2024-02-29',
               '1 year -2 days 03:04:05.5', 0.1::float8 + 0.2, '\\x00ff'),
           '[2024-01-01 00:00+00,2024-06-01 12:30+00)', '{{[2024-01-01,2024-02-01)}}',
           ARRAY[ROW('1999-12-31 23:59:59.5+00', 'empty', NULL, NULL, NULL, NULL)::{schema}.stamped],
           '2024-02-29 12:00:00+00', '0044-03-15 BC', '-1 mons +00:00:01', 0.1::float8 + 0.2,
           '\\x5c27')"
    ))
    .await
    .unwrap();
    let (text, binary) = tokio::join!(
        capture(text_slot, &publication, false, 1),
        capture(binary_slot, &publication, true, 1),
    );
    let mut mismatches = Vec::new();
    let compared = compare_modes(&sql, &schema, "t", &text, &binary, &mut mismatches).await;
    let Arrived::Text(composite) = &text["t"][0].0[1] else {
        panic!("the composite in text")
    };
    let composite = String::from_utf8(composite.clone()).unwrap();
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP SCHEMA {schema} CASCADE"
    ))
    .await
    .unwrap();
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    assert_eq!(
        composite,
        r#"("2024-02-29 12:00:00+00","[""2024-01-01 00:00:00+00"",infinity)",2024-02-29,"1 year -2 days +03:04:05.5",0.30000000000000004,"\\x00ff")"#,
        "text mode prints in sluice's settings"
    );
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
    assert_eq!(
        compared, 5,
        "the id, s, r, m and a compared with PostgreSQL"
    );
}

/// Encodes the rows of `table` that arrived in each mode with sluice's table codec and
/// compares them (see the file's comment), adding what differs to `mismatches`; returns how
/// many values were compared with PostgreSQL's output.
async fn compare_modes(
    sql: &tokio_postgres::Client,
    schema: &str,
    name: &str,
    text: &HashMap<String, Vec<ArrivedRow>>,
    binary: &HashMap<String, Vec<ArrivedRow>>,
    mismatches: &mut Vec<String>,
) -> usize {
    let mut compared = 0;
    let oid: u32 = sql
        .query_one(
            "SELECT $1::text::regclass::oid",
            &[&format!("{schema}.{name}")],
        )
        .await
        .unwrap()
        .get(0);
    let table = sluice_pipeline::catalog::describe(sql, oid, schema, name, 'd')
        .await
        .unwrap();
    let version: i32 = sql
        .query_one("SELECT current_setting('server_version_num')::int", &[])
        .await
        .unwrap()
        .get(0);
    // As sluice's own run decides: PostgreSQL 17 on has interval infinities.
    let options = TypeOptions {
        interval_infinities: version >= 170_000,
        ..TypeOptions::default()
    };
    let codec = TableCodec::with_options("text_binary", &table.spec, &options);
    let schema_json: serde_json::Value = serde_json::from_str(codec.row_schema()).unwrap();
    let avro = Schema::parse(&schema_json).unwrap();
    let kinds: Vec<(String, ColumnKind)> = table
        .spec
        .columns
        .iter()
        .map(|c| c.name.clone())
        .zip(codec.column_kinds())
        .collect();
    for (text_row, binary_row) in text[name].iter().zip(&binary[name]) {
        assert!(
            binary_row.0.iter().any(|v| matches!(v, Arrived::Binary(_))),
            "{name}: binary mode sent no binary value"
        );
        let Some(Arrived::Text(id)) = text_row.0.first() else {
            panic!("{name}: no id")
        };
        let id: i32 = std::str::from_utf8(id).unwrap().parse().unwrap();
        let encode = |row: &ArrivedRow| {
            let mut out = Vec::new();
            codec
                .encode_row_value(1, row, &mut out, &mut Scratch::default())
                .map(|()| out)
        };
        let (from_text, from_binary) = match (encode(text_row), encode(binary_row)) {
            (Ok(t), Ok(b)) => (t, b),
            (Err(t), Err(b))
                if t.column == b.column
                    && std::mem::discriminant(&t.source) == std::mem::discriminant(&b.source) =>
            {
                continue;
            }
            (t, b) => {
                mismatches.push(format!(
                    "{name} id {id}: text {:?}, binary {:?}",
                    t.err(),
                    b.err()
                ));
                continue;
            }
        };
        let decode = |bytes: &[u8]| {
            let mut datum = &bytes[5..];
            let Value::Record(fields) = GenericDatumReader::builder(&avro)
                .build()
                .unwrap()
                .read_value(&mut datum)
                .unwrap()
            else {
                panic!("a record")
            };
            fields
        };
        let (text_fields, binary_fields) = (decode(&from_text), decode(&from_binary));
        if from_text != from_binary {
            for ((column, t), (_, b)) in text_fields.iter().zip(&binary_fields) {
                if t != b {
                    mismatches.push(format!(
                        "{name} id {id} {column}: text mode {t:?}, binary mode {b:?}"
                    ));
                }
            }
        }
        let expected = postgres_texts(sql, schema, name, &kinds, id).await;
        let exact = exact_values(&binary_fields);
        for ((column, value), expected) in binary_fields.iter().zip(expected) {
            let Some(expected) = expected else { continue };
            compared += 1;
            // A value the field cannot hold (an xid8 past 2^63 - 1) is null there and
            // PostgreSQL's text in the row's exact field.
            let got = match (as_postgres_text(value), exact.get(column)) {
                (Value::Null, Some(text)) => Value::String(text.clone()),
                (got, _) => got,
            };
            if got != expected {
                mismatches.push(format!(
                    "{name} id {id} {column}: sluice {got:?}, PostgreSQL {expected:?}"
                ));
            }
        }
    }
    assert_eq!(
        text[name].len(),
        binary[name].len(),
        "{name}: rows in each mode"
    );
    compared
}

/// The scalar values a row's exact field (its last, `__exact`) holds, by column.
fn exact_values(fields: &[(String, Value)]) -> HashMap<String, String> {
    let Some((_, Value::Union(_, exact))) = fields.last() else {
        return HashMap::new();
    };
    let Value::Map(columns) = exact.as_ref() else {
        return HashMap::new();
    };
    columns
        .iter()
        .filter_map(|(column, entry)| {
            let Value::Record(parts) = entry else {
                return None;
            };
            match parts.iter().find(|(name, _)| name == "value") {
                Some((_, Value::Union(_, text))) => match text.as_ref() {
                    Value::String(text) => Some((column.clone(), text.clone())),
                    _ => None,
                },
                _ => None,
            }
        })
        .collect()
}

/// A table `t` in a new schema with `columns` (after `id int PRIMARY KEY`; `{s}.priced` is a
/// composite of money and timestamptz), and a sluice configuration capturing it in binary
/// mode: (schema, prefix, slot, publication, config).
async fn binary_mode_run(
    stack: &Stack,
    sql: &tokio_postgres::Client,
    columns: &str,
) -> (String, String, String, String, std::path::PathBuf) {
    let schema = unique_name("binary_fallback");
    let (prefix, slot, publication) = (
        unique_name("binary_fallback"),
        unique_name("binary_fallback_slot"),
        unique_name("binary_fallback_pub"),
    );
    let columns = columns.replace("{s}", &schema);
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TYPE {schema}.priced AS (amount money, at timestamptz);
         CREATE TABLE {schema}.t (id int PRIMARY KEY, {columns});"
    ))
    .await
    .unwrap();
    let config = write_config(stack, &prefix, &slot, &publication, &schema);
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace("[replication]\n", "[replication]\nbinary = true\n"),
    )
    .unwrap();
    (schema, prefix, slot, publication, config)
}

/// The `after` rows of `topic` by id, read until every id up to `last` is there (a stream
/// started again sends the changes since the slot's confirmed position again, so rows may
/// repeat; the partitions' records come in any order).
async fn rows_until(
    stack: &Stack,
    topic: &str,
    last: i32,
) -> BTreeMap<i32, BTreeMap<String, Value>> {
    for count in 1.. {
        let rows: BTreeMap<i32, BTreeMap<String, Value>> =
            read_events(stack, &[topic.to_owned()], count)
                .await
                .into_iter()
                .map(|event| {
                    let Value::Int(id) = event.key["id"] else {
                        panic!("key {:?}", event.key)
                    };
                    (id, event.after.expect("an after row"))
                })
                .collect();
        if (1..=last).all(|id| rows.contains_key(&id)) {
            return rows;
        }
    }
    unreachable!("the reads above wait, or panic at their deadline")
}

fn string(value: &Value) -> Option<&str> {
    match value {
        Value::Union(_, inner) => string(inner),
        Value::String(s) => Some(s),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_mode_streams_in_text_mode_from_the_start_when_a_column_cannot_be_decoded() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let (schema, prefix, slot, publication, config) =
        binary_mode_run(&stack, &sql, "r regclass, v tsvector").await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (1, 'pg_class', 'a:1 b:2')"
    ))
    .await
    .unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let topic = format!("{prefix}.{schema}.t");
    rows_until(&stack, &topic, 1).await;
    wait_until_streaming(&sql, &slot).await;
    let binary = streams_binary(&sql, &slot).await;
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (2, '{schema}.t', 'c:3')"
    ))
    .await
    .unwrap();
    let rows = rows_until(&stack, &topic, 2).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP SCHEMA {schema} CASCADE"
    ))
    .await
    .unwrap();
    assert_eq!(binary, Some(false), "streams in text mode");
    assert_eq!(string(&rows[&1]["r"]), Some("pg_class"));
    assert_eq!(string(&rows[&2]["r"]), Some(format!("{schema}.t").as_str()));
    assert_eq!(string(&rows[&2]["v"]), Some("'c':3"));
}

#[tokio::test(flavor = "multi_thread")]
async fn binary_mode_switches_to_text_mode_when_a_column_it_cannot_decode_appears() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let (schema, prefix, slot, publication, config) =
        binary_mode_run(&stack, &sql, "v tsvector, p {s}.priced").await;
    let mut sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(&sql, &slot).await;
    let binary_before = streams_binary(&sql, &slot).await;
    let topic = format!("{prefix}.{schema}.t");
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (1, 'a:1', ROW(-1234.5, '2024-01-01 00:00+00'))"
    ))
    .await
    .unwrap();
    rows_until(&stack, &topic, 1).await;
    sql.batch_execute(&format!(
        "ALTER TABLE {schema}.t ADD COLUMN r regclass;
         INSERT INTO {schema}.t VALUES (2, 'b:2', NULL, 'pg_type');"
    ))
    .await
    .unwrap();
    let rows = rows_until(&stack, &topic, 2).await;
    let running = sluice.running();
    wait_until_streaming(&sql, &slot).await;
    let binary_after = streams_binary(&sql, &slot).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    sql.batch_execute(&format!(
        "DROP PUBLICATION {publication}; DROP SCHEMA {schema} CASCADE"
    ))
    .await
    .unwrap();
    assert_eq!(
        binary_before,
        Some(true),
        "streamed in binary mode at first"
    );
    assert!(running, "sluice runs on");
    assert_eq!(binary_after, Some(false), "streams in text mode since");
    assert_eq!(string(&rows[&1]["v"]), Some("'a':1"));
    assert_eq!(
        string(&rows[&1]["p"]),
        Some(r#"("-$1,234.50","2024-01-01 00:00:00+00")"#)
    );
    assert_eq!(string(&rows[&2]["r"]), Some("pg_type"));
    assert_eq!(string(&rows[&2]["v"]), Some("'b':2"));
}
