//! Properties over generated values: the text form PostgreSQL would print and the binary form
//! it would send (each built here from PostgreSQL's documented rules) give the same Avro
//! bytes; and no input, however malformed, panics.

use proptest::prelude::*;

use crate::kind::{ColumnKind, Raw, ScalarKind};
use crate::pairs::{PAIRS, encode, kind_and_schema, unhex};
use crate::temporal::Interval;
use crate::types::{NumericMode, TypeOptions};

fn kind(ty: &str) -> ColumnKind {
    kind_and_schema(ty, &TypeOptions::default()).0
}

fn same_from_both(kind: ColumnKind, text: &str, binary: &[u8]) -> Result<Vec<u8>, TestCaseError> {
    let from_text = encode(kind, Raw::Text(text.as_bytes()));
    let from_binary = encode(kind, Raw::Binary(binary));
    prop_assert_eq!(&from_text, &from_binary, "text {:?}", text);
    from_text.map_err(|e| TestCaseError::fail(format!("{text:?}: {e}")))
}

/// An interval as `IntervalStyle = postgres` prints it (the printer the binary forms of
/// containers use, itself checked against PostgreSQL's output in the pairs).
fn postgres_interval(months: i32, days: i32, micros: i64) -> String {
    let mut out = String::new();
    crate::output::push_interval(
        &mut out,
        Interval {
            months,
            days,
            micros,
        },
    );
    out
}

/// A numeric's binary form from its decimal digits: base-10000 groups around the point,
/// leading and trailing zero groups left out, as PostgreSQL stores them.
fn numeric_binary(negative: bool, whole: &str, fraction: &str) -> Vec<u8> {
    let whole_width = whole.len().div_ceil(4) * 4;
    let fraction_width = fraction.len().div_ceil(4) * 4;
    // By hand: a format width is at most 65535.
    let digits = "0".repeat(whole_width - whole.len())
        + whole
        + fraction
        + &"0".repeat(fraction_width - fraction.len());
    let mut groups: Vec<i16> = digits
        .as_bytes()
        .chunks(4)
        .map(|g| std::str::from_utf8(g).unwrap().parse().unwrap())
        .collect();
    let mut weight = i16::try_from(whole_width / 4 - 1).unwrap();
    while groups.first() == Some(&0) {
        groups.remove(0);
        weight -= 1;
    }
    while groups.last() == Some(&0) {
        groups.pop();
    }
    if groups.is_empty() {
        weight = 0;
    }
    let sign: u16 = if negative { 0x4000 } else { 0 };
    let mut out = Vec::new();
    out.extend_from_slice(&u16::try_from(groups.len()).unwrap().to_be_bytes());
    out.extend_from_slice(&weight.to_be_bytes());
    out.extend_from_slice(&sign.to_be_bytes());
    out.extend_from_slice(&u16::try_from(fraction.len()).unwrap().to_be_bytes());
    for group in groups {
        out.extend_from_slice(&group.to_be_bytes());
    }
    out
}

/// An array element or hstore string with PostgreSQL's special characters about.
fn awkward_text() -> impl Strategy<Value = String> {
    prop_oneof![
        Just(String::new()),
        Just("NULL".to_owned()),
        Just("null".to_owned()),
        "[a-c\"\\\\,{} ☃=>\t]{0,6}",
    ]
}

/// Whether `array_out` quotes an element.
fn array_quotes(element: &str) -> bool {
    element.is_empty()
        || element.eq_ignore_ascii_case("NULL")
        || element
            .chars()
            .any(|c| "\"\\{},".contains(c) || c.is_ascii_whitespace() || c == '\u{b}')
}

fn escaped(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn push_binary_field(out: &mut Vec<u8>, value: Option<&[u8]>) {
    match value {
        None => out.extend_from_slice(&(-1i32).to_be_bytes()),
        Some(bytes) => {
            out.extend_from_slice(&i32::try_from(bytes.len()).unwrap().to_be_bytes());
            out.extend_from_slice(bytes);
        }
    }
}

proptest! {
    #[test]
    fn intervals_agree_in_both_forms(months: i32, days: i32, micros: i64) {
        let mut binary = micros.to_be_bytes().to_vec();
        binary.extend_from_slice(&days.to_be_bytes());
        binary.extend_from_slice(&months.to_be_bytes());
        let text = postgres_interval(months, days, micros);
        same_from_both(kind("interval"), &text, &binary)?;
    }

    #[test]
    fn numerics_agree_in_both_forms_and_modes(
        negative: bool,
        whole in "(0|[1-9][0-9]{0,45})",
        fraction in "[0-9]{0,30}",
    ) {
        let negative = negative && whole.bytes().chain(fraction.bytes()).any(|b| b != b'0');
        let sign = if negative { "-" } else { "" };
        let point = if fraction.is_empty() { "" } else { "." };
        let text = format!("{sign}{whole}{point}{fraction}");
        let binary = numeric_binary(negative, &whole, &fraction);
        same_from_both(kind("numeric"), &text, &binary)?;
        let string_mode = TypeOptions { numeric: NumericMode::String, ..TypeOptions::default() };
        let (kind, _) = kind_and_schema("numeric", &string_mode);
        let avro = same_from_both(kind, &text, &binary)?;
        // An Avro string: its length, then PostgreSQL's own text.
        prop_assert!(avro.ends_with(text.as_bytes()));
    }

    #[test]
    fn addresses_print_the_same_from_both_forms(
        v6: bool,
        words in proptest::collection::vec(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()], 8),
        bits: u8,
        cidr: bool,
    ) {
        let mut bytes: Vec<u8> = words.iter().flat_map(|w| w.to_be_bytes()).collect();
        let (family, width) = if v6 { (3u8, 128u8) } else { (2, 32) };
        bytes.truncate(if v6 { 16 } else { 4 });
        let bits = bits % (width + 1);
        let mut binary = vec![family, bits, u8::from(cidr), u8::try_from(bytes.len()).unwrap()];
        binary.extend_from_slice(&bytes);
        let kind = kind(if cidr { "cidr" } else { "inet" });
        let printed = encode(kind, Raw::Binary(&binary)).unwrap();
        // A short string: one length byte, then the text.
        let text = std::str::from_utf8(&printed[1..]).unwrap();
        let again = same_from_both(kind, text, &binary)?;
        prop_assert_eq!(&again, &printed);
        let host = text.split('/').next().unwrap();
        let parsed: std::net::IpAddr = host.parse().unwrap();
        let parsed = match parsed {
            std::net::IpAddr::V4(a) => a.octets().to_vec(),
            std::net::IpAddr::V6(a) => a.octets().to_vec(),
        };
        prop_assert_eq!(parsed, bytes);
    }

    #[test]
    fn arrays_of_awkward_strings_agree_in_both_forms(
        elements in proptest::collection::vec(proptest::option::of(awkward_text()), 0..6),
    ) {
        let text_elements: Vec<String> = elements
            .iter()
            .map(|e| match e {
                None => "NULL".to_owned(),
                Some(e) if array_quotes(e) => format!("\"{}\"", escaped(e)),
                Some(e) => e.clone(),
            })
            .collect();
        let text = format!("{{{}}}", text_elements.join(","));
        let has_nulls = elements.iter().any(Option::is_none);
        let mut binary = Vec::new();
        if elements.is_empty() {
            binary.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 25]);
        } else {
            binary.extend_from_slice(&1i32.to_be_bytes());
            binary.extend_from_slice(&i32::from(has_nulls).to_be_bytes());
            binary.extend_from_slice(&25u32.to_be_bytes());
            binary.extend_from_slice(&i32::try_from(elements.len()).unwrap().to_be_bytes());
            binary.extend_from_slice(&1i32.to_be_bytes());
            for element in &elements {
                push_binary_field(&mut binary, element.as_deref().map(str::as_bytes));
            }
        }
        same_from_both(kind("text[]"), &text, &binary)?;
    }

    #[test]
    fn hstores_of_awkward_strings_agree_in_both_forms(
        pairs in proptest::collection::btree_map(awkward_text(), proptest::option::of(awkward_text()), 0..5),
    ) {
        let text = pairs
            .iter()
            .map(|(k, v)| match v {
                None => format!("\"{}\"=>NULL", escaped(k)),
                Some(v) => format!("\"{}\"=>\"{}\"", escaped(k), escaped(v)),
            })
            .collect::<Vec<_>>()
            .join(", ");
        let mut binary = i32::try_from(pairs.len()).unwrap().to_be_bytes().to_vec();
        for (k, v) in &pairs {
            push_binary_field(&mut binary, Some(k.as_bytes()));
            push_binary_field(&mut binary, v.as_deref().map(str::as_bytes));
        }
        same_from_both(kind("hstore"), &text, &binary)?;
    }

    #[test]
    fn arbitrary_input_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..40)) {
        for (ty, ..) in PAIRS {
            let kind = kind(ty);
            let _ = encode(kind, Raw::Text(&bytes));
            let _ = encode(kind, Raw::Binary(&bytes));
        }
    }
}

/// Kinds whose every byte string is some value (a prefix of a value is a value too).
fn any_bytes_are_a_value(kind: ColumnKind) -> bool {
    matches!(
        kind,
        ColumnKind::Scalar(
            ScalarKind::String
                | ScalarKind::Xml
                | ScalarKind::Enum
                | ScalarKind::Json
                | ScalarKind::Jsonb
                | ScalarKind::JsonPath
                | ScalarKind::Bytes
        )
    )
}

#[test]
fn truncated_binary_values_are_typed_errors() {
    for &(ty, text, binary, _) in PAIRS {
        let kind = kind(ty);
        let binary = unhex(binary);
        if !kind.reads_binary() || any_bytes_are_a_value(kind) {
            continue;
        }
        for length in 0..binary.len() {
            let result = encode(kind, Raw::Binary(&binary[..length]));
            assert!(
                result.is_err(),
                "{ty} {text:?}: {length} of {} bytes gave {result:?}",
                binary.len()
            );
        }
        let mut longer = binary.clone();
        longer.push(0);
        assert!(
            encode(kind, Raw::Binary(&longer)).is_err(),
            "{ty} {text:?} with a trailing byte"
        );
    }
}

#[test]
fn wire_lengths_that_lie_are_refused() {
    // An array claiming 2^31 - 1 elements in a few bytes, and a negative element length.
    let mut huge = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23];
    huge.extend_from_slice(&i32::MAX.to_be_bytes());
    huge.extend_from_slice(&1i32.to_be_bytes());
    assert!(encode(kind("int4[]"), Raw::Binary(&huge)).is_err());
    let mut negative = vec![0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 23, 0, 0, 0, 1, 0, 0, 0, 1];
    negative.extend_from_slice(&(-2i32).to_be_bytes());
    assert!(encode(kind("int4[]"), Raw::Binary(&negative)).is_err());
    // Seven dimensions, one more than PostgreSQL allows.
    let deep = [0, 0, 0, 7, 0, 0, 0, 0, 0, 0, 0, 23];
    assert!(encode(kind("int4[]"), Raw::Binary(&deep)).is_err());
    // An hstore claiming more pairs than it holds, and a NULL key.
    assert!(encode(kind("hstore"), Raw::Binary(&[0x7f, 0xff, 0xff, 0xff])).is_err());
    let null_key = [0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff];
    assert!(encode(kind("hstore"), Raw::Binary(&null_key)).is_err());
    // A bit string longer than its bytes.
    assert!(encode(kind("varbit"), Raw::Binary(&[0, 0, 0, 9, 0xff])).is_err());
}

#[test]
fn the_widest_numerics_agree_in_both_forms() {
    // PostgreSQL's limits: 131072 digits before the point, 16383 after.
    let whole = "9".repeat(131_072);
    let fraction = "9".repeat(16_383);
    for (whole, fraction) in [
        (whole.as_str(), fraction.as_str()),
        ("0", "0000000000000001"),
    ] {
        let text = format!("-{whole}.{fraction}");
        let binary = numeric_binary(true, whole, fraction);
        same_from_both(kind("numeric"), &text, &binary).unwrap();
    }
}
