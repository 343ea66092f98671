//! Step 2 of the flow: the request checked against the merchant's and terminal's facts and the
//! rules, the pre-authorization a completion or void acts on, and the PIN block translated
//! from the terminal's PIN key to the zone PIN key.

use std::time::SystemTime;

use pos_crypto::CryptoError;
use pos_domain::{Money, ResponseCode};
use pos_facts::MerchantFacts;
use tracing::{debug, error};

use super::{Service, store_failure};
use crate::clock::Date;
use crate::decision::Decision;
use crate::model::Request;
use crate::rules::{self, Checked, Decline};
use pos_facts::txn::TxnRecord;

impl Service {
    /// The merchant's and terminal's facts, and the request checked against them.
    pub(super) async fn validate(
        &self,
        request: &Request,
        decision: &mut Decision,
    ) -> Result<(MerchantFacts, Checked), Decline> {
        let terminal_id = request.trace.terminal_id.as_str();
        let (merchant, terminal) = tokio::join!(
            self.facts.merchant(&request.merchant_id),
            self.facts.terminal(terminal_id)
        );
        let merchant = merchant.map_err(store_failure)?;
        let terminal = terminal.map_err(store_failure)?;
        decision.mcc = merchant.as_ref().map(|m| m.mcc.clone()).unwrap_or_default();
        let today = Date::in_china(SystemTime::now());
        let checked = rules::validate(
            request,
            merchant.as_ref(),
            terminal.as_ref(),
            &self.rules,
            today,
        )?;
        // validate refuses an unknown merchant ("03"), so it is known here.
        let merchant = merchant.ok_or_else(|| {
            Decline::validation(ResponseCode::InvalidMerchant, "merchant is not known")
        })?;
        Ok((merchant, checked))
    }

    /// For a completion or pre-auth void: its pre-authorization, checked, and the held amount.
    pub(super) async fn original(
        &self,
        request: &Request,
        checked: &Checked,
        decision: &mut Decision,
    ) -> Result<Option<Money>, Decline> {
        if !request.kind.needs_original() {
            return Ok(None);
        }
        let token = checked.pan.token(&self.tokens).to_string();
        let original = self.find_original(request, &token).await?;
        let asked = request.original.clone().unwrap_or_default();
        let held = rules::check_original(
            request.kind,
            checked.amount.as_ref(),
            &original,
            &asked,
            &token,
            &request.merchant_id,
            &self.rules,
        );
        // A pre-authorization of another card or merchant is not this transaction's original.
        if !matches!(&held, Err(d) if d.code == ResponseCode::OriginalNotFound) {
            decision.original = Some(original);
        }
        held.map(Some)
    }

    /// The pre-authorization a completion or void names: by transaction id, RRN, trace, or
    /// (what a terminal knows) its approval code with the card presented.
    async fn find_original(
        &self,
        request: &Request,
        card_token: &str,
    ) -> Result<TxnRecord, Decline> {
        let Some(asked) = &request.original else {
            return Err(Decline::validation(
                ResponseCode::FormatError,
                "name the pre-authorization (its approval code and date)",
            ));
        };
        let terminal_id = if asked.terminal_id.is_empty() {
            request.trace.terminal_id.as_str()
        } else {
            asked.terminal_id.as_str()
        };
        let found = if !asked.transaction_id.is_empty() {
            self.records.get(&asked.transaction_id).await
        } else if !asked.rrn.is_empty() {
            self.records.by_rrn(&asked.rrn).await
        } else if asked.batch_no != 0 && asked.stan != 0 {
            self.records
                .by_trace(terminal_id, asked.batch_no, asked.stan)
                .await
        } else if !asked.approval_code.is_empty() {
            self.records
                .by_approval(card_token, &asked.approval_code)
                .await
        } else {
            return Err(Decline::validation(
                ResponseCode::FormatError,
                "name the pre-authorization (its approval code and date)",
            ));
        };
        match found {
            Ok(Some(original)) => Ok(original),
            Ok(None) => Err(Decline::validation(
                ResponseCode::OriginalNotFound,
                "pre-authorization not found",
            )),
            Err(e) => Err(store_failure(e)),
        }
    }

    /// The PIN block re-encrypted under the zone PIN key; `None` without a PIN.
    pub(super) async fn translate_pin(
        &self,
        request: &Request,
        checked: &Checked,
    ) -> Result<Option<[u8; 8]>, Decline> {
        let Some(key_ref) = request
            .pin_key
            .as_ref()
            .filter(|_| !request.pin_block.is_empty())
        else {
            return Ok(None);
        };
        let stored = self
            .facts
            .pin_key(request.trace.terminal_id.as_str(), key_ref.key_version)
            .await;
        let pin_key = match stored {
            Ok(Some(key)) => key,
            Ok(None) => {
                return Err(Decline::validation(
                    ResponseCode::InvalidTransaction,
                    format!(
                        "PIN key version {} is not the terminal's current key: sign in again",
                        key_ref.key_version
                    ),
                ));
            }
            Err(e) => return Err(store_failure(e)),
        };
        let translated = self.hsm.translate_pin_block(
            &pin_key,
            &self.zone.key,
            &request.pin_block,
            checked.pan.expose_digits(),
        );
        match translated {
            Ok(block) => Ok(Some(block)),
            Err(CryptoError::KeyUnwrapFailed) => {
                error!(
                    terminal_id = %request.trace.terminal_id,
                    "a PIN key does not unwrap under this HSM's LMK: is POS_HSM_LMK_FILE the gateway's?"
                );
                Err(Decline::system(
                    ResponseCode::SystemMalfunction,
                    "system malfunction: PIN keys unavailable",
                ))
            }
            Err(e) => {
                debug!(error = %e, "PIN block does not decode");
                Err(Decline::validation(
                    ResponseCode::PinBlockError,
                    "PIN block error: enter the PIN again",
                ))
            }
        }
    }
}
