//! Round trips: every pgoutput message kind, encoded field by field, decodes to the same
//! fields; in and out of a stream block, with and without Stream Abort's abort info.

#[path = "support/encoder.rs"]
mod encoder;

use bytes::Bytes;
use encoder::{Col, binary, text};
use sluice_pgoutput::{
    ColumnValue, DecodeErrorKind, Decoder, DecoderOptions, LogicalMessage, Lsn, OldTuple,
    PgTimestamp, ReplicaIdentity, Tuple,
};

const XID: u32 = 0xDEAD_BEEF;

fn options(abort_info: bool) -> DecoderOptions {
    DecoderOptions {
        protocol_version: 4,
        streaming_abort_info: abort_info,
    }
}

/// A decoder, moved into a stream block first when `in_stream`.
fn decoder(in_stream: bool) -> Decoder {
    let mut d = Decoder::new(options(false));
    if in_stream {
        d.decode(encoder::stream_start(XID, 1))
            .expect("Stream Start decodes");
        assert!(d.in_stream());
    }
    d
}

/// The streamed xid to encode, and to expect back, in each state.
fn states() -> [(bool, Option<u32>); 2] {
    [(false, None), (true, Some(XID))]
}

fn decode(in_stream: bool, bytes: Bytes) -> LogicalMessage {
    let mut d = decoder(in_stream);
    let msg = d.decode(bytes).expect("the message decodes");
    assert_eq!(
        d.in_stream(),
        in_stream,
        "a row message must not change the state"
    );
    msg
}

fn columns(tuple: &Tuple) -> Vec<ColumnValue<'_>> {
    tuple.iter().collect()
}

fn every_kind() -> Vec<Col> {
    vec![
        text("42"),
        Col::Null,
        Col::Toast,
        binary(&[0, 1, 2, 0xFF]),
        text(""),
        binary(&[]),
        text("héllo, wörld"),
    ]
}

fn every_kind_decoded() -> Vec<ColumnValue<'static>> {
    vec![
        ColumnValue::Text(b"42"),
        ColumnValue::Null,
        ColumnValue::UnchangedToast,
        ColumnValue::Binary(&[0, 1, 2, 0xFF]),
        ColumnValue::Text(b""),
        ColumnValue::Binary(&[]),
        ColumnValue::Text("héllo, wörld".as_bytes()),
    ]
}

#[test]
fn begin() {
    for (in_stream, _) in states() {
        let LogicalMessage::Begin(m) = decode(in_stream, encoder::begin(0x16_B374_D848, -5, 771))
        else {
            panic!("not a Begin");
        };
        assert_eq!(m.final_lsn(), Lsn(0x16_B374_D848));
        assert_eq!(m.commit_time(), PgTimestamp(-5));
        assert_eq!(m.xid(), 771);
    }
}

#[test]
fn commit() {
    let LogicalMessage::Commit(m) = decode(false, encoder::commit(0, 10, 20, i64::MAX)) else {
        panic!("not a Commit");
    };
    assert_eq!(m.flags(), 0);
    assert_eq!(m.commit_lsn(), Lsn(10));
    assert_eq!(m.end_lsn(), Lsn(20));
    assert_eq!(m.commit_time(), PgTimestamp(i64::MAX));
    // Unknown flags are kept, not rejected: PostgreSQL may define some later.
    let LogicalMessage::Commit(m) = decode(false, encoder::commit(3, 10, 20, 0)) else {
        panic!("not a Commit");
    };
    assert_eq!(m.flags(), 3);
}

#[test]
fn origin() {
    for (in_stream, _) in states() {
        let LogicalMessage::Origin(m) = decode(in_stream, encoder::origin(99, "node-ä")) else {
            panic!("not an Origin");
        };
        assert_eq!(m.commit_lsn(), Lsn(99));
        assert_eq!(m.name(), "node-ä");
    }
}

#[test]
fn relation() {
    let cols = [
        (1, "id", 23, -1),
        (0, "name", 1043, 68),
        (0, "", 25, -1),
        (3, "ключ", 20, -1),
    ];
    for (in_stream, xid) in states() {
        for (byte, identity) in [
            (b'd', ReplicaIdentity::Default),
            (b'n', ReplicaIdentity::Nothing),
            (b'f', ReplicaIdentity::Full),
            (b'i', ReplicaIdentity::Index),
        ] {
            let bytes = encoder::relation(xid, 16384, "public", "users", byte, &cols);
            let LogicalMessage::Relation(m) = decode(in_stream, bytes) else {
                panic!("not a Relation");
            };
            assert_eq!(m.xid(), xid);
            assert_eq!(m.relation_id(), 16384);
            assert_eq!(m.namespace(), "public");
            assert_eq!(m.name(), "users");
            assert_eq!(m.replica_identity(), identity);
            assert_eq!(identity.as_byte(), byte);
            let got: Vec<_> = m
                .columns()
                .iter()
                .map(|c| (c.flags(), c.name(), c.type_oid(), c.type_modifier()))
                .collect();
            assert_eq!(got, cols);
            let keys: Vec<_> = m.columns().iter().map(|c| c.is_key()).collect();
            assert_eq!(keys, [true, false, false, true]);
        }
    }
}

#[test]
fn relation_in_pg_catalog_and_without_columns() {
    let LogicalMessage::Relation(m) = decode(false, encoder::relation(None, 1, "", "t", b'd', &[]))
    else {
        panic!("not a Relation");
    };
    assert_eq!(m.namespace(), "pg_catalog");
    assert!(m.columns().is_empty());
}

#[test]
fn type_message() {
    for (in_stream, xid) in states() {
        let LogicalMessage::Type(m) =
            decode(in_stream, encoder::type_msg(xid, 90001, "app", "mood"))
        else {
            panic!("not a Type");
        };
        assert_eq!(m.xid(), xid);
        assert_eq!(m.type_oid(), 90001);
        assert_eq!(m.namespace(), "app");
        assert_eq!(m.name(), "mood");
    }
    let LogicalMessage::Type(m) = decode(false, encoder::type_msg(None, 1, "", "int4")) else {
        panic!("not a Type");
    };
    assert_eq!(m.namespace(), "pg_catalog");
}

#[test]
fn insert_with_every_column_kind() {
    for (in_stream, xid) in states() {
        let bytes = encoder::insert(xid, 16385, &every_kind());
        let LogicalMessage::Insert(m) = decode(in_stream, bytes) else {
            panic!("not an Insert");
        };
        assert_eq!(m.xid(), xid);
        assert_eq!(m.relation_id(), 16385);
        let tuple = m.new_tuple();
        assert_eq!(columns(tuple), every_kind_decoded());
        assert_eq!(tuple.len(), 7);
        assert_eq!(tuple.iter().len(), 7);
        assert!(!tuple.is_empty());
        assert_eq!(tuple.get(0), Some(ColumnValue::Text(b"42")));
        assert_eq!(tuple.get(3), Some(ColumnValue::Binary(&[0, 1, 2, 0xFF])));
        assert_eq!(
            tuple.get(6).and_then(|v| v.bytes()),
            Some("héllo, wörld".as_bytes())
        );
        assert_eq!(tuple.get(7), None);
        assert!(tuple.get(1).unwrap().is_null());
        assert!(!tuple.get(2).unwrap().is_null());
        assert_eq!(tuple.get(2).unwrap().bytes(), None);
        let via_into_iter: Vec<_> = tuple.into_iter().collect();
        assert_eq!(via_into_iter, every_kind_decoded());
    }
}

#[test]
fn empty_tuple() {
    let LogicalMessage::Insert(m) = decode(false, encoder::insert(None, 1, &[])) else {
        panic!("not an Insert");
    };
    assert!(m.new_tuple().is_empty());
    assert_eq!(m.new_tuple().len(), 0);
    assert_eq!(m.new_tuple().iter().next(), None);
    assert!(m.new_tuple().raw().is_empty());
}

#[test]
fn tuple_values_are_zero_copy_slices_of_the_input() {
    let bytes = encoder::insert(None, 1, &[text("abc"), binary(b"xyz")]);
    let base = bytes.as_ptr().addr();
    let range = base..base + bytes.len();
    let LogicalMessage::Insert(m) = decode(false, bytes.clone()) else {
        panic!("not an Insert");
    };
    let tuple = m.new_tuple();
    assert!(range.contains(&tuple.raw().as_ptr().addr()));
    for value in tuple {
        let v = value.bytes().unwrap();
        assert!(range.contains(&v.as_ptr().addr()));
        let owned = tuple.slice_ref(v).unwrap();
        assert_eq!(owned, v);
        assert_eq!(owned.as_ptr(), v.as_ptr());
    }
    assert_eq!(
        tuple.slice_ref(b"abc"),
        None,
        "a slice from elsewhere is refused"
    );
    assert_eq!(tuple.slice_ref(b""), Some(Bytes::new()));
}

#[test]
fn tuple_debug_lists_columns() {
    let LogicalMessage::Insert(m) = decode(
        false,
        encoder::insert(None, 1, &[text("a\"b"), Col::Null, binary(&[0])]),
    ) else {
        panic!("not an Insert");
    };
    assert_eq!(
        format!("{:?}", m.new_tuple()),
        r#"[Text("a\"b"), Null, Binary("\x00")]"#
    );
}

#[test]
fn update_without_old_tuple() {
    for (in_stream, xid) in states() {
        let bytes = encoder::update(xid, 7, None, &every_kind());
        let LogicalMessage::Update(m) = decode(in_stream, bytes) else {
            panic!("not an Update");
        };
        assert_eq!(m.xid(), xid);
        assert_eq!(m.relation_id(), 7);
        assert!(m.old_tuple().is_none());
        assert_eq!(columns(m.new_tuple()), every_kind_decoded());
    }
}

#[test]
fn update_with_old_key_or_full_row() {
    for (in_stream, xid) in states() {
        for kind in [b'K', b'O'] {
            let old = [text("1"), Col::Null];
            let bytes = encoder::update(xid, 7, Some((kind, &old)), &[text("2"), text("x")]);
            let LogicalMessage::Update(m) = decode(in_stream, bytes) else {
                panic!("not an Update");
            };
            assert_eq!(m.xid(), xid);
            let old = m.old_tuple().unwrap();
            assert_eq!(old.is_key(), kind == b'K');
            assert!(matches!(
                (kind, old),
                (b'K', OldTuple::Key(_)) | (b'O', OldTuple::Full(_))
            ));
            assert_eq!(
                columns(old.tuple()),
                [ColumnValue::Text(b"1"), ColumnValue::Null]
            );
            assert_eq!(
                columns(m.new_tuple()),
                [ColumnValue::Text(b"2"), ColumnValue::Text(b"x")]
            );
        }
    }
}

#[test]
fn delete() {
    for (in_stream, xid) in states() {
        for kind in [b'K', b'O'] {
            let bytes = encoder::delete(xid, 8, kind, &[text("1"), Col::Toast]);
            let LogicalMessage::Delete(m) = decode(in_stream, bytes) else {
                panic!("not a Delete");
            };
            assert_eq!(m.xid(), xid);
            assert_eq!(m.relation_id(), 8);
            assert_eq!(m.old_tuple().is_key(), kind == b'K');
            assert_eq!(
                columns(m.old_tuple().tuple()),
                [ColumnValue::Text(b"1"), ColumnValue::UnchangedToast]
            );
        }
    }
}

#[test]
fn truncate() {
    for (in_stream, xid) in states() {
        for (options, cascade, restart) in [
            (0, false, false),
            (1, true, false),
            (2, false, true),
            (3, true, true),
        ] {
            let bytes = encoder::truncate(xid, options, &[16384, 16390, u32::MAX]);
            let LogicalMessage::Truncate(m) = decode(in_stream, bytes) else {
                panic!("not a Truncate");
            };
            assert_eq!(m.xid(), xid);
            assert_eq!(m.options(), options);
            assert_eq!(m.cascade(), cascade);
            assert_eq!(m.restart_identity(), restart);
            assert_eq!(m.relation_ids(), [16384, 16390, u32::MAX]);
        }
    }
    let LogicalMessage::Truncate(m) = decode(false, encoder::truncate(None, 0, &[])) else {
        panic!("not a Truncate");
    };
    assert!(m.relation_ids().is_empty());
}

#[test]
fn logical_decoding_message() {
    for (in_stream, xid) in states() {
        for (flags, transactional) in [(0, false), (1, true)] {
            let bytes = encoder::message(xid, flags, 1234, "sluice", b"\0payload\xFF");
            let LogicalMessage::Message(m) = decode(in_stream, bytes) else {
                panic!("not a Message");
            };
            assert_eq!(m.xid(), xid);
            assert_eq!(m.flags(), flags);
            assert_eq!(m.transactional(), transactional);
            assert_eq!(m.lsn(), Lsn(1234));
            assert_eq!(m.prefix(), "sluice");
            assert_eq!(m.content().as_ref(), b"\0payload\xFF");
        }
    }
    let LogicalMessage::Message(m) = decode(false, encoder::message(None, 0, 1, "", b"")) else {
        panic!("not a Message");
    };
    assert_eq!(m.prefix(), "");
    assert!(m.content().is_empty());
}

#[test]
fn stream_start_and_stop_move_the_state() {
    let mut d = Decoder::new(options(false));
    assert!(!d.in_stream());
    let LogicalMessage::StreamStart(m) = d.decode(encoder::stream_start(500, 1)).unwrap() else {
        panic!("not a Stream Start");
    };
    assert_eq!(m.xid(), 500);
    assert!(m.first_segment());
    assert!(d.in_stream());
    assert_eq!(
        d.decode(encoder::stream_stop()).unwrap(),
        LogicalMessage::StreamStop
    );
    assert!(!d.in_stream());
    let LogicalMessage::StreamStart(m) = d.decode(encoder::stream_start(500, 0)).unwrap() else {
        panic!("not a Stream Start");
    };
    assert!(!m.first_segment());
    assert!(d.in_stream());
}

#[test]
fn stream_commit() {
    let LogicalMessage::StreamCommit(m) =
        decode(false, encoder::stream_commit(9, 0, 100, 200, 300))
    else {
        panic!("not a Stream Commit");
    };
    assert_eq!(m.xid(), 9);
    assert_eq!(m.flags(), 0);
    assert_eq!(m.commit_lsn(), Lsn(100));
    assert_eq!(m.end_lsn(), Lsn(200));
    assert_eq!(m.commit_time(), PgTimestamp(300));
}

#[test]
fn stream_abort_with_and_without_abort_info() {
    let mut d = Decoder::new(options(false));
    let LogicalMessage::StreamAbort(m) = d.decode(encoder::stream_abort(9, 10, None)).unwrap()
    else {
        panic!("not a Stream Abort");
    };
    assert_eq!((m.xid(), m.subxid()), (9, 10));
    assert_eq!(m.abort_lsn(), None);
    assert_eq!(m.abort_time(), None);

    let mut d = Decoder::new(options(true));
    let bytes = encoder::stream_abort(9, 9, Some((0xAB_0000_0001, -1)));
    let LogicalMessage::StreamAbort(m) = d.decode(bytes).unwrap() else {
        panic!("not a Stream Abort");
    };
    assert_eq!((m.xid(), m.subxid()), (9, 9));
    assert_eq!(m.abort_lsn(), Some(Lsn(0xAB_0000_0001)));
    assert_eq!(m.abort_time(), Some(PgTimestamp(-1)));

    // Each layout is wrong for the other option.
    let short = Decoder::new(options(true)).decode(encoder::stream_abort(9, 9, None));
    assert!(matches!(
        short.unwrap_err().kind(),
        DecodeErrorKind::UnexpectedEof {
            needed: 8,
            available: 0
        }
    ));
    let long = Decoder::new(options(false)).decode(encoder::stream_abort(9, 9, Some((1, 2))));
    assert_eq!(
        long.unwrap_err().kind(),
        &DecodeErrorKind::TrailingBytes(16)
    );
}

#[test]
fn begin_prepare() {
    let bytes = encoder::begin_prepare(11, 12, 13, 14, "gid-1");
    let LogicalMessage::BeginPrepare(m) = decode(false, bytes) else {
        panic!("not a Begin Prepare");
    };
    assert_eq!(m.prepare_lsn(), Lsn(11));
    assert_eq!(m.end_lsn(), Lsn(12));
    assert_eq!(m.prepare_time(), PgTimestamp(13));
    assert_eq!(m.xid(), 14);
    assert_eq!(m.gid(), "gid-1");
}

#[test]
fn prepare() {
    let bytes = encoder::prepare_like(b'P', 0, 21, 22, 23, 24, "gid-2");
    let LogicalMessage::Prepare(m) = decode(false, bytes) else {
        panic!("not a Prepare");
    };
    assert_eq!(m.flags(), 0);
    assert_eq!(m.prepare_lsn(), Lsn(21));
    assert_eq!(m.end_lsn(), Lsn(22));
    assert_eq!(m.prepare_time(), PgTimestamp(23));
    assert_eq!(m.xid(), 24);
    assert_eq!(m.gid(), "gid-2");
}

#[test]
fn commit_prepared() {
    let bytes = encoder::prepare_like(b'K', 0, 31, 32, 33, 34, "gid-3");
    let LogicalMessage::CommitPrepared(m) = decode(false, bytes) else {
        panic!("not a Commit Prepared");
    };
    assert_eq!(m.flags(), 0);
    assert_eq!(m.commit_lsn(), Lsn(31));
    assert_eq!(m.end_lsn(), Lsn(32));
    assert_eq!(m.commit_time(), PgTimestamp(33));
    assert_eq!(m.xid(), 34);
    assert_eq!(m.gid(), "gid-3");
}

#[test]
fn rollback_prepared() {
    let bytes = encoder::rollback_prepared(0, 41, 42, 43, 44, 45, "gid-4");
    let LogicalMessage::RollbackPrepared(m) = decode(false, bytes) else {
        panic!("not a Rollback Prepared");
    };
    assert_eq!(m.flags(), 0);
    assert_eq!(m.prepare_end_lsn(), Lsn(41));
    assert_eq!(m.rollback_end_lsn(), Lsn(42));
    assert_eq!(m.prepare_time(), PgTimestamp(43));
    assert_eq!(m.rollback_time(), PgTimestamp(44));
    assert_eq!(m.xid(), 45);
    assert_eq!(m.gid(), "gid-4");
}

#[test]
fn stream_prepare() {
    let bytes = encoder::prepare_like(b'p', 0, 51, 52, 53, 54, "");
    let LogicalMessage::StreamPrepare(m) = decode(false, bytes) else {
        panic!("not a Stream Prepare");
    };
    assert_eq!(m.flags(), 0);
    assert_eq!(m.prepare_lsn(), Lsn(51));
    assert_eq!(m.end_lsn(), Lsn(52));
    assert_eq!(m.prepare_time(), PgTimestamp(53));
    assert_eq!(m.xid(), 54);
    assert_eq!(m.gid(), "");
}

#[test]
fn tags_match_the_wire() {
    let cases: Vec<(Bytes, u8)> = vec![
        (encoder::begin(1, 0, 1), b'B'),
        (encoder::commit(0, 1, 2, 0), b'C'),
        (encoder::origin(1, "o"), b'O'),
        (encoder::relation(None, 1, "s", "t", b'd', &[]), b'R'),
        (encoder::type_msg(None, 1, "s", "t"), b'Y'),
        (encoder::insert(None, 1, &[]), b'I'),
        (encoder::update(None, 1, None, &[]), b'U'),
        (encoder::delete(None, 1, b'K', &[]), b'D'),
        (encoder::truncate(None, 0, &[1]), b'T'),
        (encoder::message(None, 0, 1, "p", b"c"), b'M'),
        (encoder::stream_start(1, 1), b'S'),
        (encoder::stream_stop(), b'E'),
        (encoder::stream_commit(1, 0, 1, 2, 3), b'c'),
        (encoder::stream_abort(1, 1, None), b'A'),
        (encoder::begin_prepare(1, 2, 3, 4, "g"), b'b'),
        (encoder::prepare_like(b'P', 0, 1, 2, 3, 4, "g"), b'P'),
        (encoder::prepare_like(b'K', 0, 1, 2, 3, 4, "g"), b'K'),
        (encoder::rollback_prepared(0, 1, 2, 3, 4, 5, "g"), b'r'),
        (encoder::prepare_like(b'p', 0, 1, 2, 3, 4, "g"), b'p'),
    ];
    for (bytes, tag) in cases {
        let msg = Decoder::new(options(false)).decode(bytes).unwrap();
        assert_eq!(msg.tag(), tag, "{msg:?}");
    }
}

#[test]
fn messages_newer_than_the_protocol_version_are_refused() {
    let v1 = DecoderOptions::default();
    assert_eq!(v1.protocol_version, 1);
    let mut d = Decoder::new(v1);
    let err = d.decode(encoder::stream_start(1, 1)).unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnsupportedByProtocolVersion {
            required: 2,
            configured: 1
        }
    );
    assert_eq!((err.tag(), err.offset()), (Some(b'S'), 0));
    assert!(!d.in_stream());

    let mut d = Decoder::new(DecoderOptions {
        protocol_version: 2,
        streaming_abort_info: false,
    });
    d.decode(encoder::stream_start(1, 1)).unwrap();
    let err = d
        .decode(encoder::prepare_like(b'P', 0, 1, 2, 3, 4, "g"))
        .unwrap_err();
    assert_eq!(
        err.kind(),
        &DecodeErrorKind::UnsupportedByProtocolVersion {
            required: 3,
            configured: 2
        }
    );
    // Version 1 messages decode under every version.
    for version in 1..=4 {
        let mut d = Decoder::new(DecoderOptions {
            protocol_version: version,
            streaming_abort_info: false,
        });
        d.decode(encoder::insert(None, 1, &[text("x")])).unwrap();
        assert_eq!(d.options().protocol_version, version);
    }
}

#[test]
fn a_failed_message_leaves_the_state_alone() {
    let mut d = decoder(false);
    let mut truncated = encoder::stream_start(1, 1);
    truncated.truncate(3);
    d.decode(truncated).unwrap_err();
    assert!(!d.in_stream());

    let mut d = decoder(true);
    d.decode(Bytes::from_static(b"E\0")).unwrap_err();
    assert!(d.in_stream());
}

#[test]
fn a_streamed_transaction_end_to_end() {
    let mut d = Decoder::new(options(true));
    let sequence = [
        encoder::stream_start(700, 1),
        encoder::relation(Some(700), 16384, "public", "t", b'f', &[(1, "id", 23, -1)]),
        encoder::insert(Some(700), 16384, &[text("1")]),
        encoder::stream_stop(),
        encoder::stream_start(700, 0),
        encoder::update(Some(700), 16384, Some((b'O', &[text("1")])), &[text("2")]),
        encoder::delete(Some(700), 16384, b'O', &[text("2")]),
        encoder::stream_stop(),
        encoder::stream_commit(700, 0, 0x100, 0x180, 5),
        encoder::begin(0x200, 6, 701),
        encoder::insert(None, 16384, &[text("3")]),
        encoder::commit(0, 0x200, 0x280, 6),
    ];
    let tags: Vec<u8> = sequence
        .into_iter()
        .map(|bytes| d.decode(bytes).unwrap())
        .map(|msg| {
            if let LogicalMessage::Insert(m) = &msg {
                assert_eq!(
                    m.xid().is_some(),
                    m.new_tuple().get(0) == Some(ColumnValue::Text(b"1"))
                );
            }
            msg.tag()
        })
        .collect();
    assert_eq!(tags, b"SRIESUDEcBIC");
    assert!(!d.in_stream());
}
