//! The Confluent wire format of a key or value: the magic byte 0, the id of the schema it was
//! written with (big-endian), then its Avro body.

/// The Confluent wire format's header: the magic byte 0, then the schema id, big-endian.
pub(crate) fn confluent_header(out: &mut Vec<u8>, schema_id: u32) {
    out.push(0);
    out.extend_from_slice(&schema_id.to_be_bytes());
}

/// A key or value in the Confluent wire format, split into the id of the schema it was
/// written with and its Avro body; `None` when it is not in that format (no magic byte 0, or
/// shorter than the header).
pub fn confluent_frame(framed: &[u8]) -> Option<(u32, &[u8])> {
    match framed {
        [0, a, b, c, d, body @ ..] => Some((u32::from_be_bytes([*a, *b, *c, *d]), body)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_confluent_frame_splits_into_schema_id_and_body() {
        let mut framed = Vec::new();
        confluent_header(&mut framed, 0x0102_0304);
        framed.extend_from_slice(b"body");
        assert_eq!(confluent_frame(&framed), Some((0x0102_0304, &b"body"[..])));
        assert_eq!(confluent_frame(&framed[..5]), Some((0x0102_0304, &b""[..])));
        // Too short, or another magic byte: not that format.
        assert_eq!(confluent_frame(&framed[..4]), None);
        assert_eq!(confluent_frame(b"\x01\x00\x00\x00\x07x"), None);
        assert_eq!(confluent_frame(b""), None);
    }
}
