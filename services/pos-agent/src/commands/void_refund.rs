//! Undoing a sale: a void (撤销) of a purchase or completion of the current batch, in full, by
//! its STAN or RRN; a refund (退货) of an earlier purchase by its RRN and date, partly or in
//! full. A void is reversible like a sale; a refund is not.

use anyhow::bail;
use pos_proto::v1 as pb;
use pos_proto::v1::terminal_message::Body;

use super::financial::{Plan, Request};
use super::{Terminal, entry_mode, minor, password_block};
use crate::answer::Original;
use crate::card::Card;
use crate::device::Session;
use crate::original::{self, VoidBy};
use crate::receipt;
use crate::sale::{self, Clock};

/// A void as the cashier enters it.
#[derive(Debug)]
pub struct Void<'a> {
    /// The original, by STAN or RRN.
    pub by: VoidBy,
    /// `--amount`: the original's amount, needed when the journal does not have it.
    pub amount: Option<&'a str>,
    /// `--card`, when the card is presented.
    pub card: Option<&'a str>,
    /// `--entry`.
    pub entry: &'a str,
    /// `--pin`.
    pub pin: Option<&'a str>,
    /// `--supervisor-password`.
    pub supervisor_password: Option<&'a str>,
}

/// A refund as the cashier enters it.
#[derive(Debug)]
pub struct Refund<'a> {
    /// `--rrn` of the original purchase.
    pub rrn: &'a str,
    /// `--date` of the original purchase, MMDD or YYYY-MM-DD.
    pub date: &'a str,
    /// `--amount` to refund.
    pub amount: &'a str,
    /// `--card`.
    pub card: &'a str,
    /// `--entry`.
    pub entry: &'a str,
    /// `--pin`.
    pub pin: Option<&'a str>,
    /// `--supervisor-password`.
    pub supervisor_password: Option<&'a str>,
}

impl Terminal {
    /// Void 撤销 of a purchase or completion of the current batch, for the original's full
    /// amount (from the journal, or keyed when the journal does not have the original).
    pub async fn void(&self, request: Void<'_>) -> anyhow::Result<()> {
        let (identity, session) = self.cashier()?;
        let journal = self.journal()?;
        let found = match &request.by {
            VoidBy::Stan(stan) => journal.entry(session.batch_no, *stan)?,
            VoidBy::Rrn(rrn) => journal.entry_by_rrn(session.batch_no, rrn)?,
        };
        let keyed = request.amount.map(sale::keyed_amount).transpose()?;
        let target = original::void_target(&request.by, found.as_ref(), keyed)?;
        println!(
            "void of {}: {}",
            request.by,
            receipt::amount(Some(&target.amount))
        );
        if let Some(journal_amount) = &target.journal_amount {
            println!(
                "note: the journal has {} for {}; a void is for the original's full amount",
                receipt::amount(Some(journal_amount)),
                request.by
            );
        }
        let clock = Clock::now();
        let (card, masked_pan) = match request.card {
            Some(spec) => {
                let (card, mode) = sale::present_card(spec, request.entry)?;
                unsent_pin(request.pin, &card, &session, "void")?;
                let data = sale::card_data(&card, mode, minor(Some(&target.amount)), 0x20, &clock);
                (Some(data), card.pan.masked().to_string())
            }
            None if request.pin.is_some() => bail!("--pin needs the card: --card FILE|SPEC"),
            None => (None, target.masked_pan.clone()),
        };
        let supervisor = supervisor_block(request.supervisor_password, &session)?;
        let plan = Plan {
            request: Request::Void,
            amount: Some(target.amount.clone()),
            masked_pan,
            entry_mode: card.as_ref().map(entry_mode).unwrap_or_default(),
            local_datetime: clock.iso(),
            types: target.types.clone(),
            original: target.original.clone(),
        };
        let original_ref = match request.by {
            VoidBy::Stan(stan) => pb::void_request::Original::OriginalStan(stan),
            VoidBy::Rrn(rrn) => pb::void_request::Original::OriginalRrn(rrn),
        };
        let amount = target.amount.clone();
        let local_datetime = clock.iso();
        let mut response = self
            .financial(identity, session, plan, move |header| {
                Body::Void(pb::VoidRequest {
                    batch_no: header.batch_no,
                    stan: header.stan,
                    operator_no: header.operator_no,
                    amount: Some(amount),
                    original: Some(original_ref),
                    card,
                    supervisor_password_block: supervisor,
                    local_datetime,
                })
            })
            .await?;
        original::fill_original(&mut response, &target.original, None);
        sale::conclude(response, &self.dir.receipts(), &clock)?;
        Ok(())
    }

    /// Refund 退货 of an earlier purchase by its RRN and date, for at most what remains of it.
    /// Not reversible: a refund in doubt is checked with the acquirer, never re-sent blindly.
    pub async fn refund(&self, request: Refund<'_>) -> anyhow::Result<()> {
        let (identity, session) = self.cashier()?;
        let clock = Clock::now();
        let date = original::original_date(request.date, clock.local())?;
        let amount = sale::keyed_amount(request.amount)?;
        let (card, mode) = sale::present_card(request.card, request.entry)?;
        unsent_pin(request.pin, &card, &session, "refund")?;
        let card_data = sale::card_data(&card, mode, minor(Some(&amount)), 0x20, &clock);
        let supervisor = supervisor_block(request.supervisor_password, &session)?;
        let known = Original {
            rrn: Some(request.rrn.to_owned()),
            ..Original::default()
        };
        let plan = Plan {
            request: Request::Refund,
            amount: Some(amount.clone()),
            masked_pan: card.pan.masked().to_string(),
            entry_mode: entry_mode(&card_data),
            local_datetime: clock.iso(),
            types: vec![pb::TransactionType::Refund],
            original: known.clone(),
        };
        let original_rrn = request.rrn.to_owned();
        let original_date = date.clone();
        let local_datetime = clock.iso();
        let mut response = self
            .financial(identity, session, plan, move |header| {
                Body::Refund(pb::RefundRequest {
                    batch_no: header.batch_no,
                    stan: header.stan,
                    operator_no: header.operator_no,
                    amount: Some(amount),
                    original_rrn,
                    original_date,
                    card: Some(card_data),
                    supervisor_password_block: supervisor,
                    local_datetime,
                })
            })
            .await?;
        original::fill_original(&mut response, &known, Some(&date));
        sale::conclude(response, &self.dir.receipts(), &clock)?;
        Ok(())
    }
}

/// The supervisor's password block, or empty when none was keyed.
fn supervisor_block(password: Option<&str>, session: &Session) -> anyhow::Result<Vec<u8>> {
    password.map_or_else(
        || Ok(Vec::new()),
        |password| password_block(&session.pin_key()?, password),
    )
}

/// A PIN keyed for a void or refund: the contract's `VoidRequest` and `RefundRequest` carry no
/// PIN block, so it is checked (format, card) but cannot be sent; the cashier is told so.
fn unsent_pin(pin: Option<&str>, card: &Card, session: &Session, what: &str) -> anyhow::Result<()> {
    if sale::pin_block(pin, card, &session.pin_key()?)?.is_empty() {
        return Ok(());
    }
    println!("note: the host's {what} request has no PIN field; the PIN was not sent");
    Ok(())
}
