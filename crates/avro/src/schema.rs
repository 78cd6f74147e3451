//! The Avro schema of each kind of value, in the shape Debezium's PostgreSQL connector gives
//! it (`docs/types.md`).

use serde_json::{Value, json};

use crate::kind::{ColumnKind, ScalarKind};
use crate::types::TypeInfo;

/// A name Avro accepts: letters, digits and `_` (dots kept as namespace separators), not
/// starting with a digit; anything else becomes `_`, as Debezium does.
pub fn avro_name(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for (i, part) in name.split('.').enumerate() {
        if i > 0 {
            out.push('.');
        }
        for (j, c) in part.chars().enumerate() {
            let valid = c.is_ascii_alphanumeric() || c == '_';
            if j == 0 && c.is_ascii_digit() {
                out.push('_');
            }
            out.push(if valid { c } else { '_' });
        }
    }
    out
}

impl ColumnKind {
    /// The Avro schema of a non-null value. Named types are defined at their first use and
    /// referred to by name afterwards, as Avro requires; `defined` tracks that.
    pub(crate) fn schema(self, info: &TypeInfo, defined: &mut Vec<&'static str>) -> Value {
        match self {
            ColumnKind::Scalar(kind) => kind.schema(info, defined),
            ColumnKind::Array { element, .. } => {
                let element_info = info.element.as_ref().map(|e| &e.info);
                let items = element.schema(element_info.unwrap_or(info), defined);
                json!({"type": "array", "items": ["null", items]})
            }
        }
    }
}

impl ScalarKind {
    /// The Avro schema of a non-null value; `info` gives an enum's labels.
    pub(crate) fn schema(self, info: &TypeInfo, defined: &mut Vec<&'static str>) -> Value {
        let debezium = |base: &str, name: &str| json!({"type": base, "connect.version": 1, "connect.name": name});
        match self {
            ScalarKind::Boolean => json!("boolean"),
            ScalarKind::Int16 => json!({"type": "int", "connect.type": "int16"}),
            ScalarKind::Int32 => json!("int"),
            ScalarKind::Int64 | ScalarKind::UInt32 | ScalarKind::UInt64 => json!("long"),
            ScalarKind::Float32 => json!("float"),
            ScalarKind::Float64 => json!("double"),
            ScalarKind::Decimal { precision, scale } => decimal_schema(precision, scale, true),
            // Kafka Connect's Decimal without a precision, which Confluent's converter
            // writes with precision 64.
            ScalarKind::Money { scale } => decimal_schema(64, scale, false),
            ScalarKind::VariableDecimal => debezium_record(
                defined,
                "io.debezium.data.VariableScaleDecimal",
                "Variable scaled decimal",
                json!([
                    {"name": "scale", "type": "int"},
                    {"name": "value", "type": "bytes"},
                ]),
            ),
            ScalarKind::NumericString
            | ScalarKind::String
            | ScalarKind::Char
            | ScalarKind::JsonPath
            | ScalarKind::Inet
            | ScalarKind::Cidr
            | ScalarKind::MacAddr
            | ScalarKind::MacAddr8
            | ScalarKind::PgLsn
            | ScalarKind::Tid
            | ScalarKind::Text => json!("string"),
            ScalarKind::Enum => json!({
                "type": "string",
                "connect.version": 1,
                "connect.parameters": {"allowed": info.enum_labels.join(",")},
                "connect.name": "io.debezium.data.Enum",
            }),
            ScalarKind::Bytes => json!("bytes"),
            ScalarKind::Uuid => debezium("string", "io.debezium.data.Uuid"),
            ScalarKind::Xml => debezium("string", "io.debezium.data.Xml"),
            ScalarKind::Bits { length: 1, .. } => json!("boolean"),
            ScalarKind::Bits { length, .. } => {
                // An unconstrained varbit's, as Debezium gives it.
                let length = if length < 0 { i32::MAX } else { length };
                json!({
                    "type": "bytes",
                    "connect.version": 1,
                    "connect.parameters": {"length": length.to_string()},
                    "connect.name": "io.debezium.data.Bits",
                })
            }
            ScalarKind::Tsvector => debezium("string", "io.debezium.data.Tsvector"),
            ScalarKind::Int2Vector => {
                json!({"type": "array", "items": {"type": "int", "connect.type": "int16"}})
            }
            ScalarKind::Point => debezium_record(
                defined,
                "io.debezium.data.geometry.Point",
                "Geometry (POINT)",
                json!([
                    {"name": "x", "type": "double"},
                    {"name": "y", "type": "double"},
                    {"name": "wkb", "type": ["null", "bytes"], "default": null},
                    {"name": "srid", "type": ["null", "int"], "default": null},
                ]),
            ),
            // Without Avro's own `logicalType: date`: Connect's Avro converters take that for
            // org.apache.kafka.connect.data.Date and refuse the Debezium name beside it.
            ScalarKind::Date => debezium("int", "io.debezium.time.Date"),
            ScalarKind::Time { millis: false } => debezium("long", "io.debezium.time.MicroTime"),
            ScalarKind::Time { millis: true } => debezium("int", "io.debezium.time.Time"),
            ScalarKind::TimeTz => debezium("string", "io.debezium.time.ZonedTime"),
            ScalarKind::Timestamp { millis: false } => {
                debezium("long", "io.debezium.time.MicroTimestamp")
            }
            ScalarKind::Timestamp { millis: true } => {
                debezium("long", "io.debezium.time.Timestamp")
            }
            ScalarKind::TimestampTz => debezium("string", "io.debezium.time.ZonedTimestamp"),
            ScalarKind::Interval { .. } => debezium("string", "io.debezium.time.Interval"),
            ScalarKind::Json | ScalarKind::Jsonb => debezium("string", "io.debezium.data.Json"),
            ScalarKind::HStore { json: true } => debezium("string", "io.debezium.data.Json"),
            ScalarKind::HStore { json: false } => {
                json!({"type": "map", "values": ["null", "string"]})
            }
        }
    }
}

/// A record type of Debezium's (its full name, doc and fields), defined at its first use in
/// a schema and named afterwards, as Avro requires; `defined` tracks that.
fn debezium_record(
    defined: &mut Vec<&'static str>,
    full: &'static str,
    doc: &str,
    fields: Value,
) -> Value {
    if defined.contains(&full) {
        return json!(full);
    }
    defined.push(full);
    let (namespace, name) = full.rsplit_once('.').unwrap_or(("", full));
    json!({
        "type": "record",
        "name": name,
        "namespace": namespace,
        "fields": fields,
        "connect.doc": doc,
        "connect.version": 1,
        "connect.name": full,
    })
}

/// Kafka Connect's `Decimal` as an Avro decimal; `with_precision` also names the precision
/// in `connect.parameters`, as Connect does for `numeric(p, s)` but not for `money`.
fn decimal_schema(precision: u32, scale: u32, with_precision: bool) -> Value {
    let mut parameters = json!({"scale": scale.to_string()});
    if with_precision {
        parameters["connect.decimal.precision"] = json!(precision.to_string());
    }
    json!({
        "type": "bytes",
        "scale": scale,
        "precision": precision,
        "connect.version": 1,
        "connect.parameters": parameters,
        "connect.name": "org.apache.kafka.connect.data.Decimal",
        "logicalType": "decimal",
    })
}
