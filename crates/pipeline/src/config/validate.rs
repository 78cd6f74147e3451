//! What the types alone cannot say; also reads the secret files.

use std::path::{Path, PathBuf};

use sluice_postgres::SslMode;

use super::Config;
use super::error::ConfigError;
use super::producer::RESERVED_PROPERTIES;
use super::secret::Secret;
use super::sections::{
    KafkaSection, PostgresSection, RegistrySection, ReplicationSection, sslmode_str,
};
use super::sources::Sources;

/// PostgreSQL truncates identifiers beyond NAMEDATALEN - 1 bytes.
const MAX_IDENTIFIER_LEN: usize = 63;

/// What the types alone cannot say; also reads the password files.
pub(super) fn validate(config: &mut Config, sources: &Sources) -> Result<(), ConfigError> {
    validate_postgres(&mut config.postgres, sources)?;
    validate_replication(&config.replication, sources)?;
    if config.tables.include.is_empty() {
        return Err(sources.invalid(
            &["tables", "include"],
            "is empty, so no table would be captured",
        ));
    }
    if config.snapshot.parallelism == 0 {
        return Err(sources.invalid(&["snapshot", "parallelism"], "must be at least 1"));
    }
    if config.snapshot.chunk_rows == 0 {
        return Err(sources.invalid(&["snapshot", "chunk_rows"], "must be at least 1"));
    }
    if config.snapshot.incremental_chunk_rows == 0 {
        return Err(sources.invalid(
            &["snapshot", "incremental_chunk_rows"],
            "must be at least 1",
        ));
    }
    validate_kafka(&config.kafka, sources)?;
    validate_registry(&mut config.registry, sources)?;
    Ok(())
}

fn validate_postgres(pg: &mut PostgresSection, sources: &Sources) -> Result<(), ConfigError> {
    for (key, value) in [
        ("host", &pg.host),
        ("database", &pg.database),
        ("user", &pg.user),
    ] {
        if value.is_empty() {
            return Err(sources.invalid(&["postgres", key], "must not be empty"));
        }
    }
    if pg.port == 0 {
        return Err(sources.invalid(&["postgres", "port"], "must be between 1 and 65535"));
    }
    resolve_password(
        "postgres",
        &mut pg.password,
        pg.password_file.as_deref(),
        sources,
    )?;
    if matches!(pg.sslmode, SslMode::VerifyCa | SslMode::VerifyFull) && pg.sslrootcert.is_none() {
        return Err(sources.invalid(
            &["postgres", "sslrootcert"],
            format!(
                "required when postgres.sslmode is {}: the CA certificate to verify the server with",
                sslmode_str(pg.sslmode)
            ),
        ));
    }
    if pg.connect_timeout.is_zero() {
        return Err(sources.invalid(&["postgres", "connect_timeout"], "must be more than 0"));
    }
    Ok(())
}

/// Rejects `password` with `password_file`, and reads the file into `password`.
fn resolve_password(
    section: &str,
    password: &mut Option<Secret>,
    password_file: Option<&Path>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    resolve_secret(
        [section, "password"],
        [section, "password_file"],
        password,
        password_file,
        sources,
    )
}

/// Rejects a secret given both inline (`key`) and in a file (`file_key`), and reads the file
/// into `secret`.
fn resolve_secret(
    key: [&str; 2],
    file_key: [&str; 2],
    secret: &mut Option<Secret>,
    file: Option<&Path>,
    sources: &Sources,
) -> Result<(), ConfigError> {
    match (secret.as_ref(), file) {
        (Some(_), Some(_)) => Err(sources.invalid(
            &file_key,
            format!("give {} or {}, not both", key.join("."), file_key.join(".")),
        )),
        (Some(inline), None) if inline.expose().is_empty() => Err(sources.invalid(
            &key,
            format!("is empty; leave the key out for no {}", key[1]),
        )),
        (None, Some(path)) => {
            let text =
                std::fs::read_to_string(path).map_err(|error| ConfigError::PasswordFile {
                    key: file_key.join("."),
                    origin: sources.origin(&file_key),
                    path: path.to_path_buf(),
                    error,
                })?;
            // Files written by `echo` or an editor end in a newline that is not the secret.
            let text = text.trim_end_matches(['\n', '\r']);
            if text.is_empty() {
                return Err(sources.invalid(&file_key, format!("{} is empty", path.display())));
            }
            *secret = Some(Secret::new(text));
            Ok(())
        }
        _ => Ok(()),
    }
}

fn validate_replication(rep: &ReplicationSection, sources: &Sources) -> Result<(), ConfigError> {
    // PostgreSQL's own rule for slot names.
    let slot_ok = !rep.slot.is_empty()
        && rep.slot.len() <= MAX_IDENTIFIER_LEN
        && rep
            .slot
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_');
    if !slot_ok {
        return Err(sources.invalid(
            &["replication", "slot"],
            format!(
                "invalid slot name {:?}: use 1 to {MAX_IDENTIFIER_LEN} lower-case letters, digits and underscores",
                rep.slot
            ),
        ));
    }
    if rep.publication.is_empty() || rep.publication.len() > MAX_IDENTIFIER_LEN {
        return Err(sources.invalid(
            &["replication", "publication"],
            format!("must be 1 to {MAX_IDENTIFIER_LEN} bytes long"),
        ));
    }
    if rep.status_interval.is_zero() {
        return Err(sources.invalid(&["replication", "status_interval"], "must be more than 0"));
    }
    if rep.streamed_memory_mib == 0 {
        return Err(sources.invalid(
            &["replication", "streamed_memory_mib"],
            "must be at least 1",
        ));
    }
    Ok(())
}

fn validate_kafka(kafka: &KafkaSection, sources: &Sources) -> Result<(), ConfigError> {
    if kafka.bootstrap_servers.trim().is_empty() {
        return Err(sources.invalid(&["kafka", "bootstrap_servers"], "must not be empty"));
    }
    let prefix = &kafka.topic_prefix;
    if prefix.is_empty()
        || !prefix
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
    {
        return Err(sources.invalid(
            &["kafka", "topic_prefix"],
            format!(
                "invalid topic prefix {prefix:?}: use letters, digits, '_', '-' and '.' (at least one)"
            ),
        ));
    }
    for (key, value) in [
        ("partitions", kafka.partitions),
        ("replication_factor", kafka.replication_factor),
    ] {
        if value < 1 {
            return Err(sources.invalid(&["kafka", key], "must be at least 1"));
        }
    }
    for &(property, why) in RESERVED_PROPERTIES {
        if kafka.producer.get(property).is_some() {
            return Err(sources.invalid(&["kafka", "producer", property], why));
        }
    }
    Ok(())
}

fn validate_registry(registry: &mut RegistrySection, sources: &Sources) -> Result<(), ConfigError> {
    let url = &registry.url;
    let Some(rest) = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("https://"))
    else {
        return Err(sources.invalid(
            &["registry", "url"],
            format!("{url:?} is not an http:// or https:// URL"),
        ));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    if authority.is_empty() {
        return Err(sources.invalid(&["registry", "url"], format!("{url:?} has no host")));
    }
    // Credentials in the URL would be logged with it.
    if authority.contains('@') {
        return Err(sources.invalid(
            &["registry", "url"],
            "must not hold credentials; set registry.username and registry.password (or password_file)",
        ));
    }
    resolve_password(
        "registry",
        &mut registry.password,
        registry.password_file.as_deref(),
        sources,
    )?;
    resolve_secret(
        ["registry", "token"],
        ["registry", "token_file"],
        &mut registry.token,
        registry.token_file.as_deref(),
        sources,
    )?;
    // The key a secret came from: its file's, when read from one.
    let given = |key: &'static str, file: &Option<PathBuf>| {
        if file.is_some() {
            ["registry", key]
        } else {
            ["registry", key.trim_end_matches("_file")]
        }
    };
    match (&registry.username, &registry.password, &registry.token) {
        (Some(_), None, _) => {
            return Err(sources.invalid(
                &["registry", "username"],
                "basic auth needs registry.password or registry.password_file too",
            ));
        }
        (None, Some(_), _) => {
            return Err(sources.invalid(
                &given("password_file", &registry.password_file),
                "basic auth needs registry.username too",
            ));
        }
        (Some(_), Some(_), Some(_)) => {
            return Err(sources.invalid(
                &given("token_file", &registry.token_file),
                "give basic auth (registry.username and password) or a bearer token, not both",
            ));
        }
        _ => {}
    }
    match (&registry.cert_file, &registry.key_file) {
        (Some(_), None) => {
            return Err(sources.invalid(
                &["registry", "cert_file"],
                "a client certificate needs its key too: set registry.key_file",
            ));
        }
        (None, Some(_)) => {
            return Err(sources.invalid(
                &["registry", "key_file"],
                "a client key needs its certificate too: set registry.cert_file",
            ));
        }
        _ => {}
    }
    if !url.starts_with("https://") {
        for (key, set) in [
            ("ca_file", registry.ca_file.is_some()),
            ("cert_file", registry.cert_file.is_some()),
        ] {
            if set {
                return Err(sources.invalid(
                    &["registry", key],
                    "takes effect over TLS only: registry.url must start with https://",
                ));
            }
        }
    }
    Ok(())
}
