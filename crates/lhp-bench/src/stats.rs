//! Repetition, summaries and result rows.

use std::time::Duration;

use serde::Serialize;

/// The median, minimum and maximum of repeated measurements.
#[derive(Clone, Copy, Debug, Serialize)]
pub struct Stat {
    /// The median (the mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Stat {
    /// Summarises `values` (at least one).
    pub fn of(values: &[f64]) -> Stat {
        let mut v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
        if v.is_empty() {
            return Stat {
                median: f64::NAN,
                min: f64::NAN,
                max: f64::NAN,
            };
        }
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        Stat {
            median,
            min: v[0],
            max: v[n - 1],
        }
    }
}

/// The `p`-th percentile (0..=100) of latencies, nearest rank.
pub fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
    let i = rank.clamp(1, sorted.len()) - 1;
    sorted[i].as_secs_f64() * 1e6
}

/// Runs `f` `runs` times and summarises what it returns.
pub fn repeat(runs: usize, mut f: impl FnMut() -> f64) -> (Stat, Vec<f64>) {
    let values: Vec<f64> = (0..runs).map(|_| f()).collect();
    (Stat::of(&values), values)
}

/// One line of the table.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    /// The workload: "small frames, codec only", "1 MiB bodies, loopback", ...
    pub workload: String,
    /// What was measured: "raw TCP (blocking)", "lhp-blocking", ...
    pub subject: String,
    /// The unit of `stat`.
    pub unit: &'static str,
    /// Whether bigger is better (throughput) or smaller (latency).
    pub higher_is_better: bool,
    /// The summary over the runs.
    pub stat: Stat,
    /// Every run's value.
    pub runs: Vec<f64>,
    /// The subject this row is compared with, and the ratio of medians (this / that).
    pub ratio: Option<(String, f64)>,
    /// Why a row has no measurement.
    pub not_measured: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_median_min_max() {
        let s = Stat::of(&[5.0, 1.0, 3.0]);
        assert_eq!((s.median, s.min, s.max), (3.0, 1.0, 5.0));
        let s = Stat::of(&[4.0, 1.0, 3.0, 2.0]);
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
        assert!(Stat::of(&[]).median.is_nan());
        assert_eq!(Stat::of(&[f64::NAN, 2.0]).median, 2.0);
    }

    #[test]
    fn percentile_is_nearest_rank_in_microseconds() {
        let lat: Vec<Duration> = (1..=100).map(Duration::from_micros).collect();
        assert_eq!(percentile(&lat, 50.0), 50.0);
        assert_eq!(percentile(&lat, 99.0), 99.0);
        assert_eq!(percentile(&lat, 100.0), 100.0);
        assert!(percentile(&[], 50.0).is_nan());
    }
}
