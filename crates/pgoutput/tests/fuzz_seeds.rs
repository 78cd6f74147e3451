//! Writes the seed corpora of the `decode` fuzz target (fuzz/seeds/decode: one valid message
//! of every kind, both bare and wrapped in an XLogData, plus keepalives) and of the `copy`
//! target (fuzz/seeds/copy: binary COPY streams).
//!
//! Ignored by default; regenerate with
//! `cargo test -p sluice-pgoutput --test fuzz_seeds -- --ignored`
//! (or set `SLUICE_FUZZ_SEED_DIR` to write the seed directories elsewhere).

#[path = "support/encoder.rs"]
mod encoder;

use std::path::PathBuf;

use bytes::Bytes;
use encoder::{Col, binary, text};
use sluice_pgoutput::CopyReader;
use sluice_pgoutput::copy::testing::{FuzzInput, header, stream};

fn seeds() -> Vec<(String, Bytes)> {
    let cols = [
        text("1"),
        Col::Null,
        Col::Toast,
        binary(b"\x00\x01"),
        text("héllo"),
    ];
    let rel_cols = [
        (1, "id", 23, -1),
        (0, "name", 1043, 68),
        (0, "data", 17, -1),
    ];
    let fixed: Vec<(&str, Bytes)> = vec![
        ("begin", encoder::begin(0x16_B374_D848, 1_000, 771)),
        (
            "commit",
            encoder::commit(0, 0x16_B374_D848, 0x16_B374_D878, 1_000),
        ),
        ("origin", encoder::origin(5, "upstream")),
        ("stream-start", encoder::stream_start(771, 1)),
        ("stream-stop", encoder::stream_stop()),
        ("stream-commit", encoder::stream_commit(771, 0, 10, 20, 30)),
        ("stream-abort", encoder::stream_abort(771, 772, None)),
        (
            "stream-abort-info",
            encoder::stream_abort(771, 771, Some((40, 50))),
        ),
        (
            "begin-prepare",
            encoder::begin_prepare(10, 20, 30, 771, "gid"),
        ),
        (
            "prepare",
            encoder::prepare_like(b'P', 0, 10, 20, 30, 771, "gid"),
        ),
        (
            "commit-prepared",
            encoder::prepare_like(b'K', 0, 10, 20, 30, 771, "gid"),
        ),
        (
            "rollback-prepared",
            encoder::rollback_prepared(0, 10, 20, 30, 40, 771, "gid"),
        ),
        (
            "stream-prepare",
            encoder::prepare_like(b'p', 0, 10, 20, 30, 771, "gid"),
        ),
    ];
    let mut messages: Vec<(String, Bytes)> = fixed
        .into_iter()
        .map(|(name, bytes)| (name.to_owned(), bytes))
        .collect();
    for (suffix, xid) in [("", None), ("-streamed", Some(771))] {
        let streamed: Vec<(&str, Bytes)> = vec![
            (
                "relation",
                encoder::relation(xid, 16384, "public", "users", b'd', &rel_cols),
            ),
            ("type", encoder::type_msg(xid, 90001, "public", "mood")),
            ("insert", encoder::insert(xid, 16384, &cols)),
            ("update", encoder::update(xid, 16384, None, &cols)),
            (
                "update-key",
                encoder::update(xid, 16384, Some((b'K', &cols[..1])), &cols),
            ),
            (
                "update-full",
                encoder::update(xid, 16384, Some((b'O', &cols)), &cols),
            ),
            ("delete", encoder::delete(xid, 16384, b'K', &cols[..1])),
            ("truncate", encoder::truncate(xid, 3, &[16384, 16390])),
            (
                "message",
                encoder::message(xid, 1, 99, "sluice", b"content"),
            ),
        ];
        messages.extend(
            streamed
                .into_iter()
                .map(|(name, bytes)| (format!("{name}{suffix}"), bytes)),
        );
    }
    let mut seeds = Vec::new();
    for (name, bytes) in messages {
        seeds.push((
            format!("xlogdata-{name}"),
            encoder::xlogdata(0x10, 0x20, 7, &bytes),
        ));
        seeds.push((format!("pgoutput-{name}"), bytes));
    }
    seeds.push(("keepalive".to_owned(), encoder::keepalive(0x20, 7, 0)));
    seeds.push(("keepalive-reply".to_owned(), encoder::keepalive(0x20, 7, 1)));
    seeds
}

/// The seed directory of fuzz target `target`, created.
fn seed_dir(target: &str) -> PathBuf {
    let root = std::env::var_os("SLUICE_FUZZ_SEED_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds"));
    let dir = root.join(target);
    std::fs::create_dir_all(&dir).expect("the seed directory can be created");
    dir
}

#[test]
#[ignore = "writes the fuzz seed corpus; run on purpose"]
fn write_fuzz_seeds() {
    let dir = seed_dir("decode");
    for (name, bytes) in seeds() {
        std::fs::write(dir.join(name), &bytes).unwrap();
    }
}

/// Binary COPY streams: rows of binary values (int4, text, bytea, numeric, timestamp in their
/// send forms), NULLs, a column read as text, a header extension, a stream cut short.
fn copy_seeds() -> Vec<(&'static str, Vec<u8>)> {
    let row: &[Option<&[u8]>] = &[
        Some(b"\0\0\0\x2a"),
        Some("h\u{e9}llo".as_bytes()),
        None,
        Some(b"\0\xff\x10"),
        Some(b"\0\x02\0\0\0\0\0\x02\0\x01\x13\x88"),
        Some(b"\0\x02\xb5\x82\xc4\x7f\xb1\x20"),
        Some(b"(1,2)"),
    ];
    let rows = stream(&[row, row, &[None; 7]]);
    let mut with_extension = header(1, b"extension");
    with_extension.extend_from_slice(&rows[header(0, b"").len()..]);
    let mut cut_short = rows.clone();
    cut_short.truncate(rows.len() - 9);
    // Seven columns, the 3rd and the 7th as text.
    let seven = 0x40 | 7;
    let input = |chunk_size, columns, stream: &[u8]| {
        FuzzInput {
            chunk_size,
            columns,
            stream,
        }
        .write()
    };
    vec![
        ("empty", input(0, 0, &stream(&[]))),
        ("rows", input(0, seven, &rows)),
        ("rows-chunked", input(5, 0, &rows)),
        ("extension", input(3, seven, &with_extension)),
        ("cut-short", input(0, 0, &cut_short)),
    ]
}

#[test]
#[ignore = "writes the fuzz seed corpus; run on purpose"]
fn write_copy_fuzz_seeds() {
    let dir = seed_dir("copy");
    for (name, bytes) in copy_seeds() {
        std::fs::write(dir.join(name), &bytes).unwrap();
    }
}

#[test]
fn copy_seeds_read_as_written() {
    for (name, input) in copy_seeds() {
        let input = FuzzInput::read(&input).unwrap();
        let mut reader = CopyReader::with_text_columns(input.text_columns());
        reader.push(&Bytes::copy_from_slice(input.stream));
        let mut rows = 0;
        reader
            .rows(|_| {
                rows += 1;
                Ok::<(), ()>(())
            })
            .unwrap_or_else(|e| panic!("seed {name}: {e}"))
            .unwrap();
        assert_eq!(reader.finished(), name != "cut-short", "{name}");
        let expected = match name {
            "empty" => 0,
            "cut-short" => 2,
            _ => 3,
        };
        assert_eq!(rows, expected, "{name}");
    }
}

#[test]
fn seeds_are_valid() {
    use sluice_pgoutput::{Decoder, DecoderOptions, ReplicationMessage};
    for (name, bytes) in seeds() {
        if name.starts_with("xlogdata-") || name.starts_with("keepalive") {
            ReplicationMessage::decode(bytes).unwrap();
            continue;
        }
        let in_stream = name.ends_with("-streamed") || name == "pgoutput-stream-stop";
        let mut d = Decoder::new(DecoderOptions {
            protocol_version: 4,
            streaming_abort_info: name.ends_with("abort-info"),
        });
        if in_stream {
            d.decode(encoder::stream_start(1, 1)).unwrap();
        }
        d.decode(bytes)
            .unwrap_or_else(|e| panic!("seed {name} does not decode: {e}"));
    }
}
