//! The issuer's metrics, one prefix (`pos_issuer_`), registered in the default registry that
//! `pos_telemetry::metrics` serves.

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

/// Authorize answers by operation and response code.
pub static AUTHORIZATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_issuer_authorizations_total",
        "Authorize answers by operation and response code",
        &["operation", "code"]
    )
    .expect("metric registers once")
});

/// Reverse answers by outcome.
pub static REVERSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_issuer_reversals_total",
        "Reverse answers by outcome (reversed, already_reversed, original_not_found, original_declined, refused)",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Refund answers by response code.
pub static REFUNDS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_issuer_refunds_total",
        "Refund answers by response code",
        &["code"]
    )
    .expect("metric registers once")
});

/// Requests answered from their record (retries and duplicate deliveries).
pub static REPLAYS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_issuer_replays_total",
        "Requests answered with the replay of their first answer, by kind",
        &["kind"]
    )
    .expect("metric registers once")
});

/// PIN verifications by result.
pub static PIN_CHECKS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_issuer_pin_checks_total",
        "PINs looked at, by result (ok, wrong, missing, malformed)",
        &["result"]
    )
    .expect("metric registers once")
});

/// Time to answer a gRPC call, by method and gRPC status.
pub static LATENCY: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pos_issuer_request_duration_seconds",
        "Time to answer an Issuer call, by method and gRPC status",
        &["method", "status"],
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .expect("metric registers once")
});
