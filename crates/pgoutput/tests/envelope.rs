//! The walsender envelope, the standby status update, and the scalar types.

#[path = "support/encoder.rs"]
mod encoder;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::{Bytes, BytesMut};
use sluice_pgoutput::{
    Decoder, DecoderOptions, LogicalMessage, Lsn, PgTimestamp, ReplicationMessage,
    StandbyStatusUpdate,
};

#[test]
fn xlogdata_carries_a_zero_copy_payload() {
    let payload = encoder::begin(0x100, 7, 9);
    let bytes = encoder::xlogdata(0x16_B374_D848, 0x17_0000_0000, -3, &payload);
    let base = bytes.as_ptr();
    let ReplicationMessage::XLogData(x) = ReplicationMessage::decode(bytes).unwrap() else {
        panic!("not XLogData");
    };
    assert_eq!(x.wal_start(), Lsn(0x16_B374_D848));
    assert_eq!(x.wal_end(), Lsn(0x17_0000_0000));
    assert_eq!(x.send_time(), PgTimestamp(-3));
    assert_eq!(x.data(), &payload);
    assert_eq!(x.data().as_ptr(), base.wrapping_add(25));

    let mut decoder = Decoder::new(DecoderOptions::default());
    let LogicalMessage::Begin(begin) = decoder.decode(x.into_data()).unwrap() else {
        panic!("not a Begin");
    };
    assert_eq!(begin.xid(), 9);
}

#[test]
fn xlogdata_with_an_empty_payload() {
    let ReplicationMessage::XLogData(x) =
        ReplicationMessage::decode(encoder::xlogdata(0, 0, 0, b"")).unwrap()
    else {
        panic!("not XLogData");
    };
    assert!(x.data().is_empty());
}

#[test]
fn primary_keepalive() {
    for (byte, requested) in [(0, false), (1, true)] {
        let bytes = encoder::keepalive(0xABCD, 1_000_000, byte);
        let ReplicationMessage::PrimaryKeepalive(k) = ReplicationMessage::decode(bytes).unwrap()
        else {
            panic!("not a keepalive");
        };
        assert_eq!(k.wal_end(), Lsn(0xABCD));
        assert_eq!(k.send_time(), PgTimestamp(1_000_000));
        assert_eq!(k.reply_requested(), requested);
    }
}

#[test]
fn standby_status_update_is_34_exact_bytes() {
    let update = StandbyStatusUpdate {
        written: Lsn(0x0102_0304_0506_0708),
        flushed: Lsn(0x1112_1314_1516_1718),
        applied: Lsn(0x2122_2324_2526_2728),
        client_time: PgTimestamp(-2),
        reply_requested: true,
    };
    let mut out = BytesMut::from(&b"prefix"[..]);
    update.encode(&mut out);
    let expected: [u8; 34] = [
        b'r', //
        0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, //
        0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, //
        0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28, //
        0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFE, //
        1,
    ];
    assert_eq!(&out[..6], b"prefix", "encode appends");
    assert_eq!(&out[6..], expected);
    assert_eq!(StandbyStatusUpdate::ENCODED_LEN, 34);

    let mut out = BytesMut::new();
    StandbyStatusUpdate {
        reply_requested: false,
        ..update
    }
    .encode(&mut out);
    assert_eq!(out.len(), 34);
    assert_eq!(out[33], 0);
}

#[test]
fn lsn_display_and_parse_round_trip() {
    for (text, value) in [
        ("0/0", 0),
        ("16/B374D848", 0x16_B374_D848),
        ("0/1", 1),
        ("1/0", 1 << 32),
        ("FFFFFFFF/FFFFFFFF", u64::MAX),
    ] {
        assert_eq!(Lsn(value).to_string(), text);
        assert_eq!(text.parse::<Lsn>().unwrap(), Lsn(value));
    }
    // PostgreSQL accepts lower case and leading zeros.
    assert_eq!("16/b374d848".parse::<Lsn>().unwrap(), Lsn(0x16_B374_D848));
    assert_eq!(
        "00000016/0000000A".parse::<Lsn>().unwrap(),
        Lsn(0x16_0000_000A)
    );
    assert_eq!(Lsn::ZERO, Lsn::default());
    assert_eq!(Lsn::ZERO.to_string(), "0/0");
    assert_eq!(u64::from(Lsn::from(5)), 5);
    assert!(Lsn(1 << 32) > Lsn(0xFFFF_FFFF));
}

#[test]
fn lsn_parse_rejects_other_forms() {
    for bad in [
        "x/1",
        "1",
        "1/2/3",
        "",
        "/",
        "1/",
        "/1",
        "+1/1",
        "1/-1",
        " 1/1",
        "1/1 ",
        "123456789/0",
        "0/123456789",
        "1/g",
    ] {
        let err = bad.parse::<Lsn>().unwrap_err();
        assert!(err.to_string().contains("invalid LSN"), "{bad:?}: {err}");
    }
}

#[test]
fn timestamps_convert_between_epochs() {
    // 2000-01-01 is 946684800 seconds after 1970-01-01.
    assert_eq!(PgTimestamp(0).to_unix_micros(), 946_684_800_000_000);
    assert_eq!(
        PgTimestamp::from_unix_micros(946_684_800_000_000),
        PgTimestamp(0)
    );
    assert_eq!(
        PgTimestamp::from_unix_micros(0),
        PgTimestamp(-946_684_800_000_000)
    );
    for t in [-5, 0, 1, 1_700_000_000_000_000] {
        assert_eq!(
            PgTimestamp::from_unix_micros(PgTimestamp(t).to_unix_micros()),
            PgTimestamp(t)
        );
    }
    // infinity and -infinity stay at the ends.
    assert_eq!(PgTimestamp(i64::MAX).to_unix_micros(), i64::MAX);
    assert_eq!(
        PgTimestamp::from_unix_micros(i64::MIN),
        PgTimestamp(i64::MIN)
    );
}

#[test]
fn timestamps_convert_to_and_from_system_time() {
    let t = UNIX_EPOCH + Duration::from_micros(946_684_800_000_123);
    assert_eq!(PgTimestamp::from_system_time(t), PgTimestamp(123));
    assert_eq!(PgTimestamp(123).to_system_time(), Some(t));
    let before = UNIX_EPOCH - Duration::from_micros(10);
    assert_eq!(
        PgTimestamp::from_system_time(before),
        PgTimestamp(-946_684_800_000_010)
    );
    assert_eq!(
        PgTimestamp(-946_684_800_000_010).to_system_time(),
        Some(before)
    );
    let now = SystemTime::now();
    let back = PgTimestamp::from_system_time(now).to_system_time().unwrap();
    assert!(now.duration_since(back).unwrap() < Duration::from_micros(1));
}

#[test]
fn replication_messages_are_values() {
    let bytes = Bytes::from(encoder::keepalive(1, 2, 1).to_vec());
    let a = ReplicationMessage::decode(bytes.clone()).unwrap();
    let b = ReplicationMessage::decode(bytes).unwrap();
    assert_eq!(a, b);
}
