//! Malformed input: every failure is a typed error naming the message tag and the offset
//! of the failing field, and nothing panics.

#[path = "support/encoder.rs"]
mod encoder;

use bytes::Bytes;
use encoder::{Col, Msg, binary, text};
use sluice_pgoutput::{DecodeError, DecodeErrorKind, Decoder, DecoderOptions, ReplicationMessage};

/// A decoder in the given state: protocol 4, optionally inside a stream block.
fn decoder(in_stream: bool, abort_info: bool) -> Decoder {
    let mut d = Decoder::new(DecoderOptions {
        protocol_version: 4,
        streaming_abort_info: abort_info,
    });
    if in_stream {
        d.decode(encoder::stream_start(1, 1))
            .expect("Stream Start decodes");
    }
    d
}

fn decode_err(in_stream: bool, bytes: Bytes) -> DecodeError {
    decoder(in_stream, false)
        .decode(bytes)
        .expect_err("the message must not decode")
}

/// Every message kind, valid, with the decoder state it is valid in.
fn valid_messages() -> Vec<(&'static str, bool, bool, Bytes)> {
    let cols = [text("a"), Col::Null, Col::Toast, binary(b"\x01\x02")];
    let rel_cols = [(1, "id", 23, -1), (0, "note", 25, -1)];
    let mut v = Vec::new();
    for (in_stream, xid) in [(false, None), (true, Some(42))] {
        v.extend([
            (
                "relation",
                in_stream,
                false,
                encoder::relation(xid, 1, "public", "t", b'd', &rel_cols),
            ),
            (
                "type",
                in_stream,
                false,
                encoder::type_msg(xid, 1, "public", "t"),
            ),
            ("insert", in_stream, false, encoder::insert(xid, 1, &cols)),
            (
                "update",
                in_stream,
                false,
                encoder::update(xid, 1, None, &cols),
            ),
            (
                "update K",
                in_stream,
                false,
                encoder::update(xid, 1, Some((b'K', &cols)), &cols),
            ),
            (
                "update O",
                in_stream,
                false,
                encoder::update(xid, 1, Some((b'O', &cols)), &cols),
            ),
            (
                "delete",
                in_stream,
                false,
                encoder::delete(xid, 1, b'K', &cols),
            ),
            (
                "truncate",
                in_stream,
                false,
                encoder::truncate(xid, 3, &[1, 2]),
            ),
            (
                "message",
                in_stream,
                false,
                encoder::message(xid, 1, 5, "p", b"content"),
            ),
        ]);
    }
    v.extend([
        ("begin", false, false, encoder::begin(1, 2, 3)),
        ("commit", false, false, encoder::commit(0, 1, 2, 3)),
        ("origin", false, false, encoder::origin(1, "origin")),
        ("stream start", false, false, encoder::stream_start(1, 1)),
        ("stream stop", true, false, encoder::stream_stop()),
        (
            "stream commit",
            false,
            false,
            encoder::stream_commit(1, 0, 2, 3, 4),
        ),
        (
            "stream abort",
            false,
            false,
            encoder::stream_abort(1, 2, None),
        ),
        (
            "stream abort+info",
            false,
            true,
            encoder::stream_abort(1, 2, Some((3, 4))),
        ),
        (
            "begin prepare",
            false,
            false,
            encoder::begin_prepare(1, 2, 3, 4, "g"),
        ),
        (
            "prepare",
            false,
            false,
            encoder::prepare_like(b'P', 0, 1, 2, 3, 4, "g"),
        ),
        (
            "commit prepared",
            false,
            false,
            encoder::prepare_like(b'K', 0, 1, 2, 3, 4, "g"),
        ),
        (
            "rollback prepared",
            false,
            false,
            encoder::rollback_prepared(0, 1, 2, 3, 4, 5, "g"),
        ),
        (
            "stream prepare",
            false,
            false,
            encoder::prepare_like(b'p', 0, 1, 2, 3, 4, "g"),
        ),
    ]);
    v
}

#[test]
fn every_message_truncated_at_every_length_is_an_error() {
    for (name, in_stream, abort_info, bytes) in valid_messages() {
        decoder(in_stream, abort_info)
            .decode(bytes.clone())
            .unwrap_or_else(|e| panic!("{name}: the whole message must decode: {e}"));
        for len in 0..bytes.len() {
            let prefix = bytes.slice(..len);
            let err = decoder(in_stream, abort_info)
                .decode(prefix)
                .expect_err(&format!("{name} cut to {len} bytes must fail"));
            if len == 0 {
                assert_eq!(err.kind(), &DecodeErrorKind::Empty);
                assert_eq!(err.tag(), None);
                continue;
            }
            assert_eq!(err.tag(), bytes.first().copied(), "{name} at {len}");
            assert!(err.offset() <= len, "{name} at {len}: {err}");
            match *err.kind() {
                DecodeErrorKind::UnexpectedEof { needed, available } => {
                    assert!(needed > available, "{name} at {len}: {err}");
                    assert_eq!(err.offset() + available, len, "{name} at {len}: {err}");
                }
                DecodeErrorKind::MissingNulTerminator => {}
                _ => panic!("{name} cut to {len} bytes: unexpected {err}"),
            }
        }
    }
}

#[test]
fn every_message_with_a_trailing_byte_is_an_error() {
    for (name, in_stream, abort_info, bytes) in valid_messages() {
        let mut long = bytes.to_vec();
        long.push(0);
        let err = decoder(in_stream, abort_info)
            .decode(Bytes::from(long))
            .unwrap_err();
        assert_eq!(err.kind(), &DecodeErrorKind::TrailingBytes(1), "{name}");
        assert_eq!(err.offset(), bytes.len(), "{name}");
    }
}

#[test]
fn empty_message() {
    let err = decode_err(false, Bytes::new());
    assert_eq!(err.kind(), &DecodeErrorKind::Empty);
    assert_eq!((err.tag(), err.offset()), (None, 0));
    assert_eq!(err.to_string(), "pgoutput message at byte 0: empty message");

    let err = ReplicationMessage::decode(Bytes::new()).unwrap_err();
    assert_eq!(
        err.to_string(),
        "walsender message at byte 0: empty message"
    );
}

#[test]
fn unknown_tag() {
    for in_stream in [false, true] {
        let err = decode_err(in_stream, Bytes::from_static(b"Z\0\0"));
        assert_eq!(err.kind(), &DecodeErrorKind::UnknownTag(b'Z'));
        assert_eq!((err.tag(), err.offset()), (Some(b'Z'), 0));
        assert_eq!(
            err.to_string(),
            "pgoutput message 'Z' at byte 0: unknown message tag 'Z'"
        );
    }
    let err = decode_err(false, Bytes::from_static(b"\x00"));
    assert_eq!(
        err.to_string(),
        "pgoutput message 0x00 at byte 0: unknown message tag 0x00"
    );

    let err = ReplicationMessage::decode(Bytes::from_static(b"r")).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownTag(b'r'));
}

#[test]
fn negative_column_length() {
    // 'I' 0 | relation 1..5 | 'N' 5 | ncols 6..8 | kind 8 | length 9..13
    let bytes = Msg::new(b'I')
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b't')
        .i32(-1)
        .build();
    let err = decode_err(false, bytes);
    assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength(-1));
    assert_eq!((err.tag(), err.offset()), (Some(b'I'), 9));
    assert_eq!(
        err.to_string(),
        "pgoutput message 'I' at byte 9: negative length or count -1"
    );

    // The same inside a stream, where the xid moves every field by 4, and in binary.
    let bytes = Msg::new(b'I')
        .u32(7)
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b'b')
        .i32(i32::MIN)
        .build();
    let err = decode_err(true, bytes);
    assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength(i32::MIN));
    assert_eq!(err.offset(), 13);
}

#[test]
fn negative_message_length_and_relation_count() {
    // 'M' 0 | flags 1 | lsn 2..10 | "p\0" 10..12 | length 12..16
    let bytes = Msg::new(b'M').u8(0).u64(1).str("p").i32(-7).build();
    let err = decode_err(false, bytes);
    assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength(-7));
    assert_eq!(err.offset(), 12);

    let bytes = Msg::new(b'T').i32(-1).u8(0).build();
    let err = decode_err(false, bytes);
    assert_eq!(err.kind(), &DecodeErrorKind::NegativeLength(-1));
    assert_eq!((err.tag(), err.offset()), (Some(b'T'), 1));
}

#[test]
fn oversized_lengths() {
    let bytes = Msg::new(b'I')
        .u32(1)
        .u8(b'N')
        .u16(1)
        .u8(b't')
        .i32(i32::MAX)
        .raw(b"abc")
        .build();
    let err = decode_err(false, bytes);
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnexpectedEof {
            needed: 2_147_483_647,
            available: 3
        }
    );
    assert_eq!(err.offset(), 13);

    let bytes = Msg::new(b'M')
        .u8(0)
        .u64(1)
        .str("p")
        .i32(i32::MAX)
        .raw(b"x")
        .build();
    let err = decode_err(false, bytes);
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnexpectedEof {
            needed: 2_147_483_647,
            available: 1
        }
    );
    assert_eq!(err.offset(), 16);
}

#[test]
fn truncate_claiming_two_billion_relations_in_a_short_buffer() {
    // 'T' 0 | count 1..5 | options 5 | oids from 6
    let bytes = Msg::new(b'T').i32(i32::MAX).u8(0).u32(1).u32(2).build();
    let err = decode_err(false, bytes);
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnexpectedEof {
            needed: 4 * 2_147_483_647,
            available: 8
        }
    );
    assert_eq!((err.tag(), err.offset()), (Some(b'T'), 6));
    assert!(
        err.to_string()
            .starts_with("pgoutput message 'T' at byte 6: message ends early")
    );
}

#[test]
fn relation_with_more_columns_than_bytes() {
    let bytes = Msg::new(b'R')
        .u32(1)
        .str("s")
        .str("t")
        .u8(b'd')
        .u16(u16::MAX)
        .build();
    let err = decode_err(false, bytes);
    assert!(matches!(err.kind(), DecodeErrorKind::UnexpectedEof { .. }));
    assert_eq!(err.offset(), 12);
}

#[test]
fn invalid_utf8_names() {
    let bad = |prefix: &[u8]| -> Vec<u8> { [prefix, b"\xFF\xFEx\0"].concat() };
    // (message, offset of the first bad byte)
    let cases: Vec<(Bytes, usize)> = vec![
        // 'O' 0 | lsn 1..9 | name 9..
        (Msg::new(b'O').u64(1).raw(&bad(b"ab")).build(), 11),
        // 'R' 0 | oid 1..5 | namespace 5..
        (
            Msg::new(b'R')
                .u32(1)
                .raw(&bad(b""))
                .str("t")
                .u8(b'd')
                .u16(0)
                .build(),
            5,
        ),
        (
            Msg::new(b'R')
                .u32(1)
                .str("s")
                .raw(&bad(b"tab"))
                .u8(b'd')
                .u16(0)
                .build(),
            10,
        ),
        // a column name: 'R' | oid | "s\0" 5..7 | "t\0" 7..9 | 'd' 9 | ncols 10..12 | flags 12 | name 13..
        (
            Msg::new(b'R')
                .u32(1)
                .str("s")
                .str("t")
                .u8(b'd')
                .u16(1)
                .u8(0)
                .raw(&bad(b"c"))
                .u32(23)
                .i32(-1)
                .build(),
            14,
        ),
        (Msg::new(b'Y').u32(1).str("s").raw(&bad(b"")).build(), 7),
        // 'M' 0 | flags 1 | lsn 2..10 | prefix 10..
        (
            Msg::new(b'M').u8(0).u64(1).raw(&bad(b"pre")).i32(0).build(),
            13,
        ),
        // gid after 'b' 0 | 3 × Int64 | xid 25..29 | gid 29..
        (
            Msg::new(b'b')
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .raw(&bad(b"g"))
                .build(),
            30,
        ),
        (
            Msg::new(b'P')
                .u8(0)
                .u64(1)
                .u64(2)
                .i64(3)
                .u32(4)
                .raw(&bad(b""))
                .build(),
            30,
        ),
    ];
    for (bytes, offset) in cases {
        let tag = bytes[0];
        let err = decode_err(false, bytes);
        assert_eq!(err.kind(), &DecodeErrorKind::InvalidUtf8, "{err}");
        assert_eq!((err.tag(), err.offset()), (Some(tag), offset), "{err}");
    }
    // A truncated multi-byte character is invalid too.
    let err = decode_err(false, Msg::new(b'O').u64(1).raw(b"\xC3\0").build());
    assert_eq!(err.kind(), &DecodeErrorKind::InvalidUtf8);
    assert_eq!(err.offset(), 9);
}

#[test]
fn missing_nul_terminator() {
    let err = decode_err(false, Msg::new(b'O').u64(1).raw(b"no-terminator").build());
    assert_eq!(err.kind(), &DecodeErrorKind::MissingNulTerminator);
    assert_eq!((err.tag(), err.offset()), (Some(b'O'), 9));
    assert_eq!(
        err.to_string(),
        "pgoutput message 'O' at byte 9: string has no NUL terminator"
    );
}

#[test]
fn trailing_bytes() {
    let mut bytes = encoder::begin(1, 2, 3).to_vec();
    bytes.extend_from_slice(b"xyz");
    let err = decode_err(false, Bytes::from(bytes));
    assert_eq!(err.kind(), &DecodeErrorKind::TrailingBytes(3));
    assert_eq!((err.tag(), err.offset()), (Some(b'B'), 21));
    assert_eq!(
        err.to_string(),
        "pgoutput message 'B' at byte 21: 3 unexpected bytes after the end of the message"
    );

    let mut bytes = encoder::keepalive(1, 2, 0).to_vec();
    bytes.push(0);
    let err = ReplicationMessage::decode(Bytes::from(bytes)).unwrap_err();
    assert_eq!(err.kind(), &DecodeErrorKind::TrailingBytes(1));
    assert_eq!(
        err.to_string(),
        "walsender message 'k' at byte 18: 1 unexpected bytes after the end of the message"
    );
}

#[test]
fn wrong_tuple_kind_bytes() {
    // An unknown column kind: 'I' 0 | rel 1..5 | 'N' 5 | ncols 6..8 | 't' 8 | len 9..13 | "a" 13 | kind 14
    let bytes = Msg::new(b'I')
        .u32(1)
        .u8(b'N')
        .u16(2)
        .u8(b't')
        .i32(1)
        .raw(b"a")
        .u8(b'x')
        .build();
    let err = decode_err(false, bytes);
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnexpectedByte {
            expected: "column kind 'n', 'u', 't' or 'b'",
            found: b'x'
        }
    );
    assert_eq!((err.tag(), err.offset()), (Some(b'I'), 14));
    assert_eq!(
        err.to_string(),
        "pgoutput message 'I' at byte 14: expected column kind 'n', 'u', 't' or 'b', found 'x'"
    );

    let unexpected = |bytes: Bytes, in_stream: bool, offset: usize, found: u8| {
        let err = decode_err(in_stream, bytes);
        assert!(
            matches!(err.kind(), DecodeErrorKind::UnexpectedByte { found: f, .. } if *f == found),
            "{err}"
        );
        assert_eq!(err.offset(), offset, "{err}");
    };
    // Insert with 'K' where 'N' belongs.
    unexpected(
        Msg::new(b'I').u32(1).u8(b'K').tuple(&[]).build(),
        false,
        5,
        b'K',
    );
    unexpected(
        Msg::new(b'I').u32(9).u32(1).u8(b'O').tuple(&[]).build(),
        true,
        9,
        b'O',
    );
    // Update with neither 'K', 'O' nor 'N'.
    unexpected(
        Msg::new(b'U').u32(1).u8(b'X').tuple(&[]).build(),
        false,
        5,
        b'X',
    );
    // Update with an old key followed by another old key instead of 'N'.
    unexpected(
        Msg::new(b'U')
            .u32(1)
            .u8(b'K')
            .tuple(&[Col::Null])
            .u8(b'K')
            .tuple(&[])
            .build(),
        false,
        9,
        b'K',
    );
    // Delete with a new tuple.
    unexpected(
        Msg::new(b'D').u32(1).u8(b'N').tuple(&[]).build(),
        false,
        5,
        b'N',
    );
    // A column kind byte of 0.
    unexpected(
        Msg::new(b'D').u32(1).u8(b'O').u16(1).u8(0).build(),
        false,
        8,
        0,
    );
}

#[test]
fn unknown_replica_identity() {
    let bytes = encoder::relation(None, 1, "s", "t", b'x', &[]);
    let err = decode_err(false, bytes);
    assert_eq!(err.kind(), &DecodeErrorKind::UnknownReplicaIdentity(b'x'));
    assert_eq!((err.tag(), err.offset()), (Some(b'R'), 9));
}

#[test]
fn envelope_errors() {
    let full = encoder::xlogdata(1, 2, 3, b"");
    for len in 1..25 {
        let err = ReplicationMessage::decode(full.slice(..len)).unwrap_err();
        assert_eq!(err.tag(), Some(b'w'));
        assert!(
            matches!(err.kind(), DecodeErrorKind::UnexpectedEof { .. }),
            "{err}"
        );
    }
    let full = encoder::keepalive(1, 2, 1);
    for len in 1..full.len() {
        let err = ReplicationMessage::decode(full.slice(..len)).unwrap_err();
        assert_eq!(err.tag(), Some(b'k'));
        assert!(
            matches!(err.kind(), DecodeErrorKind::UnexpectedEof { .. }),
            "{err}"
        );
    }
    let err = ReplicationMessage::decode(full.slice(..10)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "walsender message 'k' at byte 9: message ends early: needed 8 bytes, 1 left"
    );
}

#[test]
fn errors_are_std_errors() {
    let err: Box<dyn std::error::Error> = Box::new(decode_err(false, Bytes::new()));
    assert!(err.source().is_none());
    assert_eq!(err.to_string(), "pgoutput message at byte 0: empty message");
}
