//! One column's value, encoded straight from PostgreSQL's text or binary form into Avro,
//! without an intermediate value tree: a scalar by its kind (`scalar`), an array element by
//! element (`array`), and the binary form of a kind that reads only text printed as
//! PostgreSQL's text output first (`output`).

use crate::array;
use crate::kind::{ColumnKind, Raw, ValueError};
use crate::output::Output;
use crate::scratch::Scratch;

impl ColumnKind {
    /// Appends the Avro encoding of a non-null `raw` value; `output` prints the binary form
    /// of a kind that does not read it by itself (see [`ColumnKind::reads_binary`]) as
    /// PostgreSQL's text output, which is then encoded as text mode's value is.
    pub(crate) fn encode_with(
        self,
        output: Option<&Output>,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        let (Raw::Binary(bytes), Some(output)) = (raw, output) else {
            return self.encode(raw, out, scratch);
        };
        if self.reads_binary() {
            return self.encode(raw, out, scratch);
        }
        let mut printed = std::mem::take(&mut scratch.printed);
        printed.clear();
        let result = output
            .print(bytes, &mut printed)
            .map_err(|source| ValueError::Binary { kind: self, source })
            .and_then(|()| self.encode(Raw::Text(printed.as_bytes()), out, scratch));
        scratch.printed = printed;
        result
    }

    /// Appends the Avro encoding of a non-null `raw` value.
    pub(crate) fn encode(
        self,
        raw: Raw<'_>,
        out: &mut Vec<u8>,
        scratch: &mut Scratch,
    ) -> Result<(), ValueError> {
        match (self, raw) {
            (_, Raw::Null) => Err(ValueError::Unrepresentable("NULL")),
            (_, Raw::Unchanged) => self.encode_unchanged(out),
            (_, Raw::Binary(_)) if !self.reads_binary() => {
                Err(ValueError::BinaryUnsupported { kind: self })
            }
            (ColumnKind::Scalar(kind), raw) => kind.encode(raw, out, scratch),
            (ColumnKind::Array { element, delimiter }, Raw::Text(text)) => {
                array::encode_text_array(self, element, delimiter, text, out, scratch)
            }
            (ColumnKind::Array { element, .. }, Raw::Binary(bytes)) => {
                array::encode_binary_array(self, element, bytes, out, scratch)
            }
        }
    }
}
