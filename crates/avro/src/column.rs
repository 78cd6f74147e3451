//! One column: its PostgreSQL type mapped to an Avro schema, and its values encoded straight
//! from PostgreSQL's text or binary form into Avro, without an intermediate value tree.
//!
//! The schemas follow Debezium's PostgreSQL connector, so Debezium consumers read them.

use serde_json::{Value, json};

use crate::decimal::{self, Numeric};
use crate::temporal;
use crate::writer;

/// Type OIDs of the built-in types with a mapping of their own.
mod oid {
    pub(super) const BOOL: u32 = 16;
    pub(super) const BYTEA: u32 = 17;
    pub(super) const NAME: u32 = 19;
    pub(super) const INT8: u32 = 20;
    pub(super) const INT2: u32 = 21;
    pub(super) const INT4: u32 = 23;
    pub(super) const TEXT: u32 = 25;
    pub(super) const JSON: u32 = 114;
    pub(super) const FLOAT4: u32 = 700;
    pub(super) const FLOAT8: u32 = 701;
    pub(super) const BPCHAR: u32 = 1042;
    pub(super) const VARCHAR: u32 = 1043;
    pub(super) const DATE: u32 = 1082;
    pub(super) const TIMESTAMP: u32 = 1114;
    pub(super) const TIMESTAMPTZ: u32 = 1184;
    pub(super) const NUMERIC: u32 = 1700;
    pub(super) const UUID: u32 = 2950;
    pub(super) const JSONB: u32 = 3802;
}

/// The Avro shape of a column, from its type and type modifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    Boolean,
    Int16,
    Int32,
    Int64,
    Float32,
    Float64,
    /// `numeric(p, s)`: Avro decimal of that precision and scale.
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Unconstrained `numeric`: Debezium's `VariableScaleDecimal` (scale, unscaled bytes).
    VariableDecimal,
    /// Text-like types whose text form is the value.
    String,
    Bytes,
    Uuid,
    /// Days since 1970-01-01.
    Date,
    /// Microseconds since 1970-01-01, no zone.
    Timestamp,
    /// ISO-8601 in UTC.
    TimestampTz,
    Json,
    /// jsonb: the same as json, but its binary form starts with a version byte.
    Jsonb,
    /// Any other type: its PostgreSQL text form, as a string.
    Text,
}

impl ColumnKind {
    /// The mapping of a column of type `type_oid` with modifier `type_modifier`.
    pub fn of(type_oid: u32, type_modifier: i32) -> Self {
        match type_oid {
            oid::BOOL => ColumnKind::Boolean,
            oid::INT2 => ColumnKind::Int16,
            oid::INT4 => ColumnKind::Int32,
            oid::INT8 => ColumnKind::Int64,
            oid::FLOAT4 => ColumnKind::Float32,
            oid::FLOAT8 => ColumnKind::Float64,
            oid::NUMERIC => numeric_kind(type_modifier),
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME => ColumnKind::String,
            oid::BYTEA => ColumnKind::Bytes,
            oid::UUID => ColumnKind::Uuid,
            oid::DATE => ColumnKind::Date,
            oid::TIMESTAMP => ColumnKind::Timestamp,
            oid::TIMESTAMPTZ => ColumnKind::TimestampTz,
            oid::JSON => ColumnKind::Json,
            oid::JSONB => ColumnKind::Jsonb,
            _ => ColumnKind::Text,
        }
    }

    /// Whether an unchanged TOASTed value of this kind is sent as [`UNCHANGED_PLACEHOLDER`]
    /// (string and bytes kinds; Avro strings and bytes encode alike). Other kinds send null.
    pub fn has_unchanged_placeholder(self) -> bool {
        matches!(
            self,
            ColumnKind::String
                | ColumnKind::Text
                | ColumnKind::Json
                | ColumnKind::Jsonb
                | ColumnKind::Uuid
                | ColumnKind::Bytes
        )
    }

    /// Whether values of this kind can be read in PostgreSQL's binary form; the others are
    /// asked for as text (`column::text` in a COPY).
    pub fn reads_binary(self) -> bool {
        self != ColumnKind::Text
    }

    /// The Avro schema of a non-null value. Named types are defined at their first use and
    /// referred to by name afterwards, as Avro requires; `defined` tracks that.
    pub(crate) fn schema(self, defined: &mut Vec<&'static str>) -> Value {
        let debezium = |base: &str, name: &str| json!({"type": base, "connect.version": 1, "connect.name": name});
        match self {
            ColumnKind::Boolean => json!("boolean"),
            ColumnKind::Int16 => json!({"type": "int", "connect.type": "int16"}),
            ColumnKind::Int32 => json!("int"),
            ColumnKind::Int64 => json!("long"),
            ColumnKind::Float32 => json!("float"),
            ColumnKind::Float64 => json!("double"),
            ColumnKind::Decimal { precision, scale } => json!({
                "type": "bytes",
                "scale": scale,
                "precision": precision,
                "connect.version": 1,
                "connect.parameters": {
                    "scale": scale.to_string(),
                    "connect.decimal.precision": precision.to_string(),
                },
                "connect.name": "org.apache.kafka.connect.data.Decimal",
                "logicalType": "decimal",
            }),
            ColumnKind::VariableDecimal => {
                const NAME: &str = "io.debezium.data.VariableScaleDecimal";
                if defined.contains(&NAME) {
                    json!(NAME)
                } else {
                    defined.push(NAME);
                    json!({
                        "type": "record",
                        "name": "VariableScaleDecimal",
                        "namespace": "io.debezium.data",
                        "fields": [
                            {"name": "scale", "type": "int"},
                            {"name": "value", "type": "bytes"},
                        ],
                        "connect.doc": "Variable scaled decimal",
                        "connect.version": 1,
                        "connect.name": NAME,
                    })
                }
            }
            ColumnKind::String | ColumnKind::Text => json!("string"),
            ColumnKind::Bytes => json!("bytes"),
            ColumnKind::Uuid => debezium("string", "io.debezium.data.Uuid"),
            ColumnKind::Date => {
                let mut schema = debezium("int", "io.debezium.time.Date");
                schema["logicalType"] = json!("date");
                schema
            }
            ColumnKind::Timestamp => debezium("long", "io.debezium.time.MicroTimestamp"),
            ColumnKind::TimestampTz => debezium("string", "io.debezium.time.ZonedTimestamp"),
            ColumnKind::Json | ColumnKind::Jsonb => debezium("string", "io.debezium.data.Json"),
        }
    }
}

fn numeric_kind(type_modifier: i32) -> ColumnKind {
    // typmod = ((precision << 16) | scale) + VARHDRSZ; scale is an 11-bit signed field.
    let Some(packed) = type_modifier.checked_sub(4).filter(|p| *p >= 0) else {
        return ColumnKind::VariableDecimal;
    };
    let precision = (packed >> 16) & 0xffff;
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    match (u32::try_from(precision), u32::try_from(scale)) {
        (Ok(precision), Ok(scale)) => ColumnKind::Decimal { precision, scale },
        // A negative scale has no Avro decimal form.
        _ => ColumnKind::VariableDecimal,
    }
}

/// A column value as it arrives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Raw<'a> {
    Null,
    /// An unchanged TOASTed value the server did not send (pgoutput's `u`).
    Unchanged,
    /// PostgreSQL's text output.
    Text(&'a [u8]),
    /// PostgreSQL's binary send format (text for [`ColumnKind::Text`] columns, which are
    /// always read as text).
    Binary(&'a [u8]),
}

/// What an unchanged TOASTed text or bytes value is sent as, the value Debezium uses, so
/// consumers written for Debezium recognise it. The event also lists such columns by name.
pub const UNCHANGED_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Why a value could not be encoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("not a valid {kind:?} value in {form} form: {value:?}")]
    Malformed {
        kind: ColumnKind,
        form: &'static str,
        value: String,
    },
    #[error("{0} has no representation in this column's Avro type")]
    Unrepresentable(&'static str),
}

/// Reused buffers for the encoders, so a value needs no allocation of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    digits: Vec<u8>,
    unscaled: Vec<u8>,
    text: String,
}

/// Days since 1970 for PostgreSQL's date infinities, as PostgreSQL stores them.
const DATE_POS_INFINITY: i32 = i32::MAX;
const DATE_NEG_INFINITY: i32 = i32::MIN;

impl ColumnKind {
    /// Appends the Avro encoding of a non-null `raw` value.
    pub(crate) fn encode(
        self,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match raw {
            Raw::Null => Err(ValueError::Unrepresentable("NULL")),
            Raw::Unchanged => {
                if !self.has_unchanged_placeholder() {
                    return Err(ValueError::Unrepresentable("an unchanged TOASTed value"));
                }
                writer::bytes(out, UNCHANGED_PLACEHOLDER.as_bytes());
                Ok(())
            }
            Raw::Text(text) => self.encode_text(text, out, scratch),
            Raw::Binary(bytes) => self.encode_binary(bytes, out, scratch),
        }
    }

    fn malformed(self, form: &'static str, value: &[u8]) -> ValueError {
        ValueError::Malformed {
            kind: self,
            form,
            value: String::from_utf8_lossy(value).into_owned(),
        }
    }

    fn encode_text(
        self,
        raw: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let bad = || self.malformed("text", raw);
        let text = std::str::from_utf8(raw).map_err(|_| bad())?;
        match self {
            ColumnKind::Boolean => match text {
                "t" => writer::boolean(out, true),
                "f" => writer::boolean(out, false),
                _ => return Err(bad()),
            },
            ColumnKind::Int16 | ColumnKind::Int32 => {
                writer::int(out, text.parse().map_err(|_| bad())?);
            }
            ColumnKind::Int64 => writer::long(out, text.parse().map_err(|_| bad())?),
            ColumnKind::Float32 => writer::float(out, text.parse().map_err(|_| bad())?),
            ColumnKind::Float64 => writer::double(out, text.parse().map_err(|_| bad())?),
            ColumnKind::Decimal { .. } | ColumnKind::VariableDecimal => {
                let numeric = decimal::parse_text(text, &mut scratch.digits).ok_or_else(bad)?;
                self.encode_numeric(numeric, out, scratch)?;
            }
            ColumnKind::String
            | ColumnKind::Json
            | ColumnKind::Jsonb
            | ColumnKind::Uuid
            | ColumnKind::Text => writer::string(out, text),
            ColumnKind::Bytes => {
                let hex = text.strip_prefix("\\x").ok_or_else(bad)?;
                scratch.digits.clear();
                for pair in hex.as_bytes().chunks(2) {
                    let pair = std::str::from_utf8(pair).map_err(|_| bad())?;
                    scratch
                        .digits
                        .push(u8::from_str_radix(pair, 16).map_err(|_| bad())?);
                }
                writer::bytes(out, &scratch.digits);
            }
            ColumnKind::Date => {
                let days = match text {
                    "infinity" => DATE_POS_INFINITY,
                    "-infinity" => DATE_NEG_INFINITY,
                    _ => temporal::parse_date(text)
                        .and_then(|d| i32::try_from(d).ok())
                        .ok_or_else(bad)?,
                };
                writer::int(out, days);
            }
            ColumnKind::Timestamp => {
                let micros = match text {
                    "infinity" => i64::MAX,
                    "-infinity" => i64::MIN,
                    _ => temporal::parse_timestamp(text).ok_or_else(bad)?,
                };
                writer::long(out, micros);
            }
            ColumnKind::TimestampTz => match text {
                "infinity" | "-infinity" => writer::string(out, text),
                _ => {
                    let micros = temporal::parse_timestamptz(text).ok_or_else(bad)?;
                    scratch.text.clear();
                    temporal::format_zoned_timestamp(&mut scratch.text, micros);
                    writer::string(out, &scratch.text);
                }
            },
        }
        Ok(())
    }

    fn encode_binary(
        self,
        raw: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let bad = || self.malformed("binary", raw);
        match self {
            ColumnKind::Boolean => match raw {
                [0] => writer::boolean(out, false),
                [1] => writer::boolean(out, true),
                _ => return Err(bad()),
            },
            ColumnKind::Int16 => writer::int(
                out,
                i32::from(i16::from_be_bytes(raw.try_into().map_err(|_| bad())?)),
            ),
            ColumnKind::Int32 => {
                writer::int(out, i32::from_be_bytes(raw.try_into().map_err(|_| bad())?))
            }
            ColumnKind::Int64 => {
                writer::long(out, i64::from_be_bytes(raw.try_into().map_err(|_| bad())?));
            }
            ColumnKind::Float32 => {
                writer::float(out, f32::from_be_bytes(raw.try_into().map_err(|_| bad())?));
            }
            ColumnKind::Float64 => {
                writer::double(out, f64::from_be_bytes(raw.try_into().map_err(|_| bad())?));
            }
            ColumnKind::Decimal { .. } | ColumnKind::VariableDecimal => {
                let numeric = decimal::parse_binary(raw, &mut scratch.digits).ok_or_else(bad)?;
                self.encode_numeric(numeric, out, scratch)?;
            }
            ColumnKind::String | ColumnKind::Text | ColumnKind::Json => {
                writer::string(out, std::str::from_utf8(raw).map_err(|_| bad())?);
            }
            ColumnKind::Jsonb => {
                let [1, text @ ..] = raw else {
                    return Err(bad());
                };
                writer::string(out, std::str::from_utf8(text).map_err(|_| bad())?);
            }
            ColumnKind::Bytes => writer::bytes(out, raw),
            ColumnKind::Uuid => {
                let bytes: [u8; 16] = raw.try_into().map_err(|_| bad())?;
                scratch.text.clear();
                for (i, byte) in bytes.iter().enumerate() {
                    if matches!(i, 4 | 6 | 8 | 10) {
                        scratch.text.push('-');
                    }
                    use std::fmt::Write as _;
                    let _ = write!(scratch.text, "{byte:02x}");
                }
                writer::string(out, &scratch.text);
            }
            ColumnKind::Date => {
                let days = i32::from_be_bytes(raw.try_into().map_err(|_| bad())?);
                let days = match days {
                    DATE_POS_INFINITY | DATE_NEG_INFINITY => days,
                    _ => i32::try_from(i64::from(days) + temporal::PG_EPOCH_DAYS)
                        .map_err(|_| bad())?,
                };
                writer::int(out, days);
            }
            ColumnKind::Timestamp => {
                let micros = i64::from_be_bytes(raw.try_into().map_err(|_| bad())?);
                writer::long(out, shift_epoch(micros));
            }
            ColumnKind::TimestampTz => {
                let micros = i64::from_be_bytes(raw.try_into().map_err(|_| bad())?);
                match micros {
                    i64::MAX => writer::string(out, "infinity"),
                    i64::MIN => writer::string(out, "-infinity"),
                    _ => {
                        scratch.text.clear();
                        temporal::format_zoned_timestamp(
                            &mut scratch.text,
                            micros.saturating_add(temporal::PG_EPOCH_MICROS),
                        );
                        writer::string(out, &scratch.text);
                    }
                }
            }
        }
        Ok(())
    }

    fn encode_numeric(
        self,
        numeric: Numeric,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let (negative, scale) = match numeric {
            Numeric::Finite { negative, scale } => (negative, scale),
            Numeric::NaN => return Err(ValueError::Unrepresentable("numeric NaN")),
            Numeric::Infinity | Numeric::NegativeInfinity => {
                return Err(ValueError::Unrepresentable("numeric infinity"));
            }
        };
        scratch.unscaled.clear();
        match self {
            ColumnKind::Decimal {
                scale: column_scale,
                ..
            } => {
                // PostgreSQL already rounded to the column's scale; pad to it exactly.
                let pad = column_scale
                    .checked_sub(scale)
                    .ok_or(ValueError::Unrepresentable(
                        "a numeric with more fractional digits than its column's scale",
                    ))?;
                scratch
                    .digits
                    .extend(std::iter::repeat_n(b'0', usize::try_from(pad).unwrap_or(0)));
                decimal::unscaled_bytes(negative, &scratch.digits, &mut scratch.unscaled);
                writer::bytes(out, &scratch.unscaled);
            }
            _ => {
                writer::int(
                    out,
                    i32::try_from(scale)
                        .map_err(|_| ValueError::Unrepresentable("a numeric scale beyond 2^31"))?,
                );
                decimal::unscaled_bytes(negative, &scratch.digits, &mut scratch.unscaled);
                writer::bytes(out, &scratch.unscaled);
            }
        }
        Ok(())
    }
}

/// PostgreSQL microseconds since 2000 to microseconds since 1970, keeping the infinities.
fn shift_epoch(micros: i64) -> i64 {
    match micros {
        i64::MAX | i64::MIN => micros,
        _ => micros.saturating_add(temporal::PG_EPOCH_MICROS),
    }
}
