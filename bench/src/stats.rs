//! Client-side latency: exact percentiles of the measured round trips (nearest rank), and the
//! number formats of the report.

use std::time::Duration;

/// Round-trip latencies of one kind of request, sorted.
#[derive(Debug, Clone, Default)]
pub struct Latencies(Vec<Duration>);

impl Latencies {
    /// Sorts `samples`.
    pub fn new(mut samples: Vec<Duration>) -> Self {
        samples.sort_unstable();
        Self(samples)
    }

    /// How many there are.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The `q` percentile (0..=1) by nearest rank: the smallest sample with at least `q` of
    /// the samples at or below it; `None` without samples.
    pub fn percentile(&self, q: f64) -> Option<Duration> {
        let n = self.0.len();
        if n == 0 {
            return None;
        }
        // The cast is exact for any realistic run (< 2^52 samples).
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let rank = (q.clamp(0.0, 1.0) * n as f64).ceil() as usize;
        self.0.get(rank.clamp(1, n) - 1).copied()
    }

    /// `p50 0.61 ms p90 1.2 ms p99 1.9 ms max 7.4 ms`, or `no samples`.
    pub fn summary(&self) -> String {
        let (Some(p50), Some(p90), Some(p99), Some(max)) = (
            self.percentile(0.5),
            self.percentile(0.9),
            self.percentile(0.99),
            self.0.last(),
        ) else {
            return "no samples".to_owned();
        };
        format!(
            "p50 {} p90 {} p99 {} max {}",
            ms(p50.as_secs_f64()),
            ms(p90.as_secs_f64()),
            ms(p99.as_secs_f64()),
            ms(max.as_secs_f64())
        )
    }
}

/// Seconds as milliseconds with about three significant digits: `0.612 ms`, `1.94 ms`,
/// `12.3 ms`.
pub fn ms(seconds: f64) -> String {
    let millis = seconds * 1000.0;
    match millis {
        m if m < 1.0 => format!("{m:.3} ms"),
        m if m < 10.0 => format!("{m:.2} ms"),
        m if m < 100.0 => format!("{m:.1} ms"),
        m => format!("{m:.0} ms"),
    }
}

/// A whole number with thousands separators: `9,512`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        let samples = (1..=100).map(Duration::from_millis).collect();
        let l = Latencies::new(samples);
        assert_eq!(l.percentile(0.5), Some(Duration::from_millis(50)));
        assert_eq!(l.percentile(0.99), Some(Duration::from_millis(99)));
        assert_eq!(l.percentile(1.0), Some(Duration::from_millis(100)));
        assert_eq!(l.percentile(0.0), Some(Duration::from_millis(1)));
        assert_eq!(Latencies::default().percentile(0.5), None);
        assert_eq!(Latencies::default().summary(), "no samples");
    }

    #[test]
    fn numbers_read_as_in_the_report() {
        assert_eq!(thousands(9512), "9,512");
        assert_eq!(thousands(20_000_000), "20,000,000");
        assert_eq!(thousands(512), "512");
        assert_eq!(ms(0.000_612), "0.612 ms");
        assert_eq!(ms(0.001_94), "1.94 ms");
        assert_eq!(ms(0.0123), "12.3 ms");
    }
}
