//! The tonic adapter: `Authorization.Authorize` parses the request into the domain form, runs
//! the flow under a span parented on the caller's trace context, and maps errors to gRPC codes
//! (in `error`).

use std::sync::Arc;
use std::time::Instant;

use pos_proto::v1 as pb;
use pos_proto::v1::authorization_server::Authorization;
use tonic::{Request, Response, Status};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::metrics;
use crate::model;
use crate::service::Service;

/// The gRPC face of [`Service`].
#[derive(Debug, Clone)]
pub struct AuthorizationApi(pub Arc<Service>);

#[tonic::async_trait]
impl Authorization for AuthorizationApi {
    async fn authorize(
        &self,
        request: Request<pb::AuthorizationRequest>,
    ) -> Result<Response<pb::AuthorizationResponse>, Status> {
        let started = Instant::now();
        let parent = pos_telemetry::grpc::extract_context(request.metadata());
        let request = model::Request::try_from(request.into_inner())
            .map_err(crate::error::AuthError::from)?;
        let kind = request.kind.as_str();
        let span = tracing::info_span!(
            "authorize",
            terminal_id = %request.trace.terminal_id,
            batch_no = request.trace.batch_no.value(),
            stan = request.trace.stan.value(),
            kind,
            session_id = %request.session_id,
        );
        let _ = span.set_parent(parent);
        let answer = self.0.authorize(request).instrument(span).await?;
        metrics::DURATION
            .with_label_values(&[kind])
            .observe(started.elapsed().as_secs_f64());
        Ok(Response::new(answer))
    }
}
