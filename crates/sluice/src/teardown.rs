//! `sluice teardown`: dropping the replication slot and the publication sluice created (and,
//! when asked, its state topic), so that the source database stops keeping WAL for it.
//!
//! The table topics are never touched: consumers may still be reading them.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, IsTerminal as _, Write as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions};
use rdkafka::config::FromClientConfigAndContext;
use sluice_kafka::{KafkaConfig, RDKafkaErrorCode, TracingContext, client_config, read_to_end};
use sluice_pipeline::config::Config;
use sluice_pipeline::connect::connect_primary;
use sluice_pipeline::describe;
use sluice_pipeline::naming;
use sluice_pipeline::publication;
use sluice_pipeline::state;
use tokio_postgres::Client;
use tokio_postgres::error::SqlState;

use crate::status::{self, Kafka, Slot};

/// Bound on reading the state topic and on deleting it.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(30);

/// Arguments of `sluice teardown`.
#[derive(Debug, clap::Args)]
pub(crate) struct TeardownArgs {
    /// The configuration file (TOML); `SLUICE_<SECTION>__<KEY>` variables override it.
    #[arg(long, short, env = "SLUICE_CONFIG")]
    config: Option<PathBuf>,
    /// Drop without asking for confirmation.
    #[arg(long, short)]
    yes: bool,
    /// Also delete the state topic `<topic_prefix>._sluice_state`, sluice's record of the
    /// slot's snapshot.
    #[arg(long)]
    delete_state: bool,
}

/// What there is to remove, found before anything is removed.
struct Plan {
    sql: Client,
    slot: Slot,
    /// Whether the publication exists.
    publication: bool,
    /// The publication was made outside sluice (`replication.create_publication = false`), for
    /// others too perhaps: it is left alone.
    keep_publication: bool,
    /// Whether the state topic exists; `None` without `--delete-state`.
    state_topic: Option<bool>,
}

impl Plan {
    fn anything(&self) -> bool {
        self.slot.exists
            || (self.publication && !self.keep_publication)
            || self.state_topic == Some(true)
    }
}

/// Runs `sluice teardown`: 0 when done (or nothing was there), 1 when refused, declined or
/// failed, 2 for a bad configuration.
pub(crate) fn main(args: &TeardownArgs) -> ExitCode {
    let (config, runtime) = match crate::configured_runtime(args.config.as_deref(), 1) {
        Ok(both) => both,
        Err(code) => return code,
    };
    let (prefix, replication) = (&config.kafka.topic_prefix, &config.replication);
    let plan = match runtime.block_on(inspect(&config, args.delete_state)) {
        Ok(plan) => plan,
        Err(message) => {
            eprintln!("error: {message}");
            eprintln!("nothing was dropped");
            return ExitCode::FAILURE;
        }
    };
    let state_topic = naming::state_topic(prefix);
    let untouched = format!(
        "table topics {}: consumers may still need them; delete them with Kafka's tools once \
         none does",
        naming::table_topic(prefix, "<schema>", "<table>")
    );

    let publication = format!("publication {}", replication.publication);
    let kept_publication = format!(
        "{publication} (replication.create_publication = false: it was made outside sluice)"
    );
    if !plan.anything() {
        let mut absent = vec![format!("replication slot {}", replication.slot)];
        if !plan.publication {
            absent.push(publication);
        }
        if plan.state_topic.is_some() {
            absent.push(format!("Kafka topic {state_topic}"));
        }
        let verb = if absent.len() == 1 { "does" } else { "do" };
        println!("nothing to drop: {} {verb} not exist", absent.join(", "));
        if plan.publication {
            print_line("kept", &kept_publication);
        }
        print_line("untouched", &untouched);
        return ExitCode::SUCCESS;
    }

    println!(
        "database {}, Kafka topic prefix {}:",
        plan.slot.current_database, prefix
    );
    if plan.slot.exists {
        let confirmed = plan.slot.confirmed_flush_lsn.as_deref().unwrap_or("none");
        print_line(
            "to drop",
            &format!(
                "replication slot {} (inactive, confirmed up to {confirmed})",
                replication.slot
            ),
        );
    } else {
        print_line("absent", &format!("replication slot {}", replication.slot));
    }
    match (plan.publication, plan.keep_publication) {
        (false, _) => print_line("absent", &publication),
        (true, true) => print_line("kept", &kept_publication),
        (true, false) => print_line("to drop", &publication),
    }
    match plan.state_topic {
        Some(true) => print_line(
            "to delete",
            &format!("Kafka topic {state_topic} (the record of the slot's snapshot)"),
        ),
        Some(false) => print_line("absent", &format!("Kafka topic {state_topic}")),
        None => print_line(
            "kept",
            &format!("Kafka topic {state_topic} (--delete-state deletes it)"),
        ),
    }
    print_line("untouched", &untouched);

    if !args.yes {
        match confirm() {
            Ok(true) => {}
            Ok(false) => {
                println!("declined: nothing was dropped (--yes drops without asking)");
                return ExitCode::FAILURE;
            }
            Err(err) => {
                eprintln!("error: reading the answer from stdin: {err}");
                eprintln!("nothing was dropped");
                return ExitCode::FAILURE;
            }
        }
    }
    if runtime.block_on(execute(&config, &plan, &state_topic)) {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

fn print_line(what: &str, item: &str) {
    println!("  {what:<10}  {item}");
}

/// Asks on stdout, reads one line from stdin: only `y` or `yes` agrees; end of input declines.
fn confirm() -> std::io::Result<bool> {
    print!("Drop them? [y/N] ");
    std::io::stdout().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if !std::io::stdin().is_terminal() {
        // Nothing echoed the answer and its newline: end the prompt's line.
        println!();
    }
    let answer = answer.trim().to_ascii_lowercase();
    Ok(answer == "y" || answer == "yes")
}

/// Finds what exists, and refuses (nothing dropped yet) what must not be dropped: a slot in
/// use, a slot that is not this configuration's, a state topic other slots' records share.
async fn inspect(config: &Config, delete_state: bool) -> Result<Plan, String> {
    let (_, sql) = connect_primary(&config.postgres)
        .await
        .map_err(|e| e.to_string())?;
    let replication = &config.replication;
    let (slot, _, _) = status::read_slot(&sql, &replication.slot).await?;
    if let Some(foreign) = slot.foreign() {
        return Err(foreign);
    }
    if slot.active {
        return Err(in_use(&slot));
    }
    let publication = status::publication_exists(&sql, &replication.publication).await?;
    let state_topic = if delete_state {
        let prefix = &config.kafka.topic_prefix;
        let topic = naming::state_topic(prefix);
        let kafka = config.kafka.client_config();
        let exists = tokio::task::block_in_place(|| {
            let kafka = Kafka::connect(&kafka)?;
            Ok::<_, String>(kafka.topics()?.contains_key(&topic))
        })?;
        if exists {
            let others = other_slots(&kafka, &topic, &replication.slot)?;
            if !others.is_empty() {
                return Err(format!(
                    "the state topic {topic} also holds the state of slot(s) {} (another sluice \
                     with kafka.topic_prefix {}): deleting it would make them take a new \
                     snapshot; run teardown without --delete-state",
                    others.join(", "),
                    prefix
                ));
            }
        }
        Some(exists)
    } else {
        None
    };
    Ok(Plan {
        sql,
        slot,
        publication,
        keep_publication: !replication.create_publication,
        state_topic,
    })
}

fn in_use(slot: &Slot) -> String {
    let pid = slot
        .active_pid
        .map_or_else(|| "unknown".to_owned(), |pid| pid.to_string());
    let by = slot.walsender.as_ref().map_or_else(String::new, |sender| {
        format!(
            " (application {}, client {})",
            sender.application_name.as_deref().unwrap_or("unknown"),
            sender.client_addr.as_deref().unwrap_or("local socket")
        )
    });
    format!(
        "replication slot {} is active: the walsender with pid {pid} on the database server is \
         streaming from it{by}. Stop sluice first (SIGTERM or Ctrl-C), then run teardown again",
        slot.name
    )
}

/// Slots other than `ours` whose latest record in the state topic is not a tombstone.
fn other_slots(kafka: &KafkaConfig, topic: &str, ours: &str) -> Result<Vec<String>, String> {
    let records = tokio::task::block_in_place(|| read_to_end(kafka, topic, KAFKA_TIMEOUT))
        .map_err(|err| format!("reading {topic}: {err}"))?;
    let mut latest: BTreeMap<String, bool> = BTreeMap::new();
    for (key, value) in records {
        if let Some(key) = key {
            latest.insert(String::from_utf8_lossy(&key).into_owned(), value.is_some());
        }
    }
    let others: BTreeSet<String> = latest
        .iter()
        .filter(|(_, live)| **live)
        .map(|(key, _)| state::slot_of_key(key))
        .filter(|slot| *slot != ours)
        .map(str::to_owned)
        .collect();
    Ok(others.into_iter().collect())
}

/// Drops what the plan found, slot first: while the slot is there, the publication is what
/// a restarted sluice would stream through. Returns whether everything went as planned.
async fn execute(config: &Config, plan: &Plan, state_topic: &str) -> bool {
    let replication = &config.replication;
    if plan.slot.exists {
        let dropped = plan
            .sql
            .execute("SELECT pg_drop_replication_slot($1)", &[&replication.slot])
            .await;
        let slot = format!("replication slot {}", replication.slot);
        match dropped {
            Ok(_) => print_line("dropped", &slot),
            Err(err) if err.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
                print_line("absent", &slot);
            }
            Err(err) if err.code() == Some(&SqlState::OBJECT_IN_USE) => {
                // sluice started between the look and the drop.
                eprintln!(
                    "error: dropping {slot}: {}; stop sluice first, then run teardown again",
                    describe::pg(&err)
                );
                eprintln!("nothing was dropped");
                return false;
            }
            Err(err) => {
                eprintln!("error: dropping {slot}: {}", describe::pg(&err));
                eprintln!("nothing was dropped");
                return false;
            }
        }
    }
    if plan.publication && !plan.keep_publication {
        let publication = format!("publication {}", replication.publication);
        let dropped = plan
            .sql
            .batch_execute(&publication::drop_sql(&replication.publication))
            .await;
        match dropped {
            Ok(()) => print_line("dropped", &publication),
            Err(err) if err.code() == Some(&SqlState::UNDEFINED_OBJECT) => {
                print_line("absent", &publication);
            }
            Err(err) => {
                eprintln!(
                    "error: dropping {publication}: {}; only its owner (or a superuser) can drop it",
                    describe::pg(&err)
                );
                return false;
            }
        }
    }
    if plan.state_topic == Some(true) {
        let topic = format!("Kafka topic {state_topic}");
        match delete_topic(&config.kafka.client_config(), state_topic).await {
            Ok(true) => print_line("deleted", &topic),
            Ok(false) => print_line("absent", &topic),
            Err(err) => {
                eprintln!("error: deleting {topic}: {err}");
                return false;
            }
        }
    }
    true
}

/// Deletes `topic`; `Ok(false)` when it was already gone.
async fn delete_topic(kafka: &KafkaConfig, topic: &str) -> Result<bool, String> {
    let admin: AdminClient<TracingContext> =
        AdminClient::from_config_and_context(&client_config(kafka), TracingContext)
            .map_err(|err| format!("creating the Kafka admin client: {err}"))?;
    let options = AdminOptions::new()
        .request_timeout(Some(KAFKA_TIMEOUT))
        .operation_timeout(Some(KAFKA_TIMEOUT));
    let results = admin
        .delete_topics(&[topic], &options)
        .await
        .map_err(|err| err.to_string())?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => return Ok(false),
            Err((_, code)) => return Err(code.to_string()),
        }
    }
    Ok(true)
}
