//! The tracing subscriber and the OpenTelemetry tracer provider.

use std::env;
use std::io::IsTerminal;

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_otlp::WithExportConfig;
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::{Result, TelemetryError};

/// How log lines are written to stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line (for log shippers).
    Json,
    /// Human-readable lines (for a terminal).
    Pretty,
}

/// Telemetry settings of one process.
///
/// Order of precedence: defaults, then environment variables (`POS_LOG_FORMAT`, `RUST_LOG`,
/// `OTEL_EXPORTER_OTLP_ENDPOINT`), then whatever the service's own config sets on the struct.
#[derive(Debug, Clone)]
pub struct TelemetryConfig {
    /// `service.name` of traces and the target of log lines.
    pub service_name: String,
    /// Log line format; pretty on a terminal, JSON otherwise.
    pub log_format: LogFormat,
    /// `tracing` filter directives, e.g. `info,pos_events=debug`.
    pub log_filter: String,
    /// OTLP/gRPC collector endpoint (`http://127.0.0.1:4317`); no export when `None`.
    pub otlp_endpoint: Option<String>,
}

impl TelemetryConfig {
    /// Defaults for `service_name`, overridden by the environment.
    pub fn from_env(service_name: &str) -> Result<Self> {
        let log_format = match env::var("POS_LOG_FORMAT").ok().as_deref() {
            None | Some("") if std::io::stderr().is_terminal() => LogFormat::Pretty,
            None | Some("") | Some("json") => LogFormat::Json,
            Some("pretty") => LogFormat::Pretty,
            Some(other) => {
                return Err(TelemetryError::Config {
                    name: "POS_LOG_FORMAT",
                    reason: format!("`{other}` is neither `json` nor `pretty`"),
                });
            }
        };
        Ok(Self {
            service_name: service_name.to_owned(),
            log_format,
            log_filter: env::var("RUST_LOG").unwrap_or_else(|_| "info".to_owned()),
            otlp_endpoint: env::var("OTEL_EXPORTER_OTLP_ENDPOINT")
                .ok()
                .filter(|s| !s.is_empty()),
        })
    }
}

/// Keeps the tracer provider alive; call [`Telemetry::shutdown`] before exit to flush spans.
#[derive(Debug)]
pub struct Telemetry {
    provider: SdkTracerProvider,
}

impl Telemetry {
    /// Flushes and stops span export.
    pub fn shutdown(self) {
        if let Err(error) = self.provider.shutdown() {
            tracing::warn!(%error, "flushing traces at shutdown failed");
        }
    }
}

/// Installs the process-wide subscriber, tracer provider and propagator. Call once, early in
/// `main`, inside the tokio runtime.
pub fn init(config: &TelemetryConfig) -> Result<Telemetry> {
    let filter = EnvFilter::try_new(&config.log_filter).map_err(|e| TelemetryError::Config {
        name: "RUST_LOG",
        reason: e.to_string(),
    })?;
    let provider = tracer_provider(config)?;
    let tracer = provider.tracer(config.service_name.clone());
    let otel_layer = tracing_opentelemetry::layer().with_tracer(tracer);
    let registry = tracing_subscriber::registry().with(filter).with(otel_layer);
    let installed = match config.log_format {
        LogFormat::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .json()
                    .with_writer(std::io::stderr),
            )
            .try_init(),
        LogFormat::Pretty => registry
            .with(tracing_subscriber::fmt::layer().with_writer(std::io::stderr))
            .try_init(),
    };
    installed.map_err(|e| TelemetryError::AlreadyInitialised(e.to_string()))?;
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    opentelemetry::global::set_tracer_provider(provider.clone());
    Ok(Telemetry { provider })
}

/// A provider that always creates real trace ids (so context propagates between services) and
/// exports only when an OTLP endpoint is configured.
fn tracer_provider(config: &TelemetryConfig) -> Result<SdkTracerProvider> {
    let resource = Resource::builder()
        .with_service_name(config.service_name.clone())
        .build();
    let mut builder = SdkTracerProvider::builder().with_resource(resource);
    if let Some(endpoint) = &config.otlp_endpoint {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .map_err(|e| TelemetryError::Otlp(e.to_string()))?;
        builder = builder.with_batch_exporter(exporter);
    }
    Ok(builder.build())
}
