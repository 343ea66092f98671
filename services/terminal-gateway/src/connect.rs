//! The terminals' API: activation and the `Connect` stream.
//!
//! A sign-in (MACed under the terminal master key) issues fresh working keys; every other
//! message must carry a MAC under the current MAC key and a message sequence number above every
//! one accepted under those keys, on this connection or an earlier one. A bad MAC is answered
//! "A0", counted and recorded; after `mac_failure_limit` of them the connection is dropped.
//! Answers carry a MAC under the session key, except the sign-in answer (its keys carry check
//! values) and errors sent before a session exists.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use futures::Stream;
use pos_crypto::{KeyUnderLmk, hash_password, verify_password};
use pos_domain::{OperatorNo, TerminalId};
use pos_facts::SessionKeys;
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;
use pos_proto::v1::terminal_gateway_server::TerminalGateway;
use pos_proto::v1::terminal_message::Body;
use pos_registry::merchant::MerchantState;
use pos_registry::operator::{self, OperatorCommand, OperatorKey, OperatorState, UnlockedBy};
use pos_registry::terminal::{self, SignIn, TerminalCommand, TerminalState};
use pos_registry::{Ctx, PasswordHash, RegistryError, validate_new_password};
use prost::Message;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, info, warn};

use crate::app::{Gateway, now};
use crate::error::{GatewayError, Result};
use crate::{activation, metrics};

/// MAC failures of one terminal recorded as events per hour (the rest are only counted).
const MAC_FAILURE_EVENTS_PER_HOUR: u64 = 20;

/// The gRPC face of the gateway for terminals (it needs an owned handle to spawn sessions).
#[derive(Debug, Clone)]
pub struct TerminalService(pub Arc<Gateway>);

/// A hash of the default operator password "0000" (own salt each time).
pub fn default_password_hash() -> Result<PasswordHash> {
    let phc = hash_password(operator::DEFAULT_PASSWORD)?;
    Ok(PasswordHash::parse(phc)?)
}

/// Argon2 is deliberately slow: run it off the async workers.
async fn password_matches(password: String, hash: PasswordHash) -> Result<bool> {
    tokio::task::spawn_blocking(move || verify_password(&password, hash.as_phc()))
        .await
        .map_err(|e| GatewayError::Internal(format!("password check task: {e}")))?
        .map_err(GatewayError::from)
}

async fn new_hash(password: String) -> Result<PasswordHash> {
    let phc = tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| GatewayError::Internal(format!("password hash task: {e}")))??;
    Ok(PasswordHash::parse(phc)?)
}

/// The bytes a MAC covers: the message's encoding with `mac` empty.
fn mac_input<M: Message + Clone>(message: &M, clear: impl FnOnce(&mut M)) -> Vec<u8> {
    let mut copy = message.clone();
    clear(&mut copy);
    copy.encode_to_vec()
}

fn error(code: &str, message: impl Into<String>, closing: bool) -> HostBody {
    HostBody::Error(pb::ErrorResponse {
        response_code: code.to_owned(),
        response_message: message.into(),
        closing,
    })
}

fn ack(code: &str, message: impl Into<String>) -> HostBody {
    HostBody::Ack(pb::HostAck {
        response_code: code.to_owned(),
        response_message: message.into(),
    })
}

/// The terminal answer ("DE39" code) for a refusal of the registry.
fn refusal_code(error: &GatewayError) -> (&'static str, String) {
    use RegistryError as R;
    match error {
        GatewayError::Registry(e) => match e {
            R::TerminalNotActive { .. } | R::DeviceMismatch { .. } => ("97", e.to_string()),
            R::NotFound {
                what: "operator", ..
            } => ("25", e.to_string()),
            R::NotFound { .. } => ("97", e.to_string()),
            R::MerchantNotActive { .. } => ("03", e.to_string()),
            R::Replay(_) => ("94", e.to_string()),
            R::WrongPassword { .. } => ("55", e.to_string()),
            R::OperatorLocked { .. } => ("75", e.to_string()),
            R::Invalid(_) => ("30", e.to_string()),
            _ => ("12", e.to_string()),
        },
        GatewayError::BadRequest(m) => ("30", m.clone()),
        other => {
            warn!(error = %other, "terminal request failed");
            ("96", "system error; try again".to_owned())
        }
    }
}

/// One `Connect` stream.
struct Session {
    gateway: Arc<Gateway>,
    peer: String,
    /// Terminal seen on this connection (set after the first authenticated message).
    terminal_id: Option<String>,
    /// Session (sign-in) of the last authenticated message.
    session_id: String,
    /// A host command to send before the next answer.
    push: Option<pb::HostMessage>,
    mac_failures: u32,
}

/// What to do after answering a message.
enum Next {
    Continue,
    Close,
    /// No answer at all: the outcome is unknown and the terminal must reverse on its own.
    Silent,
}

impl Session {
    async fn run(
        mut self,
        mut incoming: Streaming<pb::TerminalMessage>,
        outgoing: mpsc::Sender<std::result::Result<pb::HostMessage, Status>>,
    ) {
        metrics::CONNECTIONS.inc();
        loop {
            let message = match incoming.message().await {
                Ok(Some(message)) => message,
                Ok(None) => break,
                Err(status) => {
                    debug!(%status, "terminal stream ended");
                    break;
                }
            };
            let (answer, next) = self.handle(message).await;
            if let Some(command) = self.push.take()
                && outgoing.send(Ok(command)).await.is_err()
            {
                break;
            }
            if let Next::Silent = next {
                continue;
            }
            let approval = answer
                .body
                .as_ref()
                .and_then(crate::steps::reversible_approval)
                .cloned();
            if outgoing.send(Ok(answer)).await.is_err() {
                if let Some(approval) = approval {
                    self.gateway
                        .approval_undelivered(&self.session_id, &approval)
                        .await;
                }
                break;
            }
            if let Next::Close = next {
                break;
            }
        }
        metrics::CONNECTIONS.dec();
        if let Some(terminal_id) = &self.terminal_id
            && let Err(error) = self.gateway.hot.fleet_seen(terminal_id, false).await
        {
            warn!(%error, "recording a disconnect");
        }
    }

    async fn handle(&mut self, message: pb::TerminalMessage) -> (pb::HostMessage, Next) {
        let seq = message.message_seq;
        let kind = body_name(message.body.as_ref());
        let (body, keys, next) = match &message.body {
            None => (error("30", "empty message", false), None, Next::Continue),
            Some(Body::SignIn(request)) => {
                let request = request.clone();
                (self.sign_in(&message, request).await, None, Next::Continue)
            }
            Some(_) => self.session_message(message).await,
        };
        let code = match &body {
            HostBody::Error(e) => e.response_code.clone(),
            HostBody::Ack(a) => a.response_code.clone(),
            HostBody::OperatorLogin(l) => l.response_code.clone(),
            _ => "00".to_owned(),
        };
        metrics::MESSAGES.with_label_values(&[kind, &code]).inc();
        let mut answer = pb::HostMessage {
            in_reply_to: seq,
            mac: Vec::new(),
            body: Some(body),
        };
        if let Some(keys) = keys {
            match self
                .gateway
                .hsm
                .generate_mac(&keys.mac, &mac_input(&answer, |m| m.mac.clear()))
            {
                Ok(mac) => answer.mac = mac.to_vec(),
                Err(e) => {
                    warn!(error = %e, "cannot MAC an answer");
                    answer.body = Some(error("96", "system error", false));
                }
            }
        }
        (answer, next)
    }

    /// Sign-in 签到.
    async fn sign_in(
        &mut self,
        message: &pb::TerminalMessage,
        request: pb::SignInRequest,
    ) -> HostBody {
        let gateway = Arc::clone(&self.gateway);
        let outcome = self.try_sign_in(&gateway, message, request).await;
        let label = match &outcome {
            Ok(_) => "ok".to_owned(),
            Err(e) => refusal_code(e).0.to_owned(),
        };
        metrics::SIGN_INS.with_label_values(&[&label]).inc();
        outcome.unwrap_or_else(|e| {
            let (code, text) = refusal_code(&e);
            error(code, text, false)
        })
    }

    async fn try_sign_in(
        &mut self,
        gateway: &Gateway,
        message: &pb::TerminalMessage,
        request: pb::SignInRequest,
    ) -> Result<HostBody> {
        if request.terminal_id != message.terminal_id {
            return Err(GatewayError::BadRequest(
                "the sign-in names another terminal than the message".to_owned(),
            ));
        }
        let Some(terminal) = gateway
            .repo
            .load::<TerminalState>(&message.terminal_id)
            .await?
        else {
            return Ok(error(
                "97",
                format!("terminal {} is not registered", message.terminal_id),
                false,
            ));
        };
        let Some(tmk) = terminal.tmk.as_ref() else {
            return Ok(error(
                "97",
                format!("terminal {} is not activated", terminal.terminal_id),
                false,
            ));
        };
        let tmk = KeyUnderLmk::from_bytes(tmk.under_lmk().ciphertext.clone());
        let input = mac_input(message, |m| m.mac.clear());
        if !gateway.hsm.verify_mac(&tmk, &input, &message.mac)? {
            metrics::MAC_FAILURES.with_label_values(&["sign_in"]).inc();
            self.record_mac_failure(&terminal.terminal_id, "", message.message_seq, false)
                .await;
            return Ok(error(
                "A0",
                "MAC check failed: the sign-in is not signed with this terminal's master key",
                false,
            ));
        }
        let nonce: [u8; 16] = request.nonce.as_slice().try_into().map_err(|_| {
            GatewayError::BadRequest("the sign-in nonce must be 16 bytes".to_owned())
        })?;
        let skew = Duration::from_secs(gateway.config.sign_in_max_skew_secs);
        if !gateway
            .hot
            .fresh_nonce(terminal.terminal_id.as_str(), &nonce, skew * 2)
            .await?
        {
            return Ok(error(
                "94",
                "sign-in refused as a replay: this nonce was used before",
                false,
            ));
        }
        let terminal_time = request
            .terminal_time
            .and_then(|t| SystemTime::try_from(t).ok())
            .ok_or_else(|| GatewayError::BadRequest("terminal_time is required".to_owned()))?;
        let merchant = gateway
            .repo
            .load::<MerchantState>(terminal.merchant_id.as_str())
            .await?
            .ok_or_else(|| RegistryError::not_found("merchant", &terminal.merchant_id))?;
        let keys = gateway.hsm.generate_working_keys(&tmk)?;
        let session_id = uuid::Uuid::now_v7().to_string();
        // The open batch as settlement knows it (after the terminal's first settlement).
        let open_batch = gateway
            .repo
            .facts()
            .open_batch(terminal.terminal_id.as_str())
            .await?
            .and_then(|b| pos_domain::BatchNo::new(b.batch_no).ok());
        let command = TerminalCommand::SignIn(Box::new(SignIn {
            terminal_id: terminal.terminal_id.clone(),
            merchant: merchant.standing(),
            session_id: session_id.clone(),
            connection: None,
            serial_number: request.serial_number.clone(),
            software_version: request.software_version.clone(),
            nonce,
            terminal_time,
            max_clock_skew: skew,
            pin_key_check_value: keys.pin.check_value,
            mac_key_check_value: keys.mac.check_value,
            batch_no: open_batch,
            settlement_pending: false,
        }));
        let ctx = Ctx::at(now());
        let id = terminal.terminal_id.to_string();
        let state = gateway
            .execute::<TerminalState, _>(&id, &id, "", |state| {
                terminal::decide(state, command, &ctx)
            })
            .await?
            .ok_or_else(|| GatewayError::Internal("terminal vanished".to_owned()))?;
        gateway
            .hot
            .save_keys(
                &id,
                &SessionKeys {
                    key_version: state.key_version,
                    pin: keys.pin.under_lmk,
                    mac: keys.mac.under_lmk,
                    session_id: session_id.clone(),
                },
            )
            .await?;
        gateway
            .hot
            .fleet_signed_in(
                &id,
                merchant.merchant_id.as_str(),
                &request.software_version,
                state.batch_no.value(),
                &session_id,
            )
            .await?;
        self.connected(&id).await;
        info!(terminal_id = %id, peer = %self.peer, key_version = state.key_version, "terminal signed in");
        Ok(HostBody::SignIn(pb::SignInResponse {
            batch_no: state.batch_no.value(),
            pin_key_under_tmk: keys.pin.under_tmk.to_vec(),
            pin_key_check_value: keys.pin.check_value.to_vec(),
            mac_key_under_tmk: keys.mac.under_tmk.to_vec(),
            mac_key_check_value: keys.mac.check_value.to_vec(),
            key_version: state.key_version,
            host_time: Some(prost_types::Timestamp::from(SystemTime::now())),
            merchant_id: merchant.merchant_id.to_string(),
            merchant_name: merchant.display_name().to_owned(),
            settlement_pending: gateway
                .forced_settlement(&terminal.terminal_id)
                .await?
                .is_some(),
            ..pb::SignInResponse::default()
        }))
    }

    async fn connected(&mut self, terminal_id: &str) {
        if self.terminal_id.is_none() {
            self.terminal_id = Some(terminal_id.to_owned());
            if let Err(error) = self.gateway.hot.fleet_seen(terminal_id, true).await {
                warn!(%error, "recording a connection");
            }
        }
    }

    async fn record_mac_failure(
        &self,
        terminal_id: &TerminalId,
        session_id: &str,
        seq: u64,
        close: bool,
    ) {
        // Every failure is counted in the metrics; at most MAC_FAILURE_EVENTS_PER_HOUR per
        // terminal become events, so garbage sent under a terminal's id cannot grow its history
        // without bound.
        let key = self
            .gateway
            .repo
            .store()
            .key(&["mac-failure-events", terminal_id.as_str()]);
        match self
            .gateway
            .repo
            .store()
            .incr_fixed_window(&key, Duration::from_secs(3_600))
            .await
        {
            Ok(n) if n > MAC_FAILURE_EVENTS_PER_HOUR && !close => return,
            Ok(_) => {}
            Err(error) => warn!(%error, "counting MAC failures"),
        }
        let command = TerminalCommand::RecordMacFailure {
            terminal_id: terminal_id.clone(),
            session_id: session_id.to_owned(),
            message_seq: seq,
            close_session: close,
        };
        let ctx = Ctx::at(now());
        let id = terminal_id.to_string();
        let recorded = self
            .gateway
            .execute::<TerminalState, _>(&id, &id, "", |state| {
                terminal::decide(state, command, &ctx)
            })
            .await;
        if let Err(error) = recorded {
            warn!(%error, terminal_id = %id, "recording a MAC failure");
        }
    }

    /// Any message after sign-in: MAC, sequence, then the request itself.
    async fn session_message(
        &mut self,
        message: pb::TerminalMessage,
    ) -> (HostBody, Option<SessionKeys>, Next) {
        let gateway = Arc::clone(&self.gateway);
        let keys = match gateway.hot.keys(&message.terminal_id).await {
            Ok(Some(keys)) => keys,
            Ok(None) => {
                return (
                    error("12", "not signed in: sign in first", false),
                    None,
                    Next::Continue,
                );
            }
            Err(e) => return (error("96", e.to_string(), false), None, Next::Continue),
        };
        let Ok(terminal_id) = TerminalId::parse(&message.terminal_id) else {
            return (
                error("30", "malformed terminal id", false),
                None,
                Next::Continue,
            );
        };
        let input = mac_input(&message, |m| m.mac.clear());
        match gateway.hsm.verify_mac(&keys.mac, &input, &message.mac) {
            Ok(true) => {}
            Ok(false) => {
                return self
                    .bad_mac(
                        &terminal_id,
                        &keys,
                        message.message_seq,
                        body_name(message.body.as_ref()),
                    )
                    .await;
            }
            Err(e) => return (error("96", e.to_string(), false), None, Next::Continue),
        }
        match gateway
            .hot
            .accept_seq(terminal_id.as_str(), keys.key_version, message.message_seq)
            .await
        {
            Ok(true) => {}
            Ok(false) => {
                return (
                    error(
                        "94",
                        "message sequence number already used: replay refused",
                        false,
                    ),
                    Some(keys),
                    Next::Continue,
                );
            }
            Err(e) => {
                return (
                    error("96", e.to_string(), false),
                    Some(keys),
                    Next::Continue,
                );
            }
        }
        self.connected(terminal_id.as_str()).await;
        self.session_id.clone_from(&keys.session_id);
        let Some(body) = message.body else {
            return (
                error("30", "empty message", false),
                Some(keys),
                Next::Continue,
            );
        };
        if let Some(refusal) = self.settle_first(&terminal_id, &keys, &body).await {
            return (refusal, Some(keys), Next::Continue);
        }
        let answer = match self.dispatch(&terminal_id, &keys, body).await {
            Ok(answer) => answer,
            Err(GatewayError::Unanswered(why)) => {
                warn!(terminal_id = %terminal_id, %why, "leaving a request unanswered: the terminal reverses it");
                return (error("98", why, false), Some(keys), Next::Silent);
            }
            Err(e) => {
                let (code, text) = refusal_code(&e);
                error(code, text, false)
            }
        };
        (answer, Some(keys), Next::Continue)
    }

    async fn bad_mac(
        &mut self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        seq: u64,
        kind: &str,
    ) -> (HostBody, Option<SessionKeys>, Next) {
        self.mac_failures += 1;
        let limit = self.gateway.config.mac_failure_limit;
        let closing = self.mac_failures >= limit;
        metrics::MAC_FAILURES.with_label_values(&[kind]).inc();
        self.record_mac_failure(terminal_id, &keys.session_id, seq, closing)
            .await;
        let text = if closing {
            format!("MAC check failed {limit} times: the connection is closed; sign in again")
        } else {
            "MAC check failed".to_owned()
        };
        let next = if closing { Next::Close } else { Next::Continue };
        (error("A0", text, closing), None, next)
    }

    async fn dispatch(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        body: Body,
    ) -> Result<HostBody> {
        match body {
            Body::OperatorLogin(login) => self.operator_login(terminal_id, keys, login).await,
            Body::ChangeOperatorPassword(change) => {
                self.change_password(terminal_id, keys, change).await
            }
            Body::UnlockOperator(unlock) => self.unlock(terminal_id, keys, unlock).await,
            Body::OperatorLogout(logout) => {
                let key = operator_key(terminal_id, &logout.operator_no)?;
                self.operator(OperatorCommand::Logout {
                    key: key.clone(),
                    session_id: keys.session_id.clone(),
                })
                .await?;
                self.gateway
                    .hot
                    .set_operator_login(
                        terminal_id.as_str(),
                        &keys.session_id,
                        key.operator_no.as_str(),
                        false,
                    )
                    .await?;
                Ok(ack("00", "logged out"))
            }
            Body::SignOut(_) => {
                let command = TerminalCommand::SignOut {
                    terminal_id: terminal_id.clone(),
                    session_id: keys.session_id.clone(),
                    reason: terminal::SignOutReason::SignOut,
                };
                let ctx = Ctx::at(now());
                let id = terminal_id.to_string();
                self.gateway
                    .execute::<TerminalState, _>(&id, &id, "", |state| {
                        terminal::decide(state, command, &ctx)
                    })
                    .await?;
                Ok(ack("00", "signed out"))
            }
            Body::Heartbeat(_) => {
                self.gateway
                    .hot
                    .fleet_heartbeat(terminal_id.as_str())
                    .await?;
                Ok(HostBody::HeartbeatAck(pb::HeartbeatAck {
                    host_time: Some(prost_types::Timestamp::from(SystemTime::now())),
                    settlement_pending: self
                        .gateway
                        .forced_settlement(terminal_id)
                        .await?
                        .is_some(),
                }))
            }
            Body::Purchase(_)
            | Body::BalanceInquiry(_)
            | Body::PreAuth(_)
            | Body::PreAuthCompletion(_)
            | Body::PreAuthVoid(_) => self.gateway.authorize(terminal_id, keys, body).await,
            Body::Reversal(reversal) => self.gateway.reverse(terminal_id, reversal).await,
            Body::Settlement(settlement) => self.gateway.settle(terminal_id, settlement).await,
            Body::BatchUpload(upload) => self.gateway.upload(terminal_id, upload).await,
            Body::SettlementComplete(complete) => {
                self.gateway.close_batch(terminal_id, complete).await
            }
            Body::Void(void) => {
                let (operator_no, block) = (
                    void.operator_no.clone(),
                    void.supervisor_password_block.clone(),
                );
                match self
                    .approver(terminal_id, keys, &operator_no, &block)
                    .await?
                {
                    Ok(by) => self.gateway.void(terminal_id, void, by).await,
                    Err((code, text)) => Ok(step_refused(
                        terminal_id,
                        pb::TransactionType::PurchaseVoid,
                        (void.batch_no, void.stan),
                        &operator_no,
                        void.amount,
                        code,
                        text,
                    )),
                }
            }
            Body::Refund(refund) => {
                let (operator_no, block) = (
                    refund.operator_no.clone(),
                    refund.supervisor_password_block.clone(),
                );
                match self
                    .approver(terminal_id, keys, &operator_no, &block)
                    .await?
                {
                    Ok(by) => self.gateway.refund(terminal_id, refund, by).await,
                    Err((code, text)) => Ok(step_refused(
                        terminal_id,
                        pb::TransactionType::Refund,
                        (refund.batch_no, refund.stan),
                        &operator_no,
                        refund.amount,
                        code,
                        text,
                    )),
                }
            }
            Body::SignIn(_) => Err(GatewayError::Internal(
                "sign-in routed as a session message".to_owned(),
            )),
            other => Ok(error(
                "40",
                format!(
                    "{} is not supported by this host yet",
                    body_name(Some(&other))
                ),
                false,
            )),
        }
    }

    /// 隔日强制结算: a financial request of a terminal whose open batch began on an earlier
    /// business day is refused until the batch is settled; the terminal is also sent a
    /// `ForceSettlementCommand`. Reversals and settlement itself go through.
    async fn settle_first(
        &mut self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        body: &Body,
    ) -> Option<HostBody> {
        use pb::TransactionType as T;
        let (transaction_type, batch_no, stan, operator_no, amount) = match body {
            Body::Purchase(r) => (
                T::Purchase,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            Body::BalanceInquiry(r) => {
                (T::BalanceInquiry, r.batch_no, r.stan, &r.operator_no, None)
            }
            Body::PreAuth(r) => (
                T::PreAuth,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            Body::PreAuthCompletion(r) => (
                T::PreAuthCompletion,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            Body::PreAuthVoid(r) => (
                T::PreAuthVoid,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            Body::Void(r) => (
                T::PurchaseVoid,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            Body::Refund(r) => (
                T::Refund,
                r.batch_no,
                r.stan,
                &r.operator_no,
                r.amount.clone(),
            ),
            _ => return None,
        };
        let (batch, date) = match self.gateway.forced_settlement(terminal_id).await {
            Ok(Some(found)) => found,
            Ok(None) => return None,
            Err(error) => {
                warn!(%error, "checking for a forced settlement");
                return None;
            }
        };
        let reason = format!(
            "隔日强制结算 forced settlement: batch {batch:06} of {date} must be settled before              new transactions (pos-agent settle)"
        );
        let mut command = pb::HostMessage {
            in_reply_to: 0,
            mac: Vec::new(),
            body: Some(HostBody::Command(pb::HostCommand {
                command_id: uuid::Uuid::now_v7().to_string(),
                command: Some(pb::host_command::Command::ForceSettlement(
                    pb::ForceSettlementCommand {
                        batch_no: batch,
                        business_date: date,
                        reason: reason.clone(),
                    },
                )),
            })),
        };
        if let Ok(mac) = self
            .gateway
            .hsm
            .generate_mac(&keys.mac, &mac_input(&command, |m| m.mac.clear()))
        {
            command.mac = mac.to_vec();
            self.push = Some(command);
        }
        Some(step_refused(
            terminal_id,
            transaction_type,
            (batch_no, stan),
            operator_no,
            amount,
            "12",
            reason,
        ))
    }

    /// Who authorizes a void or refund: the supervisor when its password block is present and
    /// right, otherwise the logged-in operator itself (the reversal service applies the
    /// deployment's policy). `Err` with the code and words when the operator is not logged in
    /// or the supervisor's password is wrong.
    async fn approver(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        operator_no: &str,
        supervisor_block: &[u8],
    ) -> Result<std::result::Result<String, (&'static str, String)>> {
        if !self
            .gateway
            .hot
            .operator_logged_in(terminal_id.as_str(), &keys.session_id, operator_no)
            .await?
        {
            return Ok(Err((
                "12",
                format!("operator {operator_no:?} is not logged in on this terminal"),
            )));
        }
        if supervisor_block.is_empty() {
            return Ok(Ok(operator_no.to_owned()));
        }
        let password = self.password(keys, supervisor_block)?;
        let supervisor = self
            .load_operator(&operator_key(terminal_id, operator::SUPERVISOR_NO)?)
            .await?;
        if supervisor.locked {
            return Ok(Err((
                "75",
                "the supervisor is locked; posctl must unlock it".to_owned(),
            )));
        }
        if !password_matches(password, supervisor.password_hash.clone()).await? {
            return Ok(Err(("55", "wrong supervisor password".to_owned())));
        }
        Ok(Ok(operator::SUPERVISOR_NO.to_owned()))
    }

    fn password(&self, keys: &SessionKeys, block: &[u8]) -> Result<String> {
        self.gateway
            .hsm
            .decrypt_password_block(&keys.pin, block)
            .map_err(|_| GatewayError::BadRequest("the password block is malformed".to_owned()))
    }

    async fn load_operator(&self, key: &OperatorKey) -> Result<OperatorState> {
        self.gateway
            .repo
            .load::<OperatorState>(&key.aggregate_id())
            .await?
            .ok_or_else(|| RegistryError::not_found("operator", key.aggregate_id()).into())
    }

    async fn operator(&self, command: OperatorCommand) -> Result<Option<OperatorState>> {
        let key = command.key().clone();
        let ctx = Ctx::at(now());
        self.gateway
            .execute::<OperatorState, _>(
                &key.aggregate_id(),
                key.terminal_id.as_str(),
                "",
                |state| operator::decide(state, command, &ctx),
            )
            .await
    }

    async fn operator_login(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        login: pb::OperatorLoginRequest,
    ) -> Result<HostBody> {
        let key = operator_key(terminal_id, &login.operator_no)?;
        let password = self.password(keys, &login.password_block)?;
        let answer = |code: &str, message: String, state: Option<&OperatorState>| {
            HostBody::OperatorLogin(pb::OperatorLoginResponse {
                response_code: code.to_owned(),
                response_message: message,
                operator_no: login.operator_no.clone(),
                role: operator::Role::of(&key.operator_no).to_proto() as i32,
                must_change_password: state.is_some_and(|s| s.must_change_password),
                remaining_attempts: state.map_or(0, OperatorState::remaining_attempts),
            })
        };
        let current = match self.load_operator(&key).await {
            Ok(state) => state,
            Err(e) => {
                let (code, text) = refusal_code(&e);
                return Ok(answer(code, text, None));
            }
        };
        let ok = password_matches(password, current.password_hash.clone()).await?;
        let command = OperatorCommand::Login {
            key: key.clone(),
            session_id: keys.session_id.clone(),
            password_ok: ok,
        };
        match self.operator(command).await {
            Ok(state) => {
                self.gateway
                    .hot
                    .set_operator_login(
                        terminal_id.as_str(),
                        &keys.session_id,
                        key.operator_no.as_str(),
                        true,
                    )
                    .await?;
                Ok(answer("00", "logged in".to_owned(), state.as_ref()))
            }
            Err(e) => {
                let after = self.load_operator(&key).await.ok();
                let (code, text) = refusal_code(&e);
                Ok(answer(code, text, after.as_ref()))
            }
        }
    }

    async fn change_password(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        change: pb::ChangeOperatorPassword,
    ) -> Result<HostBody> {
        let key = operator_key(terminal_id, &change.operator_no)?;
        let current_password = self.password(keys, &change.current_password_block)?;
        let new_password = self.password(keys, &change.new_password_block)?;
        if let Err(problem) = validate_new_password(&new_password) {
            return Ok(ack(
                "12",
                format!("new password not acceptable: {}", problem.message),
            ));
        }
        let current = self.load_operator(&key).await?;
        let ok = password_matches(current_password, current.password_hash.clone()).await?;
        let new_password_hash = new_hash(new_password).await?;
        self.operator(OperatorCommand::ChangePassword {
            key,
            session_id: keys.session_id.clone(),
            current_password_ok: ok,
            new_password_hash,
        })
        .await?;
        Ok(ack("00", "password changed"))
    }

    async fn unlock(
        &self,
        terminal_id: &TerminalId,
        keys: &SessionKeys,
        unlock: pb::UnlockOperatorOnTerminal,
    ) -> Result<HostBody> {
        let key = operator_key(terminal_id, &unlock.operator_no)?;
        let supervisor_key = operator_key(terminal_id, operator::SUPERVISOR_NO)?;
        let password = self.password(keys, &unlock.supervisor_password_block)?;
        let supervisor = self.load_operator(&supervisor_key).await?;
        if supervisor.locked {
            return Ok(ack("75", "the supervisor is locked; posctl must unlock it"));
        }
        if !password_matches(password, supervisor.password_hash.clone()).await? {
            return Ok(ack("55", "wrong supervisor password"));
        }
        self.operator(OperatorCommand::Unlock {
            key,
            by: UnlockedBy::Operator(supervisor_key.operator_no),
            reason: "unlocked by the supervisor on the terminal".to_owned(),
        })
        .await?;
        Ok(ack("00", "unlocked"))
    }
}

/// The answer to a void or refund the gateway refused before asking the reversal service.
fn step_refused(
    terminal_id: &TerminalId,
    transaction_type: pb::TransactionType,
    (batch_no, stan): (u32, u32),
    operator_no: &str,
    amount: Option<pb::Money>,
    code: &str,
    message: String,
) -> HostBody {
    HostBody::Transaction(pb::TransactionResponse {
        response_code: code.to_owned(),
        response_message: message,
        transaction_type: transaction_type as i32,
        amount,
        terminal_id: terminal_id.to_string(),
        batch_no,
        stan,
        operator_no: operator_no.to_owned(),
        host_time: Some(prost_types::Timestamp::from(SystemTime::now())),
        ..pb::TransactionResponse::default()
    })
}

fn operator_key(terminal_id: &TerminalId, number: &str) -> Result<OperatorKey> {
    let operator_no = OperatorNo::parse(number).map_err(|_| {
        GatewayError::BadRequest(format!(
            "operator number must be two digits, got {number:?}"
        ))
    })?;
    Ok(OperatorKey::new(terminal_id.clone(), operator_no))
}

fn body_name(body: Option<&Body>) -> &'static str {
    match body {
        None => "empty",
        Some(Body::SignIn(_)) => "sign_in",
        Some(Body::SignOut(_)) => "sign_out",
        Some(Body::OperatorLogin(_)) => "operator_login",
        Some(Body::OperatorLogout(_)) => "operator_logout",
        Some(Body::ChangeOperatorPassword(_)) => "change_password",
        Some(Body::UnlockOperator(_)) => "unlock_operator",
        Some(Body::Heartbeat(_)) => "heartbeat",
        Some(Body::Purchase(_)) => "purchase",
        Some(Body::BalanceInquiry(_)) => "balance_inquiry",
        Some(Body::PreAuth(_)) => "pre_auth",
        Some(Body::PreAuthCompletion(_)) => "pre_auth_completion",
        Some(Body::PreAuthVoid(_)) => "pre_auth_void",
        Some(Body::Void(_)) => "void",
        Some(Body::Refund(_)) => "refund",
        Some(Body::Reversal(_)) => "reversal",
        Some(Body::Settlement(_)) => "settlement",
        Some(_) => "other",
    }
}

type HostStream = Pin<Box<dyn Stream<Item = std::result::Result<pb::HostMessage, Status>> + Send>>;

#[tonic::async_trait]
impl TerminalGateway for TerminalService {
    async fn activate(
        &self,
        request: Request<pb::ActivateRequest>,
    ) -> std::result::Result<Response<pb::ActivateResponse>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_default();
        let request = request.into_inner();
        self.0
            .limit_activation_attempts(&peer, &request.serial_number)
            .await?;
        activation::answer(self.0.activate_device(request).await)
    }

    type ConnectStream = HostStream;

    async fn connect(
        &self,
        request: Request<Streaming<pb::TerminalMessage>>,
    ) -> std::result::Result<Response<Self::ConnectStream>, Status> {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let incoming = request.into_inner();
        let (tx, rx) = mpsc::channel(16);
        let session = Session {
            gateway: Arc::clone(&self.0),
            peer,
            terminal_id: None,
            session_id: String::new(),
            push: None,
            mac_failures: 0,
        };
        tokio::spawn(session.run(incoming, tx));
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}
