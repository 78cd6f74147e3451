//! Rates, and the medians and spreads of repeated runs.

use serde::Serialize;

/// `count / seconds`; counts stay far below 2^53, where the conversion to f64 is exact.
#[allow(clippy::as_conversions, clippy::cast_precision_loss)]
pub(crate) fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 {
        count as f64 / seconds
    } else {
        0.0
    }
}

/// The median, lowest and highest of a set of runs' figures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub(crate) struct Spread {
    pub median: f64,
    pub min: f64,
    pub max: f64,
}

impl Spread {
    /// Of `values` (the upper middle one for an even count); all zero when there are none.
    pub(crate) fn of(values: impl IntoIterator<Item = f64>) -> Spread {
        let mut values: Vec<f64> = values.into_iter().collect();
        values.sort_by(f64::total_cmp);
        Spread {
            median: values.get(values.len() / 2).copied().unwrap_or(0.0),
            min: values.first().copied().unwrap_or(0.0),
            max: values.last().copied().unwrap_or(0.0),
        }
    }

    /// The median of `values`, None when there are none.
    pub(crate) fn median_of(values: impl IntoIterator<Item = f64>) -> Option<f64> {
        let values: Vec<f64> = values.into_iter().collect();
        (!values.is_empty()).then(|| Spread::of(values).median)
    }
}

#[cfg(test)]
mod tests {
    use super::Spread;

    #[test]
    fn median_min_max() {
        let spread = Spread::of([3.0, 1.0, 2.0]);
        assert_eq!((spread.median, spread.min, spread.max), (2.0, 1.0, 3.0));
        assert_eq!(Spread::of([]), Spread::default());
        assert_eq!(Spread::median_of([]), None);
        assert_eq!(Spread::median_of([4.0, 1.0]), Some(4.0));
    }
}
