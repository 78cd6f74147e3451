//! PostgreSQL `numeric` into Avro's decimal: an unscaled integer as big-endian two's
//! complement bytes, exactly, at any precision.

/// A numeric's value: finite ones are `digits × 10^-scale`, the digits (ASCII) kept by the
/// caller in a reused buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Numeric {
    Finite { negative: bool, scale: u32 },
    NaN,
    Infinity,
    NegativeInfinity,
}

/// PostgreSQL's text form (`-123.4500`, `NaN`, `Infinity`); the digits go to `digits`.
pub(crate) fn parse_text(text: &str, digits: &mut Vec<u8>) -> Option<Numeric> {
    match text {
        "NaN" => return Some(Numeric::NaN),
        "Infinity" => return Some(Numeric::Infinity),
        "-Infinity" => return Some(Numeric::NegativeInfinity),
        _ => {}
    }
    digits.clear();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (whole, fraction) = unsigned.split_once('.').unwrap_or((unsigned, ""));
    if whole.is_empty()
        || !whole
            .bytes()
            .chain(fraction.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    digits.extend_from_slice(whole.as_bytes());
    digits.extend_from_slice(fraction.as_bytes());
    Some(Numeric::Finite {
        negative,
        scale: u32::try_from(fraction.len()).ok()?,
    })
}

const NUMERIC_POS: u16 = 0x0000;
const NUMERIC_NEG: u16 = 0x4000;
const NUMERIC_NAN: u16 = 0xC000;
const NUMERIC_PINF: u16 = 0xD000;
const NUMERIC_NINF: u16 = 0xF000;

/// PostgreSQL's binary form: ndigits, weight, sign, dscale, then base-10000 digits.
pub(crate) fn parse_binary(bytes: &[u8], digits: &mut Vec<u8>) -> Option<Numeric> {
    let header = |i: usize| -> Option<[u8; 2]> { bytes.get(i..i + 2)?.try_into().ok() };
    // Unsigned: the widest numerics have more than 32767 base-10000 digits.
    let ndigits = usize::from(u16::from_be_bytes(header(0)?));
    let weight = i64::from(i16::from_be_bytes(header(2)?));
    let sign = u16::from_be_bytes(header(4)?);
    let dscale = u32::from(u16::from_be_bytes(header(6)?));
    if bytes.len() != 8 + ndigits * 2 {
        return None;
    }
    let negative = match sign {
        NUMERIC_POS => false,
        NUMERIC_NEG => true,
        NUMERIC_NAN => return Some(Numeric::NaN),
        NUMERIC_PINF => return Some(Numeric::Infinity),
        NUMERIC_NINF => return Some(Numeric::NegativeInfinity),
        _ => return None,
    };
    // The base-10000 digit at power `power` of 10000.
    let group = |power: i64| -> Option<u16> {
        let index = weight - power;
        if index < 0 || index >= i64::try_from(ndigits).ok()? {
            return Some(0);
        }
        let at = 8 + usize::try_from(index).ok()? * 2;
        let value = u16::from_be_bytes(bytes.get(at..at + 2)?.try_into().ok()?);
        (value < 10_000).then_some(value)
    };
    digits.clear();
    let mut push = |value: u16| {
        for divisor in [1000, 100, 10, 1] {
            digits.push(b'0' + u8::try_from(value / divisor % 10).unwrap_or(0));
        }
    };
    for power in (0..=weight.max(0)).rev() {
        push(group(power)?);
    }
    let fraction_groups = (i64::from(dscale) + 3) / 4;
    for power in 1..=fraction_groups {
        push(group(-power)?);
    }
    // Digits past dscale are zero by construction; drop them.
    let extra = usize::try_from(fraction_groups * 4 - i64::from(dscale)).ok()?;
    digits.truncate(digits.len() - extra);
    Some(Numeric::Finite {
        negative,
        scale: dscale,
    })
}

/// PostgreSQL's own text form of a numeric (`numeric_out`): `-`, the integer digits without
/// leading zeros (at least one), and exactly `scale` fractional digits, trailing zeros kept;
/// `NaN`, `Infinity`, `-Infinity`. `digits` are the ones [`parse_text`] or [`parse_binary`]
/// left.
pub(crate) fn format_text(out: &mut String, numeric: Numeric, digits: &[u8]) {
    let (negative, scale) = match numeric {
        Numeric::Finite { negative, scale } => (negative, scale),
        Numeric::NaN => return out.push_str("NaN"),
        Numeric::Infinity => return out.push_str("Infinity"),
        Numeric::NegativeInfinity => return out.push_str("-Infinity"),
    };
    let scale = usize::try_from(scale)
        .unwrap_or(usize::MAX)
        .min(digits.len());
    let (whole, fraction) = digits.split_at(digits.len() - scale);
    let start = whole.iter().position(|&d| d != b'0').unwrap_or(whole.len());
    if negative {
        out.push('-');
    }
    match &whole[start..] {
        [] => out.push('0'),
        significant => out.extend(significant.iter().map(|&d| char::from(d))),
    }
    if !fraction.is_empty() {
        out.push('.');
        out.extend(fraction.iter().map(|&d| char::from(d)));
    }
}

/// A `money` value as PostgreSQL prints it in the database's `lc_monetary` (`$1,234.56`,
/// `-$1,234.56`, `($1.00)`, `1.234,56 €`): every digit is one of the minor-unit integer,
/// whatever separators and symbols surround them; `-` or `(` makes it negative.
pub(crate) fn parse_money(text: &str) -> Option<i64> {
    let mut magnitude: i128 = 0;
    let mut any = false;
    for byte in text.bytes().filter(u8::is_ascii_digit) {
        magnitude = magnitude
            .checked_mul(10)?
            .checked_add(i128::from(byte - b'0'))?;
        any = true;
    }
    let negative = text.bytes().any(|b| b == b'-' || b == b'(');
    let value = if negative { -magnitude } else { magnitude };
    any.then(|| i64::try_from(value).ok()).flatten()
}

/// Appends `value` as minimal big-endian two's complement: an Avro decimal's unscaled bytes.
pub(crate) fn unscaled_i64(value: i64, out: &mut Vec<u8>) {
    out.extend_from_slice(trim_sign_extension(&value.to_be_bytes()));
}

/// Appends the unscaled integer `±digits` as minimal big-endian two's complement.
pub(crate) fn unscaled_bytes(negative: bool, digits: &[u8], out: &mut Vec<u8>) {
    let significant = {
        let start = digits
            .iter()
            .position(|&d| d != b'0')
            .unwrap_or(digits.len());
        &digits[start..]
    };
    if significant.len() <= 38 {
        let mut magnitude: i128 = 0;
        for &digit in significant {
            magnitude = magnitude * 10 + i128::from(digit - b'0');
        }
        let value = if negative { -magnitude } else { magnitude };
        let bytes = value.to_be_bytes();
        out.extend_from_slice(trim_sign_extension(&bytes));
        return;
    }
    // Beyond 38 digits: schoolbook arithmetic on base-2^64 limbs (least significant first),
    // taking 19 decimal digits per step: PostgreSQL's widest numeric (131,072 integer and
    // 16,383 fractional digits) takes milliseconds, where a digit and a byte per step took
    // half a minute.
    let mut limbs: Vec<u64> = Vec::with_capacity(significant.len() / 19 + 1);
    for chunk in significant.chunks(19) {
        let (mut value, mut scale) = (0u64, 1u64);
        for &digit in chunk {
            value = value * 10 + u64::from(digit - b'0');
            scale *= 10;
        }
        let mut carry = value;
        for limb in &mut limbs {
            let product = u128::from(*limb) * u128::from(scale) + u128::from(carry);
            (*limb, carry) = low_and_high(product);
        }
        if carry > 0 {
            limbs.push(carry);
        }
    }
    let mut magnitude: Vec<u8> = limbs.iter().rev().flat_map(|l| l.to_be_bytes()).collect();
    // Room for the sign bit.
    magnitude.insert(0, 0);
    if negative {
        for byte in magnitude.iter_mut() {
            *byte = !*byte;
        }
        for byte in magnitude.iter_mut().rev() {
            let (sum, overflow) = byte.overflowing_add(1);
            *byte = sum;
            if !overflow {
                break;
            }
        }
    }
    out.extend_from_slice(trim_sign_extension(&magnitude));
}

/// The low and the high 64 bits.
fn low_and_high(value: u128) -> (u64, u64) {
    let [low, high] = [value & u128::from(u64::MAX), value >> 64]
        .map(|half| u64::try_from(half).unwrap_or_default());
    (low, high)
}

/// Drops leading bytes that only repeat the sign, keeping at least one.
fn trim_sign_extension(bytes: &[u8]) -> &[u8] {
    let mut start = 0;
    while start + 1 < bytes.len() {
        let (this, next) = (bytes[start], bytes[start + 1]);
        let redundant = (this == 0x00 && next & 0x80 == 0) || (this == 0xff && next & 0x80 != 0);
        if !redundant {
            break;
        }
        start += 1;
    }
    &bytes[start..]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unscaled(text: &str) -> (Vec<u8>, u32) {
        let mut digits = Vec::new();
        let Some(Numeric::Finite { negative, scale }) = parse_text(text, &mut digits) else {
            panic!("{text}")
        };
        let mut out = Vec::new();
        unscaled_bytes(negative, &digits, &mut out);
        (out, scale)
    }

    #[test]
    fn text_numerics_become_twos_complement() {
        assert_eq!(unscaled("0"), (vec![0], 0));
        assert_eq!(unscaled("1.5"), (vec![15], 1));
        assert_eq!(unscaled("-1.5"), (vec![0xf1], 1));
        assert_eq!(unscaled("128"), (vec![0, 128], 0));
        assert_eq!(unscaled("-128"), (vec![0x80], 0));
        assert_eq!(unscaled("-129"), (vec![0xff, 0x7f], 0));
        // 12,345,000 = 0xBC5EA8: its top bit is set, so a 0 byte keeps it positive.
        assert_eq!(unscaled("1234.5000"), (vec![0, 0xbc, 0x5e, 0xa8], 4));
    }

    #[test]
    fn long_numerics_match_the_fast_path_where_both_apply() {
        // 2^130 has 40 digits: the slow path.
        let big = "1361129467683753853853498429727072845824";
        let (bytes, _) = unscaled(big);
        let mut expected = vec![0u8; 17];
        expected[0] = 4;
        assert_eq!(bytes, expected);
        let (negative, _) = unscaled(&format!("-{big}"));
        assert_eq!(negative[0], 0xfc);
        assert!(negative[1..].iter().all(|&b| b == 0));
    }

    /// Digits times 10 plus the next, byte by byte: slow and plain.
    fn reference_unscaled(negative: bool, digits: &str) -> Vec<u8> {
        let mut magnitude = vec![0u8];
        for digit in digits.bytes() {
            let mut carry = u16::from(digit - b'0');
            for byte in magnitude.iter_mut().rev() {
                let value = u16::from(*byte) * 10 + carry;
                *byte = value.to_le_bytes()[0];
                carry = value >> 8;
            }
            while carry > 0 {
                magnitude.insert(0, carry.to_le_bytes()[0]);
                carry >>= 8;
            }
        }
        magnitude.insert(0, 0);
        let mut value: Vec<u8> = magnitude.clone();
        if negative {
            value = magnitude.iter().map(|b| !b).collect();
            for byte in value.iter_mut().rev() {
                let (sum, overflow) = byte.overflowing_add(1);
                *byte = sum;
                if !overflow {
                    break;
                }
            }
        }
        trim_sign_extension(&value).to_vec()
    }

    proptest::proptest! {
        #[test]
        fn long_numerics_are_the_plain_product(negative: bool, digits in "[1-9][0-9]{0,400}") {
            let mut out = Vec::new();
            unscaled_bytes(negative, digits.as_bytes(), &mut out);
            proptest::prop_assert_eq!(out, reference_unscaled(negative, &digits));
        }
    }

    #[test]
    fn the_widest_numerics_convert_exactly_and_at_once() {
        // 10^131071 (PostgreSQL's widest integer part) is 2^131071 x 5^131071: its magnitude
        // ends in 131071 zero bits, and the bytes above them are 5^131071's.
        let (bytes, _) = unscaled(&format!("1{}", "0".repeat(131_071)));
        let zero_bytes = 131_071 / 8;
        assert!(bytes[bytes.len() - zero_bytes..].iter().all(|&b| b == 0));
        assert_ne!(
            bytes[bytes.len() - zero_bytes - 1] & 0x80,
            0,
            "bit 131071 set"
        );
        assert!(bytes[0] < 0x80, "positive");
        // Across limb boundaries: (2^64)^2 - 1 = 340282366920938463463374607431768211455 has
        // 39 digits, one past the fast path.
        let (bytes, _) = unscaled("340282366920938463463374607431768211455");
        assert_eq!(bytes, [[0].as_slice(), &[0xff; 16]].concat());
        let (bytes, _) = unscaled("-340282366920938463463374607431768211456");
        assert_eq!(bytes, [[0xff].as_slice(), &[0; 16]].concat());
    }

    #[test]
    fn binary_numerics_give_the_same_digits_as_text() {
        // 1.5: ndigits 2, weight 0, positive, dscale 1, digits [1, 5000].
        let one_and_a_half = [0, 2, 0, 0, 0, 0, 0, 1, 0, 1, 0x13, 0x88];
        let mut digits = Vec::new();
        assert_eq!(
            parse_binary(&one_and_a_half, &mut digits),
            Some(Numeric::Finite {
                negative: false,
                scale: 1
            })
        );
        assert_eq!(
            std::str::from_utf8(&digits)
                .unwrap()
                .trim_start_matches('0'),
            "15"
        );
        // 0.0001: ndigits 1, weight -1, dscale 4, digits [1].
        let tiny = [0, 1, 0xff, 0xff, 0, 0, 0, 4, 0, 1];
        assert!(parse_binary(&tiny, &mut digits).is_some());
        assert_eq!(std::str::from_utf8(&digits).unwrap(), "00000001");
        let nan = [0, 0, 0, 0, 0xc0, 0, 0, 0];
        assert_eq!(parse_binary(&nan, &mut digits), Some(Numeric::NaN));
        assert_eq!(parse_binary(&nan[..7], &mut digits), None);
    }
}
