//! The broker and the registry, as the benchmark sees them: how many records a contestant's
//! topics hold, samples of its records, the broker ceiling (a plain rdkafka producer), and
//! removing a contestant's topics and subjects afterwards.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::ClientContext;
use rdkafka::config::FromClientConfigAndContext;
use rdkafka::consumer::{BaseConsumer, Consumer as _};
use rdkafka::error::RDKafkaErrorCode;
use rdkafka::message::{BorrowedMessage, DeliveryResult, Timestamp};
use rdkafka::producer::{BaseRecord, Producer as _, ProducerContext, ThreadedProducer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use sluice_kafka::{KafkaConfig, TracingContext, client_config};

/// One record: key and value, `None` for a tombstone's value.
pub(crate) type Record = (Option<Vec<u8>>, Option<Vec<u8>>);

/// Bound on each metadata or offsets round trip.
const TIMEOUT: Duration = Duration::from_secs(30);

/// The producer settings sluice uses that are not sluice-specific; the broker ceiling and the
/// Debezium worker get the same.
pub(crate) const LINGER_MS: u32 = 5;

pub(crate) struct Kafka {
    config: KafkaConfig,
    consumer: Arc<BaseConsumer<TracingContext>>,
    admin: AdminClient<TracingContext>,
    /// Partitions of the topics seen so far (a topic's count never changes here).
    partitions: Arc<Mutex<HashMap<String, Vec<i32>>>>,
}

impl std::fmt::Debug for Kafka {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kafka")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Kafka {
    pub(crate) fn new(bootstrap_servers: &str, compression: &str) -> anyhow::Result<Kafka> {
        let config = KafkaConfig {
            bootstrap_servers: bootstrap_servers.to_owned(),
            compression: compression.to_owned(),
            ..KafkaConfig::default()
        };
        config.validate()?;
        let mut consumer = client_config(&config);
        consumer
            .set("group.id", "sluice-bench")
            .set("enable.auto.commit", "false");
        let consumer = BaseConsumer::from_config_and_context(&consumer, TracingContext)
            .context("creating the Kafka consumer")?;
        let admin = AdminClient::from_config_and_context(&client_config(&config), TracingContext)
            .context("creating the Kafka admin client")?;
        Ok(Kafka {
            config,
            consumer: Arc::new(consumer),
            admin,
            partitions: Arc::default(),
        })
    }

    /// How many records `topics` hold (their high watermarks: with acks=all, every record
    /// below it is acknowledged). A topic that does not exist yet holds none.
    pub(crate) async fn count(&self, topics: &[String]) -> anyhow::Result<u64> {
        let consumer = Arc::clone(&self.consumer);
        let known = Arc::clone(&self.partitions);
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            // Every partition's first and next offsets in two ListOffsets requests to the
            // broker, not two per partition: polled every 50 ms over 300 partitions, those
            // were a broker's worth of requests the contestant was charged for.
            let mut latest = TopicPartitionList::new();
            for topic in &topics {
                for partition in partitions_of(&consumer, &known, topic)? {
                    latest.add_partition_offset(topic, partition, Offset::End)?;
                }
            }
            if latest.count() == 0 {
                return Ok(0);
            }
            let mut earliest = latest.clone();
            earliest.set_all_offsets(Offset::Beginning)?;
            // A topic just created may have no leader yet: none of its records count until
            // it has (which only delays the end of a run).
            let no_leader_yet = |err: &rdkafka::error::KafkaError| {
                err.rdkafka_error_code().is_some_and(|code| {
                    matches!(
                        code,
                        RDKafkaErrorCode::NotLeaderForPartition
                            | RDKafkaErrorCode::LeaderNotAvailable
                            | RDKafkaErrorCode::UnknownTopicOrPartition
                    )
                })
            };
            let (high, low) = match (
                consumer.offsets_for_times(latest, TIMEOUT),
                consumer.offsets_for_times(earliest, TIMEOUT),
            ) {
                (Ok(high), Ok(low)) => (high, low),
                (Err(err), _) | (_, Err(err)) if no_leader_yet(&err) => return Ok(0),
                (Err(err), _) | (_, Err(err)) => {
                    return Err(err).context("reading the topics' offsets");
                }
            };
            let offset = |list: &TopicPartitionList, topic: &str, partition: i32| {
                list.find_partition(topic, partition)
                    .filter(|elem| elem.error().is_ok())
                    .and_then(|elem| elem.offset().to_raw())
                    .filter(|offset| *offset >= 0)
            };
            let mut total = 0u64;
            for elem in high.elements() {
                let (topic, partition) = (elem.topic(), elem.partition());
                if let (Some(high), Some(low)) = (
                    offset(&high, topic, partition),
                    offset(&low, topic, partition),
                ) {
                    total += u64::try_from(high - low).unwrap_or(0);
                }
            }
            Ok(total)
        })
        .await?
    }

    /// Up to `max` records of `topics`, from their beginnings.
    pub(crate) async fn sample(
        &self,
        topics: &[String],
        max: usize,
    ) -> anyhow::Result<Vec<Record>> {
        self.read(topics, max, |message| {
            Ok((
                message.key().map(<[u8]>::to_vec),
                message.payload().map(<[u8]>::to_vec),
            ))
        })
        .await
    }

    /// Every record of `topics`: the broker's append time (ms; an error for a topic whose
    /// records keep the producer's time) and the value.
    pub(crate) async fn appended(
        &self,
        topics: &[String],
    ) -> anyhow::Result<Vec<(i64, Option<Vec<u8>>)>> {
        self.read(topics, usize::MAX, |message| match message.timestamp() {
            Timestamp::LogAppendTime(ms) => Ok((ms, message.payload().map(<[u8]>::to_vec))),
            other => bail!(
                "{} holds records with {other:?}, not the broker's append time",
                message.topic()
            ),
        })
        .await
    }

    /// Up to `max` records of `topics` from their beginnings, each as `each` makes it.
    async fn read<T: Send + 'static>(
        &self,
        topics: &[String],
        max: usize,
        each: fn(&BorrowedMessage<'_>) -> anyhow::Result<T>,
    ) -> anyhow::Result<Vec<T>> {
        let mut config = client_config(&self.config);
        config
            .set("group.id", "sluice-bench-sample")
            .set("enable.auto.commit", "false");
        let consumer: BaseConsumer<TracingContext> =
            BaseConsumer::from_config_and_context(&config, TracingContext)?;
        let known = Arc::clone(&self.partitions);
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || {
            let mut assignment = TopicPartitionList::new();
            let mut ends = Vec::new();
            for topic in &topics {
                for partition in partitions_of(&consumer, &known, topic)? {
                    let (_, high) = consumer.fetch_watermarks(topic, partition, TIMEOUT)?;
                    if high > 0 {
                        assignment.add_partition_offset(topic, partition, Offset::Beginning)?;
                        ends.push((topic.clone(), partition, high));
                    }
                }
            }
            let mut records = Vec::new();
            if ends.is_empty() {
                return Ok(records);
            }
            consumer.assign(&assignment)?;
            let deadline = Instant::now() + TIMEOUT;
            while records.len() < max && !ends.is_empty() {
                anyhow::ensure!(Instant::now() < deadline, "reading {topics:?} timed out");
                let Some(message) = consumer.poll(Duration::from_millis(200)) else {
                    continue;
                };
                let message = message?;
                records.push(each(&message)?);
                ends.retain(|(topic, partition, end)| {
                    !(topic == message.topic()
                        && *partition == message.partition()
                        && message.offset() + 1 >= *end)
                });
            }
            Ok(records)
        })
        .await?
    }

    /// Creates `topics` with `partitions` partitions (one replica) and waits for their leaders.
    pub(crate) async fn create_topics(
        &self,
        topics: &[String],
        partitions: i32,
    ) -> anyhow::Result<()> {
        self.create_topics_with(topics, partitions, &[]).await
    }

    /// [`Kafka::create_topics`] with these topic configurations.
    pub(crate) async fn create_topics_with(
        &self,
        topics: &[String],
        partitions: i32,
        configs: &[(&str, &str)],
    ) -> anyhow::Result<()> {
        let new: Vec<NewTopic<'_>> = topics
            .iter()
            .map(|t| {
                configs.iter().fold(
                    NewTopic::new(t, partitions, TopicReplication::Fixed(1)),
                    |topic, (key, value)| topic.set(key, value),
                )
            })
            .collect();
        for result in self.admin.create_topics(&new, &admin_options()).await? {
            if let Err((topic, code)) = result {
                bail!("creating topic {topic}: {code}");
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        for topic in topics {
            while self.leaders(topic).await? < usize::try_from(partitions)? {
                anyhow::ensure!(Instant::now() < deadline, "{topic} has no leaders");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// Partitions of `topic` that have a leader.
    async fn leaders(&self, topic: &str) -> anyhow::Result<usize> {
        let consumer = Arc::clone(&self.consumer);
        let topic = topic.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(Some(&topic), TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .filter(|t| t.name() == topic && t.error().is_none())
                .flat_map(|t| t.partitions())
                .filter(|p| p.leader() >= 0)
                .count())
        })
        .await?
    }

    /// Topics whose names start with `prefix`.
    pub(crate) async fn topics_with_prefix(&self, prefix: &str) -> anyhow::Result<Vec<String>> {
        let consumer = Arc::clone(&self.consumer);
        let prefix = prefix.to_owned();
        tokio::task::spawn_blocking(move || {
            let metadata = consumer.fetch_metadata(None, TIMEOUT)?;
            Ok(metadata
                .topics()
                .iter()
                .map(|t| t.name().to_owned())
                .filter(|name| name.starts_with(&prefix))
                .collect())
        })
        .await?
    }

    /// Deletes every topic whose name starts with `prefix`.
    pub(crate) async fn delete_topics_with_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        let topics = self.topics_with_prefix(prefix).await?;
        if topics.is_empty() {
            return Ok(());
        }
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        for result in self.admin.delete_topics(&names, &admin_options()).await? {
            if let Err((topic, code)) = result
                && code != RDKafkaErrorCode::UnknownTopicOrPartition
            {
                bail!("deleting topic {topic}: {code}");
            }
        }
        let mut known = self
            .partitions
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        known.retain(|topic, _| !topic.starts_with(prefix));
        Ok(())
    }

    /// The broker ceiling: a plain rdkafka producer (acks=all, idempotence, the same
    /// compression, linger and partitioner as sluice) sending `count` records, cycling through
    /// `sample` and spreading them over `topics`, until every one is acknowledged. Blocking;
    /// returns when the first one was acknowledged.
    pub(crate) fn produce(
        &self,
        topics: &[String],
        sample: &[Record],
        count: u64,
    ) -> anyhow::Result<Option<Instant>> {
        anyhow::ensure!(
            !sample.is_empty() && !topics.is_empty(),
            "the broker ceiling sends sluice's records: run a sluice contestant too"
        );
        let mut config = client_config(&self.config);
        config
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.type", &self.config.compression)
            .set("linger.ms", LINGER_MS.to_string())
            .set("partitioner", "murmur2_random");
        let context = Counting::default();
        let producer: ThreadedProducer<Counting> =
            ThreadedProducer::from_config_and_context(&config, context)
                .context("creating the ceiling's producer")?;
        // As sluice does at startup: a metadata answer lets the idempotent producer ask for
        // its producer id at once, instead of on its 500 ms retry timer.
        producer
            .client()
            .fetch_metadata(Some(&topics[0]), Duration::from_secs(30))
            .context("the ceiling's producer fetching metadata")?;
        let records = sample.iter().cycle();
        let mut topic = topics.iter().cycle();
        for (key, value) in records.take(usize::try_from(count)?) {
            let topic = topic.next().context("no topic")?;
            let mut record: BaseRecord<'_, [u8], [u8]> = BaseRecord::to(topic);
            record.key = key.as_deref();
            record.payload = value.as_deref();
            loop {
                match producer.send(record) {
                    Ok(()) => break,
                    Err((err, back))
                        if err.rdkafka_error_code() == Some(RDKafkaErrorCode::QueueFull) =>
                    {
                        record = back;
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err((err, _)) => bail!("producing to {topic}: {err}"),
                }
            }
        }
        producer.flush(Duration::from_secs(600))?;
        let context = producer.context();
        let (delivered, failed) = (
            context.delivered.load(Ordering::Relaxed),
            context.failed.load(Ordering::Relaxed),
        );
        anyhow::ensure!(
            failed == 0 && delivered == count,
            "the ceiling's producer delivered {delivered} of {count} records ({failed} failed)"
        );
        Ok(context.first.get().copied())
    }
}

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(TIMEOUT))
}

/// The partitions of `topic`, from the cache or the broker; none while it does not exist.
fn partitions_of(
    consumer: &BaseConsumer<TracingContext>,
    known: &Mutex<HashMap<String, Vec<i32>>>,
    topic: &str,
) -> anyhow::Result<Vec<i32>> {
    if let Some(partitions) = known
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .get(topic)
    {
        return Ok(partitions.clone());
    }
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .with_context(|| format!("reading the metadata of {topic}"))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic && t.error().is_none())
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if !partitions.is_empty() {
        known
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned(), partitions.clone());
    }
    Ok(partitions)
}

/// Counts delivery reports, and notes when the first came.
#[derive(Debug, Default)]
struct Counting {
    delivered: AtomicU64,
    failed: AtomicU64,
    first: OnceLock<Instant>,
}

impl ClientContext for Counting {}

impl ProducerContext for Counting {
    type DeliveryOpaque = ();

    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let counter = if result.is_ok() {
            &self.delivered
        } else {
            &self.failed
        };
        counter.fetch_add(1, Ordering::Relaxed);
        self.first.get_or_init(Instant::now);
    }
}

/// The schema registry's Confluent-compatible API, for removing a contestant's subjects.
#[derive(Debug)]
pub(crate) struct Registry {
    http: reqwest::Client,
    /// `.../apis/ccompat/v7`
    url: String,
}

impl Registry {
    pub(crate) fn new(url: &str) -> Registry {
        Registry {
            http: reqwest::Client::new(),
            url: url.trim_end_matches('/').to_owned(),
        }
    }

    /// Deletes (soft, then permanently) every subject whose name starts with `prefix`.
    pub(crate) async fn delete_subjects_with_prefix(&self, prefix: &str) -> anyhow::Result<()> {
        let subjects: Vec<String> = self
            .http
            .get(format!("{}/subjects", self.url))
            .send()
            .await?
            .error_for_status()?
            .json()
            .await
            .context("the registry's list of subjects")?;
        for subject in subjects.iter().filter(|s| s.starts_with(prefix)) {
            for query in ["", "?permanent=true"] {
                self.http
                    .delete(format!("{}/subjects/{subject}{query}", self.url))
                    .send()
                    .await?
                    .error_for_status()
                    .with_context(|| format!("deleting subject {subject}{query}"))?;
            }
        }
        Ok(())
    }
}
