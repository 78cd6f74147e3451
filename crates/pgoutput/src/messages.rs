//! The pgoutput messages, one struct each, with an accessor for every wire field.
//!
//! Fields are private so that the wire details (flags bytes, the pg_catalog shorthand)
//! stay interpretations of this crate rather than something every consumer redoes.

use bytes::Bytes;

use crate::reader::Name;
use crate::tuple::{OldTuple, Tuple};
use crate::types::{Lsn, Oid, PgTimestamp, Xid};

/// The schema pgoutput abbreviates to an empty string.
const PG_CATALOG: &str = "pg_catalog";

fn namespace_or_catalog(name: &Name) -> &str {
    match name.as_str() {
        "" => PG_CATALOG,
        namespace => namespace,
    }
}

/// 'B': a transaction starts; its changes follow, then a [`Commit`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Begin {
    pub(crate) final_lsn: Lsn,
    pub(crate) commit_time: PgTimestamp,
    pub(crate) xid: Xid,
}

impl Begin {
    /// LSN of the transaction's commit record: known up front because only committed
    /// transactions are decoded.
    pub fn final_lsn(&self) -> Lsn {
        self.final_lsn
    }

    /// When the transaction committed.
    pub fn commit_time(&self) -> PgTimestamp {
        self.commit_time
    }

    /// The transaction's id.
    pub fn xid(&self) -> Xid {
        self.xid
    }
}

/// 'C': the end of the transaction opened by the last [`Begin`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commit {
    pub(crate) flags: u8,
    pub(crate) commit_lsn: Lsn,
    pub(crate) end_lsn: Lsn,
    pub(crate) commit_time: PgTimestamp,
}

impl Commit {
    /// Flags byte; PostgreSQL defines none yet and sends 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// LSN of the commit record.
    pub fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// LSN just past the commit record: the position to confirm once the transaction is
    /// durably handled.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// When the transaction committed.
    pub fn commit_time(&self) -> PgTimestamp {
        self.commit_time
    }
}

/// 'O': the transaction came from another node through a replication origin.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub(crate) commit_lsn: Lsn,
    pub(crate) name: Name,
}

impl Origin {
    /// The commit LSN on the origin server.
    pub fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// The origin's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// Replica identity of a relation: which old values Update and Delete carry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ReplicaIdentity {
    /// 'd': the primary key, if any.
    Default,
    /// 'n': nothing; Update and Delete carry no old values.
    Nothing,
    /// 'f': every column.
    Full,
    /// 'i': the columns of a chosen unique index.
    Index,
}

impl ReplicaIdentity {
    /// From the wire byte, `None` for bytes PostgreSQL does not define.
    pub fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            b'd' => Some(ReplicaIdentity::Default),
            b'n' => Some(ReplicaIdentity::Nothing),
            b'f' => Some(ReplicaIdentity::Full),
            b'i' => Some(ReplicaIdentity::Index),
            _ => None,
        }
    }

    /// The wire byte (`relreplident` in `pg_class`).
    pub fn as_byte(self) -> u8 {
        match self {
            ReplicaIdentity::Default => b'd',
            ReplicaIdentity::Nothing => b'n',
            ReplicaIdentity::Full => b'f',
            ReplicaIdentity::Index => b'i',
        }
    }
}

/// One column of a [`Relation`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelationColumn {
    pub(crate) flags: u8,
    pub(crate) name: Name,
    pub(crate) type_oid: Oid,
    pub(crate) type_modifier: i32,
}

impl RelationColumn {
    /// The raw flags byte (bit 0: part of the replica identity key).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the column is part of the replica identity key, i.e. carries a value in
    /// an [`OldTuple::Key`].
    pub fn is_key(&self) -> bool {
        self.flags & 1 != 0
    }

    /// The column's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The column's type (resolve it with a [`TypeMessage`] or the catalog).
    pub fn type_oid(&self) -> Oid {
        self.type_oid
    }

    /// The type modifier (`atttypmod`), e.g. a varchar's length plus 4; -1 for none.
    pub fn type_modifier(&self) -> i32 {
        self.type_modifier
    }
}

/// 'R': the shape of a relation, sent before its first change in a session and again
/// whenever it changes. Later row messages refer to it by [`relation_id`](Self::relation_id).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relation {
    pub(crate) xid: Option<Xid>,
    pub(crate) relation_id: Oid,
    pub(crate) namespace: Name,
    pub(crate) name: Name,
    pub(crate) replica_identity: ReplicaIdentity,
    pub(crate) columns: Vec<RelationColumn>,
}

impl Relation {
    /// The streamed transaction this came in, when inside a Stream Start..Stream Stop block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation's OID.
    pub fn relation_id(&self) -> Oid {
        self.relation_id
    }

    /// The schema, with the wire's empty-string shorthand expanded to `pg_catalog`.
    pub fn namespace(&self) -> &str {
        namespace_or_catalog(&self.namespace)
    }

    /// The relation's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }

    /// The relation's replica identity.
    pub fn replica_identity(&self) -> ReplicaIdentity {
        self.replica_identity
    }

    /// The columns, in the order tuples carry their values (dropped and generated columns
    /// are not sent).
    pub fn columns(&self) -> &[RelationColumn] {
        &self.columns
    }
}

/// 'Y': a non-built-in type used by a following Relation, so consumers can name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TypeMessage {
    pub(crate) xid: Option<Xid>,
    pub(crate) type_oid: Oid,
    pub(crate) namespace: Name,
    pub(crate) name: Name,
}

impl TypeMessage {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The type's OID.
    pub fn type_oid(&self) -> Oid {
        self.type_oid
    }

    /// The type's schema, with the empty-string shorthand expanded to `pg_catalog`.
    pub fn namespace(&self) -> &str {
        namespace_or_catalog(&self.namespace)
    }

    /// The type's name.
    pub fn name(&self) -> &str {
        self.name.as_str()
    }
}

/// 'I': a row was inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Insert {
    pub(crate) xid: Option<Xid>,
    pub(crate) relation_id: Oid,
    pub(crate) new_tuple: Tuple,
}

impl Insert {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation, as announced by a [`Relation`] message.
    pub fn relation_id(&self) -> Oid {
        self.relation_id
    }

    /// The inserted row.
    pub fn new_tuple(&self) -> &Tuple {
        &self.new_tuple
    }
}

/// 'U': a row was updated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Update {
    pub(crate) xid: Option<Xid>,
    pub(crate) relation_id: Oid,
    pub(crate) old_tuple: Option<OldTuple>,
    pub(crate) new_tuple: Tuple,
}

impl Update {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation, as announced by a [`Relation`] message.
    pub fn relation_id(&self) -> Oid {
        self.relation_id
    }

    /// The old row: present with `REPLICA IDENTITY FULL` ('O'), or when the key changed
    /// ('K'); absent otherwise.
    pub fn old_tuple(&self) -> Option<&OldTuple> {
        self.old_tuple.as_ref()
    }

    /// The new row. Unchanged TOASTed columns come as [`ColumnValue::UnchangedToast`].
    ///
    /// [`ColumnValue::UnchangedToast`]: crate::ColumnValue::UnchangedToast
    pub fn new_tuple(&self) -> &Tuple {
        &self.new_tuple
    }
}

/// 'D': a row was deleted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Delete {
    pub(crate) xid: Option<Xid>,
    pub(crate) relation_id: Oid,
    pub(crate) old_tuple: OldTuple,
}

impl Delete {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The relation, as announced by a [`Relation`] message.
    pub fn relation_id(&self) -> Oid {
        self.relation_id
    }

    /// The deleted row's key ('K') or whole row ('O', `REPLICA IDENTITY FULL`).
    pub fn old_tuple(&self) -> &OldTuple {
        &self.old_tuple
    }
}

/// 'T': one TRUNCATE statement, over one or more relations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truncate {
    pub(crate) xid: Option<Xid>,
    pub(crate) options: u8,
    pub(crate) relation_ids: Vec<Oid>,
}

impl Truncate {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The raw options byte (bit 0 CASCADE, bit 1 RESTART IDENTITY).
    pub fn options(&self) -> u8 {
        self.options
    }

    /// Whether `CASCADE` was given.
    pub fn cascade(&self) -> bool {
        self.options & 1 != 0
    }

    /// Whether `RESTART IDENTITY` was given.
    pub fn restart_identity(&self) -> bool {
        self.options & 2 != 0
    }

    /// The truncated relations.
    pub fn relation_ids(&self) -> &[Oid] {
        &self.relation_ids
    }
}

/// 'M': a message written by `pg_logical_emit_message` (sent when the subscription asks
/// for `messages`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogicalDecodingMessage {
    pub(crate) xid: Option<Xid>,
    pub(crate) flags: u8,
    pub(crate) lsn: Lsn,
    pub(crate) prefix: Name,
    pub(crate) content: Bytes,
}

impl LogicalDecodingMessage {
    /// The streamed transaction this came in, when inside a stream block.
    pub fn xid(&self) -> Option<Xid> {
        self.xid
    }

    /// The raw flags byte (bit 0: transactional).
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// Whether the message is part of its transaction (else it was sent immediately,
    /// outside any Begin..Commit).
    pub fn transactional(&self) -> bool {
        self.flags & 1 != 0
    }

    /// LSN of the message's WAL record.
    pub fn lsn(&self) -> Lsn {
        self.lsn
    }

    /// The prefix the writer chose, to tell applications' messages apart.
    pub fn prefix(&self) -> &str {
        self.prefix.as_str()
    }

    /// The content, uninterpreted (a slice of the input).
    pub fn content(&self) -> &Bytes {
        &self.content
    }
}

/// 'S': a block of changes of a large in-progress transaction follows, up to Stream Stop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamStart {
    pub(crate) xid: Xid,
    pub(crate) first_segment: bool,
}

impl StreamStart {
    /// The streamed transaction.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// Whether this is the transaction's first block.
    pub fn first_segment(&self) -> bool {
        self.first_segment
    }
}

/// 'c': a streamed transaction committed; its blocks can now be applied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamCommit {
    pub(crate) xid: Xid,
    pub(crate) flags: u8,
    pub(crate) commit_lsn: Lsn,
    pub(crate) end_lsn: Lsn,
    pub(crate) commit_time: PgTimestamp,
}

impl StreamCommit {
    /// The streamed transaction.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// Flags byte; PostgreSQL defines none yet and sends 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// LSN of the commit record.
    pub fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// LSN just past the commit record: the position to confirm.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// When the transaction committed.
    pub fn commit_time(&self) -> PgTimestamp {
        self.commit_time
    }
}

/// 'A': a streamed transaction, or one of its subtransactions, aborted; discard its blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAbort {
    pub(crate) xid: Xid,
    pub(crate) subxid: Xid,
    pub(crate) abort_info: Option<(Lsn, PgTimestamp)>,
}

impl StreamAbort {
    /// The top-level streamed transaction.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// The aborted subtransaction; equal to [`xid`](Self::xid) when the whole transaction
    /// aborted.
    pub fn subxid(&self) -> Xid {
        self.subxid
    }

    /// LSN of the abort record; sent only by protocol 4 with `streaming = parallel`
    /// ([`DecoderOptions::streaming_abort_info`](crate::DecoderOptions::streaming_abort_info)).
    pub fn abort_lsn(&self) -> Option<Lsn> {
        self.abort_info.map(|(lsn, _)| lsn)
    }

    /// When the abort happened; sent under the same conditions as
    /// [`abort_lsn`](Self::abort_lsn).
    pub fn abort_time(&self) -> Option<PgTimestamp> {
        self.abort_info.map(|(_, time)| time)
    }
}

/// 'b': a transaction prepared for two-phase commit starts; its changes follow, then a
/// [`Prepare`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BeginPrepare {
    pub(crate) prepare_lsn: Lsn,
    pub(crate) end_lsn: Lsn,
    pub(crate) prepare_time: PgTimestamp,
    pub(crate) xid: Xid,
    pub(crate) gid: Name,
}

impl BeginPrepare {
    /// LSN of the PREPARE TRANSACTION record.
    pub fn prepare_lsn(&self) -> Lsn {
        self.prepare_lsn
    }

    /// LSN just past the PREPARE TRANSACTION record.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// When the transaction was prepared.
    pub fn prepare_time(&self) -> PgTimestamp {
        self.prepare_time
    }

    /// The transaction's id.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// The global transaction identifier given to PREPARE TRANSACTION.
    pub fn gid(&self) -> &str {
        self.gid.as_str()
    }
}

/// 'P': the end of a prepared transaction's changes; also 'p', the same fields for a
/// streamed transaction prepared for two-phase commit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prepare {
    pub(crate) flags: u8,
    pub(crate) prepare_lsn: Lsn,
    pub(crate) end_lsn: Lsn,
    pub(crate) prepare_time: PgTimestamp,
    pub(crate) xid: Xid,
    pub(crate) gid: Name,
}

impl Prepare {
    /// Flags byte; PostgreSQL defines none yet and sends 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// LSN of the PREPARE TRANSACTION record.
    pub fn prepare_lsn(&self) -> Lsn {
        self.prepare_lsn
    }

    /// LSN just past the PREPARE TRANSACTION record.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// When the transaction was prepared.
    pub fn prepare_time(&self) -> PgTimestamp {
        self.prepare_time
    }

    /// The transaction's id.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// The global transaction identifier.
    pub fn gid(&self) -> &str {
        self.gid.as_str()
    }
}

/// 'K': COMMIT PREPARED of a transaction sent earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPrepared {
    pub(crate) flags: u8,
    pub(crate) commit_lsn: Lsn,
    pub(crate) end_lsn: Lsn,
    pub(crate) commit_time: PgTimestamp,
    pub(crate) xid: Xid,
    pub(crate) gid: Name,
}

impl CommitPrepared {
    /// Flags byte; PostgreSQL defines none yet and sends 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// LSN of the COMMIT PREPARED record.
    pub fn commit_lsn(&self) -> Lsn {
        self.commit_lsn
    }

    /// LSN just past the COMMIT PREPARED record: the position to confirm.
    pub fn end_lsn(&self) -> Lsn {
        self.end_lsn
    }

    /// When the transaction committed.
    pub fn commit_time(&self) -> PgTimestamp {
        self.commit_time
    }

    /// The transaction's id.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// The global transaction identifier.
    pub fn gid(&self) -> &str {
        self.gid.as_str()
    }
}

/// 'r': ROLLBACK PREPARED of a transaction sent earlier.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackPrepared {
    pub(crate) flags: u8,
    pub(crate) prepare_end_lsn: Lsn,
    pub(crate) rollback_end_lsn: Lsn,
    pub(crate) prepare_time: PgTimestamp,
    pub(crate) rollback_time: PgTimestamp,
    pub(crate) xid: Xid,
    pub(crate) gid: Name,
}

impl RollbackPrepared {
    /// Flags byte; PostgreSQL defines none yet and sends 0.
    pub fn flags(&self) -> u8 {
        self.flags
    }

    /// LSN just past the PREPARE TRANSACTION record, to match the prepare being undone.
    pub fn prepare_end_lsn(&self) -> Lsn {
        self.prepare_end_lsn
    }

    /// LSN just past the ROLLBACK PREPARED record.
    pub fn rollback_end_lsn(&self) -> Lsn {
        self.rollback_end_lsn
    }

    /// When the transaction was prepared.
    pub fn prepare_time(&self) -> PgTimestamp {
        self.prepare_time
    }

    /// When it was rolled back.
    pub fn rollback_time(&self) -> PgTimestamp {
        self.rollback_time
    }

    /// The transaction's id.
    pub fn xid(&self) -> Xid {
        self.xid
    }

    /// The global transaction identifier.
    pub fn gid(&self) -> &str {
        self.gid.as_str()
    }
}
