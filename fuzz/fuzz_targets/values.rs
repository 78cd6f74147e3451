//! Fuzzes sluice-avro's value encoders: every parser of PostgreSQL's text and binary forms.
//! The input is a `sluice_avro::fuzzing::Case`: a column type (OID, modifier, catalog
//! description), the run's type options, then one value, which is encoded both as the type's
//! text form and as its binary form. Besides "no panic", every value encoded decodes with the
//! column's own Avro schema to exactly its bytes, so the registry's readers can read it.

#![no_main]

use apache_avro::Schema;
use apache_avro::reader::datum::GenericDatumReader;
use libfuzzer_sys::fuzz_target;
use sluice_avro::fuzzing::Case;

fuzz_target!(|data: &[u8]| {
    let Some(case) = Case::read(data) else {
        return;
    };
    let schema_json = case.schema();
    // Type modifiers PostgreSQL never makes (a numeric of precision 0) give schemas Avro
    // refuses; their values are still encoded, for the panics.
    let schema = Schema::parse(&schema_json).ok();
    for binary in [false, true] {
        let Ok(datum) = case.encode(binary) else {
            continue;
        };
        let Some(schema) = &schema else {
            continue;
        };
        let mut rest = &datum[..];
        let reader = GenericDatumReader::builder(schema)
            .build()
            .expect("a reader");
        if let Err(err) = reader.read_value(&mut rest) {
            panic!(
                "{} form: encoded {datum:02x?}, which {schema_json} does not read: {err}",
                if binary { "binary" } else { "text" }
            );
        }
        assert!(rest.is_empty(), "{} bytes beyond the value", rest.len());
    }
});
