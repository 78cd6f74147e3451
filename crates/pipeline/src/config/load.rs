//! Loading: the file, then the environment's overrides, each value's origin remembered for
//! error messages.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use toml::{Table, Value};

use super::Config;
use super::error::{ConfigError, Origin};
use super::keys::Kind::{Producer, Text, Typed};
use super::keys::{
    ENV_PREFIX, ENV_SEPARATOR, Kind, SCHEMA, SECTIONS, env_var_for, spec_for, suggest_key,
    suggest_section,
};
use super::validate::validate;

/// Reads the configuration: the file at `path` (if any), then every `SLUICE_<SECTION>__<KEY>`
/// override in `env`, then defaults; checks it and reads the password files it names.
///
/// `env` is passed in (the binary gives `std::env::vars()`) so that tests never depend on, or
/// change, the process environment.
pub fn load(
    path: Option<&Path>,
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Config, ConfigError> {
    let mut sources = Sources {
        file: path.map(Path::to_path_buf),
        env: BTreeMap::new(),
    };
    let mut root = match path {
        Some(path) => read_file(path)?,
        None => Table::new(),
    };
    check_file_keys(&root, &sources)?;
    flatten_producer(&mut root, &sources)?;

    // Sorted so that the outcome never depends on the environment's order.
    let mut overrides: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    overrides.sort();
    for (name, raw) in &overrides {
        apply_override(&mut root, &mut sources, name, raw)?;
    }
    // An override may set the whole producer table inline, nested keys and all.
    flatten_producer(&mut root, &sources)?;

    check_values(&root, &sources)?;
    check_required(&root)?;
    let mut config = Config::deserialize(root).map_err(|error| ConfigError::Deserialize {
        message: error.to_string().trim_end().to_owned(),
    })?;
    validate(&mut config, &sources)?;
    Ok(config)
}

/// Where each value came from: the variable that set it, else the file (if there is one; a
/// key in neither has its default, and the file is where to set it).
#[derive(Debug)]
pub(super) struct Sources {
    file: Option<PathBuf>,
    /// Key path (section, key[, property]) → the variable that set it.
    env: BTreeMap<Vec<String>, String>,
}

impl Sources {
    fn file_origin(&self) -> Origin {
        self.file.clone().map_or(Origin::NotSet, Origin::File)
    }

    pub(super) fn origin(&self, path: &[&str]) -> Origin {
        // A variable may have set the key itself or a table holding it.
        for len in (1..=path.len()).rev() {
            let prefix: Vec<String> = path.iter().take(len).map(|s| (*s).to_owned()).collect();
            if let Some(var) = self.env.get(&prefix) {
                return Origin::Env(var.clone());
            }
        }
        self.file_origin()
    }

    pub(super) fn invalid(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: path.join("."),
            origin: self.origin(path),
            message: message.into(),
        }
    }
}

pub(super) fn lookup<'a>(root: &'a Table, path: &[&str]) -> Option<&'a Value> {
    let (first, rest) = path.split_first()?;
    let mut value = root.get(*first)?;
    for part in rest {
        value = value.as_table()?.get(*part)?;
    }
    Some(value)
}

fn read_file(path: &Path) -> Result<Table, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    text.parse::<Table>().map_err(|error| ConfigError::Syntax {
        path: path.to_path_buf(),
        message: error.to_string().trim_end().to_owned(),
    })
}

/// Every section and key of the file must be known.
fn check_file_keys(root: &Table, sources: &Sources) -> Result<(), ConfigError> {
    let origin = sources.file_origin();
    for (section, value) in root {
        if !SECTIONS.contains(&section.as_str()) {
            return Err(ConfigError::UnknownKey {
                key: section.clone(),
                origin,
                suggestion: suggest_section(section),
            });
        }
        let Some(table) = value.as_table() else {
            return Err(ConfigError::Invalid {
                key: section.clone(),
                origin,
                message: format!("expected a table ([{section}]), found {}", value.type_str()),
            });
        };
        for key in table.keys() {
            if spec_for(section, key).is_none() {
                return Err(ConfigError::UnknownKey {
                    key: format!("{section}.{key}"),
                    origin,
                    suggestion: suggest_key(section, key),
                });
            }
        }
    }
    Ok(())
}

/// Turns `[kafka.producer] linger.ms = 5`, which TOML reads as nested tables, into the one
/// property `linger.ms`, so both the dotted and the quoted spelling work.
fn flatten_producer(root: &mut Table, sources: &Sources) -> Result<(), ConfigError> {
    let Some(Value::Table(producer)) = root
        .get_mut("kafka")
        .and_then(Value::as_table_mut)
        .and_then(|kafka| kafka.get_mut("producer"))
    else {
        return Ok(());
    };
    if producer.values().all(|value| !value.is_table()) {
        return Ok(());
    }
    let mut flat = Table::new();
    flatten_into(&mut flat, "", std::mem::take(producer), sources)?;
    *producer = flat;
    Ok(())
}

fn flatten_into(
    flat: &mut Table,
    prefix: &str,
    table: Table,
    sources: &Sources,
) -> Result<(), ConfigError> {
    for (key, value) in table {
        let name = if prefix.is_empty() {
            key
        } else {
            format!("{prefix}.{key}")
        };
        match value {
            Value::Table(inner) => flatten_into(flat, &name, inner, sources)?,
            value => {
                if flat.insert(name.clone(), value).is_some() {
                    return Err(ConfigError::Invalid {
                        key: format!("kafka.producer.{name}"),
                        origin: sources.origin(&["kafka", "producer", &name]),
                        message: "given twice (once quoted, once as dotted keys)".to_owned(),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Applies one `SLUICE_<SECTION>__<KEY>` variable to the table.
fn apply_override(
    root: &mut Table,
    sources: &mut Sources,
    name: &str,
    raw: &str,
) -> Result<(), ConfigError> {
    let rest = name.strip_prefix(ENV_PREFIX).unwrap_or(name);
    let segments: Vec<String> = rest
        .split(ENV_SEPARATOR)
        .map(str::to_ascii_lowercase)
        .collect();
    let origin = Origin::Env(name.to_owned());
    let unknown = |suggestion: Option<String>| ConfigError::UnknownKey {
        key: segments.join("."),
        origin: origin.clone(),
        suggestion,
    };
    if segments.iter().any(String::is_empty) {
        return Err(unknown(None));
    }
    let (path, kind) = match segments.as_slice() {
        // librdkafka names use dots, which cannot appear in a variable name: `_` stands for them.
        [section, table, property @ ..]
            if section == "kafka" && table == "producer" && !property.is_empty() =>
        {
            let property = property
                .iter()
                .map(|part| part.replace('_', "."))
                .collect::<Vec<_>>()
                .join(".");
            (
                vec![section.clone(), table.clone(), property],
                // The value becomes a string anyway; keep it exactly as written.
                Text,
            )
        }
        [section, key] => match spec_for(section, key) {
            Some(spec) => (vec![section.clone(), key.clone()], spec.kind),
            None => return Err(unknown(suggest_key(section, key))),
        },
        [section, key, ..] => return Err(unknown(suggest_key(section, key))),
        _ => return Err(unknown(None)),
    };
    let value = override_value(raw, kind);

    let mut table = &mut *root;
    let (last, parents) = path.split_last().ok_or_else(|| unknown(None))?;
    for (depth, part) in parents.iter().enumerate() {
        let entry = table
            .entry(part.clone())
            .or_insert_with(|| Value::Table(Table::new()));
        match entry {
            Value::Table(inner) => table = inner,
            other => {
                let parent: Vec<&str> = path.iter().take(depth + 1).map(String::as_str).collect();
                return Err(ConfigError::Invalid {
                    key: parent.join("."),
                    origin: sources.origin(&parent),
                    message: format!(
                        "expected a table, found {}; {name} cannot set a key inside it",
                        other.type_str()
                    ),
                });
            }
        }
    }
    table.insert(last.clone(), value);
    sources.env.insert(path, name.to_owned());
    Ok(())
}

fn override_value(raw: &str, kind: Kind) -> Value {
    match (raw.parse::<Value>(), kind) {
        (Ok(Value::String(s)), _) => Value::String(s),
        (Ok(value), Typed | Producer) => value,
        _ => Value::String(raw.to_owned()),
    }
}

/// Each present key must deserialize as its field does.
fn check_values(root: &Table, sources: &Sources) -> Result<(), ConfigError> {
    for spec in SCHEMA {
        let path = [spec.section, spec.key];
        let Some(value) = lookup(root, &path) else {
            continue;
        };
        if spec.kind == Producer {
            check_producer(value, sources)?;
        }
        (spec.check)(value.clone()).map_err(|error| sources.invalid(&path, error.message()))?;
    }
    Ok(())
}

/// Checked per property, so the error names the property rather than the whole table.
fn check_producer(value: &Value, sources: &Sources) -> Result<(), ConfigError> {
    let Some(table) = value.as_table() else {
        return Err(sources.invalid(
            &["kafka", "producer"],
            format!(
                "expected a table of librdkafka properties, found {}",
                value.type_str()
            ),
        ));
    };
    for (key, value) in table {
        if !matches!(
            value,
            Value::String(_) | Value::Integer(_) | Value::Float(_) | Value::Boolean(_)
        ) {
            return Err(sources.invalid(
                &["kafka", "producer", key],
                format!(
                    "expected a string, number or boolean, found {}",
                    value.type_str()
                ),
            ));
        }
    }
    Ok(())
}

fn check_required(root: &Table) -> Result<(), ConfigError> {
    for spec in SCHEMA.iter().filter(|spec| spec.required) {
        if lookup(root, &[spec.section, spec.key]).is_none() {
            let key = format!("{}.{}", spec.section, spec.key);
            return Err(ConfigError::Missing {
                env_var: env_var_for(&key),
                key,
            });
        }
    }
    Ok(())
}
