//! `[kafka.producer]`: librdkafka properties passed through, with the ones sluice sets itself
//! refused and the credentials among them redacted.

use std::collections::BTreeMap;
use std::fmt;

use serde::Deserialize;
use serde::de::{self, Deserializer, MapAccess, Visitor};

/// `[kafka.producer]`: librdkafka properties passed through as they are, all as strings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct ProducerProperties(BTreeMap<String, String>);

impl ProducerProperties {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// In key order.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl FromIterator<(String, String)> for ProducerProperties {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(iter: I) -> Self {
        ProducerProperties(iter.into_iter().collect())
    }
}

// SASL and SSL passwords travel through here too; they must not reach a log.
impl fmt::Debug for ProducerProperties {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map()
            .entries(self.iter().map(|(k, v)| (k, redact_property(k, v))))
            .finish()
    }
}

impl<'de> Deserialize<'de> for ProducerProperties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PropertiesVisitor;

        impl<'de> Visitor<'de> for PropertiesVisitor {
            type Value = ProducerProperties;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of librdkafka properties")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut properties = BTreeMap::new();
                while let Some((key, PropertyValue(value))) = map.next_entry()? {
                    properties.insert(key, value);
                }
                Ok(ProducerProperties(properties))
            }
        }

        deserializer.deserialize_map(PropertiesVisitor)
    }
}

/// A librdkafka property value: librdkafka takes strings only, so numbers and booleans written
/// naturally in TOML are turned into their text.
struct PropertyValue(String);

impl<'de> Deserialize<'de> for PropertyValue {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ValueVisitor;

        impl<'de> Visitor<'de> for ValueVisitor {
            type Value = PropertyValue;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string, number or boolean")
            }

            fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_owned()))
            }

            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            fn visit_bool<E: de::Error>(self, v: bool) -> Result<Self::Value, E> {
                Ok(PropertyValue(v.to_string()))
            }

            // Named as TOML names them, rather than serde's "invalid type: found sequence".
            fn visit_seq<A: de::SeqAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(
                    "expected a string, number or boolean, found array",
                ))
            }

            fn visit_map<A: MapAccess<'de>>(self, _: A) -> Result<Self::Value, A::Error> {
                Err(de::Error::custom(
                    "expected a string, number or boolean, found table",
                ))
            }
        }

        deserializer.deserialize_any(ValueVisitor)
    }
}

/// Whether a librdkafka property's value is a credential (passwords, secrets, PEM keys, SASL
/// configuration), to be hidden from Debug and the summary.
fn is_secret_property(key: &str) -> bool {
    [
        "password",
        "secret",
        "pem",
        "jaas",
        "oauthbearer.config",
        "token",
    ]
    .iter()
    .any(|word| key.contains(word))
}

pub(super) fn redact_property<'a>(key: &str, value: &'a str) -> &'a str {
    if is_secret_property(key) {
        "<redacted>"
    } else {
        value
    }
}

const ALWAYS_ACKS_ALL: &str = "sluice always uses acks=all and enable.idempotence=true, so that \
     no acknowledged event is lost or duplicated; remove this setting";

/// Producer properties sluice sets itself, and why they cannot be overridden.
pub(super) const RESERVED_PROPERTIES: &[(&str, &str)] = &[
    ("acks", ALWAYS_ACKS_ALL),
    ("request.required.acks", ALWAYS_ACKS_ALL),
    ("enable.idempotence", ALWAYS_ACKS_ALL),
    ("bootstrap.servers", "set kafka.bootstrap_servers instead"),
    (
        "metadata.broker.list",
        "set kafka.bootstrap_servers instead",
    ),
    ("compression.type", "set kafka.compression instead"),
    ("compression.codec", "set kafka.compression instead"),
    (
        "partitioner",
        "sluice places keys as Java's default partitioner does, so a key always lands on one \
         partition; remove this setting",
    ),
];
