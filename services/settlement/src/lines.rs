//! A terminal batch as the host sees it: one line per STAN, built from the transaction events,
//! and the totals and reconciliation computed from the lines. Pure: no I/O.
//!
//! What counts (REFERENCE.md "Settlement"): debits are purchases and pre-auth completions that
//! stand (not voided, not reversed); credits are refunds. A void takes its original out of the
//! totals (and counts nowhere itself); a reversal takes out what it reversed; a reversed void
//! puts its original back. Pre-authorizations, their voids and balance inquiries move no
//! settled money and are not lines.

use std::collections::BTreeMap;

use pos_events::Payload;
use pos_proto::v1 as pb;
use serde::{Deserialize, Serialize};

/// Debit or credit side of the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// Purchases and completions.
    Debit,
    /// Refunds.
    Credit,
    /// Voids: listed, never counted.
    None,
}

/// Whether a line counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LineState {
    /// Counts in the totals.
    Standing,
    /// Voided by a later void of the batch.
    Voided,
    /// Reversed.
    Reversed,
}

/// One transaction of a batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// STAN.
    pub stan: u32,
    /// Transaction type (proto enum value).
    pub transaction_type: i32,
    /// Debit, credit or neither.
    pub side: Side,
    /// Amount in minor units.
    pub amount_minor: i64,
    /// ISO 4217 code.
    pub currency: String,
    /// Standing, voided or reversed.
    pub state: LineState,
    /// Host transaction id (or the void's / refund's id).
    pub transaction_id: String,
    /// Masked PAN.
    pub masked_pan: String,
    /// RRN.
    pub rrn: String,
    /// Business date "YYYY-MM-DD".
    pub business_date: String,
    /// Merchant.
    pub merchant_id: String,
    /// For a void: the STAN of its original.
    pub original_stan: u32,
}

/// What one event does to the lines of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new line (or the same line again).
    Put(Line),
    /// The line of this STAN changes state.
    SetState {
        /// STAN of the line.
        stan: u32,
        /// New state.
        state: LineState,
    },
}

/// The batch an event's changes belong to, and the changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Effect {
    /// Terminal id.
    pub terminal_id: String,
    /// Batch number.
    pub batch_no: u32,
    /// Changes in order.
    pub changes: Vec<Change>,
}

fn line(facts: &pb::TransactionFacts, side: Side) -> Option<(String, u32, Line)> {
    let trace = facts.trace.as_ref()?;
    let amount = facts.amount.as_ref()?;
    Some((
        trace.terminal_id.clone(),
        trace.batch_no,
        Line {
            stan: trace.stan,
            transaction_type: facts.transaction_type,
            side,
            amount_minor: amount.minor_units,
            currency: amount.currency.clone(),
            state: LineState::Standing,
            transaction_id: facts.transaction_id.clone(),
            masked_pan: facts
                .card
                .as_ref()
                .map(|c| c.masked_pan.clone())
                .unwrap_or_default(),
            rrn: facts.rrn.clone(),
            business_date: facts.business_date.clone(),
            merchant_id: facts.merchant_id.clone(),
            original_stan: facts.original.as_ref().map_or(0, |o| o.stan),
        },
    ))
}

fn put(facts: &pb::TransactionFacts, side: Side) -> Option<Effect> {
    let (terminal_id, batch_no, line) = line(facts, side)?;
    Some(Effect {
        terminal_id,
        batch_no,
        changes: vec![Change::Put(line)],
    })
}

fn is_void(kind: i32) -> bool {
    kind == pb::TransactionType::PurchaseVoid as i32
        || kind == pb::TransactionType::CompletionVoid as i32
}

/// What a transaction event does to batch lines; `None` for events that do not touch them.
pub fn effect(payload: &Payload) -> Option<Effect> {
    match payload {
        Payload::AuthorizationApproved(e) => {
            let facts = e.txn.as_ref()?;
            (facts.transaction_type == pb::TransactionType::Purchase as i32)
                .then(|| put(facts, Side::Debit))
                .flatten()
        }
        Payload::PreAuthCompleted(e) => put(e.txn.as_ref()?, Side::Debit),
        Payload::TransactionRefunded(e) => put(e.txn.as_ref()?, Side::Credit),
        Payload::TransactionVoided(e) => {
            let facts = e.txn.as_ref()?;
            let mut effect = put(facts, Side::None)?;
            let original = facts.original.as_ref()?;
            effect.changes.push(Change::SetState {
                stan: original.stan,
                state: LineState::Voided,
            });
            Some(effect)
        }
        Payload::TransactionReversed(e) => {
            let original = e.original.as_ref()?;
            let trace = original.trace.as_ref()?;
            let mut changes = vec![Change::SetState {
                stan: trace.stan,
                state: LineState::Reversed,
            }];
            if is_void(original.transaction_type) {
                // The voided transaction stands again.
                let voided = original.original.as_ref()?;
                changes.push(Change::SetState {
                    stan: voided.stan,
                    state: LineState::Standing,
                });
            }
            Some(Effect {
                terminal_id: trace.terminal_id.clone(),
                batch_no: trace.batch_no,
                changes,
            })
        }
        _ => None,
    }
}

/// Applies `changes` to `lines` (keyed by STAN). A state change of an unknown STAN is dropped
/// (a reversal of something that never counted).
pub fn apply(lines: &mut BTreeMap<u32, Line>, changes: &[Change]) {
    for change in changes {
        match change {
            Change::Put(line) => {
                // A redelivered event must not undo a later state change.
                lines.entry(line.stan).or_insert_with(|| line.clone());
            }
            Change::SetState { stan, state } => {
                if let Some(line) = lines.get_mut(stan) {
                    line.state = *state;
                }
            }
        }
    }
}

/// Totals of one card origin and currency, in minor units.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Bucket {
    /// Sum of debits.
    pub debit_minor: i64,
    /// Number of debits.
    pub debit_count: u32,
    /// Sum of credits.
    pub credit_minor: i64,
    /// Number of credits.
    pub credit_count: u32,
}

/// Card origin of an amount's currency: domestic for CNY (currency 156), foreign otherwise.
pub fn origin(currency: &str) -> pb::CardOrigin {
    if currency == "CNY" {
        pb::CardOrigin::Domestic
    } else {
        pb::CardOrigin::Foreign
    }
}

/// The host's totals per (origin, currency).
pub fn totals(lines: &BTreeMap<u32, Line>) -> BTreeMap<(i32, String), Bucket> {
    let mut totals: BTreeMap<(i32, String), Bucket> = BTreeMap::new();
    for line in lines
        .values()
        .filter(|l| l.state == LineState::Standing && l.side != Side::None)
    {
        let bucket = totals
            .entry((origin(&line.currency) as i32, line.currency.clone()))
            .or_default();
        match line.side {
            Side::Debit => {
                bucket.debit_minor += line.amount_minor;
                bucket.debit_count += 1;
            }
            Side::Credit => {
                bucket.credit_minor += line.amount_minor;
                bucket.credit_count += 1;
            }
            Side::None => {}
        }
    }
    totals
}

/// Totals in their proto form (a zero CNY domestic bucket for an empty batch).
pub fn to_proto(totals: &BTreeMap<(i32, String), Bucket>) -> Vec<pb::BatchTotals> {
    let money = |minor_units: i64, currency: &str| pb::Money {
        minor_units,
        currency: currency.to_owned(),
    };
    let mut out: Vec<pb::BatchTotals> = totals
        .iter()
        .map(|((origin, currency), b)| pb::BatchTotals {
            card_origin: *origin,
            debit_amount: Some(money(b.debit_minor, currency)),
            debit_count: b.debit_count,
            credit_amount: Some(money(b.credit_minor, currency)),
            credit_count: b.credit_count,
        })
        .collect();
    if out.is_empty() {
        out.push(pb::BatchTotals {
            card_origin: pb::CardOrigin::Domestic as i32,
            debit_amount: Some(money(0, "CNY")),
            debit_count: 0,
            credit_amount: Some(money(0, "CNY")),
            credit_count: 0,
        });
    }
    out
}

/// The terminal's totals keyed like [`totals`]; buckets of zeros are dropped.
pub fn from_proto(totals: &[pb::BatchTotals]) -> BTreeMap<(i32, String), Bucket> {
    let mut out: BTreeMap<(i32, String), Bucket> = BTreeMap::new();
    for t in totals {
        let currency = t
            .debit_amount
            .as_ref()
            .or(t.credit_amount.as_ref())
            .map(|m| m.currency.clone())
            .unwrap_or_default();
        let bucket = out.entry((t.card_origin, currency)).or_default();
        bucket.debit_minor += t.debit_amount.as_ref().map_or(0, |m| m.minor_units);
        bucket.debit_count += t.debit_count;
        bucket.credit_minor += t.credit_amount.as_ref().map_or(0, |m| m.minor_units);
        bucket.credit_count += t.credit_count;
    }
    out.retain(|_, b| *b != Bucket::default());
    out
}

/// Whether the terminal's totals agree with the host's.
pub fn balanced(terminal: &[pb::BatchTotals], host: &BTreeMap<(i32, String), Bucket>) -> bool {
    let mut host = host.clone();
    host.retain(|_, b| *b != Bucket::default());
    from_proto(terminal) == host
}

/// How an uploaded record compares with the host's line of the same STAN.
pub fn reconcile(
    record: &pb::BatchRecord,
    host: Option<&Line>,
) -> (pb::RecordReconciliation, String) {
    use pb::RecordReconciliation as R;
    let Some(line) = host else {
        return (
            R::MissingOnHost,
            "the host has no transaction with this STAN in the batch".to_owned(),
        );
    };
    if line.state != LineState::Standing || line.side == Side::None {
        let state = match line.state {
            LineState::Voided => "voided",
            LineState::Reversed => "reversed",
            LineState::Standing => "not counted",
        };
        return (
            R::StateMismatch,
            format!("the host has this transaction {state}"),
        );
    }
    let amount = record.amount.as_ref();
    if amount.map(|m| (m.minor_units, m.currency.as_str()))
        != Some((line.amount_minor, line.currency.as_str()))
    {
        return (
            R::AmountMismatch,
            format!(
                "the host has {} minor units {}",
                line.amount_minor, line.currency
            ),
        );
    }
    if record.transaction_type != line.transaction_type {
        return (R::StateMismatch, "the host has another type".to_owned());
    }
    (R::Matched, String::new())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(kind: pb::TransactionType, stan: u32, minor: i64) -> pb::TransactionFacts {
        pb::TransactionFacts {
            transaction_id: format!("t{stan}"),
            transaction_type: kind as i32,
            trace: Some(pb::TerminalTraceRef {
                terminal_id: "T0000001".to_owned(),
                batch_no: 1,
                stan,
            }),
            amount: Some(pb::Money {
                minor_units: minor,
                currency: "CNY".to_owned(),
            }),
            response_code: "00".to_owned(),
            ..pb::TransactionFacts::default()
        }
    }

    fn approved(stan: u32, minor: i64) -> Payload {
        Payload::AuthorizationApproved(pb::AuthorizationApproved {
            txn: Some(facts(pb::TransactionType::Purchase, stan, minor)),
            ..pb::AuthorizationApproved::default()
        })
    }

    fn voided(stan: u32, original: u32, minor: i64) -> Payload {
        let mut txn = facts(pb::TransactionType::PurchaseVoid, stan, minor);
        txn.original = Some(pb::OriginalTransactionRef {
            stan: original,
            ..pb::OriginalTransactionRef::default()
        });
        Payload::TransactionVoided(pb::TransactionVoided {
            txn: Some(txn),
            ..pb::TransactionVoided::default()
        })
    }

    fn reversed(original: pb::TransactionFacts) -> Payload {
        Payload::TransactionReversed(pb::TransactionReversed {
            original: Some(original),
            ..pb::TransactionReversed::default()
        })
    }

    fn run(events: &[Payload]) -> BTreeMap<u32, Line> {
        let mut lines = BTreeMap::new();
        for event in events {
            if let Some(effect) = effect(event) {
                apply(&mut lines, &effect.changes);
            }
        }
        lines
    }

    fn cny(totals: &BTreeMap<(i32, String), Bucket>) -> Bucket {
        totals
            .get(&(pb::CardOrigin::Domestic as i32, "CNY".to_owned()))
            .copied()
            .unwrap_or_default()
    }

    #[test]
    fn totals_are_net_of_voids_and_reversals_with_refunds_as_credits() {
        let refund = Payload::TransactionRefunded(pb::TransactionRefunded {
            txn: Some(facts(pb::TransactionType::Refund, 5, 1_000)),
            ..pb::TransactionRefunded::default()
        });
        let lines = run(&[
            approved(1, 5_000),
            approved(2, 2_000),
            approved(3, 700),
            voided(4, 2, 2_000),
            reversed(facts(pb::TransactionType::Purchase, 3, 700)),
            refund,
        ]);
        assert_eq!(
            cny(&totals(&lines)),
            Bucket {
                debit_minor: 5_000,
                debit_count: 1,
                credit_minor: 1_000,
                credit_count: 1
            }
        );
        assert_eq!(lines[&2].state, LineState::Voided);
        assert_eq!(lines[&4].side, Side::None);
    }

    #[test]
    fn a_reversed_void_puts_its_original_back_and_redeliveries_change_nothing() {
        let mut void_facts = facts(pb::TransactionType::PurchaseVoid, 2, 5_000);
        void_facts.original = Some(pb::OriginalTransactionRef {
            stan: 1,
            ..pb::OriginalTransactionRef::default()
        });
        let events = [
            approved(1, 5_000),
            voided(2, 1, 5_000),
            reversed(void_facts),
            approved(1, 5_000),
        ];
        let lines = run(&events);
        assert_eq!(lines[&1].state, LineState::Standing);
        assert_eq!(cny(&totals(&lines)).debit_minor, 5_000);
        let redelivered = run(&[approved(1, 5_000), voided(2, 1, 5_000), approved(1, 5_000)]);
        assert_eq!(redelivered[&1].state, LineState::Voided);
    }

    #[test]
    fn terminal_totals_compare_bucket_by_bucket_and_records_reconcile_line_by_line() {
        let lines = run(&[approved(1, 5_000), approved(2, 300)]);
        let host = totals(&lines);
        let mut terminal = to_proto(&host);
        assert!(balanced(&terminal, &host));
        terminal[0].debit_count = 3;
        assert!(!balanced(&terminal, &host));
        assert!(balanced(&to_proto(&BTreeMap::new()), &BTreeMap::new()));

        let record = |stan: u32, minor: i64| pb::BatchRecord {
            stan,
            transaction_type: pb::TransactionType::Purchase as i32,
            amount: Some(pb::Money {
                minor_units: minor,
                currency: "CNY".to_owned(),
            }),
            ..pb::BatchRecord::default()
        };
        use pb::RecordReconciliation as R;
        assert_eq!(reconcile(&record(1, 5_000), lines.get(&1)).0, R::Matched);
        assert_eq!(
            reconcile(&record(2, 301), lines.get(&2)).0,
            R::AmountMismatch
        );
        assert_eq!(
            reconcile(&record(9, 100), lines.get(&9)).0,
            R::MissingOnHost
        );
        let mut gone = lines.clone();
        apply(
            &mut gone,
            &[Change::SetState {
                stan: 1,
                state: LineState::Reversed,
            }],
        );
        assert_eq!(
            reconcile(&record(1, 5_000), gone.get(&1)).0,
            R::StateMismatch
        );
    }
}
