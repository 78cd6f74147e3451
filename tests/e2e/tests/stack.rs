//! Proves the local stack is real: a Kafka broker, an Apicurio registry serving the
//! Confluent API, and a PostgreSQL with logical decoding, each used the way sluice uses it.

use std::time::Duration;

use rdkafka::ClientConfig;
use rdkafka::Message;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use schema_registry_converter::async_impl::schema_registry::{
    SrSettings, get_schema_by_id, is_compatible_schema, post_schema,
};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use sluice_e2e::pipeline::slot_exists;
use sluice_e2e::{Stack, unique_name};

const PARTITIONS: i32 = 3;

#[tokio::test]
async fn kafka_keyed_records_round_trip_with_acks_all_and_idempotence() {
    let stack = Stack::from_env();
    let topic = unique_name("stack_kafka");

    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .create()
        .expect("admin client");
    let created = admin
        .create_topics(
            &[NewTopic::new(
                &topic,
                PARTITIONS,
                TopicReplication::Fixed(1),
            )],
            &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
        )
        .await
        .expect("create_topics request");
    assert!(
        created.iter().all(Result::is_ok),
        "topic creation: {created:?}"
    );

    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "true")
        .create()
        .expect("producer");
    let mut sent = Vec::new();
    for i in 0..30u32 {
        let key = format!("key-{}", i % 5);
        let value = format!("value-{i}");
        let delivery = producer
            .send(
                FutureRecord::to(&topic).key(&key).payload(&value),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(err, _)| err)
            .expect("broker acknowledged the record");
        assert!(delivery.offset >= 0);
        sent.push((delivery.partition, key, value));
    }

    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &stack.kafka_bootstrap)
        .set("group.id", unique_name("stack_group"))
        .set("auto.offset.reset", "earliest")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    consumer.subscribe(&[&topic]).expect("subscribe");
    let mut received = Vec::new();
    while received.len() < sent.len() {
        let message = tokio::time::timeout(Duration::from_secs(30), consumer.recv())
            .await
            .expect("records arrive within 30 s")
            .expect("consume");
        received.push((
            message.partition(),
            String::from_utf8(message.key().unwrap().to_vec()).unwrap(),
            String::from_utf8(message.payload().unwrap().to_vec()).unwrap(),
        ));
    }

    // One key always lands on one partition, and each partition keeps the produce order.
    for partition in 0..PARTITIONS {
        let of = |records: &[(i32, String, String)]| -> Vec<(String, String)> {
            records
                .iter()
                .filter(|(p, _, _)| *p == partition)
                .map(|(_, k, v)| (k.clone(), v.clone()))
                .collect()
        };
        assert_eq!(of(&received), of(&sent), "partition {partition}");
    }
}

#[tokio::test]
async fn registry_registers_fetches_and_checks_compatibility_of_avro_schemas() {
    let stack = Stack::from_env();
    let settings = SrSettings::new(stack.registry_url.clone());
    let subject = format!("{}-value", unique_name("stack_registry"));
    let avro = |fields: &str| {
        SuppliedSchema::new(
            None,
            SchemaType::Avro,
            format!(
                r#"{{"type":"record","name":"Value","namespace":"sluice.test","fields":[{fields}]}}"#
            ),
        )
    };
    let v1 = avro(r#"{"name":"id","type":"long"}"#);
    let v2 = avro(
        r#"{"name":"id","type":"long"},{"name":"note","type":["null","string"],"default":null}"#,
    );
    let breaking = avro(r#"{"name":"id","type":"string"}"#);

    let registered = post_schema(&settings, subject.clone(), v1.clone())
        .await
        .expect("register v1");
    let again = post_schema(&settings, subject.clone(), v1)
        .await
        .expect("register v1 again");
    assert_eq!(
        registered.id, again.id,
        "registering the same schema is idempotent"
    );

    let fetched = get_schema_by_id(registered.id, &settings)
        .await
        .expect("fetch by id");
    let fetched: serde_json::Value = serde_json::from_str(&fetched.schema).unwrap();
    assert_eq!(fetched["fields"][0]["name"], "id");
    assert_eq!(fetched["fields"][0]["type"], "long");

    assert!(
        is_compatible_schema(&settings, subject.clone(), v2.clone())
            .await
            .expect("compatibility check"),
        "adding a nullable field with a default is BACKWARD compatible"
    );
    assert!(
        !is_compatible_schema(&settings, subject.clone(), breaking.clone())
            .await
            .expect("compatibility check"),
        "changing a field's type is not BACKWARD compatible"
    );
    let v2_id = post_schema(&settings, subject.clone(), v2)
        .await
        .expect("register v2")
        .id;
    assert_ne!(v2_id, registered.id);
    assert!(
        post_schema(&settings, subject, breaking).await.is_err(),
        "the registry refuses an incompatible version"
    );
}

#[tokio::test]
async fn postgres_decodes_a_write_through_a_pgoutput_slot() {
    let stack = Stack::from_env();
    let client = stack.pg_connect("sluice").await;
    let table = unique_name("stack_table");
    let publication = unique_name("stack_pub");
    let slot = unique_name("stack_slot");

    let wal_level: String = client
        .query_one("SHOW wal_level", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(wal_level, "logical");

    client
        .batch_execute(&format!(
            "CREATE TABLE {table} (id bigint PRIMARY KEY, note text);
             CREATE PUBLICATION {publication} FOR TABLE {table};"
        ))
        .await
        .unwrap();
    client
        .execute(
            "SELECT pg_create_logical_replication_slot($1, 'pgoutput')",
            &[&slot],
        )
        .await
        .unwrap();
    client
        .execute(&format!("INSERT INTO {table} VALUES (1, 'hello')"), &[])
        .await
        .unwrap();

    let changes = client
        .query(
            "SELECT data FROM pg_logical_slot_peek_binary_changes($1, NULL, NULL,
                 'proto_version', '1', 'publication_names', $2)",
            &[&slot, &publication],
        )
        .await
        .unwrap();
    let tags: Vec<u8> = changes
        .iter()
        .map(|row| row.get::<_, Vec<u8>>(0)[0])
        .collect();
    assert_eq!(tags, b"BRIC", "Begin, Relation, Insert, Commit");
    let insert: Vec<u8> = changes[2].get(0);
    let needle = b"hello";
    assert!(
        insert.windows(needle.len()).any(|w| w == needle),
        "the inserted value is in the Insert message"
    );

    client
        .execute("SELECT pg_drop_replication_slot($1)", &[&slot])
        .await
        .unwrap();
    assert!(!slot_exists(&client, &slot).await);
    client
        .batch_execute(&format!(
            "DROP PUBLICATION {publication}; DROP TABLE {table};"
        ))
        .await
        .unwrap();
}
