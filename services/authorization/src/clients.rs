//! The issuer and fraud-check as this service calls them: one long-lived tonic channel each,
//! every call with its deadline and the caller's trace context, and the outcome reduced to what
//! the decision needs.

use std::time::{Duration, Instant};

use pos_proto::v1 as pb;
use pos_proto::v1::fraud_check_client::FraudCheckClient;
use pos_proto::v1::issuer_client::IssuerClient;
use tonic::transport::Channel;

use crate::metrics;

/// What became of an issuer call.
#[derive(Debug, Clone)]
pub enum IssuerOutcome {
    /// The issuer answered (approved or declined).
    Answered(Box<pb::IssuerAuthorizeResponse>),
    /// The issuer could not be reached or refused the call: it did not act.
    Unavailable(String),
    /// No answer within the deadline, or the call broke after it was sent: the issuer may have
    /// acted, so the transaction must be reversed.
    Unknown(String),
}

/// A lazily connected channel to `url` that gives up connecting after `connect_timeout`; over
/// mutual TLS when `tls` is set (the URL is then `https://`).
pub fn channel(
    url: &str,
    connect_timeout: Duration,
    tls: Option<&pos_tls::TlsConfig>,
) -> anyhow::Result<Channel> {
    Ok(pos_tls::endpoint(url, tls)?
        .connect_timeout(connect_timeout)
        .tcp_nodelay(true)
        .http2_keep_alive_interval(Duration::from_secs(30))
        .keep_alive_while_idle(true)
        .connect_lazy())
}

/// The issuer's Authorize call with a deadline.
#[derive(Debug, Clone)]
pub struct Issuer {
    client: IssuerClient<Channel>,
    timeout: Duration,
}

impl Issuer {
    /// Calls over `channel`, each call limited to `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            client: IssuerClient::new(channel),
            timeout,
        }
    }

    /// Asks the issuer.
    pub async fn authorize(&self, request: pb::IssuerAuthorizeRequest) -> IssuerOutcome {
        let started = Instant::now();
        let mut call = tonic::Request::new(request);
        call.set_timeout(self.timeout);
        pos_telemetry::grpc::inject_context(call.metadata_mut());
        let mut client = self.client.clone();
        let result = tokio::time::timeout(self.timeout, client.authorize(call)).await;
        let outcome = match result {
            Ok(Ok(answer)) => IssuerOutcome::Answered(Box::new(answer.into_inner())),
            Ok(Err(status)) => classify(&status),
            Err(_) => {
                IssuerOutcome::Unknown(format!("no answer within {} ms", self.timeout.as_millis()))
            }
        };
        let label = match &outcome {
            IssuerOutcome::Answered(_) => "answered",
            IssuerOutcome::Unavailable(_) => "unavailable",
            IssuerOutcome::Unknown(_) => "unknown",
        };
        metrics::ISSUER_CALLS
            .with_label_values(&[label])
            .observe(started.elapsed().as_secs_f64());
        outcome
    }
}

/// Whether a failed call may have reached the issuer's ledger.
fn classify(status: &tonic::Status) -> IssuerOutcome {
    use tonic::Code;
    let text = format!("{:?}: {}", status.code(), status.message());
    match status.code() {
        // Refused before acting: not reachable, malformed, not allowed.
        Code::Unavailable
        | Code::InvalidArgument
        | Code::Unimplemented
        | Code::Unauthenticated
        | Code::PermissionDenied
        | Code::FailedPrecondition
        | Code::ResourceExhausted => IssuerOutcome::Unavailable(text),
        _ => IssuerOutcome::Unknown(text),
    }
}

/// fraud-check's Assess call with a deadline.
#[derive(Debug, Clone)]
pub struct Fraud {
    client: FraudCheckClient<Channel>,
    timeout: Duration,
}

impl Fraud {
    /// Calls over `channel`, each call limited to `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            client: FraudCheckClient::new(channel),
            timeout,
        }
    }

    /// The assessment, or why there is none in time.
    pub async fn assess(&self, request: pb::AssessRequest) -> Result<pb::AssessResponse, String> {
        let mut call = tonic::Request::new(request);
        call.set_timeout(self.timeout);
        pos_telemetry::grpc::inject_context(call.metadata_mut());
        let mut client = self.client.clone();
        match tokio::time::timeout(self.timeout, client.assess(call)).await {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_refusals_before_acting_count_as_unavailable() {
        let unavailable = classify(&tonic::Status::unavailable("connection refused"));
        assert!(matches!(unavailable, IssuerOutcome::Unavailable(_)));
        let deadline = classify(&tonic::Status::deadline_exceeded("late"));
        assert!(matches!(deadline, IssuerOutcome::Unknown(_)));
        let broken = classify(&tonic::Status::unknown("stream reset"));
        assert!(matches!(broken, IssuerOutcome::Unknown(_)));
    }
}
