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
use crate::exact::Exact;
use crate::formats;
use crate::hstore;
use crate::network::{self, Address};
use crate::output::{Output, OutputError};
use crate::special::{Timestamp, write_money, write_time, write_timestamp, write_u64};
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
    /// elements in row-major order, as Debezium's flat list; a multi-dimensional array's
    /// dimensions, or a lower bound other than 1, go to the event's `exact` field. An empty
    /// array is an empty Avro array.
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
    /// Connect's `Decimal`). NaN and ±Infinity are stand-ins past the column's range, the
    /// value in the event's `exact` field (see [`ScalarKind::encode_nonfinite`]).
    Decimal {
        precision: u32,
        scale: u32,
    },
    /// Unconstrained `numeric` in decimal mode (or one with a negative scale): Debezium's
    /// `VariableScaleDecimal` record (scale, unscaled bytes). NaN and ±Infinity as for
    /// `Decimal`.
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
    /// PostgreSQL prints it), `name`, `refcursor`, `citext`. Their binary form is the same
    /// text.
    String,
    /// `xml`: Debezium's `io.debezium.data.Xml` string, its text.
    Xml,
    /// `tsvector`: Debezium's `io.debezium.data.Tsvector` string, its text. **Text-only**.
    Tsvector,
    /// `point`: Debezium's `io.debezium.data.geometry.Point` record: `x` and `y`, the point as
    /// WKB (`wkb`, 21 bytes) and `srid` null.
    Point,
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
    /// (`24:00:00` is 86 400 000 000); with `millis` (`time(0)` to `time(3)` under Debezium's
    /// adaptive precision) `io.debezium.time.Time`, an Avro int of milliseconds.
    Time {
        millis: bool,
    },
    /// `timetz`: Debezium's `io.debezium.time.ZonedTime`, keeping the value's own offset:
    /// `10:15:30.123456+05:30`, `00:00:00Z`, `10:15:30-03:30:15` (trailing fractional
    /// zeros dropped, a zero offset as `Z`).
    TimeTz,
    /// Debezium's `io.debezium.time.MicroTimestamp`: microseconds since 1970, no zone;
    /// `infinity` and `-infinity` as `i64::MAX` and `i64::MIN`. The last 30 years PostgreSQL
    /// holds are past them: stand-ins, see [`timestamp_micros`]. With `millis` (`timestamp(0)`
    /// to `timestamp(3)` under Debezium's adaptive precision) `io.debezium.time.Timestamp`,
    /// milliseconds, which hold every timestamp.
    Timestamp {
        millis: bool,
    },
    /// Debezium's `io.debezium.time.ZonedTimestamp`: ISO-8601 in UTC, or `infinity`,
    /// `-infinity`.
    TimestampTz,
    /// `interval`: Debezium's `io.debezium.time.Interval`, ISO-8601 with every component
    /// signed on its own and months, days and time kept apart: `P1Y2M3DT4H5M6.78S`,
    /// `P0Y0M-1DT2H3M0S`, zero as `P0Y0M0DT0H0M0S`.
    Interval {
        /// Whether the binary form's all-extreme value is PostgreSQL 17's `infinity` (or
        /// `-infinity`), as it is from PostgreSQL 17 on; before, it is a finite interval.
        infinities: bool,
    },
    /// `json`: Debezium's `io.debezium.data.Json` string, as PostgreSQL keeps it.
    Json,
    /// `jsonb`: the same as json; its binary form starts with a version byte.
    Jsonb,
    /// `jsonpath`: a string; its binary form starts with a version byte.
    JsonPath,
    /// `bit(n)` and `varbit(n)`, as Debezium: `io.debezium.data.Bits`, the bits as an
    /// unsigned number in little-endian bytes (`1010` is `[0x0a]`), the column's `length` (its
    /// type modifier; -1 for an unconstrained varbit) in `connect.parameters`; a length of 1
    /// is a boolean. A varbit's value does not tell its leading zeros (nor an empty string)
    /// apart: those go to the event's `exact` field as well.
    Bits {
        length: i32,
        varying: bool,
    },
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
    /// `xid8`: Avro long; a value past `i64::MAX` is a stand-in, see [`write_u64`].
    UInt64,
    /// `pg_lsn`: a string `16/B374D848`.
    PgLsn,
    /// `tid`: a string `(block,offset)`.
    Tid,
    /// `hstore` (extension): with `json`, Debezium's default, a JSON object of nullable
    /// strings (`io.debezium.data.Json`, `{"a":"1","b":null}`); else an Avro map of nullable
    /// strings, as Debezium's map mode.
    HStore {
        json: bool,
    },
    /// Any other type (`tsvector`, `tsquery`, geometric types, ranges, multiranges,
    /// composite types, `reg*` types, unknown types): its text output, as a string. Its
    /// binary form is printed as that text by the type's output (see
    /// [`ColumnKind::encode_with`]); without one it is refused
    /// ([`ValueError::BinaryUnsupported`]).
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
            ScalarKind::String | ScalarKind::Xml | ScalarKind::Enum | ScalarKind::NumericString => {
                json!(text)
            }
            _ => return None,
        })
    }

    /// Whether values of this kind are read from PostgreSQL's binary form by the kind alone.
    /// The others ([`ScalarKind::Text`], and arrays of it) carry PostgreSQL's text output:
    /// their binary form is printed as that text first, by the column type's output (see
    /// [`ColumnKind::encode_with`]), and a COPY asks for them as text (`column::text`).
    pub fn reads_binary(self) -> bool {
        match self {
            ColumnKind::Scalar(kind) | ColumnKind::Array { element: kind, .. } => {
                !matches!(kind, ScalarKind::Text | ScalarKind::Tsvector)
            }
        }
    }

    /// Whether an unchanged TOASTed value of this kind is sent as [`UNCHANGED_PLACEHOLDER`]
    /// (kinds whose Avro type is a plain string or bytes; Avro strings and bytes encode
    /// alike), or as an array of it alone (arrays of text, json and bytea), as Debezium sends
    /// them. Other kinds send null.
    pub fn has_unchanged_placeholder(self) -> bool {
        use ScalarKind as K;
        match self {
            // The arrays Debezium sends the placeholder in (it sends null for the others, or
            // for integer and date arrays the placeholder's bytes as numbers).
            ColumnKind::Array { element, .. } => {
                matches!(element, K::String | K::Json | K::Jsonb | K::Bytes)
            }
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
                    | K::Time { .. }
                    | K::Timestamp { .. }
                    | K::UInt32
                    | K::UInt64
                    | K::HStore { json: false }
                    | K::Point
                    | K::Bits { length: 1, .. }
            ),
        }
    }

    /// Appends the placeholder of an unchanged TOASTed value of a kind that
    /// [has one](ColumnKind::has_unchanged_placeholder): the bytes, or an array of them.
    pub(crate) fn write_unchanged(self, placeholder: &[u8], out: &mut Vec<u8>) {
        match self {
            ColumnKind::Scalar(_) => writer::bytes(out, placeholder),
            ColumnKind::Array { .. } => {
                writer::long(out, 1);
                writer::union_index(out, 1);
                writer::bytes(out, placeholder);
                writer::long(out, 0);
            }
        }
    }

    /// Whether a value of this kind may be large enough to be TOASTed, and so arrive unchanged,
    /// without having a placeholder form: its field must then allow null even for a NOT NULL
    /// column (numerics, hstore, arrays). Every array's field does: those of strings had
    /// none before, and a field that stops allowing null is not BACKWARD compatible.
    pub fn toastable_without_placeholder(self) -> bool {
        use ScalarKind as K;
        match self {
            ColumnKind::Scalar(kind) => {
                matches!(
                    kind,
                    K::Decimal { .. } | K::VariableDecimal | K::HStore { json: false }
                )
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

    /// Appends the Avro encoding of a non-null `raw` value; `output` prints the binary form
    /// of a kind that does not read it by itself (see [`ColumnKind::reads_binary`]) as
    /// PostgreSQL's text output, which is then encoded as text mode's value is.
    pub(crate) fn encode_with(
        self,
        output: Option<&Output>,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let (Raw::Binary(bytes), Some(output)) = (raw, output) else {
            return self.encode(raw, out, scratch);
        };
        if self.reads_binary() {
            return self.encode(raw, out, scratch);
        }
        let mut printed = std::mem::take(&mut scratch.printed);
        printed.clear();
        let result = output
            .print(bytes, &mut printed)
            .map_err(|source| ValueError::Binary { kind: self, source })
            .and_then(|()| self.encode(Raw::Text(printed.as_bytes()), out, scratch));
        scratch.printed = printed;
        result
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
                self.write_unchanged(UNCHANGED_PLACEHOLDER.as_bytes(), out);
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
    /// A binary value of a kind that carries text, whose type's binary form sluice cannot
    /// print (see [`ColumnKind::reads_binary`]).
    #[error(
        "{kind:?} values of this type are read as text only: their binary form is not decoded (replication.binary must be false)"
    )]
    BinaryUnsupported { kind: ColumnKind },
    /// A binary value that could not be printed as PostgreSQL's text output.
    #[error("{kind:?} value in binary form: {source}")]
    Binary {
        kind: ColumnKind,
        #[source]
        source: OutputError,
    },
}

/// Reused buffers for the encoders, so a value needs no allocation of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) digits: Vec<u8>,
    pub(crate) unscaled: Vec<u8>,
    pub(crate) text: String,
    /// An array's encoded elements, before their count is known.
    pub(crate) items: Vec<u8>,
    /// An array element's unescaped text.
    pub(crate) element: Vec<u8>,
    /// An hstore's encoded pairs, before their count is known.
    pub(crate) map_items: Vec<u8>,
    /// An hstore pair's unescaped key and value.
    pub(crate) pair: [Vec<u8>; 2],
    /// What the event's Debezium-shaped fields could not hold.
    pub(crate) exact: Exact,
    /// A binary value printed as PostgreSQL's text output.
    printed: String,
    /// Where the last envelope encoded put its source's snapshot marker.
    pub(crate) snapshot_marker_at: usize,
}

impl Scratch {
    /// Where the last envelope encoded put its source's snapshot marker, for
    /// [`crate::mark_snapshot_last`].
    pub fn snapshot_marker_at(&self) -> usize {
        self.snapshot_marker_at
    }

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
            | ScalarKind::Xml
            | ScalarKind::Tsvector
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
            ScalarKind::Time { millis } => {
                write_time(out, temporal::parse_time(text).ok_or_else(bad)?, millis);
            }
            ScalarKind::TimeTz => {
                let (micros, offset) = temporal::parse_timetz(text).ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_zoned_time(s, micros, offset));
            }
            ScalarKind::Timestamp { millis } => {
                let value = match text {
                    "infinity" => Timestamp::Infinity,
                    "-infinity" => Timestamp::NegativeInfinity,
                    _ => Timestamp::Micros(temporal::parse_timestamp(text).ok_or_else(bad)?),
                };
                write_timestamp(out, value, millis, scratch).ok_or_else(bad)?;
            }
            ScalarKind::TimestampTz => match text {
                "infinity" | "-infinity" => writer::string(out, text),
                _ => {
                    let micros = temporal::parse_timestamptz(text).ok_or_else(bad)?;
                    scratch.string(out, |s| temporal::format_zoned_timestamp(s, micros));
                }
            },
            ScalarKind::Interval { .. } => match text {
                // PostgreSQL 17's; a finite interval is never printed so.
                "infinity" | "-infinity" => writer::string(out, text),
                _ => {
                    let interval = temporal::parse_interval(text).ok_or_else(bad)?;
                    scratch.string(out, |s| temporal::format_interval(s, interval, false));
                }
            },
            ScalarKind::Point => {
                let (x, y) = formats::parse_point(text).ok_or_else(bad)?;
                formats::write_point(out, x, y);
            }
            ScalarKind::Bits { .. } => {
                if !formats::is_bit_text(text) {
                    return Err(bad());
                }
                self.encode_bits(text, out, scratch);
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
            ScalarKind::UInt64 => {
                write_u64(out, formats::decimal::<u64>(text).ok_or_else(bad)?, scratch);
            }
            ScalarKind::PgLsn => {
                let lsn = formats::parse_lsn(text).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_lsn(s, lsn));
            }
            ScalarKind::Tid => {
                let tid = formats::parse_tid(text).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_tid(s, tid));
            }
            ScalarKind::HStore { json } => hstore::encode(kind, json, raw, false, out, scratch)?,
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
            ScalarKind::String | ScalarKind::Xml | ScalarKind::Enum | ScalarKind::Json => {
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
                scratch.string(out, |s| formats::format_uuid(s, &bytes));
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
            ScalarKind::Time { millis } => {
                let micros = temporal::time_of_binary(raw).ok_or_else(bad)?;
                write_time(out, micros, millis);
            }
            ScalarKind::TimeTz => {
                let (micros, offset) = temporal::timetz_of_binary(raw).ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_zoned_time(s, micros, offset));
            }
            ScalarKind::Timestamp { millis } => {
                let value = match i64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?) {
                    i64::MAX => Timestamp::Infinity,
                    i64::MIN => Timestamp::NegativeInfinity,
                    micros => Timestamp::Micros(temporal::since_1970(micros)),
                };
                write_timestamp(out, value, millis, scratch).ok_or_else(bad)?;
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
            ScalarKind::Interval { infinities } => {
                let interval = Interval::of_binary(raw).ok_or_else(bad)?;
                scratch.string(out, |s| temporal::format_interval(s, interval, infinities));
            }
            ScalarKind::Point => {
                let mut wire = Wire::new(raw);
                let (x, y) = (wire.f64(), wire.f64());
                wire.end().ok_or_else(bad)?;
                let (x, y) = x.zip(y).ok_or_else(bad)?;
                formats::write_point(out, x, y);
            }
            ScalarKind::Bits { .. } => {
                let mut bits = std::mem::take(&mut scratch.text);
                bits.clear();
                let parsed = formats::format_bits(&mut bits, raw);
                if parsed.is_some() {
                    self.encode_bits(&bits, out, scratch);
                }
                scratch.text = bits;
                parsed.ok_or_else(bad)?;
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
                write_u64(
                    out,
                    u64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?),
                    scratch,
                );
            }
            ScalarKind::PgLsn => {
                let lsn = u64::from_be_bytes(wire::exact(raw).ok_or_else(bad)?);
                scratch.string(out, |s| formats::format_lsn(s, lsn));
            }
            ScalarKind::Tid => {
                let tid = formats::tid_of_binary(raw).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_tid(s, tid));
            }
            ScalarKind::HStore { json } => hstore::encode(kind, json, raw, true, out, scratch)?,
            ScalarKind::Text | ScalarKind::Tsvector => {
                return Err(ValueError::BinaryUnsupported { kind });
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
        if self == ScalarKind::NumericString {
            scratch.text.clear();
            decimal::format_text(&mut scratch.text, numeric, &scratch.digits);
            writer::string(out, &scratch.text);
            return Ok(());
        }
        let Numeric::Finite { negative, scale } = numeric else {
            self.encode_nonfinite(numeric, out, scratch);
            return Ok(());
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
