//! Dates and times as PostgreSQL prints them with `DateStyle = ISO` and
//! `IntervalStyle = postgres` (`EncodeDateOnly`, `EncodeTimeOnly`, `EncodeDateTime`,
//! `EncodeInterval`), from their binary forms; `timestamptz` in UTC, sluice's sessions' zone.

use std::fmt::Write as _;

use crate::temporal::{
    self, Interval, MICROS_PER_DAY, MICROS_PER_HOUR, MICROS_PER_MINUTE, PG_EPOCH_DAYS,
    civil_from_days, push_padded,
};

/// A `date` (days since 2000-01-01): `2024-02-29`, `0044-03-15 BC`, `infinity`.
pub(crate) fn push_date(out: &mut String, days: i32) {
    match days {
        i32::MAX => out.push_str("infinity"),
        i32::MIN => out.push_str("-infinity"),
        _ => {
            let bc = push_ymd(out, i64::from(days) + PG_EPOCH_DAYS);
            if bc {
                out.push_str(" BC");
            }
        }
    }
}

/// `YYYY-MM-DD` of a day since 1970, the year of an era (at least four digits); whether it
/// is BC (the caller appends ` BC` after whatever follows the date).
fn push_ymd(out: &mut String, days_since_1970: i64) -> bool {
    let (year, month, day) = civil_from_days(days_since_1970);
    // Astronomical year 0 is 1 BC.
    let bc = year <= 0;
    let shown = if bc { 1 - year } else { year };
    push_padded(out, shown.unsigned_abs(), 4);
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
    bc
}

/// A `time` (microseconds since midnight, up to `24:00:00`): `12:34:56.789`.
pub(crate) fn push_time(out: &mut String, micros: i64) {
    temporal::format_time_of_day(out, micros);
}

/// A `timetz`: the time and its offset (seconds east of UTC): `12:34:56+05:30`,
/// `00:00:00+00`, `10:15:30-03:30:15`.
pub(crate) fn push_timetz(out: &mut String, micros: i64, offset_east: i32) {
    temporal::format_time_of_day(out, micros);
    push_zone(out, offset_east);
}

/// `EncodeTimezone`: `+HH`, `+HH:MM` or `+HH:MM:SS`.
fn push_zone(out: &mut String, offset_east: i32) {
    out.push(if offset_east >= 0 { '+' } else { '-' });
    let seconds = offset_east.unsigned_abs();
    push_padded(out, u64::from(seconds / 3600), 2);
    if !seconds.is_multiple_of(3600) {
        out.push(':');
        push_padded(out, u64::from(seconds / 60 % 60), 2);
        if !seconds.is_multiple_of(60) {
            out.push(':');
            push_padded(out, u64::from(seconds % 60), 2);
        }
    }
}

/// A `timestamp` or, `zoned`, a `timestamptz` in UTC (microseconds since 2000-01-01):
/// `2024-02-29 12:00:00.5`, `2024-02-29 12:00:00+00`, `4714-11-24 00:00:00+00 BC`,
/// `infinity`.
pub(crate) fn push_timestamp(out: &mut String, micros: i64, zoned: bool) {
    match micros {
        i64::MAX => return out.push_str("infinity"),
        i64::MIN => return out.push_str("-infinity"),
        _ => {}
    }
    let days = micros.div_euclid(MICROS_PER_DAY) + PG_EPOCH_DAYS;
    let bc = push_ymd(out, days);
    out.push(' ');
    temporal::format_time_of_day(out, micros.rem_euclid(MICROS_PER_DAY));
    if zoned {
        out.push_str("+00");
    }
    if bc {
        out.push_str(" BC");
    }
}

/// An `interval` in `IntervalStyle = postgres`: year, mon and day parts when not zero (a `+`
/// on a positive part after a negative one), then the time when it is not zero or nothing
/// else was printed, signed as a whole: `1 year 2 mons -3 days +04:05:06.78`, `00:00:00`,
/// `-00:00:01.5`; PostgreSQL 17's `infinity` and `-infinity`.
pub(crate) fn push_interval(out: &mut String, interval: Interval) {
    match interval {
        Interval::INFINITY => return out.push_str("infinity"),
        Interval::NEG_INFINITY => return out.push_str("-infinity"),
        _ => {}
    }
    let (mut is_zero, mut is_before) = (true, false);
    let months = interval.months;
    for (value, unit) in [
        (months / 12, "year"),
        (months % 12, "mon"),
        (interval.days, "day"),
    ] {
        if value == 0 {
            continue;
        }
        let space = if is_zero { "" } else { " " };
        let plus = if is_before && value > 0 { "+" } else { "" };
        let plural = if value == 1 { "" } else { "s" };
        let _ = write!(out, "{space}{plus}{value} {unit}{plural}");
        is_zero = false;
        is_before = value < 0;
    }
    let micros = interval.micros;
    if is_zero || micros != 0 {
        if !is_zero {
            out.push(' ');
        }
        if micros < 0 {
            out.push('-');
        } else if is_before {
            out.push('+');
        }
        let magnitude = micros.unsigned_abs();
        let hour = u64::try_from(MICROS_PER_HOUR).unwrap_or(1);
        let minute = u64::try_from(MICROS_PER_MINUTE).unwrap_or(1);
        push_padded(out, magnitude / hour, 2);
        out.push(':');
        push_padded(out, magnitude / minute % 60, 2);
        out.push(':');
        push_padded(out, magnitude / 1_000_000 % 60, 2);
        temporal::push_fraction(out, i64::try_from(magnitude % 1_000_000).unwrap_or(0));
    }
}
