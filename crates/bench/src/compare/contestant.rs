//! Who runs in a workload: sluice, Debezium and the ceilings, each over TCP or the Unix socket
//! where it can.

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Transport {
    Tcp,
    Unix,
}

impl Transport {
    fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Unix => "unix",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Contestant {
    Sluice(Transport),
    /// sluice with `snapshot.mode = "incremental"`: the tables read in key-range chunks while
    /// it streams. Only in the snapshot workloads, where it is what differs.
    SluiceIncremental(Transport),
    Debezium,
    PgRecvlogical(Transport),
    Copy(Transport),
    KafkaProducer,
}

impl Contestant {
    pub(crate) fn label(self) -> String {
        match self {
            Contestant::Sluice(t) => format!("sluice/{}", t.as_str()),
            Contestant::SluiceIncremental(t) => format!("sluice-incremental/{}", t.as_str()),
            Contestant::Debezium => "debezium/tcp".to_owned(),
            Contestant::PgRecvlogical(t) => format!("pg_recvlogical/{}", t.as_str()),
            Contestant::Copy(t) => format!("copy/{}", t.as_str()),
            Contestant::KafkaProducer => "kafka-producer".to_owned(),
        }
    }

    /// The part of slot, publication, topic prefix and worker names that says who.
    pub(crate) fn short(self) -> String {
        self.label().replace(['/', '-'], "_")
    }

    /// Whether it is a sluice process (in either snapshot mode).
    pub(crate) fn is_sluice(self) -> bool {
        matches!(
            self,
            Contestant::Sluice(_) | Contestant::SluiceIncremental(_)
        )
    }

    /// The contestant this one is a variant of, and is measured against: the incremental
    /// snapshot against the initial one over the same transport (the target is a
    /// ratio of the two).
    pub(crate) fn baseline(self) -> Option<Contestant> {
        match self {
            Contestant::SluiceIncremental(t) => Some(Contestant::Sluice(t)),
            _ => None,
        }
    }

    pub(crate) fn role(self) -> &'static str {
        match self {
            Contestant::Sluice(_) | Contestant::SluiceIncremental(_) => "contestant",
            Contestant::Debezium => "peer",
            _ => "ceiling",
        }
    }
}
