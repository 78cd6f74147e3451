//! Small types whose Avro value is the string PostgreSQL prints: `"char"`, bit strings,
//! `pg_lsn` and `tid`, read from either form and printed by one function each.

use std::fmt::Write as _;

use crate::binary_form::BinaryReader;
use crate::writer;

/// A `"char"`'s text form: empty for the byte 0, the byte itself below 0x80, `\ooo`
/// (three octal digits) from 0x80 up, as `charout` prints it.
pub(crate) fn char_of_text(text: &[u8]) -> Option<u8> {
    match text {
        [] => Some(0),
        [byte] if byte.is_ascii() => Some(*byte),
        [b'\\', digits @ ..] if digits.len() == 3 => {
            let mut value: u16 = 0;
            for &digit in digits {
                if !(b'0'..=b'7').contains(&digit) {
                    return None;
                }
                value = value * 8 + u16::from(digit - b'0');
            }
            u8::try_from(value).ok().filter(|byte| !byte.is_ascii())
        }
        _ => None,
    }
}

/// A `"char"` as `charout` prints it.
pub(crate) fn format_char(out: &mut String, byte: u8) {
    match byte {
        0 => {}
        _ if byte.is_ascii() => out.push(char::from(byte)),
        _ => {
            let _ = write!(out, "\\{byte:03o}");
        }
    }
}

/// `text` as a JSON string, as Jackson writes it: `"` and `\` escaped, control characters as
/// `\n`, `\t`, `\r`, `\b`, `\f` or `\u00XX`, everything else as it is.
pub(crate) fn push_json_string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            c if u32::from(c) < 0x20 => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A `point` as PostgreSQL prints it: `(1.5,2)`.
pub(crate) fn parse_point(text: &str) -> Option<(f64, f64)> {
    let (x, y) = text.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((x.parse().ok()?, y.parse().ok()?))
}

/// Debezium's `Point` record: `x`, `y`, the point's WKB (little-endian, type 1), `srid` null.
pub(crate) fn write_point(out: &mut Vec<u8>, x: f64, y: f64) {
    writer::double(out, x);
    writer::double(out, y);
    writer::union_index(out, 1);
    let mut wkb = [0u8; 21];
    wkb[0] = 1;
    wkb[1..5].copy_from_slice(&1u32.to_le_bytes());
    wkb[5..13].copy_from_slice(&x.to_le_bytes());
    wkb[13..21].copy_from_slice(&y.to_le_bytes());
    writer::bytes(out, &wkb);
    writer::union_index(out, 0);
}

/// A bit string as Debezium's `Bits`: the bits as an unsigned number, the last bit its
/// lowest, in little-endian bytes up to the highest set bit (none for zero), as Java's
/// `BitSet.toByteArray` gives them.
pub(crate) fn bits_as_number(bits: &str, out: &mut Vec<u8>) {
    out.clear();
    for (position, bit) in bits.bytes().rev().enumerate() {
        if bit == b'1' {
            let byte = position / 8;
            if out.len() <= byte {
                out.resize(byte + 1, 0);
            }
            out[byte] |= 1 << (position % 8);
        }
    }
}

/// Whether `text` is a bit string's text form: `0`s and `1`s (possibly none).
pub(crate) fn is_bit_text(text: &str) -> bool {
    text.bytes().all(|b| b == b'0' || b == b'1')
}

/// A `bit` or `varbit` binary form (`int32` bit count, then the bits, most significant
/// first, padded to whole bytes) as its text form.
pub(crate) fn format_bits(out: &mut String, raw: &[u8]) -> Option<()> {
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32()?).ok()?;
    let bytes = reader.take(count.div_ceil(8))?;
    reader.end()?;
    for i in 0..count {
        let bit = bytes.get(i / 8)? >> (7 - i % 8) & 1;
        out.push(if bit == 1 { '1' } else { '0' });
    }
    Some(())
}

/// ASCII decimal digits only (no sign, no space), as PostgreSQL prints unsigned numbers;
/// `None` for anything else or a value too large for `T`.
pub(crate) fn decimal<T: std::str::FromStr>(text: &str) -> Option<T> {
    if text.is_empty() || !text.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// 1 to 8 hex digits, no sign.
pub(crate) fn hex(text: &str) -> Option<u32> {
    if text.is_empty() || text.len() > 8 || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u32::from_str_radix(text, 16).ok()
}

/// A `pg_lsn` as PostgreSQL prints it: `16/B374D848`.
pub(crate) fn parse_lsn(text: &str) -> Option<u64> {
    let (high, low) = text.split_once('/')?;
    Some(u64::from(hex(high)?) << 32 | u64::from(hex(low)?))
}

/// `%X/%X`: upper-case hex of the high and low 32 bits.
pub(crate) fn format_lsn(out: &mut String, lsn: u64) {
    let _ = write!(out, "{:X}/{:X}", lsn >> 32, lsn & 0xffff_ffff);
}

/// A `tid` as PostgreSQL prints it: `(block,offset)`.
pub(crate) fn parse_tid(text: &str) -> Option<(u32, u16)> {
    let (block, offset) = text.strip_prefix('(')?.strip_suffix(')')?.split_once(',')?;
    Some((decimal(block)?, decimal(offset)?))
}

/// A `tid`'s binary form: `uint32` block, `uint16` offset.
pub(crate) fn tid_of_binary(raw: &[u8]) -> Option<(u32, u16)> {
    let mut reader = BinaryReader::new(raw);
    let tid = (reader.u32()?, reader.u16()?);
    reader.end()?;
    Some(tid)
}

pub(crate) fn format_tid(out: &mut String, (block, offset): (u32, u16)) {
    let _ = write!(out, "({block},{offset})");
}

/// A `uuid` as PostgreSQL prints it: lower-case hex, hyphenated 8-4-4-4-12.
pub(crate) fn format_uuid(out: &mut String, bytes: &[u8; 16]) {
    for (i, byte) in bytes.iter().enumerate() {
        if matches!(i, 4 | 6 | 8 | 10) {
            out.push('-');
        }
        let _ = write!(out, "{byte:02x}");
    }
}
