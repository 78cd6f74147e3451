//! Against a real broker: `deploy/local/stack up` (KRaft, PLAINTEXT, no topic auto-creation).
//! These tests fail, never skip, when the broker is absent. `SLUICE_KAFKA_BOOTSTRAP` overrides
//! the address.

// Helpers outside #[test] functions unwrap too; a failure is a test failure.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::config::FromClientConfigAndContext;
use sluice_kafka::{
    AckTracker, Deliveries, Delivery, KafkaConfig, Producer, RDKafkaErrorCode, SendError,
    TracingContext, client_config,
};

const WAIT: Duration = Duration::from_secs(60);

fn bootstrap() -> String {
    std::env::var("SLUICE_KAFKA_BOOTSTRAP").unwrap_or_else(|_| "127.0.0.1:9092".to_owned())
}

fn config() -> KafkaConfig {
    KafkaConfig {
        bootstrap_servers: bootstrap(),
        ..KafkaConfig::default()
    }
}

/// A topic name no earlier run used.
fn unique_topic(purpose: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos();
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!(
        "sluice-kafka-test-{purpose}-{}-{nanos}-{n}",
        std::process::id()
    )
}

/// A producer on a reachable broker, or a failure telling how to start one.
async fn producer(config: &KafkaConfig) -> (Producer, Deliveries) {
    let (producer, deliveries) = Producer::new(config).unwrap();
    if let Err(error) = producer.check_reachable(Duration::from_secs(10)).await {
        panic!("these tests need Kafka: run `deploy/local/stack up` ({error})");
    }
    (producer, deliveries)
}

/// Best effort: keep the shared broker from filling up with test topics.
async fn delete_topics(config: &KafkaConfig, topics: &[&str]) {
    let admin =
        AdminClient::from_config_and_context(&client_config(config), TracingContext).unwrap();
    let _ = admin.delete_topics(topics, &AdminOptions::new()).await;
}

fn partition_count(config: &KafkaConfig, topic: &str) -> usize {
    let admin =
        AdminClient::from_config_and_context(&client_config(config), TracingContext).unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(Some(topic), Duration::from_secs(10))
        .unwrap();
    let found = metadata
        .topics()
        .iter()
        .find(|t| t.name() == topic)
        .unwrap();
    assert!(found.error().is_none(), "{:?}", found.error());
    found.partitions().len()
}

async fn next_delivery(deliveries: &mut Deliveries) -> Delivery {
    tokio::time::timeout(WAIT, deliveries.recv())
        .await
        .expect("no delivery report in time")
        .expect("delivery channel closed")
}

/// Kafka's `Utils.murmur2` (the Java client's key hash), written from its specification:
/// MurmurHash2, 32 bits, seed 0x9747b28c, little-endian 4-byte blocks.
fn murmur2(data: &[u8]) -> u32 {
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let length = u32::try_from(data.len()).unwrap();
    let mut h: u32 = 0x9747_b28c ^ length;
    let mut blocks = data.chunks_exact(4);
    for block in &mut blocks {
        let mut k = u32::from_le_bytes(block.try_into().unwrap());
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let tail = blocks.remainder();
    if tail.len() >= 3 {
        h ^= u32::from(tail[2]) << 16;
    }
    if tail.len() >= 2 {
        h ^= u32::from(tail[1]) << 8;
    }
    if !tail.is_empty() {
        h ^= u32::from(tail[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

/// The Java `DefaultPartitioner` / `BuiltInPartitioner` choice for a non-null key.
fn java_partition(key: &[u8], partitions: u32) -> i32 {
    // toPositive: clear the sign bit rather than take an absolute value.
    i32::try_from((murmur2(key) & 0x7fff_ffff) % partitions).unwrap()
}

#[test]
fn murmur2_matches_kafkas_reference_values() {
    // The values Kafka's own UtilsTest checks, as Java ints.
    let cases: [(&[u8], i32); 6] = [
        (b"21", -973_932_308),
        (b"foobar", -790_332_482),
        (b"a-little-bit-long-string", -985_981_536),
        (b"a-little-bit-longer-string", -1_486_304_829),
        (
            b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8",
            -58_897_971,
        ),
        (b"abc", 479_470_107),
    ];
    for (data, java) in cases {
        assert_eq!(
            i32::from_ne_bytes(murmur2(data).to_ne_bytes()),
            java,
            "{}",
            String::from_utf8_lossy(data)
        );
    }
}

#[tokio::test]
async fn ensure_topics_creates_missing_topics_once() {
    let config = config();
    let (producer, _deliveries) = producer(&config).await;
    let first = unique_topic("ensure-a");
    let second = unique_topic("ensure-b");
    let topics = vec![first.clone(), second.clone(), first.clone()];

    producer.ensure_topics(&topics).await.unwrap();
    assert_eq!(partition_count(&config, &first), 3);
    assert_eq!(partition_count(&config, &second), 3);
    // Idempotent: existing topics are success, not "already exists".
    producer.ensure_topics(&topics).await.unwrap();
    producer.ensure_topics(&[]).await.unwrap();

    delete_topics(&config, &[&first, &second]).await;
}

#[tokio::test]
async fn keyed_messages_are_delivered_with_tickets_on_java_partitions() {
    const MESSAGES: u64 = 1000;
    const PER_TRANSACTION: u64 = 10;
    let config = config();
    let (producer, mut deliveries) = producer(&config).await;
    let topic = unique_topic("produce");
    producer
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();

    // Tickets are AckTracker transactions of ten events each, as the pipeline uses them.
    let mut tracker = AckTracker::new();
    let mut keys: HashMap<u64, Vec<String>> = HashMap::new();
    let mut last_end = 0;
    for transaction in 0..MESSAGES / PER_TRANSACTION {
        last_end = 1000 + transaction * 100;
        let ticket = tracker.begin(last_end);
        for event in 0..PER_TRANSACTION {
            let key = format!("customer-{}", transaction * PER_TRANSACTION + event);
            let payload = format!("{{\"event\":{event}}}");
            producer
                .send(
                    &topic,
                    Some(key.as_bytes()),
                    Some(payload.as_bytes()),
                    ticket,
                )
                .unwrap();
            tracker.sent(ticket);
            keys.entry(ticket).or_default().push(key);
        }
        assert_eq!(tracker.seal(ticket), None);
    }

    let mut positions: Vec<u64> = Vec::new();
    let mut offsets: BTreeMap<i32, Vec<i64>> = BTreeMap::new();
    let mut partitions_by_ticket: HashMap<u64, Vec<i32>> = HashMap::new();
    for _ in 0..MESSAGES {
        let delivery = next_delivery(&mut deliveries).await;
        let delivered = delivery.result.unwrap();
        offsets
            .entry(delivered.partition)
            .or_default()
            .push(delivered.offset);
        partitions_by_ticket
            .entry(delivery.ticket)
            .or_default()
            .push(delivered.partition);
        if let Some(position) = tracker.acknowledged(delivery.ticket) {
            assert!(positions.last().is_none_or(|last| *last < position));
            positions.push(position);
        }
    }
    assert_eq!(tracker.confirmed(), Some(last_end));
    assert_eq!(tracker.in_flight(), 0);
    // librdkafka counts a message until the polling thread has handled its whole report batch,
    // which can be just after the channel handed us the report.
    let mut waited = 0;
    while producer.in_flight() > 0 && waited < 100 {
        tokio::time::sleep(Duration::from_millis(10)).await;
        waited += 1;
    }
    assert_eq!(producer.in_flight(), 0);

    // Every ticket came back once per message sent with it, and each of its keys sits on the
    // partition a Java client would pick.
    assert_eq!(
        partitions_by_ticket.keys().collect::<HashSet<_>>(),
        keys.keys().collect::<HashSet<_>>()
    );
    for (ticket, ticket_keys) in &keys {
        let mut expected: Vec<i32> = ticket_keys
            .iter()
            .map(|key| java_partition(key.as_bytes(), 3))
            .collect();
        let mut actual = partitions_by_ticket[ticket].clone();
        expected.sort_unstable();
        actual.sort_unstable();
        assert_eq!(actual, expected, "ticket {ticket}");
    }
    // Idempotence: no duplicates, no gaps in a fresh topic.
    assert_eq!(offsets.len(), 3, "keys should spread over all partitions");
    for (partition, mut list) in offsets {
        list.sort_unstable();
        let expected: Vec<i64> = (0..i64::try_from(list.len()).unwrap()).collect();
        assert_eq!(list, expected, "partition {partition}");
    }

    delete_topics(&config, &[&topic]).await;
}

#[tokio::test]
async fn each_key_lands_on_its_java_partition() {
    let config = config();
    let (producer, mut deliveries) = producer(&config).await;
    let topic = unique_topic("partition");
    producer
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();

    // Odd lengths exercise murmur2's tail bytes; binary keys its byte handling.
    let mut keys: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            format!(
                "k{}",
                "x".repeat(usize::try_from(i % 9).unwrap()) + &i.to_string()
            )
            .into_bytes()
        })
        .collect();
    keys.push(vec![0xff, 0x80, 0x00, 0x7f, 0xfe]);
    keys.push(Vec::new());
    for (ticket, key) in keys.iter().enumerate() {
        let ticket = u64::try_from(ticket).unwrap();
        producer
            .send(&topic, Some(key), Some(b"v"), ticket)
            .unwrap();
    }
    for _ in 0..keys.len() {
        let delivery = next_delivery(&mut deliveries).await;
        let key = &keys[usize::try_from(delivery.ticket).unwrap()];
        let delivered = delivery.result.unwrap();
        assert_eq!(
            delivered.partition,
            java_partition(key, 3),
            "key {key:?} (ticket {})",
            delivery.ticket
        );
    }

    delete_topics(&config, &[&topic]).await;
}

#[tokio::test]
async fn full_queue_is_back_pressure() {
    let mut config = config();
    // A tiny queue held back by a long linger, so sends outrun deliveries.
    config
        .properties
        .insert("queue.buffering.max.messages".to_owned(), "5".to_owned());
    config
        .properties
        .insert("linger.ms".to_owned(), "200".to_owned());
    let (producer, mut deliveries) = producer(&config).await;
    let topic = unique_topic("backpressure");
    producer
        .ensure_topics(std::slice::from_ref(&topic))
        .await
        .unwrap();

    let mut tracker = AckTracker::new();
    let ticket = tracker.begin(42);
    let mut queue_full = 0;
    for i in 0..50u32 {
        let key = i.to_string();
        loop {
            match producer.send(&topic, Some(key.as_bytes()), Some(b"v"), ticket) {
                Ok(()) => {
                    tracker.sent(ticket);
                    break;
                }
                Err(SendError::QueueFull) => {
                    queue_full += 1;
                    let delivery = next_delivery(&mut deliveries).await;
                    delivery.result.unwrap();
                    assert_eq!(tracker.acknowledged(delivery.ticket), None);
                }
                Err(other) => panic!("{other}"),
            }
        }
    }
    assert!(queue_full > 0, "the queue never filled");
    assert_eq!(tracker.seal(ticket), None);
    let mut confirmed = None;
    while tracker.in_flight() > 0 {
        let delivery = next_delivery(&mut deliveries).await;
        delivery.result.unwrap();
        confirmed = tracker.acknowledged(delivery.ticket).or(confirmed);
    }
    assert_eq!(confirmed, Some(42));

    delete_topics(&config, &[&topic]).await;
}

#[tokio::test]
async fn missing_topic_fails_fatally_naming_it() {
    let mut config = config();
    // Give up on the unknown topic quickly instead of librdkafka's default 30 s.
    config.properties.insert(
        "topic.metadata.propagation.max.ms".to_owned(),
        "500".to_owned(),
    );
    let (producer, mut deliveries) = producer(&config).await;
    let topic = unique_topic("never-created");
    producer.send(&topic, Some(b"k"), Some(b"v"), 7).unwrap();
    let delivery = next_delivery(&mut deliveries).await;
    assert_eq!(delivery.ticket, 7);
    let error = delivery.result.unwrap_err();
    assert!(
        matches!(
            error.code,
            RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
        ),
        "{error:?}"
    );
    assert!(error.is_fatal());
    assert!(error.to_string().contains(&topic), "{error}");
    // The topic must not have been created by the metadata requests.
    let admin =
        AdminClient::from_config_and_context(&client_config(&config), TracingContext).unwrap();
    let metadata = admin
        .inner()
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    assert!(metadata.topics().iter().all(|t| t.name() != topic));
}

#[tokio::test]
async fn unreachable_bootstrap_is_named() {
    let config = KafkaConfig {
        bootstrap_servers: "127.0.0.1:1".to_owned(),
        ..KafkaConfig::default()
    };
    let (producer, _deliveries) = Producer::new(&config).unwrap();
    let error = producer
        .check_reachable(Duration::from_secs(2))
        .await
        .unwrap_err()
        .to_string();
    assert!(error.contains("127.0.0.1:1"), "{error}");
    assert!(error.contains("bootstrap_servers"), "{error}");
}
