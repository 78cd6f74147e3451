//! sluice against the broker's secured listeners, as the stack runs them: SASL/SCRAM-SHA-512
//! over TLS, and mutual TLS with a client certificate. Events arrive through each; a wrong
//! password is refused with an error that names the broker's answer.

use std::time::Duration;

use apache_avro::types::Value;
use sluice_e2e::pipeline::{
    Sluice, read_events, run_until_exit, stop_and_drop_slot, wait_until_streaming, write_config,
};
use sluice_e2e::{Stack, stack_env, unique_name};

/// A captured schema with one row, and a configuration whose broker settings are `kafka`
/// (replacing the plaintext listener's).
async fn case(
    stack: &Stack,
    name: &str,
    bootstrap: &str,
    kafka: &str,
) -> (std::path::PathBuf, String, String, String) {
    let sql = stack.pg_connect("sluice").await;
    let schema = unique_name(name);
    sql.batch_execute(&format!(
        "CREATE SCHEMA {schema}; CREATE TABLE {schema}.t (id int PRIMARY KEY);
         INSERT INTO {schema}.t VALUES (1);"
    ))
    .await
    .unwrap();
    let (prefix, slot) = (unique_name(name), unique_name(&format!("{name}_slot")));
    let config = write_config(
        stack,
        &prefix,
        &slot,
        &unique_name(&format!("{name}_pub")),
        &schema,
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&stack.kafka_bootstrap, bootstrap)
        .replace(
            "[registry]",
            &format!("[kafka.producer]\n{kafka}\n\n[registry]"),
        );
    std::fs::write(&config, text).unwrap();
    (config, schema, prefix, slot)
}

/// Runs sluice on `config` until the snapshot's row and a streamed one are in Kafka.
async fn captures(stack: &Stack, config: &std::path::Path, schema: &str, prefix: &str, slot: &str) {
    let sql = stack.pg_connect("sluice").await;
    let sluice = Sluice::start(env!("CARGO_BIN_EXE_sluice-cli"), config);
    let topics = [format!("{prefix}.{schema}.t")];
    read_events(stack, &topics, 1).await;
    wait_until_streaming(&sql, slot).await;
    sql.batch_execute(&format!("INSERT INTO {schema}.t VALUES (2)"))
        .await
        .unwrap();
    let events = read_events(stack, &topics, 2).await;
    let mut ids: Vec<String> = events
        .iter()
        .map(|e| format!("{:?}", e.key["id"]))
        .collect();
    ids.sort();
    assert_eq!(
        ids,
        [
            format!("{:?}", Value::Int(1)),
            format!("{:?}", Value::Int(2))
        ]
    );
    stop_and_drop_slot(sluice, &sql, slot).await;
}

fn scram(password: &str, ca: &std::path::Path) -> String {
    format!(
        "\"security.protocol\" = \"sasl_ssl\"
\"sasl.mechanism\" = \"SCRAM-SHA-512\"
\"sasl.username\" = \"sluice_scram\"
\"sasl.password\" = \"{password}\"
\"ssl.ca.location\" = \"{}\"",
        ca.display()
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_over_sasl_scram_sha_512_with_tls() {
    let stack = Stack::from_env();
    let bootstrap = format!("127.0.0.1:{}", stack_env()["KAFKA_SCRAM_PORT"]);
    let (config, schema, prefix, slot) = case(
        &stack,
        "scram",
        &bootstrap,
        &scram("sluice_scram", &stack.ca_cert()),
    )
    .await;
    captures(&stack, &config, &schema, &prefix, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn events_arrive_over_mutual_tls() {
    let stack = Stack::from_env();
    let bootstrap = format!("127.0.0.1:{}", stack_env()["KAFKA_MTLS_PORT"]);
    let (cert, key) = stack.client_cert();
    let kafka = format!(
        "\"security.protocol\" = \"ssl\"
\"ssl.ca.location\" = \"{}\"
\"ssl.certificate.location\" = \"{}\"
\"ssl.key.location\" = \"{}\"",
        stack.ca_cert().display(),
        cert.display(),
        key.display()
    );
    let (config, schema, prefix, slot) = case(&stack, "mtls", &bootstrap, &kafka).await;
    captures(&stack, &config, &schema, &prefix, &slot).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_wrong_scram_password_is_refused_naming_the_authentication() {
    let stack = Stack::from_env();
    let bootstrap = format!("127.0.0.1:{}", stack_env()["KAFKA_SCRAM_PORT"]);
    let (config, _, _, _) = case(
        &stack,
        "scrambad",
        &bootstrap,
        &scram("wrong", &stack.ca_cert()),
    )
    .await;
    let (code, stderr) = run_until_exit(
        env!("CARGO_BIN_EXE_sluice-cli"),
        &config,
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(1), "{stderr}");
    assert!(
        stderr.contains("SASL authentication") || stderr.contains("invalid credentials"),
        "{stderr}"
    );
}
