//! The flows: assess a transaction (signals from Redis in one round trip, the rules, the alert
//! after the answer), and manage the blacklist (event first, then the projection).

use std::time::{Duration, Instant, SystemTime};

use pos_domain::time::{BusinessDay, civil_from_days, days_from_iso_date};
use pos_domain::{Pan, TokenKey};
use pos_events::{AggregateRef, EventPublisher, Payload, Topic, new_envelope};
use pos_proto::v1 as pb;
use prost_types::Timestamp;
use tonic::Status;
use tracing::{debug, warn};

use crate::assess::{self, Place, Trading, is_chip_card, is_stripe_read};
use crate::lists::{Lists, millis_of, now_ms};
use crate::metrics;
use crate::reload::RulesInForce;
use crate::signals::{self, Observation, Spans};

/// Producer name in the events.
pub const PRODUCER: &str = "fraud-check";

/// The service's state.
#[derive(Debug)]
pub struct Service {
    /// Blacklist and alerts.
    pub lists: Lists,
    /// Rules in force.
    pub rules: RulesInForce,
    /// Publisher of pos.fraud.v1.
    pub publisher: EventPublisher,
    /// Business day (for the volume history).
    pub business_day: BusinessDay,
    /// Token key (to blacklist a card by its PAN).
    pub tokens: TokenKey,
}

fn minutes(m: u32) -> Duration {
    Duration::from_secs(u64::from(m) * 60)
}

/// `date` minus `days`, ISO.
fn days_before(date: &str, days: u32) -> Option<String> {
    let (y, m, d) = civil_from_days(days_from_iso_date(date)? - i64::from(days));
    Some(format!("{y:04}-{m:02}-{d:02}"))
}

impl Service {
    /// Assesses one transaction.
    pub async fn assess(&self, request: pb::AssessRequest) -> Result<pb::AssessResponse, Status> {
        let started = Instant::now();
        if request.transaction_id.is_empty()
            || request.merchant_id.is_empty()
            || request.terminal_id.is_empty()
        {
            return Err(Status::invalid_argument(
                "transaction_id, merchant_id and terminal_id are required",
            ));
        }
        let loaded = self.rules.current();
        let rules = &loaded.rules;
        let kind = pb::TransactionType::try_from(request.transaction_type)
            .unwrap_or(pb::TransactionType::Unspecified);
        let entry_mode = pb::CardEntryMode::try_from(request.entry_mode)
            .unwrap_or(pb::CardEntryMode::Unspecified);
        let card = request.card.clone().unwrap_or_default();
        let today = self.business_day.today();
        let mut dates = vec![today.clone()];
        dates.extend(
            (1..=rules.cash_out_volume_jump.history_days).filter_map(|d| days_before(&today, d)),
        );
        let place = request
            .terminal_location
            .as_ref()
            .map(|l| Place {
                city: l.city.clone(),
                coordinates: l.latitude.zip(l.longitude),
            })
            .unwrap_or_default();
        let counted = matches!(
            kind,
            pb::TransactionType::Purchase | pb::TransactionType::PreAuth
        );
        let observation = Observation {
            transaction_id: &request.transaction_id,
            card_token: &card.card_token,
            bin: &card.bin,
            terminal_id: &request.terminal_id,
            merchant_id: &request.merchant_id,
            amount_minor: request.amount.as_ref().map_or(0, |m| m.minor_units),
            counted,
            fallback: is_chip_card(&request.service_code) && is_stripe_read(entry_mode),
            place,
            dates: &dates,
            now_ms: now_ms(),
        };
        let spans = Spans {
            card: minutes(rules.velocity_card.window_minutes),
            terminal: minutes(rules.velocity_terminal.window_minutes),
            merchant: minutes(rules.velocity_merchant.window_minutes),
            split: minutes(rules.cash_out_split.window_minutes),
            fallback: minutes(rules.chip_fallback.repeat_window_minutes),
            seen: minutes(rules.cloned_card.window_minutes),
        };
        let mut signals = signals::observe(&self.lists, &observation, &spans)
            .await
            .map_err(|e| {
                warn!(error = %e, "reading the fraud signals");
                Status::unavailable("fraud signals unavailable")
            })?;
        signals.counted = counted;
        if let Some(hours) = &request.trading_hours
            && (hours.night_business || !hours.windows.is_empty())
        {
            // What authorization sends wins over the projection.
            signals.trading = Some(Trading {
                night_business: hours.night_business,
                windows: hours
                    .windows
                    .iter()
                    .filter_map(|w| {
                        Some((
                            crate::rules::minutes_of_day(&w.opens_at)?,
                            crate::rules::minutes_of_day(&w.closes_at)?,
                        ))
                    })
                    .collect(),
            });
        }
        let assessment = assess::assess(rules, &request, &signals);
        let assessment_id = uuid::Uuid::now_v7().to_string();
        metrics::record(&assessment, started.elapsed());
        debug!(
            transaction_id = %request.transaction_id,
            decision = assessment.decision.as_str_name(),
            score = assessment.score,
            "assessed"
        );
        if assessment.alerts() {
            let alert = pb::FraudAlert {
                alert_id: assessment_id.clone(),
                transaction_id: request.transaction_id.clone(),
                transaction_type: request.transaction_type,
                merchant_id: request.merchant_id.clone(),
                terminal_id: request.terminal_id.clone(),
                card: request.card.clone(),
                entry_mode: request.entry_mode,
                amount: request.amount,
                decision: assessment.decision as i32,
                score: assessment.score,
                reasons: assessment.reasons.clone(),
                rules_version: rules.version.clone(),
                local_datetime: request.local_datetime.clone(),
            };
            // The answer does not wait for the broker: authorization's own event carries the
            // decision and its reasons; the alert is the analysts' copy.
            tokio::spawn(raise(self.publisher.clone(), self.lists.clone(), alert));
        }
        Ok(pb::AssessResponse {
            decision: assessment.decision as i32,
            score: assessment.score,
            reasons: assessment.reasons,
            rules_version: rules.version.clone(),
            assessment_id,
        })
    }

    /// Adds a blacklist entry (or returns the identical active one).
    pub async fn add_entry(
        &self,
        request: pb::AddBlacklistEntryRequest,
        actor: pb::Actor,
    ) -> Result<pb::BlacklistEntry, Status> {
        use pb::add_blacklist_entry_request::Target as In;
        use pb::blacklist_entry::Target as Out;
        let reason = request.reason.trim();
        if reason.is_empty() || reason.len() > 500 {
            return Err(Status::invalid_argument(
                "reason is required (at most 500 characters)",
            ));
        }
        let now = SystemTime::now();
        if let Some(expires) = &request.expires_at
            && millis_of(Some(expires)) <= now_ms()
        {
            return Err(Status::invalid_argument("expires_at must be in the future"));
        }
        let (kind, target, masked_pan) = match request.target {
            Some(In::Pan(pan)) => {
                let pan = Pan::parse(pan.trim()).map_err(|e| {
                    Status::invalid_argument(format!("pan: not a valid card number: {e}"))
                })?;
                (
                    pb::BlacklistKind::CardToken,
                    Out::CardToken(pan.token(&self.tokens).to_string()),
                    pan.masked().to_string(),
                )
            }
            Some(In::CardToken(token)) => {
                let token = token.trim().to_ascii_lowercase();
                if token.len() != 64 || !token.bytes().all(|b| b.is_ascii_hexdigit()) {
                    return Err(Status::invalid_argument(
                        "card_token: must be 64 hex characters (HMAC-SHA-256)",
                    ));
                }
                (
                    pb::BlacklistKind::CardToken,
                    Out::CardToken(token),
                    String::new(),
                )
            }
            Some(In::BinRange(range)) => {
                let (start, end) = (range.start.trim(), range.end.trim());
                let end = if end.is_empty() { start } else { end };
                let digits = |s: &str| s.len() == 6 && s.bytes().all(|b| b.is_ascii_digit());
                if !digits(start) || !digits(end) || start > end {
                    return Err(Status::invalid_argument(
                        "bin_range: start and end must be 6-digit BINs with start <= end \
                         (fraud-check sees the first six digits of a card, never more)",
                    ));
                }
                (
                    pb::BlacklistKind::BinRange,
                    Out::BinRange(pb::BinRange {
                        start: start.to_owned(),
                        end: end.to_owned(),
                    }),
                    String::new(),
                )
            }
            Some(In::MerchantId(id)) => {
                let id = id.trim();
                if id.len() != 15 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(Status::invalid_argument(
                        "merchant_id: must be 15 letters or digits",
                    ));
                }
                (
                    pb::BlacklistKind::Merchant,
                    Out::MerchantId(id.to_owned()),
                    String::new(),
                )
            }
            Some(In::TerminalId(id)) => {
                let id = id.trim();
                if id.len() != 8 || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
                    return Err(Status::invalid_argument(
                        "terminal_id: must be 8 letters or digits",
                    ));
                }
                (
                    pb::BlacklistKind::Terminal,
                    Out::TerminalId(id.to_owned()),
                    String::new(),
                )
            }
            None => {
                return Err(Status::invalid_argument(
                    "one of pan, card_token, bin_range, merchant_id or terminal_id is required",
                ));
            }
        };
        let entry = pb::BlacklistEntry {
            entry_id: uuid::Uuid::now_v7().to_string(),
            kind: kind as i32,
            target: Some(target),
            masked_pan,
            reason: reason.to_owned(),
            added_by: Some(actor),
            added_at: Some(Timestamp::from(now)),
            expires_at: request.expires_at,
        };
        if let Some(active) = self.lists.active_for(&entry).await.map_err(store_error)? {
            return Ok(active);
        }
        self.record(
            &entry.entry_id,
            1,
            Payload::BlacklistEntryAdded(pb::BlacklistEntryAdded {
                entry: Some(entry.clone()),
            }),
        )
        .await?;
        self.lists.put_entry(&entry).await.map_err(store_error)?;
        Ok(entry)
    }

    /// Removes a blacklist entry; removing a removed entry succeeds.
    pub async fn remove_entry(
        &self,
        request: pb::RemoveBlacklistEntryRequest,
        actor: pb::Actor,
    ) -> Result<pb::BlacklistEntry, Status> {
        let reason = request.reason.trim();
        if reason.is_empty() {
            return Err(Status::invalid_argument("reason is required"));
        }
        let id = request.entry_id.trim();
        let Some(entry) = self.lists.entry(id).await.map_err(store_error)? else {
            return match self.lists.removed(id).await.map_err(store_error)? {
                Some(removed) => Ok(removed),
                None => Err(Status::not_found(format!("no blacklist entry {id}"))),
            };
        };
        self.record(
            id,
            2,
            Payload::BlacklistEntryRemoved(pb::BlacklistEntryRemoved {
                entry_id: id.to_owned(),
                kind: entry.kind,
                reason: reason.to_owned(),
                actor: Some(actor),
            }),
        )
        .await?;
        self.lists.remove_entry(id).await.map_err(store_error)?;
        Ok(entry)
    }

    async fn record(&self, entry_id: &str, sequence: u64, payload: Payload) -> Result<(), Status> {
        let envelope = new_envelope(
            &AggregateRef::new("blacklist_entry", entry_id),
            sequence,
            PRODUCER,
            payload,
        );
        self.publisher
            .publish(Topic::Fraud, entry_id, &envelope)
            .await
            .map_err(|e| {
                warn!(error = %e, "recording a blacklist change");
                Status::unavailable("the event bus is unavailable: nothing was changed")
            })?;
        Ok(())
    }
}

/// Publishes an alert and, once the broker has it, lists it.
async fn raise(publisher: EventPublisher, lists: Lists, alert: pb::FraudAlert) {
    let envelope = new_envelope(
        &AggregateRef::new("fraud_alert", alert.alert_id.clone()),
        1,
        PRODUCER,
        Payload::FraudAlertRaised(pb::FraudAlertRaised {
            alert: Some(alert.clone()),
        }),
    );
    let raised_at = envelope.occurred_at;
    let key = alert.merchant_id.clone();
    match publisher.publish(Topic::Fraud, &key, &envelope).await {
        Ok(_) => {
            let view = pb::FraudAlertView {
                alert: Some(alert),
                raised_at,
            };
            if let Err(error) = lists.put_alert(&view).await {
                // The follower lists it when it reads the event back.
                warn!(%error, "listing an alert");
            }
        }
        Err(error) => {
            metrics::ALERTS_LOST.inc();
            warn!(%error, alert_id = %alert.alert_id, "publishing a fraud alert failed");
        }
    }
}

fn store_error(error: pos_store::StoreError) -> Status {
    warn!(%error, "fraud store");
    Status::unavailable("the fraud store is unavailable")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volume_history_dates_count_back_over_month_ends() {
        assert_eq!(days_before("2026-03-01", 1).as_deref(), Some("2026-02-28"));
        assert_eq!(days_before("2026-01-01", 1).as_deref(), Some("2025-12-31"));
        assert_eq!(days_before("2026-11-28", 14).as_deref(), Some("2026-11-14"));
        assert_eq!(days_before("not a date", 1), None);
    }
}
