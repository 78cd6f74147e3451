//! Dates and times between PostgreSQL's forms and Debezium's.
//!
//! PostgreSQL counts days and microseconds from 2000-01-01; Debezium's `Date`, `MicroTimestamp`
//! and `ZonedTimestamp` count from 1970-01-01 or print ISO-8601 in UTC. Text forms are
//! PostgreSQL's ISO output (`DateStyle` ISO, which pgoutput's walsender uses).

/// Days from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_DAYS: i64 = 10_957;
/// Microseconds from 1970-01-01 to 2000-01-01.
pub(crate) const PG_EPOCH_MICROS: i64 = PG_EPOCH_DAYS * MICROS_PER_DAY;
const MICROS_PER_DAY: i64 = 86_400_000_000;

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

fn parse_ymd(text: &str, bc: bool) -> Option<i64> {
    let (year, rest) = text.split_once('-')?;
    let (month, day) = rest.split_once('-')?;
    let year: i64 = year.parse().ok()?;
    let year = if bc { 1 - year } else { year };
    let (month, day): (u32, u32) = (month.parse().ok()?, day.parse().ok()?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) {
        return None;
    }
    Some(days_from_civil(year, month, day))
}

/// A timestamp without time zone as PostgreSQL prints it, in microseconds since 1970.
pub(crate) fn parse_timestamp(text: &str) -> Option<i64> {
    let (text, bc) = strip_bc(text);
    let (date, time) = text.split_once(' ')?;
    let days = parse_ymd(date, bc)?;
    let micros = parse_time_of_day(time)?;
    days.checked_mul(MICROS_PER_DAY)?.checked_add(micros)
}

/// A timestamp with time zone as PostgreSQL prints it (`2024-01-31 12:34:56.5+05:30`), in
/// microseconds since 1970 UTC.
pub(crate) fn parse_timestamptz(text: &str) -> Option<i64> {
    let (text, bc) = strip_bc(text);
    let (date, time) = text.split_once(' ')?;
    let days = parse_ymd(date, bc)?;
    let sign_at = time.rfind(['+', '-'])?;
    let (clock, offset) = time.split_at(sign_at);
    let micros = parse_time_of_day(clock)?;
    let offset_seconds = parse_offset(offset)?;
    days.checked_mul(MICROS_PER_DAY)?
        .checked_add(micros)?
        .checked_sub(offset_seconds * 1_000_000)
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
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds = parts.next()?;
    let (whole, fraction) = seconds.split_once('.').unwrap_or((seconds, ""));
    let whole: i64 = whole.parse().ok()?;
    if fraction.len() > 6 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction: i64 = if fraction.is_empty() {
        0
    } else {
        format!("{fraction:0<6}").parse().ok()?
    };
    if hours > 24 || minutes > 59 || whole > 60 {
        return None;
    }
    Some(((hours * 60 + minutes) * 60 + whole) * 1_000_000 + fraction)
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
        if unit == 0 {
            return None;
        }
        seconds += part.parse::<i64>().ok()? * unit;
        unit /= 60;
    }
    Some(sign * seconds)
}

/// Debezium's `ZonedTimestamp` form of microseconds since 1970 UTC:
/// `2024-01-31T12:34:56.123456Z`, the fraction without trailing zeros, years past 9999 with
/// a `+` and years before 1 (astronomical) with a `-`, as Java's ISO formatter prints them.
pub(crate) fn format_zoned_timestamp(out: &mut String, micros: i64) {
    use std::fmt::Write as _;
    let days = micros.div_euclid(MICROS_PER_DAY);
    let in_day = micros.rem_euclid(MICROS_PER_DAY);
    let (year, month, day) = civil_from_days(days);
    if year > 9999 {
        let _ = write!(out, "+{year}");
    } else if year < 0 {
        let _ = write!(out, "-{:04}", -year);
    } else {
        let _ = write!(out, "{year:04}");
    }
    let seconds = in_day / 1_000_000;
    let fraction = in_day % 1_000_000;
    let _ = write!(
        out,
        "-{month:02}-{day:02}T{:02}:{:02}:{:02}",
        seconds / 3600,
        seconds / 60 % 60,
        seconds % 60
    );
    if fraction != 0 {
        let digits = format!("{fraction:06}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('Z');
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
            Some(PG_EPOCH_MICROS + 500_000)
        );
        assert_eq!(parse_timestamp("1970-01-01 24:00:00"), Some(MICROS_PER_DAY));
        assert_eq!(
            parse_timestamptz("2000-01-01 05:30:00+05:30"),
            Some(PG_EPOCH_MICROS)
        );
        assert_eq!(
            parse_timestamptz("1999-12-31 23:00:00-01"),
            Some(PG_EPOCH_MICROS)
        );
        assert_eq!(parse_timestamptz("2000-01-01 00:00:00"), None);
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
            format_zoned_timestamp(&mut out, micros);
            assert_eq!(out, expected);
        }
    }
}
