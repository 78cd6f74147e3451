//! Reused buffers for the encoders, so a value needs no allocation of its own.

use crate::exact::Exact;
use crate::writer;

/// Reused buffers for the encoders, so a value needs no allocation of its own.
#[derive(Debug, Default)]
pub struct Scratch {
    pub(crate) digits: Vec<u8>,
    pub(crate) unscaled: Vec<u8>,
    pub(crate) text: String,
    /// An array's encoded elements, before their count is known.
    pub(crate) items: Vec<u8>,
    /// An array element's unescaped text.
    pub(crate) element: Vec<u8>,
    /// An hstore's encoded pairs, before their count is known.
    pub(crate) map_items: Vec<u8>,
    /// An hstore pair's unescaped key and value.
    pub(crate) pair: [Vec<u8>; 2],
    /// What the event's Debezium-shaped fields could not hold.
    pub(crate) exact: Exact,
    /// A binary value printed as PostgreSQL's text output.
    pub(crate) printed: String,
    /// Where the last envelope encoded put its source's snapshot marker.
    pub(crate) snapshot_marker_at: usize,
}

impl Scratch {
    /// Where the last envelope encoded put its source's snapshot marker, for
    /// [`crate::mark_snapshot_last`].
    pub fn snapshot_marker_at(&self) -> usize {
        self.snapshot_marker_at
    }

    /// Writes the string `format` prints, through the reused text buffer.
    pub(crate) fn string(&mut self, out: &mut Vec<u8>, format: impl FnOnce(&mut String)) {
        self.text.clear();
        format(&mut self.text);
        writer::string(out, &self.text);
    }
}
