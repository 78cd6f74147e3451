//! Beyond values (types.rs): each column type's Avro schema, as registered, is the one
//! docs/types.md documents (Avro type, logical type and its parameters, `connect.name`), for a
//! column and for an array of it; typed values go through UPDATE and DELETE, and the
//! before-images carry exactly the Avro the row's insert did, in text and binary mode; and
//! composite and text keys are carried as documented through every kind of change.

use std::collections::BTreeMap;

use apache_avro::types::Value;
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_subject_and_version,
};
use serde_json::{Value as Json, json};
use sluice_e2e::pipeline::{
    Event, Sluice, read_events, read_events_exactly, stop_and_drop_slot, wait_for_records,
    wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, unique_name};

// The types of types.rs's tests: enum mood, domains posint and price, composite pair.
use crate::types::create_types;

/// `connect.name`s of docs/types.md.
const DECIMAL: &str = "org.apache.kafka.connect.data.Decimal";
const VARIABLE_SCALE: &str = "io.debezium.data.VariableScaleDecimal";

fn debezium(avro: &str, name: &str) -> Json {
    json!({"type": avro, "connect.name": format!("io.debezium.{name}")})
}

fn decimal(precision: u32, scale: u32) -> Json {
    json!({"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale,
           "connect.name": DECIMAL})
}

/// Debezium's `Bits` of a `bit(length)` (2147483647 for `varbit`).
fn bits(length: &str) -> Json {
    json!({"type": "bytes", "connect.name": "io.debezium.data.Bits",
           "connect.parameters": {"length": length}})
}

fn variable_scale() -> Json {
    json!({"type": "record", "connect.name": VARIABLE_SCALE,
           "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]})
}

/// Each type (`{s}`: the test's schema) and what docs/types.md's mapping says its values are:
/// the Avro schema's type and properties, with the domain a field names, if any (as
/// PostgreSQL's `format_type` prints it: here, in the test's schema, qualified).
fn documented() -> Vec<(&'static str, &'static str, Json, Option<&'static str>)> {
    let plain = |avro: &str| json!({"type": avro});
    vec![
        ("bool", "bool", plain("boolean"), None),
        (
            "int2",
            "int2",
            json!({"type": "int", "connect.type": "int16"}),
            None,
        ),
        (
            "int2vector",
            "int2vector",
            json!({"type": "array", "items": {"type": "int", "connect.type": "int16"}}),
            None,
        ),
        ("int4", "int4", plain("int"), None),
        ("int8", "int8", plain("long"), None),
        ("float4", "float4", plain("float"), None),
        ("float8", "float8", plain("double"), None),
        ("numeric_10_2", "numeric(10,2)", decimal(10, 2), None),
        ("numeric", "numeric", variable_scale(), None),
        ("numeric_neg", "numeric(5,-2)", variable_scale(), None),
        ("money", "money", decimal(64, 2), None),
        ("text", "text", plain("string"), None),
        ("varchar", "varchar(10)", plain("string"), None),
        ("name", "name", plain("string"), None),
        ("xml", "xml", debezium("string", "data.Xml"), None),
        ("citext", "citext", plain("string"), None),
        ("bpchar", "char(5)", plain("string"), None),
        ("char", "\"char\"", plain("string"), None),
        (
            "mood",
            "{s}.mood",
            json!({"type": "string", "connect.name": "io.debezium.data.Enum",
                   "connect.parameters": {"allowed": "happy,so so,it's"}}),
            None,
        ),
        ("bytea", "bytea", plain("bytes"), None),
        ("uuid", "uuid", debezium("string", "data.Uuid"), None),
        ("json", "json", debezium("string", "data.Json"), None),
        ("jsonb", "jsonb", debezium("string", "data.Json"), None),
        ("jsonpath", "jsonpath", plain("string"), None),
        ("date", "date", debezium("int", "time.Date"), None),
        ("time", "time", debezium("long", "time.MicroTime"), None),
        (
            "timetz",
            "timetz",
            debezium("string", "time.ZonedTime"),
            None,
        ),
        (
            "timestamp",
            "timestamp",
            debezium("long", "time.MicroTimestamp"),
            None,
        ),
        (
            "timestamptz",
            "timestamptz",
            debezium("string", "time.ZonedTimestamp"),
            None,
        ),
        (
            "interval",
            "interval",
            debezium("string", "time.Interval"),
            None,
        ),
        ("bit", "bit(4)", bits("4"), None),
        ("varbit", "varbit", bits("2147483647"), None),
        ("inet", "inet", plain("string"), None),
        ("cidr", "cidr", plain("string"), None),
        ("macaddr", "macaddr", plain("string"), None),
        ("macaddr8", "macaddr8", plain("string"), None),
        ("oid", "oid", plain("long"), None),
        ("xid8", "xid8", plain("long"), None),
        ("pg_lsn", "pg_lsn", plain("string"), None),
        ("tid", "tid", plain("string"), None),
        ("hstore", "hstore", debezium("string", "data.Json"), None),
        ("posint", "{s}.posint", plain("int"), Some("{s}.posint")),
        ("price", "{s}.price", decimal(8, 2), Some("{s}.price")),
        (
            "tsvector",
            "tsvector",
            debezium("string", "data.Tsvector"),
            None,
        ),
        (
            "point",
            "point",
            json!({"type": "record", "connect.name": "io.debezium.data.geometry.Point",
                   "fields": [{"name": "x", "type": "double"}, {"name": "y", "type": "double"},
                              {"name": "wkb", "type": ["null", "bytes"]},
                              {"name": "srid", "type": ["null", "int"]}]}),
            None,
        ),
        ("int4range", "int4range", plain("string"), None),
        ("pair", "{s}.pair", plain("string"), None),
    ]
}

/// sluice capturing `tables` of `schema`, its configuration edited by `edit`; returns once it
/// streams.
async fn capture(
    stack: &Stack,
    sql: &tokio_postgres::Client,
    schema: &str,
    edit: impl Fn(String) -> String,
) -> (String, String, Sluice) {
    let (prefix, slot) = (unique_name("typeschema"), unique_name("typeschema_slot"));
    let config = write_config(
        stack,
        &prefix,
        &slot,
        &unique_name("typeschema_pub"),
        schema,
    );
    std::fs::write(&config, edit(std::fs::read_to_string(&config).unwrap())).unwrap();
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), &config);
    wait_until_streaming(sql, &slot).await;
    (prefix, slot, sluice)
}

/// The latest registered schema of `subject`, as JSON.
async fn registered(stack: &Stack, subject: &str) -> Json {
    let settings = SrSettings::new(stack.registry_url.clone());
    let schema = get_schema_by_subject_and_version(&settings, subject, None)
        .await
        .unwrap_or_else(|err| panic!("{subject}: {err:?}"));
    serde_json::from_str(&schema.schema).unwrap()
}

/// The named types a schema defines, by name and by full name.
fn named_types(schema: &Json, found: &mut BTreeMap<String, Json>) {
    match schema {
        Json::Object(object) => {
            if let Some(Json::String(name)) = object.get("name")
                && object.contains_key("type")
                && matches!(object["type"].as_str(), Some("record" | "enum" | "fixed"))
            {
                found.insert(name.clone(), schema.clone());
                if let Some(Json::String(namespace)) = object.get("namespace") {
                    found.insert(format!("{namespace}.{name}"), schema.clone());
                }
            }
            object.values().for_each(|v| named_types(v, found));
        }
        Json::Array(items) => items.iter().for_each(|v| named_types(v, found)),
        _ => {}
    }
}

/// A schema as an object: a bare type name becomes `{"type": name}`, a named type referred to
/// by name its definition.
fn resolved(schema: &Json, named: &BTreeMap<String, Json>) -> Json {
    match schema {
        Json::String(name) => named
            .get(name)
            .cloned()
            .unwrap_or_else(|| json!({"type": name})),
        other => other.clone(),
    }
}

/// What in `actual` differs from `expected`: each property `expected` names must be equal
/// (objects and arrays compared item by item the same way), and `connect.name` and
/// `logicalType` must be absent where `expected` has none.
fn differences(
    expected: &Json,
    actual: &Json,
    named: &BTreeMap<String, Json>,
    at: &str,
    out: &mut Vec<String>,
) {
    // A property's text, or a primitive type's name, as it is.
    if let (Json::String(want), Json::String(got)) = (expected, actual) {
        if want != got {
            out.push(format!("{at}: {got:?}, documented {want:?}"));
        }
        return;
    }
    let actual = resolved(actual, named);
    match (expected, &actual) {
        (Json::Object(want), Json::Object(got)) => {
            for (key, value) in want {
                match got.get(key) {
                    Some(found) => differences(value, found, named, &format!("{at}.{key}"), out),
                    None => out.push(format!("{at}: no {key}, documented {value}")),
                }
            }
            // A column type without them documented has none (records, keys and the
            // envelope's, are named after their topic).
            for key in ["connect.name", "logicalType"] {
                let record = want.get("type").is_some_and(|t| t == "record");
                if !record && !want.contains_key(key) && got.contains_key(key) {
                    out.push(format!("{at}: {key} {}, documented none", got[key]));
                }
            }
        }
        (Json::Array(want), Json::Array(got)) if want.len() == got.len() => {
            for (i, (want, got)) in want.iter().zip(got).enumerate() {
                differences(want, got, named, &format!("{at}[{i}]"), out);
            }
        }
        (want, got) => {
            let got = match got {
                Json::Object(object) if want.is_string() && object.len() == 1 => {
                    object.get("type").cloned().unwrap_or_default()
                }
                other => other.clone(),
            };
            if *want != got {
                out.push(format!("{at}: {got}, documented {want}"));
            }
        }
    }
}

/// The fields of the row record in an envelope schema.
fn row_fields(envelope: &Json) -> Vec<Json> {
    envelope["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|field| field["name"] == "before")
        .and_then(|before| before["type"].as_array())
        .and_then(|union| union.iter().find(|member| member["type"] == "record"))
        .expect("before is a union with the row record")["fields"]
        .as_array()
        .unwrap()
        .clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_columns_avro_schema_is_the_documented_one() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("typeschema");
    create_types(&stack, &sql, &schema).await;
    let columns: Vec<String> = documented()
        .iter()
        .map(|(name, ty, _, _)| {
            let ty = ty.replace("{s}", &schema);
            format!("c_{name} {ty}, a_{name} {ty}[]")
        })
        .collect();
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.t (id int PRIMARY KEY, {});
         CREATE TABLE {schema}.n (id int PRIMARY KEY, c_numeric_10_2 numeric(10,2),
                                  c_numeric numeric, a_numeric numeric[]);",
        columns.join(", ")
    ))
    .await
    .unwrap();
    // Decimal mode for t, string mode for n (one run each: a run's mode is all its tables').
    let (prefix, slot, sluice) = capture(&stack, &sql, &schema, |c| {
        c.replace(&format!("\"{schema}.*\""), &format!("\"{schema}.t\""))
    })
    .await;
    let (string_prefix, string_slot, string_sluice) = capture(&stack, &sql, &schema, |c| {
        c.replace(&format!("\"{schema}.*\""), &format!("\"{schema}.n\""))
            .replace("[metrics]", "[events]\nnumeric = \"string\"\n\n[metrics]")
    })
    .await;
    let value = registered(&stack, &format!("{prefix}.{schema}.t-value")).await;
    let key = registered(&stack, &format!("{prefix}.{schema}.t-key")).await;
    let string_value = registered(&stack, &format!("{string_prefix}.{schema}.n-value")).await;
    stop_and_drop_slot(sluice, &sql, &slot).await;
    stop_and_drop_slot(string_sluice, &sql, &string_slot).await;

    let mut named = BTreeMap::new();
    named_types(&value, &mut named);
    let fields = row_fields(&value);
    let field = |name: &str| {
        fields
            .iter()
            .find(|f| f["name"] == name)
            .unwrap_or_else(|| panic!("no field {name} in {fields:#?}"))
            .clone()
    };
    let mut wrong = Vec::new();
    // The key: the primary key's column, not null.
    differences(
        &json!({"type": "record", "fields": [{"name": "id", "type": "int"}]}),
        &key,
        &named,
        "key",
        &mut wrong,
    );
    differences(
        &json!("int"),
        &field("id")["type"],
        &named,
        "id",
        &mut wrong,
    );
    for (name, _, expected, domain) in documented() {
        for (column, expected, domain) in [
            (
                format!("c_{name}"),
                expected.clone(),
                domain.map(|d| d.replace("{s}", &schema)),
            ),
            (
                format!("a_{name}"),
                json!({"type": "array", "items": ["null", expected]}),
                domain.map(|d| format!("{}[]", d.replace("{s}", &schema))),
            ),
        ] {
            let field = field(&column);
            // A column that may be NULL: the union of null and its schema, default null.
            let nullable = json!({"type": ["null", expected], "default": null});
            differences(&nullable, &field, &named, &column, &mut wrong);
            if field.get("sluice.domain").and_then(Json::as_str) != domain.as_deref() {
                wrong.push(format!(
                    "{column}: sluice.domain {:?}, documented {domain:?}",
                    field.get("sluice.domain")
                ));
            }
        }
    }
    // events.numeric = "string": every numeric is a string.
    let string_fields = row_fields(&string_value);
    for column in ["c_numeric_10_2", "c_numeric", "a_numeric"] {
        let found = string_fields.iter().find(|f| f["name"] == column).unwrap();
        let string = if column.starts_with("a_") {
            json!({"type": "array", "items": ["null", {"type": "string"}]})
        } else {
            json!({"type": "string"})
        };
        let expected = json!({"type": ["null", string], "default": null});
        differences(
            &expected,
            found,
            &named,
            &format!("string mode {column}"),
            &mut wrong,
        );
    }
    sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
    assert!(
        wrong.is_empty(),
        "{} differ from docs/types.md:\n{}",
        wrong.len(),
        wrong.join("\n")
    );
}

/// Typed columns whose values an UPDATE changes from the first to the second (`{s}`: the
/// test's schema); each is in the old row that REPLICA IDENTITY FULL sends with the update and
/// the delete. No NaN: it is not equal to itself.
const IMAGED: &[(&str, &str, &str)] = &[
    ("bool", "true", "false"),
    ("int2", "-32768", "7"),
    ("int8", "9223372036854775807", "-1"),
    ("float4", "1.5", "'-Infinity'"),
    ("float8", "'5e-324'", "'-0'"),
    ("numeric(10,2)", "1234.5", "-0.01"),
    ("numeric", "1.50", "-123456789.000000001"),
    ("money", "12.34", "-92233720368547758.08"),
    ("varchar(10)", "'ten chars!'", "''"),
    ("char(3)", "'a'", "'abc'"),
    ("{s}.mood", "'happy'", "'it''s'"),
    ("bytea", r"'\x00ff10'", r"'\x'"),
    (
        "uuid",
        "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'",
        "'00000000-0000-0000-0000-000000000000'",
    ),
    ("jsonb", r#"'{"a": [1, 2.50]}'"#, "'[]'"),
    ("date", "'4713-01-01 BC'", "'2000-02-29'"),
    ("time", "'24:00:00'", "'00:00:00.000001'"),
    ("timetz", "'12:34:56.789012+05:30'", "'00:00:00-08'"),
    ("timestamp", "'1969-12-31 23:59:59.999999'", "'infinity'"),
    (
        "timestamptz",
        "'2024-02-29 12:00:00.000001+00'",
        "'-infinity'",
    ),
    (
        "interval",
        "'1 year 2 mons -3 days 04:05:06.000007'",
        "'-00:00:01.5'",
    ),
    ("inet", "'::ffff:1.2.3.4/120'", "'192.168.0.1'"),
    ("hstore", "'a=>1, b=>NULL'", "''"),
    ("int4[]", "'{1,NULL,3}'", "'{}'"),
    ("text[]", r#"'{a,NULL,"b c"}'"#, "'{\"\"}'"),
    ("numeric(6,3)[]", "'{1.5,-0.001}'", "'{NULL}'"),
    ("{s}.price", "123456.78", "-0.01"),
];

/// The row's columns but `id`.
fn without_id(row: Option<&BTreeMap<String, Value>>) -> BTreeMap<String, Value> {
    let mut row = row.cloned().unwrap_or_default();
    row.remove("id");
    row
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_values_in_before_images_are_the_avro_the_insert_had_in_text_and_binary_mode() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("beforeimg");
    create_types(&stack, &sql, &schema).await;
    let columns: Vec<String> = IMAGED
        .iter()
        .enumerate()
        .map(|(i, (ty, _, _))| format!("v{i} {}", ty.replace("{s}", &schema)))
        .collect();
    let values = |which: usize| -> Vec<String> {
        IMAGED
            .iter()
            .map(|column| if which == 0 { column.1 } else { column.2 }.to_owned())
            .collect()
    };
    let (first, second) = (values(0), values(1));
    sql.batch_execute(&format!(
        "CREATE TABLE {schema}.t (id int PRIMARY KEY, {});
         ALTER TABLE {schema}.t REPLICA IDENTITY FULL;
         INSERT INTO {schema}.t VALUES (1, {});",
        columns.join(", "),
        first.join(", ")
    ))
    .await
    .unwrap();
    // Row 1 comes through the snapshot (binary COPY), row 2 through the stream.
    let text = capture(&stack, &sql, &schema, |c| c).await;
    let binary = capture(&stack, &sql, &schema, |c| {
        c.replace("[replication]\n", "[replication]\nbinary = true\n")
    })
    .await;
    let sets: Vec<String> = second
        .iter()
        .enumerate()
        .map(|(i, value)| format!("v{i} = {value}"))
        .collect();
    sql.batch_execute(&format!(
        "INSERT INTO {schema}.t VALUES (2, {});
         UPDATE {schema}.t SET {};
         DELETE FROM {schema}.t;",
        first.join(", "),
        sets.join(", ")
    ))
    .await
    .unwrap();
    let mut runs = Vec::new();
    for (prefix, slot, sluice) in [text, binary] {
        let topic = [format!("{prefix}.{schema}.t")];
        // Per row: snapshot row or create, update, delete, tombstone.
        wait_for_records(&stack, &topic, 8).await;
        stop_and_drop_slot(sluice, &sql, &slot).await;
        runs.push(read_events_exactly(&stack, &topic, 8).await);
    }
    sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();

    let mut wrong = Vec::new();
    for (mode, events) in ["text", "binary"].iter().zip(&runs) {
        // One key, one partition: each row's events in order.
        let of = |id: i32| -> Vec<&Event> {
            events
                .iter()
                .filter(|e| e.key["id"] == Value::Int(id))
                .collect()
        };
        let (one, two) = (of(1), of(2));
        let ops =
            |row: &[&Event]| -> Vec<Option<String>> { row.iter().map(|e| e.op.clone()).collect() };
        let op = |op: &str| Some(op.to_owned());
        assert_eq!(ops(&one), [op("r"), op("u"), op("d"), None], "{mode}");
        assert_eq!(ops(&two), [op("c"), op("u"), op("d"), None], "{mode}");
        let inserted = without_id(one[0].after.as_ref());
        let updated = without_id(one[1].after.as_ref());
        for (what, got, want) in [
            (
                "row 2's insert (streamed)",
                without_id(two[0].after.as_ref()),
                &inserted,
            ),
            (
                "row 1's update's before",
                without_id(one[1].before.as_ref()),
                &inserted,
            ),
            (
                "row 2's update's before",
                without_id(two[1].before.as_ref()),
                &inserted,
            ),
            (
                "row 2's update's after",
                without_id(two[1].after.as_ref()),
                &updated,
            ),
            (
                "row 1's delete's before",
                without_id(one[2].before.as_ref()),
                &updated,
            ),
            (
                "row 2's delete's before",
                without_id(two[2].before.as_ref()),
                &updated,
            ),
        ] {
            for (column, value) in want {
                if got.get(column) != Some(value) {
                    wrong.push(format!(
                        "{mode}: {what} {column}: {:?}, the snapshot row's {value:?}",
                        got.get(column)
                    ));
                }
            }
        }
        // Each column changed, so the comparisons above tell the two versions apart.
        for (column, value) in &inserted {
            if updated.get(column) == Some(value) {
                wrong.push(format!("{mode}: {column} did not change: {value:?}"));
            }
        }
    }
    // Binary mode gives the same events, key by key (partitions interleave as they will).
    type Change = (
        Option<String>,
        Option<BTreeMap<String, Value>>,
        Option<BTreeMap<String, Value>>,
    );
    let by_key = |events: &[Event]| -> BTreeMap<String, Vec<Change>> {
        let mut keys: BTreeMap<String, Vec<Change>> = BTreeMap::new();
        for e in events {
            keys.entry(format!("{:?}", e.key)).or_default().push((
                e.op.clone(),
                e.before.clone(),
                e.after.clone(),
            ));
        }
        keys
    };
    if by_key(&runs[0]) != by_key(&runs[1]) {
        wrong.push(format!(
            "binary mode differs from text mode:\n{:?}\n{:?}",
            by_key(&runs[1]),
            by_key(&runs[0])
        ));
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

/// A row's key as its Kafka key: the named columns of `row`.
fn key_of(row: &BTreeMap<String, Value>, columns: &[&str]) -> BTreeMap<String, Value> {
    columns
        .iter()
        .map(|c| ((*c).to_owned(), row[*c].clone()))
        .collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn text_and_composite_keys_are_carried_through_every_kind_of_change() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name("keys");
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.by_text (code text PRIMARY KEY, v int);
         CREATE TABLE {schema}.by_composite (tenant int, code text, day date, v int,
                                             PRIMARY KEY (tenant, code, day));
         INSERT INTO {schema}.by_text VALUES ('a', 1), ('b c/ä', 2);
         INSERT INTO {schema}.by_composite VALUES (1, 'x y', '2024-02-29', 1);"
    ))
    .await
    .unwrap();
    let (prefix, slot, sluice) = capture(&stack, &sql, &schema, |c| c).await;
    let topic = |table: &str| [format!("{prefix}.{schema}.{table}")];
    read_events(&stack, &topic("by_text"), 2).await;
    sql.batch_execute(&format!(
        "UPDATE {schema}.by_text SET v = 10 WHERE code = 'a';
         UPDATE {schema}.by_text SET code = 'a2' WHERE code = 'a';
         DELETE FROM {schema}.by_text WHERE code = 'b c/ä';
         UPDATE {schema}.by_composite SET v = 10;
         UPDATE {schema}.by_composite SET day = '2024-03-01';
         DELETE FROM {schema}.by_composite;"
    ))
    .await
    .unwrap();
    // by_text: 2 snapshot rows, an update, a key change (delete, tombstone, create), a delete
    // and its tombstone; by_composite: a snapshot row, an update, a key change, a delete.
    wait_for_records(&stack, &topic("by_text"), 8).await;
    wait_for_records(&stack, &topic("by_composite"), 7).await;
    let key_schemas = [
        registered(&stack, &format!("{}-key", topic("by_text")[0])).await,
        registered(&stack, &format!("{}-key", topic("by_composite")[0])).await,
    ];
    stop_and_drop_slot(sluice, &sql, &slot).await;
    let by_text = read_events_exactly(&stack, &topic("by_text"), 8).await;
    let by_composite = read_events_exactly(&stack, &topic("by_composite"), 7).await;

    // The keys' schemas: the primary key's columns in its order, not null, typed as documented.
    let mut wrong = Vec::new();
    let named = BTreeMap::new();
    differences(
        &json!({"type": "record", "fields": [{"name": "code", "type": "string"}]}),
        &key_schemas[0],
        &named,
        "by_text key",
        &mut wrong,
    );
    differences(
        &json!({"type": "record", "fields": [
            {"name": "tenant", "type": "int"},
            {"name": "code", "type": "string"},
            {"name": "day", "type": debezium("int", "time.Date")},
        ]}),
        &key_schemas[1],
        &named,
        "by_composite key",
        &mut wrong,
    );
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));

    let text = |s: &str| Value::String(s.to_owned());
    let composite = |day: i32| {
        BTreeMap::from([
            ("tenant".to_owned(), Value::Int(1)),
            ("code".to_owned(), text("x y")),
            ("day".to_owned(), Value::Int(day)),
        ])
    };
    let text_key = |code: &str| BTreeMap::from([("code".to_owned(), text(code))]);
    for (events, columns, expected) in [
        (
            &by_text,
            &["code"][..],
            vec![
                (text_key("a"), vec!["r", "u", "d", "tombstone"]),
                (text_key("b c/ä"), vec!["r", "d", "tombstone"]),
                (text_key("a2"), vec!["c"]),
            ],
        ),
        (
            &by_composite,
            &["tenant", "code", "day"][..],
            // 2024-02-29 and 2024-03-01: days since 1970.
            vec![
                (composite(19782), vec!["r", "u", "d", "tombstone"]),
                (composite(19783), vec!["c", "d", "tombstone"]),
            ],
        ),
    ] {
        for (key, ops) in expected {
            let of_key: Vec<&Event> = events.iter().filter(|e| e.key == key).collect();
            let seen: Vec<&str> = of_key
                .iter()
                .map(|e| e.op.as_deref().unwrap_or("tombstone"))
                .collect();
            assert_eq!(seen, ops, "{key:?}: {events:#?}");
            for event in of_key {
                // The key is the row's key columns; a delete's before has them and nothing else.
                match event.op.as_deref() {
                    Some("d") => {
                        let before = event.before.as_ref().unwrap();
                        assert_eq!(key_of(before, columns), key, "{event:?}");
                        assert_eq!(before["v"], Value::Null, "{event:?}");
                    }
                    Some(_) => assert_eq!(key_of(event.after.as_ref().unwrap(), columns), key),
                    None => assert_eq!(event.after, None),
                }
            }
        }
    }
    sql.batch_execute(&format!("DROP SCHEMA {schema} CASCADE"))
        .await
        .unwrap();
}
