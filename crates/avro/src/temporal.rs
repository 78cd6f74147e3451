//! Dates and times between PostgreSQL's forms and Debezium's.
//!
//! PostgreSQL counts days and microseconds from 2000-01-01; Debezium's `Date`, `MicroTimestamp`
//! and `ZonedTimestamp` count from 1970-01-01 or print ISO-8601 in UTC. `time` is
//! microseconds since midnight (`MicroTime`), `timetz` an ISO time keeping its offset
//! (`ZonedTime`), `interval` an ISO-8601 duration (`Interval`). Text forms are PostgreSQL's
//! ISO output (`DateStyle` ISO, which pgoutput's walsender uses) and `IntervalStyle`
//! `postgres`, the default.

use crate::binary_form::BinaryReader;
use crate::formats::decimal;

/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;
pub(crate) const MICROS_PER_DAY: i64 = 86_400_000_000;
pub(crate) const MICROS_PER_HOUR: i64 = 3_600_000_000;
pub(crate) const MICROS_PER_MINUTE: i64 = 60_000_000;
/// The largest UTC offset PostgreSQL accepts: 15:59:59.
const MAX_OFFSET_SECONDS: i32 = (15 * 60 + 59) * 60 + 59;

/// Days since 1970-01-01 of a proleptic Gregorian date (astronomical year numbering:
/// 1 BC is year 0).
pub(crate) fn days_from_civil(year: i64, month: u32, day: u32) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let year_of_era = year.rem_euclid(400);
    let month = i64::from(month);
    let day_of_year =
        (153 * (if month > 2 { month - 3 } else { month + 9 }) + 2) / 5 + i64::from(day) - 1;
    let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
    era * 146_097 + day_of_era - 719_468
}

/// The date of a count of days since 1970-01-01: (year, month, day).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let day_of_era = z.rem_euclid(146_097);
    let year_of_era =
        (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + i64::from(month <= 2);
    (
        year,
        u32::try_from(month).unwrap_or(1),
        u32::try_from(day).unwrap_or(1),
    )
}

/// A date as PostgreSQL prints it: `2024-02-29`, `0044-03-15 BC`; days since 1970-01-01.
/// `None` for anything else, including `infinity`, which callers handle first.
pub(crate) fn parse_date(text: &str) -> Option<i64> {
    let (text, bc) = strip_bc(text);
    parse_ymd(text, bc)
}

/// Years PostgreSQL's dates and timestamps stay within (4714 BC to 5874897 AD), with room:
/// a year far beyond is no value PostgreSQL prints, and would overflow the day count.
const MAX_YEAR: i64 = 10_000_000;

fn parse_ymd(text: &str, bc: bool) -> Option<i64> {
    let (year, rest) = text.split_once('-')?;
    let (month, day) = rest.split_once('-')?;
    let year: i64 = decimal::<i64>(year).filter(|y| *y <= MAX_YEAR)?;
    let year = if bc { 1 - year } else { year };
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// A timestamp without time zone as PostgreSQL prints it, in microseconds since 1970. Wider
/// than `i64`: PostgreSQL's last timestamps (from 294247-01-10) are past `i64::MAX`
/// microseconds since 1970, though not since 2000.
pub(crate) fn parse_timestamp(text: &str) -> Option<i128> {
    let (text, bc) = strip_bc(text);
    let (date, time) = text.split_once(' ')?;
    let days = parse_ymd(date, bc)?;
    let micros = parse_time_of_day(time)?;
    Some(i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(micros))
}

/// A timestamp with time zone as PostgreSQL prints it (`2024-01-31 12:34:56.5+05:30`), in
/// microseconds since 1970 UTC (wider than `i64`, as [`parse_timestamp`]).
pub(crate) fn parse_timestamptz(text: &str) -> Option<i128> {
    let (text, bc) = strip_bc(text);
    let (date, time) = text.split_once(' ')?;
    let days = parse_ymd(date, bc)?;
    let sign_at = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(sign_at);
    let micros = parse_time_of_day(clock)?;
    let offset_seconds = parse_offset(offset)?;
    Some(
        i128::from(days) * i128::from(MICROS_PER_DAY) + i128::from(micros)
            - i128::from(offset_seconds) * 1_000_000,
    )
}

/// PostgreSQL's first timestamp, 4714-11-24 00:00:00 BC, in microseconds since 1970.
const FIRST_TIMESTAMP: i128 = -210_866_803_200_000_000;
/// The microsecond after PostgreSQL's last timestamp (294276-12-31 23:59:59.999999), since
/// 1970.
const END_TIMESTAMP: i128 = 9_224_318_016_000_000_000;

/// Whether `micros` since 1970 is a timestamp PostgreSQL holds (infinities aside).
pub(crate) fn timestamp_in_range(micros: i128) -> bool {
    (FIRST_TIMESTAMP..END_TIMESTAMP).contains(&micros)
}

/// A timestamp as PostgreSQL prints it (`DateStyle` ISO): `294276-12-31 23:59:59.999999`,
/// `2024-02-29 12:00:00.5`, `4714-11-24 00:00:00 BC`.
pub(crate) fn format_timestamp(out: &mut String, micros: i128) {
    let ((year, month, day), in_day) = date_and_time(micros);
    // Astronomical year 0 is 1 BC.
    let bc = year <= 0;
    push_padded(out, if bc { 1 - year } else { year }.unsigned_abs(), 4);
    push_month_day(out, month, day);
    out.push(' ');
    format_time_of_day(out, in_day);
    if bc {
        out.push_str(" BC");
    }
}

/// PostgreSQL's microseconds since 2000 as microseconds since 1970.
pub(crate) fn since_1970(pg_micros: i64) -> i128 {
    i128::from(pg_micros) + i128::from(PG_EPOCH_MICROS)
}

fn strip_bc(text: &str) -> (&str, bool) {
    match text.strip_suffix(" BC") {
        Some(rest) => (rest, true),
        None => (text, false),
    }
}

/// `HH:MM:SS[.ffffff]` in microseconds; 24:00:00 is allowed, as PostgreSQL allows it.
fn parse_time_of_day(text: &str) -> Option<i64> {
    let mut parts = text.splitn(3, ':');
    let hours = decimal::<i64>(parts.next()?)?;
    let minutes = decimal::<i64>(parts.next()?)?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole = decimal::<i64>(whole)?;
    if hours > 24 || minutes > 59 || whole > 60 {
        return None;
    }
    Some(((hours * 60 + minutes) * 60 + whole) * 1_000_000 + parse_fraction(fraction)?)
}

/// Up to six fractional digits of a second, in microseconds (`"5"` is 500000).
fn parse_fraction(digits: &str) -> Option<i64> {
    if digits.len() > 6 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let mut micros = 0;
    for position in 0..6 {
        let digit = digits.as_bytes().get(position).map_or(0, |d| d - b'0');
        micros = micros * 10 + i64::from(digit);
    }
    Some(micros)
}

/// `+05`, `-03:30`, `+05:53:28` in seconds east of UTC.
fn parse_offset(text: &str) -> Option<i64> {
    let (sign, rest) = match text.as_bytes().first()? {
        b'+' => (1, &text[1..]),
        b'-' => (-1, &text[1..]),
        _ => return None,
    };
    let mut seconds = 0;
    let mut unit = 3600;
    for part in rest.split(':') {
        if unit == 0 || part.len() > 2 {
            return None;
        }
        seconds += decimal::<i64>(part)? * unit;
        unit /= 60;
    }
    Some(sign * seconds)
}

/// A `time` as PostgreSQL prints it (`HH:MM:SS[.ffffff]`, up to `24:00:00`), in
/// microseconds since midnight.
pub(crate) fn parse_time(text: &str) -> Option<i64> {
    parse_time_of_day(text).filter(|micros| valid_time(*micros))
}

/// A `time`'s binary form: `int64` microseconds since midnight, up to `24:00:00`.
pub(crate) fn time_of_binary(raw: &[u8]) -> Option<i64> {
    let micros = i64::from_be_bytes(crate::binary_form::exact(raw)?);
    valid_time(micros).then_some(micros)
}

/// Whether `micros` since midnight is a `time` value: `00:00:00` to `24:00:00` inclusive.
pub(crate) fn valid_time(micros: i64) -> bool {
    (0..=MICROS_PER_DAY).contains(&micros)
}

/// A `timetz` as PostgreSQL prints it (`12:34:56.789+05:30`, `24:00:00-15:59`,
/// `10:15:30-03:30:15`): microseconds since midnight and the offset in seconds east of UTC.
pub(crate) fn parse_timetz(text: &str) -> Option<(i64, i32)> {
    let sign_at = text.rfind(['+', '-'])?;
    let (clock, offset) = text.split_at(sign_at);
    let offset = i32::try_from(parse_offset(offset)?).ok()?;
    Some((parse_time(clock)?, offset)).filter(|_| offset.abs() <= MAX_OFFSET_SECONDS)
}

/// A `timetz`'s binary form: `int64` microseconds since midnight and `int32` zone in
/// seconds *west* of UTC, as PostgreSQL keeps it; returns the microseconds and the offset
/// east of UTC, as printed.
pub(crate) fn timetz_of_binary(raw: &[u8]) -> Option<(i64, i32)> {
    let mut reader = BinaryReader::new(raw);
    let (micros, zone_west) = (reader.i64()?, reader.i32()?);
    reader.end()?;
    let offset = zone_west.checked_neg()?;
    (valid_time(micros) && offset.abs() <= MAX_OFFSET_SECONDS).then_some((micros, offset))
}

/// Debezium's `ZonedTime` form, keeping the offset the value was written with:
/// `10:15:30.123456+05:30`, `00:00:00Z`, `10:15:30-03:30:15`. The fraction drops trailing
/// zeros and a zero offset is `Z`, as Java's `ISO_OFFSET_TIME` prints them.
pub(crate) fn format_zoned_time(out: &mut String, micros: i64, offset_east: i32) {
    use std::fmt::Write as _;
    format_time_of_day(out, micros);
    if offset_east == 0 {
        out.push('Z');
        return;
    }
    let sign = if offset_east < 0 { '-' } else { '+' };
    let offset = offset_east.unsigned_abs();
    let _ = write!(out, "{sign}{:02}:{:02}", offset / 3600, offset / 60 % 60);
    if !offset.is_multiple_of(60) {
        let _ = write!(out, ":{:02}", offset % 60);
    }
}

/// An `interval` as PostgreSQL keeps it: three fields never converted into one another.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Interval {
    pub(crate) months: i32,
    pub(crate) days: i32,
    pub(crate) micros: i64,
}

impl Interval {
    /// The binary form: `int64` microseconds, `int32` days, `int32` months.
    pub(crate) fn of_binary(raw: &[u8]) -> Option<Interval> {
        let mut reader = BinaryReader::new(raw);
        let micros = reader.i64()?;
        let days = reader.i32()?;
        let months = reader.i32()?;
        reader.end()?;
        Some(Interval {
            months,
            days,
            micros,
        })
    }

    /// PostgreSQL 17's `infinity` and `-infinity` in the binary form: every field at its
    /// extreme (a finite interval before PostgreSQL 17).
    pub(crate) const INFINITY: Interval = Interval {
        months: i32::MAX,
        days: i32::MAX,
        micros: i64::MAX,
    };
    pub(crate) const NEG_INFINITY: Interval = Interval {
        months: i32::MIN,
        days: i32::MIN,
        micros: i64::MIN,
    };
}

/// An `interval` in `IntervalStyle` `postgres` output (the default, and what the walsender
/// uses): `1 year 2 mons -3 days +04:05:06.78`, `-00:00:01.5`, `178000000 years`,
/// `00:00:00`; not PostgreSQL 17's `infinity` and `-infinity`, which callers take first.
pub(crate) fn parse_interval(text: &str) -> Option<Interval> {
    let (mut months, mut days, mut micros) = (0i64, 0i64, None);
    let mut tokens = text.split(' ');
    while let Some(token) = tokens.next() {
        if token.contains(':') {
            if micros.is_some() {
                return None;
            }
            micros = Some(parse_interval_time(token)?);
            continue;
        }
        let (negative, digits) = split_sign(token);
        let magnitude = decimal::<i64>(digits)?;
        let value = if negative { -magnitude } else { magnitude };
        match tokens.next()? {
            "year" | "years" => months = months.checked_add(value.checked_mul(12)?)?,
            "mon" | "mons" => months = months.checked_add(value)?,
            "day" | "days" => days = days.checked_add(value)?,
            _ => return None,
        }
    }
    if text.is_empty() {
        return None;
    }
    Some(Interval {
        months: i32::try_from(months).ok()?,
        days: i32::try_from(days).ok()?,
        micros: micros.unwrap_or(0),
    })
}

fn split_sign(token: &str) -> (bool, &str) {
    match token.as_bytes().first() {
        Some(b'-') => (true, &token[1..]),
        Some(b'+') => (false, &token[1..]),
        _ => (false, token),
    }
}

/// `[+-]H:MM:SS[.ffffff]`, hours unbounded (up to 2562047788), in microseconds.
fn parse_interval_time(token: &str) -> Option<i64> {
    let (negative, clock) = split_sign(token);
    let mut parts = clock.splitn(3, ':');
    let hours = i128::from(decimal::<i64>(parts.next()?)?);
    let minutes = i128::from(decimal::<i64>(parts.next()?)?);
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole = i128::from(decimal::<i64>(whole)?);
    if minutes > 59 || whole > 59 {
        return None;
    }
    let magnitude =
        ((hours * 60 + minutes) * 60 + whole) * 1_000_000 + i128::from(parse_fraction(fraction)?);
    i64::try_from(if negative { -magnitude } else { magnitude }).ok()
}

/// Debezium's `Interval` form, ISO-8601 with every component present and signed on its own:
/// `P1Y2M3DT4H5M6.78S`, `P0Y0M-1DT2H3M0S`, zero as `P0Y0M0DT0H0M0S`. Months become years and
/// months, microseconds hours, minutes and seconds (fixed ratios); months, days and time
/// are never converted into one another, as their lengths vary. Seconds drop trailing
/// fractional zeros. With `infinities` (PostgreSQL 17 on), the all-extreme values are
/// `infinity` and `-infinity`.
pub(crate) fn format_interval(out: &mut String, interval: Interval, infinities: bool) {
    use std::fmt::Write as _;
    match interval {
        Interval::INFINITY if infinities => return out.push_str("infinity"),
        Interval::NEG_INFINITY if infinities => return out.push_str("-infinity"),
        _ => {}
    }
    let Interval {
        months,
        days,
        micros,
    } = interval;
    let seconds = micros % MICROS_PER_MINUTE;
    let _ = write!(
        out,
        "P{}Y{}M{days}DT{}H{}M{}{}",
        months / 12,
        months % 12,
        micros / MICROS_PER_HOUR,
        micros / MICROS_PER_MINUTE % 60,
        if seconds < 0 { "-" } else { "" },
        seconds.unsigned_abs() / 1_000_000,
    );
    push_fraction(
        out,
        i64::try_from(seconds.unsigned_abs() % 1_000_000).unwrap_or(0),
    );
    out.push('S');
}

/// Debezium's `ZonedTimestamp` form of microseconds since 1970 UTC:
/// `2024-01-31T12:34:56.123456Z`, the fraction without trailing zeros, years past 9999 with
/// a `+` and years before 1 (astronomical) with a `-`, as Java's ISO formatter prints them.
pub(crate) fn format_zoned_timestamp(out: &mut String, micros: i128) {
    let ((year, month, day), in_day) = date_and_time(micros);
    if year > 9999 {
        use std::fmt::Write as _;
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        out.push('-');
        push_padded(out, year.unsigned_abs(), 4);
    } else {
        push_padded(out, year.unsigned_abs(), 4);
    }
    push_month_day(out, month, day);
    out.push('T');
    format_time_of_day(out, in_day);
    out.push('Z');
}

/// The date (year, month, day) of `micros` since 1970 and the microseconds into its day.
fn date_and_time(micros: i128) -> ((i64, u32, u32), i64) {
    let day = i128::from(MICROS_PER_DAY);
    let days = i64::try_from(micros.div_euclid(day)).unwrap_or(i64::MAX);
    let in_day = i64::try_from(micros.rem_euclid(day)).unwrap_or(0);
    (civil_from_days(days), in_day)
}

/// `-MM-DD`.
fn push_month_day(out: &mut String, month: u32, day: u32) {
    out.push('-');
    push_padded(out, u64::from(month), 2);
    out.push('-');
    push_padded(out, u64::from(day), 2);
}

/// `HH:MM:SS` and, when not zero, a fraction without trailing zeros (`.5`, `.000001`), as
/// both PostgreSQL and Java's ISO formatter print a time of day. `micros` is in `0..=24h`.
pub(crate) fn format_time_of_day(out: &mut String, micros: i64) {
    let seconds = micros.unsigned_abs() / 1_000_000;
    push_padded(out, seconds / 3600, 2);
    out.push(':');
    push_padded(out, seconds / 60 % 60, 2);
    out.push(':');
    push_padded(out, seconds % 60, 2);
    push_fraction(out, micros % 1_000_000);
}

/// `value` in decimal, zero-padded to `width` digits (more digits when it needs them): what
/// `{:0width$}` prints, without the formatting machinery, which showed in profiles of
/// timestamp-heavy streams.
pub(crate) fn push_padded(out: &mut String, value: u64, width: usize) {
    let mut digits = [b'0'; 20];
    let mut rest = value;
    let mut start = digits.len();
    while rest > 0 || digits.len() - start < width {
        start -= 1;
        if let Some(slot) = digits.get_mut(start) {
            // `rest % 10` is a single digit.
            *slot = b'0' + u8::try_from(rest % 10).unwrap_or(0);
        }
        rest /= 10;
        if start == 0 {
            break;
        }
    }
    for &digit in digits.get(start..).unwrap_or_default() {
        out.push(char::from(digit));
    }
}

/// `.ffffff` without trailing zeros, or nothing for 0; `micros` is in `0..1_000_000`.
pub(crate) fn push_fraction(out: &mut String, micros: i64) {
    if micros == 0 {
        return;
    }
    out.push('.');
    let mut divisor = 100_000;
    let mut rest = micros;
    while rest != 0 && divisor != 0 {
        let digit = u8::try_from(rest / divisor).unwrap_or(0);
        out.push(char::from(b'0' + digit));
        rest %= divisor;
        divisor /= 10;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_dates_round_trip_through_day_counts() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(2000, 1, 1), PG_EPOCH_DAYS);
        assert_eq!(days_from_civil(2024, 2, 29), 19_782);
        for days in (-800_000..3_000_000).step_by(997) {
            let (y, m, d) = civil_from_days(days);
            assert_eq!(days_from_civil(y, m, d), days);
        }
    }

    #[test]
    fn postgres_text_forms_parse() {
        assert_eq!(parse_date("2024-02-29"), Some(19_782));
        assert_eq!(parse_date("0001-01-01 BC"), Some(days_from_civil(0, 1, 1)));
        assert_eq!(parse_date("2024-13-01"), None);
        assert_eq!(
            parse_timestamp("2000-01-01 00:00:00.5"),
            Some(i128::from(PG_EPOCH_MICROS + 500_000))
        );
        assert_eq!(
            parse_timestamp("1970-01-01 24:00:00"),
            Some(i128::from(MICROS_PER_DAY))
        );
        assert_eq!(
            parse_timestamptz("2000-01-01 05:30:00+05:30"),
            Some(i128::from(PG_EPOCH_MICROS))
        );
        assert_eq!(
            parse_timestamptz("1999-12-31 23:00:00-01"),
            Some(i128::from(PG_EPOCH_MICROS))
        );
        assert_eq!(parse_timestamptz("2000-01-01 00:00:00"), None);
    }

    #[test]
    fn the_all_extreme_intervals_are_infinities_from_postgres_17_on() {
        for (interval, infinite, finite) in [
            (
                Interval::INFINITY,
                "infinity",
                "P178956970Y7M2147483647DT2562047788H0M54.775807S",
            ),
            (
                Interval::NEG_INFINITY,
                "-infinity",
                "P-178956970Y-8M-2147483648DT-2562047788H0M-54.775808S",
            ),
        ] {
            for (infinities, expected) in [(true, infinite), (false, finite)] {
                let mut out = String::new();
                format_interval(&mut out, interval, infinities);
                assert_eq!(out, expected);
            }
        }
    }

    #[test]
    fn zoned_timestamps_print_as_debezium_does() {
        let cases = [
            (0, "1970-01-01T00:00:00Z"),
            (PG_EPOCH_MICROS + 123_450, "2000-01-01T00:00:00.12345Z"),
            (-1, "1969-12-31T23:59:59.999999Z"),
        ];
        for (micros, expected) in cases {
            let mut out = String::new();
            format_zoned_timestamp(&mut out, i128::from(micros));
            assert_eq!(out, expected);
        }
    }

    #[test]
    fn padded_numbers_print_as_the_formatter_does() {
        for value in [
            0,
            1,
            9,
            10,
            99,
            100,
            999,
            1000,
            9999,
            10_000,
            123_456,
            u64::MAX,
        ] {
            for width in [1, 2, 4] {
                let mut out = String::new();
                push_padded(&mut out, value, width);
                assert_eq!(out, format!("{value:0width$}"), "{value} to {width}");
            }
        }
    }

    proptest::proptest! {
        #[test]
        fn zoned_timestamps_match_their_calendar_fields(
            micros in -100_000_000_000_000_000i64..300_000_000_000_000_000
        ) {
            let mut out = String::new();
            format_zoned_timestamp(&mut out, i128::from(micros));
            let day = MICROS_PER_DAY;
            let (year, month, dom) = civil_from_days(micros.div_euclid(day));
            let in_day = micros.rem_euclid(day);
            let seconds = in_day / 1_000_000;
            let year = if year > 9999 {
                format!("+{year}")
            } else if year < 0 {
                format!("-{:04}", -year)
            } else {
                format!("{year:04}")
            };
            let mut fraction = format!("{:06}", in_day % 1_000_000);
            while fraction.ends_with('0') {
                fraction.pop();
            }
            let fraction = if fraction.is_empty() { String::new() } else { format!(".{fraction}") };
            let expected = format!(
                "{year}-{month:02}-{dom:02}T{:02}:{:02}:{:02}{fraction}Z",
                seconds / 3600,
                seconds / 60 % 60,
                seconds % 60
            );
            proptest::prop_assert_eq!(out, expected);
        }
    }
}
