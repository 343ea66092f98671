//! A service's own view of its latency: one Prometheus histogram scraped from its `/metrics`
//! (plain HTTP/1.0 over a TCP stream, no HTTP client crate), the difference between two
//! scrapes (what happened in between), and quantiles estimated the way Prometheus'
//! `histogram_quantile` does: linear interpolation inside the bucket the rank falls in.

use std::time::Duration;

use anyhow::{Context, bail};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One histogram's cumulative buckets, sum and count.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Histogram {
    /// `(upper bound, cumulative count)`, sorted by bound; the last bound is `+Inf`.
    pub buckets: Vec<(f64, f64)>,
    /// Sum of the observations (seconds for a `_seconds` histogram).
    pub sum: f64,
    /// Number of observations.
    pub count: f64,
}

/// Fetches `{base}/metrics` (`base` is `http://HOST:PORT`) and returns the body.
pub async fn scrape(base: &str) -> anyhow::Result<String> {
    let authority = base
        .strip_prefix("http://")
        .with_context(|| format!("{base}: only http://HOST:PORT is supported"))?
        .trim_end_matches('/');
    let mut stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(authority))
        .await
        .with_context(|| format!("connecting to {authority}: timed out"))?
        .with_context(|| format!("connecting to {authority}"))?;
    // HTTP/1.0: the server closes the connection after the body and never chunks it.
    let request = format!("GET /metrics HTTP/1.0\r\nHost: {authority}\r\n\r\n");
    stream.write_all(request.as_bytes()).await?;
    let mut response = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut response))
        .await
        .context("reading /metrics: timed out")??;
    let response = String::from_utf8(response).context("/metrics is not UTF-8")?;
    let (head, body) = response
        .split_once("\r\n\r\n")
        .context("/metrics: not an HTTP response")?;
    let status = head.lines().next().unwrap_or_default();
    if status.split_whitespace().nth(1) != Some("200") {
        bail!("GET {base}/metrics answered `{status}`");
    }
    Ok(body.to_owned())
}

/// The histogram `name` in Prometheus text `exposition`; `None` when it is not there (a
/// histogram registered on first use has no lines before its first observation).
pub fn parse(exposition: &str, name: &str) -> anyhow::Result<Option<Histogram>> {
    let bucket = format!("{name}_bucket{{");
    let (sum, count) = (format!("{name}_sum"), format!("{name}_count"));
    let mut histogram = Histogram::default();
    let mut seen = false;
    for line in exposition.lines() {
        if let Some(rest) = line.strip_prefix(&bucket) {
            let (labels, value) = rest
                .split_once('}')
                .with_context(|| format!("unterminated labels: {line}"))?;
            let le = labels
                .split(',')
                .find_map(|label| label.trim().strip_prefix("le=\""))
                .and_then(|v| v.strip_suffix('"'))
                .with_context(|| format!("a bucket without `le`: {line}"))?;
            histogram.buckets.push((number(le)?, number(value)?));
            seen = true;
        } else if let Some(value) = sample(line, &sum) {
            histogram.sum = number(value)?;
            seen = true;
        } else if let Some(value) = sample(line, &count) {
            histogram.count = number(value)?;
            seen = true;
        }
    }
    if !seen {
        return Ok(None);
    }
    histogram.buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    if histogram
        .buckets
        .last()
        .is_none_or(|(le, _)| *le != f64::INFINITY)
    {
        bail!("{name} has no +Inf bucket");
    }
    Ok(Some(histogram))
}

/// The value of an unlabelled sample `name VALUE` (a timestamp after it is ignored).
fn sample<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(name)?;
    let rest = rest.strip_prefix(' ')?;
    rest.split_whitespace().next()
}

fn number(text: &str) -> anyhow::Result<f64> {
    match text.trim() {
        "+Inf" => Ok(f64::INFINITY),
        "-Inf" => Ok(f64::NEG_INFINITY),
        other => other
            .parse()
            .with_context(|| format!("`{other}` is not a number")),
    }
}

impl Histogram {
    /// What was observed between `earlier` and `self` (counters only grow while the process
    /// lives; `None` earlier means nothing was observed before).
    pub fn since(&self, earlier: Option<&Histogram>) -> anyhow::Result<Histogram> {
        let Some(earlier) = earlier else {
            return Ok(self.clone());
        };
        let mut buckets = Vec::with_capacity(self.buckets.len());
        for &(le, count) in &self.buckets {
            let before = earlier
                .buckets
                .iter()
                .find(|(b, _)| *b == le)
                .map_or(0.0, |(_, c)| *c);
            if count < before {
                bail!("the histogram went backwards: did the service restart between scrapes?");
            }
            buckets.push((le, count - before));
        }
        Ok(Histogram {
            buckets,
            sum: self.sum - earlier.sum,
            count: self.count - earlier.count,
        })
    }

    /// The `q` quantile (0..=1) in the histogram's unit, as Prometheus' `histogram_quantile`
    /// estimates it: linear interpolation inside the bucket holding rank `q × count`, from 0
    /// in the first bucket; a rank in the `+Inf` bucket gives the highest finite bound. `None`
    /// without observations.
    pub fn quantile(&self, q: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        if total <= 0.0 || !(0.0..=1.0).contains(&q) {
            return None;
        }
        let rank = q * total;
        let finite = &self.buckets[..self.buckets.len() - 1];
        let Some(i) = finite
            .iter()
            .position(|&(_, cumulative)| cumulative >= rank)
        else {
            return finite.last().map(|&(le, _)| le);
        };
        let (end, cumulative) = finite[i];
        let (start, below) = match i {
            0 => (0.0_f64.min(end), 0.0),
            _ => finite[i - 1],
        };
        let in_bucket = cumulative - below;
        if in_bucket <= 0.0 {
            return Some(end);
        }
        Some(start + (end - start) * (rank - below) / in_bucket)
    }

    /// The mean observation (`sum / count`); `None` without observations.
    pub fn mean(&self) -> Option<f64> {
        (self.count > 0.0).then(|| self.sum / self.count)
    }

    /// The share (0..=1) of observations at or below `bound`, exact when `bound` is one of
    /// the bucket bounds; `None` when it is not or there are no observations.
    pub fn share_within(&self, bound: f64) -> Option<f64> {
        let total = self.buckets.last()?.1;
        let (_, cumulative) = self.buckets.iter().find(|(le, _)| *le == bound)?;
        (total > 0.0).then(|| cumulative / total)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// fraud-check's buckets (seconds) as the prometheus crate renders them.
    fn exposition(counts: [u64; 10], sum: f64) -> String {
        let bounds = [
            "0.0002", "0.0005", "0.001", "0.002", "0.005", "0.01", "0.025", "0.05", "0.1", "+Inf",
        ];
        let mut text = String::from(
            "# HELP pos_fraud_assess_duration_seconds Time to assess a transaction inside fraud-check\n\
             # TYPE pos_fraud_assess_duration_seconds histogram\n",
        );
        for (le, count) in bounds.iter().zip(counts) {
            text.push_str(&format!(
                "pos_fraud_assess_duration_seconds_bucket{{le=\"{le}\"}} {count}\n"
            ));
        }
        text.push_str(&format!("pos_fraud_assess_duration_seconds_sum {sum}\n"));
        text.push_str(&format!(
            "pos_fraud_assess_duration_seconds_count {}\n",
            counts[9]
        ));
        text.push_str("# TYPE pos_fraud_assessments_total counter\n");
        text.push_str("pos_fraud_assessments_total{decision=\"FRAUD_DECISION_APPROVE\"} 990\n");
        text
    }

    const NAME: &str = "pos_fraud_assess_duration_seconds";

    fn close(actual: Option<f64>, expected: f64) {
        let actual = actual.unwrap();
        assert!(
            (actual - expected).abs() < 1e-12,
            "{actual} is not {expected}"
        );
    }

    #[test]
    fn quantiles_interpolate_inside_the_bucket_as_prometheus_does() {
        // 1000 observations: 100 up to 0.2 ms, 700 more up to 0.5 ms, 180 more up to 1 ms,
        // 15 more up to 2 ms, 5 more up to 5 ms.
        let text = exposition(
            [100, 800, 980, 995, 1000, 1000, 1000, 1000, 1000, 1000],
            0.4,
        );
        let h = parse(&text, NAME).unwrap().unwrap();
        assert_eq!(h.buckets.len(), 10);
        assert_eq!(h.count, 1000.0);
        // Rank 500 is the 400th of 700 in (0.2 ms, 0.5 ms]: 0.2 + 0.3 × 400/700 ms.
        close(h.quantile(0.5), 0.0002 + 0.0003 * 400.0 / 700.0);
        // Rank 990 is the 10th of 15 in (1 ms, 2 ms].
        close(h.quantile(0.99), 0.001 + 0.001 * 10.0 / 15.0);
        // Rank 50 in the first bucket interpolates from 0.
        close(h.quantile(0.05), 0.0001);
        close(h.mean(), 0.0004);
        close(h.share_within(0.002), 0.995);
        assert_eq!(h.share_within(0.003), None);
    }

    #[test]
    fn a_rank_in_the_inf_bucket_gives_the_highest_finite_bound() {
        let text = exposition([0, 0, 0, 0, 0, 0, 0, 0, 90, 100], 9.0);
        let h = parse(&text, NAME).unwrap().unwrap();
        close(h.quantile(0.99), 0.1);
    }

    #[test]
    fn the_difference_of_two_scrapes_is_what_happened_in_between() {
        let before = parse(
            &exposition([10, 10, 10, 10, 10, 10, 10, 10, 10, 10], 0.05),
            NAME,
        )
        .unwrap();
        let after = parse(
            &exposition([10, 110, 110, 110, 110, 110, 110, 110, 110, 110], 0.08),
            NAME,
        )
        .unwrap()
        .unwrap();
        let run = after.since(before.as_ref()).unwrap();
        assert_eq!(run.count, 100.0);
        // Every observation of the run is in (0.2 ms, 0.5 ms]; the warm-up's are gone.
        close(run.quantile(0.5), 0.00035);
        close(run.mean(), 0.0003);
        assert!(before.unwrap().since(Some(&after)).is_err());
    }

    #[test]
    fn a_histogram_not_yet_observed_is_absent_and_one_without_inf_is_refused() {
        assert_eq!(parse("# nothing yet\n", NAME).unwrap(), None);
        let empty = parse(&exposition([0; 10], 0.0), NAME).unwrap().unwrap();
        assert_eq!(empty.quantile(0.5), None);
        assert_eq!(empty.mean(), None);
        let truncated = "pos_fraud_assess_duration_seconds_bucket{le=\"0.001\"} 3\n";
        assert!(parse(truncated, NAME).is_err());
    }
}
