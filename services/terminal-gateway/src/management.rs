//! The operators' API (TerminalManagement). Every call authenticates the operator's bearer
//! credential, checks its role, and is recorded as an `OperatorActionRecorded` event whatever
//! its outcome (refusals and denials included).

use std::time::Duration;

use pos_domain::{MerchantId, OperatorNo, TerminalId, TokenKey};
use pos_events::Topic;
use pos_proto::v1 as pb;
use pos_proto::v1::terminal_management_server::TerminalManagement;
use pos_registry::merchant::{
    self, MerchantCommand, MerchantState, Protection, ValidatedOnboarding,
};
use pos_registry::operator::{self, OperatorCommand, OperatorKey, OperatorState, UnlockedBy};
use pos_registry::terminal::{self, TerminalCommand, TerminalState};
use pos_registry::{Ctx, Payload, RegistryError};
use prost::Message;
use tonic::{Request, Response, Status};
use tracing::warn;

use crate::app::{DataKey, Gateway, now};
use crate::auth::{Caller, Role};
use crate::error::{GatewayError, Result};
use crate::{metrics, secrets, views};

type Answer<T> = std::result::Result<Response<T>, Status>;

impl Gateway {
    /// Authenticates, checks `role`, runs `work`, records the action, maps the answer.
    async fn operator_call<Req, Resp, W>(
        &self,
        request: Request<Req>,
        method: &'static str,
        role: Role,
        target: (&'static str, String),
        work: W,
    ) -> Answer<Resp>
    where
        W: AsyncFnOnce(&Caller, Req) -> Result<Resp>,
    {
        let peer = request
            .remote_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        let caller = self.credentials.authenticate(request.metadata())?;
        let outcome = match caller.require(role) {
            Err(denied) => Err(denied),
            Ok(()) => work(&caller, request.into_inner())
                .await
                .map_err(Status::from),
        };
        let status = outcome
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        metrics::MANAGEMENT_CALLS
            .with_label_values(&[method, &format!("{status:?}")])
            .inc();
        self.audit(&caller, method, target, &outcome, peer).await;
        outcome.map(Response::new)
    }

    async fn audit<T>(
        &self,
        caller: &Caller,
        method: &str,
        (target_type, target_id): (&'static str, String),
        outcome: &std::result::Result<T, Status>,
        client_address: String,
    ) {
        let (result, code, detail) = match outcome {
            Ok(_) => (pb::ActionOutcome::Succeeded, "OK".to_owned(), String::new()),
            Err(status) => {
                let result = match status.code() {
                    tonic::Code::PermissionDenied => pb::ActionOutcome::Denied,
                    tonic::Code::Internal | tonic::Code::Unavailable => pb::ActionOutcome::Failed,
                    _ => pb::ActionOutcome::Refused,
                };
                (
                    result,
                    format!("{:?}", status.code()),
                    status.message().to_owned(),
                )
            }
        };
        let topic = if target_type == "merchant" {
            Topic::Merchants
        } else {
            Topic::Terminals
        };
        let event = Payload::OperatorActionRecorded(pb::OperatorActionRecorded {
            actor: Some(actor(caller)),
            action: format!("/pos.v1.TerminalManagement/{method}"),
            target_type: target_type.to_owned(),
            target_id: target_id.clone(),
            outcome: result as i32,
            status_code: code,
            detail,
            client_address,
        });
        let id = uuid::Uuid::now_v7().to_string();
        if let Err(error) = self
            .repo
            .record(topic, "audit", &id, &target_id, event)
            .await
        {
            warn!(%error, method, "recording an operator action failed");
        }
    }

    async fn load_merchant(&self, id: &str) -> Result<MerchantState> {
        self.repo
            .load::<MerchantState>(id)
            .await?
            .ok_or_else(|| RegistryError::not_found("merchant", id).into())
    }

    async fn load_terminal(&self, id: &str) -> Result<TerminalState> {
        self.repo
            .load::<TerminalState>(id)
            .await?
            .ok_or_else(|| RegistryError::not_found("terminal", id).into())
    }

    async fn merchant_command(
        &self,
        caller: &Caller,
        command: MerchantCommand,
    ) -> Result<pb::Merchant> {
        let id = command.merchant_id().to_string();
        let ctx = Ctx::with_actor(now(), actor(caller));
        let state = self
            .execute::<MerchantState, _>(&id, &id, "", |state| {
                merchant::decide(state, command, &ctx)
            })
            .await?
            .ok_or_else(|| GatewayError::Internal("merchant vanished".to_owned()))?;
        Ok(views::merchant(&state))
    }

    async fn terminal_command(
        &self,
        caller: &Caller,
        command: TerminalCommand,
    ) -> Result<TerminalState> {
        let id = command.terminal_id().to_string();
        let ctx = Ctx::with_actor(now(), actor(caller));
        self.execute::<TerminalState, _>(&id, &id, "", |state| {
            terminal::decide(state, command, &ctx)
        })
        .await?
        .ok_or_else(|| GatewayError::Internal("terminal vanished".to_owned()))
    }

    async fn operator_command(
        &self,
        caller: Option<&Caller>,
        command: OperatorCommand,
    ) -> Result<OperatorState> {
        let key = command.key().clone();
        let ctx = match caller {
            Some(caller) => Ctx::with_actor(now(), actor(caller)),
            None => Ctx::at(now()),
        };
        self.execute::<OperatorState, _>(
            &key.aggregate_id(),
            key.terminal_id.as_str(),
            "",
            |state| operator::decide(state, command, &ctx),
        )
        .await?
        .ok_or_else(|| GatewayError::Internal("operator vanished".to_owned()))
    }

    async fn onboard(
        &self,
        caller: &Caller,
        request: pb::OnboardMerchantRequest,
    ) -> Result<pb::OnboardMerchantResponse> {
        let digest = self
            .tokens
            .keyed_hash("onboarding-request", &request.encode_to_vec());
        if !request.request_id.is_empty() {
            let key = self
                .repo
                .store()
                .key(&["onboarding-request", &request.request_id]);
            if let Some(existing) = self.repo.store().get(&key).await? {
                let (merchant_id, first_digest) = String::from_utf8_lossy(&existing)
                    .split_once(' ')
                    .map(|(a, b)| (a.to_owned(), b.to_owned()))
                    .unwrap_or_default();
                if first_digest != digest {
                    return Err(GatewayError::BadRequest(
                        "request_id was already used for a different onboarding request".to_owned(),
                    ));
                }
                let merchant = self.load_merchant(&merchant_id).await?;
                return Ok(pb::OnboardMerchantResponse {
                    merchant: Some(views::merchant(&merchant)),
                });
            }
        }
        let validated = merchant::validate_onboarding(&request, now())?;
        let protection = protect(&validated, &self.tokens, &self.data_key, digest.clone())?;
        let merchant_id = new_merchant_id()?;
        let command = validated.into_command(merchant_id.clone(), protection)?;
        let merchant = self.merchant_command(caller, command).await?;
        if !request.request_id.is_empty() {
            let key = self
                .repo
                .store()
                .key(&["onboarding-request", &request.request_id]);
            let record = format!("{merchant_id} {digest}");
            self.repo
                .store()
                .put(&key, record.as_bytes(), Duration::from_secs(7 * 86_400))
                .await?;
        }
        Ok(pb::OnboardMerchantResponse {
            merchant: Some(merchant),
        })
    }

    async fn register(
        &self,
        caller: &Caller,
        request: pb::RegisterTerminalRequest,
    ) -> Result<pb::RegisterTerminalResponse> {
        let merchant = self.load_merchant(&request.merchant_id).await?;
        let terminal_id = if request.terminal_id.is_empty() {
            self.new_terminal_id().await?
        } else {
            TerminalId::parse(&request.terminal_id)
                .map_err(|e| RegistryError::invalid("terminal_id", e.to_string()))?
        };
        // A terminal stands in its merchant's city unless told otherwise.
        let mut location = request.location.unwrap_or_default();
        if location.city.trim().is_empty() {
            location.city = merchant.onboarded.city.clone();
        }
        let command = TerminalCommand::Register(terminal::RegisterTerminal {
            terminal_id,
            merchant: merchant.standing(),
            serial_number: request.serial_number,
            model: request.model,
            location,
        });
        let state = self.terminal_command(caller, command).await?;
        Ok(pb::RegisterTerminalResponse {
            terminal: Some(views::terminal(&state)),
        })
    }

    async fn new_terminal_id(&self) -> Result<TerminalId> {
        for _ in 0..20 {
            let digits = u32::from_be_bytes(secrets::random_bytes::<4>()) % 100_000_000;
            let id = TerminalId::parse(&format!("{digits:08}"))
                .map_err(|e| GatewayError::Internal(e.to_string()))?;
            if self
                .repo
                .load::<TerminalState>(id.as_str())
                .await?
                .is_none()
            {
                return Ok(id);
            }
        }
        Err(GatewayError::Internal(
            "no free terminal id found".to_owned(),
        ))
    }

    async fn issue_code(
        &self,
        caller: &Caller,
        request: pb::IssueActivationCodeRequest,
    ) -> Result<pb::IssueActivationCodeResponse> {
        let terminal = self.load_terminal(&request.terminal_id).await?;
        let merchant = self.load_merchant(terminal.merchant_id.as_str()).await?;
        let ttl = match request.ttl_seconds {
            0 => self.config.activation_ttl(),
            seconds => Duration::from_secs(u64::from(seconds).min(86_400)),
        };
        let code = format!(
            "{:08}",
            u32::from_be_bytes(secrets::random_bytes::<4>()) % 100_000_000
        );
        let code_hash = crate::activation::code_hash(&self.tokens, &code);
        let expires_at = now() + ttl;
        let command = TerminalCommand::IssueActivationCode(terminal::IssueActivationCode {
            terminal_id: terminal.terminal_id.clone(),
            merchant: merchant.standing(),
            code_id: uuid::Uuid::now_v7().to_string(),
            code_hash: code_hash.clone(),
            expires_at,
            max_attempts: self.config.activation_max_attempts,
        });
        self.terminal_command(caller, command).await?;
        crate::activation::remember_code(self, &code_hash, terminal.terminal_id.as_str(), ttl)
            .await?;
        Ok(pb::IssueActivationCodeResponse {
            activation_code: code,
            terminal_id: terminal.terminal_id.to_string(),
            expires_at: Some(prost_types::Timestamp::from(expires_at)),
            max_attempts: self.config.activation_max_attempts,
        })
    }

    /// Ids of every aggregate of `kind` whose id matches the glob `middle` (a SCAN: operator
    /// listings, not a hot path).
    pub(crate) async fn all_ids(&self, kind: &str, middle: &str) -> Result<Vec<String>> {
        let store = self.repo.store();
        let prefix = store.key(&["agg", kind, ""]);
        let keys = store
            .scan_keys(&store.key(&["agg", kind, middle, "events"]))
            .await?;
        Ok(keys
            .iter()
            .filter_map(|k| {
                k.strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_suffix(":events"))
                    .map(str::to_owned)
            })
            .collect())
    }
}

/// The tokens and ciphertexts of an onboarding's personal data. A settlement account that is a
/// card gets the card's own token too (`Pan::token`, as transactions carry it), so that
/// fraud-check recognises the merchant's card paying at its terminals.
fn protect(
    validated: &ValidatedOnboarding,
    tokens: &TokenKey,
    data_key: &DataKey,
    request_digest: String,
) -> Result<Protection> {
    let account_number = validated.account_number().expose().as_bytes();
    Ok(Protection {
        legal_person_name_token: tokens.keyed_hash(
            "legal-person-name",
            validated.legal_person_name().expose().as_bytes(),
        ),
        legal_person_id_token: tokens.keyed_hash(
            "resident-id",
            validated.legal_person_id_number().expose().as_bytes(),
        ),
        contact_phone_encrypted: data_key.encrypt(
            "contact-phone",
            validated.contact_phone().expose().as_bytes(),
        )?,
        account_number_token: tokens.keyed_hash("account-number", account_number),
        account_number_encrypted: data_key.encrypt("account-number", account_number)?,
        account_card_token: validated.account_card().map(|card| card.token(tokens)),
        request_digest,
    })
}

fn actor(caller: &Caller) -> pb::Actor {
    pb::Actor {
        subject: format!("ops:{}", caller.name),
        role: caller.roles_text(),
    }
}

/// A new 15-digit merchant id: acquirer prefix 898 + 12 random digits.
fn new_merchant_id() -> Result<MerchantId> {
    let random = u64::from_be_bytes(secrets::random_bytes::<8>()) % 1_000_000_000_000;
    MerchantId::parse(&format!("898{random:012}"))
        .map_err(|e| GatewayError::Internal(e.to_string()))
}

fn operator_key(reference: Option<pb::OperatorRef>) -> Result<OperatorKey> {
    let reference =
        reference.ok_or_else(|| GatewayError::BadRequest("operator is required".to_owned()))?;
    let terminal_id = TerminalId::parse(&reference.terminal_id)
        .map_err(|e| RegistryError::invalid("operator.terminal_id", e.to_string()))?;
    let operator_no = OperatorNo::parse(&reference.operator_no)
        .map_err(|e| RegistryError::invalid("operator.operator_no", e.to_string()))?;
    Ok(OperatorKey::new(terminal_id, operator_no))
}

/// The audit target of an operator request: `{terminal_id}:{operator_no}`.
fn operator_target(reference: Option<&pb::OperatorRef>) -> (&'static str, String) {
    let id = reference
        .map(|o| format!("{}:{}", o.terminal_id, o.operator_no))
        .unwrap_or_default();
    ("operator", id)
}

fn merchant_id(text: &str) -> Result<MerchantId> {
    MerchantId::parse(text).map_err(|e| RegistryError::invalid("merchant_id", e.to_string()).into())
}

#[tonic::async_trait]
impl TerminalManagement for Gateway {
    async fn onboard_merchant(
        &self,
        request: Request<pb::OnboardMerchantRequest>,
    ) -> Answer<pb::OnboardMerchantResponse> {
        let target = ("merchant", String::new());
        self.operator_call(
            request,
            "OnboardMerchant",
            Role::Onboarding,
            target,
            async |caller, req| self.onboard(caller, req).await,
        )
        .await
    }

    async fn get_merchant(
        &self,
        request: Request<pb::GetMerchantRequest>,
    ) -> Answer<pb::GetMerchantResponse> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        self.operator_call(
            request,
            "GetMerchant",
            Role::Onboarding,
            target,
            async |_, req| {
                let merchant = self.load_merchant(&req.merchant_id).await?;
                Ok(pb::GetMerchantResponse {
                    merchant: Some(views::merchant(&merchant)),
                })
            },
        )
        .await
    }

    async fn list_merchants(
        &self,
        request: Request<pb::ListMerchantsRequest>,
    ) -> Answer<pb::ListMerchantsResponse> {
        self.operator_call(
            request,
            "ListMerchants",
            Role::Onboarding,
            ("merchant", String::new()),
            async |_, req| {
                let mut merchants = Vec::new();
                for id in self.all_ids("merchant", "*").await? {
                    if let Some(state) = self.repo.load::<MerchantState>(&id).await? {
                        let view = views::merchant(&state);
                        if req.status == 0 || req.status == view.status {
                            merchants.push(view);
                        }
                    }
                }
                Ok(pb::ListMerchantsResponse {
                    merchants,
                    page: None,
                })
            },
        )
        .await
    }

    async fn approve_merchant(
        &self,
        request: Request<pb::ApproveMerchantRequest>,
    ) -> Answer<pb::ApproveMerchantResponse> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        self.operator_call(
            request,
            "ApproveMerchant",
            Role::Onboarding,
            target,
            async |caller, req| {
                let command = MerchantCommand::Approve {
                    merchant_id: merchant_id(&req.merchant_id)?,
                    note: req.note,
                };
                Ok(pb::ApproveMerchantResponse {
                    merchant: Some(self.merchant_command(caller, command).await?),
                })
            },
        )
        .await
    }

    async fn activate_merchant(
        &self,
        request: Request<pb::ActivateMerchantRequest>,
    ) -> Answer<pb::ActivateMerchantResponse> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        self.operator_call(
            request,
            "ActivateMerchant",
            Role::Onboarding,
            target,
            async |caller, req| {
                let command = MerchantCommand::Activate {
                    merchant_id: merchant_id(&req.merchant_id)?,
                    note: req.note,
                };
                Ok(pb::ActivateMerchantResponse {
                    merchant: Some(self.merchant_command(caller, command).await?),
                })
            },
        )
        .await
    }

    async fn suspend_merchant(
        &self,
        request: Request<pb::SuspendMerchantRequest>,
    ) -> Answer<pb::SuspendMerchantResponse> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        self.operator_call(
            request,
            "SuspendMerchant",
            Role::Risk,
            target,
            async |caller, req| {
                let command = MerchantCommand::Suspend {
                    merchant_id: merchant_id(&req.merchant_id)?,
                    reason: req.reason,
                };
                Ok(pb::SuspendMerchantResponse {
                    merchant: Some(self.merchant_command(caller, command).await?),
                })
            },
        )
        .await
    }

    async fn update_fee_schedule(
        &self,
        request: Request<pb::UpdateFeeScheduleRequest>,
    ) -> Answer<pb::UpdateFeeScheduleResponse> {
        let target = ("merchant", request.get_ref().merchant_id.clone());
        self.operator_call(
            request,
            "UpdateFeeSchedule",
            Role::Onboarding,
            target,
            async |caller, req| {
                let fee_schedule = merchant::validate_fee_schedule(req.fee_schedule.as_ref())?;
                let command = MerchantCommand::ChangeFeeSchedule {
                    merchant_id: merchant_id(&req.merchant_id)?,
                    fee_schedule,
                    effective_from: req.effective_from.clone(),
                };
                let merchant = self.merchant_command(caller, command).await?;
                Ok(pb::UpdateFeeScheduleResponse {
                    merchant: Some(merchant),
                    effective_from: req.effective_from,
                })
            },
        )
        .await
    }

    async fn register_terminal(
        &self,
        request: Request<pb::RegisterTerminalRequest>,
    ) -> Answer<pb::RegisterTerminalResponse> {
        let target = ("terminal", request.get_ref().terminal_id.clone());
        self.operator_call(
            request,
            "RegisterTerminal",
            Role::Onboarding,
            target,
            async |caller, req| self.register(caller, req).await,
        )
        .await
    }

    async fn get_terminal(
        &self,
        request: Request<pb::GetTerminalRequest>,
    ) -> Answer<pb::GetTerminalResponse> {
        let target = ("terminal", request.get_ref().terminal_id.clone());
        self.operator_call(
            request,
            "GetTerminal",
            Role::Onboarding,
            target,
            async |_, req| {
                let terminal = self.load_terminal(&req.terminal_id).await?;
                let mut status = self.hot.fleet(&req.terminal_id).await?;
                status.merchant_id = terminal.merchant_id.to_string();
                if status.batch_no == 0 {
                    status.batch_no = terminal.batch_no.value();
                }
                Ok(pb::GetTerminalResponse {
                    terminal: Some(views::terminal(&terminal)),
                    status: Some(status),
                })
            },
        )
        .await
    }

    async fn list_terminals(
        &self,
        request: Request<pb::ListTerminalsRequest>,
    ) -> Answer<pb::ListTerminalsResponse> {
        let target = ("terminal", String::new());
        self.operator_call(
            request,
            "ListTerminals",
            Role::Onboarding,
            target,
            async |_, req| {
                let mut terminals = Vec::new();
                for id in self.all_ids("terminal", "*").await? {
                    if let Some(state) = self.repo.load::<TerminalState>(&id).await? {
                        let view = views::terminal(&state);
                        let merchant_matches =
                            req.merchant_id.is_empty() || view.merchant_id == req.merchant_id;
                        let state_matches = req.state == 0 || req.state == view.state;
                        if merchant_matches && state_matches {
                            terminals.push(view);
                        }
                    }
                }
                Ok(pb::ListTerminalsResponse {
                    terminals,
                    page: None,
                })
            },
        )
        .await
    }

    async fn issue_activation_code(
        &self,
        request: Request<pb::IssueActivationCodeRequest>,
    ) -> Answer<pb::IssueActivationCodeResponse> {
        let target = ("terminal", request.get_ref().terminal_id.clone());
        self.operator_call(
            request,
            "IssueActivationCode",
            Role::Onboarding,
            target,
            async |caller, req| self.issue_code(caller, req).await,
        )
        .await
    }

    async fn suspend_terminal(
        &self,
        request: Request<pb::SuspendTerminalRequest>,
    ) -> Answer<pb::SuspendTerminalResponse> {
        let target = ("terminal", request.get_ref().terminal_id.clone());
        self.operator_call(
            request,
            "SuspendTerminal",
            Role::Risk,
            target,
            async |caller, req| {
                let terminal_id = TerminalId::parse(&req.terminal_id)
                    .map_err(|e| RegistryError::invalid("terminal_id", e.to_string()))?;
                let command = TerminalCommand::Suspend {
                    terminal_id,
                    reason: req.reason,
                };
                let state = self.terminal_command(caller, command).await?;
                Ok(pb::SuspendTerminalResponse {
                    terminal: Some(views::terminal(&state)),
                })
            },
        )
        .await
    }

    async fn list_operators(
        &self,
        request: Request<pb::ListOperatorsRequest>,
    ) -> Answer<pb::ListOperatorsResponse> {
        let target = ("terminal", request.get_ref().terminal_id.clone());
        self.operator_call(
            request,
            "ListOperators",
            Role::Onboarding,
            target,
            async |_, req| {
                let terminal = TerminalId::parse(&req.terminal_id)
                    .map_err(|e| RegistryError::invalid("terminal_id", e.to_string()))?;
                let mut operators = Vec::new();
                for id in self
                    .all_ids("operator", &format!("{}:*", terminal.as_str()))
                    .await?
                {
                    if let Some(state) = self.repo.load::<OperatorState>(&id).await? {
                        operators.push(views::operator(&state));
                    }
                }
                Ok(pb::ListOperatorsResponse { operators })
            },
        )
        .await
    }

    async fn create_operator(
        &self,
        request: Request<pb::CreateOperatorRequest>,
    ) -> Answer<pb::CreateOperatorResponse> {
        let target = operator_target(request.get_ref().operator.as_ref());
        self.operator_call(
            request,
            "CreateOperator",
            Role::Admin,
            target,
            async |caller, req| {
                let key = operator_key(req.operator)?;
                let command = OperatorCommand::Create {
                    role: operator::Role::of(&key.operator_no),
                    key,
                    password_hash: crate::connect::default_password_hash()?,
                    must_change_password: true,
                };
                let state = self.operator_command(Some(caller), command).await?;
                Ok(pb::CreateOperatorResponse {
                    operator: Some(views::operator(&state)),
                })
            },
        )
        .await
    }

    async fn unlock_operator(
        &self,
        request: Request<pb::UnlockOperatorRequest>,
    ) -> Answer<pb::UnlockOperatorResponse> {
        let target = operator_target(request.get_ref().operator.as_ref());
        self.operator_call(
            request,
            "UnlockOperator",
            Role::Admin,
            target,
            async |caller, req| {
                let command = OperatorCommand::Unlock {
                    key: operator_key(req.operator)?,
                    by: UnlockedBy::Console,
                    reason: req.reason,
                };
                let state = self.operator_command(Some(caller), command).await?;
                Ok(pb::UnlockOperatorResponse {
                    operator: Some(views::operator(&state)),
                })
            },
        )
        .await
    }

    async fn reset_operator_password(
        &self,
        request: Request<pb::ResetOperatorPasswordRequest>,
    ) -> Answer<pb::ResetOperatorPasswordResponse> {
        let target = operator_target(request.get_ref().operator.as_ref());
        self.operator_call(
            request,
            "ResetOperatorPassword",
            Role::Admin,
            target,
            async |caller, req| {
                let command = OperatorCommand::ResetPassword {
                    key: operator_key(req.operator)?,
                    password_hash: crate::connect::default_password_hash()?,
                };
                let state = self.operator_command(Some(caller), command).await?;
                Ok(pb::ResetOperatorPasswordResponse {
                    operator: Some(views::operator(&state)),
                })
            },
        )
        .await
    }

    async fn get_fleet_status(
        &self,
        request: Request<pb::GetFleetStatusRequest>,
    ) -> Answer<pb::GetFleetStatusResponse> {
        self.operator_call(
            request,
            "GetFleetStatus",
            Role::Onboarding,
            ("terminal", String::new()),
            async |_, req| {
                let mut terminals = Vec::new();
                let mut total = 0;
                for id in self.all_ids("terminal", "*").await? {
                    let Some(state) = self.repo.load::<TerminalState>(&id).await? else {
                        continue;
                    };
                    if !req.merchant_id.is_empty() && state.merchant_id.as_str() != req.merchant_id
                    {
                        continue;
                    }
                    total += 1;
                    let mut status = self.hot.fleet(&id).await?;
                    status.merchant_id = state.merchant_id.to_string();
                    if !req.connected_only || status.connected {
                        terminals.push(status);
                    }
                }
                let connected_count =
                    u32::try_from(terminals.iter().filter(|t| t.connected).count())
                        .unwrap_or(u32::MAX);
                Ok(pb::GetFleetStatusResponse {
                    terminals,
                    page: None,
                    connected_count,
                    total_count: total,
                })
            },
        )
        .await
    }

    async fn get_transaction_history(
        &self,
        request: Request<pb::GetTransactionHistoryRequest>,
    ) -> Answer<pb::GetTransactionHistoryResponse> {
        let target = crate::history::target(request.get_ref());
        self.operator_call(
            request,
            "GetTransactionHistory",
            Role::Onboarding,
            target,
            async |_, req| crate::history::get(&self.history, &req).await,
        )
        .await
    }

    async fn list_transactions(
        &self,
        request: Request<pb::ListTransactionsRequest>,
    ) -> Answer<pb::ListTransactionsResponse> {
        self.operator_call(
            request,
            "ListTransactions",
            Role::Onboarding,
            ("transaction", String::new()),
            async |_, req| crate::history::list(&self.history, &req).await,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::time::{Duration, SystemTime};

    use pos_domain::Pan;

    use super::*;

    const CARD: &str = "6228480402564890018";

    fn micro_request() -> pb::OnboardMerchantRequest {
        let accepted = SystemTime::now() - Duration::from_secs(3600);
        pb::OnboardMerchantRequest {
            request_id: "5b0c7e0e-1d1a-4a51-9a0e-3f0b7d2c9a11".into(),
            merchant_type: pb::MerchantType::Micro.into(),
            legal_name: "上海市徐汇区张三便利店".into(),
            display_name: "张三便利店".into(),
            city: "上海".into(),
            address: "徐汇区漕溪北路 88 号".into(),
            legal_person_name: "张三".into(),
            legal_person_id_number: "310104199001011233".into(),
            contact_phone: "13812345678".into(),
            settlement_account: Some(pb::SettlementAccountInput {
                account_name: "张三".into(),
                account_number: CARD.into(),
                bank_name: "中国农业银行上海徐汇支行".into(),
                bank_code: String::new(),
            }),
            mcc: "5411".into(),
            fee_schedule: Some(pb::FeeSchedule {
                debit_rate: "0.0050".into(),
                credit_rate: "0.0060".into(),
                ..Default::default()
            }),
            agreement: Some(pb::AgreementAcceptance {
                accepted: true,
                version: "2025-01".into(),
                accepted_at: Some(accepted.into()),
            }),
            ..Default::default()
        }
    }

    fn enterprise_request(account_number: &str) -> pb::OnboardMerchantRequest {
        let mut request = micro_request();
        request.merchant_type = pb::MerchantType::Enterprise.into();
        request.legal_name = "上海张三贸易有限公司".into();
        request.display_name = "张三贸易".into();
        request.business_licence_no = "91310110666007217T".into();
        request.settlement_account = Some(pb::SettlementAccountInput {
            account_name: "上海张三贸易有限公司".into(),
            account_number: account_number.into(),
            bank_name: "中国建设银行上海分行".into(),
            bank_code: "105290000001".into(),
        });
        request
    }

    /// The settlement account recorded in the `MerchantOnboarded` event of `request`.
    fn account_record(
        request: &pb::OnboardMerchantRequest,
        tokens: &TokenKey,
    ) -> pb::SettlementAccountRecord {
        let validated = merchant::validate_onboarding(request, SystemTime::now()).unwrap();
        let data_key = DataKey::new([7; 32]);
        let protection = protect(&validated, tokens, &data_key, "4".repeat(64)).unwrap();
        let merchant_id = MerchantId::parse("898310048990001").unwrap();
        let command = validated.into_command(merchant_id, protection).unwrap();
        let ctx = Ctx::with_actor(SystemTime::now(), pb::Actor::default());
        let events = merchant::decide(None, command, &ctx).unwrap();
        let [Payload::MerchantOnboarded(event)] = events.as_slice() else {
            panic!("expected one MerchantOnboarded, got {events:?}");
        };
        event.settlement_account.clone().unwrap()
    }

    #[test]
    fn a_settlement_card_carries_the_token_its_transactions_carry() {
        let tokens = TokenKey::from_bytes(&[0x5a; 32]).unwrap();
        let record = account_record(&micro_request(), &tokens);
        let card = Pan::parse(CARD).unwrap().token(&tokens).to_string();
        assert_eq!(record.account_card_token, card);
        assert_ne!(record.account_number_token, card);
    }

    #[test]
    fn a_corporate_account_that_is_no_card_has_no_card_token() {
        let tokens = TokenKey::from_bytes(&[0x5a; 32]).unwrap();
        let number = "31001234567890124";
        assert!(Pan::parse(number).is_err());
        let record = account_record(&enterprise_request(number), &tokens);
        assert_eq!(record.account_card_token, "");
        assert!(!record.account_number_token.is_empty());
    }
}
