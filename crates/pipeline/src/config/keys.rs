//! The key list: every section and key, how an override's text is read, its variable's name,
//! and the known key nearest to a misspelt one.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::de::DeserializeOwned;
use toml::Value;

use super::producer::ProducerProperties;
use super::secret::Secret;
use super::sections::{
    Compatibility, Compression, EventsMode, HstoreHandling, KeyChange, NumericHandling,
    SnapshotMode, TimePrecisionHandling, deserialize_sslmode,
};
use super::tables::TablePattern;

/// Prefix of every environment override; only names that also contain `__` are overrides, so
/// the tooling's own `SLUICE_LOG`, `SLUICE_PG_HOST`, … pass through untouched.
pub(super) const ENV_PREFIX: &str = "SLUICE_";
/// Separator between the path segments of an override's name.
pub(super) const ENV_SEPARATOR: &str = "__";

/// How an override's text becomes a TOML value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Kind {
    /// A string field: the text as it is (unless it is a quoted TOML string), so a password
    /// of digits or a database named `true` is not turned into a number or a boolean.
    Text,
    /// Parsed as a TOML value when it parses (numbers, booleans, arrays), else a string.
    Typed,
    /// `kafka.producer`: a table whose keys are librdkafka property names.
    Producer,
}

/// Deserializes one value as its field would, for an error that names the key.
type Check = fn(Value) -> Result<(), toml::de::Error>;

#[derive(Debug)]
pub(super) struct KeySpec {
    pub(super) section: &'static str,
    pub(super) key: &'static str,
    pub(super) kind: Kind,
    pub(super) required: bool,
    pub(super) check: Check,
}

const fn opt(section: &'static str, key: &'static str, kind: Kind, check: Check) -> KeySpec {
    KeySpec {
        section,
        key,
        kind,
        required: false,
        check,
    }
}

const fn req(section: &'static str, key: &'static str, check: Check) -> KeySpec {
    KeySpec {
        section,
        key,
        kind: Kind::Text,
        required: true,
        check,
    }
}

fn check<T: DeserializeOwned>(value: Value) -> Result<(), toml::de::Error> {
    T::deserialize(value).map(drop)
}

fn check_duration(value: Value) -> Result<(), toml::de::Error> {
    humantime_serde::deserialize::<Duration, _>(value).map(drop)
}

fn check_sslmode(value: Value) -> Result<(), toml::de::Error> {
    deserialize_sslmode(value).map(drop)
}

use Kind::{Producer, Text, Typed};

pub(super) const SECTIONS: [&str; 9] = [
    "postgres",
    "replication",
    "tables",
    "snapshot",
    "kafka",
    "registry",
    "events",
    "shutdown",
    "metrics",
];

/// Every key, in the structs' order; `kind` and `check` follow each field's type.
pub(super) const SCHEMA: &[KeySpec] = &[
    opt("postgres", "host", Text, check::<String>),
    opt("postgres", "port", Typed, check::<u16>),
    req("postgres", "database", check::<String>),
    req("postgres", "user", check::<String>),
    opt("postgres", "password", Text, check::<Secret>),
    opt("postgres", "password_file", Text, check::<PathBuf>),
    opt("postgres", "sslmode", Text, check_sslmode),
    opt("postgres", "sslrootcert", Text, check::<PathBuf>),
    opt("postgres", "connect_timeout", Text, check_duration),
    opt("replication", "slot", Text, check::<String>),
    opt("replication", "publication", Text, check::<String>),
    opt("replication", "create_publication", Typed, check::<bool>),
    opt("replication", "binary", Typed, check::<bool>),
    opt("replication", "status_interval", Text, check_duration),
    opt("replication", "streamed_memory_mib", Typed, check::<u32>),
    opt("replication", "heartbeat_interval", Text, check_duration),
    opt("replication", "retained_wal_warn_mib", Typed, check::<u64>),
    opt("tables", "include", Typed, check::<Vec<TablePattern>>),
    opt("tables", "exclude", Typed, check::<Vec<TablePattern>>),
    opt("tables", "allow_keyless", Typed, check::<bool>),
    opt("snapshot", "mode", Text, check::<SnapshotMode>),
    opt("snapshot", "parallelism", Typed, check::<usize>),
    opt("snapshot", "chunk_rows", Typed, check::<u64>),
    opt("snapshot", "progress_interval", Text, check_duration),
    req("kafka", "bootstrap_servers", check::<String>),
    req("kafka", "topic_prefix", check::<String>),
    opt("kafka", "partitions", Typed, check::<i32>),
    opt("kafka", "replication_factor", Typed, check::<i32>),
    opt("kafka", "compression", Text, check::<Compression>),
    opt("kafka", "producer", Producer, check::<ProducerProperties>),
    req("registry", "url", check::<String>),
    opt("registry", "username", Text, check::<String>),
    opt("registry", "password", Text, check::<Secret>),
    opt("registry", "password_file", Text, check::<PathBuf>),
    opt("registry", "token", Text, check::<Secret>),
    opt("registry", "token_file", Text, check::<PathBuf>),
    opt("registry", "ca_file", Text, check::<PathBuf>),
    opt("registry", "cert_file", Text, check::<PathBuf>),
    opt("registry", "key_file", Text, check::<PathBuf>),
    opt("registry", "compatibility", Text, check::<Compatibility>),
    opt("events", "mode", Text, check::<EventsMode>),
    opt("events", "tombstones", Typed, check::<bool>),
    opt("events", "key_change", Text, check::<KeyChange>),
    opt("events", "truncate", Typed, check::<bool>),
    opt("events", "message_prefixes", Typed, check::<Vec<String>>),
    opt("events", "numeric", Text, check::<NumericHandling>),
    opt(
        "events",
        "time_precision",
        Text,
        check::<TimePrecisionHandling>,
    ),
    opt("events", "hstore", Text, check::<HstoreHandling>),
    opt("events", "transactions", Typed, check::<bool>),
    opt("events", "unchanged_placeholder", Text, check::<String>),
    opt("shutdown", "drain_timeout", Text, check_duration),
    opt("metrics", "bind", Text, check::<SocketAddr>),
    opt("metrics", "enabled", Typed, check::<bool>),
];

pub(super) fn spec_for(section: &str, key: &str) -> Option<&'static KeySpec> {
    SCHEMA
        .iter()
        .find(|spec| spec.section == section && spec.key == key)
}

/// The override that sets a dotted key: `postgres.port` → `SLUICE_POSTGRES__PORT`,
/// `kafka.producer.linger.ms` → `SLUICE_KAFKA__PRODUCER__LINGER_MS`.
pub(super) fn env_var_for(dotted: &str) -> String {
    let mut parts = dotted.splitn(3, '.');
    let segments: Vec<String> = match (parts.next(), parts.next(), parts.next()) {
        (Some(section), Some(key), Some(rest)) => {
            vec![section.to_owned(), key.to_owned(), rest.replace('.', "_")]
        }
        _ => dotted.split('.').map(str::to_owned).collect(),
    };
    format!(
        "{ENV_PREFIX}{}",
        segments.join(ENV_SEPARATOR).to_ascii_uppercase()
    )
}

// ---------------------------------------------------------------------------------------------
// Suggestions.

/// Optimal string alignment distance: Levenshtein plus adjacent transpositions, so `prot`
/// is one edit from `port`.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in rows.iter_mut().enumerate() {
        if let Some(first) = row.first_mut() {
            *first = i;
        }
    }
    if let Some(first) = rows.first_mut() {
        for (j, cell) in first.iter_mut().enumerate() {
            *cell = j;
        }
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = best;
        }
    }
    rows[a.len()][b.len()]
}

/// The candidate within two edits of `name`, the nearest first.
fn closest<'a>(name: &str, candidates: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .map(|candidate| (edit_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The known key an unknown `section.key` was probably meant to be.
pub(super) fn suggest_key(section: &str, key: &str) -> Option<String> {
    let section = if SECTIONS.contains(&section) {
        section
    } else {
        closest(section, SECTIONS.iter().copied())?
    };
    if spec_for(section, key).is_some() {
        return Some(format!("{section}.{key}"));
    }
    let in_section = SCHEMA
        .iter()
        .filter(|spec| spec.section == section)
        .map(|spec| spec.key);
    if let Some(near) = closest(key, in_section) {
        return Some(format!("{section}.{near}"));
    }
    // The right key in the wrong section, e.g. `kafka.url` for `registry.url`.
    SCHEMA
        .iter()
        .find(|spec| spec.key == key)
        .map(|spec| format!("{}.{}", spec.section, spec.key))
}

/// The section (or key) an unknown top-level name was probably meant to be.
pub(super) fn suggest_section(name: &str) -> Option<String> {
    closest(name, SECTIONS.iter().copied())
        .map(str::to_owned)
        .or_else(|| {
            SCHEMA
                .iter()
                .find(|spec| spec.key == name)
                .map(|spec| format!("{}.{}", spec.section, spec.key))
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_var_names() {
        assert_eq!(env_var_for("postgres.port"), "SLUICE_POSTGRES__PORT");
        assert_eq!(
            env_var_for("kafka.producer.linger.ms"),
            "SLUICE_KAFKA__PRODUCER__LINGER_MS"
        );
    }

    #[test]
    fn edit_distances() {
        assert_eq!(edit_distance("password", "password"), 0);
        assert_eq!(edit_distance("pasword", "password"), 1);
        assert_eq!(edit_distance("prot", "port"), 1);
        assert_eq!(edit_distance("", "abc"), 3);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
        assert_eq!(
            closest("slott", ["slot", "publication"].into_iter()),
            Some("slot")
        );
        assert_eq!(closest("xyz", ["slot", "publication"].into_iter()), None);
    }
}
