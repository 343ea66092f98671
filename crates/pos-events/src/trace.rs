//! W3C trace context (`traceparent`, `tracestate`) in Kafka record headers, so a consumer's
//! span continues the producer's trace. Uses the global propagator that `pos-telemetry` installs;
//! without one, nothing is injected and consumers start new traces.

use std::collections::HashMap;

use opentelemetry::propagation::{Extractor, Injector};
use rdkafka::message::{BorrowedHeaders, Header, Headers, OwnedHeaders};
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// Header (and envelope field) names of the W3C trace context.
pub const TRACEPARENT: &str = "traceparent";
/// See [`TRACEPARENT`].
pub const TRACESTATE: &str = "tracestate";

/// The current span's trace context as `(traceparent, tracestate)`; empty strings when there is
/// no sampled trace or no propagator.
pub fn current_context_headers() -> (String, String) {
    let context = tracing::Span::current().context();
    let mut carrier = HashMap::new();
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    (
        carrier.remove(TRACEPARENT).unwrap_or_default(),
        carrier.remove(TRACESTATE).unwrap_or_default(),
    )
}

/// Record headers carrying the given trace context (nothing for empty values).
pub fn headers_for(traceparent: &str, tracestate: &str) -> OwnedHeaders {
    let mut headers = OwnedHeaders::new();
    for (key, value) in [(TRACEPARENT, traceparent), (TRACESTATE, tracestate)] {
        if !value.is_empty() {
            headers = headers.insert(Header {
                key,
                value: Some(value.as_bytes()),
            });
        }
    }
    headers
}

/// The remote parent context found in a record's headers.
pub fn context_from_headers(headers: Option<&BorrowedHeaders>) -> opentelemetry::Context {
    let carrier = HeaderCarrier::from(headers);
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier))
}

/// Plain map view of Kafka headers for the propagator.
#[derive(Debug, Default)]
struct HeaderCarrier(HashMap<String, String>);

impl From<Option<&BorrowedHeaders>> for HeaderCarrier {
    fn from(headers: Option<&BorrowedHeaders>) -> Self {
        let mut map = HashMap::new();
        if let Some(headers) = headers {
            for header in headers.iter() {
                if let Some(Ok(value)) = header.value.map(std::str::from_utf8) {
                    map.insert(header.key.to_ascii_lowercase(), value.to_owned());
                }
            }
        }
        Self(map)
    }
}

impl Extractor for HeaderCarrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(&key.to_ascii_lowercase()).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for HeaderCarrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}
