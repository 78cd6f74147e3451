//! A table's Avro schemas (key, and value in Debezium's envelope) and the encoder that writes
//! its events straight into a reused buffer in the Confluent wire format.

use serde_json::{Value, json};

use crate::confluent::confluent_header;
use crate::exact::{self, Inexact, Side};
use crate::kind::{ColumnKind, Raw, UNCHANGED_PLACEHOLDER, ValueError};
use crate::output::{Output, Unsupported};
use crate::schema::avro_name;
use crate::scratch::Scratch;
use crate::transaction::TransactionBlock;
use crate::types::{TypeInfo, TypeOptions};
use crate::writer;

/// The `source.version` sluice reports.
pub const SOURCE_VERSION: &str = concat!("sluice-", env!("CARGO_PKG_VERSION"));

/// A column as the catalog describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnSpec {
    pub name: String,
    pub type_oid: u32,
    pub type_modifier: i32,
    pub nullable: bool,
    /// Part of the primary key (or replica identity index).
    pub is_key: bool,
    /// What the catalog says of the type beyond its OID; the default for built-in types.
    pub type_info: TypeInfo,
    /// The column's default when it is a constant, as PostgreSQL's text form of it (`5`,
    /// `abc`, `true`): the field's Avro default where the field's type can hold it, so that
    /// events written before the column existed read with the value PostgreSQL shows.
    pub default: Option<String>,
}

/// A captured table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TableSpec {
    pub schema: String,
    pub name: String,
    pub columns: Vec<ColumnSpec>,
}

/// One row's column values, in column order: encoders walk them once, front to back, so a
/// row never has to be gathered into a vector first.
pub trait Row {
    fn values(&self) -> impl Iterator<Item = Raw<'_>>;
}

/// Debezium's snapshot marker in `source.snapshot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnapshotMarker {
    /// A streamed change.
    False,
    /// A snapshot row.
    True,
    /// The last row of the snapshot.
    Last,
    /// A row of an incremental snapshot, read while streaming.
    Incremental,
}

impl SnapshotMarker {
    fn as_str(self) -> &'static str {
        match self {
            SnapshotMarker::False => "false",
            SnapshotMarker::True => "true",
            SnapshotMarker::Last => "last",
            SnapshotMarker::Incremental => "incremental",
        }
    }
}

/// The `source` block of an event.
#[derive(Debug, Clone, Copy)]
pub struct Source<'a> {
    /// The logical server name: sluice's topic prefix.
    pub name: &'a str,
    pub db: &'a str,
    /// Commit time of the change's transaction, microseconds since 1970.
    pub commit_time_us: i64,
    pub snapshot: SnapshotMarker,
    pub tx_id: Option<u32>,
    pub lsn: Option<u64>,
    /// The event's place in its transaction, when transaction metadata is on.
    pub transaction: Option<TransactionBlock<'a>>,
}

/// The event kinds of Debezium's envelope.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Update,
    Delete,
    Read,
    /// A TRUNCATE of the table: no key, no rows.
    Truncate,
}

impl Op {
    fn as_str(self) -> &'static str {
        match self {
            Op::Create => "c",
            Op::Update => "u",
            Op::Delete => "d",
            Op::Read => "r",
            Op::Truncate => "t",
        }
    }
}

/// An error encoding one event: which column, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{table}.{column}: {source}")]
pub struct EncodeError {
    pub table: String,
    pub column: String,
    #[source]
    pub source: ValueError,
}

#[derive(Debug, Clone)]
struct Column {
    name: String,
    kind: ColumnKind,
    nullable: bool,
    /// The field's Avro default (for the non-null branch, which then comes first).
    default: Option<Value>,
    /// The domain the schema names, if the column's type (or its element type) is one.
    domain: Option<String>,
    /// For a kind that carries PostgreSQL's text output: how its binary form prints as that
    /// text, or why it cannot.
    output: Option<Result<Output, Unsupported>>,
}

impl Column {
    fn printer(&self) -> Option<&Output> {
        self.output.as_ref().and_then(|output| output.as_ref().ok())
    }
}

/// Schemas and encoders of one table.
#[derive(Debug, Clone)]
pub struct TableCodec {
    qualified: String,
    schema: String,
    table: String,
    columns: Vec<Column>,
    key_columns: Vec<usize>,
    key_schema: String,
    value_schema: String,
    row_schema: String,
    unchanged_placeholder: String,
}

impl TableCodec {
    /// What an unchanged TOASTed text or bytes value is sent as (default
    /// [`UNCHANGED_PLACEHOLDER`], Debezium's).
    #[must_use]
    pub fn with_unchanged_placeholder(mut self, placeholder: &str) -> Self {
        placeholder.clone_into(&mut self.unchanged_placeholder);
        self
    }

    /// The codec of `spec` for events on `topic` (`<prefix>.<schema>.<table>`), with the
    /// default [`TypeOptions`].
    pub fn new(topic: &str, spec: &TableSpec) -> Self {
        Self::with_options(topic, spec, &TypeOptions::default())
    }

    /// The codec of `spec` for events on `topic`, types carried as `options` say.
    pub fn with_options(topic: &str, spec: &TableSpec, options: &TypeOptions) -> Self {
        let namespace = avro_name(topic);
        let columns: Vec<Column> = spec
            .columns
            .iter()
            .map(|c| {
                let kind = ColumnKind::of(c.type_oid, c.type_modifier, &c.type_info, options);
                Column {
                    name: c.name.clone(),
                    kind,
                    // An unchanged TOASTed value with no placeholder form is sent as null.
                    nullable: c.nullable || (!c.is_key && kind.toastable_without_placeholder()),
                    default: c.default.as_deref().and_then(|d| kind.avro_default(d)),
                    domain: domain_name(&c.type_info),
                    output: (!kind.reads_binary())
                        .then(|| Output::of(c.type_oid, &c.type_info, options)),
                }
            })
            .collect();
        let key_columns: Vec<usize> = spec
            .columns
            .iter()
            .enumerate()
            .filter(|(_, c)| c.is_key)
            .map(|(i, _)| i)
            .collect();

        let mut defined = Vec::new();
        let key_fields: Vec<Value> = key_columns
            .iter()
            .map(|&i| {
                let key = Column {
                    nullable: false,
                    default: None,
                    ..columns[i].clone()
                };
                field(&key, &spec.columns[i].type_info, &mut defined)
            })
            .collect();
        let key_schema = json!({
            "type": "record",
            "name": "Key",
            "namespace": namespace,
            "fields": key_fields,
            "connect.name": format!("{namespace}.Key"),
        });

        let mut defined = Vec::new();
        let value_fields: Vec<Value> = columns
            .iter()
            .zip(&spec.columns)
            .map(|(c, spec)| field(c, &spec.type_info, &mut defined))
            .collect();
        let row = json!({
            "type": "record",
            "name": "Value",
            "fields": value_fields,
            "connect.name": format!("{namespace}.Value"),
        });
        let mut row_schema = row.clone();
        row_schema["namespace"] = json!(namespace);
        // An upsert row carries what its fields cannot hold after them (the envelope, in its
        // own field).
        let exact_field =
            exact::row_field_name(value_fields.iter().filter_map(|f| f["name"].as_str()));
        if let Some(fields) = row_schema["fields"].as_array_mut() {
            fields.push(exact::row_field(&exact_field));
        }
        let optional_long = || json!(["null", "long"]);
        let value_schema = json!({
            "type": "record",
            "name": "Envelope",
            "namespace": namespace,
            "fields": [
                {"name": "before", "type": ["null", row], "default": null},
                {"name": "after", "type": ["null", "Value"], "default": null},
                {"name": "source", "type": source_schema()},
                {"name": "transaction", "type": ["null", transaction_schema()], "default": null},
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": optional_long(), "default": null},
                {"name": "ts_us", "type": optional_long(), "default": null},
                {"name": "ts_ns", "type": optional_long(), "default": null},
                // sluice's own: the columns whose TOASTed value was unchanged and not sent
                // (Debezium consumers ignore it; the value itself is a placeholder or null).
                {"name": "unchanged_toast", "type": ["null", {"type": "array", "items": "string"}], "default": null},
                // sluice's own: what the rows' Debezium-shaped fields could not hold.
                exact::envelope_field(),
            ],
            "connect.version": 2,
            "connect.name": format!("{namespace}.Envelope"),
        });
        TableCodec {
            qualified: format!("{}.{}", spec.schema, spec.name),
            schema: spec.schema.clone(),
            table: spec.name.clone(),
            columns,
            key_columns,
            key_schema: key_schema.to_string(),
            value_schema: value_schema.to_string(),
            row_schema: row_schema.to_string(),
            unchanged_placeholder: UNCHANGED_PLACEHOLDER.to_owned(),
        }
    }

    pub fn key_schema(&self) -> &str {
        &self.key_schema
    }

    pub fn value_schema(&self) -> &str {
        &self.value_schema
    }

    /// The schema of a bare row, with its `__exact` field after the columns: the value of
    /// upsert-mode events.
    pub fn row_schema(&self) -> &str {
        &self.row_schema
    }

    /// Appends a bare row (upsert mode's value) in the Confluent wire format.
    pub fn encode_row_value(
        &self,
        schema_id: u32,
        row: &impl Row,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        confluent_header(out, schema_id);
        scratch.exact.begin_event();
        self.encode_row_fields(row, Side::After, out, scratch)?;
        scratch.exact.write_map(Side::After, out);
        Ok(())
    }

    /// How each column is read: binary where the encoder knows the type's binary form.
    pub fn column_kinds(&self) -> impl Iterator<Item = ColumnKind> + '_ {
        self.columns.iter().map(|c| c.kind)
    }

    /// The columns whose values in binary form sluice cannot decode, by name, with why:
    /// pgoutput's binary mode would send them so (a column of a type with no binary form at
    /// all is sent as text and is not listed). Their table is captured in text mode.
    pub fn binary_unsupported(&self) -> impl Iterator<Item = (&str, &Unsupported)> + '_ {
        self.columns.iter().filter_map(|c| match &c.output {
            Some(Err(Unsupported::NoSend(_))) if matches!(c.kind, ColumnKind::Scalar(_)) => None,
            Some(Err(why)) => Some((c.name.as_str(), why)),
            _ => None,
        })
    }

    /// Positions of the key columns, in column order.
    pub fn key_columns(&self) -> &[usize] {
        &self.key_columns
    }

    pub fn has_key(&self) -> bool {
        !self.key_columns.is_empty()
    }

    /// Appends the key of `row` in the Confluent wire format with schema `schema_id`.
    pub fn encode_key(
        &self,
        schema_id: u32,
        row: &impl Row,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        confluent_header(out, schema_id);
        scratch.exact.begin_event();
        // A key must tell rows apart: an array element that is a stand-in stays one.
        scratch.exact.keep_stand_ins = true;
        let mut keys = self.key_columns.iter().peekable();
        for (i, raw) in row.values().enumerate() {
            if keys.peek() == Some(&&i) {
                keys.next();
                self.encode_column(i, raw, false, None, out, scratch)?;
            }
        }
        match keys.next() {
            None => Ok(()),
            Some(&missing) => Err(self.short_row(missing)),
        }
    }

    fn short_row(&self, index: usize) -> EncodeError {
        EncodeError {
            table: self.qualified.clone(),
            column: self
                .columns
                .get(index)
                .map_or_else(String::new, |c| c.name.clone()),
            source: ValueError::Unrepresentable("a row with fewer columns than the table"),
        }
    }

    /// Appends an event value in Debezium's envelope, in the Confluent wire format.
    #[allow(clippy::too_many_arguments)]
    pub fn encode_envelope(
        &self,
        schema_id: u32,
        op: Op,
        before: Option<&impl Row>,
        after: Option<&impl Row>,
        source: &Source<'_>,
        now_us: i64,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        confluent_header(out, schema_id);
        scratch.exact.begin_event();
        self.encode_row(before, Side::Before, out, scratch)?;
        self.encode_row(after, Side::After, out, scratch)?;
        scratch.snapshot_marker_at = encode_source(out, source, &self.schema, &self.table);
        match &source.transaction {
            Some(block) => block.encode(out),
            None => writer::union_index(out, 0),
        }
        writer::string(out, op.as_str());
        optional_long(out, Some(now_us.div_euclid(1000)));
        optional_long(out, Some(now_us));
        optional_long(out, Some(now_us.saturating_mul(1000)));
        self.encode_unchanged(after, out);
        scratch.exact.write_envelope_field(out);
        Ok(())
    }

    /// The names of the columns of `after` whose TOASTed value was not sent, as an optional
    /// array (null when there are none, the usual case).
    fn encode_unchanged(&self, after: Option<&impl Row>, out: &mut Vec<u8>) {
        let unchanged = || {
            after.into_iter().flat_map(|row| {
                row.values()
                    .zip(&self.columns)
                    .filter(|(raw, _)| matches!(raw, Raw::Unchanged))
                    .map(|(_, column)| column.name.as_str())
            })
        };
        let count = unchanged().count();
        if count == 0 {
            writer::union_index(out, 0);
            return;
        }
        writer::union_index(out, 1);
        writer::long(out, i64::try_from(count).unwrap_or(i64::MAX));
        for name in unchanged() {
            writer::string(out, name);
        }
        writer::long(out, 0);
    }

    /// A row union: null, or the `Value` record of the event's `side`.
    fn encode_row(
        &self,
        row: Option<&impl Row>,
        side: Side,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        let Some(row) = row else {
            writer::union_index(out, 0);
            return Ok(());
        };
        writer::union_index(out, 1);
        self.encode_row_fields(row, side, out, scratch)
    }

    /// The fields of `row`, which is the event's `side`.
    fn encode_row_fields(
        &self,
        row: &impl Row,
        side: Side,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        let mut count = 0;
        for (i, raw) in row.values().enumerate().take(self.columns.len()) {
            let nullable = self.columns[i].nullable;
            self.encode_column(i, raw, nullable, Some(side), out, scratch)?;
            count += 1;
        }
        if count < self.columns.len() {
            return Err(self.short_row(count));
        }
        Ok(())
    }

    /// One column's field; what it cannot hold goes to `side`'s exact map (nowhere for a
    /// key's).
    fn encode_column(
        &self,
        index: usize,
        raw: Raw<'_>,
        nullable: bool,
        side: Option<Side>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), EncodeError> {
        let column = &self.columns[index];
        // A field with a default has its value's branch first, as Avro wants the default's.
        let (null_branch, value_branch) = if column.default.is_some() {
            (1, 0)
        } else {
            (0, 1)
        };
        let result = match (raw, nullable) {
            (Raw::Null, true) => {
                writer::union_index(out, null_branch);
                Ok(())
            }
            (Raw::Null, false) => Err(ValueError::Unrepresentable("NULL in a NOT NULL column")),
            // Named in unchanged_toast either way; the value is the placeholder where the
            // kind has a form for it, else null.
            (Raw::Unchanged, nullable) if column.kind.has_unchanged_placeholder() => {
                if nullable {
                    writer::union_index(out, value_branch);
                }
                column
                    .kind
                    .write_unchanged(self.unchanged_placeholder.as_bytes(), out);
                Ok(())
            }
            (Raw::Unchanged, true) => {
                writer::union_index(out, null_branch);
                Ok(())
            }
            (raw, true) => {
                let start = out.len();
                writer::union_index(out, value_branch);
                let result = column.kind.encode_with(column.printer(), raw, out, scratch);
                match scratch.exact.took() {
                    Inexact::No => {}
                    // A value the field cannot hold is null where the field may be, as
                    // Debezium writes it; the exact field has it.
                    Inexact::StandIn => {
                        out.truncate(start);
                        writer::union_index(out, null_branch);
                        scratch.exact.scalar();
                    }
                    Inexact::Lossy => scratch.exact.scalar(),
                }
                result
            }
            (raw, false) => {
                let result = column.kind.encode_with(column.printer(), raw, out, scratch);
                if scratch.exact.took() != Inexact::No {
                    scratch.exact.scalar();
                }
                result
            }
        };
        scratch.exact.end_column(side, &column.name);
        result.map_err(|source| EncodeError {
            table: self.qualified.clone(),
            column: column.name.clone(),
            source,
        })
    }
}

/// The `source` record; returns where its snapshot marker's string starts in `out`.
fn encode_source(out: &mut Vec<u8>, source: &Source<'_>, schema: &str, table: &str) -> usize {
    writer::string(out, SOURCE_VERSION);
    writer::string(out, "postgresql");
    writer::string(out, source.name);
    writer::long(out, source.commit_time_us.div_euclid(1000));
    writer::union_index(out, 0);
    let marker_at = out.len();
    writer::string(out, source.snapshot.as_str());
    writer::string(out, source.db);
    writer::union_index(out, 0); // sequence
    writer::union_index(out, 1);
    writer::long(out, source.commit_time_us);
    writer::union_index(out, 1);
    writer::long(out, source.commit_time_us.saturating_mul(1000));
    writer::string(out, schema);
    writer::string(out, table);
    optional_long(out, source.tx_id.map(i64::from));
    optional_long(out, source.lsn.and_then(|lsn| i64::try_from(lsn).ok()));
    writer::union_index(out, 0); // xmin
    writer::union_index(out, 0); // origin
    writer::union_index(out, 0); // origin_lsn
    marker_at
}

/// Marks an encoded snapshot row the snapshot's last: its source's snapshot marker, `true`,
/// becomes `last` (of the same length), at `at` ([`Scratch::snapshot_marker_at`] after it was
/// encoded). Returns false, changing nothing, when `true` is not there.
pub fn mark_snapshot_last(value: &mut [u8], at: usize) -> bool {
    let mut marked = Vec::new();
    writer::string(&mut marked, SnapshotMarker::Last.as_str());
    let mut expected = Vec::new();
    writer::string(&mut expected, SnapshotMarker::True.as_str());
    match value.get_mut(at..at + expected.len()) {
        Some(marker) if *marker == *expected && marked.len() == expected.len() => {
            marker.copy_from_slice(&marked);
            true
        }
        _ => false,
    }
}

fn optional_long(out: &mut Vec<u8>, value: Option<i64>) {
    match value {
        None => writer::union_index(out, 0),
        Some(value) => {
            writer::union_index(out, 1);
            writer::long(out, value);
        }
    }
}

/// The field of `column`. A domain is named by the field's `sluice.domain` property (a
/// field property, not the type's, as a named type referred to a second time cannot carry
/// one): `posint`, or `posint[]` for an array of a domain.
fn field(column: &Column, info: &TypeInfo, defined: &mut Vec<&'static str>) -> Value {
    let schema = column.kind.schema(info, defined);
    let name = avro_name(&column.name);
    let mut field = match (column.nullable, &column.default) {
        (true, None) => json!({"name": name, "type": ["null", schema], "default": null}),
        (true, Some(default)) => {
            json!({"name": name, "type": [schema, "null"], "default": default})
        }
        (false, None) => json!({"name": name, "type": schema}),
        (false, Some(default)) => json!({"name": name, "type": schema, "default": default}),
    };
    if let Some(domain) = &column.domain {
        field["sluice.domain"] = json!(domain);
    }
    field
}

/// The domain a column's field names: its own type's, or its element type's with `[]`.
fn domain_name(info: &TypeInfo) -> Option<String> {
    info.domain.clone().or_else(|| {
        let element = info.element.as_ref()?;
        Some(format!("{}[]", element.info.domain.as_ref()?))
    })
}

fn source_schema() -> Value {
    let optional_long = || json!(["null", "long"]);
    json!({
        "type": "record",
        "name": "Source",
        "namespace": "io.debezium.connector.postgresql",
        "fields": [
            {"name": "version", "type": "string"},
            {"name": "connector", "type": "string"},
            {"name": "name", "type": "string"},
            {"name": "ts_ms", "type": "long"},
            {"name": "snapshot", "type": [{
                "type": "string",
                "connect.version": 1,
                "connect.parameters": {"allowed": "true,first,first_in_data_collection,last_in_data_collection,last,false,incremental"},
                "connect.default": "false",
                "connect.name": "io.debezium.data.Enum",
            }, "null"], "default": "false"},
            {"name": "db", "type": "string"},
            {"name": "sequence", "type": ["null", "string"], "default": null},
            {"name": "ts_us", "type": optional_long(), "default": null},
            {"name": "ts_ns", "type": optional_long(), "default": null},
            {"name": "schema", "type": "string"},
            {"name": "table", "type": "string"},
            {"name": "txId", "type": optional_long(), "default": null},
            {"name": "lsn", "type": optional_long(), "default": null},
            {"name": "xmin", "type": optional_long(), "default": null},
            {"name": "origin", "type": ["null", "string"], "default": null},
            {"name": "origin_lsn", "type": optional_long(), "default": null},
        ],
        "connect.version": 1,
        "connect.name": "io.debezium.connector.postgresql.Source",
    })
}

fn transaction_schema() -> Value {
    json!({
        "type": "record",
        "name": "block",
        "namespace": "event",
        "fields": [
            {"name": "id", "type": "string"},
            {"name": "total_order", "type": "long"},
            {"name": "data_collection_order", "type": "long"},
        ],
        "connect.version": 1,
        "connect.name": "event.block",
    })
}

#[cfg(test)]
#[path = "table_tests.rs"]
mod tests;

/// Logical decoding messages (`pg_logical_emit_message`) as events on the messages topic: key
/// `{prefix}`, value `{op: "m", source, message: {prefix, content}}`, as Debezium shapes them.
#[derive(Debug, Clone)]
pub struct MessageCodec {
    key_schema: String,
    value_schema: String,
}

impl MessageCodec {
    /// The codec of messages on `topic` (`<prefix>.message`).
    pub fn new(topic: &str) -> Self {
        let namespace = avro_name(topic);
        let key_schema = json!({
            "type": "record",
            "name": "Key",
            "namespace": namespace,
            "fields": [{"name": "prefix", "type": "string"}],
        });
        let optional_long = || json!(["null", "long"]);
        let value_schema = json!({
            "type": "record",
            "name": "Envelope",
            "namespace": namespace,
            "fields": [
                {"name": "op", "type": "string"},
                {"name": "ts_ms", "type": optional_long(), "default": null},
                {"name": "source", "type": source_schema()},
                {"name": "message", "type": {
                    "type": "record",
                    "name": "Message",
                    "fields": [
                        {"name": "prefix", "type": "string"},
                        {"name": "content", "type": "bytes"},
                    ],
                }},
            ],
        });
        MessageCodec {
            key_schema: key_schema.to_string(),
            value_schema: value_schema.to_string(),
        }
    }

    pub fn key_schema(&self) -> &str {
        &self.key_schema
    }

    pub fn value_schema(&self) -> &str {
        &self.value_schema
    }

    pub fn encode_key(&self, schema_id: u32, prefix: &str, out: &mut Vec<u8>) {
        confluent_header(out, schema_id);
        writer::string(out, prefix);
    }

    #[allow(clippy::too_many_arguments)]
    pub fn encode_value(
        &self,
        schema_id: u32,
        prefix: &str,
        content: &[u8],
        source: &Source<'_>,
        schema: &str,
        now_us: i64,
        out: &mut Vec<u8>,
    ) {
        confluent_header(out, schema_id);
        writer::string(out, "m");
        optional_long(out, Some(now_us.div_euclid(1000)));
        let _ = encode_source(out, source, schema, "");
        writer::string(out, prefix);
        writer::bytes(out, content);
    }
}
