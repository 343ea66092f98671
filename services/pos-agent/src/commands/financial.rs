//! The life of one financial request, as a CUP terminal lives it (REFERENCE.md "Reversal"):
//! pending reversals go out first, and no new request is sent while one remains; the STAN and
//! the message number are saved and, for a reversible request, the reversal record is
//! committed to the journal, all before the request leaves; the answer is judged
//! ([`crate::answer`]); a valid answer clears the record in the same journal transaction that
//! books an approval into the batch; a request in doubt keeps its record (with reason "98" or
//! "A0"), is reversed at once, and the cashier is told that it did not complete.

use std::io::Write as _;
use std::time::Duration;

use anyhow::{Context, bail};
use pos_proto::v1 as pb;
use pos_proto::v1::terminal_message::Body;

use super::{Kind, Terminal};
use crate::answer::{self, Expected, Original, Verdict};
use crate::device::{Identity, Session};
use crate::journal::{Amount, BatchEntry, EntryState, Journal, PendingReversal, ReasonCode};
use crate::reversal;
use crate::sale::Clock;

/// A financial request, as far as the flow is concerned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// 消费.
    Purchase,
    /// 余额查询.
    Balance,
    /// 预授权.
    PreAuth,
    /// 预授权完成.
    Completion,
    /// 预授权撤销.
    PreAuthVoid,
    /// 撤销 of a purchase or completion.
    Void,
    /// 退货.
    Refund,
}

impl Request {
    /// The name of the cashier's command for it, as the `sent:` line prints it.
    pub fn name(self) -> &'static str {
        match self {
            Request::Purchase => "purchase",
            Request::Balance => "balance",
            Request::PreAuth => "preauth",
            Request::Completion => "complete",
            Request::PreAuthVoid => "preauth-void",
            Request::Void => "void",
            Request::Refund => "refund",
        }
    }

    /// Whether a request in doubt is reversed: all that move money or holds, but refunds
    /// (0220, never reversed) and balance inquiries (nothing to undo).
    pub fn reversible(self) -> bool {
        !matches!(self, Request::Balance | Request::Refund)
    }

    /// Whether an approval is booked into the batch: all but balance inquiries.
    fn booked(self) -> bool {
        self != Request::Balance
    }
}

impl From<Kind> for Request {
    fn from(kind: Kind) -> Self {
        match kind {
            Kind::Purchase => Request::Purchase,
            Kind::Balance => Request::Balance,
            Kind::PreAuth => Request::PreAuth,
            Kind::Completion => Request::Completion,
            Kind::PreAuthVoid => Request::PreAuthVoid,
        }
    }
}

/// Batch, STAN and operator of a request, known once it is numbered.
#[derive(Debug, Clone)]
pub struct Header {
    /// Batch number from sign-in.
    pub batch_no: u32,
    /// The request's STAN.
    pub stan: u32,
    /// The logged-in operator.
    pub operator_no: String,
}

/// What the flow needs to know of a request besides its body.
#[derive(Debug, Clone)]
pub struct Plan {
    /// Which request.
    pub request: Request,
    /// Its amount; `None` for a balance inquiry.
    pub amount: Option<pb::Money>,
    /// The card's masked PAN, empty when no card was read and the original's is unknown.
    pub masked_pan: String,
    /// How the card was read; unspecified when no card was read.
    pub entry_mode: pb::CardEntryMode,
    /// Local date-time of the request.
    pub local_datetime: String,
    /// The types its answer may name; the first is the type a reversal names.
    pub types: Vec<pb::TransactionType>,
    /// The original it names.
    pub original: Original,
}

impl Terminal {
    /// Sends the request `build` makes once it is numbered, and returns the host's valid
    /// answer (approval or decline), booked in the journal. Fails when pending reversals cannot
    /// be delivered first (nothing sent) and when the request is in doubt (reversed).
    pub(super) async fn financial(
        &self,
        identity: Identity,
        mut session: Session,
        plan: Plan,
        build: impl FnOnce(Header) -> Body,
    ) -> anyhow::Result<pb::TransactionResponse> {
        let name = plan.request.name();
        let journal = self.journal()?;
        let mut link = self.link(&identity).await?;
        let left = reversal::send_pending(&mut link, &self.dir, &mut session, &journal).await?;
        if left > 0 {
            bail!(
                "{left} pending reversal(s) could not be delivered, so the {name} was not sent; try again when the host answers, or run `pos-agent reverse`"
            );
        }
        let stan = session.take_stan();
        self.dir.save_session(&session)?;
        let header = Header {
            batch_no: session.batch_no,
            stan,
            operator_no: session.operator_no.clone(),
        };
        let key = (header.batch_no, stan);
        let reversible = plan.request.reversible();
        if reversible {
            journal.add_reversal(&reversal_record(&plan, &header)?)?;
        }
        let seq = session.take_seq();
        self.dir.save_session(&session)?;
        let mac_key = session.mac_key()?;
        if let Err(error) = link.send(seq, build(header.clone()), &mac_key).await {
            // The message never left the terminal: there is nothing to reverse.
            journal.forget_reversal(key)?;
            return Err(error.context(format!("the {name} was not sent")));
        }
        // Let the transport put the request on the wire before anyone is told it was sent.
        tokio::time::sleep(Duration::from_millis(20)).await;
        println!("sent: {name} STAN {stan:06}, waiting for the host");
        std::io::stdout().flush()?;
        let expected = Expected {
            terminal_id: identity.terminal_id.clone(),
            batch_no: header.batch_no,
            stan,
            amount: plan.amount.clone(),
            types: plan.types.clone(),
            original: plan.original.clone(),
        };
        let outcome = link.answer(seq, Some(&mac_key)).await;
        drop(link);
        let (reason, why) = match answer::judge(&expected, outcome) {
            Verdict::Answered(response) => {
                let approved = (response.response_code == "00" && plan.request.booked())
                    .then(|| booked(&plan, &header, &response));
                journal.answered(key, approved.as_ref())?;
                return Ok(*response);
            }
            Verdict::Refused { code, message } if !reversible => {
                bail!("the {name} was refused by the host ({code}): {message}")
            }
            Verdict::Refused { code, message } => (
                ReasonCode::NoResponse,
                format!("refused by the host ({code}): {message}"),
            ),
            Verdict::InDoubt { why, .. } if plan.request == Request::Balance => {
                bail!("the balance inquiry got no valid answer: {why}")
            }
            Verdict::InDoubt { why, .. } if plan.request == Request::Refund => bail!(
                "the refund (STAN {stan:06}) is in doubt: {why}; a refund is not reversed, so check its outcome with the acquirer before refunding again"
            ),
            Verdict::InDoubt { reason, why } => (reason, why),
        };
        if reason != ReasonCode::NoResponse {
            journal.update_reversal(key, |record| record.reason = reason)?;
        }
        println!("the {name} (STAN {stan:06}) was not completed: {why}; reversing it (冲正)");
        let what = format!("the {name} (STAN {stan:06}) was not completed ({why})");
        Err(self
            .reverse_now(&identity, &mut session, &journal, what)
            .await)
    }

    /// Sends the pending reversals on a new stream at once, and tells the cashier about the
    /// request that was not completed (`what`) and its reversal.
    async fn reverse_now(
        &self,
        identity: &Identity,
        session: &mut Session,
        journal: &Journal,
        what: String,
    ) -> anyhow::Error {
        let left = match self.link(identity).await {
            Ok(mut link) => reversal::send_pending(&mut link, &self.dir, session, journal).await,
            Err(error) => Err(error),
        };
        let later = "goes out before the next transaction, or with `pos-agent reverse`";
        match left {
            Ok(0) => anyhow::anyhow!("{what}; it has been reversed (冲正)"),
            Ok(_) => anyhow::anyhow!("{what}; its reversal (冲正) is pending and {later}"),
            Err(error) => {
                anyhow::anyhow!("{what}; its reversal (冲正) is pending ({error:#}) and {later}")
            }
        }
    }
}

/// The reversal record of a request: what a `ReversalRequest` needs, reason "98".
fn reversal_record(plan: &Plan, header: &Header) -> anyhow::Result<PendingReversal> {
    let amount = plan
        .amount
        .as_ref()
        .context("a reversible request has an amount")?;
    Ok(PendingReversal {
        batch_no: header.batch_no,
        stan: header.stan,
        original_type: plan
            .types
            .first()
            .copied()
            .unwrap_or(pb::TransactionType::Unspecified),
        amount: Amount::from(amount),
        operator_no: header.operator_no.clone(),
        local_datetime: plan.local_datetime.clone(),
        masked_pan: plan.masked_pan.clone(),
        reason: ReasonCode::NoResponse,
        attempts: 0,
        written_at: Clock::now().iso(),
    })
}

/// The batch entry of an approved request.
fn booked(plan: &Plan, header: &Header, response: &pb::TransactionResponse) -> BatchEntry {
    let transaction_type = pb::TransactionType::try_from(response.transaction_type)
        .ok()
        .or_else(|| plan.types.first().copied())
        .unwrap_or(pb::TransactionType::Unspecified);
    let masked_pan = response
        .card
        .as_ref()
        .map(|card| card.masked_pan.clone())
        .filter(|masked| !masked.is_empty())
        .unwrap_or_else(|| plan.masked_pan.clone());
    let entry_mode = match plan.entry_mode {
        pb::CardEntryMode::Unspecified => {
            pb::CardEntryMode::try_from(response.entry_mode).unwrap_or_default()
        }
        read => read,
    };
    let mut entry = BatchEntry {
        batch_no: header.batch_no,
        stan: header.stan,
        transaction_type,
        amount: response
            .amount
            .as_ref()
            .or(plan.amount.as_ref())
            .map(Amount::from)
            .unwrap_or_default(),
        rrn: response.rrn.clone(),
        approval_code: response.approval_code.clone(),
        masked_pan,
        entry_mode,
        business_date: response.settlement_date.clone(),
        local_datetime: plan.local_datetime.clone(),
        operator_no: header.operator_no.clone(),
        original_stan: 0,
        original_rrn: plan.original.rrn.clone().unwrap_or_default(),
        state: EntryState::Approved,
    };
    if entry.is_void() {
        entry.original_stan = plan.original.stan.unwrap_or(0);
    }
    entry
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::TransactionType as T;

    fn void_plan() -> Plan {
        Plan {
            request: Request::Void,
            amount: Some(pb::Money {
                minor_units: 5_000,
                currency: "CNY".to_owned(),
            }),
            masked_pan: "622202****3446".to_owned(),
            entry_mode: pb::CardEntryMode::Unspecified,
            local_datetime: "2026-11-28T18:00:00".to_owned(),
            types: vec![T::PurchaseVoid, T::CompletionVoid],
            original: Original {
                stan: Some(41),
                rrn: Some("612345678901".to_owned()),
                ..Original::default()
            },
        }
    }

    fn header() -> Header {
        Header {
            batch_no: 1,
            stan: 42,
            operator_no: "01".to_owned(),
        }
    }

    #[test]
    fn only_money_moving_requests_but_refunds_are_reversed() {
        for (request, reversible) in [
            (Request::Purchase, true),
            (Request::PreAuth, true),
            (Request::Completion, true),
            (Request::PreAuthVoid, true),
            (Request::Void, true),
            (Request::Refund, false),
            (Request::Balance, false),
        ] {
            assert_eq!(request.reversible(), reversible, "{}", request.name());
        }
    }

    #[test]
    fn the_reversal_record_copies_the_request_with_reason_98() {
        let record = reversal_record(&void_plan(), &header()).unwrap();
        assert_eq!(record.key(), (1, 42));
        assert_eq!(record.original_type, T::PurchaseVoid);
        assert_eq!(record.amount.minor_units, 5_000);
        assert_eq!(record.reason, ReasonCode::NoResponse);
        assert_eq!(
            (record.attempts, record.masked_pan.as_str()),
            (0, "622202****3446")
        );
        let balance = Plan {
            request: Request::Balance,
            amount: None,
            ..void_plan()
        };
        assert!(reversal_record(&balance, &header()).is_err());
    }

    #[test]
    fn an_approved_void_is_booked_as_the_host_typed_it_naming_its_original() {
        let response = pb::TransactionResponse {
            response_code: "00".to_owned(),
            transaction_type: T::CompletionVoid as i32,
            rrn: "612345678999".to_owned(),
            approval_code: "X1Y2Z3".to_owned(),
            settlement_date: "2026-11-28".to_owned(),
            ..pb::TransactionResponse::default()
        };
        let entry = booked(&void_plan(), &header(), &response);
        assert_eq!(entry.key(), (1, 42));
        assert_eq!(entry.transaction_type, T::CompletionVoid);
        assert_eq!(
            entry.amount.minor_units, 5_000,
            "the request's amount when none came back"
        );
        assert_eq!(
            (entry.original_stan, entry.rrn.as_str()),
            (41, "612345678999")
        );
        assert_eq!(entry.masked_pan, "622202****3446");
        assert_eq!(entry.state, EntryState::Approved);
        assert_eq!(entry.entry_mode, pb::CardEntryMode::Unspecified);
        let mut purchase = void_plan();
        purchase.request = Request::Purchase;
        purchase.original = Original::default();
        purchase.entry_mode = pb::CardEntryMode::Contactless;
        let response = pb::TransactionResponse {
            transaction_type: T::Purchase as i32,
            entry_mode: pb::CardEntryMode::Chip as i32,
            ..response
        };
        let entry = booked(&purchase, &header(), &response);
        assert_eq!(entry.original_stan, 0);
        assert_eq!(
            entry.entry_mode,
            pb::CardEntryMode::Contactless,
            "how the terminal read the card"
        );
        purchase.entry_mode = pb::CardEntryMode::Unspecified;
        assert_eq!(
            booked(&purchase, &header(), &response).entry_mode,
            pb::CardEntryMode::Chip,
            "the host's echo when the terminal read no card"
        );
    }
}
