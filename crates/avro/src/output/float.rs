//! `float4` and `float8` as PostgreSQL prints them (`float4out`, `float8out` with
//! `extra_float_digits` above 0, the default since PostgreSQL 12 and what sluice's sessions
//! use): the shortest digits strictly inside the value's rounding interval (PostgreSQL builds
//! its Ryu with `STRICTLY_SHORTEST` 0: a decimal exactly halfway to the next float is never
//! printed, even where reading it back would round to the value), the closest of them to the
//! value, ties to an even last digit; in fixed notation for decimal exponents from -4 up to
//! 14 (`float4`: 5), else `d.ddde+XX`; `NaN`, `Infinity`, `-Infinity`, `0` and `-0` spelled
//! out.
//!
//! The digits come from exact integer arithmetic (Steele and White's free-format method, on a
//! small unsigned big integer), not from Rust's formatter, which accepts those halfway
//! decimals and rounds ties up.

use std::cmp::Ordering;
use std::fmt::Write as _;

/// A `float8` as `float8out` prints it.
pub(crate) fn push_float8(out: &mut String, value: f64) {
    let bits = value.to_bits();
    let fields = Fields {
        negative: value.is_sign_negative(),
        exponent_bits: u32::try_from(bits >> 52 & 0x7ff).unwrap_or(0),
        fraction: bits & ((1 << 52) - 1),
        fraction_bits: 52,
        bias: 1023,
        exponent_max: 0x7ff,
    };
    push_float(out, fields, 15);
}

/// A `float4` as `float4out` prints it.
pub(crate) fn push_float4(out: &mut String, value: f32) {
    let bits = value.to_bits();
    let fields = Fields {
        negative: value.is_sign_negative(),
        exponent_bits: bits >> 23 & 0xff,
        fraction: u64::from(bits & ((1 << 23) - 1)),
        fraction_bits: 23,
        bias: 127,
        exponent_max: 0xff,
    };
    push_float(out, fields, 6);
}

/// An IEEE 754 binary float's fields.
#[derive(Clone, Copy)]
struct Fields {
    negative: bool,
    exponent_bits: u32,
    fraction: u64,
    fraction_bits: u32,
    bias: i32,
    exponent_max: u32,
}

/// A float spelled out when special, else its shortest digits laid out in fixed notation for
/// decimal exponents from -4 up to `fixed_below` (exclusive), in scientific notation beyond.
fn push_float(out: &mut String, fields: Fields, fixed_below: i32) {
    let sign = if fields.negative { "-" } else { "" };
    if fields.exponent_bits == fields.exponent_max {
        if fields.fraction != 0 {
            out.push_str("NaN");
        } else {
            out.push_str(sign);
            out.push_str("Infinity");
        }
        return;
    }
    if fields.exponent_bits == 0 && fields.fraction == 0 {
        out.push_str(sign);
        out.push('0');
        return;
    }
    let (digits, exponent) = shortest(fields);
    out.push_str(sign);
    lay_out(out, &digits, exponent, fixed_below);
}

/// The shortest decimal digits strictly inside the rounding interval of a finite, non-zero
/// float, closest to its value (ties to even), and the decimal exponent of the first digit.
fn shortest(fields: Fields) -> (Vec<u8>, i32) {
    let subnormal = fields.exponent_bits == 0;
    let mantissa = if subnormal {
        fields.fraction
    } else {
        fields.fraction | 1 << fields.fraction_bits
    };
    let exponent_bits = i32::try_from(fields.exponent_bits).unwrap_or(0).max(1);
    // value = mantissa × 2^e.
    let e = exponent_bits - fields.bias - i32::try_from(fields.fraction_bits).unwrap_or(0);
    // The interval's halves: to the next float up, and down (half as far at a power of two,
    // where the float below is closer).
    let closer_below = !subnormal && fields.fraction == 0 && fields.exponent_bits > 1;
    // value = r / s, high bound (r + plus) / s, low bound (r - minus) / s: half a step up and
    // down (a quarter down where the float below is closer), scaled to keep them integers.
    let scale_up = u32::from(closer_below);
    let mut r = Big::from(mantissa);
    r.shl(1 + scale_up);
    let mut s = Big::from(1);
    s.shl(1 + scale_up);
    let mut plus = Big::from(1);
    plus.shl(scale_up);
    let mut minus = Big::from(1);
    if e >= 0 {
        let shift = u32::try_from(e).unwrap_or(0);
        r.shl(shift);
        plus.shl(shift);
        minus.shl(shift);
    } else {
        s.shl(e.unsigned_abs());
    }
    // First guess of k, with 10^(k-1) <= high < 10^k (log10(2) as 78913 / 2^18, as Ryu has
    // it); corrected below.
    let bits = i32::try_from(64 - mantissa.leading_zeros()).unwrap_or(64);
    let guess = (i64::from(e + bits - 1) * 78_913).div_euclid(1 << 18) + 1;
    let mut k = i32::try_from(guess).unwrap_or(0);
    if k >= 0 {
        s.mul_pow10(k.unsigned_abs());
    } else {
        for value in [&mut r, &mut plus, &mut minus] {
            value.mul_pow10(k.unsigned_abs());
        }
    }
    // High bound excluded: the first digit must come out below 10.
    while r.sum(&plus).cmp(&s) == Ordering::Greater {
        s.mul_small(10);
        k += 1;
    }
    loop {
        let mut ten = r.sum(&plus);
        ten.mul_small(10);
        if ten.cmp(&s) == Ordering::Greater {
            break;
        }
        for value in [&mut r, &mut plus, &mut minus] {
            value.mul_small(10);
        }
        k -= 1;
    }
    let mut digits = Vec::with_capacity(17);
    loop {
        r.mul_small(10);
        plus.mul_small(10);
        minus.mul_small(10);
        let mut digit = 0u8;
        while r.cmp(&s) != Ordering::Less {
            r.sub(&s);
            digit += 1;
        }
        // Both bounds excluded.
        let low = r.cmp(&minus) == Ordering::Less;
        let high = r.sum(&plus).cmp(&s) == Ordering::Greater;
        match (low, high) {
            (false, false) => digits.push(digit),
            (true, false) => {
                digits.push(digit);
                break;
            }
            (false, true) => {
                digits.push(digit + 1);
                break;
            }
            (true, true) => {
                let mut twice = r.clone();
                twice.shl(1);
                let up = match twice.cmp(&s) {
                    Ordering::Less => false,
                    Ordering::Greater => true,
                    Ordering::Equal => digit % 2 == 1,
                };
                digits.push(digit + u8::from(up));
                break;
            }
        }
    }
    while digits.last() == Some(&0) {
        digits.pop();
    }
    (digits, k - 1)
}

/// Lays out `digits` (the first at decimal exponent `exponent`) as PostgreSQL's `to_chars`
/// does.
fn lay_out(out: &mut String, digits: &[u8], exponent: i32, fixed_below: i32) {
    let digit = |d: &u8| char::from(b'0' + d);
    if (-4..fixed_below).contains(&exponent) {
        if exponent < 0 {
            out.push_str("0.");
            for _ in 0..(-exponent - 1) {
                out.push('0');
            }
            out.extend(digits.iter().map(digit));
        } else {
            // `exponent + 1` digits before the point, zero-filled when the digits run out.
            let whole = usize::try_from(exponent).unwrap_or(0) + 1;
            for i in 0..whole {
                out.push(digits.get(i).map_or('0', digit));
            }
            if digits.len() > whole {
                out.push('.');
                out.extend(digits[whole..].iter().map(digit));
            }
        }
    } else {
        let (first, rest) = digits.split_first().unwrap_or((&0, &[]));
        out.push(digit(first));
        if !rest.is_empty() {
            out.push('.');
            out.extend(rest.iter().map(digit));
        }
        let sign = if exponent < 0 { '-' } else { '+' };
        let _ = write!(out, "e{sign}{:02}", exponent.unsigned_abs());
    }
}

/// An unsigned integer of any size: little-endian 32-bit limbs.
#[derive(Debug, Clone)]
struct Big(Vec<u32>);

impl From<u64> for Big {
    fn from(value: u64) -> Self {
        let low = u32::try_from(value & 0xffff_ffff).unwrap_or(0);
        let high = u32::try_from(value >> 32).unwrap_or(0);
        let mut big = Big(vec![low, high]);
        big.trim();
        big
    }
}

impl Big {
    fn trim(&mut self) {
        while self.0.last() == Some(&0) {
            self.0.pop();
        }
    }

    fn mul_small(&mut self, factor: u32) {
        let mut carry = 0u64;
        for limb in &mut self.0 {
            let product = u64::from(*limb) * u64::from(factor) + carry;
            *limb = u32::try_from(product & 0xffff_ffff).unwrap_or(0);
            carry = product >> 32;
        }
        if carry != 0 {
            self.0.push(u32::try_from(carry).unwrap_or(0));
        }
    }

    fn mul_pow10(&mut self, mut power: u32) {
        while power >= 9 {
            self.mul_small(1_000_000_000);
            power -= 9;
        }
        self.mul_small(10u32.pow(power));
    }

    /// Multiplies by 2^`bits`.
    fn shl(&mut self, bits: u32) {
        let limbs = usize::try_from(bits / 32).unwrap_or(0);
        let bits = bits % 32;
        if bits > 0 {
            let mut carry = 0u32;
            for limb in &mut self.0 {
                let shifted = u64::from(*limb) << bits | u64::from(carry);
                *limb = u32::try_from(shifted & 0xffff_ffff).unwrap_or(0);
                carry = u32::try_from(shifted >> 32).unwrap_or(0);
            }
            if carry != 0 {
                self.0.push(carry);
            }
        }
        if !self.0.is_empty() {
            self.0.splice(0..0, std::iter::repeat_n(0, limbs));
        }
    }

    fn sum(&self, other: &Big) -> Big {
        let mut sum = Vec::with_capacity(self.0.len().max(other.0.len()) + 1);
        let mut carry = 0u64;
        for i in 0..self.0.len().max(other.0.len()) {
            let total = u64::from(self.0.get(i).copied().unwrap_or(0))
                + u64::from(other.0.get(i).copied().unwrap_or(0))
                + carry;
            sum.push(u32::try_from(total & 0xffff_ffff).unwrap_or(0));
            carry = total >> 32;
        }
        if carry != 0 {
            sum.push(u32::try_from(carry).unwrap_or(0));
        }
        Big(sum)
    }

    /// Subtracts `other`, which is not larger.
    fn sub(&mut self, other: &Big) {
        let mut borrow = 0i64;
        for i in 0..self.0.len() {
            let difference =
                i64::from(self.0[i]) - i64::from(other.0.get(i).copied().unwrap_or(0)) - borrow;
            borrow = i64::from(difference < 0);
            self.0[i] = u32::try_from(difference.rem_euclid(1 << 32)).unwrap_or(0);
        }
        self.trim();
    }

    fn cmp(&self, other: &Big) -> Ordering {
        self.0
            .len()
            .cmp(&other.0.len())
            .then_with(|| self.0.iter().rev().cmp(other.0.iter().rev()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The decimal exponent of the first significant digit of a finite, non-zero value's
    /// text, and whether the text is in scientific notation.
    fn exponent(text: &str) -> (i32, bool) {
        let digits = text.trim_start_matches('-');
        if let Some((_, exponent)) = digits.split_once('e') {
            return (exponent.parse().unwrap(), true);
        }
        let (whole, fraction) = digits.split_once('.').unwrap_or((digits, ""));
        if whole != "0" {
            return (i32::try_from(whole.len()).unwrap() - 1, false);
        }
        let zeros = fraction.len() - fraction.trim_start_matches('0').len();
        (-i32::try_from(zeros).unwrap() - 1, false)
    }

    proptest::proptest! {
        /// Any float8 prints as digits that read back as it, in fixed notation exactly when
        /// its decimal exponent is from -4 to 14.
        #[test]
        fn float8_text_reads_back_exactly_in_postgres_layout(bits: u64) {
            let value = f64::from_bits(bits);
            let text = float8(value);
            let back: f64 = text.replace("Infinity", "inf").parse().unwrap();
            proptest::prop_assert!(
                back.to_bits() == value.to_bits() || value.is_nan() && back.is_nan(),
                "{}", text
            );
            if value.is_finite() && value != 0.0 {
                let (exponent, scientific) = exponent(&text);
                proptest::prop_assert_eq!(scientific, !(-4..15).contains(&exponent), "{}", text);
            }
        }

        #[test]
        fn float4_text_reads_back_exactly_in_postgres_layout(bits: u32) {
            let value = f32::from_bits(bits);
            let text = float4(value);
            let back: f32 = text.replace("Infinity", "inf").parse().unwrap();
            proptest::prop_assert!(
                back.to_bits() == value.to_bits() || value.is_nan() && back.is_nan(),
                "{}", text
            );
            if value.is_finite() && value != 0.0 {
                let (exponent, scientific) = exponent(&text);
                proptest::prop_assert_eq!(scientific, !(-4..6).contains(&exponent), "{}", text);
            }
        }
    }

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
            // Where the shortest decimal is exactly halfway to the next float (Rust's `{:e}`
            // prints it: 7.076438e7), and a tie between two (Rust rounds it up: ...663e6).
            (70_764_384.0, "7.0764384e+07"),
            (34_009_608.0, "3.4009608e+07"),
            // -1707966.25, exact in a float4 (a quarter's step at this size).
            (f32::from_bits(0xc9d0_7df2), "-1.7079662e+06"),
        ] {
            assert_eq!(float4(value), text, "{value:e}");
        }
    }
}
