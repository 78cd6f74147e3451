//! The keys: which exist, the variable that sets each, and the known key nearest to a misspelt
//! one.
//!
//! The key list is not written down a second time: serde's derive knows each struct's fields,
//! lists them in the error it gives for an unknown field and names the first field without a
//! default in the one for a missing field. Asking it (through figment, with a probe value)
//! keeps one model of the configuration, the structs.

use figment::Figment;
use figment::error::Kind;
use figment::providers::Serialized;
use figment::value::Dict;

use super::Config;

/// Prefix of every environment override; only names that also contain `__` are overrides, so
/// the tooling's own `SLUICE_LOG`, `SLUICE_PG_HOST`, … pass through untouched.
pub(super) const ENV_PREFIX: &str = "SLUICE_";
/// Separator between the path segments of an override's name.
pub(super) const ENV_SEPARATOR: &str = "__";
/// The one key whose value is a table of free-form names: librdkafka's properties.
pub(super) const PRODUCER: [&str; 2] = ["kafka", "producer"];

/// A name no key has (keys are TOML bare keys).
const PROBE: &str = "\u{0}";

/// The sections (`None`) or the keys of `section`, as serde knows them; empty for a name that
/// is not a section.
pub(super) fn known_keys(section: Option<&str>) -> &'static [&'static str] {
    let probe = match section {
        None => PROBE.to_owned(),
        Some(section) => format!("{section}.{PROBE}"),
    };
    let expected_path: Vec<&str> = section.into_iter().chain([PROBE]).collect();
    match Figment::from(Serialized::default(&probe, 0)).extract::<Config>() {
        Err(error) if error.path == expected_path => match error.kind {
            Kind::UnknownField(_, expected) => expected,
            _ => &[],
        },
        _ => &[],
    }
}

/// The first key of `section` without a default: the one to name when the whole section is
/// missing.
pub(super) fn first_required(section: &str) -> Option<String> {
    match Figment::from(Serialized::default(section, Dict::new())).extract::<Config>() {
        Err(error) if error.path == [section] => match error.kind {
            Kind::MissingField(key) => Some(key.into_owned()),
            _ => None,
        },
        _ => None,
    }
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

/// The candidate within two edits of `name` (optimal string alignment: Levenshtein plus
/// adjacent transpositions, so `prot` is one edit from `port`), the nearest first.
fn closest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::osa_distance(name, candidate), candidate))
        .filter(|(distance, _)| *distance <= 2)
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, candidate)| candidate)
}

/// The known key an unknown `section.key` was probably meant to be.
pub(super) fn suggest_key(section: &str, key: &str) -> Option<String> {
    let sections = known_keys(None);
    let section = if sections.contains(&section) {
        section
    } else {
        closest(section, sections.iter().copied())?
    };
    let keys = known_keys(Some(section));
    if keys.contains(&key) {
        return Some(format!("{section}.{key}"));
    }
    if let Some(near) = closest(key, keys.iter().copied()) {
        return Some(format!("{section}.{near}"));
    }
    // The right key in the wrong section, e.g. `kafka.url` for `registry.url`.
    in_some_section(key)
}

/// The section (or key) an unknown top-level name was probably meant to be.
pub(super) fn suggest_section(name: &str) -> Option<String> {
    closest(name, known_keys(None).iter().copied())
        .map(str::to_owned)
        .or_else(|| in_some_section(name))
}

fn in_some_section(key: &str) -> Option<String> {
    known_keys(None)
        .iter()
        .find(|section| known_keys(Some(section)).contains(&key))
        .map(|section| format!("{section}.{key}"))
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
        assert_eq!(strsim::osa_distance("password", "password"), 0);
        assert_eq!(strsim::osa_distance("pasword", "password"), 1);
        assert_eq!(strsim::osa_distance("prot", "port"), 1);
        assert_eq!(strsim::osa_distance("", "abc"), 3);
        assert_eq!(strsim::osa_distance("kitten", "sitting"), 3);
        assert_eq!(closest("slott", ["slot", "publication"]), Some("slot"));
        assert_eq!(closest("xyz", ["slot", "publication"]), None);
    }

    #[test]
    fn serde_lists_the_keys() {
        assert_eq!(
            known_keys(None),
            [
                "postgres",
                "replication",
                "tables",
                "snapshot",
                "kafka",
                "registry",
                "events",
                "shutdown",
                "metrics"
            ]
        );
        assert_eq!(
            known_keys(Some("shutdown")),
            ["drain_timeout"],
            "one key, in the struct's order"
        );
        assert!(known_keys(Some("kafka")).contains(&"producer"));
        assert!(known_keys(Some("postgress")).is_empty());
        assert!(known_keys(Some("kafka.producer")).is_empty());
        assert_eq!(first_required("postgres").as_deref(), Some("database"));
        assert_eq!(first_required("registry").as_deref(), Some("url"));
        assert_eq!(first_required("replication"), None);
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest_key("postgres", "prot").as_deref(),
            Some("postgres.port")
        );
        assert_eq!(
            suggest_key("replicaton", "slot").as_deref(),
            Some("replication.slot")
        );
        assert_eq!(suggest_key("kafka", "url").as_deref(), Some("registry.url"));
        assert_eq!(suggest_key("postgres", "frobnicate"), None);
        assert_eq!(suggest_section("postgress").as_deref(), Some("postgres"));
        assert_eq!(suggest_section("slot").as_deref(), Some("replication.slot"));
        assert_eq!(suggest_section("frobnicate"), None);
    }
}
