//! The issuer as this service calls it: one long-lived channel, every call with its deadline
//! and the caller's trace context. A gRPC error or a missed deadline is "no answer": the
//! caller answers "try again" and the retry runs under the same ids (the issuer is idempotent
//! on them), so nothing is undone or credited twice.

use std::time::{Duration, Instant};

use pos_proto::v1 as pb;
use pos_proto::v1::issuer_client::IssuerClient;
use tonic::transport::Channel;

use crate::metrics;

/// The issuer's Reverse and Refund calls.
#[derive(Debug, Clone)]
pub struct Issuer {
    client: IssuerClient<Channel>,
    timeout: Duration,
}

/// A lazily connected channel to `url`, over mutual TLS when `tls` is set.
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

impl Issuer {
    /// Calls over `channel`, each call limited to `timeout`.
    pub fn new(channel: Channel, timeout: Duration) -> Self {
        Self {
            client: IssuerClient::new(channel),
            timeout,
        }
    }

    async fn call<T, F>(&self, name: &'static str, call: F) -> Result<T, String>
    where
        F: Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let result = match tokio::time::timeout(self.timeout, call).await {
            Ok(Ok(answer)) => Ok(answer.into_inner()),
            Ok(Err(status)) => Err(format!("{:?}: {}", status.code(), status.message())),
            Err(_) => Err(format!("no answer within {} ms", self.timeout.as_millis())),
        };
        let outcome = if result.is_ok() { "answered" } else { "failed" };
        metrics::ISSUER_CALLS
            .with_label_values(&[name, outcome])
            .observe(started.elapsed().as_secs_f64());
        result
    }

    /// Undoes `original` in full at the issuer (idempotent on `original`).
    pub async fn reverse(
        &self,
        reversal_id: &str,
        original: &str,
        amount: Option<pb::Money>,
        reason: &str,
    ) -> Result<pb::IssuerReverseResponse, String> {
        let mut request = tonic::Request::new(pb::IssuerReverseRequest {
            acquirer_reversal_id: reversal_id.to_owned(),
            original_acquirer_transaction_id: original.to_owned(),
            amount,
            reason_code: reason.to_owned(),
            transmitted_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
        });
        request.set_timeout(self.timeout);
        pos_telemetry::grpc::inject_context(request.metadata_mut());
        let mut client = self.client.clone();
        self.call("reverse", client.reverse(request)).await
    }

    /// Credits part or all of an approved debit (idempotent on the refund's id).
    pub async fn refund(
        &self,
        request: pb::IssuerRefundRequest,
    ) -> Result<pb::IssuerRefundResponse, String> {
        let mut request = tonic::Request::new(request);
        request.set_timeout(self.timeout);
        pos_telemetry::grpc::inject_context(request.metadata_mut());
        let mut client = self.client.clone();
        self.call("refund", client.refund(request)).await
    }
}
