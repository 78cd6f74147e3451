//! The schema registry, through its Confluent-compatible API: schemas registered once per
//! subject and cached, so producing an event never waits on the registry. The one HTTP client
//! of the registry for `sluice run` and `sluice check`: its TLS (a private CA, a client
//! certificate) and its authentication (basic or bearer) are set up here only.
//!
//! Failures are classified by what the answer was, never by the words of a message: no answer
//! (reqwest's connect, timeout and request errors), or the HTTP status of the answer.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicU64;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use reqwest::{Method, StatusCode, Url};
use secrecy::{ExposeSecret, SecretString};

/// How to reach the registry.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// The Confluent-compatible base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub url: String,
    pub auth: RegistryAuth,
    /// PEM file of the CA certificates to trust besides the system's, for an `https://` URL.
    pub ca_file: Option<PathBuf>,
    /// The client certificate for mutual TLS.
    pub client_certificate: Option<ClientCertificate>,
    pub timeout: Duration,
}

/// How sluice authenticates to the registry.
#[derive(Debug, Clone, Default)]
pub enum RegistryAuth {
    #[default]
    None,
    /// HTTP basic authentication.
    Basic {
        username: String,
        password: SecretString,
    },
    /// `Authorization: Bearer <token>`.
    Bearer(SecretString),
}

/// A client certificate and its private key, both PEM files (the key in PKCS#8:
/// `-----BEGIN PRIVATE KEY-----`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientCertificate {
    pub cert_file: PathBuf,
    pub key_file: PathBuf,
}

/// What went wrong with the registry, split by what to do about it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RegistryError {
    /// The registry refused a new version as incompatible with the subject's rule.
    #[error(
        "the schema registry refused the new schema of subject {subject} as incompatible ({detail}); \
         either relax the subject's compatibility (PUT {url}/config/{subject}), or write the table \
         to a new topic (another topic_prefix)"
    )]
    Incompatible {
        url: String,
        subject: String,
        detail: String,
    },
    /// The registry could not be reached or answered with a server error: retry later.
    #[error(
        "the schema registry at {url} is unavailable ({detail}); sluice retries until it answers"
    )]
    Unavailable { url: String, detail: String },
    /// Anything else the registry refused (authentication, a malformed schema).
    #[error(
        "the schema registry at {url} refused subject {subject}: {detail}; check registry.url and its credentials"
    )]
    Rejected {
        url: String,
        subject: String,
        detail: String,
    },
    /// The client could not be set up from the configuration (a URL, a certificate file).
    #[error("the schema registry client for {url} cannot be set up: {detail}")]
    Setup { url: String, detail: String },
}

impl RegistryError {
    pub fn is_transient(&self) -> bool {
        matches!(self, RegistryError::Unavailable { .. })
    }
}

/// Registry calls made, and how many a cache answered, for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegistryStats {
    pub calls: u64,
    pub cache_hits: u64,
}

/// An answer of the registry: its status and body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub status: StatusCode,
    pub body: String,
}

impl Answer {
    /// The start of the body, for messages.
    pub fn snippet(&self) -> String {
        snippet(&self.body)
    }
}

/// The media type of the Confluent API's requests.
const CONTENT_TYPE: &str = "application/vnd.schemaregistry.v1+json";

/// A registry client with a cache of the ids of registered schemas.
#[derive(Debug)]
pub struct Registry {
    url: String,
    base: Url,
    http: reqwest::Client,
    auth: RegistryAuth,
    /// Per subject, the schema last registered and its id; shared by concurrent callers.
    ids: Mutex<HashMap<String, (String, u32)>>,
    calls: AtomicU64,
    cache_hits: AtomicU64,
}

impl Registry {
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let setup = |detail: String| RegistryError::Setup {
            url: config.url.clone(),
            detail,
        };
        let base = Url::parse(config.url.trim_end_matches('/'))
            .ok()
            .filter(|url| !url.cannot_be_a_base())
            .ok_or_else(|| setup("not an http:// or https:// URL".to_owned()))?;
        let mut builder = reqwest::Client::builder().timeout(config.timeout);
        if let Some(path) = &config.ca_file {
            let pem = read(path, "registry.ca_file").map_err(setup)?;
            let certificates = reqwest::Certificate::from_pem_bundle(&pem)
                .map_err(|err| setup(format!("registry.ca_file {}: {err}", path.display())))?;
            for certificate in certificates {
                builder = builder.add_root_certificate(certificate);
            }
        }
        if let Some(client) = &config.client_certificate {
            let cert = read(&client.cert_file, "registry.cert_file").map_err(setup)?;
            let key = read(&client.key_file, "registry.key_file").map_err(setup)?;
            let identity = reqwest::Identity::from_pkcs8_pem(&cert, &key).map_err(|err| {
                setup(format!(
                    "registry.cert_file and registry.key_file (PEM, the key in PKCS#8): {err}"
                ))
            })?;
            builder = builder.identity(identity);
        }
        let http = builder.build().map_err(|err| setup(err.to_string()))?;
        Ok(Registry {
            url: config.url.clone(),
            base,
            http,
            auth: config.auth.clone(),
            ids: Mutex::default(),
            calls: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        })
    }

    pub fn stats(&self) -> RegistryStats {
        RegistryStats {
            calls: self.calls.load(Relaxed),
            cache_hits: self.cache_hits.load(Relaxed),
        }
    }

    /// The base URL, as configured.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The id of `schema` under `subject`, registering it if the registry lacks it. Callers
    /// may register several subjects at once (startup registers every table's side by side).
    pub async fn register(&self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        if let Some(id) = self.cached(subject, schema) {
            self.cache_hits.fetch_add(1, Relaxed);
            return Ok(id);
        }
        self.calls.fetch_add(1, Relaxed);
        let body = serde_json::json!({ "schema": schema }).to_string();
        let answer = self
            .call(
                Method::POST,
                &["subjects", subject, "versions"],
                &[],
                Some(body),
            )
            .await?;
        if answer.status == StatusCode::CONFLICT {
            return Err(RegistryError::Incompatible {
                url: self.url.clone(),
                subject: subject.to_owned(),
                detail: detail(&answer),
            });
        }
        let answer = self.success(subject, answer)?;
        let id = serde_json::from_str::<serde_json::Value>(&answer.body)
            .ok()
            .and_then(|value| value.get("id")?.as_u64())
            .and_then(|id| u32::try_from(id).ok())
            .ok_or_else(|| RegistryError::Rejected {
                url: self.url.clone(),
                subject: subject.to_owned(),
                detail: format!("the answer holds no schema id: {}", snippet(&answer.body)),
            })?;
        self.ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(subject.to_owned(), (schema.to_owned(), id));
        Ok(id)
    }

    fn cached(&self, subject: &str, schema: &str) -> Option<u32> {
        let ids = self.ids.lock().unwrap_or_else(PoisonError::into_inner);
        ids.get(subject)
            .filter(|(known, _)| known == schema)
            .map(|(_, id)| *id)
    }

    /// Sets `subject`'s compatibility rule (`BACKWARD`, `FULL`, ...), as
    /// `PUT /config/{subject}` does.
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let body = serde_json::json!({ "compatibility": level }).to_string();
        let answer = self
            .call(Method::PUT, &["config", subject], &[], Some(body))
            .await?;
        self.success(subject, answer).map(drop)
    }

    /// The schema registered with `id` (`GET /schemas/ids/{id}`): what a record written with
    /// it was written with.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let subject = format!("schema id {id}");
        let id = id.to_string();
        let answer = self
            .call(Method::GET, &["schemas", "ids", &id], &[], None)
            .await?;
        let answer = self.success(&subject, answer)?;
        let rejected = |detail: &str| RegistryError::Rejected {
            url: self.url.clone(),
            subject: subject.clone(),
            detail: detail.to_owned(),
        };
        let body: serde_json::Value = serde_json::from_str(&answer.body)
            .map_err(|_| rejected("an answer that is not JSON"))?;
        body["schema"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| rejected("an answer without a schema"))
    }

    /// One request to the path `segments` below the base URL (each segment percent-encoded),
    /// with `query` and a JSON `body`; any answer is returned, whatever its status. Only
    /// getting no answer is an error ([`RegistryError::Unavailable`]), or a request that cannot
    /// be made ([`RegistryError::Setup`]).
    pub async fn call(
        &self,
        method: Method,
        segments: &[&str],
        query: &[(&str, &str)],
        body: Option<String>,
    ) -> Result<Answer, RegistryError> {
        let mut url = self.base.clone();
        url.path_segments_mut()
            .map_err(|()| RegistryError::Setup {
                url: self.url.clone(),
                detail: "not a base URL".to_owned(),
            })?
            .pop_if_empty()
            .extend(segments);
        if !query.is_empty() {
            url.query_pairs_mut().extend_pairs(query);
        }
        let mut request = self.http.request(method, url);
        if let Some(body) = body {
            request = request
                .header(reqwest::header::CONTENT_TYPE, CONTENT_TYPE)
                .body(body);
        }
        request = match &self.auth {
            RegistryAuth::None => request,
            RegistryAuth::Basic { username, password } => {
                request.basic_auth(username, Some(password.expose_secret()))
            }
            RegistryAuth::Bearer(token) => request.bearer_auth(token.expose_secret()),
        };
        // A request that cannot be built (a token no header can hold) is the configuration's
        // fault; any other failure to get an answer is an outage.
        let unavailable = |err: reqwest::Error| {
            let builder = err.is_builder();
            let detail = error_chain(&err.without_url());
            if builder {
                RegistryError::Setup {
                    url: self.url.clone(),
                    detail,
                }
            } else {
                RegistryError::Unavailable {
                    url: self.url.clone(),
                    detail,
                }
            }
        };
        let response = request.send().await.map_err(unavailable)?;
        let status = response.status();
        let body = response.text().await.map_err(unavailable)?;
        Ok(Answer { status, body })
    }

    /// A successful answer; otherwise the error its status says: unavailable for a server
    /// error, a timeout or too many requests, refused for the rest.
    fn success(&self, subject: &str, answer: Answer) -> Result<Answer, RegistryError> {
        let status = answer.status;
        if status.is_success() {
            Ok(answer)
        } else if status.is_server_error()
            || status == StatusCode::REQUEST_TIMEOUT
            || status == StatusCode::TOO_MANY_REQUESTS
        {
            Err(RegistryError::Unavailable {
                url: self.url.clone(),
                detail: detail(&answer),
            })
        } else {
            Err(RegistryError::Rejected {
                url: self.url.clone(),
                subject: subject.to_owned(),
                detail: detail(&answer),
            })
        }
    }
}

fn read(path: &Path, key: &str) -> Result<Vec<u8>, String> {
    std::fs::read(path).map_err(|err| format!("{key} {}: {err}", path.display()))
}

/// An answer for a message: its status and the start of its body.
fn detail(answer: &Answer) -> String {
    match snippet(&answer.body) {
        body if body.is_empty() => format!("HTTP {}", answer.status),
        body => format!("HTTP {}: {body}", answer.status),
    }
}

/// The start of a body, for messages.
fn snippet(body: &str) -> String {
    let body = body.trim();
    let mut text: String = body.chars().take(200).collect();
    if text.len() < body.len() {
        text.push_str("...");
    }
    text
}

/// An error and its causes, `: `-joined: reqwest and tokio-postgres keep the reason (a
/// refused connection) as a cause, out of their message. The one such helper, here in the
/// lowest crate that needs it; the pipeline and the CLI use it too.
pub fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(status: u16, body: &str) -> Answer {
        Answer {
            status: StatusCode::from_u16(status).unwrap(),
            body: body.to_owned(),
        }
    }

    fn registry(url: &str) -> Registry {
        Registry::new(&RegistryConfig {
            url: url.to_owned(),
            auth: RegistryAuth::None,
            ca_file: None,
            client_certificate: None,
            timeout: Duration::from_secs(1),
        })
        .unwrap()
    }

    #[test]
    fn answers_are_classified_by_status_alone() {
        // A host, a path and a subject that hold "409" and "5xx" words change nothing.
        let registry = registry("http://registry409.example:8081/apis409/ccompat/v7");
        let subject = "t409-incompatible-connect-value";
        for (status, transient) in [(500, true), (503, true), (408, true), (429, true)] {
            let err = registry.success(subject, answer(status, "x")).unwrap_err();
            assert_eq!(err.is_transient(), transient, "{status}: {err}");
        }
        for status in [400, 401, 403, 404, 422] {
            let err = registry
                .success(subject, answer(status, "status 500 connect 409"))
                .unwrap_err();
            assert!(
                matches!(err, RegistryError::Rejected { .. }),
                "{status}: {err}"
            );
        }
        assert!(registry.success(subject, answer(200, "{}")).is_ok());
    }

    #[test]
    fn a_url_that_is_no_base_is_a_setup_error() {
        for url in ["registry:8081", "mailto:x@y", ""] {
            let err = Registry::new(&RegistryConfig {
                url: url.to_owned(),
                auth: RegistryAuth::None,
                ca_file: None,
                client_certificate: None,
                timeout: Duration::from_secs(1),
            })
            .unwrap_err();
            assert!(matches!(err, RegistryError::Setup { .. }), "{url}: {err}");
        }
    }

    #[test]
    fn the_config_debug_holds_no_secret() {
        let config = RegistryConfig {
            url: "https://registry".to_owned(),
            auth: RegistryAuth::Basic {
                username: "user".to_owned(),
                password: SecretString::from("hunter2-password"),
            },
            ca_file: None,
            client_certificate: None,
            timeout: Duration::from_secs(1),
        };
        let bearer = RegistryAuth::Bearer(SecretString::from("hunter2-token"));
        let shown = format!(
            "{config:?} {config:#?} {bearer:?} {:?}",
            registry("http://r")
        );
        assert!(!shown.contains("hunter2"), "{shown}");
    }
}
