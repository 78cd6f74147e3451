//! A test-only encoder for walsender and pgoutput messages, written from the documented
//! layouts so that tests state messages field by field instead of as hex.
//!
//! Included by each test crate with `#[path = "support/encoder.rs"] mod encoder;`, so not
//! every crate uses every function.
#![allow(dead_code)]

use bytes::{BufMut, Bytes, BytesMut};

/// A message under construction.
pub(crate) struct Msg(BytesMut);

impl Msg {
    pub(crate) fn new(tag: u8) -> Self {
        let mut buf = BytesMut::new();
        buf.put_u8(tag);
        Msg(buf)
    }

    pub(crate) fn u8(mut self, v: u8) -> Self {
        self.0.put_u8(v);
        self
    }

    pub(crate) fn u16(mut self, v: u16) -> Self {
        self.0.put_u16(v);
        self
    }

    pub(crate) fn u32(mut self, v: u32) -> Self {
        self.0.put_u32(v);
        self
    }

    pub(crate) fn i32(mut self, v: i32) -> Self {
        self.0.put_i32(v);
        self
    }

    pub(crate) fn u64(mut self, v: u64) -> Self {
        self.0.put_u64(v);
        self
    }

    pub(crate) fn i64(mut self, v: i64) -> Self {
        self.0.put_i64(v);
        self
    }

    /// The leading xid of a message inside a stream block.
    pub(crate) fn xid(self, xid: Option<u32>) -> Self {
        match xid {
            Some(xid) => self.u32(xid),
            None => self,
        }
    }

    /// A NUL-terminated string.
    pub(crate) fn str(self, s: &str) -> Self {
        self.raw(s.as_bytes()).u8(0)
    }

    pub(crate) fn raw(mut self, bytes: &[u8]) -> Self {
        self.0.put_slice(bytes);
        self
    }

    /// A TupleData.
    pub(crate) fn tuple(self, cols: &[Col]) -> Self {
        let count = u16::try_from(cols.len()).expect("too many columns");
        cols.iter().fold(self.u16(count), |m, col| match col {
            Col::Null => m.u8(b'n'),
            Col::Toast => m.u8(b'u'),
            Col::Text(v) => m.u8(b't').i32(len32(v)).raw(v),
            Col::Binary(v) => m.u8(b'b').i32(len32(v)).raw(v),
        })
    }

    pub(crate) fn build(self) -> Bytes {
        self.0.freeze()
    }
}

fn len32(v: &[u8]) -> i32 {
    i32::try_from(v.len()).expect("value too long")
}

/// A column to encode.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Col {
    Null,
    Toast,
    Text(Vec<u8>),
    Binary(Vec<u8>),
}

pub(crate) fn text(s: &str) -> Col {
    Col::Text(s.as_bytes().to_vec())
}

pub(crate) fn binary(b: &[u8]) -> Col {
    Col::Binary(b.to_vec())
}

/// A relation column to encode: (flags, name, type oid, type modifier).
pub(crate) type RelCol<'a> = (u8, &'a str, u32, i32);

// ---- walsender envelope ----

pub(crate) fn xlogdata(wal_start: u64, wal_end: u64, send_time: i64, payload: &[u8]) -> Bytes {
    Msg::new(b'w')
        .u64(wal_start)
        .u64(wal_end)
        .i64(send_time)
        .raw(payload)
        .build()
}

pub(crate) fn keepalive(wal_end: u64, send_time: i64, reply: u8) -> Bytes {
    Msg::new(b'k').u64(wal_end).i64(send_time).u8(reply).build()
}

// ---- pgoutput ----

pub(crate) fn begin(final_lsn: u64, commit_time: i64, xid: u32) -> Bytes {
    Msg::new(b'B')
        .u64(final_lsn)
        .i64(commit_time)
        .u32(xid)
        .build()
}

pub(crate) fn commit(flags: u8, commit_lsn: u64, end_lsn: u64, commit_time: i64) -> Bytes {
    Msg::new(b'C')
        .u8(flags)
        .u64(commit_lsn)
        .u64(end_lsn)
        .i64(commit_time)
        .build()
}

pub(crate) fn origin(lsn: u64, name: &str) -> Bytes {
    Msg::new(b'O').u64(lsn).str(name).build()
}

pub(crate) fn relation(
    xid: Option<u32>,
    oid: u32,
    namespace: &str,
    name: &str,
    identity: u8,
    cols: &[RelCol],
) -> Bytes {
    let count = u16::try_from(cols.len()).expect("too many columns");
    cols.iter()
        .fold(
            Msg::new(b'R')
                .xid(xid)
                .u32(oid)
                .str(namespace)
                .str(name)
                .u8(identity)
                .u16(count),
            |m, &(flags, name, type_oid, typmod)| m.u8(flags).str(name).u32(type_oid).i32(typmod),
        )
        .build()
}

pub(crate) fn type_msg(xid: Option<u32>, oid: u32, namespace: &str, name: &str) -> Bytes {
    Msg::new(b'Y')
        .xid(xid)
        .u32(oid)
        .str(namespace)
        .str(name)
        .build()
}

pub(crate) fn insert(xid: Option<u32>, rel: u32, cols: &[Col]) -> Bytes {
    Msg::new(b'I')
        .xid(xid)
        .u32(rel)
        .u8(b'N')
        .tuple(cols)
        .build()
}

/// `old` is ('K' or 'O', columns).
pub(crate) fn update(xid: Option<u32>, rel: u32, old: Option<(u8, &[Col])>, new: &[Col]) -> Bytes {
    let m = Msg::new(b'U').xid(xid).u32(rel);
    let m = match old {
        Some((kind, cols)) => m.u8(kind).tuple(cols),
        None => m,
    };
    m.u8(b'N').tuple(new).build()
}

pub(crate) fn delete(xid: Option<u32>, rel: u32, kind: u8, old: &[Col]) -> Bytes {
    Msg::new(b'D').xid(xid).u32(rel).u8(kind).tuple(old).build()
}

pub(crate) fn truncate(xid: Option<u32>, options: u8, rels: &[u32]) -> Bytes {
    let count = i32::try_from(rels.len()).expect("too many relations");
    rels.iter()
        .fold(Msg::new(b'T').xid(xid).i32(count).u8(options), |m, &r| {
            m.u32(r)
        })
        .build()
}

pub(crate) fn message(
    xid: Option<u32>,
    flags: u8,
    lsn: u64,
    prefix: &str,
    content: &[u8],
) -> Bytes {
    Msg::new(b'M')
        .xid(xid)
        .u8(flags)
        .u64(lsn)
        .str(prefix)
        .i32(len32(content))
        .raw(content)
        .build()
}

pub(crate) fn stream_start(xid: u32, first: u8) -> Bytes {
    Msg::new(b'S').u32(xid).u8(first).build()
}

pub(crate) fn stream_stop() -> Bytes {
    Msg::new(b'E').build()
}

pub(crate) fn stream_commit(
    xid: u32,
    flags: u8,
    commit_lsn: u64,
    end_lsn: u64,
    time: i64,
) -> Bytes {
    Msg::new(b'c')
        .u32(xid)
        .u8(flags)
        .u64(commit_lsn)
        .u64(end_lsn)
        .i64(time)
        .build()
}

pub(crate) fn stream_abort(xid: u32, subxid: u32, info: Option<(u64, i64)>) -> Bytes {
    let m = Msg::new(b'A').u32(xid).u32(subxid);
    match info {
        Some((lsn, time)) => m.u64(lsn).i64(time),
        None => m,
    }
    .build()
}

pub(crate) fn begin_prepare(
    prepare_lsn: u64,
    end_lsn: u64,
    time: i64,
    xid: u32,
    gid: &str,
) -> Bytes {
    Msg::new(b'b')
        .u64(prepare_lsn)
        .u64(end_lsn)
        .i64(time)
        .u32(xid)
        .str(gid)
        .build()
}

/// Prepare ('P'), Commit Prepared ('K') and Stream Prepare ('p') share one layout.
pub(crate) fn prepare_like(
    tag: u8,
    flags: u8,
    lsn: u64,
    end_lsn: u64,
    time: i64,
    xid: u32,
    gid: &str,
) -> Bytes {
    Msg::new(tag)
        .u8(flags)
        .u64(lsn)
        .u64(end_lsn)
        .i64(time)
        .u32(xid)
        .str(gid)
        .build()
}

pub(crate) fn rollback_prepared(
    flags: u8,
    prepare_end_lsn: u64,
    rollback_end_lsn: u64,
    prepare_time: i64,
    rollback_time: i64,
    xid: u32,
    gid: &str,
) -> Bytes {
    Msg::new(b'r')
        .u8(flags)
        .u64(prepare_end_lsn)
        .u64(rollback_end_lsn)
        .i64(prepare_time)
        .i64(rollback_time)
        .u32(xid)
        .str(gid)
        .build()
}
