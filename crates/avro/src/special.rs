//! Values whose Avro form takes more than a parse and a print: the stand-ins of what
//! Debezium's fields cannot hold (numeric NaN and ±Infinity, the last timestamps, xid8 past
//! 2^63 - 1), Debezium's milliseconds for `time(0..3)` and `timestamp(0..3)`, bit strings as
//! Debezium's `Bits`, and money's minor units.

use crate::decimal::{self, Numeric};
use crate::formats;
use crate::kind::ScalarKind;
use crate::scratch::Scratch;
use crate::temporal;
use crate::writer;

impl ScalarKind {
    /// A numeric NaN or ±Infinity in decimal mode, which no decimal holds: a stand-in just
    /// past what the column holds, in PostgreSQL's order (-Infinity below every number,
    /// Infinity above, NaN above Infinity): -10^L, 10^L and 2 × 10^L, where 10^L is the first
    /// magnitude the column cannot hold: unscaled 10^p for `numeric(p, s)`, 10^131072 for an
    /// unconstrained numeric (written as scale -131072). The value itself (`NaN`) goes to the
    /// event's `exact` field.
    pub(crate) fn encode_nonfinite(
        self,
        numeric: Numeric,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) {
        let (negative, leading) = match numeric {
            Numeric::NegativeInfinity => (true, b'1'),
            Numeric::NaN => (false, b'2'),
            Numeric::Infinity | Numeric::Finite { .. } => (false, b'1'),
        };
        scratch.digits.clear();
        scratch.digits.push(leading);
        match self {
            ScalarKind::Decimal { precision, .. } => scratch.digits.extend(std::iter::repeat_n(
                b'0',
                usize::try_from(precision).unwrap_or(0),
            )),
            _ => writer::int(out, -NUMERIC_STAND_IN_EXPONENT),
        }
        scratch.unscaled.clear();
        decimal::unscaled_bytes(negative, &scratch.digits, &mut scratch.unscaled);
        writer::bytes(out, &scratch.unscaled);
        decimal::format_text(scratch.exact.stand_in(), numeric, &[]);
    }

    /// A bit string (`0`s and `1`s) as Debezium's `Bits` (or boolean, at length 1); a varbit
    /// that starts with 0 (or is empty) goes to the exact field too.
    pub(crate) fn encode_bits(self, bits: &str, out: &mut Vec<u8>, scratch: &mut Scratch) {
        let ScalarKind::Bits { length, varying } = self else {
            return;
        };
        if length == 1 {
            writer::boolean(out, bits == "1");
        } else {
            formats::bits_as_number(bits, &mut scratch.unscaled);
            writer::bytes(out, &scratch.unscaled);
        }
        let ambiguous = bits.is_empty() || (length != 1 && bits.starts_with('0'));
        if varying && ambiguous {
            scratch.exact.lossy().push_str(bits);
        }
    }
}

/// PostgreSQL's numerics are below 10^131072 (131072 digits before the point at most).
const NUMERIC_STAND_IN_EXPONENT: i32 = 131_072;

/// A money value's minor-unit integer as its decimal's unscaled bytes.
pub(crate) fn write_money(out: &mut Vec<u8>, minor: i64, scratch: &mut Scratch) {
    scratch.unscaled.clear();
    decimal::unscaled_i64(minor, &mut scratch.unscaled);
    writer::bytes(out, &scratch.unscaled);
}

/// An unsigned 64-bit value as an Avro long. Past `i64::MAX` the long is its two's
/// complement (negative: `2^64 - 1` is -1), a stand-in no other value has, and the value
/// goes to the event's `exact` field.
pub(crate) fn write_u64(out: &mut Vec<u8>, value: u64, scratch: &mut Scratch) {
    let long = i64::from_ne_bytes(value.to_ne_bytes());
    if long < 0 {
        use std::fmt::Write as _;
        let _ = write!(scratch.exact.stand_in(), "{value}");
    }
    writer::long(out, long);
}

/// A `time` of `micros` since midnight: microseconds, or with `millis` milliseconds (a
/// `time(0)` to `time(3)` holds whole ones).
pub(crate) fn write_time(out: &mut Vec<u8>, micros: i64, millis: bool) {
    if millis {
        writer::int(out, i32::try_from(micros / 1000).unwrap_or(i32::MAX));
    } else {
        writer::long(out, micros);
    }
}

/// A `timestamp`: an infinity, or microseconds since 1970.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Timestamp {
    Infinity,
    NegativeInfinity,
    Micros(i128),
}

/// A `timestamp` as microseconds (see [`timestamp_micros`]) or with `millis` milliseconds
/// since 1970 (a `timestamp(0)` to `timestamp(3)` holds whole ones); the infinities as
/// `i64::MAX` and `i64::MIN` either way. `None` outside PostgreSQL's range.
pub(crate) fn write_timestamp(
    out: &mut Vec<u8>,
    value: Timestamp,
    millis: bool,
    scratch: &mut Scratch,
) -> Option<()> {
    let long = match value {
        Timestamp::Infinity => i64::MAX,
        Timestamp::NegativeInfinity => i64::MIN,
        Timestamp::Micros(micros) if millis => {
            if !temporal::timestamp_in_range(micros) {
                return None;
            }
            i64::try_from(micros.div_euclid(1000)).ok()?
        }
        Timestamp::Micros(micros) => timestamp_micros(micros, scratch)?,
    };
    writer::long(out, long);
    Some(())
}

/// A `MicroTimestamp` of `micros` since 1970, or `None` outside PostgreSQL's range.
/// PostgreSQL's timestamps from 294247-01-10 04:00:54.775807 on (`i64::MAX`, which stands
/// for `infinity`, and up) are stand-ins counted up from `i64::MIN + 1`, far below
/// PostgreSQL's first timestamp (4714 BC) and past `-infinity` (`i64::MIN`): the one of
/// `i64::MAX + n` is `i64::MIN + 1 + n`. The value goes to the event's `exact` field.
fn timestamp_micros(micros: i128, scratch: &mut Scratch) -> Option<i64> {
    if !temporal::timestamp_in_range(micros) {
        return None;
    }
    match i64::try_from(micros) {
        Ok(micros) if micros != i64::MAX => Some(micros),
        _ => {
            temporal::format_timestamp(scratch.exact.stand_in(), micros);
            let past = micros - i128::from(i64::MAX);
            i64::try_from(i128::from(i64::MIN) + 1 + past).ok()
        }
    }
}
