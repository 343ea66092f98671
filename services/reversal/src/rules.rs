//! What may be voided, refunded or reversed: pure decisions over the original's record (written
//! by authorization, `pos_facts::txn`) and what this service has done to it since
//! ([`Effects`]). No I/O here; the service layer reads the state, asks these functions, then
//! calls the issuer and publishes the event.
//!
//! Response codes (REFERENCE.md): "25" original not found, "12" not voidable / refundable (its
//! state or type), "64" void amount differs from the original, "13" invalid refund amount,
//! "61" refund exceeds what remains refundable, "57" not permitted (the operator may not
//! authorize it, or the refund window has passed), "14" the presented card is not the
//! original's.

use pos_domain::ResponseCode;
use pos_domain::time::days_from_iso_date;
use pos_facts::txn::TxnRecord;

use crate::config::Approval;

/// The supervisor's operator number.
pub const SUPERVISOR: &str = "00";

/// What this service has done to an original (state kept beside its record).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Effects {
    /// Reversal id when it was reversed.
    pub reversed_by: Option<String>,
    /// Void id when it was voided.
    pub voided_by: Option<String>,
    /// Sum of its refunds in minor units.
    pub refunded_minor: i64,
}

/// Why a request is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// The response code.
    pub code: ResponseCode,
    /// Why, in words for the cashier and the history.
    pub reason: String,
}

fn refuse<T>(code: ResponseCode, reason: impl Into<String>) -> Result<T, Refusal> {
    Err(Refusal {
        code,
        reason: reason.into(),
    })
}

/// Whether a record's kind is a debit that can be voided or refunded.
fn is_debit(record: &TxnRecord) -> bool {
    matches!(record.kind.as_str(), "purchase" | "pre_auth_completion")
}

/// Whether a record's kind moved money or a hold that a reversal must undo.
pub fn is_reversible(record: &TxnRecord) -> bool {
    matches!(
        record.kind.as_str(),
        "purchase" | "pre_auth" | "pre_auth_completion" | "pre_auth_void"
    )
}

/// "50.00" from 5000 minor units (two-decimal currencies, CNY).
pub fn yuan(minor: i64) -> String {
    let sign = if minor < 0 { "-" } else { "" };
    let minor = minor.unsigned_abs();
    format!("{sign}{}.{:02}", minor / 100, minor % 100)
}

/// A void as the terminal asks for it.
#[derive(Debug, Clone)]
pub struct VoidAsk<'a> {
    /// Terminal sending the void.
    pub terminal_id: &'a str,
    /// Its merchant.
    pub merchant_id: &'a str,
    /// Its current batch.
    pub batch_no: u32,
    /// Operator who authorized it ("00" supervisor, or the operator itself).
    pub authorized_by: &'a str,
    /// Amount keyed, minor units and currency.
    pub amount: Option<(i64, &'a str)>,
    /// Token of the card, when it was presented.
    pub card_token: Option<&'a str>,
    /// Whether the original's batch was closed by settlement.
    pub batch_closed: bool,
}

/// Checks a void of `original` (the record found by STAN or RRN, `None` when none was).
pub fn check_void(
    original: Option<(&TxnRecord, &Effects)>,
    ask: &VoidAsk<'_>,
    approval: Approval,
) -> Result<(), Refusal> {
    let Some((record, effects)) = original else {
        return refuse(
            ResponseCode::OriginalNotFound,
            "original not found: check the trace number or RRN",
        );
    };
    if record.terminal_id != ask.terminal_id || record.merchant_id != ask.merchant_id {
        return refuse(
            ResponseCode::OriginalNotFound,
            "original not found at this terminal: a void is made at the terminal of the original",
        );
    }
    if !record.approved() || record.unrecorded {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was declined: there is nothing to void",
        );
    }
    if !is_debit(record) {
        return refuse(
            ResponseCode::InvalidTransaction,
            "only a purchase or a pre-auth completion can be voided (a pre-authorization is \
             released with a pre-auth void)",
        );
    }
    if effects.reversed_by.is_some() {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was reversed: there is nothing to void",
        );
    }
    if effects.voided_by.is_some() {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was already voided",
        );
    }
    if record.batch_no != ask.batch_no || ask.batch_closed {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original's batch is settled: use refund instead of void",
        );
    }
    if effects.refunded_minor > 0 {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was partly refunded: refund the rest instead of voiding",
        );
    }
    match ask.amount {
        Some((minor, currency))
            if Some(minor) == record.amount_minor && currency == record.currency => {}
        _ => {
            return refuse(
                ResponseCode::OriginalAmountIncorrect,
                format!(
                    "a void is for the original's full amount {} {}",
                    yuan(record.amount_minor.unwrap_or_default()),
                    record.currency
                ),
            );
        }
    }
    let operator_ok = ask.authorized_by == SUPERVISOR
        || (approval == Approval::Operator && ask.authorized_by == operator_of(record));
    if !operator_ok {
        let who = match approval {
            Approval::Supervisor => "the supervisor",
            Approval::Operator => "the supervisor or the operator of the original",
        };
        return refuse(
            ResponseCode::NotPermittedToCardholder,
            format!("a void must be authorized by {who}"),
        );
    }
    check_card(record, ask.card_token)
}

/// The operator of the original as its record keeps it (empty when unknown).
fn operator_of(record: &TxnRecord) -> &str {
    &record.operator_no
}

fn check_card(record: &TxnRecord, card_token: Option<&str>) -> Result<(), Refusal> {
    match card_token {
        Some(token) if token != record.card_token => refuse(
            ResponseCode::InvalidCardNumber,
            "this is not the card of the original",
        ),
        _ => Ok(()),
    }
}

/// A refund as the terminal asks for it.
#[derive(Debug, Clone)]
pub struct RefundAsk<'a> {
    /// Merchant of the terminal.
    pub merchant_id: &'a str,
    /// Business date of the original as keyed ("YYYY-MM-DD").
    pub original_date: &'a str,
    /// Amount to refund, minor units and currency.
    pub amount: Option<(i64, &'a str)>,
    /// Operator who authorized it.
    pub authorized_by: &'a str,
    /// Token of the card, when it was presented.
    pub card_token: Option<&'a str>,
    /// Today's business date ("YYYY-MM-DD", China time).
    pub today: &'a str,
    /// Refund window in days.
    pub window_days: u32,
}

/// What a refund leaves once accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefundPlan {
    /// Amount of this refund, minor units.
    pub amount_minor: i64,
    /// Refunds of the original with this one.
    pub refunded_total_minor: i64,
    /// What may still be refunded afterwards.
    pub remaining_minor: i64,
    /// Less than the original amount.
    pub partial: bool,
}

/// Checks a refund of `original` (the record found by RRN, `None` when none was).
pub fn check_refund(
    original: Option<(&TxnRecord, &Effects)>,
    ask: &RefundAsk<'_>,
    approval: Approval,
) -> Result<RefundPlan, Refusal> {
    let Some((record, effects)) = original
        .filter(|(r, _)| r.business_date == ask.original_date && r.merchant_id == ask.merchant_id)
    else {
        return refuse(
            ResponseCode::OriginalNotFound,
            "original not found: no purchase of this merchant with this RRN on that date",
        );
    };
    if !record.approved() || record.unrecorded {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was declined: there is nothing to refund",
        );
    }
    if !is_debit(record) {
        return refuse(
            ResponseCode::InvalidTransaction,
            "only a purchase or a pre-auth completion can be refunded",
        );
    }
    if effects.reversed_by.is_some() {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was reversed: there is nothing to refund",
        );
    }
    if effects.voided_by.is_some() {
        return refuse(
            ResponseCode::InvalidTransaction,
            "the original was voided: there is nothing to refund",
        );
    }
    let age = days_from_iso_date(ask.today)
        .zip(days_from_iso_date(&record.business_date))
        .map(|(today, then)| today - then);
    if age.is_none_or(|days| days > i64::from(ask.window_days)) {
        return refuse(
            ResponseCode::NotPermittedToCardholder,
            format!(
                "the original is older than the refund window of {} days",
                ask.window_days
            ),
        );
    }
    let original_minor = record.amount_minor.unwrap_or_default();
    let Some((minor, currency)) = ask.amount.filter(|(m, c)| *m > 0 && *c == record.currency)
    else {
        return refuse(
            ResponseCode::InvalidAmount,
            format!(
                "a refund amount must be above zero and in {}",
                record.currency
            ),
        );
    };
    let _ = currency;
    let remaining = original_minor - effects.refunded_minor;
    if minor > remaining {
        return refuse(
            ResponseCode::ExceedsAmountLimit,
            format!(
                "exceeds the refundable amount {} {} (refunded {} of {})",
                yuan(remaining),
                record.currency,
                yuan(effects.refunded_minor),
                yuan(original_minor)
            ),
        );
    }
    let operator_ok = ask.authorized_by == SUPERVISOR || approval == Approval::Operator;
    if !operator_ok {
        return refuse(
            ResponseCode::NotPermittedToCardholder,
            "a refund must be authorized by the supervisor",
        );
    }
    check_card(record, ask.card_token)?;
    let total = effects.refunded_minor + minor;
    Ok(RefundPlan {
        amount_minor: minor,
        refunded_total_minor: total,
        remaining_minor: original_minor - total,
        partial: minor < original_minor,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn purchase() -> TxnRecord {
        TxnRecord {
            transaction_id: "0190a0b0-0000-7000-8000-000000000001".to_owned(),
            kind: "purchase".to_owned(),
            terminal_id: "T0000001".to_owned(),
            batch_no: 3,
            stan: 12,
            merchant_id: "898310048990001".to_owned(),
            operator_no: "01".to_owned(),
            amount_minor: Some(5_000),
            currency: "CNY".to_owned(),
            card_token: "tok".to_owned(),
            response_code: "00".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            rrn: "123456789012".to_owned(),
            business_date: "2026-11-28".to_owned(),
            ..TxnRecord::default()
        }
    }

    fn void_ask() -> VoidAsk<'static> {
        VoidAsk {
            terminal_id: "T0000001",
            merchant_id: "898310048990001",
            batch_no: 3,
            authorized_by: "01",
            amount: Some((5_000, "CNY")),
            card_token: None,
            batch_closed: false,
        }
    }

    fn code<T: std::fmt::Debug>(result: Result<T, Refusal>) -> &'static str {
        result.unwrap_err().code.code()
    }

    #[test]
    fn a_purchase_of_the_open_batch_is_voided_in_full_by_its_operator_or_the_supervisor() {
        let record = purchase();
        let none = Effects::default();
        check_void(Some((&record, &none)), &void_ask(), Approval::Operator).unwrap();
        let supervisor = VoidAsk {
            authorized_by: "00",
            ..void_ask()
        };
        check_void(Some((&record, &none)), &supervisor, Approval::Supervisor).unwrap();
        let other = VoidAsk {
            authorized_by: "02",
            ..void_ask()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &other,
                Approval::Operator
            )),
            "57"
        );
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &void_ask(),
                Approval::Supervisor
            )),
            "57"
        );
    }

    #[test]
    fn voids_are_refused_with_the_reason() {
        let record = purchase();
        let none = Effects::default();
        assert_eq!(
            code(check_void(None, &void_ask(), Approval::Operator)),
            "25"
        );
        let elsewhere = VoidAsk {
            terminal_id: "T0000002",
            ..void_ask()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &elsewhere,
                Approval::Operator
            )),
            "25"
        );
        let settled = VoidAsk {
            batch_no: 4,
            ..void_ask()
        };
        let refusal = check_void(Some((&record, &none)), &settled, Approval::Operator).unwrap_err();
        assert_eq!(refusal.code.code(), "12");
        assert!(refusal.reason.contains("use refund"), "{}", refusal.reason);
        let closed = VoidAsk {
            batch_closed: true,
            ..void_ask()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &closed,
                Approval::Operator
            )),
            "12"
        );
        let voided = Effects {
            voided_by: Some("v".to_owned()),
            ..Effects::default()
        };
        let refusal =
            check_void(Some((&record, &voided)), &void_ask(), Approval::Operator).unwrap_err();
        assert!(
            refusal.reason.contains("already voided"),
            "{}",
            refusal.reason
        );
        let reversed = Effects {
            reversed_by: Some("r".to_owned()),
            ..Effects::default()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &reversed)),
                &void_ask(),
                Approval::Operator
            )),
            "12"
        );
        let partial = VoidAsk {
            amount: Some((4_999, "CNY")),
            ..void_ask()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &partial,
                Approval::Operator
            )),
            "64"
        );
        let declined = TxnRecord {
            response_code: "51".to_owned(),
            ..purchase()
        };
        assert_eq!(
            code(check_void(
                Some((&declined, &none)),
                &void_ask(),
                Approval::Operator
            )),
            "12"
        );
        let pre_auth = TxnRecord {
            kind: "pre_auth".to_owned(),
            ..purchase()
        };
        assert_eq!(
            code(check_void(
                Some((&pre_auth, &none)),
                &void_ask(),
                Approval::Operator
            )),
            "12"
        );
        let other_card = VoidAsk {
            card_token: Some("another"),
            ..void_ask()
        };
        assert_eq!(
            code(check_void(
                Some((&record, &none)),
                &other_card,
                Approval::Operator
            )),
            "14"
        );
    }

    fn refund_ask(minor: i64) -> RefundAsk<'static> {
        RefundAsk {
            merchant_id: "898310048990001",
            original_date: "2026-11-28",
            amount: Some((minor, "CNY")),
            authorized_by: "00",
            card_token: Some("tok"),
            today: "2026-12-05",
            window_days: 30,
        }
    }

    #[test]
    fn partial_refunds_add_up_to_at_most_the_original() {
        let record = purchase();
        let first = check_refund(
            Some((&record, &Effects::default())),
            &refund_ask(3_000),
            Approval::Supervisor,
        )
        .unwrap();
        assert_eq!(
            first,
            RefundPlan {
                amount_minor: 3_000,
                refunded_total_minor: 3_000,
                remaining_minor: 2_000,
                partial: true
            }
        );
        let after = Effects {
            refunded_minor: 3_000,
            ..Effects::default()
        };
        let refusal = check_refund(
            Some((&record, &after)),
            &refund_ask(2_001),
            Approval::Supervisor,
        )
        .unwrap_err();
        assert_eq!(refusal.code.code(), "61");
        assert!(refusal.reason.contains("20.00"), "{}", refusal.reason);
        let rest = check_refund(
            Some((&record, &after)),
            &refund_ask(2_000),
            Approval::Supervisor,
        )
        .unwrap();
        assert_eq!(rest.remaining_minor, 0);
        assert_eq!(rest.refunded_total_minor, 5_000);
    }

    #[test]
    fn refunds_are_refused_with_the_reason() {
        let record = purchase();
        let none = Effects::default();
        assert_eq!(
            code(check_refund(None, &refund_ask(100), Approval::Supervisor)),
            "25"
        );
        let wrong_date = RefundAsk {
            original_date: "2026-11-27",
            ..refund_ask(100)
        };
        assert_eq!(
            code(check_refund(
                Some((&record, &none)),
                &wrong_date,
                Approval::Supervisor
            )),
            "25"
        );
        let late = RefundAsk {
            today: "2026-12-29",
            ..refund_ask(100)
        };
        let refusal =
            check_refund(Some((&record, &none)), &late, Approval::Supervisor).unwrap_err();
        assert_eq!(refusal.code.code(), "57");
        assert!(refusal.reason.contains("30 days"), "{}", refusal.reason);
        let last_day = RefundAsk {
            today: "2026-12-28",
            ..refund_ask(100)
        };
        check_refund(Some((&record, &none)), &last_day, Approval::Supervisor).unwrap();
        let voided = Effects {
            voided_by: Some("v".to_owned()),
            ..Effects::default()
        };
        let refusal = check_refund(
            Some((&record, &voided)),
            &refund_ask(100),
            Approval::Supervisor,
        )
        .unwrap_err();
        assert!(refusal.reason.contains("voided"), "{}", refusal.reason);
        assert_eq!(
            code(check_refund(
                Some((&record, &none)),
                &refund_ask(0),
                Approval::Supervisor
            )),
            "13"
        );
        let cashier = RefundAsk {
            authorized_by: "01",
            ..refund_ask(100)
        };
        assert_eq!(
            code(check_refund(
                Some((&record, &none)),
                &cashier,
                Approval::Supervisor
            )),
            "57"
        );
        check_refund(Some((&record, &none)), &cashier, Approval::Operator).unwrap();
        let other_card = RefundAsk {
            card_token: Some("x"),
            ..refund_ask(100)
        };
        assert_eq!(
            code(check_refund(
                Some((&record, &none)),
                &other_card,
                Approval::Supervisor
            )),
            "14"
        );
    }

    #[test]
    fn amounts_print_in_yuan() {
        assert_eq!(yuan(5_000), "50.00");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(-250), "-2.50");
    }
}
