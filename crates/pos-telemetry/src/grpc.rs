//! What every gRPC service mounts besides its own API: grpc.health.v1 and server reflection
//! (for grpcurl, grpc_health_probe, Kubernetes probes), plus W3C trace context in metadata.

use opentelemetry::propagation::{Extractor, Injector};
use tonic::metadata::{MetadataKey, MetadataMap, MetadataValue};
use tonic_health::server::HealthReporter;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::{Result, TelemetryError};

pub use tonic_health::ServingStatus;
pub use tonic_health::pb::health_server::{Health, HealthServer};
pub use tonic_reflection::server::v1::{ServerReflection, ServerReflectionServer};

/// The health service and the handle to report each service's status.
pub fn health() -> (HealthReporter, HealthServer<impl Health>) {
    tonic_health::server::health_reporter()
}

/// The connections of a gRPC server listening on `listener`, with `TCP_NODELAY` set on each:
/// a small answer leaves at once instead of waiting behind Nagle's algorithm (with the peer's
/// delayed acknowledgement that is about 40 ms on Linux). tonic applies its own `tcp_nodelay`
/// setting only to servers it binds itself, not to an incoming stream like this one.
pub fn incoming(listener: tokio::net::TcpListener) -> tonic::transport::server::TcpIncoming {
    tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true))
}

/// Server reflection over every `pos.v1` contract and the health service.
pub fn reflection() -> Result<ServerReflectionServer<impl ServerReflection>> {
    tonic_reflection::server::Builder::configure()
        .register_encoded_file_descriptor_set(pos_proto::FILE_DESCRIPTOR_SET)
        .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .build_v1()
        .map_err(|e| TelemetryError::Reflection(e.to_string()))
}

/// Writes the current span's trace context into outgoing request metadata.
pub fn inject_context(metadata: &mut MetadataMap) {
    let context = tracing::Span::current().context();
    opentelemetry::global::get_text_map_propagator(|p| {
        p.inject_context(&context, &mut MetadataCarrier(metadata));
    });
}

/// A tonic interceptor for clients: every call carries the caller's trace context.
pub fn trace_interceptor(
    mut request: tonic::Request<()>,
) -> std::result::Result<tonic::Request<()>, tonic::Status> {
    inject_context(request.metadata_mut());
    Ok(request)
}

/// The caller's trace context from incoming request metadata, to parent the server span.
pub fn extract_context(metadata: &MetadataMap) -> opentelemetry::Context {
    let mut copy = metadata.clone();
    opentelemetry::global::get_text_map_propagator(|p| p.extract(&MetadataCarrier(&mut copy)))
}

struct MetadataCarrier<'a>(&'a mut MetadataMap);

impl Injector for MetadataCarrier<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            MetadataKey::from_bytes(key.as_bytes()),
            MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

impl Extractor for MetadataCarrier<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|v| v.to_str().ok())
    }

    fn keys(&self) -> Vec<&str> {
        self.0
            .keys()
            .filter_map(|k| match k {
                tonic::metadata::KeyRef::Ascii(k) => Some(k.as_str()),
                tonic::metadata::KeyRef::Binary(_) => None,
            })
            .collect()
    }
}
