//! Where each configuration value came from (a file, an environment variable, a default),
//! for errors that name the key and the place to fix it.

use std::path::Path;

use figment::error::{Kind, OneOf};
use figment::{Figment, Source};

use super::error::{ConfigError, Origin};
use super::keys::{PRODUCER, env_var_for, first_required, suggest_key, suggest_section};

/// Where each value came from, for error messages: the layer that set it, else the file (if
/// there is one; a key in neither has its default, and the file is where to set it).
pub(super) struct Sources<'a> {
    pub(super) figment: &'a Figment,
    pub(super) file: Option<&'a Path>,
}

impl Sources<'_> {
    pub(super) fn origin(&self, path: &[&str]) -> Origin {
        let found = path.split_first().and_then(|(section, rest)| {
            let mut value = self.figment.find_value(section).ok()?;
            for key in rest {
                value = value.as_dict()?.get(*key)?.clone();
            }
            Some(value)
        });
        let source = found
            .and_then(|value| self.figment.get_metadata(value.tag()))
            .and_then(|metadata| metadata.source.as_ref());
        match source {
            Some(Source::Custom(var)) => Origin::Env(var.clone()),
            Some(Source::File(path)) => Origin::File(path.clone()),
            _ => self
                .file
                .map_or(Origin::NotSet, |path| Origin::File(path.to_path_buf())),
        }
    }

    pub(super) fn invalid(&self, path: &[&str], message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid {
            key: path.join("."),
            origin: self.origin(path),
            message: message.into(),
        }
    }

    /// figment's error as ours: the key at fault (not an array index inside it), where it was
    /// set, and for an unknown key the one probably meant.
    pub(super) fn error(&self, error: figment::Error) -> ConfigError {
        let path: Vec<&str> = error.path.iter().map(String::as_str).collect();
        match &error.kind {
            Kind::UnknownField(..) => {
                let mut key = path.clone();
                // An unknown section: name its first key too, so the suggestion can be a key.
                let first = match path.as_slice() {
                    [section] => self
                        .figment
                        .find_value(section)
                        .ok()
                        .and_then(|value| value.into_dict()?.into_keys().next()),
                    _ => None,
                };
                if let Some(first) = &first {
                    key.push(first);
                }
                let suggestion = match key.as_slice() {
                    [section] => suggest_section(section),
                    [section, key, ..] => suggest_key(section, key),
                    [] => None,
                };
                ConfigError::UnknownKey {
                    key: key.join("."),
                    origin: self.origin(&key),
                    suggestion,
                }
            }
            Kind::MissingField(name) => {
                let mut key: Vec<String> = error.path.clone();
                key.push(name.to_string());
                // A whole section missing: name its first required key.
                if let [section] = key.as_slice()
                    && let Some(first) = first_required(section)
                {
                    key.push(first);
                }
                let key = key.join(".");
                ConfigError::Missing {
                    env_var: env_var_for(&key),
                    key,
                }
            }
            kind => {
                let message = match kind {
                    // figment's own wording nests the list in backticks.
                    Kind::UnknownVariant(value, expected) => {
                        format!("unknown value `{value}`, expected {}", OneOf(expected))
                    }
                    kind => kind.to_string(),
                };
                let depth = if path.starts_with(&PRODUCER) { 3 } else { 2 };
                let key = &path[..path.len().min(depth)];
                ConfigError::Invalid {
                    key: key.join("."),
                    origin: self.origin(key),
                    message,
                }
            }
        }
    }
}
