//! Activation: a device presents a one-time code, its serial number and an ephemeral X25519
//! key; the gateway finds the terminal by the code's keyed hash, generates a terminal master
//! key in the HSM, records the activation, and returns the TMK sealed to the device.

use std::time::Duration;

use pos_domain::TokenKey;
use pos_proto::v1 as pb;
use pos_registry::merchant::MerchantState;
use pos_registry::operator::{self, OperatorState};
use pos_registry::terminal::{
    self, RedeemActivationCode, TerminalCommand, TerminalState, WrappedTmk,
};
use pos_registry::{ActivationRefusal, Ctx, Payload, RegistryError};
use tonic::Status;
use tracing::info;

use crate::app::{DeviceLog, Gateway, now};
use crate::error::{GatewayError, Result};
use crate::metrics;

/// Key id of keys wrapped by the software HSM's local master key.
pub const LMK_KEY_ID: &str = "lmk-1";

/// The keyed hash under which an activation code is known (never the code itself).
pub fn code_hash(tokens: &TokenKey, code: &str) -> String {
    tokens.keyed_hash("activation-code", code.trim().as_bytes())
}

/// Remembers which terminal a code belongs to until it expires (a lookup shortcut; a scan of
/// the terminals finds it too, e.g. after Redis was rebuilt).
pub async fn remember_code(
    gateway: &Gateway,
    hash: &str,
    terminal_id: &str,
    ttl: Duration,
) -> Result<()> {
    let key = gateway.repo.store().key(&["activation-code", hash]);
    gateway
        .repo
        .store()
        .put(&key, terminal_id.as_bytes(), ttl)
        .await?;
    Ok(())
}

/// Activation attempts allowed per device serial number and per network address in
/// [`ATTEMPT_WINDOW`], on top of the attempts each code allows: a guesser cannot walk the code
/// space by changing terminals, nor make the gateway scan its registry without limit.
const MAX_ATTEMPTS_PER_WINDOW: u64 = 20;
/// See [`MAX_ATTEMPTS_PER_WINDOW`].
const ATTEMPT_WINDOW: Duration = Duration::from_secs(15 * 60);

impl Gateway {
    /// Counts an activation attempt of `serial` from `peer`; refuses once either has made too
    /// many in the window.
    pub async fn limit_activation_attempts(
        &self,
        peer: &str,
        serial: &str,
    ) -> std::result::Result<(), Status> {
        let store = self.repo.store();
        for (kind, value) in [("peer", peer), ("serial", serial)] {
            if value.is_empty() {
                continue;
            }
            let key = store.key(&["activation-attempts", kind, value]);
            let attempts = store
                .incr_fixed_window(&key, ATTEMPT_WINDOW)
                .await
                .map_err(|e| Status::from(GatewayError::from(e)))?;
            if attempts > MAX_ATTEMPTS_PER_WINDOW {
                metrics::ACTIVATIONS
                    .with_label_values(&["rate_limited"])
                    .inc();
                return Err(Status::resource_exhausted(
                    "too many activation attempts: wait 15 minutes, then ask for a new code",
                ));
            }
        }
        Ok(())
    }

    async fn terminal_for_code(&self, hash: &str, serial: &str) -> Result<Option<TerminalState>> {
        let key = self.repo.store().key(&["activation-code", hash]);
        if let Some(id) = self.repo.store().get(&key).await? {
            let id = String::from_utf8_lossy(&id).into_owned();
            if let Some(state) = self.repo.load::<TerminalState>(&id).await? {
                return Ok(Some(state));
            }
        }
        // The shortcut expired or Redis was rebuilt: look through the terminals, by code
        // first, then by the registered serial number (so wrong codes count against it).
        let mut by_serial = None;
        for id in self.all_ids(terminal::AGGREGATE_TYPE, "*").await? {
            let Some(state) = self.repo.load::<TerminalState>(&id).await? else {
                continue;
            };
            if state
                .activation_code
                .as_ref()
                .is_some_and(|c| c.code_hash == hash)
            {
                return Ok(Some(state));
            }
            if !serial.is_empty() && state.expected_serial == serial {
                by_serial = Some(state);
            }
        }
        Ok(by_serial)
    }

    /// Activates a device; see the module documentation.
    pub async fn activate_device(
        &self,
        request: pb::ActivateRequest,
    ) -> Result<pb::ActivateResponse> {
        let device_key: [u8; 32] =
            request
                .device_public_key
                .as_slice()
                .try_into()
                .map_err(|_| {
                    GatewayError::BadRequest(
                        "device_public_key must be 32 bytes (X25519)".to_owned(),
                    )
                })?;
        if request.activation_code.trim().is_empty() || request.serial_number.trim().is_empty() {
            return Err(GatewayError::BadRequest(
                "activation_code and serial_number are required".to_owned(),
            ));
        }
        let hash = code_hash(&self.tokens, &request.activation_code);
        let Some(terminal) = self
            .terminal_for_code(&hash, &request.serial_number)
            .await?
        else {
            self.record_unknown_device(&request.serial_number).await?;
            return Err(RegistryError::ActivationRefused {
                reason: ActivationRefusal::UnknownCode,
                record: Vec::new(),
            }
            .into());
        };
        let merchant = self
            .repo
            .load::<MerchantState>(terminal.merchant_id.as_str())
            .await?
            .ok_or_else(|| RegistryError::not_found("merchant", &terminal.merchant_id))?;
        let tmk = self.hsm.generate_tmk()?;
        let check_value = self.hsm.check_value(&tmk)?;
        let wrapped = WrappedTmk::new(
            pb::EncryptedValue {
                ciphertext: tmk.as_bytes().to_vec(),
                nonce: Vec::new(),
                key_id: LMK_KEY_ID.to_owned(),
            },
            check_value,
        )?;
        let terminal_id = terminal.terminal_id.clone();
        let command = TerminalCommand::Redeem(Box::new(RedeemActivationCode {
            terminal_id: terminal_id.clone(),
            merchant: merchant.standing(),
            code_hash: hash,
            serial_number: request.serial_number.clone(),
            software_version: request.software_version.clone(),
            model: request.model.clone(),
            tmk: wrapped,
        }));
        let ctx = Ctx::at(now());
        self.execute::<TerminalState, _>(terminal_id.as_str(), terminal_id.as_str(), "", |state| {
            terminal::decide(state, command, &ctx)
        })
        .await?;
        self.create_initial_operators(&terminal_id).await?;
        let sealed = self
            .hsm
            .seal_tmk_for_device(&tmk, &device_key, terminal_id.as_str())?;
        info!(terminal_id = %terminal_id, "terminal activated");
        Ok(pb::ActivateResponse {
            terminal_id: terminal_id.to_string(),
            merchant_id: merchant.merchant_id.to_string(),
            merchant_name: merchant.display_name().to_owned(),
            host_public_key: sealed.host_public_key.to_vec(),
            tmk_ciphertext: sealed.ciphertext,
            tmk_nonce: sealed.nonce.to_vec(),
            tmk_check_value: check_value.to_vec(),
            initial_operator_nos: vec![
                operator::SUPERVISOR_NO.to_owned(),
                operator::FIRST_CASHIER_NO.to_owned(),
            ],
        })
    }

    async fn create_initial_operators(&self, terminal_id: &pos_domain::TerminalId) -> Result<()> {
        let commands = operator::initial_operators(
            terminal_id,
            crate::connect::default_password_hash()?,
            crate::connect::default_password_hash()?,
        )?;
        let ctx = Ctx::at(now());
        for command in commands {
            let key = command.key().clone();
            let id = key.aggregate_id();
            if self.repo.load::<OperatorState>(&id).await?.is_some() {
                continue;
            }
            self.execute::<OperatorState, _>(&id, terminal_id.as_str(), "", |state| {
                operator::decide(state, command, &ctx)
            })
            .await?;
        }
        Ok(())
    }

    /// A code that matched no terminal is recorded against the presenting device.
    async fn record_unknown_device(&self, serial: &str) -> Result<()> {
        let failed = Payload::ActivationFailed(pb::ActivationFailed {
            terminal_id: String::new(),
            code_id: String::new(),
            serial_number: serial.to_owned(),
            reason: pb::ActivationFailureReason::UnknownCode as i32,
            failed_attempts: 0,
        });
        self.execute::<DeviceLog, _>(serial, serial, "", |_| Ok(vec![failed]))
            .await?;
        Ok(())
    }
}

/// The gRPC answer to an activation, counted by outcome.
pub fn answer(
    outcome: Result<pb::ActivateResponse>,
) -> std::result::Result<tonic::Response<pb::ActivateResponse>, Status> {
    let label = match &outcome {
        Ok(_) => "ok".to_owned(),
        Err(GatewayError::Registry(RegistryError::ActivationRefused { reason, .. })) => {
            format!("{:?}", reason.proto_reason())
        }
        Err(_) => "error".to_owned(),
    };
    metrics::ACTIVATIONS.with_label_values(&[&label]).inc();
    outcome.map(tonic::Response::new).map_err(Status::from)
}
