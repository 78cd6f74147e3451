//! `hstore` (extension), from its text output or binary send form, in Debezium's default form
//! (`hstore.handling.mode = json`): a JSON object of nullable strings, `io.debezium.data.Json`;
//! or in its map form: an Avro map of nullable strings.

use crate::binary_form::BinaryReader;
use crate::formats;
use crate::kind::{ColumnKind, ValueError};
use crate::scratch::Scratch;
use crate::writer;

/// Writes one hstore pair after another.
trait Pairs {
    fn pair(&mut self, key: &str, value: Option<&str>);
}

/// An Avro map's items, counted.
struct MapItems<'a> {
    items: &'a mut Vec<u8>,
    count: usize,
}

impl Pairs for MapItems<'_> {
    fn pair(&mut self, key: &str, value: Option<&str>) {
        writer::string(self.items, key);
        match value {
            None => writer::union_index(self.items, 0),
            Some(value) => {
                writer::union_index(self.items, 1);
                writer::string(self.items, value);
            }
        }
        self.count += 1;
    }
}

/// A JSON object's members, as Debezium's (Jackson's) `{"a":"1","b":null}`.
struct JsonMembers<'a> {
    text: &'a mut String,
}

impl Pairs for JsonMembers<'_> {
    fn pair(&mut self, key: &str, value: Option<&str>) {
        if !self.text.ends_with('{') {
            self.text.push(',');
        }
        formats::push_json_string(self.text, key);
        self.text.push(':');
        match value {
            None => self.text.push_str("null"),
            Some(value) => formats::push_json_string(self.text, value),
        }
    }
}

/// Appends an hstore (`raw` its text form, or with `binary` its binary form) as a JSON string
/// with `json`, else as an Avro map.
pub(crate) fn encode(
    kind: ColumnKind,
    json: bool,
    raw: &[u8],
    binary: bool,
    out: &mut Vec<u8>,
    scratch: &mut Scratch,
) -> Result<(), ValueError> {
    let form = if binary { "binary" } else { "text" };
    let bad = || kind.malformed(form, raw);
    let [mut key, mut value] = std::mem::take(&mut scratch.pair);
    let result = if json {
        let mut text = std::mem::take(&mut scratch.text);
        text.clear();
        text.push('{');
        let mut members = JsonMembers { text: &mut text };
        let read = read_pairs(raw, binary, [&mut key, &mut value], &mut members);
        text.push('}');
        if read.is_some() {
            writer::string(out, &text);
        }
        scratch.text = text;
        read
    } else {
        let mut items = std::mem::take(&mut scratch.map_items);
        items.clear();
        let mut map = MapItems {
            items: &mut items,
            count: 0,
        };
        let read = read_pairs(raw, binary, [&mut key, &mut value], &mut map);
        let count = map.count;
        if read.is_some() {
            writer::block(out, count, &items);
        }
        scratch.map_items = items;
        read
    };
    scratch.pair = [key, value];
    result.ok_or_else(bad)
}

fn read_pairs(
    raw: &[u8],
    binary: bool,
    buffers: [&mut Vec<u8>; 2],
    pairs: &mut impl Pairs,
) -> Option<()> {
    if binary {
        read_binary(raw, pairs)
    } else {
        read_text(raw, buffers, pairs)
    }
}

/// An hstore as `hstore_out` prints it: `"a"=>"1", "b"=>NULL`, keys and values quoted with
/// `"` and `\` escaped by a backslash; empty for no pairs. Keys and values are unescaped into
/// the two buffers.
fn read_text(text: &[u8], [key, value]: [&mut Vec<u8>; 2], pairs: &mut impl Pairs) -> Option<()> {
    let mut rest = text;
    let mut first = true;
    while !rest.is_empty() {
        if !std::mem::take(&mut first) {
            rest = rest.strip_prefix(b", ")?;
        }
        let (body, after) = quoted(rest)?;
        unescape(body, key);
        rest = after.strip_prefix(b"=>")?;
        let has_value = match rest.strip_prefix(b"NULL") {
            Some(after) => {
                rest = after;
                false
            }
            None => {
                let (body, after) = quoted(rest)?;
                unescape(body, value);
                rest = after;
                true
            }
        };
        let key = std::str::from_utf8(key).ok()?;
        let value = match has_value {
            true => Some(std::str::from_utf8(value).ok()?),
            false => None,
        };
        pairs.pair(key, value);
    }
    Some(())
}

/// A `"`-quoted string at the start of `text`: its body (escapes kept) and what follows.
fn quoted(text: &[u8]) -> Option<(&[u8], &[u8])> {
    let body = text.strip_prefix(b"\"")?;
    let mut at = 0;
    loop {
        match body.get(at)? {
            b'"' => return Some((&body[..at], &body[at + 1..])),
            b'\\' => at += 2,
            _ => at += 1,
        }
    }
}

/// A quoted body with its backslash escapes removed.
fn unescape(body: &[u8], out: &mut Vec<u8>) {
    out.clear();
    let mut escaped = false;
    for &byte in body {
        if escaped || byte != b'\\' {
            out.push(byte);
            escaped = false;
        } else {
            escaped = true;
        }
    }
}

/// An hstore's binary form: `int32` count, then per pair an `int32` key length and the
/// key, an `int32` value length (-1 for NULL) and the value.
fn read_binary(raw: &[u8], pairs: &mut impl Pairs) -> Option<()> {
    let mut reader = BinaryReader::new(raw);
    let count = usize::try_from(reader.i32()?).ok()?;
    // Every pair takes at least its two 4-byte lengths.
    if count > reader.remaining() / 8 {
        return None;
    }
    for _ in 0..count {
        let key = std::str::from_utf8(reader.field()??).ok()?;
        let value = match reader.field()? {
            None => None,
            Some(value) => Some(std::str::from_utf8(value).ok()?),
        };
        pairs.pair(key, value);
    }
    reader.end()
}
