//! The schema registry as the commands reach it: the one client (`sluice_avro::Registry`, with
//! its TLS, client certificate and credentials), probed once before it is used.

use sluice_avro::{Method, Registry, RegistryConfig, StatusCode};

/// The fix for a URL that does not lead to the Confluent-compatible API.
pub(crate) const URL_FIX: &str = "check registry.url: the base of the Confluent-compatible API \
     (for Apicurio it ends in /apis/ccompat/v7)";

/// Why the registry cannot be used, and what to do about it.
#[derive(Debug)]
pub(crate) struct Unreachable {
    pub(crate) detail: String,
    pub(crate) fix: &'static str,
}

/// The client for `config`, once `GET /subjects` showed that the registry answers and
/// accepts the credentials; with the number of subjects it listed.
pub(crate) async fn connect(config: &RegistryConfig) -> Result<(Registry, usize), Unreachable> {
    let registry = Registry::new(config).map_err(|err| Unreachable {
        detail: err.to_string(),
        fix: "check registry.url, registry.ca_file, registry.cert_file and registry.key_file",
    })?;
    let url = format!("{}/subjects", registry.url().trim_end_matches('/'));
    let answer = registry
        .call(Method::GET, &["subjects"], &[], None)
        .await
        .map_err(|err| Unreachable {
            detail: err.to_string(),
            fix: "check registry.url, that the registry runs and that this host can reach it",
        })?;
    if answer.status == StatusCode::UNAUTHORIZED || answer.status == StatusCode::FORBIDDEN {
        return Err(Unreachable {
            detail: format!("GET {url} answered {}", answer.status),
            fix: "check registry.username and registry.password (or registry.token)",
        });
    }
    if !answer.status.is_success() {
        return Err(Unreachable {
            detail: format!("GET {url} answered {}: {}", answer.status, answer.snippet()),
            fix: URL_FIX,
        });
    }
    let subjects =
        serde_json::from_str::<Vec<String>>(&answer.body).map_err(|err| Unreachable {
            detail: format!(
                "GET {url} answered what is not a list of subjects ({err}): {}",
                answer.snippet()
            ),
            fix: URL_FIX,
        })?;
    Ok((registry, subjects.len()))
}
