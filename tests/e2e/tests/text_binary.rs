//! The same rows through pgoutput's text mode and binary mode must carry the same values.
//! PostgreSQL itself is the judge: each binary value is sent back to it as a parameter of
//! its type and rendered by the type's output function (`format('%s', $1)`; a `::text` cast
//! would not do: bool, bpchar and inet have casts of their own), which must equal what text
//! mode delivered.

use std::collections::HashMap;
use std::error::Error;
use std::time::Duration;

use bytes::BytesMut;
use sluice_e2e::{Stack, unique_name};
use sluice_pgoutput::{ColumnValue, LogicalMessage};
use sluice_postgres::{
    Change, ChangeStream, PgOutputOptions, ReplicationConnection, SnapshotAction,
};
use tokio_postgres::types::{IsNull, ToSql, Type, to_sql_checked};

/// Built-in types and values, ordinary and edge, one column each.
const COLUMNS: &[(&str, &str)] = &[
    ("bool", "true"),
    ("int2", "-32768"),
    ("int4", "2147483647"),
    ("int8", "-9223372036854775808"),
    ("float4", "-1.5e-7"),
    ("float8", "'-Infinity'"),
    ("float8", "'NaN'"),
    ("float8", "1.7976931348623157e308"),
    ("numeric", "-123456789.000000001"),
    ("numeric(10,3)", "1234.5"),
    ("numeric", "'NaN'"),
    ("text", "'héllo ☃ \"quoted\"'"),
    ("varchar(10)", "'abc'"),
    ("bpchar(5)", "'ab'"),
    ("name", "'a name'"),
    ("\"char\"", "'c'"),
    ("bytea", "'\\x00ff10'"),
    ("uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'"),
    ("date", "'4713-01-01 BC'"),
    ("date", "'-infinity'"),
    ("time", "'24:00:00'"),
    ("timetz", "'12:34:56.789012+05:30'"),
    ("timestamp", "'294276-12-31 23:59:59.999999'"),
    ("timestamptz", "'infinity'"),
    ("timestamptz", "'2024-02-29 12:00:00.000001+00'"),
    ("interval", "'1 year 2 mons -3 days 04:05:06.000007'"),
    ("json", "'{\"a\": [1, 2.50]}'"),
    ("jsonb", "'{\"b\": null, \"a\": [1, 2.50]}'"),
    ("xml", "'<a>1</a>'"),
    ("inet", "'192.168.0.1/24'"),
    ("inet", "'::1'"),
    ("cidr", "'10.0.0.0/8'"),
    ("macaddr", "'08:00:2b:01:02:03'"),
    ("macaddr8", "'08:00:2b:01:02:03:04:05'"),
    ("bit(4)", "B'1010'"),
    ("varbit", "B'10101'"),
    ("tsvector", "'a:1 b:2'"),
    ("tsquery", "'a & !b'"),
    ("oid", "4294967295"),
    ("pg_lsn", "'16/B374D848'"),
    ("money", "'12.34'"),
    ("point", "'(1.5,2)'"),
    ("line", "'{1,2,3}'"),
    ("lseg", "'[(0,0),(1,1)]'"),
    ("box", "'(1,1),(0,0)'"),
    ("path", "'[(0,0),(1,1),(2,0)]'"),
    ("polygon", "'((0,0),(1,1),(2,0))'"),
    ("circle", "'<(0,0),1>'"),
    ("int4range", "'[1,10)'"),
    ("tstzrange", "'[2024-01-01,infinity)'"),
    ("int4multirange", "'{[1,3),[5,7)}'"),
    ("int4[]", "'{1,NULL,3}'"),
    ("text[]", "'{{a,b},{c,NULL}}'"),
    ("numeric[]", "'{1.5,NaN}'"),
    ("timestamptz[]", "'{infinity,2024-01-01 00:00:00+00}'"),
];

/// A value already in PostgreSQL's binary form, passed through as is.
#[derive(Debug)]
struct RawBinary<'a>(&'a [u8]);

impl ToSql for RawBinary<'_> {
    fn to_sql(&self, _: &Type, out: &mut BytesMut) -> Result<IsNull, Box<dyn Error + Sync + Send>> {
        out.extend_from_slice(self.0);
        Ok(IsNull::No)
    }

    fn accepts(_: &Type) -> bool {
        true
    }

    to_sql_checked!();
}

/// A replication connection holding a new temporary slot: it goes away with the connection,
/// whatever becomes of the test.
async fn connection_with_slot(stack: &Stack) -> (ReplicationConnection, String) {
    let mut conn = ReplicationConnection::connect(&stack.replication_config("sluice"))
        .await
        .unwrap();
    let slot = unique_name("types");
    conn.create_slot(&slot, true, SnapshotAction::NoExport)
        .await
        .unwrap();
    (conn, slot)
}

/// Each column's value (as text or raw binary) and type oid, from one row through one mode.
async fn capture(
    (conn, slot): (ReplicationConnection, String),
    table: &str,
    publication: &str,
    binary: bool,
) -> (Vec<Option<Vec<u8>>>, Vec<u32>) {
    let mut options = PgOutputOptions::new(vec![publication.to_owned()]);
    options.binary = binary;
    let choice = conn.negotiate(&options);
    assert_eq!(choice.binary, binary);
    let stream = conn
        .start_replication(&slot, sluice_pgoutput::Lsn::ZERO, &options, choice)
        .await
        .unwrap();
    let mut changes = ChangeStream::new(stream, 1 << 20);
    let mut types: HashMap<u32, Vec<u32>> = HashMap::new();
    loop {
        let change = tokio::time::timeout(Duration::from_secs(30), changes.next())
            .await
            .expect("the row arrives")
            .unwrap()
            .unwrap();
        match change {
            Change::Message(LogicalMessage::Relation(relation)) => {
                assert_eq!(relation.name(), table);
                types.insert(
                    relation.relation_id(),
                    relation.columns().iter().map(|c| c.type_oid()).collect(),
                );
            }
            Change::Message(LogicalMessage::Insert(insert)) => {
                let values = insert
                    .new_tuple()
                    .iter()
                    .map(|value| match value {
                        ColumnValue::Null => None,
                        ColumnValue::Text(bytes) => {
                            assert!(!binary, "text in binary mode");
                            Some(bytes.to_vec())
                        }
                        ColumnValue::Binary(bytes) => {
                            assert!(binary, "binary in text mode");
                            Some(bytes.to_vec())
                        }
                        other => panic!("unexpected {other:?}"),
                    })
                    .collect();
                return (values, types[&insert.relation_id()].clone());
            }
            _ => {}
        }
    }
}

#[tokio::test]
async fn text_and_binary_mode_agree_for_every_built_in_type_covered() {
    let stack = Stack::from_env();
    let sql = stack.pg_connect("sluice").await;
    let table = unique_name("types");
    let publication = unique_name("types_pub");
    let columns: Vec<String> = COLUMNS
        .iter()
        .enumerate()
        .map(|(i, (ty, _))| format!("c{i} {ty}"))
        .collect();
    sql.batch_execute(&format!(
        "CREATE TABLE {table} (id int PRIMARY KEY, {});
         CREATE PUBLICATION {publication} FOR TABLE {table};",
        columns.join(", ")
    ))
    .await
    .unwrap();
    let text_slot = connection_with_slot(&stack).await;
    let binary_slot = connection_with_slot(&stack).await;
    let values: Vec<&str> = COLUMNS.iter().map(|(_, value)| *value).collect();
    sql.batch_execute(&format!(
        "INSERT INTO {table} VALUES (1, {})",
        values.join(", ")
    ))
    .await
    .unwrap();

    let (text, _) = capture(text_slot, &table, &publication, false).await;
    let (binary, oids) = capture(binary_slot, &table, &publication, true).await;
    assert_eq!(text.len(), COLUMNS.len() + 1);
    assert_eq!(binary.len(), text.len());

    let mut mismatches = Vec::new();
    for (i, ((text, binary), oid)) in text.iter().zip(&binary).zip(&oids).enumerate() {
        let (Some(text), Some(binary)) = (text, binary) else {
            panic!("column {i} is null in one mode only, or at all");
        };
        let ty = Type::from_oid(*oid).unwrap_or_else(|| panic!("built-in type {oid}"));
        let statement = sql
            .prepare_typed("SELECT format('%s', $1)", &[ty])
            .await
            .unwrap();
        let from_binary: String = sql
            .query_one(&statement, &[&RawBinary(binary)])
            .await
            .unwrap_or_else(|err| panic!("column {i} ({oid}): binary value refused: {err}"))
            .get(0);
        let text = String::from_utf8(text.clone()).unwrap();
        if text != from_binary {
            let name = COLUMNS.get(i.wrapping_sub(1)).map_or("id", |(ty, _)| ty);
            mismatches.push(format!("{name}: text {text:?} binary {from_binary:?}"));
        }
    }
    assert!(mismatches.is_empty(), "{mismatches:#?}");
}
