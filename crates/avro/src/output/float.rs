//! `float4` and `float8` as PostgreSQL prints them (`float4out`, `float8out` with
//! `extra_float_digits` above 0, the default since PostgreSQL 12 and what sluice's sessions
//! use): the shortest digits that read back as the same value, in fixed notation for
//! decimal exponents from -4 up to 14 (`float4`: 5), else `d.ddde+XX`; `NaN`, `Infinity`,
//! `-Infinity`, `0` and `-0` spelled out.

use std::fmt::Write as _;

/// A `float8` as `float8out` prints it.
pub(crate) fn push_float8(out: &mut String, value: f64) {
    let special = Special::of(value.is_nan(), value.is_infinite(), value == 0.0);
    push_float(out, special, value.is_sign_negative(), &value.abs(), 15);
}

/// A `float4` as `float4out` prints it.
pub(crate) fn push_float4(out: &mut String, value: f32) {
    let special = Special::of(value.is_nan(), value.is_infinite(), value == 0.0);
    push_float(out, special, value.is_sign_negative(), &value.abs(), 6);
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Special {
    NaN,
    Infinite,
    Zero,
    Finite,
}

impl Special {
    fn of(nan: bool, infinite: bool, zero: bool) -> Self {
        match (nan, infinite, zero) {
            (true, ..) => Special::NaN,
            (_, true, _) => Special::Infinite,
            (_, _, true) => Special::Zero,
            _ => Special::Finite,
        }
    }
}

/// A float of magnitude `magnitude`, spelled out when special, else laid out in fixed
/// notation up to a decimal exponent of `fixed_below`.
fn push_float(
    out: &mut String,
    special: Special,
    negative: bool,
    magnitude: &dyn std::fmt::LowerExp,
    fixed_below: i32,
) {
    let sign = if negative { "-" } else { "" };
    match special {
        Special::NaN => out.push_str("NaN"),
        Special::Infinite => {
            out.push_str(sign);
            out.push_str("Infinity");
        }
        Special::Zero => {
            out.push_str(sign);
            out.push('0');
        }
        Special::Finite => {
            push_shortest(out, negative, format_args!("{magnitude:e}"), fixed_below);
        }
    }
}

/// Lays out the shortest round-trip digits of a finite, non-zero magnitude (Rust's `{:e}`
/// gives exactly those digits: `1.2345e-7`) as PostgreSQL's `to_chars` does.
fn push_shortest(
    out: &mut String,
    negative: bool,
    scientific: std::fmt::Arguments<'_>,
    fixed_below: i32,
) {
    let mut buffer = String::with_capacity(32);
    let _ = buffer.write_fmt(scientific);
    let (mantissa, exponent) = buffer.split_once('e').unwrap_or((buffer.as_str(), "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let (first, rest) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if negative {
        out.push('-');
    }
    if (-4..fixed_below).contains(&exponent) {
        let digits = first.len() + rest.len();
        if exponent < 0 {
            out.push_str("0.");
            for _ in 0..(-exponent - 1) {
                out.push('0');
            }
            out.push_str(first);
            out.push_str(rest);
        } else {
            // `exponent + 1` digits before the point, zero-filled when the digits run out.
            let whole = usize::try_from(exponent).unwrap_or(0) + 1;
            out.push_str(first);
            if digits <= whole {
                out.push_str(rest);
                for _ in digits..whole {
                    out.push('0');
                }
            } else {
                let (before, after) = rest.split_at(whole - first.len());
                out.push_str(before);
                out.push('.');
                out.push_str(after);
            }
        }
    } else {
        out.push_str(first);
        if !rest.is_empty() {
            out.push('.');
            out.push_str(rest);
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn float8(value: f64) -> String {
        let mut out = String::new();
        push_float8(&mut out, value);
        out
    }

    fn float4(value: f32) -> String {
        let mut out = String::new();
        push_float4(&mut out, value);
        out
    }

    /// Values and what PostgreSQL 15 prints for them (`SELECT x::float8`).
    #[test]
    fn floats_print_as_postgres_prints_them() {
        for (value, text) in [
            (1.5, "1.5"),
            (0.1, "0.1"),
            (-2.0, "-2"),
            (1e14, "100000000000000"),
            (1e15, "1e+15"),
            (123_456_789_012_345.6, "123456789012345.6"),
            (1_234_567_890_123_456.0, "1.234567890123456e+15"),
            (0.0001, "0.0001"),
            (0.00012345, "0.00012345"),
            (0.00001, "1e-05"),
            (1.7976931348623157e308, "1.7976931348623157e+308"),
            (5e-324, "5e-324"),
            (-1.5e-7, "-1.5e-07"),
            (f64::NAN, "NaN"),
            (f64::INFINITY, "Infinity"),
            (f64::NEG_INFINITY, "-Infinity"),
            (-0.0, "-0"),
            (0.0, "0"),
        ] {
            assert_eq!(float8(value), text, "{value:e}");
        }
        for (value, text) in [
            (1.5f32, "1.5"),
            (100_000.0, "100000"),
            (1_000_000.0, "1e+06"),
            (123_456.7, "123456.7"),
            (3.402_823_5e38, "3.4028235e+38"),
            (-1.5e-7, "-1.5e-07"),
            (0.1, "0.1"),
        ] {
            assert_eq!(float4(value), text, "{value:e}");
        }
    }
}
