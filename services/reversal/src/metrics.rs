//! Prometheus metrics of the reversal service (`pos_reversal_*`).

use std::sync::LazyLock;

use prometheus::{HistogramVec, IntCounterVec, register_histogram_vec, register_int_counter_vec};

/// Reversals by initiator and outcome.
pub static REVERSALS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_reversal_reversals_total",
        "Reversals handled, by initiator (terminal, host) and outcome",
        &["initiator", "outcome"]
    )
    .expect("metric registers once")
});

/// Voids and refunds by kind and response code.
pub static STEPS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_reversal_steps_total",
        "Voids and refunds answered, by kind and response code",
        &["kind", "code"]
    )
    .expect("metric registers once")
});

/// Issuer calls by operation and outcome, with their latency.
pub static ISSUER_CALLS: LazyLock<HistogramVec> = LazyLock::new(|| {
    register_histogram_vec!(
        "pos_reversal_issuer_call_seconds",
        "Issuer calls of the reversal service, by operation and outcome",
        &["operation", "outcome"],
        vec![
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0
        ]
    )
    .expect("metric registers once")
});

/// Host-side undo of issuer outcomes nobody recorded (91 declines, unpublished decisions).
pub static HOST_UNDO: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_reversal_host_undo_total",
        "Issuer operations of unknown outcome undone by the host, by cause and result",
        &["cause", "result"]
    )
    .expect("metric registers once")
});
