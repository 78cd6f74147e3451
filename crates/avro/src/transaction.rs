//! Transaction metadata, as Debezium shapes it: a BEGIN and an END record per transaction on
//! the transaction topic, and in each event a `transaction` block with the transaction's id
//! and the event's place in it.

use serde_json::json;

use crate::confluent::confluent_header;
use crate::schema::avro_name;
use crate::writer;

/// Where an event stands in its transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TransactionBlock<'a> {
    /// `<xid>:<commit LSN>`, unique per transaction even across xid wraparound.
    pub id: &'a str,
    /// 1 for the transaction's first event, counting all tables.
    pub total_order: u64,
    /// 1 for the transaction's first event of this table.
    pub data_collection_order: u64,
}

impl TransactionBlock<'_> {
    /// Appends the block as the value of the envelope's optional `transaction` field.
    pub(crate) fn encode(&self, out: &mut Vec<u8>) {
        writer::union_index(out, 1);
        writer::string(out, self.id);
        writer::long(out, i64::try_from(self.total_order).unwrap_or(i64::MAX));
        writer::long(
            out,
            i64::try_from(self.data_collection_order).unwrap_or(i64::MAX),
        );
    }
}

/// The records of the transaction topic (`<prefix>.transaction`): key `{id}`, value
/// `{status, id, event_count, data_collections, ts_ms}`, BEGIN without counts, END with them.
#[derive(Debug, Clone)]
pub struct TransactionCodec {
    key_schema: String,
    value_schema: String,
}

impl TransactionCodec {
    pub fn new(topic: &str) -> Self {
        let namespace = avro_name(topic);
        let key_schema = json!({
            "type": "record",
            "name": "TransactionMetadataKey",
            "namespace": "io.debezium.connector.common",
            "fields": [{"name": "id", "type": "string"}],
            "connect.name": "io.debezium.connector.common.TransactionMetadataKey",
        });
        let value_schema = json!({
            "type": "record",
            "name": "TransactionMetadataValue",
            "namespace": "io.debezium.connector.common",
            "fields": [
                {"name": "status", "type": "string"},
                {"name": "id", "type": "string"},
                {"name": "event_count", "type": ["null", "long"], "default": null},
                {"name": "data_collections", "type": ["null", {
                    "type": "array",
                    "items": {
                        "type": "record",
                        "name": "event_collection",
                        "namespace": namespace,
                        "fields": [
                            {"name": "data_collection", "type": "string"},
                            {"name": "event_count", "type": "long"},
                        ],
                    },
                }], "default": null},
                {"name": "ts_ms", "type": "long"},
            ],
            "connect.name": "io.debezium.connector.common.TransactionMetadataValue",
        });
        TransactionCodec {
            key_schema: key_schema.to_string(),
            value_schema: value_schema.to_string(),
        }
    }

    pub fn key_schema(&self) -> &str {
        &self.key_schema
    }

    pub fn value_schema(&self) -> &str {
        &self.value_schema
    }

    pub fn encode_key(&self, schema_id: u32, id: &str, out: &mut Vec<u8>) {
        confluent_header(out, schema_id);
        writer::string(out, id);
    }

    /// The BEGIN record of transaction `id`, committed at `commit_time_ms`.
    pub fn encode_begin(&self, schema_id: u32, id: &str, commit_time_ms: i64, out: &mut Vec<u8>) {
        confluent_header(out, schema_id);
        writer::string(out, "BEGIN");
        writer::string(out, id);
        writer::union_index(out, 0);
        writer::union_index(out, 0);
        writer::long(out, commit_time_ms);
    }

    /// The END record: the transaction's event count, and each table's (`schema.table`).
    pub fn encode_end<'a>(
        &self,
        schema_id: u32,
        id: &str,
        commit_time_ms: i64,
        collections: impl ExactSizeIterator<Item = (&'a str, u64)>,
        out: &mut Vec<u8>,
    ) {
        confluent_header(out, schema_id);
        writer::string(out, "END");
        writer::string(out, id);
        let mut total = 0u64;
        let mut counts = Vec::with_capacity(collections.len());
        for (name, count) in collections {
            total = total.saturating_add(count);
            counts.push((name, count));
        }
        writer::union_index(out, 1);
        writer::long(out, i64::try_from(total).unwrap_or(i64::MAX));
        writer::union_index(out, 1);
        if !counts.is_empty() {
            writer::long(out, i64::try_from(counts.len()).unwrap_or(i64::MAX));
            for (name, count) in counts {
                writer::string(out, name);
                writer::long(out, i64::try_from(count).unwrap_or(i64::MAX));
            }
        }
        writer::long(out, 0);
        writer::long(out, commit_time_ms);
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use apache_avro::Schema;
    use apache_avro::reader::datum::GenericDatumReader;
    use apache_avro::types::Value;

    use super::*;

    fn decode(schema: &str, bytes: &[u8]) -> Value {
        let schema = Schema::parse_str(schema).unwrap();
        assert_eq!(&bytes[..5], &[0, 0, 0, 0, 7]);
        GenericDatumReader::builder(&schema)
            .build()
            .unwrap()
            .read_value(&mut &bytes[5..])
            .unwrap()
    }

    #[test]
    fn begin_and_end_records_decode_with_their_schemas() {
        let codec = TransactionCodec::new("shop.transaction");
        let mut out = Vec::new();
        codec.encode_key(7, "42:1000", &mut out);
        assert_eq!(
            decode(codec.key_schema(), &out),
            Value::Record(vec![("id".into(), Value::String("42:1000".into()))])
        );
        out.clear();
        codec.encode_begin(7, "42:1000", 1_700_000_000_000, &mut out);
        let Value::Record(begin) = decode(codec.value_schema(), &out) else {
            panic!()
        };
        assert_eq!(begin[0].1, Value::String("BEGIN".into()));
        assert_eq!(begin[2].1, Value::Union(0, Box::new(Value::Null)));
        out.clear();
        let tables = [("public.a", 2), ("public.b", 1)];
        codec.encode_end(7, "42:1000", 5, tables.into_iter(), &mut out);
        let Value::Record(end) = decode(codec.value_schema(), &out) else {
            panic!()
        };
        assert_eq!(end[0].1, Value::String("END".into()));
        assert_eq!(end[2].1, Value::Union(1, Box::new(Value::Long(3))));
        let Value::Union(1, collections) = &end[3].1 else {
            panic!("{end:?}")
        };
        let Value::Array(collections) = collections.as_ref() else {
            panic!()
        };
        assert_eq!(collections.len(), 2);
        assert_eq!(end[4].1, Value::Long(5));
    }
}
