//! Avro values as the JSON `sluice tail` prints: fields in schema order, numbers exact.

use apache_avro::Schema;
use apache_avro::schema::NamesRef;
use apache_avro::types::Value;
use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

/// Lays out an event: where it is, its key, then the envelope's parts. A tombstone has op,
/// before, after and source null; in upsert mode (no envelope) the whole value is `after`.
pub(super) fn event_document(
    topic: &str,
    partition: i32,
    offset: i64,
    key: Json,
    value: Json,
) -> Json {
    let mut op = Json::Null;
    let mut before = Json::Null;
    let mut after = Json::Null;
    let mut source = Json::Null;
    let mut ts_ms = Json::Null;
    match value {
        Json::Object(fields)
            if fields.iter().any(|(name, _)| name == "op")
                && fields.iter().any(|(name, _)| name == "source") =>
        {
            for (name, field) in fields {
                match name.as_str() {
                    "op" => op = field,
                    "before" => before = field,
                    "after" => after = field,
                    "source" => source = field,
                    "ts_ms" => ts_ms = field,
                    _ => {}
                }
            }
        }
        Json::Null => {}
        row => after = row,
    }
    Json::Object(vec![
        ("topic".to_owned(), Json::String(topic.to_owned())),
        ("partition".to_owned(), Json::Number(partition.into())),
        ("offset".to_owned(), Json::Number(offset.into())),
        ("key".to_owned(), key),
        ("op".to_owned(), op),
        ("before".to_owned(), before),
        ("after".to_owned(), after),
        ("source".to_owned(), source),
        ("ts_ms".to_owned(), ts_ms),
    ])
}

/// JSON whose objects keep their fields in schema order (serde_json's own map sorts them,
/// which would scatter a row's columns).
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Json {
    Null,
    Bool(bool),
    Number(serde_json::Number),
    String(String),
    Array(Vec<Json>),
    Object(Vec<(String, Json)>),
}

impl Serialize for Json {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Json::Null => serializer.serialize_unit(),
            Json::Bool(b) => serializer.serialize_bool(*b),
            Json::Number(n) => n.serialize(serializer),
            Json::String(s) => serializer.serialize_str(s),
            Json::Array(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Json::Object(fields) => {
                let mut map = serializer.serialize_map(Some(fields.len()))?;
                for (name, value) in fields {
                    map.serialize_entry(name, value)?;
                }
                map.end()
            }
        }
    }
}

/// Debezium's record for a `numeric` without a fixed scale: `{scale, value}`.
const VARIABLE_SCALE_DECIMAL: &str = "io.debezium.data.VariableScaleDecimal";

/// An Avro value as JSON, following its writer schema where one is known: unions unwrapped,
/// records as objects in field order, decimals (and Debezium's variable-scale decimals) as
/// strings of the exact number, bytes as `\x`-prefixed hex (PostgreSQL's bytea form), dates as
/// `YYYY-MM-DD`, every other number as a JSON number.
pub(super) fn to_json(
    value: &Value,
    schema: Option<&Schema>,
    names: &NamesRef<'_>,
) -> Result<Json, String> {
    let schema = match schema {
        Some(Schema::Ref { name }) => Some(
            *names
                .get(name)
                .ok_or_else(|| format!("the schema refers to the undefined type {name:?}"))?,
        ),
        other => other,
    };
    Ok(match (value, schema) {
        (Value::Union(index, inner), Some(Schema::Union(union))) => {
            let branch = usize::try_from(*index)
                .ok()
                .and_then(|i| union.variants().get(i));
            to_json(inner, branch, names)?
        }
        (Value::Union(_, inner), _) => to_json(inner, None, names)?,
        (Value::Record(fields), Some(Schema::Record(record)))
            if record.name.fullname(None) == VARIABLE_SCALE_DECIMAL =>
        {
            variable_scale_decimal(fields)?
        }
        (Value::Record(fields), record) => {
            let field_schema = |name: &str| match record {
                Some(Schema::Record(record)) => record
                    .lookup
                    .get(name)
                    .and_then(|&i| record.fields.get(i))
                    .map(|field| &field.schema),
                _ => None,
            };
            Json::Object(
                fields
                    .iter()
                    .map(|(name, field)| {
                        Ok((name.clone(), to_json(field, field_schema(name), names)?))
                    })
                    .collect::<Result<_, String>>()?,
            )
        }
        (Value::Decimal(decimal), Some(Schema::Decimal(decimal_schema))) => {
            let bytes = Vec::<u8>::try_from(decimal).map_err(|err| format!("a decimal: {err}"))?;
            let scale = i64::try_from(decimal_schema.scale)
                .map_err(|_| "a decimal scale beyond 2^63".to_owned())?;
            Json::String(decimal_string(&bytes, scale))
        }
        (Value::Decimal(_), _) => {
            return Err("a decimal value without a decimal schema to give its scale".to_owned());
        }
        (Value::Array(items), schema) => {
            let items_schema = match schema {
                Some(Schema::Array(array)) => Some(array.items.as_ref()),
                _ => None,
            };
            Json::Array(
                items
                    .iter()
                    .map(|item| to_json(item, items_schema, names))
                    .collect::<Result<_, String>>()?,
            )
        }
        (Value::Map(entries), schema) => {
            let values_schema = match schema {
                Some(Schema::Map(map)) => Some(map.types.as_ref()),
                _ => None,
            };
            // A map has no order of its own; sorted keys keep the output stable.
            let mut entries: Vec<(&String, &Value)> = entries.iter().collect();
            entries.sort_by(|a, b| a.0.cmp(b.0));
            Json::Object(
                entries
                    .into_iter()
                    .map(|(name, entry)| Ok((name.clone(), to_json(entry, values_schema, names)?)))
                    .collect::<Result<_, String>>()?,
            )
        }
        (scalar, _) => scalar_json(scalar),
    })
}

fn scalar_json(value: &Value) -> Json {
    let number = |n: i64| Json::Number(n.into());
    match value {
        Value::Null => Json::Null,
        Value::Boolean(b) => Json::Bool(*b),
        Value::Date(days) => Json::String(iso_date(i64::from(*days))),
        Value::Int(n) | Value::TimeMillis(n) => number(i64::from(*n)),
        Value::Long(n)
        | Value::TimeMicros(n)
        | Value::TimestampMillis(n)
        | Value::TimestampMicros(n)
        | Value::TimestampNanos(n)
        | Value::LocalTimestampMillis(n)
        | Value::LocalTimestampMicros(n)
        | Value::LocalTimestampNanos(n) => number(*n),
        // Through its shortest text, so 0.1f32 prints as 0.1 and not as its f64 widening.
        Value::Float(f) => float(f.to_string().parse().unwrap_or(f64::NAN)),
        Value::Double(f) => float(*f),
        Value::Bytes(bytes) | Value::Fixed(_, bytes) => Json::String(hex(bytes)),
        Value::String(s) | Value::Enum(_, s) => Json::String(s.clone()),
        Value::Uuid(uuid) => Json::String(uuid.to_string()),
        Value::BigDecimal(decimal) => Json::String(decimal.to_string()),
        Value::Duration(duration) => Json::Object(vec![
            (
                "months".to_owned(),
                number(i64::from(u32::from(duration.months()))),
            ),
            (
                "days".to_owned(),
                number(i64::from(u32::from(duration.days()))),
            ),
            (
                "millis".to_owned(),
                number(i64::from(u32::from(duration.millis()))),
            ),
        ]),
        // Containers and decimals are handled by `to_json`.
        Value::Decimal(_)
        | Value::Union(..)
        | Value::Record(_)
        | Value::Array(_)
        | Value::Map(_) => Json::Null,
    }
}

/// JSON has no NaN or infinities; they are written as PostgreSQL spells them.
fn float(f: f64) -> Json {
    match serde_json::Number::from_f64(f) {
        Some(n) => Json::Number(n),
        None if f.is_nan() => Json::String("NaN".to_owned()),
        None if f > 0.0 => Json::String("Infinity".to_owned()),
        None => Json::String("-Infinity".to_owned()),
    }
}

fn hex(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("\\x");
    for byte in bytes {
        out.push_str(&format!("{byte:02x}"));
    }
    out
}

fn variable_scale_decimal(fields: &[(String, Value)]) -> Result<Json, String> {
    let field = |name: &str| fields.iter().find(|(n, _)| n == name).map(|(_, v)| v);
    match (field("scale"), field("value")) {
        (Some(Value::Int(scale)), Some(Value::Bytes(unscaled))) => {
            Ok(Json::String(decimal_string(unscaled, i64::from(*scale))))
        }
        _ => Err(format!(
            "a {VARIABLE_SCALE_DECIMAL} without an int scale and bytes value"
        )),
    }
}

/// The exact decimal `unscaled × 10^-scale`, `unscaled` being big-endian two's complement as
/// Avro's decimal stores it: "10.50" for 1050 at scale 2.
fn decimal_string(unscaled: &[u8], scale: i64) -> String {
    let negative = unscaled.first().is_some_and(|b| b & 0x80 != 0);
    let mut magnitude = unscaled.to_vec();
    if negative {
        // Two's complement negation: invert, then add one from the least significant byte.
        for byte in &mut magnitude {
            *byte = !*byte;
        }
        for byte in magnitude.iter_mut().rev() {
            let (sum, carry) = byte.overflowing_add(1);
            *byte = sum;
            if !carry {
                break;
            }
        }
    }
    // Long division by 10 over the base-256 digits, least significant decimal digit first.
    let mut digits = Vec::new();
    while magnitude.iter().any(|&b| b != 0) {
        let mut remainder: u16 = 0;
        for byte in &mut magnitude {
            let current = remainder * 256 + u16::from(*byte);
            // remainder < 10, so current < 2560 and the quotient fits a byte.
            *byte = u8::try_from(current / 10).unwrap_or(u8::MAX);
            remainder = current % 10;
        }
        digits.push(char::from(b'0' + u8::try_from(remainder).unwrap_or(0)));
    }
    if digits.is_empty() {
        digits.push('0');
    }
    digits.reverse();
    let mut text: String = digits.into_iter().collect();
    if scale < 0 {
        text.extend(std::iter::repeat_n(
            '0',
            usize::try_from(-scale).unwrap_or(0),
        ));
    } else if let Ok(scale) = usize::try_from(scale)
        && scale > 0
    {
        if text.len() <= scale {
            text = format!("{}{text}", "0".repeat(scale + 1 - text.len()));
        }
        text.insert(text.len() - scale, '.');
    }
    if negative && text.bytes().any(|b| b.is_ascii_digit() && b != b'0') {
        text.insert(0, '-');
    }
    text
}

/// The proleptic Gregorian date `days` after 1970-01-01, as `YYYY-MM-DD`.
fn iso_date(days: i64) -> String {
    let (year, month, day) = sluice_avro::civil_from_days(days);
    if year < 0 {
        format!("-{:04}-{month:02}-{day:02}", -year)
    } else {
        format!("{year:04}-{month:02}-{day:02}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use apache_avro::schema::ResolvedSchema;

    use super::*;

    #[test]
    fn decimals_are_exact() {
        assert_eq!(decimal_string(&[0x04, 0x1a], 2), "10.50");
        assert_eq!(decimal_string(&[0x04, 0x1a], 0), "1050");
        assert_eq!(decimal_string(&[0x05], 3), "0.005");
        assert_eq!(decimal_string(&[0xfb], 3), "-0.005");
        assert_eq!(decimal_string(&[0x80], 0), "-128");
        assert_eq!(decimal_string(&[0xff, 0x7f], 1), "-12.9");
        assert_eq!(decimal_string(&[], 2), "0.00");
        assert_eq!(decimal_string(&[0x00], 0), "0");
        assert_eq!(decimal_string(&[0x0c], -2), "1200");
        // 2^64, beyond any machine integer.
        let big = [0x01, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(decimal_string(&big, 4), "1844674407370955.1616");
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(0), "1970-01-01");
        assert_eq!(iso_date(-1), "1969-12-31");
        assert_eq!(iso_date(19_723), "2024-01-01");
        assert_eq!(iso_date(19_782), "2024-02-29");
        assert_eq!(iso_date(-719_528), "0000-01-01");
        assert_eq!(iso_date(2_932_896), "9999-12-31");
    }

    #[test]
    fn values_follow_the_schema() {
        let schema = Schema::parse_str(
            r#"{"type": "record", "name": "Value", "namespace": "demo.public.t", "fields": [
                {"name": "id", "type": "long"},
                {"name": "amount", "type": ["null", {"type": "bytes", "logicalType": "decimal",
                                                     "precision": 10, "scale": 2}]},
                {"name": "any", "type": ["null", {"type": "record", "name": "VariableScaleDecimal",
                    "namespace": "io.debezium.data",
                    "fields": [{"name": "scale", "type": "int"}, {"name": "value", "type": "bytes"}]}]},
                {"name": "again", "type": ["null", "io.debezium.data.VariableScaleDecimal"]},
                {"name": "day", "type": {"type": "int", "logicalType": "date"}},
                {"name": "blob", "type": "bytes"},
                {"name": "ratio", "type": "float"},
                {"name": "tags", "type": {"type": "array", "items": "string"}}
            ]}"#,
        )
        .unwrap();
        let variable = |scale: i32, unscaled: Vec<u8>| {
            Value::Record(vec![
                ("scale".to_owned(), Value::Int(scale)),
                ("value".to_owned(), Value::Bytes(unscaled)),
            ])
        };
        let value = Value::Record(vec![
            ("id".to_owned(), Value::Long(9_007_199_254_740_993)),
            (
                "amount".to_owned(),
                Value::Union(1, Box::new(Value::Decimal(vec![0x04, 0x1a].into()))),
            ),
            (
                "any".to_owned(),
                Value::Union(1, Box::new(variable(3, vec![0x30, 0x39]))),
            ),
            (
                "again".to_owned(),
                Value::Union(1, Box::new(variable(0, vec![0xff]))),
            ),
            ("day".to_owned(), Value::Date(19_723)),
            ("blob".to_owned(), Value::Bytes(vec![0xde, 0xad])),
            ("ratio".to_owned(), Value::Float(0.1)),
            (
                "tags".to_owned(),
                Value::Array(vec![Value::String("a".to_owned())]),
            ),
        ]);
        let resolved = ResolvedSchema::try_from(&schema).unwrap();
        let json = to_json(&value, Some(&schema), resolved.get_names()).unwrap();
        assert_eq!(
            serde_json::to_string(&json).unwrap(),
            r#"{"id":9007199254740993,"amount":"10.50","any":"12.345","again":"-1","day":"2024-01-01","blob":"\\xdead","ratio":0.1,"tags":["a"]}"#
        );
    }

    #[test]
    fn documents() {
        let envelope = Json::Object(vec![
            ("before".to_owned(), Json::Null),
            (
                "after".to_owned(),
                Json::Object(vec![("id".to_owned(), Json::Number(1.into()))]),
            ),
            (
                "source".to_owned(),
                Json::Object(vec![("table".to_owned(), Json::String("t".to_owned()))]),
            ),
            ("op".to_owned(), Json::String("c".to_owned())),
            ("ts_ms".to_owned(), Json::Number(5.into())),
        ]);
        let key = Json::Object(vec![("id".to_owned(), Json::Number(1.into()))]);
        let line =
            serde_json::to_string(&event_document("x.public.t", 0, 7, key.clone(), envelope))
                .unwrap();
        assert_eq!(
            line,
            r#"{"topic":"x.public.t","partition":0,"offset":7,"key":{"id":1},"op":"c","before":null,"after":{"id":1},"source":{"table":"t"},"ts_ms":5}"#
        );
        let tombstone =
            serde_json::to_string(&event_document("x.public.t", 1, 8, key, Json::Null)).unwrap();
        assert_eq!(
            tombstone,
            r#"{"topic":"x.public.t","partition":1,"offset":8,"key":{"id":1},"op":null,"before":null,"after":null,"source":null,"ts_ms":null}"#
        );
    }
}
