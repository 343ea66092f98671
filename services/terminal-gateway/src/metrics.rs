//! The gateway's metrics, one prefix (`pos_gateway_`), registered in the default registry that
//! `pos_telemetry::metrics` serves.

use std::sync::LazyLock;

use prometheus::{IntCounterVec, IntGauge, register_int_counter_vec, register_int_gauge};

/// Sign-ins by outcome (`ok`, or the refusal code).
pub static SIGN_INS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_gateway_sign_ins_total",
        "Terminal sign-ins by outcome",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Messages refused for a bad MAC.
pub static MAC_FAILURES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_gateway_mac_failures_total",
        "Terminal messages whose MAC did not verify",
        &["message"]
    )
    .expect("metric registers once")
});

/// Terminal messages by type and response code.
pub static MESSAGES: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_gateway_terminal_messages_total",
        "Terminal messages by type and response code",
        &["message", "code"]
    )
    .expect("metric registers once")
});

/// Activations by outcome.
pub static ACTIVATIONS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_gateway_activations_total",
        "Terminal activations by outcome",
        &["outcome"]
    )
    .expect("metric registers once")
});

/// Management calls by method and gRPC status.
pub static MANAGEMENT_CALLS: LazyLock<IntCounterVec> = LazyLock::new(|| {
    register_int_counter_vec!(
        "pos_gateway_management_calls_total",
        "Operator API calls by method and status",
        &["method", "status"]
    )
    .expect("metric registers once")
});

/// Open terminal connections on this instance.
pub static CONNECTIONS: LazyLock<IntGauge> = LazyLock::new(|| {
    register_int_gauge!(
        "pos_gateway_connections",
        "Open terminal Connect streams on this instance"
    )
    .expect("metric registers once")
});
