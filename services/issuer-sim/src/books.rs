//! The bank's books in Redis: card accounts, holds, request records, ledgers, RRN counters.
//!
//! Keys (all under the issuer's own prefix, `POS_ISSUER_REDIS_PREFIX`):
//! - `card:<token>`: the account (hash, see [`crate::card`]); `<token>` is the HMAC-SHA-256 of
//!   the PAN under the bank's card key, so no key or value holds a full PAN;
//! - `ledger:<token>`: every movement of the account, oldest first (list of JSON objects:
//!   `at`, `txn`, `op`, `amount`, `hold`, `balance`, `available`, `holds`);
//! - `txn:<acquirer_transaction_id>`: the first answer to a request, its digest and what it
//!   did (hash), kept `POS_ISSUER_RECORD_RETENTION_DAYS`; also the tombstone a reversal leaves
//!   for an original that has not arrived;
//! - `hold:<hold_id>`: a pre-authorization's hold (hash: card, amount, state active |
//!   captured | released, the pre-auth's id and the id that captured or released it);
//! - `rrn:<business date>`: the RRN counter of the day.
//!
//! Every movement of money is one Lua script (`src/lua/`): it checks, moves, writes the ledger
//! entry and the request's record in one atomic step, so concurrent or repeated requests can
//! neither overdraw an account nor move money twice.

use std::collections::HashMap;
use std::time::Duration;

use pos_domain::{CardToken, Pan, TokenKey};
use pos_store::Store;
use redis::Script;
use serde::Deserialize;

use crate::card::CardRecord;
use crate::checks::Operation;
use crate::error::{IssuerError, Result};
use crate::seed::{Account, CardSeed};

const PRELUDE: &str = include_str!("lua/prelude.lua");
const AUTHORIZE: &str = include_str!("lua/authorize.lua");

/// The compiled scripts.
struct Scripts {
    purchase: Script,
    pre_auth: Script,
    completion: Script,
    pre_auth_void: Script,
    balance_inquiry: Script,
    reverse: Script,
    refund: Script,
    seed: Script,
}

impl Scripts {
    fn new() -> Self {
        let authorize = |body: &str| Script::new(&format!("{PRELUDE}\n{AUTHORIZE}\n{body}"));
        let plain = |body: &str| Script::new(&format!("{PRELUDE}\n{body}"));
        Self {
            purchase: authorize(include_str!("lua/purchase.lua")),
            pre_auth: authorize(include_str!("lua/pre_auth.lua")),
            completion: authorize(include_str!("lua/completion.lua")),
            pre_auth_void: authorize(include_str!("lua/pre_auth_void.lua")),
            balance_inquiry: authorize(include_str!("lua/balance_inquiry.lua")),
            reverse: plain(include_str!("lua/reverse.lua")),
            refund: plain(include_str!("lua/refund.lua")),
            seed: plain(include_str!("lua/seed.lua")),
        }
    }

    fn authorize(&self, op: Operation) -> &Script {
        match op {
            Operation::Purchase => &self.purchase,
            Operation::PreAuth => &self.pre_auth,
            Operation::Completion => &self.completion,
            Operation::PreAuthVoid => &self.pre_auth_void,
            Operation::BalanceInquiry => &self.balance_inquiry,
        }
    }
}

/// A request's record (`txn:<id>`): its answer and what it did.
#[derive(Debug, Clone, Default)]
pub struct Record {
    fields: HashMap<String, String>,
}

impl Record {
    pub(crate) fn from_pairs(pairs: impl IntoIterator<Item = (String, String)>) -> Self {
        Self {
            fields: pairs.into_iter().collect(),
        }
    }

    /// A field, empty when absent.
    pub fn get(&self, name: &str) -> &str {
        self.fields.get(name).map_or("", String::as_str)
    }

    /// A field holding minor units, `None` when absent or empty.
    pub fn minor(&self, name: &str) -> Option<i64> {
        self.get(name).parse().ok()
    }

    /// Whether this is the tombstone of a reversal that came before its original.
    pub fn is_tombstone(&self) -> bool {
        self.get("kind") == "tombstone"
    }
}

/// What an Authorize or Refund script did.
#[derive(Debug)]
pub enum Outcome {
    /// This call answered; the record holds the answer.
    New(Record),
    /// An identical request was answered before; its record.
    Replay(Record),
    /// The id was used for another request: "94", nothing changed.
    Mismatch,
    /// The caller's view of the books was stale; nothing changed, try again.
    Retry,
}

/// What a Reverse script did.
#[derive(Debug, PartialEq, Eq)]
pub enum ReverseOutcome {
    /// Done: outcome number (ReversalOutcome) and the available balance, when disclosed.
    Done {
        outcome: i32,
        available: Option<i64>,
    },
    /// Refused with this response code; nothing changed.
    Refused(String),
    /// Stale view; try again.
    Retry,
}

/// The arguments of an Authorize script (see `lua/authorize.lua`).
#[derive(Debug)]
pub struct AuthorizeArgs<'a> {
    /// Operation.
    pub op: Operation,
    /// Acquirer transaction id.
    pub id: &'a str,
    /// Card token; `None` when the PAN is not a valid card number.
    pub card: Option<&'a CardToken>,
    /// Hold id: the new one (pre-auth) or the one acted on; empty otherwise.
    pub hold_id: &'a str,
    /// Keyed digest of the request's content.
    pub digest: &'a str,
    /// Amount in minor units.
    pub amount: Option<i64>,
    /// Currency code ("" when no amount).
    pub currency: &'a str,
    /// Pre-check response code, "" when none.
    pub precheck: &'a str,
    /// PIN state argument.
    pub pin: &'a str,
    /// Approval code to use on approval.
    pub approval: &'a str,
    /// Issuer reference.
    pub reference: &'a str,
    /// Business date.
    pub date: &'a str,
    /// RRN prefix.
    pub rrn_prefix: &'a str,
    /// Time stamp.
    pub now: &'a str,
    /// Original acquirer transaction id.
    pub original: &'a str,
    /// Completion tolerance, percent.
    pub tolerance_percent: u32,
    /// PIN try limit.
    pub pin_try_limit: u32,
}

/// The arguments of the Refund script (see `lua/refund.lua`).
#[derive(Debug)]
pub struct RefundArgs<'a> {
    /// The refund's acquirer transaction id.
    pub id: &'a str,
    /// The original's acquirer transaction id.
    pub original: &'a str,
    /// Card token read from the original's record ("" when none).
    pub expected_card: &'a str,
    /// Digest.
    pub digest: &'a str,
    /// Amount, minor units.
    pub amount: i64,
    /// Currency code.
    pub currency: &'a str,
    /// Token of the PAN in the request, "" when none.
    pub pan_token: &'a str,
    /// Approval code to use.
    pub approval: &'a str,
    /// Issuer reference.
    pub reference: &'a str,
    /// Business date.
    pub date: &'a str,
    /// RRN prefix.
    pub rrn_prefix: &'a str,
    /// Time stamp.
    pub now: &'a str,
}

/// One ledger entry, as `account` prints it.
#[derive(Debug, Clone, Deserialize)]
pub struct LedgerEntry {
    /// Time stamp.
    pub at: String,
    /// Acquirer transaction id of the request (the original's for a reversal).
    #[serde(default)]
    pub txn: String,
    /// open, reseed, purchase, hold, capture, release, refund, reversal.
    pub op: String,
    /// Change of the book balance, minor units (negative takes money).
    pub amount: String,
    /// Change of the holds, minor units.
    #[serde(default)]
    pub hold: String,
    /// Book balance after.
    pub balance: String,
    /// Available after.
    pub available: String,
    /// Holds after.
    #[serde(default)]
    pub holds: String,
}

/// The issuer's view of Redis.
pub struct Books {
    store: Store,
    card_key: TokenKey,
    scripts: Scripts,
    retention: Duration,
}

impl std::fmt::Debug for Books {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Books")
            .field("store", &self.store)
            .field("retention", &self.retention)
            .finish_non_exhaustive()
    }
}

/// Placeholder for a key a script does not use in this call.
const UNUSED: &str = "-";

impl Books {
    /// Books in `store`, cards indexed by tokens under `card_key`; request records kept for
    /// `retention`.
    pub fn new(store: Store, card_key: TokenKey, retention: Duration) -> Self {
        Self {
            store,
            card_key,
            scripts: Scripts::new(),
            retention,
        }
    }

    /// The token that indexes `pan` in these books.
    pub fn token(&self, pan: &Pan) -> CardToken {
        pan.token(&self.card_key)
    }

    /// The key that makes request digests.
    pub fn digest_key(&self) -> &TokenKey {
        &self.card_key
    }

    fn card_key(&self, token: Option<&CardToken>) -> String {
        self.store
            .key(&["card", token.map_or(UNUSED, CardToken::as_str)])
    }

    fn ledger_key(&self, token: Option<&CardToken>) -> String {
        self.store
            .key(&["ledger", token.map_or(UNUSED, CardToken::as_str)])
    }

    fn txn_key(&self, id: &str) -> String {
        self.store.key(&["txn", id])
    }

    fn hold_key(&self, hold_id: &str) -> String {
        let id = if hold_id.is_empty() { UNUSED } else { hold_id };
        self.store.key(&["hold", id])
    }

    fn rrn_key(&self, date: &str) -> String {
        self.store.key(&["rrn", date])
    }

    fn ttl_seconds(&self) -> u64 {
        self.retention.as_secs().max(1)
    }

    /// The card account indexed by `token`, if it exists.
    pub async fn card(&self, token: &CardToken) -> Result<Option<CardRecord>> {
        let key = self.card_key(Some(token));
        let mut conn = self.store.connection();
        let fields: HashMap<String, String> = redis::cmd("HGETALL")
            .arg(&key)
            .query_async(&mut conn)
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        CardRecord::from_hash(&key, &fields).map(Some)
    }

    /// The record of request `id`, if any.
    pub async fn record(&self, id: &str) -> Result<Option<Record>> {
        let mut conn = self.store.connection();
        let fields: Vec<(String, String)> = redis::cmd("HGETALL")
            .arg(self.txn_key(id))
            .query_async(&mut conn)
            .await?;
        Ok((!fields.is_empty()).then(|| Record::from_pairs(fields)))
    }

    /// The ledger of the card indexed by `token`, oldest first.
    pub async fn ledger(&self, token: &CardToken) -> Result<Vec<LedgerEntry>> {
        let key = self.ledger_key(Some(token));
        let mut conn = self.store.connection();
        let lines: Vec<String> = redis::cmd("LRANGE")
            .arg(&key)
            .arg(0)
            .arg(-1)
            .query_async(&mut conn)
            .await?;
        lines
            .iter()
            .map(|line| {
                serde_json::from_str(line).map_err(|e| IssuerError::Corrupt {
                    key: key.clone(),
                    detail: e.to_string(),
                })
            })
            .collect()
    }

    /// Runs the Authorize script of `args.op`.
    pub async fn authorize(&self, args: &AuthorizeArgs<'_>) -> Result<Outcome> {
        let script = self.scripts.authorize(args.op);
        let mut invocation = script.prepare_invoke();
        invocation
            .key(self.txn_key(args.id))
            .key(self.card_key(args.card))
            .key(self.ledger_key(args.card))
            .key(self.rrn_key(args.date))
            .key(self.hold_key(args.hold_id))
            .arg(args.digest)
            .arg(args.op.as_str())
            .arg(args.amount.map(|a| a.to_string()).unwrap_or_default())
            .arg(args.currency)
            .arg(args.precheck)
            .arg(args.pin)
            .arg(args.approval)
            .arg(args.reference)
            .arg(args.date)
            .arg(args.rrn_prefix)
            .arg(args.now)
            .arg(self.ttl_seconds())
            .arg(args.hold_id)
            .arg(args.original)
            .arg(args.tolerance_percent)
            .arg(args.pin_try_limit)
            .arg(args.card.map_or("", CardToken::as_str))
            .arg(args.id);
        let mut conn = self.store.connection();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        parse_outcome(reply)
    }

    /// Runs the Refund script.
    pub async fn refund(&self, args: &RefundArgs<'_>) -> Result<Outcome> {
        let card = CardToken::parse(args.expected_card).ok();
        let date = args.date;
        let mut invocation = self.scripts.refund.prepare_invoke();
        invocation
            .key(self.txn_key(args.id))
            .key(self.txn_key(args.original))
            .key(self.card_key(card.as_ref()))
            .key(self.ledger_key(card.as_ref()))
            .key(self.rrn_key(date))
            .arg(args.digest)
            .arg(args.amount)
            .arg(args.currency)
            .arg(args.pan_token)
            .arg(args.approval)
            .arg(args.reference)
            .arg(date)
            .arg(args.rrn_prefix)
            .arg(args.now)
            .arg(self.ttl_seconds())
            .arg(args.expected_card)
            .arg(args.id)
            .arg(args.original);
        let mut conn = self.store.connection();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        parse_outcome(reply)
    }

    /// Runs the Reverse script for the original `original`, whose record (if the caller found
    /// one) is `record`.
    pub async fn reverse(
        &self,
        original: &str,
        record: Option<&Record>,
        amount: Option<i64>,
        reversal_id: &str,
        now: &str,
    ) -> Result<ReverseOutcome> {
        let expected = record.map_or("", |r| r.get("card"));
        let card = CardToken::parse(expected).ok();
        let hold = record.map_or("", |r| r.get("hold"));
        let refunded_original = match record {
            Some(r) if r.get("op") == "refund" => self.txn_key(r.get("original")),
            _ => self.txn_key(UNUSED),
        };
        let mut invocation = self.scripts.reverse.prepare_invoke();
        invocation
            .key(self.txn_key(original))
            .key(self.card_key(card.as_ref()))
            .key(self.ledger_key(card.as_ref()))
            .key(self.hold_key(hold))
            .key(refunded_original)
            .arg(amount.map(|a| a.to_string()).unwrap_or_default())
            .arg(reversal_id)
            .arg(now)
            .arg(self.ttl_seconds())
            .arg(expected)
            .arg(original);
        let mut conn = self.store.connection();
        let reply: Vec<String> = invocation.invoke_async(&mut conn).await?;
        match reply.first().map(String::as_str) {
            Some("done") => {
                let outcome = reply.get(1).and_then(|o| o.parse().ok()).unwrap_or(0);
                let available = reply.get(2).and_then(|a| a.parse().ok());
                Ok(ReverseOutcome::Done { outcome, available })
            }
            Some("code") => Ok(ReverseOutcome::Refused(
                reply.get(1).cloned().unwrap_or_default(),
            )),
            Some("retry") => Ok(ReverseOutcome::Retry),
            _ => Err(IssuerError::Internal(format!(
                "the reverse script answered {reply:?}"
            ))),
        }
    }

    /// Seeds one card; `true` when it was written, `false` when it existed and `reseed` is
    /// off. `pin_hash` is the argon2id hash of its PIN.
    pub async fn seed_card(
        &self,
        card: &CardSeed,
        pin_hash: &str,
        reseed: bool,
        now: &str,
    ) -> Result<bool> {
        let token = self.token(&card.pan);
        let mut fields: Vec<(&str, String)> = vec![
            ("masked", card.pan.masked().to_string()),
            ("label", card.label.clone()),
            ("expiry", card.expiry.to_string()),
            ("service_code", card.service_code.to_string()),
            ("funding", card.account.funding().as_str().to_owned()),
            ("status", card.status.as_str().to_owned()),
            ("currency", card.currency.code().to_owned()),
            ("pin_hash", pin_hash.to_owned()),
            (
                "per_txn_limit",
                card.per_transaction_limit
                    .map(|l| l.to_string())
                    .unwrap_or_default(),
            ),
        ];
        match card.account {
            Account::Debit { balance } => fields.push(("balance", balance.to_string())),
            Account::Credit { credit_limit, owed } => {
                fields.push(("credit_limit", credit_limit.to_string()));
                fields.push(("owed", owed.to_string()));
            }
        }
        let mut invocation = self.scripts.seed.prepare_invoke();
        invocation
            .key(self.card_key(Some(&token)))
            .key(self.ledger_key(Some(&token)))
            .arg(if reseed { "1" } else { "0" })
            .arg(now);
        for (name, value) in &fields {
            invocation.arg(*name).arg(value);
        }
        let mut conn = self.store.connection();
        let written: i64 = invocation.invoke_async(&mut conn).await?;
        Ok(written == 1)
    }

    /// Whether the card of `token` exists.
    pub async fn card_exists(&self, token: &CardToken) -> Result<bool> {
        let mut conn = self.store.connection();
        let n: i64 = redis::cmd("EXISTS")
            .arg(self.card_key(Some(token)))
            .query_async(&mut conn)
            .await?;
        Ok(n == 1)
    }
}

/// `{ status, field, value, ... }` from an Authorize or Refund script.
fn parse_outcome(reply: Vec<String>) -> Result<Outcome> {
    let mut items = reply.into_iter();
    let status = items.next().unwrap_or_default();
    let mut pairs = Vec::new();
    while let (Some(name), Some(value)) = (items.next(), items.next()) {
        pairs.push((name, value));
    }
    match status.as_str() {
        "new" => Ok(Outcome::New(Record::from_pairs(pairs))),
        "replay" => Ok(Outcome::Replay(Record::from_pairs(pairs))),
        "mismatch" => Ok(Outcome::Mismatch),
        "retry" => Ok(Outcome::Retry),
        other => Err(IssuerError::Internal(format!(
            "a script answered with status {other:?}"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn script_replies_become_outcomes() {
        let reply = |items: &[&str]| items.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
        let Outcome::New(record) =
            parse_outcome(reply(&["new", "code", "00", "rrn", "1"])).unwrap()
        else {
            panic!("not new");
        };
        assert_eq!((record.get("code"), record.get("rrn")), ("00", "1"));
        assert_eq!(record.minor("rrn"), Some(1));
        assert_eq!(record.get("missing"), "");
        assert!(matches!(
            parse_outcome(reply(&["mismatch"])).unwrap(),
            Outcome::Mismatch
        ));
        assert!(matches!(
            parse_outcome(reply(&["retry"])).unwrap(),
            Outcome::Retry
        ));
        assert!(parse_outcome(reply(&["bogus"])).is_err());
    }
}
