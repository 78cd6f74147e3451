//! The result: every run's measurement, the summary per workload and contestant, the ratios,
//! as JSON, and the same as markdown tables for people.

use std::fmt::Write as _;

use serde::Serialize;

use super::contestant::Contestant;
use crate::stats::{Spread, rate};

/// One run of one contestant, as measured.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Observation {
    /// From the contestant's start until every record was in Kafka (or its exit, for a ceiling).
    pub seconds: f64,
    /// From the start until the first record was in Kafka.
    pub first_record_seconds: Option<f64>,
    /// From the start until the slot was confirmed through the last transaction.
    pub confirmed_seconds: Option<f64>,
    pub contestant_cpu_seconds: Option<f64>,
    pub postgres_cpu_seconds: Option<f64>,
    pub broker_cpu_seconds: Option<f64>,
    pub peak_rss_kib: Option<u64>,
    /// The median of the resident set sizes sampled after the first record was in Kafka.
    pub steady_rss_kib: Option<u64>,
    /// The steady workload's latencies.
    pub latency: Option<Latency>,
    /// Records in its topics beyond those it owed, once it stopped (duplicates: should be 0).
    pub extra_records: u64,
}

/// Latencies of one run, in milliseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub(crate) struct Latency {
    /// Single-row transactions per second asked for, and written.
    pub asked_per_second: u64,
    pub written_per_second: f64,
    pub events: u64,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub p999_ms: f64,
    pub max_ms: f64,
    /// The two legs of the latency, each at p50 and p99: from the commit to sluice taking the
    /// change (the event's `ts_us`, the time its batch was taken), and from there to the
    /// broker's append.
    pub to_sluice_p50_ms: f64,
    pub to_sluice_p99_ms: f64,
    pub to_broker_p50_ms: f64,
    pub to_broker_p99_ms: f64,
}

/// One run of one contestant on one workload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Measurement {
    pub workload: String,
    pub contestant: String,
    pub run: u32,
    /// Row changes (drain) or rows (snapshot): the same for every contestant of a workload.
    pub events: u64,
    /// Kafka records the contestant wrote (a delete also writes a tombstone).
    pub records: u64,
    pub events_per_second: f64,
    /// Events over the time from the first record in Kafka to the last: the rate once started.
    pub steady_events_per_second: Option<f64>,
    #[serde(flatten)]
    pub observed: Observation,
}

impl Measurement {
    pub(crate) fn new(
        workload: &str,
        contestant: Contestant,
        run: u32,
        events: u64,
        records: u64,
        observed: Observation,
    ) -> Measurement {
        Measurement {
            workload: workload.to_owned(),
            contestant: contestant.label(),
            run,
            events,
            records,
            events_per_second: rate(events, observed.seconds),
            steady_events_per_second: observed
                .first_record_seconds
                .filter(|first| observed.seconds > *first)
                .map(|first| rate(events, observed.seconds - first)),
            observed,
        }
    }

    /// One line for the progress log.
    pub(crate) fn line(&self) -> String {
        format!(
            "run {} {:<24} {:>8.2} s {:>12} events/s",
            self.run,
            self.contestant,
            self.observed.seconds,
            thousands(self.events_per_second)
        )
    }
}

/// All runs of one contestant on one workload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Summary {
    pub workload: String,
    pub contestant: String,
    pub role: &'static str,
    /// The contestant it is a variant of (sluice-incremental's is sluice): a ratio over it too.
    pub baseline: Option<String>,
    pub runs: usize,
    pub events_per_second: Spread,
    pub median_steady_events_per_second: Option<f64>,
    pub median_seconds: f64,
    pub median_first_record_seconds: Option<f64>,
    pub median_confirmed_seconds: Option<f64>,
    /// CPU seconds per million events, the mean over the runs.
    pub contestant_cpu_seconds_per_million: Option<f64>,
    pub postgres_cpu_seconds_per_million: Option<f64>,
    pub broker_cpu_seconds_per_million: Option<f64>,
    /// The highest of the runs.
    pub peak_rss_kib: Option<u64>,
    /// The highest of the runs' steady (median after the first record) resident set sizes.
    pub steady_rss_kib: Option<u64>,
    /// The steady workload's latencies: the run with the median p99.
    pub latency: Option<Latency>,
}

/// Median events/s of one contestant over another's, on one workload.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Ratio {
    pub workload: String,
    pub numerator: String,
    pub denominator: String,
    pub value: f64,
}

pub(crate) fn summarize(
    workload: &str,
    contestants: &[Contestant],
    measurements: &[Measurement],
) -> Vec<Summary> {
    contestants
        .iter()
        .filter_map(|contestant| {
            let label = contestant.label();
            let runs: Vec<&Measurement> = measurements
                .iter()
                .filter(|m| m.workload == workload && m.contestant == label)
                .collect();
            if runs.is_empty() {
                return None;
            }
            let per_million = |cpu: fn(&Observation) -> Option<f64>| -> Option<f64> {
                let each: Option<Vec<f64>> = runs
                    .iter()
                    .map(|m| cpu(&m.observed).map(|s| s / rate(m.events, 1.0) * 1e6))
                    .collect();
                each.map(|each| {
                    each.iter().sum::<f64>() / rate(u64::try_from(each.len()).unwrap_or(1), 1.0)
                })
            };
            Some(Summary {
                workload: workload.to_owned(),
                contestant: label,
                role: contestant.role(),
                baseline: contestant.baseline().map(Contestant::label),
                runs: runs.len(),
                events_per_second: Spread::of(runs.iter().map(|m| m.events_per_second)),
                median_steady_events_per_second: Spread::median_of(
                    runs.iter().filter_map(|m| m.steady_events_per_second),
                ),
                median_seconds: Spread::of(runs.iter().map(|m| m.observed.seconds)).median,
                median_first_record_seconds: Spread::median_of(
                    runs.iter().filter_map(|m| m.observed.first_record_seconds),
                ),
                median_confirmed_seconds: Spread::median_of(
                    runs.iter().filter_map(|m| m.observed.confirmed_seconds),
                ),
                contestant_cpu_seconds_per_million: per_million(|o| o.contestant_cpu_seconds),
                postgres_cpu_seconds_per_million: per_million(|o| o.postgres_cpu_seconds),
                broker_cpu_seconds_per_million: per_million(|o| o.broker_cpu_seconds),
                peak_rss_kib: runs.iter().filter_map(|m| m.observed.peak_rss_kib).max(),
                steady_rss_kib: runs.iter().filter_map(|m| m.observed.steady_rss_kib).max(),
                latency: {
                    let mut latencies: Vec<Latency> =
                        runs.iter().filter_map(|m| m.observed.latency).collect();
                    latencies.sort_by(|a, b| a.p99_ms.total_cmp(&b.p99_ms));
                    latencies.get(latencies.len() / 2).copied()
                },
            })
        })
        .collect()
}

/// sluice over the peer, over the ceiling of the same transport, and over the broker ceiling;
/// a variant of sluice also over sluice itself.
pub(crate) fn ratios(summary: &[Summary]) -> Vec<Ratio> {
    let mut ratios = Vec::new();
    for ours in summary.iter().filter(|s| s.role == "contestant") {
        let transport = ours.contestant.rsplit('/').next().unwrap_or_default();
        for other in summary.iter().filter(|s| s.workload == ours.workload) {
            // A ceiling over the same transport, and the fastest of its family over any (the
            // box's true ceiling, whichever transport reaches it).
            let family = other.contestant.split('/').next().unwrap_or_default();
            let fastest_of_family = summary
                .iter()
                .filter(|s| {
                    s.workload == ours.workload && s.contestant.split('/').next() == Some(family)
                })
                .all(|s| s.events_per_second.median <= other.events_per_second.median);
            let compared = other.role == "peer"
                || ours.baseline.as_ref() == Some(&other.contestant)
                || (other.role == "ceiling"
                    && (!other.contestant.contains('/')
                        || other.contestant.ends_with(transport)
                        || fastest_of_family));
            if compared && other.events_per_second.median > 0.0 {
                ratios.push(Ratio {
                    workload: ours.workload.clone(),
                    numerator: ours.contestant.clone(),
                    denominator: other.contestant.clone(),
                    value: ours.events_per_second.median / other.events_per_second.median,
                });
            }
        }
    }
    ratios
}

/// The summary of one workload as a markdown table, with its ratios below.
pub(crate) fn markdown(title: &str, summary: &[Summary], ratios: &[Ratio]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "### {title}\n");
    out.push_str(
        "| contestant | events/s, median | min | max | events/s after the first | s to all acked | s to slot confirmed | CPU s / 1M events: contestant | PostgreSQL | broker | peak RSS MiB | steady RSS MiB |\n",
    );
    out.push_str(
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
    );
    for s in summary {
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {:.2} | {} | {} | {} | {} | {} | {} |",
            s.contestant,
            thousands(s.events_per_second.median),
            thousands(s.events_per_second.min),
            thousands(s.events_per_second.max),
            s.median_steady_events_per_second
                .map_or_else(dash, thousands),
            s.median_seconds,
            s.median_confirmed_seconds
                .map_or_else(dash, |v| format!("{v:.2}")),
            s.contestant_cpu_seconds_per_million
                .map_or_else(dash, |v| format!("{v:.2}")),
            s.postgres_cpu_seconds_per_million
                .map_or_else(dash, |v| format!("{v:.2}")),
            s.broker_cpu_seconds_per_million
                .map_or_else(dash, |v| format!("{v:.2}")),
            s.peak_rss_kib.map_or_else(dash, mib),
            s.steady_rss_kib.map_or_else(dash, mib),
        );
    }
    let latencies: Vec<(&Summary, Latency)> = summary
        .iter()
        .filter_map(|s| s.latency.map(|l| (s, l)))
        .collect();
    if !latencies.is_empty() {
        out.push_str(
            "\n| contestant | tx/s asked | tx/s written | latency ms: p50 | p99 | p99.9 | max | commit to sluice: p50 | p99 | sluice to broker: p50 | p99 |\n\
             | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n",
        );
        for (s, l) in latencies {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} | {:.1} |",
                s.contestant,
                thousands(rate(l.asked_per_second, 1.0)),
                thousands(l.written_per_second),
                l.p50_ms,
                l.p99_ms,
                l.p999_ms,
                l.max_ms,
                l.to_sluice_p50_ms,
                l.to_sluice_p99_ms,
                l.to_broker_p50_ms,
                l.to_broker_p99_ms
            );
        }
    }
    if !ratios.is_empty() {
        let listed: Vec<String> = ratios
            .iter()
            .map(|r| format!("{} / {} **{:.2}**", r.numerator, r.denominator, r.value))
            .collect();
        let _ = writeln!(out, "\nMedian events/s ratios: {}.", listed.join("; "));
    }
    out
}

fn mib(kib: u64) -> String {
    format!("{:.1}", rate(kib, 1024.0))
}

fn dash() -> String {
    "-".to_owned()
}

/// `1234567.8` as `1,234,568`.
pub(crate) fn thousands(value: f64) -> String {
    let digits = format!("{:.0}", value.abs());
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(digit);
    }
    if value < 0.0 && digits != "0" {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{Summary, ratios, thousands};
    use crate::stats::Spread;

    fn summary(contestant: &str, role: &'static str, median: f64) -> Summary {
        Summary {
            workload: "drain".to_owned(),
            contestant: contestant.to_owned(),
            role,
            baseline: None,
            runs: 1,
            events_per_second: Spread::of([median]),
            median_steady_events_per_second: None,
            median_seconds: 1.0,
            median_first_record_seconds: None,
            median_confirmed_seconds: None,
            contestant_cpu_seconds_per_million: None,
            postgres_cpu_seconds_per_million: None,
            broker_cpu_seconds_per_million: None,
            peak_rss_kib: None,
            steady_rss_kib: None,
            latency: None,
        }
    }

    #[test]
    fn sluice_is_compared_with_its_transport_the_fastest_ceiling_and_its_baseline() {
        let incremental = Summary {
            baseline: Some("sluice/tcp".to_owned()),
            ..summary("sluice-incremental/tcp", "contestant", 250.0)
        };
        let all = [
            summary("sluice/tcp", "contestant", 300.0),
            summary("sluice/unix", "contestant", 200.0),
            incremental,
            summary("debezium/tcp", "peer", 30.0),
            summary("pg_recvlogical/tcp", "ceiling", 250.0),
            summary("pg_recvlogical/unix", "ceiling", 400.0),
            summary("kafka-producer", "ceiling", 600.0),
        ];
        let pairs: Vec<(String, String)> = ratios(&all)
            .into_iter()
            .map(|r| (r.numerator, r.denominator))
            .collect();
        let pair = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        assert_eq!(
            pairs,
            [
                pair("sluice/tcp", "debezium/tcp"),
                pair("sluice/tcp", "pg_recvlogical/tcp"),
                pair("sluice/tcp", "pg_recvlogical/unix"),
                pair("sluice/tcp", "kafka-producer"),
                pair("sluice/unix", "debezium/tcp"),
                pair("sluice/unix", "pg_recvlogical/unix"),
                pair("sluice/unix", "kafka-producer"),
                pair("sluice-incremental/tcp", "sluice/tcp"),
                pair("sluice-incremental/tcp", "debezium/tcp"),
                pair("sluice-incremental/tcp", "pg_recvlogical/tcp"),
                pair("sluice-incremental/tcp", "pg_recvlogical/unix"),
                pair("sluice-incremental/tcp", "kafka-producer"),
            ]
        );
    }

    #[test]
    fn groups_digits() {
        assert_eq!(thousands(0.4), "0");
        assert_eq!(thousands(999.0), "999");
        assert_eq!(thousands(1000.0), "1,000");
        assert_eq!(thousands(1_234_567.8), "1,234,568");
        assert_eq!(thousands(-12_345.0), "-12,345");
    }
}
