//! Properties: arbitrary bytes never panic the decoders, and generated valid row messages
//! round-trip.

#[path = "support/encoder.rs"]
mod encoder;

use bytes::Bytes;
use encoder::Col;
use proptest::prelude::*;
use sluice_pgoutput::{
    ColumnValue, DecodeErrorKind, Decoder, DecoderOptions, LogicalMessage, ReplicationMessage,
    Tuple,
};

/// Every decoder state: in or out of a stream block, with or without abort info.
fn decoders() -> Vec<Decoder> {
    let mut all = Vec::new();
    for abort_info in [false, true] {
        for in_stream in [false, true] {
            let mut d = Decoder::new(DecoderOptions {
                protocol_version: 4,
                streaming_abort_info: abort_info,
            });
            if in_stream {
                d.decode(encoder::stream_start(1, 1))
                    .expect("Stream Start decodes");
            }
            all.push(d);
        }
    }
    all
}

/// Reads every part of a decoded message, as a consumer would.
fn touch(msg: &LogicalMessage) {
    let tuples: Vec<&Tuple> = match msg {
        LogicalMessage::Insert(m) => vec![m.new_tuple()],
        LogicalMessage::Update(m) => m
            .old_tuple()
            .map(|o| o.tuple())
            .into_iter()
            .chain([m.new_tuple()])
            .collect(),
        LogicalMessage::Delete(m) => vec![m.old_tuple().tuple()],
        LogicalMessage::Relation(m) => {
            for c in m.columns() {
                let _ = (c.name(), c.is_key());
            }
            vec![]
        }
        _ => vec![],
    };
    for tuple in tuples {
        assert_eq!(tuple.iter().count(), tuple.len());
        for (i, value) in tuple.iter().enumerate() {
            assert_eq!(tuple.get(i), Some(value));
        }
    }
}

/// Any bytes; or, to get past the tag, a known tag followed by any bytes.
fn message_bytes() -> impl Strategy<Value = Vec<u8>> {
    let tags = b"BCORYIUDTMSEcAbPKrpwk".to_vec();
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..256),
        (
            proptest::sample::select(tags),
            proptest::collection::vec(any::<u8>(), 0..256)
        )
            .prop_map(|(tag, rest)| [vec![tag], rest].concat()),
    ]
}

fn column() -> impl Strategy<Value = Col> {
    prop_oneof![
        Just(Col::Null),
        Just(Col::Toast),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Col::Text),
        proptest::collection::vec(any::<u8>(), 0..40).prop_map(Col::Binary),
    ]
}

fn columns() -> impl Strategy<Value = Vec<Col>> {
    proptest::collection::vec(column(), 0..24)
}

fn expected(cols: &[Col]) -> Vec<ColumnValue<'_>> {
    cols.iter()
        .map(|c| match c {
            Col::Null => ColumnValue::Null,
            Col::Toast => ColumnValue::UnchangedToast,
            Col::Text(v) => ColumnValue::Text(v),
            Col::Binary(v) => ColumnValue::Binary(v),
        })
        .collect()
}

fn decoder(in_stream: bool) -> Decoder {
    let mut d = Decoder::new(DecoderOptions {
        protocol_version: 4,
        streaming_abort_info: false,
    });
    if in_stream {
        d.decode(encoder::stream_start(1, 1))
            .expect("Stream Start decodes");
    }
    d
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in message_bytes()) {
        let bytes = Bytes::from(bytes);
        if let Ok(ReplicationMessage::XLogData(x)) = ReplicationMessage::decode(bytes.clone()) {
            for mut d in decoders() {
                if let Ok(msg) = d.decode(x.data().clone()) {
                    touch(&msg);
                }
            }
        }
        for mut d in decoders() {
            match d.decode(bytes.clone()) {
                Ok(msg) => touch(&msg),
                Err(err) => {
                    prop_assert!(err.offset() <= bytes.len());
                    if let DecodeErrorKind::UnexpectedEof { needed, available } = *err.kind() {
                        prop_assert!(needed > available);
                        prop_assert_eq!(err.offset() + available, bytes.len());
                    }
                    let _ = err.to_string();
                }
            }
        }
    }

    #[test]
    fn inserts_round_trip(
        in_stream in any::<bool>(),
        xid in any::<u32>(),
        relation in any::<u32>(),
        cols in columns(),
    ) {
        let xid = in_stream.then_some(xid);
        let bytes = encoder::insert(xid, relation, &cols);
        let LogicalMessage::Insert(m) = decoder(in_stream).decode(bytes).unwrap() else {
            panic!("not an Insert");
        };
        prop_assert_eq!(m.xid(), xid);
        prop_assert_eq!(m.relation_id(), relation);
        prop_assert_eq!(m.new_tuple().len(), cols.len());
        prop_assert_eq!(m.new_tuple().iter().collect::<Vec<_>>(), expected(&cols));
    }

    #[test]
    fn updates_round_trip(
        in_stream in any::<bool>(),
        xid in any::<u32>(),
        relation in any::<u32>(),
        old in proptest::option::of((proptest::sample::select(vec![b'K', b'O']), columns())),
        new in columns(),
    ) {
        let xid = in_stream.then_some(xid);
        let old_ref = old.as_ref().map(|(kind, cols)| (*kind, cols.as_slice()));
        let bytes = encoder::update(xid, relation, old_ref, &new);
        let LogicalMessage::Update(m) = decoder(in_stream).decode(bytes).unwrap() else {
            panic!("not an Update");
        };
        prop_assert_eq!(m.xid(), xid);
        prop_assert_eq!(m.relation_id(), relation);
        match (&old, m.old_tuple()) {
            (None, None) => {}
            (Some((kind, cols)), Some(got)) => {
                prop_assert_eq!(got.is_key(), *kind == b'K');
                prop_assert_eq!(got.tuple().iter().collect::<Vec<_>>(), expected(cols));
            }
            (want, got) => prop_assert!(false, "old tuple: wanted {:?}, got {:?}", want, got),
        }
        prop_assert_eq!(m.new_tuple().iter().collect::<Vec<_>>(), expected(&new));
    }
}
