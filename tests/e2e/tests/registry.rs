//! sluice's registry client against the stack's Apicurio Registry (Confluent API).

use std::time::Duration;

use sluice_avro::{
    ClientCertificate, Method, Registry, RegistryAuth, RegistryConfig, RegistryError, StatusCode,
};
use sluice_e2e::registry_proxy::{Demand, RegistryProxy, client_certificate};
use sluice_e2e::{Stack, unique_name};

fn config(url: &str) -> RegistryConfig {
    RegistryConfig {
        url: url.to_owned(),
        auth: RegistryAuth::None,
        ca_file: None,
        client_certificate: None,
        timeout: Duration::from_secs(5),
    }
}

fn record(fields: &str) -> String {
    format!(r#"{{"type":"record","name":"Value","namespace":"sluice.test","fields":[{fields}]}}"#)
}

#[tokio::test]
async fn schemas_are_registered_once_and_incompatible_ones_refused_with_the_choices() {
    let stack = Stack::from_env();
    let registry = Registry::new(&config(&stack.registry_url)).unwrap();
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
    let registry = Registry::new(&config("http://127.0.0.1:1/apis/ccompat/v7")).unwrap();
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
    let registry = Registry::new(&config(&stack.registry_url)).unwrap();
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

#[tokio::test]
async fn an_outage_is_transient_whatever_the_url_and_subject_hold() {
    // An outage's message holds the URL and the subject: words in them ("409", "incompatible")
    // do not make it look like an answer.
    let url = "http://127.0.0.1:1/409/incompatible/apis/ccompat/v7";
    let registry = Registry::new(&config(url)).unwrap();
    let err = registry
        .register(
            "t409-incompatible-value",
            &record(r#"{"name":"id","type":"long"}"#),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, RegistryError::Unavailable { .. }) && err.is_transient(),
        "{err:?}"
    );
}

#[tokio::test]
async fn a_token_no_header_can_hold_is_a_setup_error_not_an_outage() {
    let stack = Stack::from_env();
    let config = RegistryConfig {
        auth: RegistryAuth::Bearer("line\nbreak".to_owned().into()),
        ..config(&stack.registry_url)
    };
    let err = register_through(&config).await.unwrap_err();
    assert!(matches!(err, RegistryError::Setup { .. }), "{err:?}");
    assert!(!err.to_string().contains("line"), "{err}");
}

#[tokio::test]
async fn subjects_are_percent_encoded_in_urls() {
    let stack = Stack::from_env();
    let registry = Registry::new(&config(&stack.registry_url)).unwrap();
    let subject = format!("{} a/b%2Fc?d#e-value", unique_name("registry_encoded"));
    let schema = record(r#"{"name":"id","type":"long"}"#);
    let id = registry.register(&subject, &schema).await.unwrap();
    let latest = registry
        .call(
            Method::GET,
            &["subjects", &subject, "versions", "latest"],
            &[],
            None,
        )
        .await
        .unwrap();
    assert_eq!(latest.status, StatusCode::OK, "{}", latest.body);
    let latest: serde_json::Value = serde_json::from_str(&latest.body).unwrap();
    assert_eq!(latest["subject"], subject.as_str());
    assert_eq!(latest["id"], id);
    registry.set_compatibility(&subject, "FULL").await.unwrap();
    let rule = registry
        .call(Method::GET, &["config", &subject], &[], None)
        .await
        .unwrap();
    assert!(rule.body.contains("FULL"), "{}", rule.body);
}

/// Registers a new subject through `config`: the id, or the error.
async fn register_through(config: &RegistryConfig) -> Result<u32, RegistryError> {
    let subject = format!("{}-value", unique_name("registry_gate"));
    Registry::new(config)?
        .register(&subject, &record(r#"{"name":"id","type":"long"}"#))
        .await
}

fn refused_for_credentials(result: Result<u32, RegistryError>) {
    match result {
        Err(err @ RegistryError::Rejected { .. }) => {
            assert!(!err.is_transient());
            assert!(err.to_string().contains("401"), "{err}");
        }
        other => panic!("expected a 401 refusal: {other:?}"),
    }
}

#[tokio::test]
async fn basic_auth_and_a_bearer_token_over_tls_with_a_private_ca() {
    let stack = Stack::from_env();
    let over_tls = |url: &str, auth: RegistryAuth| RegistryConfig {
        auth,
        ca_file: Some(stack.ca_cert()),
        ..config(url)
    };
    let basic = |username: &str, password: &str| RegistryAuth::Basic {
        username: username.to_owned(),
        password: password.to_owned().into(),
    };

    let gate = RegistryProxy::start(
        &stack,
        Demand::Basic {
            username: "sr-user".to_owned(),
            password: "sr-pass:word é".to_owned(),
        },
        false,
    )
    .await;
    register_through(&over_tls(&gate.url, basic("sr-user", "sr-pass:word é")))
        .await
        .unwrap();
    refused_for_credentials(
        register_through(&over_tls(&gate.url, basic("sr-user", "wrong"))).await,
    );
    refused_for_credentials(register_through(&over_tls(&gate.url, RegistryAuth::None)).await);
    // The server's certificate is checked: a CA that did not sign it fails, without an answer.
    let untrusted = RegistryConfig {
        ca_file: Some(stack.unrelated_ca_cert()),
        ..over_tls(&gate.url, basic("sr-user", "sr-pass:word é"))
    };
    let err = register_through(&untrusted).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err:?}");

    let gate =
        RegistryProxy::start(&stack, Demand::Bearer("t0ken.abc-123".to_owned()), false).await;
    let bearer = |token: &str| RegistryAuth::Bearer(token.to_owned().into());
    register_through(&over_tls(&gate.url, bearer("t0ken.abc-123")))
        .await
        .unwrap();
    refused_for_credentials(register_through(&over_tls(&gate.url, bearer("t0ken.abc-124"))).await);
}

#[tokio::test]
async fn a_client_certificate_is_presented_where_the_registry_demands_one() {
    let stack = Stack::from_env();
    let gate = RegistryProxy::start(&stack, Demand::Nothing, true).await;
    let (cert_file, key_file) = client_certificate(&stack);
    let without = RegistryConfig {
        ca_file: Some(stack.ca_cert()),
        ..config(&gate.url)
    };
    let with = RegistryConfig {
        client_certificate: Some(ClientCertificate {
            cert_file,
            key_file,
        }),
        ..without.clone()
    };
    register_through(&with).await.unwrap();
    let err = register_through(&without).await.unwrap_err();
    assert!(matches!(err, RegistryError::Unavailable { .. }), "{err:?}");
    // A missing key file is named before any request.
    let broken = RegistryConfig {
        client_certificate: Some(ClientCertificate {
            cert_file: stack.ca_cert(),
            key_file: "/nonexistent/client.key".into(),
        }),
        ..without
    };
    let err = Registry::new(&broken).unwrap_err();
    assert!(
        matches!(err, RegistryError::Setup { .. }) && err.to_string().contains("registry.key_file"),
        "{err}"
    );
}
