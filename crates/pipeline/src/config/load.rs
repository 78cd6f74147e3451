//! Loading: the file, then the environment's overrides, layered by figment, which remembers
//! where each value came from and names the key of any value that does not deserialize.
//!
//! figment's own `Env` provider is not used for the overrides: it reads only the process
//! environment (the tests pass theirs in), reads every value as a TOML-like value (so a
//! password `123456` would be a number and fail its string field), trims values, and names no
//! variable in its errors. Each override here is a layer of its own, named after its variable.

use std::collections::BTreeSet;
use std::path::Path;

use figment::error::{Actual, Kind};
use figment::value::{Dict, Map, Value};
use figment::{Figment, Metadata, Profile, Provider, Source};

use super::Config;
use super::error::{ConfigError, Origin};
use super::keys::{ENV_PREFIX, ENV_SEPARATOR, PRODUCER, suggest_key};
use super::sources::Sources;
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
    let file = path.map(read_file).transpose()?;
    let overrides = overrides(env)?;
    // Which overrides are read as TOML rather than as strings (see `Override`). The producer
    // table from the start: it is a table or nothing, and a property set by a later variable
    // would hide its string from serde.
    let mut as_toml: BTreeSet<usize> = overrides
        .iter()
        .enumerate()
        .filter(|(_, item)| item.path == PRODUCER && item.toml.is_some())
        .map(|(index, _)| index)
        .collect();
    let (mut config, figment) = loop {
        let figment = overrides.iter().enumerate().fold(
            file.clone().map_or_else(Figment::new, Figment::from),
            |figment, (index, item)| figment.merge(item.layer(as_toml.contains(&index))),
        );
        let error = match figment.extract::<Config>() {
            Ok(config) => break (config, figment),
            Err(error) => error,
        };
        match string_refused(&error, &overrides, &as_toml) {
            Some(index) => as_toml.insert(index),
            None => {
                let sources = Sources {
                    figment: &figment,
                    file: path,
                };
                return Err(sources.error(error));
            }
        };
    };
    validate(
        &mut config,
        &Sources {
            figment: &figment,
            file: path,
        },
    )?;
    Ok(config)
}

/// One source of values: the file, or one variable.
#[derive(Clone)]
struct Layer {
    metadata: Metadata,
    values: Dict,
}

impl Provider for Layer {
    fn metadata(&self) -> Metadata {
        self.metadata.clone()
    }

    fn data(&self) -> Result<Map<Profile, Dict>, figment::Error> {
        Ok(Profile::Default.collect(self.values.clone()))
    }
}

fn read_file(path: &Path) -> Result<Layer, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    let mut root = text
        .parse::<toml::Table>()
        .map_err(|error| ConfigError::Syntax {
            path: path.to_path_buf(),
            message: error.to_string().trim_end().to_owned(),
        })?;
    let origin = || Origin::File(path.to_path_buf());
    for (section, value) in &root {
        if !value.is_table() {
            return Err(ConfigError::Invalid {
                key: section.clone(),
                origin: origin(),
                message: format!("expected a table ([{section}]), found {}", value.type_str()),
            });
        }
    }
    if let Some(producer) = root
        .get_mut(PRODUCER[0])
        .and_then(toml::Value::as_table_mut)
        .and_then(|kafka| kafka.get_mut(PRODUCER[1]))
    {
        flatten_producer(producer, &origin)?;
    }
    Ok(Layer {
        metadata: Metadata::from("configuration file", Source::File(path.to_path_buf())),
        values: figment_dict(toml::Value::Table(root)),
    })
}

/// Turns `[kafka.producer] linger.ms = 5`, which TOML reads as nested tables, into the one
/// property `linger.ms`, so both the dotted and the quoted spelling work.
fn flatten_producer(
    producer: &mut toml::Value,
    origin: &dyn Fn() -> Origin,
) -> Result<(), ConfigError> {
    fn flatten_into(
        flat: &mut toml::Table,
        prefix: &str,
        table: toml::Table,
        origin: &dyn Fn() -> Origin,
    ) -> Result<(), ConfigError> {
        for (key, value) in table {
            let name = if prefix.is_empty() {
                key
            } else {
                format!("{prefix}.{key}")
            };
            match value {
                toml::Value::Table(inner) => flatten_into(flat, &name, inner, origin)?,
                value => {
                    if flat.insert(name.clone(), value).is_some() {
                        return Err(ConfigError::Invalid {
                            key: format!("{}.{}.{name}", PRODUCER[0], PRODUCER[1]),
                            origin: origin(),
                            message: "given twice (once quoted, once as dotted keys)".to_owned(),
                        });
                    }
                }
            }
        }
        Ok(())
    }

    if let toml::Value::Table(table) = producer {
        let mut flat = toml::Table::new();
        flatten_into(&mut flat, "", std::mem::take(table), origin)?;
        *table = flat;
    }
    Ok(())
}

/// A TOML table as figment's values.
fn figment_dict(table: toml::Value) -> Dict {
    Value::serialize(table)
        .ok()
        .and_then(Value::into_dict)
        .unwrap_or_default()
}

/// One `SLUICE_<SECTION>__<KEY>` variable.
///
/// Its text is a string unless its field asks for something else (a number, a boolean, an
/// array, a table): then it is read as TOML. The field's type decides, as serde reports it:
/// `load` offers the string first, and an override whose string is refused is read as TOML on
/// the next try (one more try per such override).
struct Override {
    var: String,
    /// The key it sets, e.g. `["kafka", "producer", "linger.ms"]`.
    path: Vec<String>,
    /// The value as a string: as written, unless it is a quoted TOML string.
    text: String,
    /// The value as TOML (a number, boolean, array or inline table), if it reads as one.
    toml: Option<Value>,
}

impl Override {
    fn parse(var: String, raw: &str) -> Result<Self, ConfigError> {
        let rest = var.strip_prefix(ENV_PREFIX).unwrap_or(&var);
        let segments: Vec<String> = rest
            .split(ENV_SEPARATOR)
            .map(str::to_ascii_lowercase)
            .collect();
        let unknown = |suggestion: Option<String>| ConfigError::UnknownKey {
            key: segments.join("."),
            origin: Origin::Env(var.clone()),
            suggestion,
        };
        if segments.iter().any(String::is_empty) {
            return Err(unknown(None));
        }
        let (text, toml) = match raw.parse::<toml::Value>() {
            Ok(toml::Value::String(text)) => (text, None),
            Ok(value) => (raw.to_owned(), Some(value)),
            Err(_) => (raw.to_owned(), None),
        };
        let (path, toml) = match segments.as_slice() {
            // librdkafka names use dots, which cannot appear in a variable name: `_` stands
            // for them. The value becomes a string anyway: keep it as written.
            [section, table, property @ ..]
                if *section == PRODUCER[0] && *table == PRODUCER[1] && !property.is_empty() =>
            {
                let property = property
                    .iter()
                    .map(|part| part.replace('_', "."))
                    .collect::<Vec<_>>()
                    .join(".");
                (vec![section.clone(), table.clone(), property], None)
            }
            [_, _] if segments == PRODUCER => match toml {
                // An inline table, nested keys and all.
                Some(mut table) => {
                    flatten_producer(&mut table, &|| Origin::Env(var.clone()))?;
                    (segments.clone(), Some(table))
                }
                None => (segments.clone(), None),
            },
            [_, _] => (segments.clone(), toml),
            [section, key, ..] => return Err(unknown(suggest_key(section, key))),
            _ => return Err(unknown(None)),
        };
        Ok(Override {
            toml: toml.and_then(|value| Value::serialize(value).ok()),
            var,
            path,
            text,
        })
    }

    fn layer(&self, as_toml: bool) -> Layer {
        let value = match (&self.toml, as_toml) {
            (Some(value), true) => value.clone(),
            _ => Value::from(self.text.clone()),
        };
        let values = self
            .path
            .iter()
            .rev()
            .fold(value, |value, key| {
                Value::from(Dict::from_iter([(key.clone(), value)]))
            })
            .into_dict()
            .unwrap_or_default();
        Layer {
            metadata: Metadata::from(self.var.clone(), Source::Custom(self.var.clone())),
            values,
        }
    }
}

/// The overrides in `env`, sorted by name so that the outcome never depends on its order.
fn overrides(
    env: impl IntoIterator<Item = (String, String)>,
) -> Result<Vec<Override>, ConfigError> {
    let mut vars: Vec<(String, String)> = env
        .into_iter()
        .filter(|(name, _)| {
            name.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| rest.contains(ENV_SEPARATOR))
        })
        .collect();
    vars.sort();
    vars.into_iter()
        .map(|(var, raw)| Override::parse(var, &raw))
        .collect()
}

/// The override whose string its field refused, if it reads as TOML and has not been tried so.
fn string_refused(
    error: &figment::Error,
    overrides: &[Override],
    as_toml: &BTreeSet<usize>,
) -> Option<usize> {
    let (Kind::InvalidType(Actual::Str(_), _), Some(metadata)) = (&error.kind, &error.metadata)
    else {
        return None;
    };
    overrides.iter().enumerate().position(|(index, item)| {
        item.toml.is_some() && !as_toml.contains(&index) && metadata.name == item.var
    })
}
