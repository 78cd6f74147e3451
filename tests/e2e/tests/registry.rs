//! sluice's registry client against the stack's Apicurio Registry (Confluent API).

use std::time::Duration;

use sluice_avro::{Registry, RegistryConfig, RegistryError};
use sluice_e2e::{Stack, unique_name};

fn config(url: &str) -> RegistryConfig {
    RegistryConfig {
        url: url.to_owned(),
        username: None,
        password: None,
        timeout: Duration::from_secs(5),
    }
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Value","namespace":"sluice.test","fields":[{fields}]}}"#)
}

#[tokio::test]
async fn schemas_are_registered_once_and_incompatible_ones_refused_with_the_choices() {
    let stack = Stack::from_env();
    let mut registry = Registry::new(&config(&stack.registry_url)).unwrap();
    let subject = format!("{}-value", unique_name("registry"));
    let v1 = record(r#"{"name":"id","type":"long"}"#);
    let id = registry.register(&subject, &v1).await.unwrap();
    assert_eq!(registry.register(&subject, &v1).await.unwrap(), id);
    assert_eq!(registry.stats().calls, 1);
    assert_eq!(registry.stats().cache_hits, 1);

    let v2 = record(
        r#"{"name":"id","type":"long"},{"name":"n","type":["null","string"],"default":null}"#,
    );
    assert_ne!(registry.register(&subject, &v2).await.unwrap(), id);

    let breaking = record(r#"{"name":"id","type":"string"}"#);
    let err = registry.register(&subject, &breaking).await.unwrap_err();
    assert!(matches!(err, RegistryError::Incompatible { .. }), "{err}");
    assert!(!err.is_transient());
    let message = err.to_string();
    assert!(
        message.contains(&subject) && message.contains("compatibility"),
        "{message}"
    );
}

#[tokio::test]
async fn an_unreachable_registry_is_a_transient_error_naming_it() {
    let mut registry = Registry::new(&config("http://127.0.0.1:1/apis/ccompat/v7")).unwrap();
    let err = registry
        .register("x-value", &record(r#"{"name":"id","type":"long"}"#))
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err:?}");
    assert!(err.to_string().contains("127.0.0.1:1"), "{err}");
}

#[tokio::test]
async fn a_subjects_compatibility_rule_is_set() {
    let stack = Stack::from_env();
    let mut registry = Registry::new(&config(&stack.registry_url)).unwrap();
    let subject = format!("{}-value", unique_name("registry_rule"));
    registry
        .register(&subject, &record(r#"{"name":"id","type":"long"}"#))
        .await
        .unwrap();
    registry.set_compatibility(&subject, "FULL").await.unwrap();
    let output = std::process::Command::new("curl")
        .args(["-fsS", &format!("{}/config/{subject}", stack.registry_url)])
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    assert!(answer.contains("FULL"), "{answer}");
}
