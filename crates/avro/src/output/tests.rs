//! Every binary form of [`OUTPUT_PAIRS`] prints as exactly the text PostgreSQL printed for
//! it, and gives the same Avro as that text; and no input, however malformed, panics.

use proptest::prelude::*;

use super::{MAX_DEPTH, Output, Unsupported};
use crate::kind::Raw;
use crate::output_pairs::OUTPUT_PAIRS;
use crate::pairs::{column, decode, encode_as, kind_and_schema, output, show, unhex};
use crate::types::{ElementType, TypeInfo, TypeOptions};

#[test]
fn binary_forms_print_as_postgres_printed_them() {
    let options = TypeOptions::default();
    let mut failures = Vec::new();
    for &(ty, text, binary) in OUTPUT_PAIRS {
        let Some(output) = output(ty, &options) else {
            failures.push(format!("{ty}: no output"));
            continue;
        };
        let mut printed = String::new();
        match output.print(&unhex(binary), &mut printed) {
            Ok(()) if printed == text => {}
            Ok(()) => failures.push(format!("{ty}: printed {printed:?}, PostgreSQL {text:?}")),
            Err(err) => failures.push(format!("{ty} {text:?}: {err}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(OUTPUT_PAIRS.len() >= 100, "{}", OUTPUT_PAIRS.len());
}

#[test]
fn binary_and_text_forms_give_the_same_avro() {
    let options = TypeOptions::default();
    let mut failures = Vec::new();
    for &(ty, text, binary) in OUTPUT_PAIRS {
        let from_text = encode_as(ty, Raw::Text(text.as_bytes()), &options);
        let from_binary = encode_as(ty, Raw::Binary(&unhex(binary)), &options);
        match (from_text, from_binary) {
            (Ok(t), Ok(b)) if t == b => {
                let (_, schema) = kind_and_schema(ty, &options);
                let decoded = decode(&schema, &t);
                let shown = show(&decoded);
                // A scalar carried as a string is the text itself (point is Debezium's
                // record: its text and binary forms agree above).
                let string = matches!(decoded, apache_avro::types::Value::String(_));
                if string && !ty.ends_with("[]") && shown != format!("{text:?}") {
                    failures.push(format!("{ty}: decoded {shown}, PostgreSQL {text:?}"));
                }
            }
            (t, b) => failures.push(format!("{ty} {text:?}: text {t:?}, binary {b:?}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The outputs of every type in the pairs, for the malformed-input properties.
fn outputs() -> Vec<Output> {
    let options = TypeOptions::default();
    let mut seen = Vec::new();
    for &(ty, ..) in OUTPUT_PAIRS {
        if let Some(output) = output(ty, &options).filter(|o| !seen.contains(o)) {
            seen.push(output);
        }
    }
    seen
}

#[test]
fn truncated_or_extended_binary_forms_are_errors_not_panics() {
    let options = TypeOptions::default();
    for &(ty, text, binary) in OUTPUT_PAIRS {
        let output = output(ty, &options).unwrap();
        let bytes = unhex(binary);
        // Every cut of a short value; of a long one (the float arrays), about a hundred.
        let step = (bytes.len() / 64).max(1);
        let cuts = (0..bytes.len())
            .step_by(step)
            .chain(bytes.len().saturating_sub(16)..bytes.len());
        for end in cuts {
            // A shorter form can be another valid value only where lengths allow it; it
            // must never panic, and is never the whole value's text.
            let mut printed = String::new();
            if output.print(&bytes[..end], &mut printed).is_ok() {
                assert_ne!(printed, text, "{ty} cut at {end}");
            }
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(
            output.print(&longer, &mut String::new()).is_err(),
            "{ty} {text:?} with a byte more"
        );
    }
}

proptest! {
    #[test]
    fn any_bytes_print_or_fail_without_panicking(
        which in 0usize..64,
        bytes in proptest::collection::vec(any::<u8>(), 0..256),
    ) {
        let outputs = outputs();
        let output = &outputs[which % outputs.len()];
        let _ = output.print(&bytes, &mut String::new());
    }

    #[test]
    fn flipped_bytes_of_real_values_print_or_fail_without_panicking(
        which in 0usize..1000,
        at in 0usize..10_000,
        xor in 1u8..=255,
    ) {
        let options = TypeOptions::default();
        let (ty, _, binary) = OUTPUT_PAIRS[which % OUTPUT_PAIRS.len()];
        let mut bytes = unhex(binary);
        if !bytes.is_empty() {
            let at = at % bytes.len();
            bytes[at] ^= xor;
        }
        let _ = output(ty, &options).unwrap().print(&bytes, &mut String::new());
    }
}

#[test]
fn types_nested_past_the_limit_are_unsupported_not_a_stack_overflow() {
    let (pair_oid, _, mut info) = column("pair");
    for _ in 0..=MAX_DEPTH {
        info = TypeInfo {
            typtype: 'c',
            fields: vec![ElementType {
                type_oid: pair_oid,
                declared_oid: 0,
                info,
            }],
            ..TypeInfo::default()
        };
    }
    assert_eq!(
        Output::of(pair_oid, &info, &TypeOptions::default()),
        Err(Unsupported::TooDeep)
    );
}

#[test]
fn catalog_named_and_unknown_types_are_unsupported() {
    let options = TypeOptions::default();
    // regclass prints a relation's name; aclitem has no binary form at all.
    assert!(matches!(
        Output::of(2205, &TypeInfo::default(), &options),
        Err(Unsupported::Unknown(_))
    ));
    assert!(matches!(
        Output::of(1033, &TypeInfo::default(), &options),
        Err(Unsupported::NoSend(_))
    ));
    // Money inside containers, where the database prints it otherwise than the C locale.
    let other_locale = TypeOptions {
        money_in_c_format: false,
        ..TypeOptions::default()
    };
    assert!(matches!(
        Output::of(790, &TypeInfo::default(), &other_locale),
        Err(Unsupported::Unknown(_))
    ));
    assert_eq!(super::money_text(-123_456_789, 2), "-$1,234,567.89");
    assert_eq!(super::money_text(5, 2), "$0.05");
    assert_eq!(
        super::money_text(i64::MIN, 2),
        "-$92,233,720,368,547,758.08"
    );
    assert_eq!(super::money_text(1234, 0), "$1,234");
    let geometry = TypeInfo {
        name: "geometry".into(),
        typtype: 'b',
        ..TypeInfo::default()
    };
    assert_eq!(
        Output::of(16_400, &geometry, &options),
        Err(Unsupported::Unknown("geometry".into()))
    );
}
