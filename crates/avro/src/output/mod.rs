//! PostgreSQL's text output of a value, printed from its binary send form.
//!
//! The types sluice carries as their text (ranges, multiranges, composites, geometric and
//! text search types, snapshots, ...) arrive in binary mode in their send form. Printed as
//! the type's output function prints it, in the settings sluice's sessions pin
//! (`sluice_postgres::SESSION_SETTINGS`: `DateStyle` ISO, `IntervalStyle` postgres,
//! `extra_float_digits` 3, `bytea_output` hex, `TimeZone` UTC; money as the C locale prints
//! it, where the database does), they give the same Avro as text mode. Containers print their
//! elements through the element type's [`Output`], to any depth a type has (bounded by
//! [`MAX_DEPTH`]).
//!
//! Everything here is a pure function of the bytes: lengths are checked, nothing panics,
//! errors are typed.

mod containers;
mod datetime;
mod float;
mod geometric;
#[cfg(test)]
mod tests;
mod tsearch;

use std::fmt::Write as _;

use crate::binary_form::{self, BinaryReader};
use crate::decimal;
use crate::formats;
use crate::inet_macaddr::{self, Address};
use crate::temporal::{self, Interval};
use crate::types::{TypeInfo, TypeOptions, built_in_element, delimiter_of, oid};

#[cfg(test)]
pub(crate) use datetime::push_interval;
pub(crate) use float::{push_float4, push_float8};
use geometric::Shape;

/// How deep types may nest (a composite of an array of a range of a composite ...) for sluice
/// to print them; deeper ones are [`Unsupported::TooDeep`].
pub(crate) const MAX_DEPTH: usize = 32;

/// How a type's values print, from their binary form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Output {
    Bool,
    Int2,
    Int4,
    Int8,
    /// `oid`, `xid`, `cid`: unsigned 32-bit.
    UInt32,
    /// `xid8`: unsigned 64-bit.
    UInt64,
    Float4,
    Float8,
    Numeric,
    /// `money` in the C locale's form (`$1,234.56`, `-$1.00`), `scale` fraction digits.
    Money {
        scale: u32,
    },
    /// Types whose binary form is their text: `text`, `varchar`, `bpchar`, `name`, `xml`,
    /// `json`, `refcursor`, enums, `citext`.
    Text,
    /// `jsonb` and `jsonpath`: a version byte (1), then the text.
    VersionedText,
    Char,
    Bytea,
    Uuid,
    Date,
    Time,
    TimeTz,
    Timestamp,
    TimestampTz,
    Interval,
    Bits,
    Inet {
        cidr: bool,
    },
    MacAddr,
    MacAddr8,
    PgLsn,
    Tid,
    HStore,
    Geometric(Shape),
    TsVector,
    TsQuery,
    /// `pg_snapshot`, `txid_snapshot`.
    Snapshot,
    /// `int2vector`, `oidvector`: their elements space-separated.
    Vector(Box<Output>),
    Array {
        element: Box<Field>,
        delimiter: u8,
    },
    /// A range, printed through its subtype's output.
    Range(Box<Output>),
    /// A multirange, printed through its ranges' subtype's output.
    Multirange(Box<Output>),
    /// A composite's fields, in order.
    Record(Vec<Field>),
}

/// An element or field type inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Field {
    /// The type OID as declared (a domain's own), which the binary form of arrays and
    /// composites repeats: a different one means the type changed since sluice looked. 0 when
    /// not known (then not checked).
    declared_oid: u32,
    output: Output,
}

impl Field {
    fn check(&self, sent_oid: u32) -> Result<(), OutputError> {
        if self.declared_oid == 0 || self.declared_oid == sent_oid {
            Ok(())
        } else {
            Err(OutputError::TypeChanged)
        }
    }
}

/// Why a value's binary form could not be printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputError {
    #[error("not a valid {0} in binary form")]
    Malformed(&'static str),
    /// A composite's or array's element types differ from the catalog's: the type was
    /// altered since sluice read it.
    #[error(
        "a composite or array value's element types differ from the catalog's (the type was altered since sluice read it)"
    )]
    TypeChanged,
}

/// Why a type's binary form cannot be printed by sluice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Unsupported {
    /// The type has no binary send function: pgoutput sends it as text even in binary mode,
    /// but a container holding it cannot be sent in binary at all.
    NoSend(String),
    /// A type (usually an extension's) whose binary form sluice does not know, or whose
    /// text needs the catalog to print (`reg*` types print names).
    Unknown(String),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
}

impl std::fmt::Display for Unsupported {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Unsupported::NoSend(name) => write!(f, "type {name} has no binary form"),
            Unsupported::Unknown(name) => {
                write!(f, "sluice does not decode the binary form of type {name}")
            }
            Unsupported::TooDeep => write!(f, "types nest deeper than {MAX_DEPTH} levels"),
        }
    }
}

/// Built-in range types and their subtypes.
const BUILT_IN_RANGES: &[(u32, u32)] = &[
    (3904, oid::INT4),
    (3906, oid::NUMERIC),
    (3908, oid::TIMESTAMP),
    (3910, oid::TIMESTAMPTZ),
    (3912, oid::DATE),
    (3926, oid::INT8),
];

/// Built-in multirange types and their range types.
const BUILT_IN_MULTIRANGES: &[(u32, u32)] = &[
    (4451, 3904),
    (4532, 3906),
    (4533, 3908),
    (4534, 3910),
    (4535, 3912),
    (4536, 3926),
];

fn lookup(table: &[(u32, u32)], key: u32) -> Option<u32> {
    table.iter().find(|(k, _)| *k == key).map(|(_, v)| *v)
}

impl Output {
    /// How values of type `type_oid` (described further by `info` where it is not built in,
    /// as for [`crate::ColumnKind::of`]) print.
    pub(crate) fn of(
        type_oid: u32,
        info: &TypeInfo,
        options: &TypeOptions,
    ) -> Result<Output, Unsupported> {
        Self::of_at(type_oid, info, options, 0)
    }

    fn of_at(
        type_oid: u32,
        info: &TypeInfo,
        options: &TypeOptions,
        depth: usize,
    ) -> Result<Output, Unsupported> {
        if depth > MAX_DEPTH {
            return Err(Unsupported::TooDeep);
        }
        let nested = |oid: u32, info: &TypeInfo| Self::of_at(oid, info, options, depth + 1);
        let default = TypeInfo::default();
        let name = || {
            if info.name.is_empty() {
                format!("oid {type_oid}")
            } else {
                info.name.clone()
            }
        };
        if info.no_send {
            return Err(Unsupported::NoSend(name()));
        }
        if let Some(element) = &info.element {
            return Ok(Output::Array {
                element: Box::new(Field {
                    declared_oid: element.declared_oid,
                    output: nested(element.type_oid, &element.info)?,
                }),
                delimiter: delimiter_of(element.type_oid),
            });
        }
        match info.typtype {
            'e' => return Ok(Output::Text),
            'c' => {
                let fields = info
                    .fields
                    .iter()
                    .map(|field| {
                        Ok(Field {
                            declared_oid: field.declared_oid,
                            output: nested(field.type_oid, &field.info)?,
                        })
                    })
                    .collect::<Result<_, Unsupported>>()?;
                return Ok(Output::Record(fields));
            }
            'r' | 'm' => {
                let subtype = info
                    .subtype
                    .as_ref()
                    .ok_or_else(|| Unsupported::Unknown(name()))?;
                let subtype = Box::new(nested(subtype.type_oid, &subtype.info)?);
                return Ok(if info.typtype == 'r' {
                    Output::Range(subtype)
                } else {
                    Output::Multirange(subtype)
                });
            }
            '\0' | 'b' => {}
            _ => return Err(Unsupported::Unknown(name())),
        }
        if let Some(element) = built_in_element(type_oid) {
            return Ok(Output::Array {
                element: Box::new(Field {
                    declared_oid: element,
                    output: nested(element, &default)?,
                }),
                delimiter: delimiter_of(element),
            });
        }
        if let Some(subtype) = lookup(BUILT_IN_RANGES, type_oid) {
            return Ok(Output::Range(Box::new(nested(subtype, &default)?)));
        }
        if let Some(range) = lookup(BUILT_IN_MULTIRANGES, type_oid) {
            let subtype = lookup(BUILT_IN_RANGES, range).unwrap_or(oid::INT4);
            return Ok(Output::Multirange(Box::new(nested(subtype, &default)?)));
        }
        Ok(match type_oid {
            oid::BOOL => Output::Bool,
            oid::INT2 => Output::Int2,
            oid::INT4 => Output::Int4,
            oid::INT8 => Output::Int8,
            oid::OID | oid::XID | oid::CID => Output::UInt32,
            oid::XID8 => Output::UInt64,
            oid::FLOAT4 => Output::Float4,
            oid::FLOAT8 => Output::Float8,
            oid::NUMERIC => Output::Numeric,
            oid::MONEY if options.money_in_c_format => Output::Money {
                scale: options.money_scale,
            },
            oid::MONEY => {
                return Err(Unsupported::Unknown(
                    "money (printed in this database's lc_monetary)".to_owned(),
                ));
            }
            oid::TEXT
            | oid::VARCHAR
            | oid::BPCHAR
            | oid::NAME
            | oid::XML
            | oid::JSON
            | oid::REFCURSOR => Output::Text,
            oid::JSONB | oid::JSONPATH => Output::VersionedText,
            oid::CHAR => Output::Char,
            oid::BYTEA => Output::Bytea,
            oid::UUID => Output::Uuid,
            oid::DATE => Output::Date,
            oid::TIME => Output::Time,
            oid::TIMETZ => Output::TimeTz,
            oid::TIMESTAMP => Output::Timestamp,
            oid::TIMESTAMPTZ => Output::TimestampTz,
            oid::INTERVAL => Output::Interval,
            oid::BIT | oid::VARBIT => Output::Bits,
            oid::INET => Output::Inet { cidr: false },
            oid::CIDR => Output::Inet { cidr: true },
            oid::MACADDR => Output::MacAddr,
            oid::MACADDR8 => Output::MacAddr8,
            oid::PG_LSN => Output::PgLsn,
            oid::TID => Output::Tid,
            oid::POINT => Output::Geometric(Shape::Point),
            oid::LSEG => Output::Geometric(Shape::Lseg),
            oid::PATH => Output::Geometric(Shape::Path),
            oid::BOX => Output::Geometric(Shape::Box),
            oid::POLYGON => Output::Geometric(Shape::Polygon),
            oid::LINE => Output::Geometric(Shape::Line),
            oid::CIRCLE => Output::Geometric(Shape::Circle),
            oid::TSVECTOR => Output::TsVector,
            oid::TSQUERY => Output::TsQuery,
            oid::TXID_SNAPSHOT | oid::PG_SNAPSHOT => Output::Snapshot,
            // Arrays in their binary form, lists in their text.
            oid::INT2VECTOR => Output::Vector(Box::new(Output::Int2)),
            oid::OIDVECTOR => Output::Vector(Box::new(Output::UInt32)),
            oid::ACLITEM | oid::GTSVECTOR => return Err(Unsupported::NoSend(name())),
            _ => match info.name.as_str() {
                "citext" => Output::Text,
                "hstore" => Output::HStore,
                _ => return Err(Unsupported::Unknown(name())),
            },
        })
    }

    /// Appends what the type's output function prints for the value whose binary form is
    /// `raw`.
    pub(crate) fn print(&self, raw: &[u8], out: &mut String) -> Result<(), OutputError> {
        let bad = || OutputError::Malformed(self.name());
        let utf8 = |bytes| std::str::from_utf8(bytes).map_err(|_| bad());
        match self {
            Output::Bool => out.push_str(match raw {
                [0] => "f",
                [1] => "t",
                _ => return Err(bad()),
            }),
            Output::Int2 => {
                let value = i16::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                let _ = write!(out, "{value}");
            }
            Output::Int4 => {
                let value = i32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                let _ = write!(out, "{value}");
            }
            Output::Int8 => {
                let value = i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                let _ = write!(out, "{value}");
            }
            Output::UInt32 => {
                let value = u32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                let _ = write!(out, "{value}");
            }
            Output::UInt64 => {
                let value = u64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                let _ = write!(out, "{value}");
            }
            Output::Float4 => {
                push_float4(
                    out,
                    f32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            Output::Float8 => {
                push_float8(
                    out,
                    f64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            Output::Numeric => {
                let mut digits = Vec::new();
                let numeric = decimal::parse_binary(raw, &mut digits).ok_or_else(bad)?;
                decimal::format_text(out, numeric, &digits);
            }
            Output::Money { scale } => {
                let minor = i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                push_money(out, minor, *scale);
            }
            Output::Text => out.push_str(utf8(raw)?),
            Output::VersionedText => match raw {
                [1, text @ ..] => out.push_str(utf8(text)?),
                _ => return Err(bad()),
            },
            Output::Char => match raw {
                [byte] => formats::format_char(out, *byte),
                _ => return Err(bad()),
            },
            Output::Bytea => {
                out.push_str("\\x");
                for byte in raw {
                    let _ = write!(out, "{byte:02x}");
                }
            }
            Output::Uuid => {
                let bytes: [u8; 16] = binary_form::exact(raw).ok_or_else(bad)?;
                formats::format_uuid(out, &bytes);
            }
            Output::Date => {
                datetime::push_date(
                    out,
                    i32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            Output::Time => {
                datetime::push_time(out, temporal::time_of_binary(raw).ok_or_else(bad)?);
            }
            Output::TimeTz => {
                let (micros, offset_east) = temporal::timetz_of_binary(raw).ok_or_else(bad)?;
                datetime::push_timetz(out, micros, offset_east);
            }
            Output::Timestamp | Output::TimestampTz => {
                let micros = i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
                datetime::push_timestamp(out, micros, *self == Output::TimestampTz);
            }
            Output::Interval => {
                datetime::push_interval(out, Interval::of_binary(raw).ok_or_else(bad)?);
            }
            Output::Bits => formats::format_bits(out, raw).ok_or_else(bad)?,
            Output::Inet { cidr } => Address::of_binary(raw).ok_or_else(bad)?.format(out, *cidr),
            Output::MacAddr => {
                inet_macaddr::format_mac(out, &binary_form::exact::<6>(raw).ok_or_else(bad)?);
            }
            Output::MacAddr8 => {
                inet_macaddr::format_mac(out, &binary_form::exact::<8>(raw).ok_or_else(bad)?);
            }
            Output::PgLsn => formats::format_lsn(
                out,
                u64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
            ),
            Output::Tid => formats::format_tid(out, formats::tid_of_binary(raw).ok_or_else(bad)?),
            Output::HStore => containers::print_hstore(raw, out)?,
            Output::Geometric(shape) => shape.print(raw, out)?,
            Output::TsVector => tsearch::print_tsvector(raw, out)?,
            Output::TsQuery => tsearch::print_tsquery(raw, out)?,
            Output::Snapshot => print_snapshot(raw, out).ok_or_else(bad)?,
            Output::Vector(element) => containers::print_vector(element, raw, out)?,
            Output::Array { element, delimiter } => {
                containers::print_array(element, *delimiter, raw, out)?;
            }
            Output::Range(subtype) => containers::print_range(subtype, raw, out)?,
            Output::Multirange(subtype) => containers::print_multirange(subtype, raw, out)?,
            Output::Record(fields) => containers::print_record(fields, raw, out)?,
        }
        Ok(())
    }

    fn name(&self) -> &'static str {
        match self {
            Output::Bool => "bool",
            Output::Int2 => "int2",
            Output::Int4 => "int4",
            Output::Int8 => "int8",
            Output::UInt32 => "oid",
            Output::UInt64 => "xid8",
            Output::Float4 => "float4",
            Output::Float8 => "float8",
            Output::Numeric => "numeric",
            Output::Money { .. } => "money",
            Output::Text => "text",
            Output::VersionedText => "jsonb",
            Output::Char => "\"char\"",
            Output::Bytea => "bytea",
            Output::Uuid => "uuid",
            Output::Date => "date",
            Output::Time => "time",
            Output::TimeTz => "timetz",
            Output::Timestamp => "timestamp",
            Output::TimestampTz => "timestamptz",
            Output::Interval => "interval",
            Output::Bits => "bit",
            Output::Inet { .. } => "inet",
            Output::MacAddr => "macaddr",
            Output::MacAddr8 => "macaddr8",
            Output::PgLsn => "pg_lsn",
            Output::Tid => "tid",
            Output::HStore => "hstore",
            Output::Geometric(shape) => shape.name(),
            Output::TsVector => "tsvector",
            Output::TsQuery => "tsquery",
            Output::Snapshot => "pg_snapshot",
            Output::Vector(_) => "vector",
            Output::Array { .. } => "array",
            Output::Range(_) => "range",
            Output::Multirange(_) => "multirange",
            Output::Record(_) => "composite",
        }
    }
}

/// A money value of `minor` units at `scale` as `cash_out` prints it in the C locale (and
/// en_US): `$1,234.56`, `-$1,234.56`, `$0.00`. A database whose money prints otherwise has
/// [`TypeOptions::money_in_c_format`] false.
pub fn money_text(minor: i64, scale: u32) -> String {
    let mut out = String::new();
    push_money(&mut out, minor, scale);
    out
}

/// `cash_out` in the C locale: `$1,234.56`, `-$1,234.56`, `$0.00`, thousands grouped by
/// three; `scale` fraction digits.
fn push_money(out: &mut String, minor: i64, scale: u32) {
    let digits = minor.unsigned_abs().to_string();
    let scale = usize::try_from(scale).unwrap_or(0);
    // At least one whole digit.
    let digits = format!("{digits:0>width$}", width = scale + 1);
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    if minor < 0 {
        out.push('-');
    }
    out.push('$');
    for (i, digit) in whole.chars().enumerate() {
        if i > 0 && (whole.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
}

/// `pg_snapshot_send`: `int32` count of in-progress transactions, `int64` xmin and xmax,
/// then the in-progress ones; printed `xmin:xmax:xip,xip`.
fn print_snapshot(raw: &[u8], out: &mut String) -> Option<()> {
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32()?).ok()?;
    let (xmin, xmax) = (reader.u64()?, reader.u64()?);
    if count > reader.remaining() / 8 {
        return None;
    }
    let _ = write!(out, "{xmin}:{xmax}:");
    for i in 0..count {
        if i > 0 {
            out.push(',');
        }
        let _ = write!(out, "{}", reader.u64()?);
    }
    reader.end()
}
