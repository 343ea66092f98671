//! The values the projection is asked for and answers with: how a transaction is looked up,
//! what a list is filtered by, and a transaction's history.

use std::fmt;

use pos_proto::v1 as pb;

/// A terminal request's identity: terminal id + batch number + STAN (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TraceKey {
    /// 8-character terminal id.
    pub terminal_id: String,
    /// Batch number, 1..=999999.
    pub batch_no: u32,
    /// STAN, 1..=999999.
    pub stan: u32,
}

impl TraceKey {
    /// The trace of a proto reference; `None` unless terminal, batch and STAN are all known.
    pub fn of(trace: Option<&pb::TerminalTraceRef>) -> Option<Self> {
        trace.and_then(|t| Self::from_parts(&t.terminal_id, t.batch_no, t.stan))
    }

    /// The trace an original reference names; `None` unless all three parts are known.
    pub fn of_original(original: &pb::OriginalTransactionRef) -> Option<Self> {
        Self::from_parts(&original.terminal_id, original.batch_no, original.stan)
    }

    fn from_parts(terminal_id: &str, batch_no: u32, stan: u32) -> Option<Self> {
        (!terminal_id.is_empty() && batch_no > 0 && stan > 0).then(|| Self {
            terminal_id: terminal_id.to_owned(),
            batch_no,
            stan,
        })
    }

    /// The proto form.
    pub fn to_proto(&self) -> pb::TerminalTraceRef {
        pb::TerminalTraceRef {
            terminal_id: self.terminal_id.clone(),
            batch_no: self.batch_no,
            stan: self.stan,
        }
    }
}

/// `12345678:000001:000042`, as keys and texts write a trace.
impl fmt::Display for TraceKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{:06}:{:06}",
            self.terminal_id, self.batch_no, self.stan
        )
    }
}

/// The transaction whose history is built: its id (empty when only its trace is known, e.g.
/// a reversal of a request that never reached the host) and its trace when known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    /// Host transaction id (or void / refund id); empty when unknown.
    pub id: String,
    /// Terminal, batch and STAN of its request.
    pub trace: Option<TraceKey>,
}

impl Subject {
    /// Whether a reference by `id` (or, when the reference has no id, by `trace`) names this
    /// transaction.
    pub(crate) fn is_named_by(&self, id: &str, trace: Option<&TraceKey>) -> bool {
        if !id.is_empty() {
            return id == self.id;
        }
        matches!((trace, &self.trace), (Some(named), Some(own)) if named == own)
    }

    /// Whether `original` names this transaction.
    pub(crate) fn is_original(&self, original: Option<&pb::OriginalTransactionRef>) -> bool {
        original
            .is_some_and(|o| self.is_named_by(&o.transaction_id, TraceKey::of_original(o).as_ref()))
    }
}

/// How to find one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// By host transaction id (or a void's or refund's own id).
    Id(String),
    /// By the terminal, batch and STAN of its request (a void's or refund's own trace finds
    /// the void or refund).
    Trace(TraceKey),
    /// By RRN within a business date ("YYYY-MM-DD"): an RRN is unique only within a day.
    Rrn {
        /// 12-character retrieval reference number.
        rrn: String,
        /// Business date.
        business_date: String,
    },
}

impl fmt::Display for Lookup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lookup::Id(id) => write!(f, "{id}"),
            Lookup::Trace(trace) => write!(
                f,
                "at terminal {} batch {:06} STAN {:06}",
                trace.terminal_id, trace.batch_no, trace.stan
            ),
            Lookup::Rrn { rrn, business_date } => {
                write!(f, "with RRN {rrn} on {business_date}")
            }
        }
    }
}

/// A transaction's current state and every step of its history, oldest first.
#[derive(Debug, Clone, PartialEq)]
pub struct TransactionHistory {
    /// Current state.
    pub summary: pb::TransactionSummary,
    /// Every step, oldest first.
    pub entries: Vec<pb::TransactionHistoryEntry>,
}

/// Which transactions a list shows; `None` fields do not filter.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListFilter {
    /// Only this merchant's.
    pub merchant_id: Option<String>,
    /// Only this terminal's.
    pub terminal_id: Option<String>,
    /// Only this batch (needs `terminal_id`).
    pub batch_no: Option<u32>,
    /// Only this business date "YYYY-MM-DD".
    pub business_date: Option<String>,
}

impl ListFilter {
    /// Whether `summary` passes the filter.
    pub fn matches(&self, summary: &pb::TransactionSummary) -> bool {
        let trace = summary.trace.as_ref();
        let terminal = trace.map_or("", |t| t.terminal_id.as_str());
        let batch = trace.map_or(0, |t| t.batch_no);
        self.merchant_id
            .as_ref()
            .is_none_or(|m| *m == summary.merchant_id)
            && self.terminal_id.as_ref().is_none_or(|t| t == terminal)
            && self.batch_no.is_none_or(|b| b == batch)
            && self
                .business_date
                .as_ref()
                .is_none_or(|d| *d == summary.business_date)
    }
}

/// One page of a list, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct Page {
    /// The transactions.
    pub transactions: Vec<pb::TransactionSummary>,
    /// Token of the next page; `None` on the last page.
    pub next_page_token: Option<String>,
}
