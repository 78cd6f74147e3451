//! Scalar types shared by the walsender envelope and pgoutput messages.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// A transaction id as PostgreSQL sends it (32 bits, wrapping; no epoch).
pub type Xid = u32;

/// An object id: how pgoutput names relations and types instead of repeating their names.
pub type Oid = u32;

/// A position in the write-ahead log.
///
/// Ordered like the log itself, so "has the broker acknowledged everything up to here"
/// is a plain comparison. Displayed and parsed in PostgreSQL's `16/B374D848` form so that
/// values can be copied between logs, `pg_replication_slots` and configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Lsn(pub u64);

impl Lsn {
    /// PostgreSQL's `InvalidXLogRecPtr` (`0/0`); as a start position it means "wherever the
    /// slot is".
    pub const ZERO: Lsn = Lsn(0);
}

impl From<u64> for Lsn {
    fn from(value: u64) -> Self {
        Lsn(value)
    }
}

impl From<Lsn> for u64 {
    fn from(value: Lsn) -> Self {
        value.0
    }
}

impl fmt::Display for Lsn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:X}/{:X}", self.0 >> 32, self.0 & 0xFFFF_FFFF)
    }
}

/// Why a string is not an LSN in PostgreSQL's `HIGH/LOW` hexadecimal form.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid LSN {input:?}: expected two hexadecimal numbers of 1 to 8 digits separated by '/', like \"16/B374D848\""
)]
pub struct ParseLsnError {
    input: String,
}

impl FromStr for Lsn {
    type Err = ParseLsnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let half = |part: &str| -> Option<u32> {
            // from_str_radix alone would accept a leading '+'; PostgreSQL does not.
            if part.is_empty() || part.len() > 8 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None;
            }
            u32::from_str_radix(part, 16).ok()
        };
        let parsed = s
            .split_once('/')
            .and_then(|(high, low)| Some((half(high)?, half(low)?)));
        match parsed {
            Some((high, low)) => Ok(Lsn((u64::from(high) << 32) | u64::from(low))),
            None => Err(ParseLsnError {
                input: s.to_owned(),
            }),
        }
    }
}

/// Microseconds between 1970-01-01 and 2000-01-01 (both UTC).
const UNIX_TO_PG_EPOCH_MICROS: i64 = 946_684_800_000_000;

/// Microseconds since 2000-01-01 00:00:00 UTC, PostgreSQL's epoch.
///
/// Kept in PostgreSQL's own representation so that decoding never fails or rounds;
/// convert at the edges. `i64::MIN` and `i64::MAX` are PostgreSQL's `-infinity` and
/// `infinity`, and the conversions saturate so they stay that way.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct PgTimestamp(pub i64);

impl PgTimestamp {
    /// Microseconds since the Unix epoch, saturating at the ends of `i64`.
    pub fn to_unix_micros(self) -> i64 {
        self.0.saturating_add(UNIX_TO_PG_EPOCH_MICROS)
    }

    /// From microseconds since the Unix epoch, saturating at the ends of `i64`.
    pub fn from_unix_micros(micros: i64) -> Self {
        PgTimestamp(micros.saturating_sub(UNIX_TO_PG_EPOCH_MICROS))
    }

    /// From a system clock reading, e.g. the `client_time` of a [`StandbyStatusUpdate`];
    /// saturates, and drops sub-microsecond precision.
    ///
    /// [`StandbyStatusUpdate`]: crate::StandbyStatusUpdate
    pub fn from_system_time(time: SystemTime) -> Self {
        let micros = match time.duration_since(UNIX_EPOCH) {
            Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
            Err(before) => i64::try_from(before.duration().as_micros())
                .map(|m| -m)
                .unwrap_or(i64::MIN),
        };
        Self::from_unix_micros(micros)
    }

    /// As a system clock reading, or `None` where the platform's `SystemTime` cannot hold it.
    pub fn to_system_time(self) -> Option<SystemTime> {
        let micros = self.to_unix_micros();
        let offset = Duration::from_micros(micros.unsigned_abs());
        if micros >= 0 {
            UNIX_EPOCH.checked_add(offset)
        } else {
            UNIX_EPOCH.checked_sub(offset)
        }
    }
}
