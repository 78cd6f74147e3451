//! Sizes and durations as people read them: one way of writing each, for the commands'
//! reports (`check`, `status`, `teardown`) and the snapshot's progress line, so that two of
//! them never show one figure two ways.

use std::time::Duration;

/// Binary units above bytes, each 1024 times the one before.
const UNITS: [&str; 6] = ["KiB", "MiB", "GiB", "TiB", "PiB", "EiB"];

/// A byte count in binary units, rounded to the nearest tenth: `512 bytes`, `1.5 KiB`,
/// `12.5 MiB`. A figure that rounds up to 1024 of a unit is written in the next one.
pub fn bytes(count: i64) -> String {
    let magnitude = u128::from(count.unsigned_abs());
    if magnitude < 1024 {
        return format!("{count} bytes");
    }
    let sign = if count < 0 { "-" } else { "" };
    let mut scale: u128 = 1024;
    for (index, unit) in UNITS.iter().enumerate() {
        let tenths = (magnitude * 10 + scale / 2) / scale;
        if tenths < 10 * 1024 || index == UNITS.len() - 1 {
            return format!("{sign}{}.{} {unit}", tenths / 10, tenths % 10);
        }
        scale *= 1024;
    }
    format!("{count} bytes")
}

/// [`bytes`] with the exact count beside it when the unit rounds: `1.2 MiB (1258291 bytes)`.
pub fn bytes_exact(count: i64) -> String {
    let rounded = bytes(count);
    if count.unsigned_abs() < 1024 {
        rounded
    } else {
        format!("{rounded} ({count} bytes)")
    }
}

/// A duration of `ms` milliseconds: `340ms`, `12.5s`, `10s`, `3m 20s`, `2h 5m`.
pub fn millis(ms: i64) -> String {
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let seconds = ms / 1000;
    if seconds < 60 {
        return match ms % 1000 / 100 {
            0 => format!("{seconds}s"),
            tenths => format!("{seconds}.{tenths}s"),
        };
    }
    let (hours, minutes, seconds) = (seconds / 3600, seconds / 60 % 60, seconds % 60);
    if hours == 0 {
        format!("{minutes}m {seconds}s")
    } else {
        format!("{hours}h {minutes}m")
    }
}

/// [`millis`] of a `Duration`.
pub fn duration(duration: Duration) -> String {
    millis(i64::try_from(duration.as_millis()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_round_to_the_nearest_tenth_of_their_unit() {
        assert_eq!(bytes(0), "0 bytes");
        assert_eq!(bytes(1023), "1023 bytes");
        assert_eq!(bytes(-1023), "-1023 bytes");
        assert_eq!(bytes(1024), "1.0 KiB");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(bytes(13_107_200), "12.5 MiB");
        assert_eq!(bytes(-2048), "-2.0 KiB");
        // 1.19999 MiB is 1.2 MiB, not 1.1; 1.0499995 MiB is 1.0, 1.0500005 MiB 1.1.
        assert_eq!(bytes(1_258_291), "1.2 MiB");
        assert_eq!(bytes(1_101_004), "1.0 MiB");
        assert_eq!(bytes(1_101_005), "1.1 MiB");
        // Just under 1 MiB rounds to 1024.0 KiB: written as MiB.
        assert_eq!(bytes(1_048_575), "1.0 MiB");
        assert_eq!(bytes(5 * 1024 * 1024 * 1024), "5.0 GiB");
        assert_eq!(bytes(i64::MAX), "8.0 EiB");
        assert_eq!(bytes(i64::MIN), "-8.0 EiB");
    }

    #[test]
    fn exact_sizes_carry_the_count_beside_the_unit() {
        assert_eq!(bytes_exact(0), "0 bytes");
        assert_eq!(bytes_exact(1023), "1023 bytes");
        assert_eq!(bytes_exact(1024), "1.0 KiB (1024 bytes)");
        assert_eq!(bytes_exact(1_258_291), "1.2 MiB (1258291 bytes)");
        assert_eq!(bytes_exact(-2048), "-2.0 KiB (-2048 bytes)");
    }

    #[test]
    fn durations_read_naturally() {
        assert_eq!(millis(0), "0ms");
        assert_eq!(millis(340), "340ms");
        assert_eq!(millis(-5), "-5ms");
        assert_eq!(millis(1000), "1s");
        assert_eq!(millis(12_540), "12.5s");
        assert_eq!(millis(59_999), "59.9s");
        assert_eq!(millis(60_000), "1m 0s");
        assert_eq!(millis(200_000), "3m 20s");
        assert_eq!(millis(7_500_000), "2h 5m");
        assert_eq!(duration(Duration::from_secs(10)), "10s");
        assert_eq!(duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(duration(Duration::MAX), millis(i64::MAX));
    }
}
