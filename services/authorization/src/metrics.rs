//! The service's metrics, one prefix (`pos_authorization_`), registered in the default registry
//! that `pos_telemetry::metrics` serves.

use std::sync::LazyLock;

use prometheus::{
    HistogramVec, IntCounter, IntCounterVec, register_histogram_vec, register_int_counter,
    register_int_counter_vec,
};

/// Decisions by transaction type, response code and who declined ("none" when approved).
pub static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_authorization_decisions_total",
        "Authorization decisions by transaction type, response code and decline source",
        &["type", "code", "source"]
    )
    .expect("metric registers once")
});

/// Time from request to answer, by transaction type (replays included).
pub static DURATION: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pos_authorization_duration_seconds",
        "Time to answer an authorization request",
        &["type"],
        vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
        ]
    )
    .expect("metric registers once")
});

/// Issuer calls by outcome ("answered", "unavailable", "timeout").
pub static ISSUER_CALLS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pos_authorization_issuer_duration_seconds",
        "Issuer call latency by outcome",
        &["outcome"],
        vec![
            0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0
        ]
    )
    .expect("metric registers once")
});

/// Fraud-check outcomes by applied policy and decision.
pub static FRAUD: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_authorization_fraud_total",
        "Fraud assessments by applied policy and decision",
        &["policy", "decision"]
    )
    .expect("metric registers once")
});

/// Idempotency outcomes ("new", "replayed", "in_progress", "conflict", "taken_over").
pub static IDEMPOTENCY: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_authorization_idempotency_total",
        "Requests by what their idempotency key found",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Decisions whose event could not be published (answered "96").
pub static UNRECORDED: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "pos_authorization_unrecorded_total",
        "Decisions answered 96 because their event could not be published"
    )
    .expect("metric registers once")
});
