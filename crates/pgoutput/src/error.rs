//! The one error type of decoding: what went wrong, in which message, at which byte.

use std::fmt;

/// Which protocol a failing message belonged to, so the error text says where to look.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Layer {
    /// The CopyData payload of a replication stream ('w', 'k').
    Walsender,
    /// A pgoutput message (the payload of an XLogData).
    Pgoutput,
}

/// A message that could not be decoded.
///
/// Carries the message's tag byte and the offset (from the tag, which is byte 0) of the
/// field that failed, so a bad message can be found in a hex dump. For a pgoutput message
/// taken from an XLogData, the offset is relative to the XLogData's payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError {
    layer: Layer,
    tag: Option<u8>,
    offset: usize,
    kind: DecodeErrorKind,
}

impl DecodeError {
    pub(crate) fn new(layer: Layer, tag: Option<u8>, offset: usize, kind: DecodeErrorKind) -> Self {
        DecodeError {
            layer,
            tag,
            offset,
            kind,
        }
    }

    /// The message's tag byte; `None` only for an empty message.
    pub fn tag(&self) -> Option<u8> {
        self.tag
    }

    /// Where decoding failed, counted in bytes from the tag.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// What was wrong.
    pub fn kind(&self) -> &DecodeErrorKind {
        &self.kind
    }
}

impl fmt::Display for DecodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let layer = match self.layer {
            Layer::Walsender => "walsender",
            Layer::Pgoutput => "pgoutput",
        };
        match self.tag {
            Some(tag) => write!(
                f,
                "{layer} message {} at byte {}: {}",
                ByteRepr(tag),
                self.offset,
                self.kind
            ),
            None => write!(f, "{layer} message at byte {}: {}", self.offset, self.kind),
        }
    }
}

// The kind is part of Display, so it is not also reported as the source (error chains
// would print it twice).
impl std::error::Error for DecodeError {}

/// What was wrong with a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeErrorKind {
    /// The message had no bytes at all, not even a tag.
    #[error("empty message")]
    Empty,
    /// The tag is not one this protocol defines.
    #[error("unknown message tag {}", byte_repr(.0))]
    UnknownTag(u8),
    /// The message ended inside a field.
    #[error("message ends early: needed {needed} bytes, {available} left")]
    UnexpectedEof {
        /// Bytes the field needed.
        needed: usize,
        /// Bytes that were left.
        available: usize,
    },
    /// A length or count field was negative.
    #[error("negative length or count {0}")]
    NegativeLength(i32),
    /// A name was not UTF-8 (the offset points at the first bad byte).
    #[error("name is not valid UTF-8")]
    InvalidUtf8,
    /// A string ran to the end of the message without its NUL terminator.
    #[error("string has no NUL terminator")]
    MissingNulTerminator,
    /// A byte that selects what follows had a value not allowed there.
    #[error("expected {expected}, found {}", byte_repr(.found))]
    UnexpectedByte {
        /// What the protocol allows at this position.
        expected: &'static str,
        /// The byte that was there.
        found: u8,
    },
    /// A complete message was followed by this many more bytes.
    #[error("{0} unexpected bytes after the end of the message")]
    TrailingBytes(usize),
    /// A Relation message's replica identity byte is not 'd', 'n', 'f' or 'i'.
    #[error("unknown replica identity {}", byte_repr(.0))]
    UnknownReplicaIdentity(u8),
    /// The message exists only in a later pgoutput protocol version than the decoder was
    /// configured for, so the stream and the decoder disagree about the protocol.
    #[error("message needs pgoutput protocol version {required}, decoder is set to {configured}")]
    UnsupportedByProtocolVersion {
        /// The protocol version the message was introduced in.
        required: u32,
        /// [`DecoderOptions::protocol_version`](crate::DecoderOptions::protocol_version).
        configured: u32,
    },
}

fn byte_repr(byte: &u8) -> ByteRepr {
    ByteRepr(*byte)
}

/// Shows a protocol byte as a quoted character when printable (`'I'`), else as hex.
struct ByteRepr(u8);

impl fmt::Display for ByteRepr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_ascii_graphic() {
            write!(f, "'{}'", char::from(self.0))
        } else {
            write!(f, "0x{:02x}", self.0)
        }
    }
}
