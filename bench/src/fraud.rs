//! The `FraudCheck.Assess` benchmark: chip purchases as authorization sends them, over many
//! concurrent tasks sharing one long-lived channel, with a warm-up that is not counted.
//!
//! The workload is ~95% clean purchases spread over enough cards, terminals and merchants to
//! stay under every velocity limit of the shipped rules (so they raise no alert), and ~5% that
//! hit a rule (the last four digits the cashier confirmed differ from the card read:
//! CARD_NUMBER_MISMATCH, declined, an alert published). Both kinds are reported separately, with
//! fraud-check's own histogram (`pos_fraud_assess_duration_seconds`) over the measured run.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use pos_domain::{Pan, TokenKey};
use pos_proto::v1 as pb;
use pos_proto::v1::fraud_check_client::FraudCheckClient;
use tonic::transport::Channel;

use crate::histogram::{self, Histogram};
use crate::stats::{Latencies, ms, thousands};

/// fraud-check's histogram of the time spent inside `Assess`.
pub const ASSESS_HISTOGRAM: &str = "pos_fraud_assess_duration_seconds";

/// The rule the ~5% of hits trip.
const HIT_RULE: &str = "CARD_NUMBER_MISMATCH";

/// One request in this many hits a rule.
const HIT_EVERY: u64 = 20;

/// What to run.
#[derive(Debug)]
pub struct Plan {
    /// fraud-check's gRPC address, `http://HOST:PORT`.
    pub url: String,
    /// fraud-check's metrics address, `http://HOST:PORT`; no in-service figures without it.
    pub metrics: Option<String>,
    /// Measured requests.
    pub requests: u64,
    /// Requests in flight at once.
    pub concurrency: usize,
    /// Requests before the measured run, not counted.
    pub warmup: u64,
    /// Requests per terminal over the whole run (the shipped rules alert from 61 in 10 min).
    pub per_terminal: u64,
    /// Requests per merchant over the whole run (the shipped rules alert from 1001 in an
    /// hour).
    pub per_merchant: u64,
}

/// The requests of one run: cards, terminals and merchants of this run only (a random tag in
/// their numbers), so that another run against the same Redis does not inherit its counters.
#[derive(Debug)]
struct Workload {
    tag: u32,
    tokens: TokenKey,
    terminals: u64,
    /// Terminals of one merchant (merchant `m` has terminals `m × k ..`).
    terminals_per_merchant: u64,
    merchants: u64,
}

/// Whether a request is meant to be clean or to hit the rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Clean,
    Hit,
}

impl Workload {
    /// `total` requests, round robin over terminals, with at most `per_terminal` on a
    /// terminal and `per_merchant` at a merchant.
    fn new(tokens: TokenKey, total: u64, per_terminal: u64, per_merchant: u64) -> Self {
        // Three decimal digits keep every identifier at its real length.
        let tag = u32::try_from(uuid::Uuid::new_v4().as_u128() % 1000).unwrap_or(0);
        let per_merchant = per_merchant.max(1);
        let per_terminal = per_terminal.clamp(1, per_merchant);
        let terminals = total.div_ceil(per_terminal).max(1);
        let terminals_per_merchant = per_merchant / per_terminal;
        Self {
            tag,
            tokens,
            terminals,
            terminals_per_merchant,
            merchants: terminals.div_ceil(terminals_per_merchant),
        }
    }

    fn kind(index: u64) -> Kind {
        if index % HIT_EVERY == HIT_EVERY / 2 {
            Kind::Hit
        } else {
            Kind::Clean
        }
    }

    /// Request `index` of the run: a fresh card (one purchase per card), the next terminal
    /// and its merchant, an amount between 10.00 and 499.99 yuan.
    fn request(&self, index: u64) -> anyhow::Result<(pb::AssessRequest, Kind)> {
        let payload = format!("621700{:03}{index:09}", self.tag);
        let check = pos_domain::pan::luhn::check_digit(&payload)
            .context("a card number of digits has a check digit")?;
        let pan = Pan::parse(&format!("{payload}{check}"))?;
        let terminal = index % self.terminals;
        let merchant = terminal / self.terminals_per_merchant;
        let kind = Self::kind(index);
        let last4 = pan.last4().to_owned();
        let displayed_last4 = match kind {
            Kind::Clean => last4.clone(),
            // The number on the card's face is not the one on its chip: a counterfeit.
            Kind::Hit => last4
                .chars()
                .map(|c| {
                    c.to_digit(10)
                        .and_then(|d| char::from_digit((d + 1) % 10, 10))
                        .unwrap_or('0')
                })
                .collect(),
        };
        let request = pb::AssessRequest {
            transaction_id: format!("bench-{}", uuid::Uuid::now_v7()),
            transaction_type: pb::TransactionType::Purchase as i32,
            card: Some(pb::MaskedCard {
                masked_pan: pan.masked().to_string(),
                card_token: pan.token(&self.tokens).to_string(),
                bin: pan.bin().to_owned(),
                last4,
            }),
            card_funding: pb::CardFundingType::Debit as i32,
            service_code: "220".to_owned(),
            entry_mode: pb::CardEntryMode::Chip as i32,
            emv: Some(pb::EmvFacts {
                present: true,
                cryptogram_present: true,
                cryptogram_information_data: "80".to_owned(),
                atc: Some(u32::try_from(index % 60_000).unwrap_or(0) + 1),
                tvr: "0000000000".to_owned(),
                missing_tags: Vec::new(),
                amount_consistent: true,
            }),
            expiry: "3012".to_owned(),
            track2_expiry: String::new(),
            displayed_last4,
            amount: Some(pb::Money {
                minor_units: i64::try_from(1_000 + index.wrapping_mul(7_919) % 48_999)
                    .unwrap_or(1_000),
                currency: "CNY".to_owned(),
            }),
            merchant_id: format!("BENCH{:03}{merchant:07}", self.tag),
            mcc: "5411".to_owned(),
            terminal_id: format!("{:03}{terminal:05}", self.tag),
            terminal_location: None,
            local_datetime: "2026-11-28T14:30:00".to_owned(),
            trading_hours: None,
            merchant_limit: None,
            pin_present: true,
        };
        Ok((request, kind))
    }
}

/// Whether the answer is the one the request was built for.
fn expected(kind: Kind, answer: &pb::AssessResponse) -> bool {
    match kind {
        Kind::Clean => {
            answer.decision == pb::FraudDecision::Approve as i32 && answer.reasons.is_empty()
        }
        Kind::Hit => answer.reasons.iter().any(|r| r.code == HIT_RULE),
    }
}

/// What one task saw.
#[derive(Debug, Default)]
struct Tally {
    clean: Vec<Duration>,
    hits: Vec<Duration>,
    failed: u64,
    first_error: Option<String>,
    unexpected: u64,
    first_unexpected: Option<String>,
}

impl Tally {
    fn merge(&mut self, other: Tally) {
        self.clean.extend(other.clean);
        self.hits.extend(other.hits);
        self.failed += other.failed;
        self.first_error = self.first_error.take().or(other.first_error);
        self.unexpected += other.unexpected;
        self.first_unexpected = self.first_unexpected.take().or(other.first_unexpected);
    }
}

/// Sends requests `next..end` (claimed one at a time from `next`) and times each round trip.
async fn worker(
    mut client: FraudCheckClient<Channel>,
    workload: Arc<Workload>,
    next: Arc<AtomicU64>,
    end: u64,
) -> anyhow::Result<Tally> {
    let mut tally = Tally::default();
    loop {
        let index = next.fetch_add(1, Ordering::Relaxed);
        if index >= end {
            return Ok(tally);
        }
        let (request, kind) = workload.request(index)?;
        let started = Instant::now();
        let answer = client.assess(request).await;
        let took = started.elapsed();
        match answer {
            Ok(answer) => {
                let answer = answer.into_inner();
                if !expected(kind, &answer) {
                    tally.unexpected += 1;
                    tally.first_unexpected.get_or_insert_with(|| {
                        format!("a {kind:?} request was answered {answer:?}")
                    });
                }
                match kind {
                    Kind::Clean => tally.clean.push(took),
                    Kind::Hit => tally.hits.push(took),
                }
            }
            Err(status) => {
                tally.failed += 1;
                tally
                    .first_error
                    .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
            }
        }
    }
}

/// Runs requests `start..end` over `concurrency` tasks; returns what they saw and how long
/// the whole took.
async fn phase(
    channel: &Channel,
    workload: &Arc<Workload>,
    concurrency: usize,
    start: u64,
    end: u64,
) -> anyhow::Result<(Tally, Duration)> {
    let next = Arc::new(AtomicU64::new(start));
    let started = Instant::now();
    let tasks: Vec<_> = (0..concurrency)
        .map(|_| {
            tokio::spawn(worker(
                FraudCheckClient::new(channel.clone()),
                Arc::clone(workload),
                Arc::clone(&next),
                end,
            ))
        })
        .collect();
    let mut tally = Tally::default();
    for task in tasks {
        tally.merge(task.await.context("a benchmark task panicked")??);
    }
    Ok((tally, started.elapsed()))
}

/// The in-service histogram now, or `None` when it has no observations yet.
async fn service_histogram(metrics: &str) -> anyhow::Result<Option<Histogram>> {
    let text = histogram::scrape(metrics).await?;
    histogram::parse(&text, ASSESS_HISTOGRAM)
}

/// Runs the benchmark with the platform's card token key and prints its report; fails when a
/// request failed.
pub async fn run(plan: Plan, tokens: TokenKey) -> anyhow::Result<()> {
    let workload = Arc::new(Workload::new(
        tokens,
        plan.warmup + plan.requests,
        plan.per_terminal,
        plan.per_merchant,
    ));
    let channel = Channel::from_shared(plan.url.clone())
        .with_context(|| format!("{}: not a URL", plan.url))?
        .connect_timeout(Duration::from_secs(5))
        .connect()
        .await
        .with_context(|| format!("connecting to fraud-check at {}", plan.url))?;

    let (warmup, _) = phase(&channel, &workload, plan.concurrency, 0, plan.warmup).await?;
    if let Some(error) = warmup.first_error {
        anyhow::bail!("the warm-up failed ({} requests): {error}", warmup.failed);
    }
    let before = match &plan.metrics {
        Some(metrics) => service_histogram(metrics).await?,
        None => None,
    };
    let end = plan.warmup + plan.requests;
    let (tally, took) = phase(&channel, &workload, plan.concurrency, plan.warmup, end).await?;
    let inside = match &plan.metrics {
        Some(metrics) => service_histogram(metrics)
            .await?
            .map(|after| after.since(before.as_ref()))
            .transpose()?,
        None => None,
    };
    report(&plan, &tally, took, inside.as_ref(), workload.as_ref());
    if let Some(error) = tally.first_error {
        anyhow::bail!(
            "{} of {} requests failed; the first: {error}",
            tally.failed,
            plan.requests
        );
    }
    Ok(())
}

fn report(
    plan: &Plan,
    tally: &Tally,
    took: Duration,
    inside: Option<&Histogram>,
    workload: &Workload,
) {
    let answered = u64::try_from(tally.clean.len() + tally.hits.len()).unwrap_or(u64::MAX);
    let rate = (answered as f64 / took.as_secs_f64().max(1e-9)).round() as u64;
    let clean = Latencies::new(tally.clean.clone());
    let hits = Latencies::new(tally.hits.clone());
    let all = Latencies::new(tally.clean.iter().chain(&tally.hits).copied().collect());
    println!(
        "fraud-check Assess: {} requests, concurrency {}, {} req/s ({} warm-up requests not counted; {} cards, {} terminals, {} merchants)",
        thousands(plan.requests),
        plan.concurrency,
        thousands(rate),
        thousands(plan.warmup),
        thousands(plan.warmup + plan.requests),
        thousands(workload.terminals),
        thousands(workload.merchants),
    );
    println!("client round trip       {}", all.summary());
    println!(
        "  clean ({:>6} approved, no reason)   {}",
        thousands(clean.len() as u64),
        clean.summary()
    );
    println!(
        "  hits  ({:>6} {HIT_RULE})   {}",
        thousands(hits.len() as u64),
        hits.summary()
    );
    match inside {
        Some(h) => {
            let figure = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), ms);
            println!(
                "inside the service (pos_fraud_assess_duration_seconds) p50 {} p99 {} mean {} ({} assessments)",
                figure(h.quantile(0.5)),
                figure(h.quantile(0.99)),
                figure(h.mean()),
                thousands(h.count.max(0.0).round() as u64),
            );
            let share = |bound: f64| {
                h.share_within(bound)
                    .map_or_else(|| "-".to_owned(), |s| format!("{:.2}%", s * 100.0))
            };
            println!(
                "  from the buckets: {} within 0.5 ms, {} within 1 ms, {} within 2 ms (quantiles are interpolated inside a bucket)",
                share(0.0005),
                share(0.001),
                share(0.002),
            );
        }
        None if plan.metrics.is_some() => {
            println!("inside the service: no observations of {ASSESS_HISTOGRAM}");
        }
        None => {}
    }
    if tally.unexpected > 0 {
        println!(
            "warning: {} answers were not what the workload expects (so clean and hits are mixed); the first: {}",
            tally.unexpected,
            tally.first_unexpected.as_deref().unwrap_or_default()
        );
    }
    if tally.failed > 0 {
        println!("failed: {} requests", thousands(tally.failed));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn workload() -> Workload {
        let key = TokenKey::from_bytes(&[7u8; 32]).unwrap();
        Workload::new(key, 20_500, 30, 100)
    }

    #[test]
    fn one_request_in_twenty_hits_the_rule_and_the_rest_look_clean() {
        let w = workload();
        let requests: Vec<_> = (0..1000).map(|i| w.request(i).unwrap()).collect();
        let hits: Vec<_> = requests.iter().filter(|(_, k)| *k == Kind::Hit).collect();
        assert_eq!(hits.len(), 50);
        for (request, kind) in &requests {
            let card = request.card.as_ref().unwrap();
            assert_eq!(request.merchant_id.len(), 15);
            assert_eq!(request.terminal_id.len(), 8);
            assert_eq!(card.masked_pan.len(), 14);
            assert_eq!(card.card_token.len(), 64);
            match kind {
                Kind::Clean => assert_eq!(request.displayed_last4, card.last4),
                Kind::Hit => {
                    assert_ne!(request.displayed_last4, card.last4);
                    assert_eq!(request.displayed_last4.len(), 4);
                }
            }
        }
    }

    #[test]
    fn cards_are_fresh_and_terminals_and_merchants_stay_under_the_velocity_limits() {
        let w = workload();
        assert_eq!(w.terminals, 684);
        assert_eq!(w.merchants, 228);
        let mut cards = std::collections::HashSet::new();
        let mut terminals = std::collections::HashMap::<String, u64>::new();
        let mut merchants = std::collections::HashMap::<String, u64>::new();
        for i in 0..20_500 {
            let (r, _) = w.request(i).unwrap();
            assert!(cards.insert(r.card.unwrap().card_token));
            *terminals.entry(r.terminal_id).or_default() += 1;
            *merchants.entry(r.merchant_id).or_default() += 1;
        }
        assert!(terminals.values().all(|n| *n <= 30));
        assert!(merchants.values().all(|n| *n <= 100));
    }
}
