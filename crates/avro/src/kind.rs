//! The Avro shape of a column ([`ColumnKind`], [`ScalarKind`]) and which one a PostgreSQL type
//! gets: built-in types by OID, the others by what the caller looked up in `pg_type`
//! ([`TypeInfo`]), shaped by the [`TypeOptions`] of the run; a value as it arrives ([`Raw`]),
//! and why one could not be encoded ([`ValueError`]).
//!
//! The shapes follow Debezium's PostgreSQL connector where it has one, so Debezium consumers
//! read them. `docs/types.md` lists every type with its schema and edge values.

use serde_json::json;

use crate::output::OutputError;
use crate::types::{
    HstoreMode, NumericMode, TypeInfo, TypeOptions, built_in_element, delimiter_of, oid,
};
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
    /// `int2vector`: an Avro array of int16, as Debezium maps it. Its elements are never
    /// NULL and its one lower bound is always 0, so the array holds it exactly. Text
    /// `1 -2 3`; binary the array form (`array_send`).
    Int2Vector,
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
    /// `xid8`: Avro long; a value past `i64::MAX` is a stand-in, see [`write_u64`](crate::special::write_u64).
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
                    | K::Int2Vector
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
                    K::Decimal { .. }
                        | K::VariableDecimal
                        | K::HStore { json: false }
                        | K::Int2Vector
                )
            }
            ColumnKind::Array { .. } => true,
        }
    }

    /// Appends the placeholder of an unchanged TOASTed value, for a kind that
    /// [has one](ColumnKind::has_unchanged_placeholder); refuses it for the others.
    pub(crate) fn encode_unchanged(self, out: &mut Vec<u8>) -> Result<(), ValueError> {
        if !self.has_unchanged_placeholder() {
            return Err(ValueError::Unrepresentable("an unchanged TOASTed value"));
        }
        self.write_unchanged(UNCHANGED_PLACEHOLDER.as_bytes(), out);
        Ok(())
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
}

impl ColumnKind {
    /// The mapping of a column of type `type_oid` with modifier `type_modifier`, described
    /// further by `info` where the OID is not enough (see [`TypeInfo`]).
    pub fn of(type_oid: u32, type_modifier: i32, info: &TypeInfo, options: &TypeOptions) -> Self {
        let element = match &info.element {
            // The catalog calls it an array of int2; sluice reads it as a value of its own.
            _ if type_oid == oid::INT2VECTOR => None,
            Some(element) => Some((element.type_oid, &element.info)),
            None => built_in_element(type_oid).map(|oid| (oid, &DEFAULT_INFO)),
        };
        match element {
            None => ColumnKind::Scalar(ScalarKind::of(type_oid, type_modifier, info, options)),
            Some((element_oid, element_info)) => ColumnKind::Array {
                element: ScalarKind::of(element_oid, type_modifier, element_info, options),
                delimiter: delimiter_of(element_oid),
            },
        }
    }
}

static DEFAULT_INFO: TypeInfo = TypeInfo {
    name: String::new(),
    typtype: '\0',
    domain: None,
    element: None,
    enum_labels: Vec::new(),
    subtype: None,
    fields: Vec::new(),
    no_send: false,
};

impl ScalarKind {
    fn of(type_oid: u32, type_modifier: i32, info: &TypeInfo, options: &TypeOptions) -> Self {
        match info.typtype {
            '\0' | 'b' => {}
            'e' => return ScalarKind::Enum,
            _ => return ScalarKind::Text,
        }
        match type_oid {
            oid::BOOL => ScalarKind::Boolean,
            oid::INT2 => ScalarKind::Int16,
            oid::INT4 => ScalarKind::Int32,
            oid::INT8 => ScalarKind::Int64,
            oid::FLOAT4 => ScalarKind::Float32,
            oid::FLOAT8 => ScalarKind::Float64,
            oid::NUMERIC => match options.numeric {
                NumericMode::Decimal => numeric_kind(type_modifier),
                NumericMode::String => ScalarKind::NumericString,
            },
            oid::MONEY => ScalarKind::Money {
                scale: options.money_scale,
            },
            oid::TEXT | oid::VARCHAR | oid::BPCHAR | oid::NAME | oid::REFCURSOR => {
                ScalarKind::String
            }
            oid::XML => ScalarKind::Xml,
            oid::TSVECTOR => ScalarKind::Tsvector,
            oid::POINT => ScalarKind::Point,
            oid::INT2VECTOR => ScalarKind::Int2Vector,
            oid::CHAR => ScalarKind::Char,
            oid::BYTEA => ScalarKind::Bytes,
            oid::UUID => ScalarKind::Uuid,
            oid::DATE => ScalarKind::Date,
            oid::TIME => ScalarKind::Time {
                millis: options.time_precision.millis(type_modifier),
            },
            oid::TIMETZ => ScalarKind::TimeTz,
            oid::TIMESTAMP => ScalarKind::Timestamp {
                millis: options.time_precision.millis(type_modifier),
            },
            oid::TIMESTAMPTZ => ScalarKind::TimestampTz,
            oid::INTERVAL => ScalarKind::Interval {
                infinities: options.interval_infinities,
            },
            oid::JSON => ScalarKind::Json,
            oid::JSONB => ScalarKind::Jsonb,
            oid::JSONPATH => ScalarKind::JsonPath,
            oid::BIT | oid::VARBIT => ScalarKind::Bits {
                length: type_modifier,
                varying: type_oid == oid::VARBIT,
            },
            oid::INET => ScalarKind::Inet,
            oid::CIDR => ScalarKind::Cidr,
            oid::MACADDR => ScalarKind::MacAddr,
            oid::MACADDR8 => ScalarKind::MacAddr8,
            oid::OID | oid::XID | oid::CID => ScalarKind::UInt32,
            oid::XID8 => ScalarKind::UInt64,
            oid::PG_LSN => ScalarKind::PgLsn,
            oid::TID => ScalarKind::Tid,
            _ => match info.name.as_str() {
                "hstore" => ScalarKind::HStore {
                    json: options.hstore == HstoreMode::Json,
                },
                "citext" => ScalarKind::String,
                _ => ScalarKind::Text,
            },
        }
    }
}

fn numeric_kind(type_modifier: i32) -> ScalarKind {
    // typmod = ((precision << 16) | scale) + VARHDRSZ; scale is an 11-bit signed field.
    let Some(packed) = type_modifier.checked_sub(4).filter(|p| *p >= 0) else {
        return ScalarKind::VariableDecimal;
    };
    let precision = (packed >> 16) & 0xffff;
    let scale = ((packed & 0x7ff) ^ 1024) - 1024;
    match (u32::try_from(precision), u32::try_from(scale)) {
        (Ok(precision), Ok(scale)) => ScalarKind::Decimal { precision, scale },
        // A negative scale has no Avro decimal form.
        _ => ScalarKind::VariableDecimal,
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
