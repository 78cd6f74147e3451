//! Figures for progress reports: rates, ETAs, a one-line summary.

use std::time::Duration;

use crate::metrics::{self};
use std::sync::atomic::Ordering::Relaxed;

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

/// Snapshot progress: on a terminal a line of the overall figures refreshed every second;
/// otherwise every `interval` a log line per unfinished table (rows, estimate, rate, ETA) and
/// one for all tables.
pub(crate) async fn report_progress(tables: Vec<String>, interval: Duration) {
    use std::io::{IsTerminal as _, Write as _};
    let terminal = std::io::stderr().is_terminal();
    let started = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(if terminal {
        Duration::from_secs(1)
    } else {
        interval.max(Duration::from_millis(10))
    });
    // The first tick is immediate: nothing to report yet.
    tick.tick().await;
    loop {
        tick.tick().await;
        let elapsed = started.elapsed().as_secs_f64().max(0.001);
        let figures: Vec<(String, u64, u64)> = tables
            .iter()
            .map(|name| {
                let m = metrics::global().table(name);
                (
                    name.clone(),
                    m.snapshot_rows.load(Relaxed),
                    m.snapshot_rows_estimate.load(Relaxed),
                )
            })
            .collect();
        let done: u64 = figures.iter().map(|(_, rows, _)| rows).sum();
        let total: u64 = figures
            .iter()
            .map(|(_, rows, estimate)| (*estimate).max(*rows))
            .sum();
        let rate = crate::progress::rate(done, elapsed);
        if terminal {
            let line = crate::progress::line("snapshot", done, total, rate);
            let mut stderr = std::io::stderr().lock();
            let _ = write!(stderr, "\r{line}\x1b[K");
            let _ = stderr.flush();
        } else {
            for (table, rows, estimate) in
                figures.iter().filter(|(_, rows, estimate)| rows < estimate)
            {
                let table_rate = crate::progress::rate(*rows, elapsed);
                tracing::info!(
                    %table,
                    rows,
                    estimated_rows = estimate,
                    rows_per_second = table_rate,
                    eta_seconds = crate::progress::eta(*rows, *estimate, table_rate),
                    "snapshot progress"
                );
            }
            tracing::info!(
                rows = done,
                estimated_rows = total,
                rows_per_second = rate,
                "snapshot progress, all tables"
            );
        }
    }
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
