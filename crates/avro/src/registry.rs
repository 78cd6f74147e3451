//! The schema registry, through its Confluent-compatible API: schemas registered once per
//! subject and cached, so producing an event never waits on the registry.

use std::collections::HashMap;
use std::time::Duration;

use schema_registry_converter::async_impl::schema_registry::{SrSettings, post_schema};
use schema_registry_converter::error::SRCError;
use schema_registry_converter::schema_registry_common::{SchemaType, SuppliedSchema};

/// How to reach the registry.
#[derive(Clone, PartialEq, Eq)]
pub struct RegistryConfig {
    /// The Confluent-compatible base URL, e.g. `http://127.0.0.1:8081/apis/ccompat/v7`.
    pub url: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub timeout: Duration,
}

impl std::fmt::Debug for RegistryConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryConfig")
            .field("url", &self.url)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .finish()
    }
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

/// A registry client with a cache of the ids of registered schemas.
#[derive(Debug)]
pub struct Registry {
    url: String,
    settings: SrSettings,
    http: reqwest::Client,
    username: Option<String>,
    password: Option<String>,
    ids: HashMap<String, (String, u32)>,
    stats: RegistryStats,
}

impl Registry {
    pub fn new(config: &RegistryConfig) -> Result<Self, RegistryError> {
        let mut builder = SrSettings::new_builder(config.url.clone());
        builder.set_timeout(config.timeout);
        if let Some(username) = &config.username {
            builder.set_basic_authorization(username, config.password.as_deref());
        }
        let settings = builder.build().map_err(|err| RegistryError::Rejected {
            url: config.url.clone(),
            subject: String::new(),
            detail: err.error,
        })?;
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .build()
            .map_err(|err| RegistryError::Rejected {
                url: config.url.clone(),
                subject: String::new(),
                detail: err.to_string(),
            })?;
        Ok(Registry {
            url: config.url.clone(),
            settings,
            http,
            username: config.username.clone(),
            password: config.password.clone(),
            ids: HashMap::new(),
            stats: RegistryStats::default(),
        })
    }

    pub fn stats(&self) -> RegistryStats {
        self.stats
    }

    /// The id of `schema` under `subject`, registering it if the registry lacks it.
    pub async fn register(&mut self, subject: &str, schema: &str) -> Result<u32, RegistryError> {
        if let Some((known, id)) = self.ids.get(subject)
            && known == schema
        {
            self.stats.cache_hits += 1;
            return Ok(*id);
        }
        self.stats.calls += 1;
        let supplied = SuppliedSchema::new(None, SchemaType::Avro, schema.to_owned());
        let registered = post_schema(&self.settings, subject.to_owned(), supplied)
            .await
            .map_err(|err| self.classify(subject, &err))?;
        self.ids
            .insert(subject.to_owned(), (schema.to_owned(), registered.id));
        Ok(registered.id)
    }

    /// Sets `subject`'s compatibility rule (`BACKWARD`, `FULL`, ...), as
    /// `PUT /config/{subject}` does.
    pub async fn set_compatibility(&self, subject: &str, level: &str) -> Result<(), RegistryError> {
        let mut request = self
            .http
            .put(format!(
                "{}/config/{subject}",
                self.url.trim_end_matches('/')
            ))
            .header("Content-Type", "application/vnd.schemaregistry.v1+json")
            .body(format!(r#"{{"compatibility":"{level}"}}"#));
        if let Some(username) = &self.username {
            request = request.basic_auth(username, self.password.as_deref());
        }
        let unavailable = |detail: String| RegistryError::Unavailable {
            url: self.url.clone(),
            detail,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else if status.is_server_error() {
            Err(unavailable(format!("HTTP {status}")))
        } else {
            Err(RegistryError::Rejected {
                url: self.url.clone(),
                subject: subject.to_owned(),
                detail: format!(
                    "setting compatibility {level}: HTTP {status} {}",
                    response.text().await.unwrap_or_default()
                ),
            })
        }
    }

    /// The schema registered with `id` (`GET /schemas/ids/{id}`): what a record written with
    /// it was written with.
    pub async fn schema_by_id(&self, id: u32) -> Result<String, RegistryError> {
        let mut request = self.http.get(format!(
            "{}/schemas/ids/{id}",
            self.url.trim_end_matches('/')
        ));
        if let Some(username) = &self.username {
            request = request.basic_auth(username, self.password.as_deref());
        }
        let unavailable = |detail: String| RegistryError::Unavailable {
            url: self.url.clone(),
            detail,
        };
        let rejected = |detail: String| RegistryError::Rejected {
            url: self.url.clone(),
            subject: format!("schema id {id}"),
            detail,
        };
        let response = request
            .send()
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let status = response.status();
        if status.is_server_error() {
            return Err(unavailable(format!("HTTP {status}")));
        }
        if !status.is_success() {
            return Err(rejected(format!("HTTP {status}")));
        }
        let answer: serde_json::Value = response
            .json()
            .await
            .map_err(|e| rejected(format!("an answer that is not JSON: {e}")))?;
        answer["schema"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| rejected("an answer without a schema".to_owned()))
    }

    fn classify(&self, subject: &str, err: &SRCError) -> RegistryError {
        let detail = match &err.cause {
            Some(cause) => format!("{}: {cause}", err.error),
            None => err.error.clone(),
        };
        let url = self.url.clone();
        let subject = subject.to_owned();
        if detail.contains("409") || detail.contains("ncompatible") {
            RegistryError::Incompatible {
                url,
                subject,
                detail,
            }
        } else if err.retriable
            || detail.contains("error sending request")
            || detail.contains("status 5")
            || detail.contains("onnect")
        {
            RegistryError::Unavailable { url, detail }
        } else {
            RegistryError::Rejected {
                url,
                subject,
                detail,
            }
        }
    }
}
