//! Avro binary encoding of primitives, appended to a reused buffer.

/// `long` and `int`: zig-zag, then base-128 varint.
pub(crate) fn long(out: &mut Vec<u8>, value: i64) {
    let zigzag = (value << 1) ^ (value >> 63);
    // Reinterpret as unsigned: the shifts below must not sign-extend.
    let mut n = u64::from_ne_bytes(zigzag.to_ne_bytes());
    while n >= 0x80 {
        out.push(n.to_le_bytes()[0] | 0x80);
        n >>= 7;
    }
    out.push(n.to_le_bytes()[0]);
}

pub(crate) fn int(out: &mut Vec<u8>, value: i32) {
    long(out, i64::from(value));
}

pub(crate) fn bytes(out: &mut Vec<u8>, value: &[u8]) {
    long(out, i64::try_from(value.len()).unwrap_or(i64::MAX));
    out.extend_from_slice(value);
}

pub(crate) fn string(out: &mut Vec<u8>, value: &str) {
    bytes(out, value.as_bytes());
}

pub(crate) fn boolean(out: &mut Vec<u8>, value: bool) {
    out.push(u8::from(value));
}

pub(crate) fn float(out: &mut Vec<u8>, value: f32) {
    out.extend_from_slice(&value.to_le_bytes());
}

pub(crate) fn double(out: &mut Vec<u8>, value: f64) {
    out.extend_from_slice(&value.to_le_bytes());
}

/// The branch of a union.
pub(crate) fn union_index(out: &mut Vec<u8>, index: i64) {
    long(out, index);
}

/// Appends `count` items already encoded in `items` as one Avro block and the closing 0.
pub(crate) fn block(out: &mut Vec<u8>, count: usize, items: &[u8]) {
    if count > 0 {
        long(out, i64::try_from(count).unwrap_or(i64::MAX));
        out.extend_from_slice(items);
    }
    long(out, 0);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn longs_are_zigzag_varints() {
        let cases: [(i64, &[u8]); 7] = [
            (0, &[0]),
            (-1, &[1]),
            (1, &[2]),
            (-64, &[0x7f]),
            (64, &[0x80, 0x01]),
            (
                i64::MAX,
                &[0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
            (
                i64::MIN,
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01],
            ),
        ];
        for (value, expected) in cases {
            let mut out = Vec::new();
            long(&mut out, value);
            assert_eq!(out, expected, "{value}");
        }
    }
}
