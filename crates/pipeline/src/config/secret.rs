//! Secret strings: never printed.

use std::fmt;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// A password, token or key: a [`secrecy::SecretString`] (wiped from memory when dropped),
/// whose Debug and Display print `<redacted>`, so it cannot leak through a log line.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct Secret(SecretString);

impl Secret {
    pub fn new(secret: impl Into<String>) -> Self {
        Secret(SecretString::from(secret.into()))
    }

    /// The secret itself, for the one place that needs it.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
    }

    /// The secret as the library clients take it.
    pub fn to_secret_string(&self) -> SecretString {
        self.0.clone()
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Self) -> bool {
        self.expose() == other.expose()
    }
}

impl Eq for Secret {}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}
