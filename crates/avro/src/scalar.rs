//! One scalar value, encoded straight from PostgreSQL's text output or binary send form into
//! Avro. A value's text form and binary form give the same Avro bytes: each kind parses both
//! into the same fields and prints them with one function.

use crate::array;
use crate::binary_form::{self, BinaryReader};
use crate::decimal::{self, Numeric};
use crate::formats;
use crate::hstore;
use crate::inet_macaddr::{self, Address};
use crate::kind::{ColumnKind, Raw, ScalarKind, ValueError};
use crate::scratch::Scratch;
use crate::special::{Timestamp, write_money, write_time, write_timestamp, write_u64};
use crate::temporal::{self, Interval};
use crate::writer;

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
            Raw::Null => Err(ValueError::Unrepresentable("NULL")),
            Raw::Unchanged => ColumnKind::Scalar(self).encode_unchanged(out),
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
            ScalarKind::Int2Vector => array::int2vector_of_text(raw, out).ok_or_else(bad)?,
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
                let mac = inet_macaddr::parse_mac::<6>(text).ok_or_else(bad)?;
                scratch.string(out, |s| inet_macaddr::format_mac(s, &mac));
            }
            ScalarKind::MacAddr8 => {
                let mac = inet_macaddr::parse_mac::<8>(text).ok_or_else(bad)?;
                scratch.string(out, |s| inet_macaddr::format_mac(s, &mac));
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
                i32::from(i16::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?)),
            ),
            ScalarKind::Int32 => {
                writer::int(
                    out,
                    i32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            ScalarKind::Int64 => {
                writer::long(
                    out,
                    i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            ScalarKind::Float32 => {
                writer::float(
                    out,
                    f32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            ScalarKind::Float64 => {
                writer::double(
                    out,
                    f64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                );
            }
            ScalarKind::Decimal { .. }
            | ScalarKind::VariableDecimal
            | ScalarKind::NumericString => {
                let numeric = decimal::parse_binary(raw, &mut scratch.digits).ok_or_else(bad)?;
                self.encode_numeric(numeric, out, scratch)?;
            }
            ScalarKind::Money { .. } => {
                let minor = i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
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
                let bytes: [u8; 16] = binary_form::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| formats::format_uuid(s, &bytes));
            }
            ScalarKind::Date => {
                let days = i32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
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
                let value = match i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?) {
                    i64::MAX => Timestamp::Infinity,
                    i64::MIN => Timestamp::NegativeInfinity,
                    micros => Timestamp::Micros(temporal::since_1970(micros)),
                };
                write_timestamp(out, value, millis, scratch).ok_or_else(bad)?;
            }
            ScalarKind::TimestampTz => {
                let micros = i64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
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
            ScalarKind::Int2Vector => array::int2vector_of_binary(raw, out).ok_or_else(bad)?,
            ScalarKind::Point => {
                let mut reader = BinaryReader::new(raw);
                let (x, y) = (reader.f64(), reader.f64());
                reader.end().ok_or_else(bad)?;
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
                let mac: [u8; 6] = binary_form::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| inet_macaddr::format_mac(s, &mac));
            }
            ScalarKind::MacAddr8 => {
                let mac: [u8; 8] = binary_form::exact(raw).ok_or_else(bad)?;
                scratch.string(out, |s| inet_macaddr::format_mac(s, &mac));
            }
            ScalarKind::UInt32 => writer::long(
                out,
                i64::from(u32::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?)),
            ),
            ScalarKind::UInt64 => {
                write_u64(
                    out,
                    u64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?),
                    scratch,
                );
            }
            ScalarKind::PgLsn => {
                let lsn = u64::from_be_bytes(binary_form::exact(raw).ok_or_else(bad)?);
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
