//! Tests of the table codec: schemas and events decoded by apache-avro.

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use apache_avro::types::Value as Avro;

use super::*;

struct TextRow(Vec<Option<&'static str>>);

impl Row for TextRow {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        self.0.iter().map(|value| match value {
            None => Raw::Null,
            Some(text) => Raw::Text(text.as_bytes()),
        })
    }
}

/// A column of a built-in type.
fn column(
    name: &str,
    type_oid: u32,
    type_modifier: i32,
    nullable: bool,
    is_key: bool,
) -> ColumnSpec {
    ColumnSpec {
        name: name.to_owned(),
        type_oid,
        type_modifier,
        nullable,
        is_key,
        type_info: TypeInfo::default(),
        default: None,
    }
}

fn public_table(name: &str, columns: Vec<ColumnSpec>) -> TableSpec {
    TableSpec {
        schema: "public".into(),
        name: name.into(),
        columns,
    }
}

fn spec() -> TableSpec {
    public_table(
        "orders",
        vec![
            column("id", 20, -1, false, true),
            column("amount", 1700, (10 << 16 | 2) + 4, true, false),
            column("note", 25, -1, true, false),
            column("placed", 1184, -1, true, false),
            column("ratio", 1700, -1, true, false),
        ],
    )
}

/// A row of text values where `None` is an unchanged TOASTed value.
struct UnchangedRow(Vec<Option<&'static str>>);

impl Row for UnchangedRow {
    fn values(&self) -> impl Iterator<Item = Raw<'_>> {
        self.0.iter().map(|value| match value {
            None => Raw::Unchanged,
            Some(text) => Raw::Text(text.as_bytes()),
        })
    }
}

#[test]
fn unchanged_toasted_values_get_the_placeholder_or_null_even_when_not_null() {
    let column = |name: &str, type_oid, is_key| ColumnSpec {
        name: name.to_owned(),
        type_oid,
        type_modifier: -1,
        nullable: false,
        is_key,
        type_info: TypeInfo::default(),
        default: None,
    };
    // All NOT NULL: a large int[] or numeric can still arrive unchanged, with no
    // placeholder form, so their fields allow null; text keeps its NOT NULL.
    let spec = TableSpec {
        schema: "public".into(),
        name: "docs".into(),
        columns: vec![
            column("id", 23, true),
            column("body", 25, false),
            column("tags", 1007, false),
            column("total", 1700, false),
            column("names", 1009, false),
        ],
    };
    let codec = TableCodec::new("shop.public.docs", &spec).with_unchanged_placeholder("<same>");
    let schema = Schema::parse_str(codec.row_schema()).unwrap();
    let mut out = Vec::new();
    codec
        .encode_row_value(
            1,
            &UnchangedRow(vec![Some("7"), None, None, None, None]),
            &mut out,
            &mut Scratch::default(),
        )
        .unwrap();
    let decoded = read(&schema, &out[5..]);
    assert_eq!(field(&decoded, "body"), &Avro::String("<same>".into()));
    let null = Avro::Union(0, Box::new(Avro::Null));
    assert_eq!(field(&decoded, "tags"), &null);
    assert_eq!(field(&decoded, "total"), &null);
    // A text[] as Debezium sends it: an array of the placeholder alone.
    let placeholder = Avro::Union(1, Box::new(Avro::String("<same>".into())));
    assert_eq!(
        field(&decoded, "names"),
        &Avro::Union(1, Box::new(Avro::Array(vec![placeholder])))
    );
}

fn read(schema: &Schema, mut datum: &[u8]) -> Avro {
    GenericDatumReader::builder(schema)
        .build()
        .unwrap()
        .read_value(&mut datum)
        .unwrap()
}

fn field<'a>(record: &'a Avro, name: &str) -> &'a Avro {
    let Avro::Record(fields) = record else {
        panic!("{record:?}")
    };
    &fields.iter().find(|(n, _)| n == name).unwrap().1
}

#[test]
fn events_decode_with_their_own_schemas() {
    let codec = TableCodec::new("shop.public.orders", &spec());
    let key_schema = Schema::parse_str(codec.key_schema()).unwrap();
    let value_schema = Schema::parse_str(codec.value_schema()).unwrap();
    let row = TextRow(vec![
        Some("42"),
        Some("-12.50"),
        None,
        Some("2024-02-29 12:00:00.25+01"),
        Some("3.14159"),
    ]);
    let mut scratch = Scratch::default();

    let mut key = Vec::new();
    codec.encode_key(7, &row, &mut key, &mut scratch).unwrap();
    assert_eq!(&key[..5], &[0, 0, 0, 0, 7]);
    let decoded = read(&key_schema, &key[5..]);
    assert_eq!(field(&decoded, "id"), &Avro::Long(42));

    let mut value = Vec::new();
    let source = Source {
        name: "shop",
        db: "sluice",
        commit_time_us: 1_700_000_000_123_456,
        snapshot: SnapshotMarker::False,
        tx_id: Some(777),
        lsn: Some(0x16_B374_D848),
        transaction: None,
    };
    codec
        .encode_envelope(
            8,
            Op::Create,
            None::<&TextRow>,
            Some(&row),
            &source,
            1,
            &mut value,
            &mut scratch,
        )
        .unwrap();
    let event = read(&value_schema, &value[5..]);
    assert_eq!(field(&event, "op"), &Avro::String("c".into()));
    assert_eq!(
        field(&event, "before"),
        &Avro::Union(0, Box::new(Avro::Null))
    );
    let Avro::Union(1, after) = field(&event, "after") else {
        panic!()
    };
    let amount = field(after, "amount");
    assert_eq!(
        amount,
        &Avro::Union(
            1,
            Box::new(Avro::Decimal((-1250i32).to_be_bytes()[2..].to_vec().into()))
        )
    );
    assert_eq!(field(after, "note"), &Avro::Union(0, Box::new(Avro::Null)));
    assert_eq!(
        field(after, "placed"),
        &Avro::Union(1, Box::new(Avro::String("2024-02-29T11:00:00.25Z".into())))
    );
    let Avro::Union(1, ratio) = field(after, "ratio") else {
        panic!()
    };
    assert_eq!(field(ratio, "scale"), &Avro::Int(5));
    assert_eq!(
        field(ratio, "value"),
        &Avro::Bytes(314_159i32.to_be_bytes()[1..].to_vec())
    );
    let source = field(&event, "source");
    assert_eq!(field(source, "table"), &Avro::String("orders".into()));
    assert_eq!(field(source, "ts_ms"), &Avro::Long(1_700_000_000_123));
    assert_eq!(
        field(source, "txId"),
        &Avro::Union(1, Box::new(Avro::Long(777)))
    );
}

#[test]
fn upsert_rows_decode_with_the_row_schema() {
    let codec = TableCodec::new("shop.public.orders", &spec());
    let schema = Schema::parse_str(codec.row_schema()).unwrap();
    let row = TextRow(vec![Some("1"), None, Some("n"), None, None]);
    let mut value = Vec::new();
    codec
        .encode_row_value(3, &row, &mut value, &mut Scratch::default())
        .unwrap();
    let decoded = read(&schema, &value[5..]);
    assert_eq!(field(&decoded, "id"), &Avro::Long(1));
    assert_eq!(
        field(&decoded, "note"),
        &Avro::Union(1, Box::new(Avro::String("n".into())))
    );
}

/// A table whose values may not fit their Debezium-shaped fields.
fn specials_spec() -> TableSpec {
    public_table(
        "specials",
        vec![
            column("id", 1700, -1, false, true),
            column("amount", 1700, (10 << 16 | 2) + 4, true, false),
            column("at", 1114, -1, false, false),
            column("amounts", 1231, -1, true, false),
            column("__exact", 25, -1, true, false),
        ],
    )
}

#[test]
fn values_no_debezium_field_holds_are_null_or_stand_ins_and_exact_beside() {
    let codec = TableCodec::new("shop.public.specials", &specials_spec());
    let value_schema = Schema::parse_str(codec.value_schema()).unwrap();
    let key_schema = Schema::parse_str(codec.key_schema()).unwrap();
    let before = TextRow(vec![
        Some("1"),
        Some("1.50"),
        Some("2024-01-01 00:00:00"),
        None,
        None,
    ]);
    let after = TextRow(vec![
        Some("NaN"),
        Some("NaN"),
        Some("294276-12-31 23:59:59.999999"),
        Some("{1,Infinity,NaN}"),
        Some("x"),
    ]);
    let source = Source {
        name: "shop",
        db: "sluice",
        commit_time_us: 0,
        snapshot: SnapshotMarker::False,
        tx_id: None,
        lsn: None,
        transaction: None,
    };
    let mut scratch = Scratch::default();
    let mut value = Vec::new();
    codec
        .encode_envelope(
            1,
            Op::Update,
            Some(&before),
            Some(&after),
            &source,
            0,
            &mut value,
            &mut scratch,
        )
        .unwrap();
    let event = read(&value_schema, &value[5..]);
    let null = Avro::Union(0, Box::new(Avro::Null));
    let Avro::Union(1, row) = field(&event, "after") else {
        panic!()
    };
    // NOT NULL key and timestamp: stand-ins; nullable fields and elements: null.
    assert_eq!(
        field(row, "id"),
        &Avro::Record(vec![
            ("scale".into(), Avro::Int(-131_072)),
            ("value".into(), Avro::Bytes(vec![2])),
        ])
    );
    assert_eq!(field(row, "amount"), &null);
    assert_eq!(field(row, "at"), &Avro::Long(-9_222_426_057_709_551_615));
    let Avro::Union(1, amounts) = field(row, "amounts") else {
        panic!()
    };
    let Avro::Array(amounts) = &**amounts else {
        panic!()
    };
    assert_eq!(amounts[1..], [null.clone(), null.clone()]);
    let Avro::Union(1, exact) = field(&event, "exact") else {
        panic!("{event:?}")
    };
    assert_eq!(field(exact, "before"), &null);
    let Avro::Union(1, exact_after) = field(exact, "after") else {
        panic!()
    };
    let Avro::Map(exact_after) = &**exact_after else {
        panic!()
    };
    let value_of = |column: &str| field(&exact_after[column], "value").clone();
    let text = |t: &str| Avro::Union(1, Box::new(Avro::String(t.into())));
    assert_eq!(value_of("id"), text("NaN"));
    assert_eq!(value_of("amount"), text("NaN"));
    assert_eq!(value_of("at"), text("294276-12-31 23:59:59.999999"));
    assert_eq!(value_of("amounts"), null);
    let element = |index, value: &str| {
        Avro::Record(vec![
            ("index".into(), Avro::Int(index)),
            ("value".into(), Avro::String(value.into())),
        ])
    };
    assert_eq!(
        field(&exact_after["amounts"], "elements"),
        &Avro::Union(
            1,
            Box::new(Avro::Array(vec![element(1, "Infinity"), element(2, "NaN")]))
        )
    );
    assert_eq!(exact_after.len(), 4, "{exact_after:?}");

    // Nothing special: null.
    value.clear();
    codec
        .encode_envelope(
            1,
            Op::Create,
            None::<&TextRow>,
            Some(&before),
            &source,
            0,
            &mut value,
            &mut scratch,
        )
        .unwrap();
    assert_eq!(field(&read(&value_schema, &value[5..]), "exact"), &null);

    // The key holds the stand-in, which no other value has.
    let mut key = Vec::new();
    codec.encode_key(1, &after, &mut key, &mut scratch).unwrap();
    let Avro::Record(id) = field(&read(&key_schema, &key[5..]), "id").clone() else {
        panic!()
    };
    assert_eq!(id[0].1, Avro::Int(-131_072));

    // An upsert row carries the same map after its columns, named past the columns'.
    let row_schema = Schema::parse_str(codec.row_schema()).unwrap();
    let mut row = Vec::new();
    codec
        .encode_row_value(1, &after, &mut row, &mut scratch)
        .unwrap();
    let row = read(&row_schema, &row[5..]);
    assert_eq!(field(&row, "__exact"), &text("x"));
    let Avro::Union(1, exact) = field(&row, "__exact_") else {
        panic!("{row:?}")
    };
    let Avro::Map(exact) = &**exact else { panic!() };
    assert_eq!(field(&exact["id"], "value"), &text("NaN"));
}

#[test]
fn a_null_in_a_not_null_column_names_the_column() {
    let codec = TableCodec::new("shop.public.orders", &spec());
    let row = TextRow(vec![None, None, None, None, None]);
    let err = codec
        .encode_key(1, &row, &mut Vec::new(), &mut Scratch::default())
        .unwrap_err();
    assert_eq!(err.column, "id");
    assert_eq!(err.table, "public.orders");
}

#[test]
fn messages_decode_with_their_schemas() {
    let codec = MessageCodec::new("shop.message");
    let value_schema = Schema::parse_str(codec.value_schema()).unwrap();
    let key_schema = Schema::parse_str(codec.key_schema()).unwrap();
    let source = Source {
        name: "shop",
        db: "sluice",
        commit_time_us: 0,
        snapshot: SnapshotMarker::False,
        tx_id: None,
        lsn: Some(42),
        transaction: None,
    };
    let mut key = Vec::new();
    codec.encode_key(1, "audit", &mut key);
    assert_eq!(
        field(&read(&key_schema, &key[5..]), "prefix"),
        &Avro::String("audit".into())
    );
    let mut value = Vec::new();
    codec.encode_value(2, "audit", b"\x00hi", &source, "", 7_000, &mut value);
    let decoded = read(&value_schema, &value[5..]);
    assert_eq!(field(&decoded, "op"), &Avro::String("m".into()));
    let message = field(&decoded, "message");
    assert_eq!(field(message, "content"), &Avro::Bytes(b"\x00hi".to_vec()));
}

#[test]
fn enums_domains_and_extension_types_shape_the_schema() {
    let named = |name: &str, typtype| TypeInfo {
        name: name.into(),
        typtype,
        ..TypeInfo::default()
    };
    let mood = TypeInfo {
        enum_labels: vec!["sad".into(), "ok".into()],
        ..named("mood", 'e')
    };
    let posint = TypeInfo {
        domain: Some("posint".into()),
        ..named("int4", 'b')
    };
    let column = |name: &str, type_oid, type_info| ColumnSpec {
        name: name.to_owned(),
        type_oid,
        type_modifier: -1,
        nullable: true,
        is_key: false,
        type_info,
        default: None,
    };
    let posints = TypeInfo {
        element: Some(Box::new(crate::ElementType {
            type_oid: 23,
            declared_oid: 0,
            info: posint.clone(),
        })),
        ..named("_posint", 'b')
    };
    let spec = TableSpec {
        schema: "public".into(),
        name: "things".into(),
        columns: vec![
            ColumnSpec {
                is_key: true,
                nullable: false,
                ..column("id", 23, posint)
            },
            column("feeling", 16_390, mood),
            column("tags", 16_391, named("hstore", 'b')),
            column("counts", 16_392, posints),
            column("price", 1700, TypeInfo::default()),
            column("spot", 628, TypeInfo::default()),
        ],
    };
    let options = TypeOptions {
        numeric: crate::NumericMode::String,
        ..TypeOptions::default()
    };
    let codec = TableCodec::with_options("shop.public.things", &spec, &options);
    let value: Value = serde_json::from_str(codec.row_schema()).unwrap();
    let fields = value["fields"].as_array().unwrap();
    assert_eq!(fields[0]["sluice.domain"], "posint");
    assert_eq!(fields[0]["type"], "int");
    assert_eq!(
        fields[1]["type"][1]["connect.name"],
        "io.debezium.data.Enum"
    );
    assert_eq!(
        fields[1]["type"][1]["connect.parameters"]["allowed"],
        "sad,ok"
    );
    assert_eq!(
        fields[2]["type"][1]["connect.name"],
        "io.debezium.data.Json"
    );
    assert_eq!(fields[3]["sluice.domain"], "posint[]");
    assert_eq!(fields[3]["type"][1]["items"], json!(["null", "int"]));
    assert_eq!(fields[4]["type"][1], "string");
    let binary: Vec<bool> = codec.column_kinds().map(ColumnKind::reads_binary).collect();
    assert_eq!(binary, [true, true, true, true, true, false]);

    let schema = Schema::parse_str(codec.row_schema()).unwrap();
    let row = TextRow(vec![
        Some("7"),
        Some("ok"),
        Some(r#""a"=>"1", "b"=>NULL"#),
        Some("{1,NULL}"),
        Some("NaN"),
        Some("{1,2,3}"),
    ]);
    let mut out = Vec::new();
    codec
        .encode_row_value(1, &row, &mut out, &mut Scratch::default())
        .unwrap();
    let decoded = read(&schema, &out[5..]);
    assert_eq!(field(&decoded, "id"), &Avro::Int(7));
    let some = |v| Avro::Union(1, Box::new(v));
    assert_eq!(field(&decoded, "feeling"), &some(Avro::String("ok".into())));
    assert_eq!(
        field(&decoded, "counts"),
        &some(Avro::Array(vec![
            some(Avro::Int(1)),
            Avro::Union(0, Box::new(Avro::Null))
        ]))
    );
    assert_eq!(field(&decoded, "price"), &some(Avro::String("NaN".into())));
    assert_eq!(
        field(&decoded, "spot"),
        &some(Avro::String("{1,2,3}".into()))
    );
}

#[test]
fn names_become_valid_avro_names() {
    assert_eq!(avro_name("shop.public.orders"), "shop.public.orders");
    assert_eq!(avro_name("my-db.1st table"), "my_db._1st_table");
}

#[test]
fn a_snapshot_row_is_marked_last_in_place() {
    let codec = TableCodec::new("shop.public.orders", &spec());
    let value_schema = Schema::parse_str(codec.value_schema()).unwrap();
    let row = TextRow(vec![Some("1"), None, Some("n"), None, None]);
    let source = Source {
        name: "shop",
        db: "sluice",
        commit_time_us: 0,
        snapshot: SnapshotMarker::True,
        tx_id: None,
        lsn: None,
        transaction: None,
    };
    let mut scratch = Scratch::default();
    let mut value = Vec::new();
    codec
        .encode_envelope(
            8,
            Op::Read,
            None::<&TextRow>,
            Some(&row),
            &source,
            1,
            &mut value,
            &mut scratch,
        )
        .unwrap();
    let at = scratch.snapshot_marker_at();
    assert!(!crate::mark_snapshot_last(&mut value, at + 1), "not there");
    assert!(crate::mark_snapshot_last(&mut value, at));
    let event = read(&value_schema, &value[5..]);
    let source = field(&event, "source");
    assert_eq!(
        field(source, "snapshot"),
        &Avro::Union(0, Box::new(Avro::String("last".into())))
    );
    assert!(!crate::mark_snapshot_last(&mut value, at), "marked once");
}
