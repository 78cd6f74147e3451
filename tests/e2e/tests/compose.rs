//! docker-compose.yml must describe the same stack as deploy/local/stack: Docker does not run
//! on the project's machines, so this test is what keeps the two from drifting apart.

use std::collections::HashMap;

use serde_yaml_ng::Value;
use sluice_e2e::{repo_root, stack_env};

fn compose() -> Value {
    let path = repo_root().join("docker-compose.yml");
    serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn service<'a>(compose: &'a Value, name: &str) -> &'a Value {
    compose["services"]
        .get(name)
        .unwrap_or_else(|| panic!("docker-compose.yml has no service {name}"))
}

fn image_tag(service: &Value) -> &str {
    let image = service["image"].as_str().expect("service has an image");
    image.rsplit_once(':').expect("image has a tag").1
}

/// The host ports a service publishes, checking that each is bound to loopback only.
fn host_ports(service: &Value) -> Vec<String> {
    service["ports"]
        .as_sequence()
        .map(|ports| {
            ports
                .iter()
                .map(|port| {
                    let port = port.as_str().expect("ports are strings");
                    let rest = port
                        .strip_prefix("127.0.0.1:")
                        .unwrap_or_else(|| panic!("port {port} is not bound to 127.0.0.1"));
                    rest.split(':').next().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default()
}

fn environment(service: &Value) -> HashMap<String, String> {
    service["environment"]
        .as_mapping()
        .expect("environment is a mapping")
        .iter()
        .map(|(k, v)| {
            let value = match v {
                Value::String(s) => s.clone(),
                Value::Number(n) => n.to_string(),
                other => panic!("unexpected environment value {other:?}"),
            };
            (k.as_str().unwrap().to_owned(), value)
        })
        .collect()
}

#[test]
fn compose_postgres_matches_the_local_stack() {
    let (compose, env) = (compose(), stack_env());
    let postgres = service(&compose, "postgres");
    assert_eq!(image_tag(postgres), env["PG_MAJOR"]);
    assert_eq!(host_ports(postgres), vec![env["PG_PORT"].clone()]);
    let settings: Vec<&str> = postgres["command"]
        .as_sequence()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for expected in [
        "wal_level=logical".to_owned(),
        format!("max_replication_slots={}", env["PG_MAX_REPLICATION_SLOTS"]),
        format!("max_wal_senders={}", env["PG_MAX_WAL_SENDERS"]),
        format!("wal_sender_timeout={}", env["PG_WAL_SENDER_TIMEOUT"]),
    ] {
        assert!(
            settings.contains(&expected.as_str()),
            "missing -c {expected}"
        );
    }
    assert_eq!(environment(postgres)["POSTGRES_DB"], env["PG_DATABASE"]);
}

#[test]
fn compose_kafka_matches_the_local_stack() {
    let (compose, env) = (compose(), stack_env());
    let kafka = service(&compose, "kafka");
    assert_eq!(image_tag(kafka), env["KAFKA_VERSION"]);
    assert_eq!(host_ports(kafka), vec![env["KAFKA_PORT"].clone()]);
    let vars = environment(kafka);
    assert_eq!(vars["CLUSTER_ID"], env["KAFKA_CLUSTER_ID"]);
    assert_eq!(vars["KAFKA_PROCESS_ROLES"], "broker,controller");
    assert!(
        vars["KAFKA_ADVERTISED_LISTENERS"].contains(&format!("127.0.0.1:{}", env["KAFKA_PORT"])),
        "the host listener is advertised on the local stack's port"
    );
    assert_eq!(vars["KAFKA_AUTO_CREATE_TOPICS_ENABLE"], "false");
}

#[test]
fn compose_registry_matches_the_local_stack() {
    let (compose, env) = (compose(), stack_env());
    let registry = service(&compose, "registry");
    assert_eq!(image_tag(registry), env["REGISTRY_VERSION"]);
    assert_eq!(host_ports(registry), vec![env["REGISTRY_PORT"].clone()]);
    assert_eq!(
        environment(registry)["APICURIO_STORAGE_SQL_KIND"],
        "postgresql"
    );
    let config = serde_yaml_ng::to_string(service(&compose, "registry-config")).unwrap();
    assert!(
        config.contains(&format!(
            r#"{{"compatibility":"{}"}}"#,
            env["REGISTRY_COMPATIBILITY"]
        )),
        "compose sets the same global compatibility"
    );
}

#[test]
fn compose_runs_sluice_from_the_projects_dockerfile() {
    let compose = compose();
    let sluice = service(&compose, "sluice");
    let dockerfile = sluice["build"]["dockerfile"].as_str().unwrap();
    assert!(
        repo_root().join(dockerfile).is_file(),
        "{dockerfile} exists"
    );
}
