//! The record of every transaction authorization decided, in Redis beside the events:
//! authorization writes them (completions and pre-auth voids find their pre-authorization
//! here), the reversal service reads them to find an original by its trace or RRN. Never a PAN:
//! the card is its token and masked form.
//!
//! Layout under the deployment prefix (all with the same time to live, [`RECORD_TTL`]):
//! - `txn:{transaction_id}`: hash of [`TxnRecord`];
//! - `txn:trace:{terminal_id}:{batch_no}:{stan}`: the transaction id of that terminal request;
//! - `txn:rrn:{rrn}`: the transaction id with that RRN (approved and issuer-declined ones);
//! - `txn:approval:{card_token}:{approval_code}`: the approved transaction of that card with
//!   that approval code (how a completion names its pre-authorization);
//! - `reversal:trace:{terminal_id}:{batch_no}:{stan}`: see [`reversal_mark_key`];
//! - `txn:unrecorded`: sorted set (score = milliseconds since the epoch) of transactions the
//!   issuer may have approved but whose decision event could not be published (their
//!   `txn:{id}` has `unrecorded` = 1 and `answered` = 96, the code the terminal got); the
//!   reversal service reverses them at the issuer (idempotent on the transaction id).

use std::sync::LazyLock;
use std::time::Duration;

use pos_proto::v1 as pb;
use pos_store::{Result, Store};

/// How long records are kept: longer than the 30 days within which CUP allows a pre-auth to be
/// completed.
pub const RECORD_TTL: Duration = Duration::from_secs(40 * 24 * 3600);

/// Sets the hold state of a pre-authorization that has a record (never creates one).
static SETTLE: LazyLock<redis::Script> = LazyLock::new(|| {
    redis::Script::new(
        r"
if redis.call('EXISTS', KEYS[1]) == 1 then
  redis.call('HSET', KEYS[1], 'hold_state', ARGV[1], 'settled_by', ARGV[2])
  return 1
end
return 0
",
    )
});

/// Key of authorization's idempotency claim of a terminal request (JSON with the
/// `transaction_id` it runs under, from the moment the request is claimed).
pub fn claim_key(store: &Store, terminal_id: &str, batch_no: u32, stan: u32) -> String {
    let (batch, stan) = (batch_no.to_string(), stan.to_string());
    store.key(&["authz", "idem", terminal_id, &batch, &stan])
}

/// Key of the mark the reversal service leaves on a terminal request it was asked to reverse,
/// `reversal:trace:{terminal_id}:{batch_no}:{stan}` (value: the reversal id). authorization
/// refuses to start a request that carries the mark, so an original arriving after its
/// reversal never moves money.
pub fn reversal_mark_key(store: &Store, terminal_id: &str, batch_no: u32, stan: u32) -> String {
    let (batch, stan) = (batch_no.to_string(), stan.to_string());
    store.key(&["reversal", "trace", terminal_id, &batch, &stan])
}

/// The transaction id an idempotency claim record names (its JSON `transaction_id`).
pub fn claimed_transaction_id(record: &[u8]) -> Option<String> {
    #[derive(serde::Deserialize)]
    struct Claimed {
        transaction_id: String,
    }
    serde_json::from_slice::<Claimed>(record)
        .ok()
        .map(|c| c.transaction_id)
        .filter(|id| !id.is_empty())
}

/// [`TxnRecord::kind`] of a pre-authorization.
pub const PRE_AUTH: &str = "pre_auth";

/// The [`TxnRecord::kind`] of the transaction types authorization decides.
pub fn kind_name(kind: pb::TransactionType) -> Option<&'static str> {
    use pb::TransactionType as T;
    match kind {
        T::Purchase => Some("purchase"),
        T::BalanceInquiry => Some("balance_inquiry"),
        T::PreAuth => Some(PRE_AUTH),
        T::PreAuthCompletion => Some("pre_auth_completion"),
        T::PreAuthVoid => Some("pre_auth_void"),
        _ => None,
    }
}

/// The transaction type of a [`TxnRecord::kind`].
pub fn kind_type(kind: &str) -> pb::TransactionType {
    use pb::TransactionType as T;
    [
        T::Purchase,
        T::BalanceInquiry,
        T::PreAuth,
        T::PreAuthCompletion,
        T::PreAuthVoid,
    ]
    .into_iter()
    .find(|t| kind_name(*t) == Some(kind))
    .unwrap_or(T::Unspecified)
}

/// A decided transaction as authorization keeps it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TxnRecord {
    /// Transaction id (UUIDv7), also the issuer's acquirer transaction id.
    pub transaction_id: String,
    /// [`kind_name`] of the transaction type.
    pub kind: String,
    /// Terminal.
    pub terminal_id: String,
    /// Batch number.
    pub batch_no: u32,
    /// STAN.
    pub stan: u32,
    /// Merchant.
    pub merchant_id: String,
    /// Operator number on the terminal.
    pub operator_no: String,
    /// Requested amount in minor units; `None` for balance inquiry.
    pub amount_minor: Option<i64>,
    /// Currency of the amount.
    pub currency: String,
    /// Card token.
    pub card_token: String,
    /// Masked PAN.
    pub masked_pan: String,
    /// Response code given.
    pub response_code: String,
    /// Approval code; empty when declined.
    pub approval_code: String,
    /// RRN; empty when the issuer was not reached.
    pub rrn: String,
    /// Issuer hold id (pre-auth, completion, void).
    pub hold_id: String,
    /// Issuer's reference.
    pub issuer_reference: String,
    /// Business date "YYYY-MM-DD".
    pub business_date: String,
    /// For completion and void: the pre-authorization's transaction id.
    pub original_transaction_id: String,
    /// For an approved pre-auth: "held", "completed" or "voided".
    pub hold_state: String,
    /// For a pre-auth no longer held: the transaction that completed or voided it.
    pub settled_by: String,
    /// The issuer may have acted but the decision's event was never published (the terminal
    /// was answered "96"); written only by [`Records::save_unrecorded`].
    pub unrecorded: bool,
}

impl TxnRecord {
    /// The record of a decision from the facts of its event.
    pub fn from_facts(facts: &pb::TransactionFacts) -> Self {
        let kind = pb::TransactionType::try_from(facts.transaction_type)
            .ok()
            .and_then(kind_name);
        let amount = facts.amount.clone();
        let card = facts.card.clone().unwrap_or_default();
        let trace = facts.trace.clone().unwrap_or_default();
        let approved = facts.response_code == "00";
        Self {
            transaction_id: facts.transaction_id.clone(),
            kind: kind.unwrap_or_default().to_owned(),
            terminal_id: trace.terminal_id,
            batch_no: trace.batch_no,
            stan: trace.stan,
            merchant_id: facts.merchant_id.clone(),
            operator_no: facts.operator_no.clone(),
            amount_minor: amount.as_ref().map(|m| m.minor_units),
            currency: amount.map(|m| m.currency).unwrap_or_default(),
            card_token: card.card_token,
            masked_pan: card.masked_pan,
            response_code: facts.response_code.clone(),
            approval_code: facts.approval_code.clone(),
            rrn: facts.rrn.clone(),
            hold_id: facts.issuer_hold_id.clone(),
            issuer_reference: facts.issuer_reference.clone(),
            business_date: facts.business_date.clone(),
            original_transaction_id: facts
                .original
                .as_ref()
                .map(|o| o.transaction_id.clone())
                .unwrap_or_default(),
            hold_state: if approved && kind == Some(PRE_AUTH) {
                "held".to_owned()
            } else {
                String::new()
            },
            settled_by: String::new(),
            unrecorded: false,
        }
    }

    /// Whether the decision was an approval.
    pub fn approved(&self) -> bool {
        self.response_code == "00"
    }

    fn fields(&self) -> Vec<(&'static str, String)> {
        vec![
            ("transaction_id", self.transaction_id.clone()),
            ("kind", self.kind.clone()),
            ("terminal_id", self.terminal_id.clone()),
            ("batch_no", self.batch_no.to_string()),
            ("stan", self.stan.to_string()),
            ("merchant_id", self.merchant_id.clone()),
            ("operator_no", self.operator_no.clone()),
            (
                "amount_minor",
                self.amount_minor.map(|a| a.to_string()).unwrap_or_default(),
            ),
            ("currency", self.currency.clone()),
            ("card_token", self.card_token.clone()),
            ("masked_pan", self.masked_pan.clone()),
            ("response_code", self.response_code.clone()),
            ("approval_code", self.approval_code.clone()),
            ("rrn", self.rrn.clone()),
            ("hold_id", self.hold_id.clone()),
            ("issuer_reference", self.issuer_reference.clone()),
            ("business_date", self.business_date.clone()),
            (
                "original_transaction_id",
                self.original_transaction_id.clone(),
            ),
            ("hold_state", self.hold_state.clone()),
            ("settled_by", self.settled_by.clone()),
        ]
    }

    fn from_fields(fields: &[(String, String)]) -> Self {
        let get = |name: &str| {
            fields
                .iter()
                .find(|(k, _)| k == name)
                .map_or_else(String::new, |(_, v)| v.clone())
        };
        Self {
            transaction_id: get("transaction_id"),
            kind: get("kind"),
            terminal_id: get("terminal_id"),
            batch_no: get("batch_no").parse().unwrap_or(0),
            stan: get("stan").parse().unwrap_or(0),
            merchant_id: get("merchant_id"),
            operator_no: get("operator_no"),
            amount_minor: get("amount_minor").parse().ok(),
            currency: get("currency"),
            card_token: get("card_token"),
            masked_pan: get("masked_pan"),
            response_code: get("response_code"),
            approval_code: get("approval_code"),
            rrn: get("rrn"),
            hold_id: get("hold_id"),
            issuer_reference: get("issuer_reference"),
            business_date: get("business_date"),
            original_transaction_id: get("original_transaction_id"),
            hold_state: get("hold_state"),
            settled_by: get("settled_by"),
            unrecorded: get("unrecorded") == "1",
        }
    }
}

/// Reads and writes the records.
#[derive(Debug, Clone)]
pub struct Records {
    store: Store,
}

impl Records {
    /// Records kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn txn_key(&self, id: &str) -> String {
        self.store.key(&["txn", id])
    }

    fn trace_key(&self, terminal_id: &str, batch_no: u32, stan: u32) -> String {
        let (batch, stan) = (batch_no.to_string(), stan.to_string());
        self.store
            .key(&["txn", "trace", terminal_id, &batch, &stan])
    }

    fn rrn_key(&self, rrn: &str) -> String {
        self.store.key(&["txn", "rrn", rrn])
    }

    fn approval_key(&self, card_token: &str, approval_code: &str) -> String {
        self.store
            .key(&["txn", "approval", card_token, approval_code])
    }

    /// Keeps a decided transaction and its indexes (one atomic pipeline).
    pub async fn save(&self, record: &TxnRecord) -> Result<()> {
        self.save_for(record, RECORD_TTL).await
    }

    /// Whether transaction `id` has a record.
    pub async fn exists(&self, id: &str) -> Result<bool> {
        let mut conn = self.store.connection();
        let found: u8 = redis::cmd("EXISTS")
            .arg(self.txn_key(id))
            .query_async(&mut conn)
            .await?;
        Ok(found == 1)
    }

    /// Like [`Records::save`] with the time to live `ttl` (what is left of it after a rebuild).
    pub async fn save_for(&self, record: &TxnRecord, ttl: Duration) -> Result<()> {
        let ttl = ttl.as_secs().max(1);
        let id = &record.transaction_id;
        let key = self.txn_key(id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET").arg(&key);
        for (field, value) in record.fields() {
            pipe.arg(field).arg(value);
        }
        pipe.ignore();
        pipe.cmd("EXPIRE").arg(&key).arg(ttl).ignore();
        let trace = self.trace_key(&record.terminal_id, record.batch_no, record.stan);
        pipe.cmd("SET")
            .arg(trace)
            .arg(id)
            .arg("EX")
            .arg(ttl)
            .ignore();
        if !record.rrn.is_empty() {
            let rrn = self.rrn_key(&record.rrn);
            pipe.cmd("SET").arg(rrn).arg(id).arg("EX").arg(ttl).ignore();
        }
        if record.approved() && !record.approval_code.is_empty() && !record.card_token.is_empty() {
            let approval = self.approval_key(&record.card_token, &record.approval_code);
            pipe.cmd("SET")
                .arg(approval)
                .arg(id)
                .arg("EX")
                .arg(ttl)
                .ignore();
        }
        let mut conn = self.store.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }

    /// The record of transaction `id`.
    pub async fn get(&self, id: &str) -> Result<Option<TxnRecord>> {
        let fields = self.store.hash_get_all(&self.txn_key(id)).await?;
        Ok((!fields.is_empty()).then(|| TxnRecord::from_fields(&fields)))
    }

    async fn follow(&self, index_key: &str) -> Result<Option<TxnRecord>> {
        match self.store.get(index_key).await? {
            Some(id) => self.get(&String::from_utf8_lossy(&id)).await,
            None => Ok(None),
        }
    }

    /// The transaction of a terminal request.
    pub async fn by_trace(
        &self,
        terminal_id: &str,
        batch_no: u32,
        stan: u32,
    ) -> Result<Option<TxnRecord>> {
        self.follow(&self.trace_key(terminal_id, batch_no, stan))
            .await
    }

    /// The transaction with this RRN.
    pub async fn by_rrn(&self, rrn: &str) -> Result<Option<TxnRecord>> {
        self.follow(&self.rrn_key(rrn)).await
    }

    /// The approved transaction of this card with this approval code.
    pub async fn by_approval(
        &self,
        card_token: &str,
        approval_code: &str,
    ) -> Result<Option<TxnRecord>> {
        self.follow(&self.approval_key(card_token, approval_code))
            .await
    }

    /// Marks a pre-authorization as completed or voided by transaction `by` (nothing when its
    /// record has expired).
    pub async fn settle_hold(&self, pre_auth_id: &str, state: &str, by: &str) -> Result<()> {
        let mut conn = self.store.connection();
        let _: u8 = SETTLE
            .key(self.txn_key(pre_auth_id))
            .arg(state)
            .arg(by)
            .invoke_async(&mut conn)
            .await?;
        Ok(())
    }

    /// Keeps a transaction whose issuer outcome may have moved money but whose decision event
    /// was not published, for the reversal service to undo at the issuer.
    pub async fn save_unrecorded(&self, record: &TxnRecord, at_millis: u64) -> Result<()> {
        let key = self.txn_key(&record.transaction_id);
        let mut pipe = redis::pipe();
        pipe.atomic();
        pipe.cmd("HSET").arg(&key);
        for (field, value) in record.fields() {
            pipe.arg(field).arg(value);
        }
        pipe.arg("unrecorded")
            .arg("1")
            .arg("answered")
            .arg("96")
            .ignore();
        pipe.cmd("EXPIRE")
            .arg(&key)
            .arg(RECORD_TTL.as_secs())
            .ignore();
        pipe.cmd("ZADD")
            .arg(self.store.key(&["txn", "unrecorded"]))
            .arg(at_millis)
            .arg(&record.transaction_id)
            .ignore();
        let mut conn = self.store.connection();
        let () = pipe.query_async(&mut conn).await?;
        Ok(())
    }
}

impl Records {
    /// Up to `limit` transactions listed as unrecorded, oldest first.
    pub async fn unrecorded(&self, limit: usize) -> Result<Vec<String>> {
        let mut conn = self.store.connection();
        let stop = isize::try_from(limit)
            .unwrap_or(isize::MAX)
            .saturating_sub(1);
        let ids: Vec<String> = redis::cmd("ZRANGE")
            .arg(self.store.key(&["txn", "unrecorded"]))
            .arg(0)
            .arg(stop)
            .query_async(&mut conn)
            .await?;
        Ok(ids)
    }

    /// Takes transaction `id` off the unrecorded list (it was reversed at the issuer).
    pub async fn forget_unrecorded(&self, id: &str) -> Result<()> {
        let mut conn = self.store.connection();
        let _: u8 = redis::cmd("ZREM")
            .arg(self.store.key(&["txn", "unrecorded"]))
            .arg(id)
            .query_async(&mut conn)
            .await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_through_hash_fields() {
        let record = TxnRecord {
            transaction_id: "0190a0b0-0000-7000-8000-000000000001".to_owned(),
            kind: "pre_auth".to_owned(),
            terminal_id: "TERM0001".to_owned(),
            batch_no: 1,
            stan: 7,
            merchant_id: "898310048990001".to_owned(),
            amount_minor: Some(10_000),
            currency: "CNY".to_owned(),
            card_token: "ab".repeat(32),
            masked_pan: "622202****3446".to_owned(),
            response_code: "00".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            rrn: "123456789012".to_owned(),
            hold_id: "hold-1".to_owned(),
            hold_state: "held".to_owned(),
            ..TxnRecord::default()
        };
        let fields: Vec<(String, String)> = record
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(TxnRecord::from_fields(&fields), record);
        assert!(record.approved());
        let balance = TxnRecord {
            amount_minor: None,
            ..record
        };
        let fields: Vec<(String, String)> = balance
            .fields()
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect();
        assert_eq!(TxnRecord::from_fields(&fields).amount_minor, None);
    }
}
