//! Observability every process sets up the same way (DESIGN.md §6).
//!
//! - [`init`] once in `main`: a `tracing` subscriber (JSON or pretty, filtered by `RUST_LOG`),
//!   an OpenTelemetry tracer (exported over OTLP/gRPC when `OTEL_EXPORTER_OTLP_ENDPOINT` is set)
//!   and the W3C trace-context propagator used by gRPC metadata and Kafka headers.
//! - [`metrics`]: Prometheus text exposition on an HTTP `/metrics` port; services register their
//!   metrics in the default registry as statics with their own prefix.
//! - [`grpc`]: the grpc.health.v1 service and server reflection every service mounts, and trace
//!   context in gRPC metadata.

pub mod grpc;
pub mod metrics;
mod tracing_setup;

pub use tracing_setup::{LogFormat, Telemetry, TelemetryConfig, init};

/// Result alias of this crate.
pub type Result<T, E = TelemetryError> = std::result::Result<T, E>;

/// What can go wrong setting up telemetry.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    /// A setting has a value that cannot be used.
    #[error("invalid telemetry setting {name}: {reason}")]
    Config { name: &'static str, reason: String },
    /// The OTLP exporter could not be built.
    #[error("cannot build the OTLP exporter: {0}")]
    Otlp(String),
    /// A global subscriber was already installed in this process.
    #[error("telemetry is already initialised in this process: {0}")]
    AlreadyInitialised(String),
    /// Binding or serving the metrics port failed.
    #[error("metrics endpoint: {0}")]
    Metrics(#[from] std::io::Error),
    /// Building the reflection service failed.
    #[error("grpc reflection: {0}")]
    Reflection(String),
}

/// Spreads `shutdown` to several servers and tasks: the receiver turns `true` once it
/// completed; wait for that with [`stopped`].
pub fn shutdown_channel(
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> tokio::sync::watch::Receiver<bool> {
    let (tx, rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = tx.send(true);
    });
    rx
}

/// Completes once the [`shutdown_channel`] fired (or its sender is gone).
pub async fn stopped(mut rx: tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

/// Completes on Ctrl-C (SIGINT) or SIGTERM: the shutdown signal every service passes to its
/// servers so that they drain in-flight work before the process exits.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}
