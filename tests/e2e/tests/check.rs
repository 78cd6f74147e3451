//! `sluice check` as a process against the real stack: a ready setup passes with exactly the
//! warnings it should give and leaves nothing behind, and each way of getting the setup wrong
//! fails, naming what is at fault.

use std::path::PathBuf;
use std::process::{Command, Output, Stdio};

use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;

use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};
use serde_json::Value;
use sluice_avro::{ColumnSpec, TableCodec, TableSpec};
use sluice_e2e::pipeline::wait_until_streaming;
use sluice_e2e::{Stack, unique_name};

/// PostgreSQL's oids of the column types the tests use.
const INT8: u32 = 20;
const TEXT: u32 = 25;

/// A schema of its own with a keyed table `orders` and a publication for it, a slot name and a
/// topic prefix nobody else uses: what `sluice run` needs, ready.
struct Case {
    stack: Stack,
    schema: String,
    slot: String,
    publication: String,
    prefix: String,
    config: PathBuf,
}

impl Case {
    /// The names and the configuration file only; nothing in the database yet.
    fn named(name: &str) -> Case {
        let stack = Stack::from_env();
        let schema = unique_name(name);
        let case = Case {
            slot: format!("{schema}_slot"),
            publication: format!("{schema}_pub"),
            prefix: format!("{schema}_p"),
            config: std::env::temp_dir().join(format!("{schema}.toml")),
            schema,
            stack,
        };
        std::fs::write(
            &case.config,
            format!(
                r#"
[postgres]
host = "127.0.0.1"
port = {port}
database = "{database}"
user = "sluice"
password = "sluice"

[replication]
slot = "{slot}"
publication = "{publication}"

[tables]
include = ["{schema}.*"]

[kafka]
bootstrap_servers = "{bootstrap}"
topic_prefix = "{prefix}"

[registry]
url = "{registry}"
"#,
                port = case.stack.pg_port,
                database = case.stack.pg_database,
                slot = case.slot,
                publication = case.publication,
                schema = case.schema,
                bootstrap = case.stack.kafka_bootstrap,
                prefix = case.prefix,
                registry = case.stack.registry_url,
            ),
        )
        .unwrap();
        case
    }

    /// A ready setup: the schema, `orders` with a primary key, and the publication.
    async fn ready(name: &str) -> Case {
        let case = Case::named(name);
        case.sql(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.orders (id bigint PRIMARY KEY, note text);
             CREATE PUBLICATION {publication} FOR TABLE {schema}.orders;",
            schema = case.schema,
            publication = case.publication,
        ))
        .await;
        case
    }

    async fn sql(&self, statements: &str) {
        self.stack
            .pg_connect("sluice")
            .await
            .batch_execute(statements)
            .await
            .unwrap();
    }

    fn topic(&self, table: &str) -> String {
        format!("{}.{}.{table}", self.prefix, self.schema)
    }

    /// Runs `sluice check --output json` with `env` as configuration overrides. The output is
    /// read (with [`Run::report`]) only after cleaning up, so a broken check leaves nothing.
    fn check(&self, env: &[(&str, &str)]) -> Run {
        let output = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
            .arg("check")
            .arg("--config")
            .arg(&self.config)
            .args(["--output", "json"])
            .env_remove("SLUICE_CONFIG")
            .envs(env.iter().copied())
            .output()
            .expect("sluice check runs");
        Run(output)
    }

    /// Drops what the test made (the slot too, in case a broken check made one).
    async fn clean_up(&self) {
        let client = self.stack.pg_connect("sluice").await;
        client
            .batch_execute(&format!(
                "DROP PUBLICATION IF EXISTS {}; DROP SCHEMA IF EXISTS {} CASCADE;",
                self.publication, self.schema
            ))
            .await
            .unwrap();
        client
            .execute(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots
                  WHERE slot_name = $1",
                &[&self.slot],
            )
            .await
            .unwrap();
        let _ = std::fs::remove_file(&self.config);
    }
}

/// A finished `sluice check`.
#[derive(Debug)]
struct Run(Output);

impl Run {
    /// Its exit code and report.
    fn report(&self) -> (i32, Report) {
        let output = &self.0;
        let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|err| {
            panic!(
                "{err}: stdout {} stderr {}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            )
        });
        (output.status.code().expect("exited"), Report(report))
    }
}

/// The JSON report.
#[derive(Debug)]
struct Report(Value);

impl Report {
    fn items(&self) -> &[Value] {
        self.0["items"].as_array().expect("items is an array")
    }

    /// The item named `name`.
    fn item(&self, name: &str) -> &Value {
        self.items()
            .iter()
            .find(|item| item["item"] == name)
            .unwrap_or_else(|| panic!("no item {name:?} in {:#}", self.0))
    }

    /// The names of the items with `status`.
    fn with_status(&self, status: &str) -> Vec<&str> {
        self.items()
            .iter()
            .filter(|item| item["status"] == status)
            .map(|item| item["item"].as_str().expect("item is a string"))
            .collect()
    }

    /// Asserts the item's status and that its detail contains `found`; returns its fix.
    fn expect(&self, name: &str, status: &str, found: &str) -> &str {
        let item = self.item(name);
        assert_eq!(item["status"], status, "{item:#}");
        let detail = item["detail"].as_str().expect("detail is a string");
        assert!(detail.contains(found), "{name}: {detail:?} lacks {found:?}");
        item["fix"].as_str().unwrap_or("")
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_ready_setup_passes_with_only_the_expected_warnings() {
    let case = Case::ready("check_ok").await;
    // The key subject exists already, holding what sluice would register: compatible.
    let key = TableCodec::new(
        &case.topic("orders"),
        &TableSpec {
            schema: case.schema.clone(),
            name: "orders".to_owned(),
            columns: vec![
                ColumnSpec {
                    name: "id".to_owned(),
                    type_oid: INT8,
                    type_modifier: -1,
                    nullable: false,
                    is_key: true,
                    type_info: Default::default(),
                    default: None,
                },
                ColumnSpec {
                    name: "note".to_owned(),
                    type_oid: TEXT,
                    type_modifier: -1,
                    nullable: true,
                    is_key: false,
                    type_info: Default::default(),
                    default: None,
                },
            ],
        },
    )
    .key_schema()
    .to_owned();
    post_schema(
        &SrSettings::new(case.stack.registry_url.clone()),
        format!("{}-key", case.topic("orders")),
        SuppliedSchema::new(None, SchemaType::Avro, key),
    )
    .await
    .unwrap();
    let keep_size: String = case
        .stack
        .pg_connect("sluice")
        .await
        .query_one("SELECT current_setting('max_slot_wal_keep_size')", &[])
        .await
        .unwrap()
        .get(0);

    let run = case.check(&[]);
    let slots_left: i64 = case
        .stack
        .pg_connect("sluice")
        .await
        .query_one(
            "SELECT count(*) FROM pg_replication_slots WHERE slot_name = $1",
            &[&case.slot],
        )
        .await
        .unwrap()
        .get(0);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(slots_left, 0, "the check created the slot");
    // The topics do not exist before the first run; the stack keeps WAL without bound.
    let mut expected = vec!["topics"];
    if keep_size == "-1" {
        expected.insert(0, "max_slot_wal_keep_size");
    }
    assert_eq!(
        report.with_status("fail"),
        Vec::<&str>::new(),
        "{:#}",
        report.0
    );
    assert_eq!(report.with_status("warn"), expected, "{:#}", report.0);
    assert_eq!(code, 1);
    assert_eq!(report.0["status"], "warn");
    report.expect("topics", "warn", &case.topic("orders"));
    report.expect("topics", "warn", &format!("{}._sluice_state", case.prefix));
    for (name, found) in [
        ("postgres", "connected"),
        ("wal_level", "logical"),
        ("replication privilege", "a replication connection opened"),
        ("tables", &format!("{}.orders", case.schema)),
        ("SELECT on tables", "1 chosen table"),
        ("keys", "1 chosen table"),
        ("kafka", "reachable"),
        ("acks=all", "min.insync.replicas"),
        ("registry", "reachable"),
        ("registry compatibility", "BACKWARD"),
    ] {
        assert_eq!(report.expect(name, "ok", found), "");
    }
    report.expect(
        &format!("publication {}", case.publication),
        "ok",
        "publishes all 1 chosen table",
    );
    report.expect(&format!("slot {}", case.slot), "ok", "will create it");
    report.expect(
        "subjects",
        "ok",
        "1 registered, and the schemas sluice registers now are compatible; 1 not registered",
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_topic_with_another_partition_count_is_named_by_check_and_run() {
    let case = Case::ready("check_parts").await;
    let topic = case.topic("orders");
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &case.stack.kafka_bootstrap)
        .create()
        .unwrap();
    let created = admin
        .create_topics(
            &[NewTopic::new(&topic, 1, TopicReplication::Fixed(1))],
            &AdminOptions::new(),
        )
        .await
        .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let run = case.check(&[("SLUICE_KAFKA__PARTITIONS", "2")]);
    // sluice itself names it at startup, and carries on.
    let mut sluice = Command::new(env!("CARGO_BIN_EXE_sluice-cli"))
        .args(["run", "--config"])
        .arg(&case.config)
        .env("SLUICE_KAFKA__PARTITIONS", "2")
        .env("SLUICE_LOG", "warn")
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let sql = case.stack.pg_connect("sluice").await;
    wait_until_streaming(&sql, &case.slot).await;
    Command::new("kill")
        .args(["-TERM", &sluice.id().to_string()])
        .status()
        .unwrap();
    let mut stderr = String::new();
    std::io::Read::read_to_string(sluice.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    assert!(sluice.wait().unwrap().success());
    case.clean_up().await;
    let (_, report) = run.report();
    let fix = report.expect("topic partitions", "warn", &format!("{topic} (1)"));
    assert!(fix.contains("order across that change is lost"), "{fix}");
    assert!(
        stderr.contains("another partition count") && stderr.contains(&topic),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_state_topic_under_a_delete_policy_fails_naming_the_policy() {
    let case = Case::ready("check_policy").await;
    let state = format!("{}._sluice_state", case.prefix);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", &case.stack.kafka_bootstrap)
        .create()
        .unwrap();
    let created =
        admin
            .create_topics(
                &[NewTopic::new(&state, 1, TopicReplication::Fixed(1))
                    .set("cleanup.policy", "delete")],
                &AdminOptions::new(),
            )
            .await
            .unwrap();
    assert!(created.iter().all(Result::is_ok), "{created:?}");
    let run = case.check(&[]);
    case.clean_up().await;
    let (code, report) = run.report();
    assert_eq!(code, 2);
    let fix = report.expect("state topic", "fail", "cleanup.policy = \"delete\"");
    assert!(fix.contains("cleanup.policy=compact"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_table_without_a_key_fails_by_name() {
    let case = Case::ready("check_nokey").await;
    case.sql(&format!(
        "CREATE TABLE {}.nokey (a int, b text)",
        case.schema
    ))
    .await;
    let run = case.check(&[]);
    case.clean_up().await;
    let (code, report) = run.report();

    let item = format!("key of {}.nokey", case.schema);
    assert_eq!(
        report.with_status("fail"),
        [item.as_str()],
        "{:#}",
        report.0
    );
    assert_eq!(code, 2);
    let fix = report.expect(&item, "fail", "has no primary key");
    let quoted = format!("\"{}\".\"nokey\"", case.schema);
    assert!(
        fix.contains(&format!("ALTER TABLE {quoted} ADD PRIMARY KEY"))
            && fix.contains(&format!("ALTER TABLE {quoted} REPLICA IDENTITY FULL"))
            && fix.contains("tables.allow_keyless = true"),
        "{fix}"
    );
    // The keyed table is fine, and is summed up as such.
    report.expect("keys", "ok", "1 chosen table");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_password_fails_the_postgres_item() {
    let case = Case::named("check_password");
    let run = case.check(&[("SLUICE_POSTGRES__PASSWORD", "not-the-password")]);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(code, 2, "{:#}", report.0);
    assert_eq!(report.0["status"], "fail");
    let fix = report.expect("postgres", "fail", "password authentication failed");
    assert!(fix.contains("password"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_broker_fails_naming_it() {
    let case = Case::ready("check_broker").await;
    let run = case.check(&[("SLUICE_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:1")]);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(report.with_status("fail"), ["kafka"], "{:#}", report.0);
    assert_eq!(code, 2);
    let fix = report.expect("kafka", "fail", "127.0.0.1:1");
    assert!(fix.contains("kafka.bootstrap_servers"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_unreachable_registry_fails_naming_it() {
    let case = Case::ready("check_registry").await;
    let url = "http://127.0.0.1:1/apis/ccompat/v7";
    let run = case.check(&[("SLUICE_REGISTRY__URL", url)]);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(report.with_status("fail"), ["registry"], "{:#}", report.0);
    assert_eq!(code, 2);
    let fix = report.expect("registry", "fail", url);
    assert!(fix.contains("registry.url"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn an_incompatible_subject_fails_naming_it() {
    let case = Case::ready("check_subject").await;
    let subject = format!("{}-value", case.topic("orders"));
    // Under the stack's BACKWARD rule, sluice's envelope cannot read what this schema wrote.
    post_schema(
        &SrSettings::new(case.stack.registry_url.clone()),
        subject.clone(),
        SuppliedSchema::new(
            None,
            SchemaType::Avro,
            r#"{"type": "record", "name": "Other", "namespace": "elsewhere",
                "fields": [{"name": "zzz", "type": "string"}]}"#
                .to_owned(),
        ),
    )
    .await
    .unwrap();
    let run = case.check(&[]);
    case.clean_up().await;
    let (code, report) = run.report();

    let item = format!("subject {subject}");
    assert_eq!(
        report.with_status("fail"),
        [item.as_str()],
        "{:#}",
        report.0
    );
    assert_eq!(code, 2);
    let fix = report.expect(&item, "fail", "incompatible");
    assert!(
        fix.contains(&format!("/config/{subject}")) && fix.contains("kafka.topic_prefix"),
        "{fix}"
    );
    // The key subject is not registered yet: nothing to be incompatible with.
    report.expect("subjects", "ok", "1 not registered yet");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_user_without_select_fails_naming_the_table() {
    let case = Case::ready("check_select").await;
    let role = format!("{}_role", case.schema);
    let admin = case.stack.pg_connect("postgres").await;
    admin
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN REPLICATION PASSWORD '{role}'"
        ))
        .await
        .unwrap();
    let run = case.check(&[
        ("SLUICE_POSTGRES__USER", role.as_str()),
        ("SLUICE_POSTGRES__PASSWORD", role.as_str()),
    ]);
    admin
        .batch_execute(&format!("DROP ROLE {role}"))
        .await
        .unwrap();
    case.clean_up().await;
    let (code, report) = run.report();

    let item = format!("SELECT on {}.orders", case.schema);
    assert_eq!(
        report.with_status("fail"),
        [item.as_str()],
        "{:#}",
        report.0
    );
    assert_eq!(code, 2);
    let fix = report.expect(&item, "fail", &format!("{role} may not read"));
    assert!(
        fix.contains(&format!("GRANT USAGE ON SCHEMA \"{}\"", case.schema))
            && fix.contains(&format!(
                "GRANT SELECT ON \"{}\".\"orders\" TO \"{role}\"",
                case.schema
            )),
        "{fix}"
    );
    report.expect("replication privilege", "ok", "REPLICATION");
}

#[tokio::test(flavor = "multi_thread")]
async fn no_matching_table_fails() {
    let case = Case::named("check_none");
    let run = case.check(&[]);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(code, 2);
    let fix = report.expect("tables", "fail", &format!("[{}.*]", case.schema));
    assert!(fix.contains("patterns"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_bad_configuration_fails_before_connecting() {
    let case = Case::named("check_config");
    let run = case.check(&[("SLUICE_POSTGRES__PORT", "54x2")]);
    case.clean_up().await;
    let (code, report) = run.report();

    assert_eq!(code, 2);
    assert_eq!(
        report.with_status("fail"),
        ["configuration"],
        "{:#}",
        report.0
    );
    report.expect("configuration", "fail", "SLUICE_POSTGRES__PORT");
    assert_eq!(report.items().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn the_registry_is_reached_through_tls_a_client_certificate_and_each_kind_of_credentials() {
    use sluice_e2e::registry_proxy::{Demand, RegistryProxy, client_certificate};
    let case = Case::ready("check_registry_gate").await;
    let ca = case.stack.ca_cert().display().to_string();
    let (cert, key) = client_certificate(&case.stack);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let token_file = std::env::temp_dir().join(format!("{}.token", case.schema));
    std::fs::write(&token_file, "t0ken-from-a-file\n").unwrap();
    let token_file = token_file.display().to_string();

    let bearer = RegistryProxy::start(
        &case.stack,
        Demand::Bearer("t0ken-from-a-file".to_owned()),
        true,
    )
    .await;
    let basic = RegistryProxy::start(
        &case.stack,
        Demand::Basic {
            username: "sr-user".to_owned(),
            password: "sr-secret".to_owned(),
        },
        false,
    )
    .await;
    let tls = |url: &str| {
        vec![
            ("SLUICE_REGISTRY__URL", url.to_owned()),
            ("SLUICE_REGISTRY__CA_FILE", ca.clone()),
        ]
    };
    let runs = [
        [
            tls(&bearer.url),
            vec![
                ("SLUICE_REGISTRY__CERT_FILE", cert.clone()),
                ("SLUICE_REGISTRY__KEY_FILE", key.clone()),
                ("SLUICE_REGISTRY__TOKEN_FILE", token_file.clone()),
            ],
        ]
        .concat(),
        // No client certificate: the handshake fails.
        [
            tls(&bearer.url),
            vec![("SLUICE_REGISTRY__TOKEN_FILE", token_file.clone())],
        ]
        .concat(),
        [
            tls(&basic.url),
            vec![
                ("SLUICE_REGISTRY__USERNAME", "sr-user".to_owned()),
                ("SLUICE_REGISTRY__PASSWORD", "sr-secret".to_owned()),
            ],
        ]
        .concat(),
        // Wrong credentials: 401.
        [
            tls(&basic.url),
            vec![
                ("SLUICE_REGISTRY__USERNAME", "sr-user".to_owned()),
                ("SLUICE_REGISTRY__PASSWORD", "not-it".to_owned()),
            ],
        ]
        .concat(),
    ]
    .map(|env| {
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
        case.check(&env)
    });
    case.clean_up().await;
    let _ = std::fs::remove_file(&token_file);

    let [mtls_bearer, no_cert, basic_ok, basic_wrong] = runs.map(|run| run.report().1);
    for report in [&mtls_bearer, &basic_ok] {
        report.expect("registry", "ok", "reachable at https://127.0.0.1:");
        report.expect("subjects", "ok", "not registered yet");
    }
    no_cert.expect("registry", "fail", "unavailable");
    let fix = basic_wrong.expect("registry", "fail", "401");
    assert!(fix.contains("registry.password"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_partitioned_table_under_a_publication_not_through_its_root_is_named() {
    let case = Case::named("check_partroot");
    case.sql(&format!(
        "CREATE SCHEMA {schema};
         CREATE TABLE {schema}.events (id bigint, at date, PRIMARY KEY (id, at))
           PARTITION BY RANGE (at);
         CREATE TABLE {schema}.events_2024 PARTITION OF {schema}.events
           FOR VALUES FROM ('2024-01-01') TO ('2025-01-01');
         CREATE PUBLICATION {publication} FOR TABLE {schema}.events;",
        schema = case.schema,
        publication = case.publication,
    ))
    .await;
    // sluice's user owns the publication: `sluice run` sets the option itself.
    let owned = case.check(&[]);
    // Owned by another role, it is the owner's to change.
    let admin = case.stack.pg_connect("postgres").await;
    admin
        .batch_execute(&format!(
            "ALTER PUBLICATION {} OWNER TO postgres",
            case.publication
        ))
        .await
        .unwrap();
    let unowned = case.check(&[]);
    admin
        .batch_execute(&format!("DROP PUBLICATION {}", case.publication))
        .await
        .unwrap();
    case.clean_up().await;

    let item = format!("publication {}", case.publication);
    let statement = format!(
        "ALTER PUBLICATION \"{}\" SET (publish_via_partition_root = true)",
        case.publication
    );
    let (_, report) = owned.report();
    assert_eq!(
        report.with_status("fail"),
        Vec::<&str>::new(),
        "{:#}",
        report.0
    );
    let fix = report.expect(&item, "warn", "publish_via_partition_root");
    assert!(fix.contains(&statement), "{fix}");
    report.expect(&item, "warn", &format!("{}.events", case.schema));
    let (code, report) = unowned.report();
    assert_eq!(code, 2);
    assert_eq!(
        report.with_status("fail"),
        [item.as_str()],
        "{:#}",
        report.0
    );
    let fix = report.expect(&item, "fail", "publish_via_partition_root");
    assert!(fix.contains(&statement) && fix.contains("owner"), "{fix}");
}

#[tokio::test(flavor = "multi_thread")]
async fn postgres_features_name_what_14_lacks_and_that_18_lacks_nothing() {
    let case = Case::named("check_features");
    let (v14, v18) = (
        case.stack.pg_port_of(14).to_string(),
        case.stack.pg_port_of(18).to_string(),
    );
    let on_14 = case.check(&[("SLUICE_POSTGRES__PORT", v14.as_str())]);
    let failover_on_14 = case.check(&[
        ("SLUICE_POSTGRES__PORT", v14.as_str()),
        ("SLUICE_REPLICATION__FAILOVER", "true"),
    ]);
    let on_18 = case.check(&[("SLUICE_POSTGRES__PORT", v18.as_str())]);
    case.clean_up().await;

    let (_, report) = on_14.report();
    report.expect("postgres version", "ok", "PostgreSQL 14.");
    for gap in [
        "PostgreSQL 14 lacks streaming 'parallel' (16+): large transactions stream with \
         streaming 'on' (protocol 2, not 4)",
        "logical decoding on a standby (16+): sluice must read from the primary",
        "failover slots (17+): sluice's slot exists on this server only \
         (replication.failover needs 17)",
        "pg_replication_slots.invalidation_reason (17+)",
    ] {
        assert_eq!(report.expect("postgres features", "ok", gap), "");
    }
    // Asked for what 14 lacks, it says what follows.
    let (_, report) = failover_on_14.report();
    let fix = report.expect(
        "postgres features",
        "fail",
        "failover slots (17+): replication.failover = true asks for one, so sluice refuses \
         to start",
    );
    assert!(fix.contains("set replication.failover = false"), "{fix}");

    let (_, report) = on_18.report();
    report.expect("postgres version", "ok", "PostgreSQL 18.");
    report.expect(
        "postgres features",
        "ok",
        "PostgreSQL 18 has all that sluice uses (streaming 'parallel', binary transfer, \
         logical decoding messages, decoding on a standby, failover slots)",
    );
    let detail = report.item("postgres features")["detail"].as_str().unwrap();
    assert!(!detail.contains("lacks"), "{detail}");
    assert!(detail.contains("replication.failover = false"), "{detail}");
}
