//! The registry's read model: what the transaction path needs to know about merchants,
//! terminals and terminal sessions, one Redis hash each, so that authorization reads it in a
//! round trip instead of folding the registry's events.
//!
//! terminal-gateway is the only writer (it owns merchants, terminals and sessions); it
//! rewrites a merchant's or terminal's facts after every event of that aggregate, so the facts
//! are rebuilt with the registry when the topics are replayed. Session keys are hot state: they
//! exist only from a sign-in on (wrapped under the HSM's master key, never in clear).
//!
//! Layout under the deployment prefix:
//! - `facts:merchant:{merchant_id}`: status, name, city, mcc, limit_minor, currency;
//! - `facts:terminal:{terminal_id}`: status, merchant_id;
//! - `session:{terminal_id}`: key_version, pin, mac (hex of keys under the LMK), session_id;
//! - `facts:batch:{terminal_id}`: the open batch number and the business date of its first
//!   transaction, written by the settlement service (rebuilt with its batch projection).

pub mod txn;

use pos_crypto::KeyUnderLmk;
use pos_store::{Result, Store, StoreError};

/// A terminal's open batch, as the settlement service keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenBatch {
    /// Batch number new transactions belong to.
    pub batch_no: u32,
    /// Business date of its first transaction; empty while it has none.
    pub first_business_date: String,
}

/// What the transaction path knows of a merchant.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerchantFacts {
    /// 15-digit merchant id.
    pub merchant_id: String,
    /// "pending", "approved", "active" or "suspended".
    pub status: String,
    /// Name printed on receipts.
    pub name: String,
    /// City (for the issuer and fraud rules).
    pub city: String,
    /// Merchant category code.
    pub mcc: String,
    /// Largest amount of one transaction in minor units; `None` = no limit of its own.
    pub limit_minor: Option<i64>,
    /// Currency of the limit (ISO 4217 alpha).
    pub currency: String,
}

impl MerchantFacts {
    /// Whether the merchant may transact.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// What the transaction path knows of a terminal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TerminalFacts {
    /// 8-character terminal id.
    pub terminal_id: String,
    /// Owning merchant.
    pub merchant_id: String,
    /// "registered", "active" or "suspended".
    pub status: String,
}

impl TerminalFacts {
    /// Whether the terminal may transact.
    pub fn is_active(&self) -> bool {
        self.status == "active"
    }
}

/// The working keys of a terminal's current sign-in.
#[derive(Debug, Clone)]
pub struct SessionKeys {
    /// Incremented at every sign-in.
    pub key_version: u32,
    /// PIN key under the LMK.
    pub pin: KeyUnderLmk,
    /// MAC key under the LMK.
    pub mac: KeyUnderLmk,
    /// The sign-in's session id.
    pub session_id: String,
}

/// Reads and writes the facts.
#[derive(Debug, Clone)]
pub struct Facts {
    store: Store,
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

impl Facts {
    /// Facts kept in `store`.
    pub fn new(store: Store) -> Self {
        Self { store }
    }

    fn merchant_key(&self, id: &str) -> String {
        self.store.key(&["facts", "merchant", id])
    }

    fn terminal_key(&self, id: &str) -> String {
        self.store.key(&["facts", "terminal", id])
    }

    fn session_key(&self, terminal_id: &str) -> String {
        self.store.key(&["session", terminal_id])
    }

    /// The merchant's facts; `None` for an unknown merchant.
    pub async fn merchant(&self, merchant_id: &str) -> Result<Option<MerchantFacts>> {
        let fields = self
            .store
            .hash_get_all(&self.merchant_key(merchant_id))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let limit = field(&fields, "limit_minor");
        Ok(Some(MerchantFacts {
            merchant_id: merchant_id.to_owned(),
            status: field(&fields, "status").to_owned(),
            name: field(&fields, "name").to_owned(),
            city: field(&fields, "city").to_owned(),
            mcc: field(&fields, "mcc").to_owned(),
            limit_minor: limit.parse().ok(),
            currency: field(&fields, "currency").to_owned(),
        }))
    }

    /// Writes a merchant's facts.
    pub async fn put_merchant(&self, facts: &MerchantFacts) -> Result<()> {
        let limit = facts.limit_minor.map(|l| l.to_string()).unwrap_or_default();
        self.store
            .hash_set(
                &self.merchant_key(&facts.merchant_id),
                &[
                    ("status", &facts.status),
                    ("name", &facts.name),
                    ("city", &facts.city),
                    ("mcc", &facts.mcc),
                    ("limit_minor", &limit),
                    ("currency", &facts.currency),
                ],
            )
            .await
    }

    /// The terminal's facts; `None` for an unknown terminal.
    pub async fn terminal(&self, terminal_id: &str) -> Result<Option<TerminalFacts>> {
        let fields = self
            .store
            .hash_get_all(&self.terminal_key(terminal_id))
            .await?;
        if fields.is_empty() {
            return Ok(None);
        }
        Ok(Some(TerminalFacts {
            terminal_id: terminal_id.to_owned(),
            merchant_id: field(&fields, "merchant_id").to_owned(),
            status: field(&fields, "status").to_owned(),
        }))
    }

    /// Writes a terminal's facts.
    pub async fn put_terminal(&self, facts: &TerminalFacts) -> Result<()> {
        self.store
            .hash_set(
                &self.terminal_key(&facts.terminal_id),
                &[
                    ("status", &facts.status),
                    ("merchant_id", &facts.merchant_id),
                ],
            )
            .await
    }

    fn batch_key(&self, terminal_id: &str) -> String {
        self.store.key(&["facts", "batch", terminal_id])
    }

    /// The terminal's open batch as settlement knows it: `None` before its first settlement.
    pub async fn open_batch(&self, terminal_id: &str) -> Result<Option<OpenBatch>> {
        let key = self.batch_key(terminal_id);
        let fields = self.store.hash_get_all(&key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let batch_no = field(&fields, "batch_no")
            .parse()
            .map_err(|_| StoreError::Corrupt {
                key: key.clone(),
                detail: "bad batch number".to_owned(),
            })?;
        Ok(Some(OpenBatch {
            batch_no,
            first_business_date: field(&fields, "first_business_date").to_owned(),
        }))
    }

    /// Records the terminal's open batch (settlement is the only writer).
    pub async fn put_open_batch(&self, terminal_id: &str, batch: &OpenBatch) -> Result<()> {
        self.store
            .hash_set(
                &self.batch_key(terminal_id),
                &[
                    ("batch_no", &batch.batch_no.to_string()),
                    ("first_business_date", &batch.first_business_date),
                ],
            )
            .await
    }

    /// Keeps the keys of a new sign-in (replacing the previous ones).
    pub async fn put_session(&self, terminal_id: &str, keys: &SessionKeys) -> Result<()> {
        self.store
            .hash_set(
                &self.session_key(terminal_id),
                &[
                    ("key_version", &keys.key_version.to_string()),
                    ("pin", &keys.pin.to_hex()),
                    ("mac", &keys.mac.to_hex()),
                    ("session_id", &keys.session_id),
                ],
            )
            .await
    }

    /// The keys of the terminal's current sign-in, if it has one.
    pub async fn session(&self, terminal_id: &str) -> Result<Option<SessionKeys>> {
        let key = self.session_key(terminal_id);
        let fields = self.store.hash_get_all(&key).await?;
        if fields.is_empty() {
            return Ok(None);
        }
        let corrupt = |what: &str| StoreError::Corrupt {
            key: key.clone(),
            detail: format!("bad {what}"),
        };
        Ok(Some(SessionKeys {
            key_version: field(&fields, "key_version")
                .parse()
                .map_err(|_| corrupt("key version"))?,
            pin: KeyUnderLmk::from_hex(field(&fields, "pin")).map_err(|_| corrupt("pin key"))?,
            mac: KeyUnderLmk::from_hex(field(&fields, "mac")).map_err(|_| corrupt("mac key"))?,
            session_id: field(&fields, "session_id").to_owned(),
        }))
    }

    /// The PIN key of version `key_version` of the terminal's session; `None` when the
    /// terminal signed in again since (the PIN block was made under an older key) or never.
    pub async fn pin_key(
        &self,
        terminal_id: &str,
        key_version: u32,
    ) -> Result<Option<KeyUnderLmk>> {
        Ok(self
            .session(terminal_id)
            .await?
            .filter(|s| s.key_version == key_version)
            .map(|s| s.pin))
    }
}
