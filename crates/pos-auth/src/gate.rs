//! The operator gate of a service's administrative calls: the bearer credential in the
//! `authorization` metadata checked against the operators file, one required role (or
//! `admin`), and an `OperatorActionRecorded` event on the service's own topic for every call,
//! whatever its outcome. Settlement (merchant settlement, role `settlement`) and fraud-check
//! (blacklists and alerts, role `risk`) guard their operator calls with it.
//!
//! The file is read at each call, so a credential added or removed takes effect without a
//! restart (and a service started before the gateway created the file works once it exists).

use std::path::PathBuf;

use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::{Caller, Credentials, Role, action_record};

/// Who may make a service's operator calls, and the audit trail of those calls.
#[derive(Debug, Clone)]
pub struct OperatorGate {
    file: PathBuf,
    publisher: EventPublisher,
    producer: &'static str,
    topic: Topic,
    service: &'static str,
    role: Role,
}

impl OperatorGate {
    /// A gate reading the operators file at `file`, requiring `role`, and recording each call
    /// of gRPC service `service` (e.g. "pos.v1.Settlement") on `topic` with `publisher`, as
    /// `producer` (e.g. "settlement").
    pub fn new(
        file: impl Into<PathBuf>,
        publisher: EventPublisher,
        producer: &'static str,
        topic: Topic,
        service: &'static str,
        role: Role,
    ) -> Self {
        Self {
            file: file.into(),
            publisher,
            producer,
            topic,
            service,
            role,
        }
    }

    /// Authenticates, checks the gate's role, runs `work`, records the action as
    /// `/{service}/{method}` on `target` (type and id; the id is also the record's key).
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
        self.call_as(request, method, target, async move |_: &Caller, r| {
            work(r).await
        })
        .await
    }

    /// Like [`call`](Self::call), for work that needs to know who asked (to name the operator
    /// in the events it writes).
    pub async fn call_as<Req, Resp, W>(
        &self,
        request: Request<Req>,
        method: &'static str,
        target: (&'static str, String),
        work: W,
    ) -> Result<Response<Resp>, Status>
    where
        W: AsyncFnOnce(&Caller, Req) -> Result<Resp, Status>,
    {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = self.credentials().await?.authenticate(request.metadata())?;
        let outcome = match caller.require(self.role) {
            Err(denied) => Err(denied),
            Ok(()) => work(&caller, request.into_inner()).await,
        };
        self.audit(&caller, method, &target, &outcome, peer).await;
        outcome.map(Response::new)
    }

    /// The gRPC method name of `method` as audit records name it.
    fn action(&self, method: &str) -> String {
        format!("/{}/{method}", self.service)
    }

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
            &self.action(method),
            (target_type, target_id),
            outcome,
            peer,
        );
        // One audit aggregate per call, as the gateway writes them.
        let id = uuid::Uuid::now_v7().to_string();
        let envelope = new_envelope(
            &AggregateRef::new("audit", id),
            1,
            self.producer,
            Payload::OperatorActionRecorded(record),
        );
        if let Err(error) = self
            .publisher
            .publish(self.topic, target_id, &envelope)
            .await
        {
            warn!(%error, method, "recording an operator action failed");
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::cell::Cell;
    use std::time::Duration;

    use pos_events::BusConfig;

    use super::*;
    use crate::digest;

    /// A risk gate over an operators file with a risk, a settlement and an admin operator. The
    /// publisher points at a closed port: recording fails quickly and is only logged.
    fn gate(name: &str) -> (OperatorGate, PathBuf) {
        let dir = std::env::temp_dir().join(format!("pos-auth-gate-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("operators");
        let text = format!(
            "rita risk {}\nsam settlement {}\nroot admin {}\n",
            hex::encode(digest("rita-token")),
            hex::encode(digest("sam-token")),
            hex::encode(digest("root-token")),
        );
        std::fs::write(&file, text).unwrap();
        let publisher = EventPublisher::new(&BusConfig {
            brokers: "127.0.0.1:9".to_owned(),
            publish_timeout: Duration::from_millis(100),
            ..BusConfig::default()
        })
        .unwrap();
        let gate = OperatorGate::new(
            &file,
            publisher,
            "fraud-check",
            Topic::Fraud,
            "pos.v1.FraudCheck",
            Role::Risk,
        );
        (gate, dir)
    }

    fn request(token: &str) -> Request<u32> {
        let mut request = Request::new(7);
        request
            .metadata_mut()
            .insert("authorization", format!("Bearer {token}").parse().unwrap());
        request
    }

    #[tokio::test]
    async fn the_role_or_admin_passes_and_others_are_denied_without_running_the_work() {
        let (gate, dir) = gate("roles");
        for token in ["rita-token", "root-token"] {
            let answer = gate
                .call(
                    request(token),
                    "ListFraudAlerts",
                    ("merchant", "M1".to_owned()),
                    async |n| Ok(n + 1),
                )
                .await
                .unwrap();
            assert_eq!(answer.into_inner(), 8);
        }
        let ran = Cell::new(false);
        let denied = gate
            .call(
                request("sam-token"),
                "ListFraudAlerts",
                ("merchant", "M1".to_owned()),
                async |n| {
                    ran.set(true);
                    Ok(n)
                },
            )
            .await
            .unwrap_err();
        assert_eq!(denied.code(), tonic::Code::PermissionDenied);
        assert!(denied.message().contains("risk"), "{}", denied.message());
        assert!(!ran.get());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[tokio::test]
    async fn unknown_tokens_and_a_missing_file_are_refused() {
        let (gate, dir) = gate("refused");
        let unknown = gate
            .call(
                request("guess"),
                "Assess",
                ("terminal", "T1".to_owned()),
                async |n| Ok(n),
            )
            .await
            .unwrap_err();
        assert_eq!(unknown.code(), tonic::Code::Unauthenticated);
        std::fs::remove_dir_all(&dir).unwrap();
        let missing = gate
            .call(
                request("rita-token"),
                "Assess",
                ("terminal", "T1".to_owned()),
                async |n| Ok(n),
            )
            .await
            .unwrap_err();
        assert_eq!(missing.code(), tonic::Code::Unavailable);
    }

    #[tokio::test]
    async fn the_work_may_know_its_caller_and_actions_are_named_by_service() {
        let (gate, dir) = gate("caller");
        let who = gate
            .call_as(
                request("rita-token"),
                "AddBlacklistEntry",
                ("blacklist", "B1".to_owned()),
                async |caller: &Caller, _| Ok(caller.actor().subject),
            )
            .await
            .unwrap();
        assert_eq!(who.into_inner(), "ops:rita");
        assert_eq!(
            gate.action("AddBlacklistEntry"),
            "/pos.v1.FraudCheck/AddBlacklistEntry"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
