//! Fuzzes every decoding entry point of sluice-pgoutput with one input:
//!
//! - the input as a walsender CopyData payload (`ReplicationMessage::decode`), and for an
//!   XLogData its payload through a pgoutput `Decoder`;
//! - the input itself as a pgoutput message, so mutations need not rebuild the 25-byte
//!   XLogData header to reach the pgoutput decoder.
//!
//! Each pgoutput decode runs under every decoder state: outside and inside a stream block
//! (entered with a synthetic Stream Start), with and without Stream Abort's abort info,
//! plus a protocol-1 decoder. Decoded messages are read in full, and tuples are checked
//! for internal consistency: `iter`, `len` and `get` agree, and re-encoding the iterated
//! columns gives back exactly the tuple's raw bytes.

#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use sluice_pgoutput::{
    ColumnValue, DecodeError, DecodeErrorKind, Decoder, DecoderOptions, LogicalMessage,
    ReplicationMessage, Tuple,
};

/// Stream Start for xid 1, first segment.
const STREAM_START: &[u8] = b"S\x00\x00\x00\x01\x01";

fuzz_target!(|data: &[u8]| {
    let input = Bytes::copy_from_slice(data);

    let payload = match ReplicationMessage::decode(input.clone()) {
        Ok(ReplicationMessage::XLogData(x)) => {
            let _ = (x.wal_start(), x.wal_end(), x.send_time().to_unix_micros());
            assert_eq!(x.data().len() + 25, input.len());
            Some(x.into_data())
        }
        Ok(ReplicationMessage::PrimaryKeepalive(k)) => {
            let _ = (k.wal_end(), k.send_time(), k.reply_requested());
            assert_eq!(input.len(), 18);
            None
        }
        Ok(_) => None,
        Err(err) => {
            check_error(&err, input.len());
            None
        }
    };

    for decoder in decoders() {
        if let Some(payload) = &payload {
            decode(&mut decoder.clone(), payload.clone());
        }
        decode(&mut decoder.clone(), input.clone());
    }
});

fn decoders() -> Vec<Decoder> {
    let mut all = vec![Decoder::new(DecoderOptions::default())];
    for streaming_abort_info in [false, true] {
        let outside = Decoder::new(DecoderOptions {
            protocol_version: 4,
            streaming_abort_info,
        });
        let mut inside = outside.clone();
        inside
            .decode(Bytes::from_static(STREAM_START))
            .expect("the synthetic Stream Start decodes");
        assert!(inside.in_stream());
        all.push(outside);
        all.push(inside);
    }
    all
}

fn decode(decoder: &mut Decoder, bytes: Bytes) {
    let was_in_stream = decoder.in_stream();
    match decoder.decode(bytes.clone()) {
        Ok(message) => {
            match &message {
                LogicalMessage::StreamStart(_) => assert!(decoder.in_stream()),
                LogicalMessage::StreamStop => assert!(!decoder.in_stream()),
                _ => assert_eq!(decoder.in_stream(), was_in_stream),
            }
            assert_eq!(bytes.first(), Some(&message.tag()));
            read_all(&message);
        }
        Err(err) => {
            assert_eq!(
                decoder.in_stream(),
                was_in_stream,
                "a failed decode moved the state"
            );
            check_error(&err, bytes.len());
        }
    }
}

fn check_error(err: &DecodeError, len: usize) {
    assert!(err.offset() <= len, "{err}");
    assert_eq!(err.tag().is_none(), len == 0, "{err}");
    if let DecodeErrorKind::UnexpectedEof { needed, available } = *err.kind() {
        assert!(needed > available, "{err}");
        assert_eq!(err.offset() + available, len, "{err}");
    }
    let _ = err.to_string();
}

fn read_all(message: &LogicalMessage) {
    let _ = format!("{message:?}");
    match message {
        LogicalMessage::Begin(m) => {
            let _ = (m.final_lsn(), m.commit_time(), m.xid());
        }
        LogicalMessage::Commit(m) => {
            let _ = (m.flags(), m.commit_lsn(), m.end_lsn(), m.commit_time());
        }
        LogicalMessage::Origin(m) => {
            let _ = (m.commit_lsn(), m.name().len());
        }
        LogicalMessage::Relation(m) => {
            let _ = (m.xid(), m.relation_id(), m.namespace(), m.name());
            let _ = m.replica_identity().as_byte();
            for column in m.columns() {
                let _ = (column.flags(), column.is_key(), column.name());
                let _ = (column.type_oid(), column.type_modifier());
            }
        }
        LogicalMessage::Type(m) => {
            let _ = (m.xid(), m.type_oid(), m.namespace(), m.name());
        }
        LogicalMessage::Insert(m) => {
            let _ = (m.xid(), m.relation_id());
            check_tuple(m.new_tuple());
        }
        LogicalMessage::Update(m) => {
            let _ = (m.xid(), m.relation_id());
            if let Some(old) = m.old_tuple() {
                let _ = old.is_key();
                check_tuple(old.tuple());
            }
            check_tuple(m.new_tuple());
        }
        LogicalMessage::Delete(m) => {
            let _ = (m.xid(), m.relation_id(), m.old_tuple().is_key());
            check_tuple(m.old_tuple().tuple());
        }
        LogicalMessage::Truncate(m) => {
            let _ = (m.xid(), m.options(), m.cascade(), m.restart_identity());
            let _ = m
                .relation_ids()
                .iter()
                .fold(0u32, |sum, oid| sum.wrapping_add(*oid));
        }
        LogicalMessage::Message(m) => {
            let _ = (m.xid(), m.flags(), m.transactional(), m.lsn(), m.prefix());
            let _ = m.content().len();
        }
        LogicalMessage::StreamStart(m) => {
            let _ = (m.xid(), m.first_segment());
        }
        LogicalMessage::StreamCommit(m) => {
            let _ = (
                m.xid(),
                m.flags(),
                m.commit_lsn(),
                m.end_lsn(),
                m.commit_time(),
            );
        }
        LogicalMessage::StreamAbort(m) => {
            assert_eq!(m.abort_lsn().is_some(), m.abort_time().is_some());
            let _ = (m.xid(), m.subxid());
        }
        LogicalMessage::BeginPrepare(m) => {
            let _ = (
                m.prepare_lsn(),
                m.end_lsn(),
                m.prepare_time(),
                m.xid(),
                m.gid(),
            );
        }
        LogicalMessage::Prepare(m) => {
            let _ = (m.flags(), m.prepare_lsn(), m.end_lsn(), m.prepare_time());
            let _ = (m.xid(), m.gid());
        }
        LogicalMessage::CommitPrepared(m) => {
            let _ = (m.flags(), m.commit_lsn(), m.end_lsn(), m.commit_time());
            let _ = (m.xid(), m.gid());
        }
        LogicalMessage::RollbackPrepared(m) => {
            let _ = (m.flags(), m.prepare_end_lsn(), m.rollback_end_lsn());
            let _ = (m.prepare_time(), m.rollback_time(), m.xid(), m.gid());
        }
        LogicalMessage::StreamPrepare(m) => {
            let _ = (m.flags(), m.prepare_lsn(), m.end_lsn(), m.prepare_time());
            let _ = (m.xid(), m.gid());
        }
        LogicalMessage::StreamStop => {}
        _ => {}
    }
}

/// The tuple's views agree with each other and with its raw bytes.
fn check_tuple(tuple: &Tuple) {
    let columns: Vec<ColumnValue<'_>> = tuple.iter().collect();
    assert_eq!(columns.len(), tuple.len());
    assert_eq!(tuple.is_empty(), columns.is_empty());
    assert_eq!(tuple.get(tuple.len()), None);

    let mut reencoded = Vec::with_capacity(tuple.raw().len());
    for (index, column) in columns.iter().enumerate() {
        assert_eq!(tuple.get(index).as_ref(), Some(column));
        match *column {
            ColumnValue::Null => reencoded.push(b'n'),
            ColumnValue::UnchangedToast => reencoded.push(b'u'),
            ColumnValue::Text(value) | ColumnValue::Binary(value) => {
                let kind = if matches!(column, ColumnValue::Text(_)) {
                    b't'
                } else {
                    b'b'
                };
                reencoded.push(kind);
                let len = u32::try_from(value.len()).expect("a value shorter than 4 GiB");
                reencoded.extend_from_slice(&len.to_be_bytes());
                reencoded.extend_from_slice(value);
                let owned = tuple
                    .slice_ref(value)
                    .expect("the value lies inside the tuple");
                assert_eq!(owned.as_ref(), value);
            }
            _ => panic!("a column kind this target does not know"),
        }
    }
    assert_eq!(reencoded.as_slice(), tuple.raw().as_ref());
}
