//! The wall clock, as the events' processing times read it.

use std::time::{SystemTime, UNIX_EPOCH};

pub(crate) fn now_us() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_micros()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
