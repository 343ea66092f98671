//! Operators of merchant settlement (posctl, a scheduler): the bearer credential in the
//! `authorization` metadata, checked against the operators file that terminal-gateway uses too
//! (`POS_OPERATORS_FILE`, `pos-auth`), the `settlement` role (or `admin`), and an
//! `OperatorActionRecorded` event on `pos.settlement.v1` for every call, whatever its outcome,
//! as TerminalManagement does. The batch calls (SettleBatch, …) are the gateway's, not an
//! operator's: they are not checked here.
//!
//! The file is read at each call, so a credential added or removed takes effect without a
//! restart (and a settlement service started before the gateway created the file works once it
//! exists).

use std::path::PathBuf;

use pos_auth::{Caller, Credentials, Role, action_record};
use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use tonic::{Request, Response, Status};
use tracing::warn;

/// Who may call merchant settlement, and the audit trail of their calls.
#[derive(Debug, Clone)]
pub struct Operators {
    /// The operators file.
    pub file: PathBuf,
    /// Publisher of the audit events.
    pub publisher: EventPublisher,
}

impl Operators {
    /// Reads the operators file off the async workers.
    async fn credentials(&self) -> Result<Credentials, Status> {
        let file = self.file.clone();
        tokio::task::spawn_blocking(move || Credentials::load(&file))
            .await
            .map_err(|e| Status::internal(format!("reading the operators file: {e}")))?
            .map_err(|error| {
                warn!(%error, "reading the operators file");
                Status::unavailable(format!("operator credentials cannot be read: {error}"))
            })
    }

    /// Authenticates, checks the `settlement` role, runs `work`, records the action.
    pub async fn call<Req, Resp, W>(
        &self,
        request: Request<Req>,
        method: &'static str,
        target: (&'static str, String),
        work: W,
    ) -> Result<Response<Resp>, Status>
    where
        W: AsyncFnOnce(Req) -> Result<Resp, Status>,
    {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = self.credentials().await?.authenticate(request.metadata())?;
        let outcome = match caller.require(Role::Settlement) {
            Err(denied) => Err(denied),
            Ok(()) => work(request.into_inner()).await,
        };
        self.audit(&caller, method, &target, &outcome, peer).await;
        outcome.map(Response::new)
    }

    async fn audit<T>(
        &self,
        caller: &Caller,
        method: &str,
        (target_type, target_id): &(&'static str, String),
        outcome: &Result<T, Status>,
        peer: String,
    ) {
        let record = action_record(
            caller,
            &format!("/pos.v1.Settlement/{method}"),
            (target_type, target_id),
            outcome,
            peer,
        );
        // One audit aggregate per call, as the gateway writes them.
        let id = uuid::Uuid::now_v7().to_string();
        let envelope = new_envelope(
            &AggregateRef::new("audit", id),
            1,
            crate::service::PRODUCER,
            Payload::OperatorActionRecorded(record),
        );
        if let Err(error) = self
            .publisher
            .publish(Topic::Settlement, target_id, &envelope)
            .await
        {
            warn!(%error, method, "recording an operator action failed");
        }
    }
}
