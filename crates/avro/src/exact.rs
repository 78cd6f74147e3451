//! What a Debezium-shaped field cannot hold, carried beside it: a numeric NaN or ±Infinity, a
//! timestamp past an Avro long of microseconds, an xid8 past 2^63 - 1, an array's dimensions
//! and lower bounds. The field keeps Debezium's shape (holding null where it may, else a
//! documented stand-in), and the event's `exact` field (an upsert row's `__exact`) holds,
//! per column, what the field could not: docs/types.md, "Exact values".

use serde_json::{Value, json};

use crate::writer;

/// One dimension of an array: its lower bound and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Dimension {
    pub(crate) lower: i32,
    pub(crate) length: i32,
}

/// Which row of an event a column belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Side {
    Before,
    After,
}

impl Side {
    fn index(self) -> usize {
        match self {
            Side::Before => 0,
            Side::After => 1,
        }
    }
}

/// What an encoder wrote that is not the whole value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Inexact {
    /// The value it wrote is the value.
    #[default]
    No,
    /// A stand-in: the field cannot hold the value, and holds null where it may.
    StandIn,
    /// Debezium's form of the value, which does not tell it apart from others (a `varbit`'s
    /// leading zeros): the field keeps it, and the exact value goes beside it.
    Lossy,
}

/// What an event's encoders found the Debezium-shaped fields could not hold: the column
/// being encoded, then the entries of the columns done, per side, already encoded.
#[derive(Debug, Default)]
pub(crate) struct Exact {
    /// What the encoder just wrote; `text` holds PostgreSQL's text of the real value.
    inexact: Inexact,
    text: String,
    /// Whether an array's elements keep their stand-ins instead of becoming null: in a key,
    /// which must tell rows apart.
    pub(crate) keep_stand_ins: bool,
    /// The column being encoded: a scalar's exact text, an array's shape and elements.
    has_value: bool,
    value: String,
    dimensions: Vec<Dimension>,
    /// (index, PostgreSQL's text) of the elements that are stand-ins.
    elements: Vec<(usize, String)>,
    /// Encoded map entries (column name, `ExactValue`) and their count, per side.
    entries: [Vec<u8>; 2],
    counts: [usize; 2],
}

impl Exact {
    /// Forgets everything: an event starts.
    pub(crate) fn begin_event(&mut self) {
        self.inexact = Inexact::No;
        self.keep_stand_ins = false;
        self.clear_column();
        for entries in &mut self.entries {
            entries.clear();
        }
        self.counts = [0, 0];
    }

    fn clear_column(&mut self) {
        self.has_value = false;
        self.dimensions.clear();
        self.elements.clear();
    }

    /// Called by an encoder that wrote a stand-in: the buffer to print the real value into,
    /// as PostgreSQL prints it.
    pub(crate) fn stand_in(&mut self) -> &mut String {
        self.inexact(Inexact::StandIn)
    }

    /// Called by an encoder that wrote Debezium's lossy form of the value: the buffer to print
    /// the real value into, as PostgreSQL prints it.
    pub(crate) fn lossy(&mut self) -> &mut String {
        self.inexact(Inexact::Lossy)
    }

    fn inexact(&mut self, inexact: Inexact) -> &mut String {
        self.inexact = inexact;
        self.text.clear();
        &mut self.text
    }

    /// What the value just encoded was (and forgets it).
    pub(crate) fn took(&mut self) -> Inexact {
        std::mem::take(&mut self.inexact)
    }

    /// The stand-in just taken was a scalar column's value.
    pub(crate) fn scalar(&mut self) {
        std::mem::swap(&mut self.value, &mut self.text);
        self.has_value = true;
    }

    /// The stand-in just taken was the element at `index` (0-based, row-major) of the array.
    pub(crate) fn element(&mut self, index: usize) {
        self.elements.push((index, std::mem::take(&mut self.text)));
    }

    /// An array's shape, kept unless it is the default: one dimension from 1 (or none, `{}`).
    pub(crate) fn shape(&mut self, dimensions: &[Dimension]) {
        let default = match dimensions {
            [] => true,
            [only] => only.lower == 1,
            _ => false,
        };
        if !default {
            self.dimensions.clear();
            self.dimensions.extend_from_slice(dimensions);
        }
    }

    /// Ends a column: its entry, if it needs one, goes to `side`'s map (nowhere for a key).
    pub(crate) fn end_column(&mut self, side: Option<Side>, name: &str) {
        let pending = self.has_value || !self.elements.is_empty() || !self.dimensions.is_empty();
        if !pending {
            return;
        }
        if let Some(side) = side {
            let out = &mut self.entries[side.index()];
            writer::string(out, name);
            if self.has_value {
                writer::union_index(out, 1);
                writer::string(out, &self.value);
            } else {
                writer::union_index(out, 0);
            }
            if self.dimensions.is_empty() {
                writer::union_index(out, 0);
            } else {
                writer::union_index(out, 1);
                writer::long(out, i64::try_from(self.dimensions.len()).unwrap_or(0));
                for dimension in &self.dimensions {
                    writer::int(out, dimension.lower);
                    writer::int(out, dimension.length);
                }
                writer::long(out, 0);
            }
            if self.elements.is_empty() {
                writer::union_index(out, 0);
            } else {
                writer::union_index(out, 1);
                writer::long(out, i64::try_from(self.elements.len()).unwrap_or(0));
                for (index, text) in &self.elements {
                    writer::int(out, i32::try_from(*index).unwrap_or(i32::MAX));
                    writer::string(out, text);
                }
                writer::long(out, 0);
            }
            self.counts[side.index()] += 1;
        }
        self.clear_column();
    }

    /// What the value just encoded left for the exact field, for tests: ` | exact NaN`,
    /// ` | dims [0:1][1:2]`, ` | [1] NaN`; empty for none. Forgets it.
    #[cfg(test)]
    pub(crate) fn describe_value(&mut self) -> String {
        let mut parts = Vec::new();
        match self.took() {
            Inexact::No => {}
            Inexact::StandIn => parts.push(format!("exact {}", self.text)),
            Inexact::Lossy => parts.push(format!("beside {}", self.text)),
        }
        if !self.dimensions.is_empty() {
            let bounds = self.dimensions.iter().map(|d| {
                format!(
                    "[{}:{}]",
                    d.lower,
                    i64::from(d.lower) + i64::from(d.length) - 1
                )
            });
            parts.push(format!("dims {}", bounds.collect::<String>()));
        }
        parts.extend(
            self.elements
                .iter()
                .map(|(i, text)| format!("[{i}] {text}")),
        );
        self.clear_column();
        parts.iter().map(|p| format!(" | {p}")).collect()
    }

    /// The envelope's `exact` field: null when no column of either row needs an entry.
    pub(crate) fn write_envelope_field(&self, out: &mut Vec<u8>) {
        if self.counts == [0, 0] {
            writer::union_index(out, 0);
            return;
        }
        writer::union_index(out, 1);
        self.write_map(Side::Before, out);
        self.write_map(Side::After, out);
    }

    /// One side's map, or null when it has no entry: an upsert row's `__exact` field.
    pub(crate) fn write_map(&self, side: Side, out: &mut Vec<u8>) {
        let count = self.counts[side.index()];
        if count == 0 {
            writer::union_index(out, 0);
            return;
        }
        writer::union_index(out, 1);
        writer::long(out, i64::try_from(count).unwrap_or(0));
        out.extend_from_slice(&self.entries[side.index()]);
        writer::long(out, 0);
    }
}

/// The `ExactValue` record, defined at its first use; `defined` says whether it was.
fn exact_value_schema(defined: &mut bool) -> Value {
    const NAME: &str = "io.sluice.data.ExactValue";
    if std::mem::replace(defined, true) {
        return json!(NAME);
    }
    json!({
        "type": "record",
        "name": "ExactValue",
        "namespace": "io.sluice.data",
        "fields": [
            {"name": "value", "type": ["null", "string"], "default": null},
            {"name": "dimensions", "type": ["null", {"type": "array", "items": {
                "type": "record",
                "name": "ArrayDimension",
                "fields": [
                    {"name": "lower", "type": "int"},
                    {"name": "length", "type": "int"},
                ],
            }}], "default": null},
            {"name": "elements", "type": ["null", {"type": "array", "items": {
                "type": "record",
                "name": "ExactElement",
                "fields": [
                    {"name": "index", "type": "int"},
                    {"name": "value", "type": "string"},
                ],
            }}], "default": null},
        ],
    })
}

fn map_schema(defined: &mut bool) -> Value {
    json!(["null", {"type": "map", "values": exact_value_schema(defined)}])
}

/// The envelope's `exact` field, after every field Debezium's envelope has.
pub(crate) fn envelope_field() -> Value {
    let mut defined = false;
    json!({"name": "exact", "type": ["null", {
        "type": "record",
        "name": "Exact",
        "namespace": "io.sluice.data",
        "fields": [
            {"name": "before", "type": map_schema(&mut defined), "default": null},
            {"name": "after", "type": map_schema(&mut defined), "default": null},
        ],
    }], "default": null})
}

/// An upsert row's field of the same maps, named `name`, after the columns.
pub(crate) fn row_field(name: &str) -> Value {
    json!({"name": name, "type": map_schema(&mut false), "default": null})
}

/// The name of an upsert row's exact field: `__exact`, with `_` added while a column has
/// that name.
pub(crate) fn row_field_name<'a>(columns: impl Iterator<Item = &'a str> + Clone) -> String {
    let mut name = "__exact".to_owned();
    while columns.clone().any(|c| c == name) {
        name.push('_');
    }
    name
}
