//! A configuration that cannot be used: which key, from where, and what was probably meant.

use std::path::PathBuf;

use super::keys::env_var_for;

/// Where a key's value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// The configuration file.
    File(PathBuf),
    /// This environment variable.
    Env(String),
    /// Neither: the key is absent (or has its default).
    NotSet,
}

/// A configuration that cannot be used, naming the key (and the variable or file) at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    #[error("cannot read configuration file {}: {error}", .path.display())]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("{}: {message}", .path.display())]
    Syntax { path: PathBuf, message: String },
    #[error("{}: unknown key{}", at(.key, .origin), did_you_mean(.suggestion.as_deref(), .origin))]
    UnknownKey {
        key: String,
        origin: Origin,
        /// The closest known key, if one is near enough to be a likely typo.
        suggestion: Option<String>,
    },
    /// A wrong type or an unacceptable value.
    #[error("{}: {message}", at(.key, .origin))]
    Invalid {
        key: String,
        origin: Origin,
        message: String,
    },
    #[error("{key}: required key missing; set it in the file or with {env_var}")]
    Missing { key: String, env_var: String },
    #[error("{}: cannot read {}: {error}", at(.key, .origin), .path.display())]
    PasswordFile {
        key: String,
        origin: Origin,
        path: PathBuf,
        error: std::io::Error,
    },
}

impl ConfigError {
    /// The dotted key the error is about, if it is about one.
    pub fn key(&self) -> Option<&str> {
        match self {
            ConfigError::UnknownKey { key, .. }
            | ConfigError::Invalid { key, .. }
            | ConfigError::Missing { key, .. }
            | ConfigError::PasswordFile { key, .. } => Some(key),
            ConfigError::Read { .. } | ConfigError::Syntax { .. } => None,
        }
    }
}

fn at(key: &str, origin: &Origin) -> String {
    match origin {
        Origin::File(path) => format!("{}: {key}", path.display()),
        Origin::Env(var) => format!("{key} (from {var})"),
        Origin::NotSet => key.to_owned(),
    }
}

fn did_you_mean(suggestion: Option<&str>, origin: &Origin) -> String {
    match (suggestion, origin) {
        (None, _) => String::new(),
        // Someone writing a variable wants the variable's spelling too.
        (Some(key), Origin::Env(_)) => format!("; did you mean {key} ({})?", env_var_for(key)),
        (Some(key), _) => format!("; did you mean {key}?"),
    }
}
