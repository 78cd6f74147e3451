//! With default settings, sluice registers the schemas Debezium's PostgreSQL connector (its
//! defaults, 3.6.1, on a Kafka Connect worker of `deploy/local/connect`) registers for the
//! same table, and writes the same values: one table holding every type of
//! `tests/e2e/tests/types.rs` (and an array of each) is captured by both, through the snapshot
//! and streaming (inserts, an update, a delete, a TRUNCATE). The registered key and value
//! schemas are compared field by field, as a reader sees them (type, optionality, logical
//! name, its parameters, default), and the decoded values event by event.
//!
//! What differs is in [`INTENDED`], each with its reason: where sluice is exact and Debezium
//! lossy, or sluice carries something Debezium does not (docs/types.md, "Compared with
//! Debezium"). Anything else fails the test, and so does an intended difference no longer
//! seen, so the list stays true.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_subject_and_version,
};
use serde_json::{Value as Json, json};
use sluice_e2e::connect::ConnectWorker;
use sluice_e2e::pipeline::{Record, Sluice, read_records, stop_and_drop_slot, write_config};
use sluice_e2e::{Stack, unique_name};

use crate::types::{BINARY_TYPES, TEXT_FORM_TYPES, columns_of, create_types};

/// The captured table.
const TABLE: &str = "every_type";

/// Where a difference is: the registered schema (and so its values), or the decoded values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Part {
    Schema,
    Value,
}

/// The columns of types Debezium's connector does not know (`include.unknown.datatypes` is
/// off by default): it leaves them out of its schemas and events; sluice carries them.
const LEFT_OUT_BY_DEBEZIUM: &[&str] = &[
    "c_jsonpath",
    "c_xid",
    "c_cid",
    "c_xid8",
    "c_tid",
    "c_pg_lsn",
    "c_tsquery",
    "c_line",
    "c_lseg",
    "c_box",
    "c_path",
    "c_polygon",
    "c_circle",
    "c_pair",
    "c_int4multirange",
    "c_snapshot",
    "a_snapshot",
    "a_money",
    "a_name",
    "a_jsonpath",
    "a_xml",
    "a_interval",
    "a_varbit",
    "a_point",
    "a_xid",
    "a_cid",
    "a_xid8",
    "a_tid",
    "a_pg_lsn",
    "a_posint",
    "a_label",
    "a_price",
    "a_short_label",
    "a_tsquery",
    "a_line",
    "a_lseg",
    "a_box",
    "a_path",
    "a_polygon",
    "a_circle",
    "a_pair",
    "a_int4multirange",
];

/// The intended differences: the fields (of the rows, or of the envelope), the part, why.
/// docs/types.md, "Compared with Debezium", says the same.
const INTENDED: &[(&[&str], Part, &str)] = &[
    (
        LEFT_OUT_BY_DEBEZIUM,
        Part::Schema,
        "a type Debezium does not know: it leaves the column out",
    ),
    (
        &["unchanged_toast", "exact"],
        Part::Schema,
        "sluice's own envelope fields, after Debezium's, default null",
    ),
    (
        &["c_numeric_5_neg_2", "a_numeric_5_neg_2"],
        Part::Schema,
        "numeric with a negative scale: Debezium's Decimal has scale 2046 (the 11-bit scale \
         read unsigned) and wrong values; sluice's VariableScaleDecimal is exact",
    ),
    (
        &["c_interval"],
        Part::Schema,
        "interval: Debezium's default MicroDuration counts a month as 30.4375 days; sluice's \
         Interval string (Debezium's interval.handling.mode = string) is exact",
    ),
    (
        &["a_bit_4"],
        Part::Schema,
        "bit(n)[]: Debezium's schema is a Bits (not an array) and its values null",
    ),
    (
        &["a_mood", "a_tsvector", "a_int2vector"],
        Part::Schema,
        "enum[], tsvector[] and int2vector[]: Debezium's elements may not be null (its values \
         are null); sluice's may, as in every array",
    ),
    (
        &["c_int2vector"],
        Part::Value,
        "int2vector: Debezium's values are empty arrays (null for an empty vector); sluice's \
         hold the elements",
    ),
    (
        &["c_timetz", "a_timetz"],
        Part::Value,
        "timetz: Debezium moves the time to UTC (07:04:56.789012Z), sluice keeps its offset \
         (12:34:56.789012+05:30)",
    ),
    (&["c_name"], Part::Value, "name: Debezium writes null"),
    (
        &["c_numeric"],
        Part::Value,
        "numeric: Debezium strips trailing zeros (1.50 is scale 1), sluice keeps the value's \
         scale (scale 2): the same number",
    ),
    (
        &["c_date", "c_timestamp", "c_timestamp_3"],
        Part::Value,
        "infinity: Debezium's stands for a real date and timestamp (dates near -2^31 days, \
         294247-01-10 04:00:25.2); sluice's are i32::MAX and i64::MAX, which no value has",
    ),
    (
        &["a_citext", "a_date", "a_int4", "a_int8", "a_uuid"],
        Part::Value,
        "an unchanged TOASTed array: Debezium sends the placeholder's bytes as numbers for \
         integer and date arrays, a UUID made of it for uuid[], null for citext[]; sluice \
         null (and names the column in unchanged_toast), and the placeholder alone for arrays \
         of text (citext included), json and bytea as Debezium does for text",
    ),
];

/// Creates the table (`id`, then each type's column and array column) and its snapshot rows:
/// row 1 each type's first value and an array of it and NULL, row 2 its second value (or
/// first) and an empty array, row 3 NULLs.
async fn create_table(sql: &tokio_postgres::Client, schema: &str) -> Vec<(String, String)> {
    let types: Vec<_> = BINARY_TYPES.iter().chain(TEXT_FORM_TYPES).collect();
    let columns: Vec<(String, String)> = types
        .iter()
        .flat_map(|c| columns_of(schema, std::slice::from_ref(*c)))
        .map(|(name, ty, _)| (name, ty))
        .collect();
    let definitions: Vec<String> = columns.iter().map(|(n, t)| format!("{n} {t}")).collect();
    let row = |id: usize| {
        let mut values = vec![id.to_string()];
        for column in &types {
            let ty = column.ty.replace("{s}", schema);
            let first = column.values[0];
            let (scalar, array) = match id {
                1 => (
                    first.to_owned(),
                    format!("ARRAY[({first})::{ty}, NULL]::{ty}[]"),
                ),
                2 => (
                    column.values.get(1).unwrap_or(&first).to_string(),
                    "'{}'".to_owned(),
                ),
                _ => ("NULL".to_owned(), "NULL".to_owned()),
            };
            values.extend([scalar, array]);
        }
        format!("({})", values.join(", "))
    };
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.{TABLE} (id int PRIMARY KEY, {});
         INSERT INTO {schema}.{TABLE} VALUES {}, {}, {};",
        definitions.join(", "),
        row(1),
        row(2),
        row(3),
    ))
    .await
    .unwrap();
    columns
}

/// A schema as a reader sees it: for each named type its fields, for each field its type,
/// whether it may be null, its logical name and parameters, its default. Record names lose
/// the topic prefix, which differs between the two.
fn shape(schema: &Json, prefix: &str, named: &mut BTreeMap<String, Json>) -> Json {
    match schema {
        Json::String(name) => match named.get(name) {
            Some(known) => known.clone(),
            None => json!({"type": name.replace(prefix, "<prefix>")}),
        },
        Json::Array(branches) => {
            let non_null: Vec<&Json> = branches.iter().filter(|b| *b != "null").collect();
            let mut inner = match non_null.as_slice() {
                [one] => shape(one, prefix, named),
                _ => {
                    json!({"union": non_null.iter().map(|b| shape(b, prefix, named)).collect::<Vec<_>>()})
                }
            };
            inner["optional"] = json!(branches.len() > non_null.len());
            inner
        }
        Json::Object(object) => {
            let mut out = serde_json::Map::new();
            for (key, value) in object {
                match key.as_str() {
                    "fields" => {
                        let fields: Vec<Json> = value
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|f| {
                                let mut field = shape(&f["type"], prefix, named);
                                field["name"] = f["name"].clone();
                                if let Some(default) = f.get("default") {
                                    field["default"] = default.clone();
                                }
                                field
                            })
                            .collect();
                        out.insert("fields".into(), json!(fields));
                    }
                    "items" | "values" => {
                        out.insert(key.clone(), shape(value, prefix, named));
                    }
                    "name" | "namespace" | "connect.name" => {
                        let text = value.as_str().unwrap().replace(prefix, "<prefix>");
                        out.insert(key.clone(), json!(text));
                    }
                    "doc" | "connect.doc" => {}
                    _ => {
                        out.insert(key.clone(), value.clone());
                    }
                }
            }
            let shaped = Json::Object(out);
            if let Some(name) = object.get("name").and_then(Json::as_str) {
                let full = match object.get("namespace").and_then(Json::as_str) {
                    Some(namespace) if !name.contains('.') => format!("{namespace}.{name}"),
                    _ => name.to_owned(),
                };
                named.insert(full, shaped.clone());
                named.insert(name.to_owned(), shaped.clone());
            }
            shaped
        }
        other => json!({"type": other}),
    }
}

/// The registered schema of `subject`.
async fn registered(stack: &Stack, subject: &str) -> Json {
    let settings = SrSettings::new(stack.registry_url.clone());
    let schema = get_schema_by_subject_and_version(&settings, subject, None)
        .await
        .unwrap_or_else(|err| panic!("{subject}: {err:?}"));
    serde_json::from_str(&schema.schema).unwrap()
}

/// Each field of a shaped record by name, in order, with the path to it.
fn fields_of<'a>(record: &'a Json, path: &str, out: &mut Vec<(String, &'a Json)>) {
    for field in record["fields"].as_array().into_iter().flatten() {
        let name = field["name"].as_str().unwrap();
        out.push((format!("{path}{name}"), field));
    }
}

/// Differences of two shaped schemas, field by field: (path, Debezium's, sluice's).
fn schema_differences(debezium: &Json, sluice: &Json, path: &str) -> Vec<(String, String, String)> {
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    fields_of(sluice, path, &mut ours);
    fields_of(debezium, path, &mut theirs);
    let mut differences = Vec::new();
    let mut names: Vec<&String> = theirs.iter().map(|(n, _)| n).collect();
    for (name, _) in &ours {
        if !names.contains(&name) {
            names.push(name);
        }
    }
    for name in names {
        let find = |list: &Vec<(String, &Json)>| {
            list.iter()
                .find(|(n, _)| n == name)
                .map(|(_, f)| (*f).clone())
        };
        let (d, s) = (find(&theirs), find(&ours));
        match (&d, &s) {
            (Some(d), Some(s)) if d == s => {}
            // Records are compared field by field below them.
            (Some(d), Some(s)) if d["type"] == "record" && s["type"] == "record" => {
                let mut d_rest = d.clone();
                let mut s_rest = s.clone();
                for rest in [&mut d_rest, &mut s_rest] {
                    rest.as_object_mut().unwrap().remove("fields");
                }
                if d_rest != s_rest {
                    differences.push((name.clone(), d_rest.to_string(), s_rest.to_string()));
                }
                differences.extend(schema_differences(d, s, &format!("{name}.")));
            }
            _ => differences.push((
                name.clone(),
                d.map_or_else(|| "(none)".to_owned(), |d| d.to_string()),
                s.map_or_else(|| "(none)".to_owned(), |s| s.to_string()),
            )),
        }
    }
    differences
}

/// One event: op (None for a tombstone), key id.
type EventKey = (Option<String>, i32);

fn events(records: Vec<Record>) -> BTreeMap<EventKey, BTreeMap<String, Value>> {
    records
        .into_iter()
        .filter_map(|(_, key, value)| {
            let Some(Value::Int(id)) = key.get("id") else {
                return None;
            };
            let op = value.as_ref().map(|v| match &v["op"] {
                Value::String(op) => op.clone(),
                other => panic!("op {other:?}"),
            });
            Some(((op, *id), value.unwrap_or_default()))
        })
        .collect()
}

/// A value for a message, long ones cut.
fn cut(value: &Value) -> String {
    let text = format!("{value:?}");
    match text.char_indices().nth(200) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// Whether two decoded values are the same, NaN the same as NaN.
fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Float(a), Value::Float(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::Double(a), Value::Double(b)) => a == b || (a.is_nan() && b.is_nan()),
        (Value::Union(i, a), Value::Union(j, b)) => i == j && same(a, b),
        (Value::Array(a), Value::Array(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(a, b)| same(a, b))
        }
        (Value::Record(a), Value::Record(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|((m, a), (n, b))| m == n && same(a, b))
        }
        (a, b) => a == b,
    }
}

/// The fields of a row (`before`, `after`) of a decoded envelope, by name.
fn row<'a>(value: &'a BTreeMap<String, Value>, side: &str) -> BTreeMap<&'a str, &'a Value> {
    match value.get(side) {
        Some(Value::Record(fields)) => fields.iter().map(|(n, v)| (n.as_str(), v)).collect(),
        _ => BTreeMap::new(),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn with_defaults_sluice_registers_and_writes_what_debezium_does() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("dbzcmp");
    create_types(&stack, &sql, &schema).await;
    let columns = create_table(&sql, &schema).await;
    let qualified = format!("{schema}.{TABLE}");

    let (prefix, slot, publication) = (
        unique_name("cmpsluice"),
        unique_name("cmpsluice_slot"),
        unique_name("cmpsluice_pub"),
    );
    let config = write_config(&stack, &prefix, &slot, &publication, &schema);
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    let (dbz_prefix, dbz_slot, dbz_publication, worker_name) = (
        unique_name("cmpdbz"),
        unique_name("cmpdbz_slot"),
        unique_name("cmpdbz_pub"),
        unique_name("cmpdbz"),
    );
    let worker = tokio::task::block_in_place(|| {
        ConnectWorker::start(
            &stack,
            &worker_name,
            &["deploy/local/connect.d/debezium-postgres.properties.template"],
            &[
                ("TOPIC_PREFIX", &dbz_prefix),
                ("SLOT_NAME", &dbz_slot),
                ("PUBLICATION_NAME", &dbz_publication),
                ("TABLE_INCLUDE_LIST", &qualified),
            ],
        )
    });
    let (ours, theirs) = (
        format!("{prefix}.{qualified}"),
        format!("{dbz_prefix}.{qualified}"),
    );
    // Both have taken their snapshot, so both slots exist: what follows is streamed.
    tokio::join!(
        read_records(&stack, std::slice::from_ref(&ours), 3),
        read_records(&stack, std::slice::from_ref(&theirs), 3),
    );
    let names: Vec<&str> = columns.iter().map(|(n, _)| n.as_str()).collect();
    sql.batch_execute(&format!(
        "INSERT INTO {qualified} SELECT id + 100, {0} FROM {qualified};
         UPDATE {qualified} SET c_text = 'updated', c_int4 = 7 WHERE id = 1;
         DELETE FROM {qualified} WHERE id = 2;
         TRUNCATE {qualified};
         INSERT INTO {qualified} (id, c_text) VALUES (200, 'after the truncate');",
        names.join(", ")
    ))
    .await
    .unwrap();
    // 3 snapshot rows, 3 inserts, an update, a delete and its tombstone, the last insert:
    // no event for the TRUNCATE.
    let expected = 10;
    let (our_records, their_records) = tokio::join!(
        read_records(&stack, std::slice::from_ref(&ours), expected),
        read_records(&stack, std::slice::from_ref(&theirs), expected),
    );
    let failures = worker.failures();
    tokio::task::block_in_place(|| worker.stop_and_forget());
    stop_and_drop_slot(sluice, &sql, &slot).await;
    sql.batch_execute(&format!(
        "SELECT pg_drop_replication_slot('{dbz_slot}');
         DROP PUBLICATION IF EXISTS {publication}, {dbz_publication};
         DROP SCHEMA {schema} CASCADE;"
    ))
    .await
    .unwrap();
    assert!(failures.is_empty(), "{failures:#?}");

    let mut found: Vec<(String, String, String)> = Vec::new();
    for part in ["key", "value"] {
        let (mut ours_named, mut theirs_named) = (BTreeMap::new(), BTreeMap::new());
        let our_schema = registered(&stack, &format!("{ours}-{part}")).await;
        let their_schema = registered(&stack, &format!("{theirs}-{part}")).await;
        let our_shape = shape(&our_schema, &prefix, &mut ours_named);
        let their_shape = shape(&their_schema, &dbz_prefix, &mut theirs_named);
        for (path, d, s) in schema_differences(&their_shape, &our_shape, &format!("{part}.")) {
            found.push((path, format!("schema: Debezium {d}"), format!("sluice {s}")));
        }
    }
    let (our_events, their_events) = (events(our_records), events(their_records));
    for (key, theirs) in &their_events {
        let Some(ours) = our_events.get(key) else {
            found.push((
                format!("{key:?}"),
                "event".into(),
                "missing from sluice".into(),
            ));
            continue;
        };
        for side in ["before", "after"] {
            let (d, s) = (row(theirs, side), row(ours, side));
            for (name, value) in &d {
                let Some(mine) = s.get(name) else { continue };
                if !same(mine, value) {
                    found.push((
                        format!("value.{side}.{name}"),
                        format!("id {} {:?}: Debezium {}", key.1, key.0, cut(value)),
                        format!("sluice {}", cut(mine)),
                    ));
                }
            }
        }
    }
    for key in our_events.keys() {
        if !their_events.contains_key(key) {
            found.push((
                format!("{key:?}"),
                "event".into(),
                "missing from Debezium".into(),
            ));
        }
    }
    let mut seen = vec![false; INTENDED.len()];
    let mut unexpected = Vec::new();
    for (path, debezium, sluice) in &found {
        let part = if debezium.starts_with("schema") {
            Part::Schema
        } else {
            Part::Value
        };
        let field = path.rsplit('.').next().unwrap_or(path);
        match INTENDED
            .iter()
            // A field whose schema differs has other values too.
            .position(|(fields, p, _)| {
                (*p == part || *p == Part::Schema) && fields.contains(&field)
            }) {
            Some(i) => seen[i] = true,
            None => unexpected.push(format!("{path}\n    {debezium}\n    {sluice}")),
        }
    }
    let unseen: Vec<&str> = INTENDED
        .iter()
        .zip(&seen)
        .filter(|(_, seen)| !**seen)
        .map(|((_, _, why), _)| *why)
        .collect();
    assert!(
        unexpected.is_empty(),
        "{} unintended differences:\n{}",
        unexpected.len(),
        unexpected.join("\n")
    );
    assert!(
        unseen.is_empty(),
        "intended differences no longer seen: {unseen:#?}"
    );
}
