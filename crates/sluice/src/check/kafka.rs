//! Kafka: the brokers, the topics sluice writes to, acks=all and the state topic's policy.

use std::sync::Arc;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ConfigResourceResult, ResourceSpecifier};
use rdkafka::config::FromClientConfigAndContext as _;
use rdkafka::error::RDKafkaErrorCode;
use sluice_kafka::{KafkaError, Producer, TracingContext, client_config};
use sluice_pipeline::config::KafkaSection;
use sluice_pipeline::format;
use sluice_pipeline::naming::state_topic;

use super::report::Report;
use super::{abbreviated, bounded};

/// Bound on each Kafka round trip (metadata, configs).
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// What a metadata request says about one topic.
#[derive(Debug)]
enum TopicState {
    Missing,
    Exists { partitions: usize, replicas: usize },
    Refused(String),
}

/// The brokers, and the state of each topic sluice writes to.
#[derive(Debug)]
struct Cluster {
    brokers: Vec<i32>,
    topics: Vec<(String, TopicState)>,
}

/// One metadata request per topic, so that a large cluster's other topics are not fetched.
fn describe_topics(
    admin: &AdminClient<TracingContext>,
    topics: &[String],
) -> Result<Cluster, String> {
    let mut cluster = Cluster {
        brokers: Vec::new(),
        topics: Vec::new(),
    };
    for topic in topics {
        let metadata = admin
            .inner()
            .fetch_metadata(Some(topic), KAFKA_TIMEOUT)
            .map_err(|err| format!("describing topic {topic}: {err}"))?;
        cluster.brokers = metadata.brokers().iter().map(|b| b.id()).collect();
        let found = metadata.topics().iter().find(|t| t.name() == topic);
        let state = match found {
            None => TopicState::Missing,
            Some(found) => match found.error().map(RDKafkaErrorCode::from) {
                None | Some(RDKafkaErrorCode::LeaderNotAvailable) => TopicState::Exists {
                    partitions: found.partitions().len(),
                    replicas: found
                        .partitions()
                        .iter()
                        .map(|p| p.replicas().len())
                        .min()
                        .unwrap_or(0),
                },
                Some(
                    RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic,
                ) => TopicState::Missing,
                Some(code) => TopicState::Refused(code.to_string()),
            },
        };
        cluster.topics.push((topic.clone(), state));
    }
    Ok(cluster)
}

pub(super) async fn check_kafka(kafka: &KafkaSection, topics: &[String], report: &mut Report) {
    const ITEM: &str = "kafka";
    let client = kafka.client_config();
    let producer = match Producer::new(&client) {
        Ok((producer, _deliveries)) => producer,
        Err(err) => {
            report.fail(
                ITEM,
                err.to_string(),
                "correct [kafka] and [kafka.producer] in the configuration",
            );
            return;
        }
    };
    let reachable = producer.check_reachable(KAFKA_TIMEOUT).await;
    // Dropping a librdkafka client waits for its threads.
    let _ = tokio::task::spawn_blocking(move || drop(producer)).await;
    if let Err(err) = reachable {
        let (detail, fix) = match err {
            KafkaError::Unreachable {
                bootstrap_servers,
                timeout,
                reason,
            } => (
                format!(
                    "no broker at {bootstrap_servers} answered within {}: {reason}",
                    format::duration(timeout)
                ),
                "check kafka.bootstrap_servers, that the brokers run, that their advertised \
                 listeners resolve and are reachable from this host, and the security settings \
                 in [kafka.producer]",
            ),
            other => (other.to_string(), "check [kafka] and [kafka.producer]"),
        };
        report.fail(ITEM, detail, fix);
        return;
    }
    let admin = match AdminClient::from_config_and_context(&client_config(&client), TracingContext)
    {
        Ok(admin) => Arc::new(admin),
        Err(err) => {
            report.fail(
                ITEM,
                format!("cannot create the Kafka admin client: {err}"),
                "correct [kafka.producer] in the configuration",
            );
            return;
        }
    };
    let describing = {
        let admin = Arc::clone(&admin);
        let topics = topics.to_vec();
        tokio::task::spawn_blocking(move || describe_topics(&admin, &topics))
    };
    let cluster = match describing.await {
        Ok(Ok(cluster)) => cluster,
        Ok(Err(err)) => {
            report.fail(
                ITEM,
                format!("reachable, but {err}"),
                "check the principal's DESCRIBE rights and the brokers' health",
            );
            return;
        }
        Err(err) => {
            report.fail(
                ITEM,
                format!("describing the topics: {err}"),
                "run it again",
            );
            return;
        }
    };
    report.ok(
        ITEM,
        format!(
            "{} broker(s) reachable through {}",
            cluster.brokers.len(),
            kafka.bootstrap_servers
        ),
    );
    check_topics(&cluster, kafka, report);
    check_acks(&admin, &cluster, kafka, report).await;
}

/// The topics sluice writes to: those that exist, those sluice will create (and whether it
/// can), those the broker will not describe.
fn check_topics(cluster: &Cluster, kafka: &KafkaSection, report: &mut Report) {
    const ITEM: &str = "topics";
    let state_topic = state_topic(&kafka.topic_prefix);
    let mut existing = Vec::new();
    let mut other_partitions = Vec::new();
    let mut missing = Vec::new();
    let mut refused = Vec::new();
    for (topic, state) in &cluster.topics {
        match state {
            TopicState::Exists { partitions, .. } => {
                existing.push(topic.clone());
                let wanted = if *topic == state_topic {
                    1
                } else {
                    kafka.partitions
                };
                if i32::try_from(*partitions).ok() != Some(wanted) {
                    other_partitions.push(format!("{topic} ({partitions})"));
                }
            }
            TopicState::Missing => missing.push(topic.clone()),
            TopicState::Refused(code) => refused.push((topic, code)),
        }
    }
    let found = if existing.is_empty() {
        "none exists yet".to_owned()
    } else {
        format!("{} exist", existing.len())
    };
    if !other_partitions.is_empty() {
        report.warn(
            "topic partitions",
            format!(
                "{} have another partition count than kafka.partitions = {}; sluice keeps each \
                 topic as it is and places a key by murmur2 over the partitions it has",
                abbreviated(&other_partitions),
                kafka.partitions,
            ),
            "nothing to do if the topics were made so; if partitions were added after events \
             were written, a key's earlier and later events are in different partitions and \
             their order across that change is lost: re-create the topic and take a new \
             snapshot, or accept it",
        );
    }
    let factor = kafka.replication_factor;
    let brokers = cluster.brokers.len();
    if missing.is_empty() {
        if refused.is_empty() || !existing.is_empty() {
            report.ok(ITEM, found);
        }
    } else if usize::try_from(factor).is_ok_and(|factor| factor > brokers) {
        report.fail(
            ITEM,
            format!(
                "{found}; {} do not, and sluice cannot create them with replication factor \
                 {factor}: the cluster has {brokers} broker(s)",
                abbreviated(&missing)
            ),
            format!(
                "set kafka.replication_factor to at most {brokers}, or create the topics \
                 beforehand"
            ),
        );
    } else {
        let tables: Vec<String> = missing
            .iter()
            .filter(|topic| **topic != state_topic)
            .cloned()
            .collect();
        let mut creates = Vec::new();
        if !tables.is_empty() {
            creates.push(format!(
                "{} with {} partition(s)",
                abbreviated(&tables),
                kafka.partitions
            ));
        }
        if missing.contains(&state_topic) {
            creates.push(format!(
                "its state topic {state_topic} with 1 compacted partition"
            ));
        }
        report.warn(
            ITEM,
            format!(
                "{found}; sluice will create {}, replication factor {factor}",
                creates.join(" and ")
            ),
            "nothing to do if the principal may create topics; otherwise create them beforehand",
        );
    }
    for (topic, code) in refused {
        report.fail(
            &format!("topic {topic}"),
            format!("the broker refused to describe it: {code}"),
            "grant the principal DESCRIBE, WRITE and CREATE on the topic (or create it \
             beforehand and grant DESCRIBE and WRITE)",
        );
    }
}

/// Whether acks=all can succeed: every partition needs `min.insync.replicas` replicas in sync,
/// so a topic with fewer replicas than that refuses every write.
async fn check_acks(
    admin: &AdminClient<TracingContext>,
    cluster: &Cluster,
    kafka: &KafkaSection,
    report: &mut Report,
) {
    const ITEM: &str = "acks=all";
    let factor = kafka.replication_factor;
    let existing: Vec<(&str, usize)> = cluster
        .topics
        .iter()
        .filter_map(|(topic, state)| match state {
            TopicState::Exists { replicas, .. } => Some((topic.as_str(), *replicas)),
            _ => None,
        })
        .collect();
    let any_missing = existing.len() < cluster.topics.len();
    let Some(&broker) = cluster.brokers.first() else {
        report.ok(
            ITEM,
            format!("topics are created with replication factor {factor}"),
        );
        return;
    };
    let mut specifiers = vec![ResourceSpecifier::Broker(broker)];
    specifiers.extend(
        existing
            .iter()
            .map(|(topic, _)| ResourceSpecifier::Topic(topic)),
    );
    let options = AdminOptions::new().request_timeout(Some(KAFKA_TIMEOUT));
    let described = bounded(
        KAFKA_TIMEOUT,
        admin.describe_configs(&specifiers, &options),
        |err| err.to_string(),
    )
    .await;
    let results = match described {
        Ok(results) if results.len() == specifiers.len() => results,
        Ok(_) => {
            report.ok(
                ITEM,
                format!(
                    "topics are created with replication factor {factor} (min.insync.replicas \
                     not readable: an incomplete answer)"
                ),
            );
            return;
        }
        Err(err) => {
            report.ok(
                ITEM,
                format!(
                    "topics are created with replication factor {factor} (min.insync.replicas \
                     not readable: {err})"
                ),
            );
            return;
        }
    };
    let setting = |result: &ConfigResourceResult, name: &str| -> Option<i64> {
        result
            .as_ref()
            .ok()?
            .get(name)?
            .value
            .as_deref()?
            .parse()
            .ok()
    };
    let Some((broker_config, topic_configs)) = results.split_first() else {
        return;
    };
    check_state_policy(&existing, topic_configs, kafka, report);
    let min_isr = setting(broker_config, "min.insync.replicas");
    // -1 asks the broker for its default.
    let new_factor = if factor == -1 {
        setting(broker_config, "default.replication.factor")
    } else {
        Some(i64::from(factor))
    };
    let mut problems = Vec::new();
    if any_missing
        && let (Some(min_isr), Some(new_factor)) = (min_isr, new_factor)
        && min_isr > new_factor
    {
        problems.push(format!(
            "the topics sluice creates get replication factor {new_factor}, below the broker's \
             min.insync.replicas {min_isr}"
        ));
    }
    for ((topic, replicas), result) in existing.iter().zip(topic_configs) {
        if let Some(topic_min_isr) = setting(result, "min.insync.replicas")
            && i64::try_from(*replicas).is_ok_and(|replicas| topic_min_isr > replicas)
        {
            problems.push(format!(
                "topic {topic} has {replicas} replica(s), below its min.insync.replicas \
                 {topic_min_isr}"
            ));
        }
    }
    if !problems.is_empty() {
        // A failure, not a warning: every acks=all write is refused, and sluice (whose
        // messages never time out) would wait forever.
        report.fail(
            ITEM,
            format!(
                "{}: the broker refuses every acks=all write there, and sluice would wait \
                 forever",
                problems.join("; ")
            ),
            "raise the replication factor (kafka.replication_factor for the topics sluice \
             creates) to at least min.insync.replicas, or lower min.insync.replicas",
        );
        return;
    }
    let min_isr = min_isr.map_or_else(|| "unknown".to_owned(), |m| m.to_string());
    let new_factor =
        new_factor.map_or_else(|| "the broker's default".to_owned(), |f| f.to_string());
    let mut detail = format!(
        "min.insync.replicas {min_isr} (broker), replication factor {new_factor} for the topics \
         sluice creates"
    );
    if !existing.is_empty() {
        detail.push_str("; the existing topics allow acks=all too");
    }
    report.ok(ITEM, detail);
}

/// The state topic, if it exists, must be compacted only: under a delete policy its records
/// expire, and sluice would then find a slot without a recorded snapshot.
fn check_state_policy(
    existing: &[(&str, usize)],
    configs: &[ConfigResourceResult],
    kafka: &KafkaSection,
    report: &mut Report,
) {
    let state_topic = state_topic(&kafka.topic_prefix);
    let Some(config) = existing
        .iter()
        .zip(configs)
        .find(|((topic, _), _)| *topic == state_topic)
        .and_then(|(_, config)| config.as_ref().ok())
    else {
        return;
    };
    let policy = config
        .get("cleanup.policy")
        .and_then(|entry| entry.value.clone())
        .unwrap_or_default();
    if policy == "compact" {
        report.ok(
            "state topic",
            format!("{state_topic} is compacted (cleanup.policy = compact)"),
        );
    } else {
        report.fail(
            "state topic",
            format!(
                "{state_topic} has cleanup.policy = {policy:?}: its records expire, and sluice \
                 then cannot tell whether the slot's snapshot completed (it stops rather than \
                 guess)"
            ),
            format!(
                "set cleanup.policy = compact on {state_topic} (kafka-configs --alter \
                 --entity-type topics --entity-name {state_topic} --add-config \
                 cleanup.policy=compact)"
            ),
        );
    }
}
