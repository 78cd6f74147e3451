//! One column: its PostgreSQL type mapped to an Avro schema, and its values encoded straight
//! from PostgreSQL's text or binary form into Avro, without an intermediate value tree.
//!
//! The schemas follow Debezium's PostgreSQL connector where it has one, so Debezium
//! consumers read them. A value's text form and binary form give the same Avro bytes: each
//! kind parses both into the same fields and prints them with one function. `docs/types.md`
//! lists every type with its schema and edge values.

use serde_json::{Value, json};

use crate::array;
use crate::decimal::{self, Numeric};
use crate::formats;
use crate::network::{self, Address};
use crate::temporal::{self, Interval};
use crate::types::TypeInfo;
use crate::wire::{self, Wire};
use crate::writer;

/// The Avro shape of a column, from its type (see [`ColumnKind::of`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnKind {
    /// A single value.
    Scalar(ScalarKind),
    /// An array of any dimensions: `{"type": "array", "items": ["null", element]}` with the
    /// elements in row-major order. **Not exact** for a multi-dimensional array or one
    /// whose lower bound is not 1: the dimensions and bounds are not carried, only the
    /// elements (see [`ColumnKind::inexact`]). An empty array is an empty Avro array.
    Array {
        element: ScalarKind,
        /// What separates elements in the text form: `,`, or `;` for `box`.
        delimiter: u8,
    },
}

/// The Avro shape of one value. Unless said otherwise, a kind reads both PostgreSQL's text
/// output and its binary send form.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScalarKind {
    Boolean,
    /// `int2`: Avro int with `connect.type` int16.
    Int16,
    Int32,
    Int64,
    /// `float4`, NaN and ±Infinity included.
    Float32,
    /// `float8`, NaN and ±Infinity included.
    Float64,
    /// `numeric(p, s)` in decimal mode: Avro decimal of that precision and scale (Kafka
    /// Connect's `Decimal`). NaN and ±Infinity are refused with
    /// [`ValueError::NonFiniteNumeric`].
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Unconstrained `numeric` in decimal mode (or one with a negative scale): Debezium's
    /// `VariableScaleDecimal` record (scale, unscaled bytes). NaN and ±Infinity are refused
    /// with [`ValueError::NonFiniteNumeric`].
    VariableDecimal,
    /// Any `numeric` in string mode: Avro string holding PostgreSQL's text form, trailing
    /// zeros of the scale kept (`1.50`), and `NaN`, `Infinity`, `-Infinity`.
    NumericString,
    /// `money`: Kafka Connect `Decimal` of the database's money scale, as Debezium maps it.
    /// The text form is locale-formatted (`$1,234.56`, `-$1.00`, `($1.00)`): its digits are
    /// the minor-unit integer, `-` or `(` makes it negative; the binary form is that integer.
    Money {
        scale: u32,
    },
    /// Text-like types carried as their text: `text`, `varchar`, `bpchar` (padded, as
    /// PostgreSQL prints it), `name`, `xml`, `refcursor`, `citext`. Their binary form is the
    /// same text.
    String,
    /// `"char"`: a string of its one byte as PostgreSQL prints it: empty for the byte 0,
    /// `\ooo` octal from 0x80 up.
    Char,
    /// An enum: Debezium's `io.debezium.data.Enum` string, the labels listed in
    /// `connect.parameters.allowed`. Its binary form is the label's text.
    Enum,
    Bytes,
    /// Debezium's `io.debezium.data.Uuid`: lower-case hyphenated.
    Uuid,
    /// Debezium's `io.debezium.time.Date`: days since 1970-01-01; `infinity` and
    /// `-infinity` as `i32::MAX` and `i32::MIN`, as PostgreSQL stores them.
    Date,
    /// `time`: Debezium's `io.debezium.time.MicroTime`, microseconds since midnight
    /// (`24:00:00` is 86 400 000 000).
    Time,
    /// `timetz`: Debezium's `io.debezium.time.ZonedTime`, keeping the value's own offset:
    /// `10:15:30.123456+05:30`, `00:00:00Z`, `10:15:30-03:30:15` (trailing fractional
    /// zeros dropped, a zero offset as `Z`).
    TimeTz,
    /// Debezium's `io.debezium.time.MicroTimestamp`: microseconds since 1970, no zone;
    /// `infinity` and `-infinity` as `i64::MAX` and `i64::MIN`.
    Timestamp,
    /// Debezium's `io.debezium.time.ZonedTimestamp`: ISO-8601 in UTC, or `infinity`,
    /// `-infinity`.
    TimestampTz,
    /// `interval`: Debezium's `io.debezium.time.Interval`, ISO-8601 with every component
    /// signed on its own and months, days and time kept apart: `P1Y2M3DT4H5M6.78S`,
    /// `P0Y0M-1DT2H3M0S`, zero as `P0Y0M0DT0H0M0S`.
    Interval,
    /// `json`: Debezium's `io.debezium.data.Json` string, as PostgreSQL keeps it.
    Json,
    /// `jsonb`: the same as json; its binary form starts with a version byte.
    Jsonb,
    /// `jsonpath`: a string; its binary form starts with a version byte.
    JsonPath,
    /// `bit(n)` and `varbit`: a string of `0`s and `1`s.
    Bits,
    /// `inet`: a string as PostgreSQL prints it (a host's `/32` or `/128` omitted, IPv6
    /// compressed as `inet_net_ntop` does).
    Inet,
    /// `cidr`: like `inet`, always with `/n`.
    Cidr,
    /// `macaddr`: lower-case `08:00:2b:01:02:03`.
    MacAddr,
    /// `macaddr8`: lower-case, eight bytes.
    MacAddr8,
    /// `oid`, `xid`, `cid` (unsigned 32-bit): Avro long.
    UInt32,
    /// `xid8`: Avro long; a value past `i64::MAX` is refused.
    UInt64,
    /// `pg_lsn`: a string `16/B374D848`.
    PgLsn,
    /// `tid`: a string `(block,offset)`.
    Tid,
    /// `hstore` (extension): Avro map of nullable strings, as Debezium's map mode.
    HStore,
    /// Any other type (`tsvector`, `tsquery`, geometric types, ranges, multiranges,
    /// composite types, `reg*` types, unknown types): its text form, as a string.
    /// **Text-only**: the binary form is refused ([`ValueError::BinaryUnsupported`]).
    Text,
}

impl ColumnKind {
    /// The Avro default of a field of this kind for a column whose default is the constant
    /// `text` (PostgreSQL's text form), where the Avro type holds it as JSON: integers,
    /// booleans, floats (finite) and the string kinds that carry the text as it is. None for
    /// the rest (their Avro form is not the text, e.g. decimals as bytes).
    pub fn avro_default(self, text: &str) -> Option<serde_json::Value> {
        let ColumnKind::Scalar(kind) = self else {
            return None;
        };
        Some(match kind {
            ScalarKind::Boolean => match text {
                "true" | "t" => json!(true),
                "false" | "f" => json!(false),
                _ => return None,
            },
            ScalarKind::Int16 | ScalarKind::Int32 => json!(text.parse::<i32>().ok()?),
            ScalarKind::Int64 => json!(text.parse::<i64>().ok()?),
            ScalarKind::Float32 | ScalarKind::Float64 => {
                let value = text.parse::<f64>().ok().filter(|v| v.is_finite())?;
                json!(value)
            }
            ScalarKind::String | ScalarKind::Enum | ScalarKind::NumericString => json!(text),
            _ => return None,
        })
    }

    /// Whether values of this kind can be read in PostgreSQL's binary form. The others are
    /// text-only: asked for as text (`column::text` in a COPY, and `replication.binary =
    /// false`), and [`Raw::Binary`] values of them are refused with
    /// [`ValueError::BinaryUnsupported`]. An array is text-only when its element is.
    pub fn reads_binary(self) -> bool {
        match self {
            ColumnKind::Scalar(kind) | ColumnKind::Array { element: kind, .. } => {
                kind != ScalarKind::Text
            }
        }
    }

    /// Why values of this kind may not be carried exactly, if they may not: a
    /// multi-dimensional array, or one with a lower bound other than 1, is flattened to its
    /// elements in row-major order. Every other kind carries its values exactly (or refuses
    /// them with a [`ValueError`]).
    pub fn inexact(self) -> Option<&'static str> {
        match self {
            ColumnKind::Array { .. } => Some(
                "arrays are flattened: a multi-dimensional array's dimensions and any lower \
                 bound other than 1 are not carried",
            ),
            ColumnKind::Scalar(_) => None,
        }
    }

    /// Whether an unchanged TOASTed value of this kind is sent as [`UNCHANGED_PLACEHOLDER`]
    /// (kinds whose Avro type is a plain string or bytes; Avro strings and bytes encode
    /// alike). Other kinds send null.
    pub fn has_unchanged_placeholder(self) -> bool {
        use ScalarKind as K;
        match self {
            ColumnKind::Scalar(kind) => !matches!(
                kind,
                K::Boolean
                    | K::Int16
                    | K::Int32
                    | K::Int64
                    | K::Float32
                    | K::Float64
                    | K::Decimal { .. }
                    | K::VariableDecimal
                    | K::Money { .. }
                    | K::Date
                    | K::Time
                    | K::Timestamp
                    | K::UInt32
                    | K::UInt64
                    | K::HStore
            ),
            ColumnKind::Array { .. } => false,
        }
    }

    /// Whether a value of this kind may be large enough to be TOASTed, and so arrive unchanged,
    /// without having a placeholder form: its field must then allow null even for a NOT NULL
    /// column (numerics, hstore, arrays).
    pub fn toastable_without_placeholder(self) -> bool {
        use ScalarKind as K;
        match self {
            ColumnKind::Scalar(kind) => {
                matches!(kind, K::Decimal { .. } | K::VariableDecimal | K::HStore)
            }
            ColumnKind::Array { .. } => true,
        }
    }

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

    /// The error for a `value` that is not one of this kind in `form`: it names the kind, the
    /// form and the value's length, never the value (row values stay out of logs and errors).
    pub(crate) fn malformed(self, form: &'static str, value: &[u8]) -> ValueError {
        ValueError::Malformed {
            kind: self,
            form,
            length: value.len(),
        }
    }

    /// Appends the Avro encoding of a non-null `raw` value.
    pub(crate) fn encode(
        self,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match (self, raw) {
            (_, Raw::Null) => Err(ValueError::Unrepresentable("NULL")),
            (_, Raw::Unchanged) => {
                if !self.has_unchanged_placeholder() {
                    return Err(ValueError::Unrepresentable("an unchanged TOASTed value"));
                }
                writer::bytes(out, UNCHANGED_PLACEHOLDER.as_bytes());
                Ok(())
            }
            (_, Raw::Binary(_)) if !self.reads_binary() => {
                Err(ValueError::BinaryUnsupported { kind: self })
            }
            (ColumnKind::Scalar(kind), raw) => kind.encode(raw, out, scratch),
            (ColumnKind::Array { element, delimiter }, Raw::Text(text)) => {
                array::encode_text_array(self, element, delimiter, text, out, scratch)
            }
            (ColumnKind::Array { element, .. }, Raw::Binary(bytes)) => {
                array::encode_binary_array(self, element, bytes, out, scratch)
            }
        }
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
    /// PostgreSQL's binary send format. A value read as text (a text-only column cast to
    /// `text` in a binary COPY) must be passed as [`Raw::Text`].
    Binary(&'a [u8]),
}

/// What an unchanged TOASTed text or bytes value is sent as, the value Debezium uses, so
/// consumers written for Debezium recognise it. The event also lists such columns by name.
pub const UNCHANGED_PLACEHOLDER: &str = "__debezium_unavailable_value";

/// Why a value could not be encoded. No variant holds the value or any part of it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueError {
    #[error("a {length}-byte value that is not a valid {kind:?} in {form} form")]
    Malformed {
        kind: ColumnKind,
        form: &'static str,
        length: usize,
    },
    #[error("{0} has no representation in this column's Avro type")]
    Unrepresentable(&'static str),
    /// A numeric NaN, Infinity or -Infinity in decimal mode.
    #[error(
        "numeric NaN (or Infinity) has no form in an Avro decimal; set events.numeric = \"string\" to carry numerics as exact strings"
    )]
    NonFiniteNumeric,
    /// A binary value of a text-only kind (see [`ColumnKind::reads_binary`]).
    #[error(
        "{kind:?} values are read as text only: their binary form is not decoded (replication.binary must be false)"
    )]
    BinaryUnsupported { kind: ColumnKind },
}

/// Reused buffers for the encoders, so a value needs no allocation of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    digits: Vec<u8>,
    unscaled: Vec<u8>,
    text: String,
    /// An array's encoded elements, before their count is known.
    pub(crate) items: Vec<u8>,
    /// An array element's unescaped text.
    pub(crate) element: Vec<u8>,
    /// An hstore's encoded pairs, before their count is known.
    pub(crate) map_items: Vec<u8>,
}

impl Scratch {
    /// Writes the string `format` prints, through the reused text buffer.
    fn string(&mut self, out: &mut Vec<u8>, format: impl FnOnce(&mut String)) {
        self.text.clear();
        format(&mut self.text);
        writer::string(out, &self.text);
    }
}

/// Days since 1970 for PostgreSQL's date infinities, as PostgreSQL stores them.
const DATE_POS_INFINITY: i32 = i32::MAX;
const DATE_NEG_INFINITY: i32 = i32::MIN;

impl ScalarKind {
    /// The Avro schema of a non-null value; `info` gives an enum's labels.
    fn schema(self, info: &TypeInfo, defined: &mut Vec<&'static str>) -> Value {
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
            ScalarKind::VariableDecimal => {
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
            ScalarKind::NumericString
            | ScalarKind::String
            | ScalarKind::Char
            | ScalarKind::JsonPath
            | ScalarKind::Bits
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
            // Without Avro's own `logicalType: date`: Connect's Avro converters take that for
            // org.apache.kafka.connect.data.Date and refuse the Debezium name beside it.
            ScalarKind::Date => debezium("int", "io.debezium.time.Date"),
            ScalarKind::Time => debezium("long", "io.debezium.time.MicroTime"),
            ScalarKind::TimeTz => debezium("string", "io.debezium.time.ZonedTime"),
            ScalarKind::Timestamp => debezium("long", "io.debezium.time.MicroTimestamp"),
            ScalarKind::TimestampTz => debezium("string", "io.debezium.time.ZonedTimestamp"),
            ScalarKind::Interval => debezium("string", "io.debezium.time.Interval"),
            ScalarKind::Json | ScalarKind::Jsonb => debezium("string", "io.debezium.data.Json"),
            ScalarKind::HStore => json!({"type": "map", "values": ["null", "string"]}),
        }
    }

    /// Appends the Avro encoding of a non-null text or binary value.
    pub(crate) fn encode(
        self,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match raw {
            Raw::Text(text) => self.encode_text(text, out, scratch),
            Raw::Binary(bytes) => self.encode_binary(bytes, out, scratch),
            Raw::Null | Raw::Unchanged => ColumnKind::Scalar(self).encode(raw, out, scratch),
        }
    }

    fn encode_text(
        self,
        raw: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let kind = ColumnKind::Scalar(self);
        let bad = || kind.malformed("text", raw);
        let text = std::str::from_utf8(raw).map_err(|_| bad())?;
        match self {
            ScalarKind::Boolean => match text {
                "t" => writer::boolean(out, true),
                "f" => writer::boolean(out, false),
                _ => return Err(bad()),
            },
            ScalarKind::Int16 | ScalarKind::Int32 => {
                writer::int(out, text.parse().map_err(|_| bad())?);
            }
            ScalarKind::Int64 => writer::long(out, text.parse().map_err(|_| bad())?),
            ScalarKind::Float32 => writer::float(out, text.parse().map_err(|_| bad())?),
            ScalarKind::Float64 => writer::double(out, text.parse().map_err(|_| bad())?),
            ScalarKind::Decimal { .. }
            | ScalarKind::VariableDecimal
            | ScalarKind::NumericString => {
                let numeric = decimal::parse_text(text, &mut scratch.digits).ok_or_else(bad)?;
                self.encode_numeric(numeric, out, scratch)?;
            }
            ScalarKind::Money { .. } => {
                let minor = decimal::parse_money(text).ok_or_else(bad)?;
                write_money(out, minor, scratch);
            }
            ScalarKind::String
            | ScalarKind::Enum
            | ScalarKind::Json
            | ScalarKind::Jsonb
            | ScalarKind::JsonPath
            | ScalarKind::Uuid
            | ScalarKind::Text => writer::string(out, text),
            ScalarKind::Char => {
                let byte = formats::char_of_text(raw).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_char(s, byte));
            }
            ScalarKind::Bytes => {
                let hex = text.strip_prefix("\\x").ok_or_else(bad)?;
                scratch.digits.clear();
                for pair in hex.as_bytes().chunks(2) {
                    let pair = std::str::from_utf8(pair).ok().filter(|p| p.len() == 2);
                    let byte = pair.and_then(formats::hex).ok_or_else(bad)?;
                    scratch.digits.push(u8::try_from(byte).map_err(|_| bad())?);
                }
                writer::bytes(out, &scratch.digits);
            }
            ScalarKind::Date => {
                let days = match text {
                    "infinity" => DATE_POS_INFINITY,
                    "-infinity" => DATE_NEG_INFINITY,
                    _ => temporal::parse_date(text)
                        .and_then(|d| i32::try_from(d).ok())
                        .ok_or_else(bad)?,
                };
                writer::int(out, days);
            }
            ScalarKind::Time => writer::long(out, temporal::parse_time(text).ok_or_else(bad)?),
            ScalarKind::TimeTz => {
                let (micros, offset) = temporal::parse_timetz(text).ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_zoned_time(s, micros, offset));
            }
            ScalarKind::Timestamp => {
                let micros = match text {
                    "infinity" => i64::MAX,
                    "-infinity" => i64::MIN,
                    _ => micros_since_1970(temporal::parse_timestamp(text).ok_or_else(bad)?)?,
                };
                writer::long(out, micros);
            }
            ScalarKind::TimestampTz => match text {
                "infinity" | "-infinity" => writer::string(out, text),
                _ => {
                    let micros = temporal::parse_timestamptz(text).ok_or_else(bad)?;
                    scratch.string(out, |s| temporal::format_zoned_timestamp(s, micros));
                }
            },
            ScalarKind::Interval => {
                let interval = temporal::parse_interval(text).ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_interval(s, interval));
            }
            ScalarKind::Bits => {
                if !formats::is_bit_text(text) {
                    return Err(bad());
                }
                writer::string(out, text);
            }
            ScalarKind::Inet | ScalarKind::Cidr => {
                let address = Address::of_text(text).ok_or_else(bad)?;
                let cidr = self == ScalarKind::Cidr;
                scratch.string(out, |s| address.format(s, cidr));
            }
            ScalarKind::MacAddr => {
                let mac = network::parse_mac::<6>(text).ok_or_else(bad)?;
                scratch.string(out, |s| network::format_mac(s, &mac));
            }
            ScalarKind::MacAddr8 => {
                let mac = network::parse_mac::<8>(text).ok_or_else(bad)?;
                scratch.string(out, |s| network::format_mac(s, &mac));
            }
            ScalarKind::UInt32 => writer::long(
                out,
                i64::from(formats::decimal::<u32>(text).ok_or_else(bad)?),
            ),
            ScalarKind::UInt64 => write_u64(out, formats::decimal::<u64>(text).ok_or_else(bad)?)?,
            ScalarKind::PgLsn => {
                let lsn = formats::parse_lsn(text).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_lsn(s, lsn));
            }
            ScalarKind::Tid => {
                let tid = formats::parse_tid(text).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_tid(s, tid));
            }
            ScalarKind::HStore => array::encode_text_hstore(kind, raw, out, scratch)?,
        }
        Ok(())
    }

    fn encode_binary(
        self,
        raw: &[u8],
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let kind = ColumnKind::Scalar(self);
        let bad = || kind.malformed("binary", raw);
        let utf8 = |bytes| std::str::from_utf8(bytes).map_err(|_| bad());
        match self {
            ScalarKind::Boolean => match raw {
                [0] => writer::boolean(out, false),
                [1] => writer::boolean(out, true),
                _ => return Err(bad()),
            },
            ScalarKind::Int16 => writer::int(
                out,
                i32::from(i16::from_be_bytes(wire::exact(raw).ok_or_else(bad)?)),
            ),
            ScalarKind::Int32 => {
                writer::int(out, i32::from_be_bytes(wire::exact(raw).ok_or_else(bad)?));
            }
            ScalarKind::Int64 => {
                writer::long(out, i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?));
            }
            ScalarKind::Float32 => {
                writer::float(out, f32::from_be_bytes(wire::exact(raw).ok_or_else(bad)?));
            }
            ScalarKind::Float64 => {
                writer::double(out, f64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?));
            }
            ScalarKind::Decimal { .. }
            | ScalarKind::VariableDecimal
            | ScalarKind::NumericString => {
                let numeric = decimal::parse_binary(raw, &mut scratch.digits).ok_or_else(bad)?;
                self.encode_numeric(numeric, out, scratch)?;
            }
            ScalarKind::Money { .. } => {
                let minor = i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                write_money(out, minor, scratch);
            }
            ScalarKind::String | ScalarKind::Enum | ScalarKind::Json => {
                writer::string(out, utf8(raw)?);
            }
            ScalarKind::Jsonb | ScalarKind::JsonPath => {
                let [1, text @ ..] = raw else {
                    return Err(bad());
                };
                writer::string(out, utf8(text)?);
            }
            ScalarKind::Char => {
                let [byte] = raw else {
                    return Err(bad());
                };
                scratch.string(out, |s| formats::format_char(s, *byte));
            }
            ScalarKind::Bytes => writer::bytes(out, raw),
            ScalarKind::Uuid => {
                let bytes: [u8; 16] = wire::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| {
                    for (i, byte) in bytes.iter().enumerate() {
                        if matches!(i, 4 | 6 | 8 | 10) {
                            s.push('-');
                        }
                        use std::fmt::Write as _;
                        let _ = write!(s, "{byte:02x}");
                    }
                });
            }
            ScalarKind::Date => {
                let days = i32::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                let days = match days {
                    DATE_POS_INFINITY | DATE_NEG_INFINITY => days,
                    _ => i32::try_from(i64::from(days) + temporal::PG_EPOCH_DAYS)
                        .map_err(|_| bad())?,
                };
                writer::int(out, days);
            }
            ScalarKind::Time => {
                let micros = i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                if !temporal::valid_time(micros) {
                    return Err(bad());
                }
                writer::long(out, micros);
            }
            ScalarKind::TimeTz => {
                let mut wire = Wire::new(raw);
                let (micros, zone) = (wire.i64(), wire.i32());
                let (micros, offset) = micros
                    .zip(zone)
                    .and_then(|(micros, zone)| temporal::timetz_of_binary(micros, zone))
                    .filter(|_| wire.end().is_some())
                    .ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_zoned_time(s, micros, offset));
            }
            ScalarKind::Timestamp => {
                let micros = match i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?) {
                    infinity @ (i64::MAX | i64::MIN) => infinity,
                    micros => micros_since_1970(temporal::since_1970(micros))?,
                };
                writer::long(out, micros);
            }
            ScalarKind::TimestampTz => {
                let micros = i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                match micros {
                    i64::MAX => writer::string(out, "infinity"),
                    i64::MIN => writer::string(out, "-infinity"),
                    _ => scratch.string(out, |s| {
                        temporal::format_zoned_timestamp(s, temporal::since_1970(micros));
                    }),
                }
            }
            ScalarKind::Interval => {
                let mut wire = Wire::new(raw);
                let interval = (|| {
                    let micros = wire.i64()?;
                    let days = wire.i32()?;
                    let months = wire.i32()?;
                    wire.end()?;
                    Some(Interval {
                        months,
                        days,
                        micros,
                    })
                })()
                .ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_interval(s, interval));
            }
            ScalarKind::Bits => {
                scratch.text.clear();
                formats::format_bits(&mut scratch.text, raw).ok_or_else(bad)?;
                writer::string(out, &scratch.text);
            }
            ScalarKind::Inet | ScalarKind::Cidr => {
                let address = Address::of_binary(raw).ok_or_else(bad)?;
                let cidr = self == ScalarKind::Cidr;
                scratch.string(out, |s| address.format(s, cidr));
            }
            ScalarKind::MacAddr => {
                let mac: [u8; 6] = wire::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| network::format_mac(s, &mac));
            }
            ScalarKind::MacAddr8 => {
                let mac: [u8; 8] = wire::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| network::format_mac(s, &mac));
            }
            ScalarKind::UInt32 => writer::long(
                out,
                i64::from(u32::from_be_bytes(wire::exact(raw).ok_or_else(bad)?)),
            ),
            ScalarKind::UInt64 => {
                write_u64(out, u64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?))?;
            }
            ScalarKind::PgLsn => {
                let lsn = u64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                scratch.string(out, |s| formats::format_lsn(s, lsn));
            }
            ScalarKind::Tid => {
                let tid = formats::tid_of_binary(raw).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_tid(s, tid));
            }
            ScalarKind::HStore => array::encode_binary_hstore(kind, raw, out)?,
            ScalarKind::Text => return Err(ValueError::BinaryUnsupported { kind }),
        }
        Ok(())
    }

    fn encode_numeric(
        self,
        numeric: Numeric,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        if self == ScalarKind::NumericString {
            scratch.text.clear();
            decimal::format_text(&mut scratch.text, numeric, &scratch.digits);
            writer::string(out, &scratch.text);
            return Ok(());
        }
        let Numeric::Finite { negative, scale } = numeric else {
            return Err(ValueError::NonFiniteNumeric);
        };
        scratch.unscaled.clear();
        if let ScalarKind::Decimal {
            scale: column_scale,
            ..
        } = self
        {
            // PostgreSQL already rounded to the column's scale; pad to it exactly.
            let pad = column_scale
                .checked_sub(scale)
                .ok_or(ValueError::Unrepresentable(
                    "a numeric with more fractional digits than its column's scale",
                ))?;
            scratch
                .digits
                .extend(std::iter::repeat_n(b'0', usize::try_from(pad).unwrap_or(0)));
        } else {
            writer::int(
                out,
                i32::try_from(scale)
                    .map_err(|_| ValueError::Unrepresentable("a numeric scale beyond 2^31"))?,
            );
        }
        decimal::unscaled_bytes(negative, &scratch.digits, &mut scratch.unscaled);
        writer::bytes(out, &scratch.unscaled);
        Ok(())
    }
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

/// A money value's minor-unit integer as its decimal's unscaled bytes.
fn write_money(out: &mut Vec<u8>, minor: i64, scratch: &mut Scratch) {
    scratch.unscaled.clear();
    decimal::unscaled_i64(minor, &mut scratch.unscaled);
    writer::bytes(out, &scratch.unscaled);
}

/// An unsigned 64-bit value as an Avro long, refused past `i64::MAX`.
fn write_u64(out: &mut Vec<u8>, value: u64) -> Result<(), ValueError> {
    let value =
        i64::try_from(value).map_err(|_| ValueError::Unrepresentable("an xid8 past 2^63 - 1"))?;
    writer::long(out, value);
    Ok(())
}

/// A `MicroTimestamp`: refused past `i64::MAX` (PostgreSQL's timestamps from 294247-01-10
/// 04:00:54.775807), and at `i64::MAX` and `i64::MIN` themselves, which stand for the
/// infinities.
fn micros_since_1970(micros: i128) -> Result<i64, ValueError> {
    i64::try_from(micros)
        .ok()
        .filter(|m| *m != i64::MAX && *m != i64::MIN)
        .ok_or(ValueError::Unrepresentable(
            "a timestamp from 294247-01-10 04:00:54.775807 on (past an Avro long of microseconds since 1970)",
        ))
}
