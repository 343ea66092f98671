//! Idempotency of terminal requests (DESIGN.md §5): terminal id + batch number + STAN is the
//! key; the first request claims it, every retry with the same content gets the first answer,
//! and the same key with other content is refused ("94").
//!
//! The content is compared through a fingerprint: a keyed HMAC-SHA-256 (the token key, purpose
//! `authorization-request`) of what decides the money: type, merchant, amount, card number,
//! expiry and the original a completion or void names. Not the PIN block, which a terminal
//! re-encrypts for a retry, nor field 55 or the local time.
//!
//! The record under `authz:idem:{terminal_id}:{batch_no}:{stan}` lives 24 hours and is JSON:
//! `pending` (with the transaction id and when the attempt started) from the claim on, `done`
//! (with the protobuf answer) once the decision's event is on the topic. A pending record whose
//! attempt is older than the lease was abandoned (the process died): the next retry takes it
//! over and runs it again *with the same transaction id*, so the issuer, idempotent on that id,
//! answers as before instead of debiting twice. A retry that finds its first attempt still
//! running waits for that attempt's answer (up to the slowest path of a request) and gets it.

use std::sync::LazyLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use pos_domain::TokenKey;
use pos_proto::v1 as pb;
use pos_store::{Result, Store, StoreError};
use prost::Message;
use redis::Script;
use serde::{Deserialize, Serialize};

use crate::model::{Request, Trace};

/// How long an idempotency record is kept (REFERENCE.md: at least 24 hours).
pub const RECORD_TTL: Duration = Duration::from_secs(24 * 3600);

/// How often a retry that found its first attempt running looks for the answer.
const POLL_INTERVAL: Duration = Duration::from_millis(50);

/// The keyed fingerprint of the request's content (64 hex digits).
pub fn fingerprint(key: &TokenKey, request: &Request) -> String {
    let mut content = Vec::with_capacity(256);
    let mut field = |value: &[u8]| {
        content.extend_from_slice(&u32::try_from(value.len()).unwrap_or(u32::MAX).to_be_bytes());
        content.extend_from_slice(value);
    };
    field(request.kind.as_str().as_bytes());
    field(request.merchant_id.as_bytes());
    match &request.amount {
        Some(amount) => {
            field(amount.minor_units.to_string().as_bytes());
            field(amount.currency.as_bytes());
        }
        None => {
            field(b"");
            field(b"");
        }
    }
    field(request.card.pan.as_bytes());
    field(request.card.expiry.as_bytes());
    let original = request.original.clone().unwrap_or_default();
    field(original.transaction_id.as_bytes());
    field(original.terminal_id.as_bytes());
    field(original.batch_no.to_string().as_bytes());
    field(original.stan.to_string().as_bytes());
    field(original.rrn.as_bytes());
    field(original.approval_code.as_bytes());
    field(original.business_date.as_bytes());
    key.keyed_hash("authorization-request", &content)
}

/// What the record says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum State {
    /// An attempt is running (or died).
    Pending {
        /// When it started, milliseconds since the epoch.
        started_ms: u64,
    },
    /// The answer, protobuf `AuthorizationResponse` as hex.
    Done {
        /// The encoded answer.
        response: String,
    },
}

/// The idempotency record of one terminal request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// Fingerprint of the content that claimed the key.
    pub fingerprint: String,
    /// Transaction id of that request.
    pub transaction_id: String,
    /// Pending or done.
    #[serde(flatten)]
    pub state: State,
}

impl Record {
    /// A new claim.
    pub fn pending(fingerprint: &str, transaction_id: &str, now: SystemTime) -> Self {
        Self {
            fingerprint: fingerprint.to_owned(),
            transaction_id: transaction_id.to_owned(),
            state: State::Pending {
                started_ms: millis(now),
            },
        }
    }

    /// The final answer.
    pub fn done(
        fingerprint: &str,
        transaction_id: &str,
        response: &pb::AuthorizationResponse,
    ) -> Self {
        Self {
            fingerprint: fingerprint.to_owned(),
            transaction_id: transaction_id.to_owned(),
            state: State::Done {
                response: hex::encode(response.encode_to_vec()),
            },
        }
    }

    fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq)]
pub enum Claim {
    /// The key was free: this request runs.
    New,
    /// An abandoned attempt of the same content: this request runs again under its
    /// transaction id.
    TakenOver {
        /// The abandoned attempt's transaction id.
        transaction_id: String,
    },
    /// The same content is being decided right now.
    InProgress,
    /// The same content was decided: here is the answer.
    Done(Box<pb::AuthorizationResponse>),
    /// The key was used by a request with other content.
    Conflict,
    /// The terminal (or the host) already reversed this request: it must not run.
    Reversed,
}

/// Replaces the record only if it is still the one read (compare and set, TTL kept).
static TAKE_OVER: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'KEEPTTL')
  return 1
end
return 0
",
    )
});

/// Claims a key unless the request was reversed: `{0, ''}` claimed, `{1, record}` the key
/// holds `record`, `{2, ''}` the reversal service marked the request as reversed.
static CLAIM: LazyLock<Script> = LazyLock::new(|| {
    Script::new(
        r"
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {2, ''}
end
local existing = redis.call('GET', KEYS[1])
if existing then
  return {1, existing}
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
return {0, ''}
",
    )
});

/// The idempotency records in Redis.
#[derive(Debug, Clone)]
pub struct Idempotency {
    store: Store,
    lease: Duration,
}

impl Idempotency {
    /// Records in `store`; an attempt pending longer than `lease` counts as abandoned.
    pub fn new(store: Store, lease: Duration) -> Self {
        Self { store, lease }
    }

    fn key(&self, trace: &Trace) -> String {
        pos_facts::txn::claim_key(
            &self.store,
            trace.terminal_id.as_str(),
            trace.batch_no.value(),
            trace.stan.value(),
        )
    }

    /// Claims the key of `trace` for a request with `fingerprint` and `transaction_id`.
    pub async fn claim(
        &self,
        trace: &Trace,
        fingerprint: &str,
        transaction_id: &str,
        now: SystemTime,
    ) -> Result<Claim> {
        let key = self.key(trace);
        let mine = Record::pending(fingerprint, transaction_id, now);
        let mark = pos_facts::txn::reversal_mark_key(
            &self.store,
            trace.terminal_id.as_str(),
            trace.batch_no.value(),
            trace.stan.value(),
        );
        let mut conn = self.store.connection();
        let (outcome, existing): (u8, Vec<u8>) = CLAIM
            .key(&key)
            .key(&mark)
            .arg(mine.encode())
            .arg(u64::try_from(RECORD_TTL.as_millis()).unwrap_or(u64::MAX))
            .invoke_async(&mut conn)
            .await?;
        let existing = match outcome {
            0 => return Ok(Claim::New),
            2 => return Ok(Claim::Reversed),
            _ if existing.is_empty() => {
                return Err(StoreError::Corrupt {
                    key,
                    detail: "the claim script answered without the record".to_owned(),
                });
            }
            _ => existing,
        };
        let found: Record = serde_json::from_slice(&existing).map_err(|e| StoreError::Corrupt {
            key: key.clone(),
            detail: format!("idempotency record: {e}"),
        })?;
        if found.fingerprint != fingerprint {
            return Ok(Claim::Conflict);
        }
        match &found.state {
            State::Done { response } => {
                let answer = decode_answer(response).ok_or_else(|| StoreError::Corrupt {
                    key: key.clone(),
                    detail: "idempotency record: undecodable answer".to_owned(),
                })?;
                Ok(Claim::Done(Box::new(answer)))
            }
            State::Pending { started_ms } => {
                let age = millis(now).saturating_sub(*started_ms);
                if u128::from(age) < self.lease.as_millis() {
                    return Ok(Claim::InProgress);
                }
                let renewed = Record::pending(fingerprint, &found.transaction_id, now);
                let mut conn = self.store.connection();
                let replaced: u8 = TAKE_OVER
                    .key(&key)
                    .arg(existing)
                    .arg(renewed.encode())
                    .invoke_async(&mut conn)
                    .await?;
                if replaced == 1 {
                    Ok(Claim::TakenOver {
                        transaction_id: found.transaction_id,
                    })
                } else {
                    Ok(Claim::InProgress)
                }
            }
        }
    }

    /// Waits until the attempt holding the key of `trace` stores its answer, polling until
    /// `deadline`; `None` when it did not finish in time (or the key now holds other content).
    pub async fn wait_for_answer(
        &self,
        trace: &Trace,
        fingerprint: &str,
        deadline: Instant,
    ) -> Result<Option<pb::AuthorizationResponse>> {
        let key = self.key(trace);
        while Instant::now() < deadline {
            tokio::time::sleep(POLL_INTERVAL).await;
            let Some(bytes) = self.store.get(&key).await? else {
                return Ok(None);
            };
            let Ok(found) = serde_json::from_slice::<Record>(&bytes) else {
                return Ok(None);
            };
            match found.state {
                State::Done { response } if found.fingerprint == fingerprint => {
                    return Ok(decode_answer(&response));
                }
                State::Done { .. } => return Ok(None),
                State::Pending { .. } => {}
            }
        }
        Ok(None)
    }

    /// Puts back a final answer read from the topic, unless the key holds a record already;
    /// it lives for `ttl` (what is left of its 24 hours).
    pub async fn restore(&self, trace: &Trace, record: &Record, ttl: Duration) -> Result<()> {
        self.store
            .set_if_absent(&self.key(trace), &record.encode(), ttl)
            .await
            .map(|_| ())
    }

    /// Stores the final answer for every later retry.
    pub async fn finish(&self, trace: &Trace, record: &Record) -> Result<()> {
        self.store
            .put(&self.key(trace), &record.encode(), RECORD_TTL)
            .await
    }
}

/// The answer stored as hex protobuf.
fn decode_answer(hex_answer: &str) -> Option<pb::AuthorizationResponse> {
    let bytes = hex::decode(hex_answer).ok()?;
    pb::AuthorizationResponse::decode(bytes.as_slice()).ok()
}

fn millis(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::tests::purchase;

    fn key() -> TokenKey {
        TokenKey::from_bytes(&[7; 32]).unwrap()
    }

    fn print(edit: impl FnOnce(&mut pb::AuthorizationRequest)) -> String {
        let mut proto = purchase();
        edit(&mut proto);
        fingerprint(&key(), &Request::try_from(proto).unwrap())
    }

    #[test]
    fn same_content_same_fingerprint_whatever_the_pin_block_or_chip_data() {
        let first = print(|_| {});
        assert_eq!(first.len(), 64);
        assert_eq!(first, print(|r| r.pin_block = vec![1; 8]));
        assert_eq!(
            first,
            print(|r| r.local_datetime = "2025-06-01T12:00:05".to_owned())
        );
        assert_eq!(
            first,
            print(|r| r.card.as_mut().unwrap().emv_data = vec![0x9F, 0x26])
        );
        assert_eq!(first, print(|r| r.session_id = "other session".to_owned()));
    }

    #[test]
    fn other_content_other_fingerprint() {
        let first = print(|_| {});
        assert_ne!(
            first,
            print(|r| r.amount.as_mut().unwrap().minor_units = 5001)
        );
        assert_ne!(
            first,
            print(|r| r.amount.as_mut().unwrap().currency = "USD".to_owned())
        );
        assert_ne!(
            first,
            print(|r| r.card.as_mut().unwrap().pan = "6222020200112233453".to_owned())
        );
        assert_ne!(
            first,
            print(|r| r.transaction_type = pb::TransactionType::PreAuth as i32)
        );
        assert_ne!(
            first,
            print(|r| r.merchant_id = "898310048990002".to_owned())
        );
        assert_ne!(
            first,
            print(|r| {
                r.original = Some(pb::OriginalTransactionRef {
                    approval_code: "A1B2C3".to_owned(),
                    ..pb::OriginalTransactionRef::default()
                });
            })
        );
        // Fields are length-prefixed: moving a character between fields changes the print.
        assert_ne!(
            print(|r| r.merchant_id = "89831004899000".to_owned()),
            print(|r| r.merchant_id = "8983100489900".to_owned())
        );
    }

    #[test]
    fn the_fingerprint_is_keyed_and_hides_the_card() {
        let request = Request::try_from(purchase()).unwrap();
        let other_key = TokenKey::from_bytes(&[8; 32]).unwrap();
        let print = fingerprint(&key(), &request);
        assert_ne!(print, fingerprint(&other_key, &request));
        assert!(!print.contains("6222020200112233446"));
    }

    #[test]
    fn records_encode_as_json_without_card_data() {
        let now = UNIX_EPOCH + Duration::from_millis(1_700_000_000_123);
        let pending = Record::pending("f", "t", now);
        let text = String::from_utf8(pending.encode()).unwrap();
        assert_eq!(
            text,
            r#"{"fingerprint":"f","transaction_id":"t","state":"pending","started_ms":1700000000123}"#
        );
        let answer = pb::AuthorizationResponse {
            response_code: "00".to_owned(),
            approval_code: "A1B2C3".to_owned(),
            ..pb::AuthorizationResponse::default()
        };
        let done = Record::done("f", "t", &answer);
        let decoded: Record = serde_json::from_slice(&done.encode()).unwrap();
        assert_eq!(decoded, done);
    }
}
