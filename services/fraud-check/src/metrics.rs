//! The service's metrics (`pos_fraud_`), in the default registry `pos_telemetry::metrics`
//! serves.

use std::sync::LazyLock;
use std::time::Duration;

use prometheus::{
    Histogram, IntCounter, IntCounterVec, register_histogram, register_int_counter,
    register_int_counter_vec,
};

use crate::assess::Assessment;

/// Assessments by decision.
pub static DECISIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_fraud_assessments_total",
        "Fraud assessments by decision",
        &["decision"]
    )
    .expect("metric registers once")
});

/// Rule hits by reason code.
pub static HITS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_fraud_rule_hits_total",
        "Fraud rule hits by reason code",
        &["code"]
    )
    .expect("metric registers once")
});

/// Time to assess inside the service (signals and rules, without the network).
pub static DURATION: LazyLock<Histogram> = LazyLock::new(|| {
    register_histogram!(
        "pos_fraud_assess_duration_seconds",
        "Time to assess a transaction inside fraud-check",
        vec![
            0.0001, 0.0002, 0.0003, 0.0004, 0.0005, 0.00075, 0.001, 0.00125, 0.0015, 0.00175,
            0.002, 0.003, 0.005, 0.01, 0.025, 0.05, 0.1
        ]
    )
    .expect("metric registers once")
});

/// Alerts that could not be published.
pub static ALERTS_LOST: LazyLock<IntCounter> = LazyLock::new(|| {
    register_int_counter!(
        "pos_fraud_alerts_unpublished_total",
        "Fraud alerts the broker did not accept"
    )
    .expect("metric registers once")
});

/// Counts one assessment.
pub fn record(assessment: &Assessment, took: Duration) {
    DURATION.observe(took.as_secs_f64());
    DECISIONS
        .with_label_values(&[assessment.decision.as_str_name()])
        .inc();
    for reason in &assessment.reasons {
        HITS.with_label_values(&[reason.code.as_str()]).inc();
    }
}
