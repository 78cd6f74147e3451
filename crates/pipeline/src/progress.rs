//! Figures for progress reports: rates, ETAs, a one-line summary.

/// Rows per second, rounded down.
pub(crate) fn rate(rows: u64, seconds: f64) -> u64 {
    if seconds <= 0.0 {
        return 0;
    }
    // Rates far below 2^53: the conversions are exact enough for a progress line.
    #[allow(
        clippy::as_conversions,
        clippy::cast_precision_loss,
        clippy::cast_possible_truncation,
        clippy::cast_sign_loss
    )]
    let per_second = (rows as f64 / seconds) as u64;
    per_second
}

/// Seconds left at `rate` rows per second, when known.
pub(crate) fn eta(done: u64, total: u64, rate: u64) -> Option<u64> {
    (rate > 0 && total > done).then(|| (total - done).div_ceil(rate))
}

/// `snapshot 1200/5000 rows (24%), 600 rows/s, 7s left`.
pub(crate) fn line(what: &str, done: u64, total: u64, rate: u64) -> String {
    let percent = (done.min(total) * 100).checked_div(total).unwrap_or(100);
    let left = match eta(done, total, rate) {
        Some(seconds) => format!(
            ", {} left",
            crate::format::duration(std::time::Duration::from_secs(seconds))
        ),
        None => String::new(),
    };
    format!("{what} {done}/{total} rows ({percent}%), {rate} rows/s{left}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_figures() {
        assert_eq!(rate(1000, 2.0), 500);
        assert_eq!(rate(1, 0.0), 0);
        assert_eq!(eta(100, 1000, 300), Some(3));
        assert_eq!(eta(1000, 1000, 300), None);
        assert_eq!(eta(10, 1000, 0), None);
        assert_eq!(
            line("snapshot", 1200, 5000, 600),
            "snapshot 1200/5000 rows (24%), 600 rows/s, 7s left"
        );
        assert_eq!(
            line("snapshot", 0, 60_000, 300),
            "snapshot 0/60000 rows (0%), 300 rows/s, 3m 20s left"
        );
        assert_eq!(
            line("snapshot", 0, 0, 0),
            "snapshot 0/0 rows (100%), 0 rows/s"
        );
    }
}
