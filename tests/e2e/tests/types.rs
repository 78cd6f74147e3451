//! Type fidelity end to end: a column of every type and an array column of each, rows of
//! ordinary and edge values, captured by `sluice run` through the snapshot (op `r`, read by
//! binary COPY) and through streaming (op `c`), in three runs:
//! - text mode;
//! - binary mode: its Avro must be identical to text mode's, row for row, the types carried as
//!   their text form included (sluice prints their binary form as PostgreSQL's text);
//! - `events.numeric = "string"`.
//!
//! Each value is decoded through the registry's schema, read as its field's schema says
//! (docs/types.md) into an SQL expression of the column's type, and PostgreSQL judges: its
//! output for that expression must equal its output for the stored value, and a plain Avro
//! string must be that output verbatim. Where the event's `exact` field has the column, the
//! value is read as an exact reader does (its exact value, an array's exact elements and
//! dimensions), the exact value must be PostgreSQL's output verbatim and the field null. The
//! snapshot's and the stream's copy of a row must give identical Avro, and an array's items
//! the schema of its type's values.
//!
//! Every type is exact, arrays of several dimensions or other lower bounds included
//! ([`MULTI_DIMENSIONAL`]: their field is the flat list, their shape in the `exact` field).

use std::collections::BTreeMap;
use std::path::PathBuf;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_subject_and_version,
};
use sluice_e2e::pipeline::{
    Event, Sluice, create_extensions, read_events_exactly, stop_and_drop_slot, streams_binary,
    wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

/// A column of type `ty` (`{s}` stands for the test's schema) named `c_<name>`, with an array
/// column `a_<name>` of `ty[]` beside it; `values` are SQL literals, one row each.
#[derive(Clone, Copy)]
pub(crate) struct Column {
    pub(crate) name: &'static str,
    pub(crate) ty: &'static str,
    pub(crate) values: &'static [&'static str],
}

pub(crate) const fn col(
    name: &'static str,
    ty: &'static str,
    values: &'static [&'static str],
) -> Column {
    Column { name, ty, values }
}

/// Types sluice reads in both text and binary form.
pub(crate) const BINARY_TYPES: &[Column] = &[
    col("bool", "bool", &["true", "false"]),
    col("int2", "int2", &["0", "-32768", "32767"]),
    col(
        "int2vector",
        "int2vector",
        &["'1 -2 3'", "''", "'-32768 32767'"],
    ),
    col("int4", "int4", &["-2147483648", "2147483647", "0"]),
    col(
        "int8",
        "int8",
        &["-9223372036854775808", "9223372036854775807"],
    ),
    col(
        "float4",
        "float4",
        &[
            "1.5",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "'1e-45'",
            "'1.17549435e-38'",
            "'3.4028235e38'",
            "'0.1'",
        ],
    ),
    col(
        "float8",
        "float8",
        &[
            "0.1",
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "'-0'",
            "'5e-324'",
            "'2.2250738585072014e-308'",
            "'1.7976931348623157e308'",
            "'-1.5e-7'",
        ],
    ),
    col(
        "numeric_12_3",
        "numeric(12,3)",
        &["0", "1234.5", "-999999999.999", "0.001", "999999999.999"],
    ),
    col(
        "numeric",
        "numeric",
        &[
            "0",
            "1.50",
            "-123456789.000000001",
            "1e1000",
            "-1e-1000",
            "'1e-16383'",
            "123456789012345678901234567890.123456789012345678901234567890",
            "-0.00000000000000000001",
            // The widest: 131072 digits before the point, 16383 after.
            "('-' || repeat('9', 131072) || '.' || repeat('9', 16383))::numeric",
        ],
    ),
    col(
        "numeric_5_neg_2",
        "numeric(5,-2)",
        &["1234500", "-9999900", "0"],
    ),
    col(
        "money",
        "money",
        &[
            "0",
            "12.34",
            "-92233720368547758.08",
            "92233720368547758.07",
            "-0.01",
        ],
    ),
    col(
        "text",
        "text",
        &[
            "''",
            "'héllo ☃ 😀'",
            r#"'it''s "quoted"'"#,
            r"'back\slash'",
            r"E'tab\there\nnewline'",
            "'NULL'",
            r#"'{a,"b"}'"#,
            "' padded  '",
        ],
    ),
    col(
        "varchar_10",
        "varchar(10)",
        &["'abc'", "''", "'ten chars!'"],
    ),
    col("bpchar", "bpchar", &["'x  '", "''"]),
    col("varchar", "varchar", &["'unbounded'"]),
    col("char_5", "char(5)", &["'ab'", "''", "'abcde'", "' a'"]),
    col(
        "name",
        "name",
        &[
            "'a name'",
            "''",
            "'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx'",
        ],
    ),
    col("char", "\"char\"", &["'c'", "''", r"'\200'", r"'\377'"]),
    col("citext", "citext", &["'MiXeD Case'", "''"]),
    col("bytea", "bytea", &[r"'\x'", r"'\x00ff10'", r"'\x5c27'"]),
    col(
        "uuid",
        "uuid",
        &[
            "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
            "'00000000-0000-0000-0000-000000000000'",
            "'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF'",
        ],
    ),
    col(
        "json",
        "json",
        &[
            r#"'{"a": [1, 2.50]}'"#,
            r#"'  {"b":1,  "b":2}  '"#,
            r#"'"\u00e9 str"'"#,
            "'null'",
        ],
    ),
    col(
        "jsonb",
        "jsonb",
        &[
            r#"'{"b": null, "a": [1, 2.50]}'"#,
            "'[]'",
            r#"'"\u00e9"'"#,
            "'1e3'",
        ],
    ),
    col(
        "jsonpath",
        "jsonpath",
        &["'$.a[*] ? (@ > 1)'", "'strict $'"],
    ),
    col(
        "xml",
        "xml",
        &["'<a>1</a>'", "'text only'", r#"'<r a="&amp;"/>'"#],
    ),
    col(
        "date",
        "date",
        &[
            "'1970-01-01'",
            "'infinity'",
            "'-infinity'",
            "'4713-01-01 BC'",
            "'10000-01-01'",
            "'2000-02-29'",
            "'5874897-12-31'",
            "'4714-11-24 BC'",
        ],
    ),
    col(
        "time",
        "time",
        &[
            "'00:00:00'",
            "'24:00:00'",
            "'12:34:56.789012'",
            "'23:59:59.999999'",
        ],
    ),
    col(
        "timetz",
        "timetz",
        &[
            "'12:34:56.789012+05:30'",
            "'00:00:00-08'",
            "'24:00:00-15:59'",
            "'10:15:30.1-03:30:15'",
            "'00:00:00+00'",
            "'23:59:59.999999+15:59'",
            "'00:00:00-15:59:59'",
        ],
    ),
    col(
        "timestamp",
        "timestamp",
        &[
            "'2024-02-29 12:00:00.000001'",
            "'infinity'",
            "'-infinity'",
            "'4713-01-01 00:00:00 BC'",
            "'10000-01-01 00:00:00'",
            "'294247-01-10 04:00:54.775806'",
            "'294247-01-10 04:00:54.775807'",
            "'294276-12-31 23:59:59.999999'",
            "'1969-12-31 23:59:59.999999'",
            "'4714-11-24 00:00:00 BC'",
        ],
    ),
    col(
        "timestamp_3",
        "timestamp(3)",
        &[
            "'2024-02-29 12:00:00.1234'",
            "'infinity'",
            "'-infinity'",
            "'294276-12-31 23:59:59.999'",
            "'4714-11-24 00:00:00 BC'",
            "'1969-12-31 23:59:59.999'",
        ],
    ),
    col("timestamp_0", "timestamp(0)", &["'2024-02-29 12:00:00.5'"]),
    col(
        "time_3",
        "time(3)",
        &[
            "'00:00:00'",
            "'24:00:00'",
            "'12:34:56.789'",
            "'23:59:59.999'",
        ],
    ),
    col(
        "timestamptz",
        "timestamptz",
        &[
            "'2024-02-29 12:00:00.000001+00'",
            "'infinity'",
            "'-infinity'",
            "'4714-11-24 00:00:00+00 BC'",
            "'10000-01-01 00:00:00+00'",
            "'294276-12-31 23:59:59.999999+00'",
            "'2024-06-01 12:00:00+05:30'",
            "'0001-01-01 00:00:00+00'",
            "'0001-12-31 23:59:59.5+00 BC'",
        ],
    ),
    col(
        "interval",
        "interval",
        &[
            "'1 year 2 mons -3 days 04:05:06.000007'",
            "'-1 days +02:03:00'",
            "'0'",
            "'-00:00:01.5'",
            "'178000000 years'",
            "'-2562047788 hours -54.775808 seconds'",
            "'2562047788:00:54.775807'",
            "'1 mon 30 days 24:00:00'",
            "'-1 years -2 mons +3 days -04:05:06'",
            // Every field at its largest: finite before PostgreSQL 17, `infinity` from it.
            "'178956970 years 7 mons 2147483647 days 2562047788:00:54.775807'",
            "'-178956970 years -8 mons'",
            "'-2147483648 days'",
        ],
    ),
    col(
        "inet",
        "inet",
        &[
            "'192.168.0.1/24'",
            "'192.168.0.1'",
            "'::1'",
            "'::ffff:1.2.3.4'",
            "'2001:db8::1:0:0:1'",
            "'::1.2.3.4'",
            "'0.0.0.0/0'",
            "'::ffff:1.2.3.4/120'",
        ],
    ),
    col(
        "cidr",
        "cidr",
        &[
            "'10.0.0.0/8'",
            "'1.2.3.4/32'",
            "'::/0'",
            "'2001:db8::/32'",
            "'::ffff:1.2.3.0/120'",
        ],
    ),
    col(
        "macaddr",
        "macaddr",
        &["'08:00:2b:01:02:03'", "'FF-FF-FF-FF-FF-FF'"],
    ),
    col(
        "macaddr8",
        "macaddr8",
        &["'08:00:2b:01:02:03:04:05'", "'08002b010203'"],
    ),
    col("bit_4", "bit(4)", &["B'1010'", "B'0000'"]),
    col(
        "varbit",
        "varbit",
        &["B'10101'", "B''", "B'11111111000000001'"],
    ),
    col("oid", "oid", &["0", "4294967295"]),
    col(
        "point",
        "point",
        &[
            "'(1.5,2)'",
            "'(-0,1e300)'",
            "'(NaN,-Infinity)'",
            "'(5e-324,-1.5)'",
        ],
    ),
    col("xid", "xid", &["'0'", "'4294967295'"]),
    col("cid", "cid", &["'0'", "'4294967295'"]),
    col(
        "xid8",
        "xid8",
        &[
            "'0'",
            "'9223372036854775807'",
            "'9223372036854775808'",
            "'18446744073709551615'",
        ],
    ),
    col("tid", "tid", &["'(0,1)'", "'(4294967295,65535)'"]),
    col(
        "pg_lsn",
        "pg_lsn",
        &["'16/B374D848'", "'0/0'", "'FFFFFFFF/FFFFFFFF'"],
    ),
    col("mood", "{s}.mood", &["'happy'", "'so so'", "'it''s'"]),
    col("posint", "{s}.posint", &["1", "2147483647"]),
    col("label", "{s}.label", &["'x'", "''"]),
    col("price", "{s}.price", &["0", "123456.78", "-0.01"]),
    col("short_label", "{s}.short_label", &["'y'"]),
    col(
        "hstore",
        "hstore",
        &[
            "'a=>1, b=>NULL'",
            "''",
            r#"'"k e y"=>"v,a\"l", "=>"=>"NULL"'"#,
        ],
    ),
];

/// Types carried as their text form; in binary mode sluice prints their binary form as that
/// text.
pub(crate) const TEXT_FORM_TYPES: &[Column] = &[
    col(
        "tsvector",
        "tsvector",
        &["'a:1 b:2'", "'fat:2,4A cat:3B'", "''"],
    ),
    col(
        "tsquery",
        "tsquery",
        &["'a & !b'", "'fat:ab & (cat | rat:*)'", "'a <-> b'"],
    ),
    col("line", "line", &["'{1,2,3}'"]),
    col("lseg", "lseg", &["'[(0,0),(1,1)]'"]),
    col("box", "box", &["'(1,1),(0,0)'", "'(-1,-1),(0.5,2)'"]),
    col(
        "path",
        "path",
        &["'[(0,0),(1,1),(2,0)]'", "'((0,0),(1,1))'"],
    ),
    col("polygon", "polygon", &["'((0,0),(1,1),(2,0))'"]),
    col("circle", "circle", &["'<(0,0),1>'"]),
    col(
        "pair",
        "{s}.pair",
        &[r#"'(1,"a b")'"#, "'(,)'", r#"'(2,"quote""d")'"#],
    ),
    col("int4range", "int4range", &["'[1,10)'", "'empty'", "'(,5]'"]),
    col(
        "tstzrange",
        "tstzrange",
        &["'[2024-01-01 00:00+00,infinity)'"],
    ),
    col("numrange", "numrange", &["'[1.5,2.50]'"]),
    col(
        "int4multirange",
        "int4multirange",
        &["'{[1,3),[5,7)}'", "'{}'"],
    ),
    col("snapshot", "pg_snapshot", &["'10:20:10,14,15'", "'1:1:'"]),
];

/// numeric's NaN and infinities: in decimal mode null, and the value in the `exact` field.
const NUMERIC_SPECIALS: &[Column] = &[
    col("numeric_12_3", "numeric(12,3)", &["'NaN'", "1234.5"]),
    col(
        "numeric",
        "numeric",
        &[
            "'NaN'",
            "'Infinity'",
            "'-Infinity'",
            "1.50",
            "-0.00000000000000000001",
        ],
    ),
];

/// Array values of several dimensions or another lower bound, in row
/// [`MULTI_DIMENSIONAL_ROW`] of the array column `a_<name>`. The Avro array holds their
/// elements in row-major order, the `exact` field their dimensions and bounds
/// (docs/types.md).
const MULTI_DIMENSIONAL: &[(&str, &str)] = &[
    ("int4", "'{{1,2},{3,4}}'"),
    ("text", "'[0:1]={a,b}'"),
    ("pair", r#"'{{"(1,a)"},{"(2,b)"}}'"#),
    ("numeric", "'[0:1][-1:0]={{1.5,NaN},{Infinity,NULL}}'"),
    (
        "timestamp",
        r#"'[2147483646:2147483646]={"294276-12-31 23:59:59.999999"}'"#,
    ),
    (
        "int8",
        "'[-2147483648:-2147483647][1:1][1:1][1:1][1:1][1:2]={{{{{{1,2}}}}},{{{{{3,4}}}}}}'",
    ),
    ("bool", "'{{t},{f},{NULL}}'"),
];
const MULTI_DIMENSIONAL_ROW: i32 = 3;

/// The tables: name and columns.
const BINARY: (&str, &[Column]) = ("binary_types", BINARY_TYPES);

/// `table` as the server under test can hold it. The values are PostgreSQL 15's; before 15
/// some types (a numeric of negative scale) and some inputs (intervals of 2^31 hours and
/// more) do not exist: those are left out there, each named.
async fn on_this_server(
    stack: &Stack,
    sql: &tokio_postgres::Client,
    schema: &str,
    (name, columns): (&'static str, &'static [Column]),
) -> (&'static str, &'static [Column]) {
    if stack.pg_major >= 15 {
        return (name, columns);
    }
    let mut kept = Vec::new();
    for column in columns {
        let ty = column.ty.replace("{s}", schema);
        if sql
            .simple_query(&format!("SELECT NULL::{ty}"))
            .await
            .is_err()
        {
            eprintln!("PostgreSQL {} has no type {ty}: left out", stack.pg_major);
            continue;
        }
        let mut values = Vec::new();
        for value in column.values {
            let literal = value.replace("{s}", schema);
            match sql.simple_query(&format!("SELECT ({literal})::{ty}")).await {
                Ok(_) => values.push(*value),
                Err(_) => eprintln!(
                    "PostgreSQL {} does not read {ty} {literal}: left out",
                    stack.pg_major
                ),
            }
        }
        let values: &'static [&'static str] = Box::leak(values.into_boxed_slice());
        kept.push(Column { values, ..*column });
    }
    (name, Box::leak(kept.into_boxed_slice()))
}
const TEXT_FORM: (&str, &[Column]) = ("text_form_types", TEXT_FORM_TYPES);
const SPECIALS: (&str, &[Column]) = ("numeric_specials", NUMERIC_SPECIALS);

/// Rows inserted while streaming are copies of the snapshot's rows, their ids this much higher.
const STREAMED: i32 = 100;

/// Creates the test's types in `schema`, and hstore and citext (kept: others use them too).
pub(crate) async fn create_types(stack: &Stack, sql: &tokio_postgres::Client, schema: &str) {
    create_extensions(stack).await;
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TYPE {schema}.mood AS ENUM ('happy', 'so so', 'it''s');
         CREATE DOMAIN {schema}.posint AS int CHECK (VALUE > 0);
         CREATE DOMAIN {schema}.label AS text;
         CREATE DOMAIN {schema}.price AS numeric(8,2);
         CREATE DOMAIN {schema}.short_label AS {schema}.label CHECK (length(VALUE) < 5);
         CREATE TYPE {schema}.pair AS (n int, t text);"
    ))
    .await
    .unwrap();
}

/// The columns of a table after `id`: (name, type, whether an array column).
pub(crate) fn columns_of(schema: &str, columns: &[Column]) -> Vec<(String, String, bool)> {
    columns
        .iter()
        .flat_map(|c| {
            let ty = c.ty.replace("{s}", schema);
            [
                (format!("c_{}", c.name), ty.clone(), false),
                (format!("a_{}", c.name), format!("{ty}[]"), true),
            ]
        })
        .collect()
}

/// How many rows a table gets: one per value of its longest list, and one of NULLs.
pub(crate) fn row_count(columns: &[Column]) -> i32 {
    let longest = columns.iter().map(|c| c.values.len()).max().unwrap_or(0);
    i32::try_from(longest).unwrap().max(MULTI_DIMENSIONAL_ROW) + 1
}

/// Creates table `name` and its snapshot rows (ids from 1): row i holds each column's i-th
/// value (NULL past its list); the arrays hold all values and a NULL in row 1, none in row 2,
/// a multi-dimensional value or `{NULL}` in row 3; the last row is NULLs.
pub(crate) async fn create_table(
    sql: &tokio_postgres::Client,
    schema: &str,
    (name, columns): (&str, &[Column]),
) {
    let definitions: Vec<String> = columns_of(schema, columns)
        .iter()
        .map(|(column, ty, _)| format!("{column} {ty}"))
        .collect();
    let last = row_count(columns);
    let rows: Vec<String> = (1..=last)
        .map(|id| {
            let mut values = vec![id.to_string()];
            for column in columns {
                let ty = column.ty.replace("{s}", schema);
                let index = usize::try_from(id - 1).unwrap();
                let scalar = match column.values.get(index) {
                    Some(value) if id < last => value.replace("{s}", schema),
                    _ => "NULL".to_owned(),
                };
                let multi = MULTI_DIMENSIONAL
                    .iter()
                    .find(|(name, _)| *name == column.name)
                    .map(|(_, value)| value.to_string());
                let array = match id {
                    1 => {
                        let elements: Vec<String> = column
                            .values
                            .iter()
                            .map(|v| format!("({})::{ty}", v.replace("{s}", schema)))
                            .collect();
                        format!("ARRAY[{}, NULL]::{ty}[]", elements.join(", "))
                    }
                    2 => "'{}'".to_owned(),
                    MULTI_DIMENSIONAL_ROW => {
                        multi.unwrap_or_else(|| format!("ARRAY[NULL]::{ty}[]"))
                    }
                    _ => "NULL".to_owned(),
                };
                values.extend([scalar, array]);
            }
            format!("({})", values.join(", "))
        })
        .collect();
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.{name} (id int PRIMARY KEY, {});
         INSERT INTO {schema}.{name} VALUES {};",
        definitions.join(", "),
        rows.join(",\n")
    ))
    .await
    .unwrap_or_else(|err| panic!("creating {name}: {err:?}"));
}

/// One `sluice run`'s names and configuration.
struct Run {
    label: &'static str,
    prefix: String,
    slot: String,
    publication: String,
    config: PathBuf,
    tables: Vec<&'static str>,
}

impl Run {
    /// A run capturing `tables` of `schema`, in binary mode or not, numerics as strings or not.
    fn new(
        stack: &Stack,
        label: &'static str,
        schema: &str,
        tables: &[&'static str],
        binary: bool,
        numeric_string: bool,
    ) -> Run {
        let (prefix, slot, publication) = (
            unique_name("fidelity"),
            unique_name("fidelity_slot"),
            unique_name("fidelity_pub"),
        );
        let config = write_config(stack, &prefix, &slot, &publication, schema);
        let include: Vec<String> = tables
            .iter()
            .map(|table| format!("\"{schema}.{table}\""))
            .collect();
        let mut text = std::fs::read_to_string(&config).unwrap();
        let mut edit = |from: &str, to: &str| {
            assert!(text.contains(from), "{from:?} in the configuration");
            text = text.replace(from, to);
        };
        edit(
            &format!("include = [\"{schema}.*\"]"),
            &format!("include = [{}]", include.join(", ")),
        );
        if binary {
            edit("[replication]\n", "[replication]\nbinary = true\n");
        }
        if numeric_string {
            edit(
                "[metrics]\n",
                "[events]\nnumeric = \"string\"\n\n[metrics]\n",
            );
        }
        std::fs::write(&config, text).unwrap();
        Run {
            label,
            prefix,
            slot,
            publication,
            config,
            tables: tables.to_vec(),
        }
    }

    fn topic(&self, schema: &str, table: &str) -> String {
        format!("{}.{schema}.{table}", self.prefix)
    }

    fn topics(&self, schema: &str) -> Vec<String> {
        self.tables
            .iter()
            .map(|table| self.topic(schema, table))
            .collect()
    }
}

/// The events of a run by (table, id).
type Captured = BTreeMap<(String, i32), Event>;

/// Exactly `count` events: a duplicate would otherwise hide in the map.
async fn read_run(stack: &Stack, run: &Run, schema: &str, count: usize) -> Captured {
    read_events_exactly(stack, &run.topics(schema), count)
        .await
        .into_iter()
        .map(|event| {
            let table = event.topic.rsplit('.').next().unwrap().to_owned();
            let Value::Int(id) = event.key["id"] else {
                panic!("key: {:?}", event.key)
            };
            ((table, id), event)
        })
        .collect()
}

/// Where a multi-dimensional value is: table row and array column.
fn is_multi_dimensional(id: i32, column: &str) -> bool {
    id % STREAMED == MULTI_DIMENSIONAL_ROW
        && MULTI_DIMENSIONAL
            .iter()
            .any(|(name, _)| column == format!("a_{name}"))
}

// ---- Reading an Avro value back as PostgreSQL, as docs/types.md describes the forms ----

/// What a column's Avro schema says about reading its values (an array's: its elements').
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Reading {
    /// As the value is: a string PostgreSQL prints the same, a number, bytes, a map.
    Plain,
    /// A string in an ISO-8601 form PostgreSQL reads: `ZonedTime`, `Interval`.
    Iso,
    /// `io.debezium.time.Date`: days since 1970, the infinities at the ends of int.
    Date,
    /// `io.debezium.time.MicroTime`: microseconds since midnight, 24:00:00 included.
    MicroTime,
    /// `io.debezium.time.Time`: milliseconds since midnight, 24:00:00 included.
    MilliTime,
    /// `io.debezium.time.Timestamp`: milliseconds since 1970, the infinities at the ends of
    /// long.
    MilliTimestamp,
    /// `io.debezium.time.MicroTimestamp`: microseconds since 1970, the infinities at the ends
    /// of long.
    MicroTimestamp,
    /// `io.debezium.time.ZonedTimestamp`: ISO-8601 in UTC with astronomical years (0 is 1 BC,
    /// `+` before years past 9999), or `infinity`, `-infinity`.
    ZonedTimestamp,
    /// An Avro decimal: the unscaled two's-complement integer at this scale.
    Decimal(u32),
    /// `io.debezium.data.Bits`: the bits as an unsigned little-endian number, as many bits as
    /// the column's length for a `bit(n)`, none above the highest set one for a `varbit`.
    Bits,
}

/// How the `after` columns of `topic` read, from its value schema in the registry.
async fn readings(stack: &Stack, topic: &str) -> BTreeMap<String, Reading> {
    let settings = SrSettings::new(stack.registry_url.clone());
    let registered = get_schema_by_subject_and_version(&settings, &format!("{topic}-value"), None)
        .await
        .unwrap();
    let envelope: serde_json::Value = serde_json::from_str(&registered.schema).unwrap();
    let non_null = |schema: &serde_json::Value| -> serde_json::Value {
        match schema {
            serde_json::Value::Array(members) => members
                .iter()
                .find(|m| *m != "null")
                .cloned()
                .unwrap_or_default(),
            other => other.clone(),
        }
    };
    // `before` defines the row record; `after` may refer to it by name.
    let row = envelope["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| non_null(&field["type"]))
        .find(|schema| schema["type"] == "record" && schema["fields"].is_array())
        .expect("the envelope holds the row record");
    row["fields"]
        .as_array()
        .unwrap()
        .iter()
        .map(|field| {
            let mut schema = non_null(&field["type"]);
            if schema["type"] == "array" {
                schema = non_null(&schema["items"]);
            }
            let reading = match schema["connect.name"].as_str() {
                Some("io.debezium.time.Date") => Reading::Date,
                Some("io.debezium.time.MicroTime") => Reading::MicroTime,
                Some("io.debezium.time.Time") => Reading::MilliTime,
                Some("io.debezium.time.Timestamp") => Reading::MilliTimestamp,
                Some("io.debezium.time.MicroTimestamp") => Reading::MicroTimestamp,
                Some("io.debezium.time.ZonedTimestamp") => Reading::ZonedTimestamp,
                Some("io.debezium.time.ZonedTime" | "io.debezium.time.Interval") => Reading::Iso,
                Some("io.debezium.data.Bits") => Reading::Bits,
                _ if schema["logicalType"] == "decimal" => {
                    Reading::Decimal(u32::try_from(schema["scale"].as_u64().unwrap()).unwrap())
                }
                _ => Reading::Plain,
            };
            (field["name"].as_str().unwrap().to_owned(), reading)
        })
        .collect()
}

/// An SQL string literal.
fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

/// An SQL expression of type `ty` for the decoded Avro `value`, read as `reading` says.
fn sql_of(value: &Value, ty: &str, reading: Reading) -> Result<String, String> {
    let cast = |expr: String| Ok(format!("({expr})::{ty}"));
    match (value, reading) {
        (Value::Union(_, inner), _) => sql_of(inner, ty, reading),
        (Value::Null, _) => cast("NULL".to_owned()),
        // int2vector: an array of int2, which PostgreSQL prints space-separated.
        (Value::Array(items), _) if ty == "int2vector" => {
            let items = items
                .iter()
                .map(|item| sql_of(item, "int2", reading))
                .collect::<Result<Vec<_>, _>>()?;
            cast(format!(
                "array_to_string(ARRAY[{}]::int2[], ' ')",
                items.join(", ")
            ))
        }
        (Value::Array(items), _) => {
            let element = ty.strip_suffix("[]").ok_or("an array in a scalar column")?;
            let items = items
                .iter()
                .map(|item| sql_of(item, element, reading))
                .collect::<Result<Vec<_>, _>>()?;
            cast(format!("ARRAY[{}]::{ty}", items.join(", ")))
        }
        // hstore: keys to nullable values.
        (Value::Map(pairs), Reading::Plain) => {
            let mut keys = Vec::new();
            let mut values = Vec::new();
            for (key, value) in pairs {
                let value = nullable_string(value).ok_or("a map value that is not a string")?;
                keys.push(literal(key));
                values.push(value.map_or_else(|| "NULL".to_owned(), literal));
            }
            cast(format!(
                "hstore(ARRAY[{}]::text[], ARRAY[{}]::text[])",
                keys.join(", "),
                values.join(", ")
            ))
        }
        (Value::Int(days), Reading::Date) => cast(match *days {
            i32::MAX => "'infinity'::date".to_owned(),
            i32::MIN => "'-infinity'::date".to_owned(),
            days => format!("'1970-01-01'::date + {days}"),
        }),
        (Value::Int(millis), Reading::MilliTime) => sql_of(
            &Value::Long(i64::from(*millis) * 1000),
            ty,
            Reading::MicroTime,
        ),
        (Value::Long(millis), Reading::MilliTimestamp) => cast(match *millis {
            i64::MAX => "'infinity'::timestamp".to_owned(),
            i64::MIN => "'-infinity'::timestamp".to_owned(),
            millis => timestamp_sql(i128::from(millis) * 1000),
        }),
        (Value::Long(micros), Reading::MicroTime) => {
            let seconds = micros / 1_000_000;
            cast(format!(
                "'{:02}:{:02}:{:02}.{:06}'",
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60,
                micros % 1_000_000
            ))
        }
        (Value::Long(micros), Reading::MicroTimestamp) => cast(match *micros {
            i64::MAX => "'infinity'::timestamp".to_owned(),
            i64::MIN => "'-infinity'::timestamp".to_owned(),
            micros => timestamp_sql(i128::from(micros)),
        }),
        (Value::String(text), Reading::ZonedTimestamp) => cast(literal(&pg_timestamptz(text)?)),
        (Value::Decimal(decimal), Reading::Decimal(scale)) => {
            let bytes = Vec::<u8>::try_from(decimal).map_err(|e| e.to_string())?;
            cast(format!("'{}'::numeric", decimal_text(&bytes, scale)))
        }
        // io.debezium.data.VariableScaleDecimal, io.debezium.data.geometry.Point.
        (Value::Record(fields), Reading::Plain) => match fields.as_slice() {
            [(x_name, Value::Double(x)), (y_name, Value::Double(y)), ..]
                if x_name == "x" && y_name == "y" =>
            {
                cast(format!(
                    "point({}::float8, {}::float8)",
                    literal(&float_text(*x, format!("{x:?}"))),
                    literal(&float_text(*y, format!("{y:?}")))
                ))
            }
            [
                (scale_name, Value::Int(scale)),
                (value_name, Value::Bytes(bytes)),
            ] if scale_name == "scale" && value_name == "value" => {
                let scale = u32::try_from(*scale).map_err(|_| "a negative scale")?;
                cast(format!("'{}'::numeric", decimal_text(bytes, scale)))
            }
            _ => Err("an unknown record".to_owned()),
        },
        (Value::Bytes(bytes), Reading::Bits) => {
            let mut bits: String = bytes.iter().rev().map(|b| format!("{b:08b}")).collect();
            bits = bits.trim_start_matches('0').to_owned();
            // A bit(n) has n bits; a varbit's leading zeros are in the exact field.
            let width = ty
                .strip_prefix("bit(")
                .and_then(|n| n.strip_suffix(')'))
                .map_or(0, |n| n.parse::<usize>().unwrap());
            cast(format!("B'{bits:0>width$}'"))
        }
        (Value::Boolean(b), Reading::Plain)
            if ty.starts_with("bit") || ty.starts_with("varbit") =>
        {
            cast(format!("B'{}'", u8::from(*b)))
        }
        // hstore as Debezium's JSON object.
        (Value::String(json), Reading::Plain) if ty == "hstore" => cast(format!(
            "(SELECT coalesce(hstore(array_agg(key), array_agg(value)), ''::hstore) \
             FROM json_each_text({}::json))",
            literal(json)
        )),
        (Value::Bytes(bytes), Reading::Plain) => {
            let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
            cast(format!("'\\x{hex}'::bytea"))
        }
        (Value::Boolean(b), Reading::Plain) => cast(b.to_string()),
        (Value::Int(n), Reading::Plain) => cast(literal(&n.to_string())),
        (Value::Long(n), Reading::Plain) => cast(literal(&n.to_string())),
        (Value::Float(f), Reading::Plain) => {
            cast(literal(&float_text(f64::from(*f), format!("{f:?}"))))
        }
        (Value::Double(f), Reading::Plain) => cast(literal(&float_text(*f, format!("{f:?}")))),
        (Value::String(text), Reading::Plain | Reading::Iso) => cast(literal(text)),
        (other, reading) => Err(format!("no reading of {other:?} as {reading:?}")),
    }
}

/// A timestamp of `micros` since 1970: whole days and the rest, so that no step goes through
/// a double.
fn timestamp_sql(micros: i128) -> String {
    let day = 86_400_000_000;
    format!(
        "'1970-01-01'::timestamp + {} * interval '1 day' + {} * interval '1 microsecond'",
        micros.div_euclid(day),
        micros.rem_euclid(day)
    )
}

/// A float as PostgreSQL reads it; `shortest` is Rust's round-tripping form of the value.
fn float_text(value: f64, shortest: String) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value.is_infinite() {
        if value > 0.0 { "Infinity" } else { "-Infinity" }.to_owned()
    } else {
        shortest
    }
}

/// ISO-8601 `[+-]YYYY-MM-DDTHH:MM:SS[.f]Z` (astronomical years) in PostgreSQL's input form.
fn pg_timestamptz(text: &str) -> Result<String, String> {
    if text == "infinity" || text == "-infinity" {
        return Ok(text.to_owned());
    }
    let (sign, rest) = match text.as_bytes().first() {
        Some(b'+') => (1, &text[1..]),
        Some(b'-') => (-1, &text[1..]),
        _ => (1, text),
    };
    let (year, rest) = rest.split_once('-').ok_or("no year")?;
    let year = sign * year.parse::<i64>().map_err(|e| e.to_string())?;
    Ok(if year <= 0 {
        format!("{:04}-{rest} BC", 1 - year)
    } else {
        format!("{year:04}-{rest}")
    })
}

/// The decimal text of a big-endian two's-complement unscaled integer at `scale`.
fn decimal_text(unscaled: &[u8], scale: u32) -> String {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = unscaled.to_vec();
    if negative {
        magnitude.iter_mut().for_each(|b| *b = !*b);
        for b in magnitude.iter_mut().rev() {
            let (sum, carry) = b.overflowing_add(1);
            *b = sum;
            if !carry {
                break;
            }
        }
    }
    // Base 2^32 limbs, most significant first, divided down into base 10^9 groups.
    let mut padded = vec![0u8; (4 - magnitude.len() % 4) % 4];
    padded.extend(&magnitude);
    let mut limbs: Vec<u32> = padded
        .chunks(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let mut groups = Vec::new();
    while limbs.iter().any(|&l| l != 0) {
        let mut rest = 0u64;
        for limb in &mut limbs {
            let current = (rest << 32) | u64::from(*limb);
            *limb = u32::try_from(current / 1_000_000_000).unwrap();
            rest = current % 1_000_000_000;
        }
        groups.push(rest);
    }
    let mut digits = groups
        .pop()
        .map_or_else(|| "0".to_owned(), |g| g.to_string());
    for group in groups.iter().rev() {
        digits.push_str(&format!("{group:09}"));
    }
    let scale = usize::try_from(scale).unwrap();
    if digits.len() <= scale {
        digits = format!("{}{digits}", "0".repeat(scale + 1 - digits.len()));
    }
    if scale > 0 {
        digits.insert(digits.len() - scale, '.');
    }
    if negative {
        digits.insert(0, '-');
    }
    digits
}

/// Whether two decoded values are the same, floats bit for bit (NaN and -0 included).
fn identical(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => a.to_bits() == b.to_bits(),
        (Value::Double(a), Value::Double(b)) => a.to_bits() == b.to_bits(),
        (Value::Union(i, a), Value::Union(j, b)) => i == j && identical(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| identical(a, b))
        }
        (Value::Map(a), Value::Map(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(key, a)| b.get(key).is_some_and(|b| identical(a, b)))
        }
        (Value::Record(a), Value::Record(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b)
                    .all(|((n, a), (m, b))| n == m && identical(a, b))
        }
        (a, b) => a == b,
    }
}

/// Whether two events' rows, and their exact values, are the same apart from `id`.
fn same_row(a: &Event, b: &Event) -> bool {
    if !identical(&a.exact, &b.exact) {
        return false;
    }
    let (Some(a), Some(b)) = (&a.after, &b.after) else {
        return false;
    };
    a.len() == b.len()
        && a.iter().all(|(name, value)| {
            name == "id" || b.get(name).is_some_and(|other| identical(value, other))
        })
}

/// A value for a message, long ones cut.
fn shown(value: &impl std::fmt::Debug) -> String {
    let text = format!("{value:?}");
    match text.char_indices().nth(300) {
        Some((end, _)) => format!("{}… ({} chars)", &text[..end], text.len()),
        None => text,
    }
}

/// PostgreSQL's output for `expr`, NULL kept apart from the empty string.
fn canonical(expr: &str) -> String {
    format!("CASE WHEN num_nulls({expr}) = 1 THEN NULL ELSE format('%s', {expr}) END")
}

/// A column's value read back by PostgreSQL, each as its output (NULL kept apart from '').
struct ReadBack {
    /// The SQL expression of the Avro value.
    from_avro: Option<String>,
    /// The stored value.
    stored: Option<String>,
    /// The stored value's elements (a scalar is its one element), one output each.
    elements: Vec<Option<String>>,
}

/// Reads back each (column, expression, whether an array) of row `id`, in one query.
async fn read_back(
    sql: &tokio_postgres::Client,
    from: &str,
    id: i32,
    columns: &[(String, String, bool)],
) -> Result<Vec<ReadBack>, String> {
    let selects: Vec<String> = columns
        .iter()
        .flat_map(|(column, expr, array)| {
            let elements = if *array {
                format!(
                    "ARRAY(SELECT {} FROM (SELECT unnest({column}) AS e) AS u)",
                    canonical("e")
                )
            } else {
                format!("ARRAY[{}]", canonical(column))
            };
            [canonical(expr), canonical(column), elements]
        })
        .collect();
    let row = sql
        .query_one(
            &format!("SELECT {} FROM {from} WHERE id = $1", selects.join(", ")),
            &[&id],
        )
        .await
        .map_err(|err| {
            err.as_db_error()
                .map_or_else(|| err.to_string(), |db| db.message().to_owned())
        })?;
    Ok((0..columns.len())
        .map(|i| ReadBack {
            from_avro: row.get(3 * i),
            stored: row.get(3 * i + 1),
            elements: row.get(3 * i + 2),
        })
        .collect())
}

/// A nullable string (a union of null and string) as such.
fn nullable_string(value: &Value) -> Option<Option<&str>> {
    match value {
        Value::Union(_, inner) => match &**inner {
            Value::Null => Some(None),
            Value::String(text) => Some(Some(text)),
            _ => None,
        },
        _ => None,
    }
}

/// The Avro strings of a value (a scalar's one, an array's elements), if it is made of them.
fn avro_strings(value: &Value) -> Option<Vec<Option<String>>> {
    match value {
        Value::String(text) => Some(vec![Some(text.clone())]),
        Value::Array(items) => items
            .iter()
            .map(|item| nullable_string(item).map(|s| s.map(str::to_owned)))
            .collect(),
        _ => None,
    }
}

/// Compares every column of `event` with its row in PostgreSQL: the Avro value read back must
/// give PostgreSQL's output for the stored value, and a plain Avro string must be that output
/// verbatim. Adds what differs to `mismatches`; returns how many of the values of
/// [`MULTI_DIMENSIONAL`] had their shape in the `exact` field.
async fn compare_with_postgres(
    sql: &tokio_postgres::Client,
    schema: &str,
    (table, columns): (&str, &[Column]),
    id: i32,
    event: &Event,
    readings: &BTreeMap<String, Reading>,
    mismatches: &mut Vec<String>,
) -> usize {
    let here = format!("{table} id {id}");
    let Some(after) = &event.after else {
        mismatches.push(format!("{here}: no after"));
        return 0;
    };
    let mut checks = Vec::new();
    for (column, ty, array) in columns_of(schema, columns) {
        let Some(value) = after.get(&column) else {
            mismatches.push(format!("{here} {column}: not in the event"));
            continue;
        };
        let reading = readings[&column];
        let exact = ExactEntry::of(&event.exact, "after", &column);
        match exact_sql_of(value, &ty, reading, exact.as_ref()) {
            Ok(expr) => checks.push((column, reading, expr, array, value, exact, ty)),
            Err(err) => mismatches.push(format!(
                "{here} {column}: Avro {} exact {exact:?}: {err}",
                shown(value)
            )),
        }
    }
    let from = format!("{schema}.{table}");
    let queried: Vec<(String, String, bool)> = checks
        .iter()
        .map(|(column, _, expr, array, ..)| (column.clone(), expr.clone(), *array))
        .collect();
    // One query for the row; if PostgreSQL refuses it, one per column to find which.
    let results: Vec<Result<ReadBack, String>> = match read_back(sql, &from, id, &queried).await {
        Ok(rows) => rows.into_iter().map(Ok).collect(),
        Err(_) => {
            let mut each = Vec::new();
            for one in &queried {
                let result = read_back(sql, &from, id, std::slice::from_ref(one)).await;
                each.push(result.map(|mut r| r.remove(0)));
            }
            each
        }
    };
    let mut shaped = 0;
    for ((column, reading, expr, _, value, exact, ty), result) in checks.iter().zip(results) {
        let back = match result {
            Ok(back) => back,
            Err(err) => {
                mismatches.push(format!(
                    "{here} {column}: Avro {} read as {} refused: {err}",
                    shown(value),
                    shown(expr)
                ));
                continue;
            }
        };
        if is_multi_dimensional(id, column)
            && exact.as_ref().is_some_and(|e| !e.dimensions.is_empty())
        {
            shaped += 1;
        }
        if back.from_avro != back.stored {
            mismatches.push(format!(
                "{here} {column}: Avro {} reads back as {}, PostgreSQL has {}",
                shown(value),
                shown(&back.from_avro),
                shown(&back.stored)
            ));
        }
        // Not hstore, a JSON object, nor int2vector, an array of numbers.
        let verbatim =
            *reading == Reading::Plain && !ty.starts_with("hstore") && *ty != "int2vector";
        if let Some(strings) = avro_strings(value).filter(|_| verbatim)
            && strings != back.elements
        {
            mismatches.push(format!(
                "{here} {column}: Avro strings {} are not PostgreSQL's output {}",
                shown(&strings),
                shown(&back.elements)
            ));
        }
        if let Some(exact) = exact {
            let lossy = *reading == Reading::Bits;
            let here = format!("{here} {column}");
            check_exact(exact, value, lossy, &back, &here, mismatches);
        }
    }
    shaped
}

/// An exact value is PostgreSQL's output verbatim, where its field holds null (or, `lossy`,
/// Debezium's form of it).
fn check_exact(
    exact: &ExactEntry,
    value: &Value,
    lossy: bool,
    back: &ReadBack,
    here: &str,
    mismatches: &mut Vec<String>,
) {
    if let Some(text) = &exact.value {
        if back.stored.as_ref() != Some(text) {
            mismatches.push(format!(
                "{here}: exact {text:?} is not PostgreSQL's output {:?}",
                back.stored
            ));
        }
        if *value != Value::Null && !lossy {
            mismatches.push(format!("{here}: exact {text:?}, but Avro {}", shown(value)));
        }
    }
    let items = match value {
        Value::Array(items) => items.as_slice(),
        _ => &[],
    };
    for (&index, text) in &exact.elements {
        if back.elements.get(index) != Some(&Some(text.clone())) {
            mismatches.push(format!(
                "{here}: exact element {index} {text:?} is not PostgreSQL's output {:?}",
                back.elements.get(index)
            ));
        }
        if !lossy && !matches!(items.get(index), Some(Value::Union(0, _))) {
            mismatches.push(format!(
                "{here}: exact element {index} {text:?}, but Avro {}",
                shown(&items.get(index))
            ));
        }
    }
}

/// A column's entry in the event's `exact` field (docs/types.md, "Exact values").
#[derive(Debug, Default)]
struct ExactEntry {
    value: Option<String>,
    /// (lower bound, length) of each dimension.
    dimensions: Vec<(i32, i32)>,
    /// Elements by their index in the flat list.
    elements: BTreeMap<usize, String>,
}

impl ExactEntry {
    /// The entry of `column` in the `side` ("before", "after") map of `exact`.
    fn of(exact: &Value, side: &str, column: &str) -> Option<ExactEntry> {
        let Value::Record(sides) = exact else {
            return None;
        };
        let map = sides.iter().find(|(name, _)| name == side)?;
        let Value::Union(1, map) = &map.1 else {
            return None;
        };
        let Value::Map(entries) = &**map else {
            panic!("exact.{side}: {map:?}")
        };
        let Value::Record(fields) = entries.get(column)? else {
            panic!("exact.{side}.{column}")
        };
        let mut entry = ExactEntry::default();
        for (name, field) in fields {
            let Value::Union(1, inner) = field else {
                continue;
            };
            match (name.as_str(), &**inner) {
                ("value", Value::String(text)) => entry.value = Some(text.clone()),
                ("dimensions", Value::Array(dimensions)) => {
                    for dimension in dimensions {
                        let Value::Record(bounds) = dimension else {
                            panic!("{dimension:?}")
                        };
                        let [(_, Value::Int(lower)), (_, Value::Int(length))] = bounds.as_slice()
                        else {
                            panic!("{bounds:?}")
                        };
                        entry.dimensions.push((*lower, *length));
                    }
                }
                ("elements", Value::Array(elements)) => {
                    for element in elements {
                        let Value::Record(pair) = element else {
                            panic!("{element:?}")
                        };
                        let [(_, Value::Int(index)), (_, Value::String(text))] = pair.as_slice()
                        else {
                            panic!("{pair:?}")
                        };
                        entry
                            .elements
                            .insert(usize::try_from(*index).unwrap(), text.clone());
                    }
                }
                _ => panic!("exact.{side}.{column}.{name}: {inner:?}"),
            }
        }
        Some(entry)
    }
}

/// An SQL expression of type `ty` for the decoded Avro `value` and its `exact` entry, read as
/// an exact reader does: the exact value where there is one, an array's exact elements in
/// place of theirs and its dimensions and bounds applied.
fn exact_sql_of(
    value: &Value,
    ty: &str,
    reading: Reading,
    exact: Option<&ExactEntry>,
) -> Result<String, String> {
    let Some(exact) = exact else {
        return sql_of(value, ty, reading);
    };
    if let Some(text) = &exact.value {
        return Ok(format!("({})::{ty}", literal(text)));
    }
    let (Value::Array(items), Some(element)) = (value, ty.strip_suffix("[]")) else {
        return Err("exact elements or dimensions of a scalar".to_owned());
    };
    let items = items
        .iter()
        .enumerate()
        .map(|(index, item)| match exact.elements.get(&index) {
            Some(text) => Ok(format!("({})::{element}", literal(text))),
            None => sql_of(item, element, reading),
        })
        .collect::<Result<Vec<_>, _>>()?;
    if exact.dimensions.is_empty() {
        return Ok(format!("(ARRAY[{}]::{ty})", items.join(", ")));
    }
    // Nested ARRAY[...]s of the dimensions' lengths, printed, then read with the bounds.
    let mut nested = items;
    for &(_, length) in exact.dimensions.iter().skip(1).rev() {
        let length = usize::try_from(length).map_err(|e| e.to_string())?;
        nested = nested
            .chunks(length.max(1))
            .map(|chunk| format!("ARRAY[{}]", chunk.join(", ")))
            .collect();
    }
    let bounds: String = exact
        .dimensions
        .iter()
        .map(|(lower, length)| format!("[{lower}:{}]", lower + length - 1))
        .collect();
    Ok(format!(
        "('{bounds}=' || (ARRAY[{}]::{ty})::text)::{ty}",
        nested.join(", ")
    ))
}

/// Drops what a test made: its runs' publications (and slots, if left), then its schema.
async fn drop_all(sql: &tokio_postgres::Client, schema: &str, runs: &[&Run]) {
    for run in runs {
        sql.batch_execute(&format!(
            "DROP PUBLICATION IF EXISTS {};
             SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
              WHERE slot_name = '{}' AND NOT active;",
            run.publication, run.slot
        ))
        .await
        .unwrap();
    }
    sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn every_type_is_exact_through_snapshot_and_streaming_in_text_and_binary_mode() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("fidelity");
    create_types(&stack, &sql, &schema).await;
    let binary_types = on_this_server(&stack, &sql, &schema, BINARY).await;
    let text_form = on_this_server(&stack, &sql, &schema, TEXT_FORM).await;
    let specials = on_this_server(&stack, &sql, &schema, SPECIALS).await;
    for table in [binary_types, text_form, specials] {
        create_table(&sql, &schema, table).await;
    }
    // Text mode (the snapshot reads binary COPY, streaming text), binary mode, and numerics as
    // strings.
    let text = Run::new(
        &stack,
        "text",
        &schema,
        &[BINARY.0, TEXT_FORM.0, SPECIALS.0],
        false,
        false,
    );
    let binary = Run::new(
        &stack,
        "binary",
        &schema,
        &[BINARY.0, TEXT_FORM.0, SPECIALS.0],
        true,
        false,
    );
    let string = Run::new(
        &stack,
        "numeric string",
        &schema,
        &[BINARY.0, SPECIALS.0],
        false,
        true,
    );
    let runs = [&text, &binary, &string];
    let tables = [binary_types, text_form, specials];
    let table = |name: &str| *tables.iter().find(|(t, _)| *t == name).unwrap();
    let snapshot_rows = |run: &Run| -> usize {
        run.tables
            .iter()
            .map(|t| usize::try_from(row_count(table(t).1)).unwrap())
            .sum()
    };
    let sluices: Vec<Sluice> = runs
        .iter()
        .map(|run| Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &run.config))
        .collect();
    // The snapshots have arrived, so each slot exists: what is inserted now is streamed.
    tokio::join!(
        read_run(&stack, &text, &schema, snapshot_rows(&text)),
        read_run(&stack, &binary, &schema, snapshot_rows(&binary)),
        read_run(&stack, &string, &schema, snapshot_rows(&string)),
    );
    wait_until_streaming(&sql, &binary.slot).await;
    assert_eq!(streams_binary(&sql, &binary.slot).await, Some(true));
    for (name, columns) in tables {
        let names: Vec<String> = columns_of(&schema, columns)
            .into_iter()
            .map(|(column, _, _)| column)
            .collect();
        sql.batch_execute(&format!(
            "INSERT INTO {schema}.{name} SELECT id + {STREAMED}, {0} FROM {schema}.{name}",
            names.join(", ")
        ))
        .await
        .unwrap();
    }
    let (from_text, from_binary, from_string) = tokio::join!(
        read_run(&stack, &text, &schema, 2 * snapshot_rows(&text)),
        read_run(&stack, &binary, &schema, 2 * snapshot_rows(&binary)),
        read_run(&stack, &string, &schema, 2 * snapshot_rows(&string)),
    );
    for (run, sluice) in runs.iter().zip(sluices) {
        stop_and_drop_slot(sluice, &sql, &run.slot).await;
    }

    let mut mismatches = Vec::new();
    let mut shaped = 0;
    let mut expected_shaped = 0;
    for (run, captured) in [
        (&text, &from_text),
        (&binary, &from_binary),
        (&string, &from_string),
    ] {
        let mut schemas = BTreeMap::new();
        for name in &run.tables {
            let topic = run.topic(&schema, name);
            let readings = readings(&stack, &topic).await;
            // An array's elements have the schema of its type's values.
            for column in table(name).1 {
                let (scalar, array) = (format!("c_{}", column.name), format!("a_{}", column.name));
                if readings[&scalar] != readings[&array] {
                    mismatches.push(format!(
                        "{} {name}: {array} elements read as {:?}, {scalar} as {:?}",
                        run.label, readings[&array], readings[&scalar]
                    ));
                }
            }
            schemas.insert(name.to_string(), readings);
        }
        for ((name, id), event) in captured {
            let (op, twin) = if *id < STREAMED {
                ("r", id + STREAMED)
            } else {
                ("c", id - STREAMED)
            };
            if event.op.as_deref() != Some(op) {
                mismatches.push(format!(
                    "{} {name} id {id}: op {:?}, not {op}",
                    run.label, event.op
                ));
            }
            // The snapshot's binary COPY and the streamed form give the same Avro.
            if !captured
                .get(&(name.clone(), twin))
                .is_some_and(|t| same_row(event, t))
            {
                mismatches.push(format!(
                    "{} {name} id {id}: differs from id {twin}",
                    run.label
                ));
            }
            let mut found = Vec::new();
            shaped += compare_with_postgres(
                &sql,
                &schema,
                table(name),
                *id,
                event,
                &schemas[name],
                &mut found,
            )
            .await;
            mismatches.extend(found.into_iter().map(|m| format!("{}: {m}", run.label)));
        }
        for name in &run.tables {
            let columns = table(name).1;
            expected_shaped += 2 * MULTI_DIMENSIONAL
                .iter()
                .filter(|(multi, _)| columns.iter().any(|c| c.name == *multi))
                .count();
        }
    }
    // Text and binary mode give the same Avro for every row.
    for (key, event) in &from_binary {
        let same = from_text
            .get(key)
            .is_some_and(|t| same_row(event, t) && identical(&event.key["id"], &t.key["id"]));
        if !same {
            mismatches.push(format!("{key:?}: binary mode differs from text mode"));
        }
    }
    drop_all(&sql, &schema, &runs).await;
    assert!(
        mismatches.is_empty(),
        "{} mismatches:\n{}",
        mismatches.len(),
        mismatches.join("\n")
    );
    assert_eq!(
        shaped, expected_shaped,
        "each multi-dimensional value's shape was in the exact field"
    );
}
