//! The input of the `values` fuzz target (fuzz/fuzz_targets/values.rs): a column's type, the
//! run's type options and one value, read back by [`Case::read`] and written by
//! [`Case::write`] (the seeds come from the unit tests' pairs). A fuzzer mutating the header
//! explores the type mapping; mutating the value, every parser of that type's kind.
//!
//! Layout: options (bit 0: numeric as string, 1: times in microseconds, 2: hstore as a map,
//! 3: interval infinities, 4: money printed the C way), money scale, type OID (u32
//! big-endian), type modifier (i32), the [`TypeInfo`], then the value to the end. A
//! `TypeInfo` is its `typtype` byte, its name, its domain (0xff: none), its enum labels (a
//! count, then each), its element and its range subtype (each 0: none, else an
//! [`ElementType`]), its composite fields (a count, then each [`ElementType`]) and whether it
//! lacks a send function (a byte); an `ElementType` is its OID, its declared OID and its
//! `TypeInfo`. Strings are a length byte and that many bytes.

use serde_json::Value;

use crate::kind::{ColumnKind, Raw, ValueError};
use crate::output::Output;
use crate::scratch::Scratch;
use crate::types::{ElementType, HstoreMode, NumericMode, TimePrecision, TypeInfo, TypeOptions};

/// How deep types nest in an input (an array of a composite of a range...): deep enough for
/// the pairs, shallow enough that a mutated header stays small.
const MAX_DEPTH: u8 = 4;

/// A column type and one value for it.
#[derive(Debug, Clone)]
pub struct Case<'a> {
    pub type_oid: u32,
    pub type_modifier: i32,
    pub info: TypeInfo,
    pub options: TypeOptions,
    pub value: &'a [u8],
}

impl<'a> Case<'a> {
    /// Reads an input; None when its header is cut short.
    pub fn read(input: &'a [u8]) -> Option<Self> {
        let mut rest = input;
        let flags = take_u8(&mut rest)?;
        let money_scale = u32::from(take_u8(&mut rest)?);
        let type_oid = u32::from_be_bytes(take(&mut rest)?);
        let type_modifier = i32::from_be_bytes(take(&mut rest)?);
        let info = read_info(&mut rest, 0)?;
        let flag = |bit: u8| flags & (1 << bit) != 0;
        Some(Case {
            type_oid,
            type_modifier,
            info,
            options: TypeOptions {
                numeric: if flag(0) {
                    NumericMode::String
                } else {
                    NumericMode::Decimal
                },
                time_precision: if flag(1) {
                    TimePrecision::Microseconds
                } else {
                    TimePrecision::Adaptive
                },
                hstore: if flag(2) {
                    HstoreMode::Map
                } else {
                    HstoreMode::Json
                },
                money_scale,
                interval_infinities: flag(3),
                money_in_c_format: flag(4),
            },
            value: rest,
        })
    }

    /// The input [`Case::read`] reads as this case.
    pub fn write(&self) -> Vec<u8> {
        let options = &self.options;
        let flags = [
            options.numeric == NumericMode::String,
            options.time_precision == TimePrecision::Microseconds,
            options.hstore == HstoreMode::Map,
            options.interval_infinities,
            options.money_in_c_format,
        ]
        .iter()
        .enumerate()
        .fold(0u8, |flags, (bit, set)| flags | (u8::from(*set) << bit));
        let mut out = vec![flags, u8::try_from(options.money_scale).unwrap_or(u8::MAX)];
        out.extend_from_slice(&self.type_oid.to_be_bytes());
        out.extend_from_slice(&self.type_modifier.to_be_bytes());
        write_info(&mut out, &self.info);
        out.extend_from_slice(self.value);
        out
    }

    /// The column's kind.
    pub fn kind(&self) -> ColumnKind {
        ColumnKind::of(self.type_oid, self.type_modifier, &self.info, &self.options)
    }

    /// The Avro schema of a non-null value of the column.
    pub fn schema(&self) -> Value {
        self.kind().schema(&self.info, &mut Vec::new())
    }

    /// The value encoded as the column's text form (`binary` false) or binary form.
    pub fn encode(&self, binary: bool) -> Result<Vec<u8>, ValueError> {
        let raw = if binary {
            Raw::Binary(self.value)
        } else {
            Raw::Text(self.value)
        };
        // A type carried as its text form has its binary form printed as that text first, as
        // the table codec does.
        let printer = Output::of(self.type_oid, &self.info, &self.options).ok();
        let mut out = Vec::new();
        self.kind()
            .encode_with(printer.as_ref(), raw, &mut out, &mut Scratch::default())?;
        Ok(out)
    }
}

fn take<const N: usize>(rest: &mut &[u8]) -> Option<[u8; N]> {
    let (head, tail) = rest.split_first_chunk::<N>()?;
    *rest = tail;
    Some(*head)
}

fn take_u8(rest: &mut &[u8]) -> Option<u8> {
    take::<1>(rest).map(|[byte]| byte)
}

fn take_string(rest: &mut &[u8]) -> Option<String> {
    let length = usize::from(take_u8(rest)?);
    let (text, tail) = rest.split_at_checked(length)?;
    *rest = tail;
    Some(String::from_utf8_lossy(text).into_owned())
}

fn read_info(rest: &mut &[u8], depth: u8) -> Option<TypeInfo> {
    let typtype = char::from(take_u8(rest)?);
    let name = take_string(rest)?;
    let domain = match rest.first()? {
        0xff => {
            *rest = &rest[1..];
            None
        }
        _ => Some(take_string(rest)?),
    };
    let labels = take_u8(rest)?;
    let enum_labels = (0..labels)
        .map(|_| take_string(rest))
        .collect::<Option<_>>()?;
    let element = read_optional_element(rest, depth)?;
    let subtype = read_optional_element(rest, depth)?;
    let count = take_u8(rest)?;
    if count > 0 && depth >= MAX_DEPTH {
        return None;
    }
    let fields = (0..count)
        .map(|_| read_element(rest, depth))
        .collect::<Option<_>>()?;
    let no_send = take_u8(rest)? != 0;
    Some(TypeInfo {
        name,
        typtype,
        domain,
        element,
        enum_labels,
        subtype,
        fields,
        no_send,
    })
}

fn read_element(rest: &mut &[u8], depth: u8) -> Option<ElementType> {
    Some(ElementType {
        type_oid: u32::from_be_bytes(take(rest)?),
        declared_oid: u32::from_be_bytes(take(rest)?),
        info: read_info(rest, depth + 1)?,
    })
}

fn read_optional_element(rest: &mut &[u8], depth: u8) -> Option<Option<Box<ElementType>>> {
    match take_u8(rest)? {
        0 => Some(None),
        _ if depth >= MAX_DEPTH => None,
        _ => Some(Some(Box::new(read_element(rest, depth)?))),
    }
}

fn write_string(out: &mut Vec<u8>, text: &str) {
    let bytes = &text.as_bytes()[..text.len().min(0xfe)];
    out.push(u8::try_from(bytes.len()).unwrap_or(0xfe));
    out.extend_from_slice(bytes);
}

fn write_info(out: &mut Vec<u8>, info: &TypeInfo) {
    out.push(u8::try_from(info.typtype).unwrap_or(b'b'));
    write_string(out, &info.name);
    match &info.domain {
        None => out.push(0xff),
        Some(domain) => write_string(out, domain),
    }
    let labels = &info.enum_labels[..info.enum_labels.len().min(0xff)];
    out.push(u8::try_from(labels.len()).unwrap_or(0xff));
    for label in labels {
        write_string(out, label);
    }
    for optional in [&info.element, &info.subtype] {
        match optional {
            None => out.push(0),
            Some(element) => {
                out.push(1);
                write_element(out, element);
            }
        }
    }
    let fields = &info.fields[..info.fields.len().min(0xff)];
    out.push(u8::try_from(fields.len()).unwrap_or(0xff));
    for field in fields {
        write_element(out, field);
    }
    out.push(u8::from(info.no_send));
}

fn write_element(out: &mut Vec<u8>, element: &ElementType) {
    out.extend_from_slice(&element.type_oid.to_be_bytes());
    out.extend_from_slice(&element.declared_oid.to_be_bytes());
    write_info(out, &element.info);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pairs::{PAIRS, column, unhex};

    #[test]
    fn cases_read_back_as_written() {
        for (ty, text, _, _) in PAIRS {
            let (type_oid, type_modifier, info) = column(ty);
            let case = Case {
                type_oid,
                type_modifier,
                info,
                options: TypeOptions::default(),
                value: text.as_bytes(),
            };
            let input = case.write();
            let read = Case::read(&input).unwrap();
            assert_eq!(
                (read.type_oid, read.type_modifier, &read.info, read.value),
                (type_oid, type_modifier, &case.info, case.value),
                "{ty}"
            );
        }
    }

    /// Writes the seed corpus of the `values` fuzz target (fuzz/seeds/values): each pair's
    /// text and binary form, under both numeric modes for numerics. Ignored by default;
    /// regenerate with `cargo test -p sluice-avro -- --ignored write_fuzz_seeds` (or set
    /// `SLUICE_FUZZ_SEED_DIR` to write the seed directories elsewhere).
    #[test]
    #[ignore = "writes the fuzz seeds into the repository"]
    fn write_fuzz_seeds() {
        let dir = std::env::var_os("SLUICE_FUZZ_SEED_DIR")
            .map_or_else(
                || std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/seeds"),
                std::path::PathBuf::from,
            )
            .join("values");
        std::fs::create_dir_all(&dir).unwrap();
        for (n, (ty, text, binary, _)) in PAIRS.iter().enumerate() {
            let (type_oid, type_modifier, info) = column(ty);
            let modes: &[NumericMode] = if ty.starts_with("numeric") {
                &[NumericMode::Decimal, NumericMode::String]
            } else {
                &[NumericMode::Decimal]
            };
            let binary = unhex(binary);
            for (form, value) in [("text", text.as_bytes()), ("binary", &binary)] {
                for numeric in modes {
                    let case = Case {
                        type_oid,
                        type_modifier,
                        info: info.clone(),
                        options: TypeOptions {
                            numeric: *numeric,
                            ..TypeOptions::default()
                        },
                        value,
                    };
                    let name: String = ty
                        .chars()
                        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
                        .collect();
                    let mode = if *numeric == NumericMode::String {
                        "-string"
                    } else {
                        ""
                    };
                    let path = dir.join(format!("{n:03}-{name}-{form}{mode}"));
                    std::fs::write(path, case.write()).unwrap();
                }
            }
        }
    }
}
