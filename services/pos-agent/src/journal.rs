//! The terminal's journal (交易流水): `journal.redb` in the data directory, an embedded redb
//! database kept apart from `session.json` so that it can be copied and restored alone. Two
//! tables, both keyed by (batch number, STAN):
//!
//! - `pending_reversals`: what a reversal (冲正) needs, committed before a reversible request
//!   goes out and deleted when the host answers it validly or acknowledges its reversal;
//! - `batch`: every approved financial transaction of the terminal with its state (approved,
//!   voided, reversed), for voids by STAN and for the batch totals that settlement sends.
//!
//! Only masked card numbers are kept, never a full PAN, track data, PIN block or key (PCI DSS
//! 3.3.1). Every change is one write transaction, durable when `commit` returns. The database
//! is opened for each operation and closed after it, so the file is closed (clean) while the
//! terminal waits for the host, and `pos-agent journal` can read it meanwhile.

use std::collections::BTreeMap;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::Context;
use pos_proto::v1 as pb;
use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use serde::{Deserialize, Serialize};

use crate::receipt;

/// (batch number, STAN): how a terminal request is known (DESIGN.md §5).
pub type Key = (u32, u32);

const REVERSALS: TableDefinition<Key, &[u8]> = TableDefinition::new("pending_reversals");
const BATCH: TableDefinition<Key, &[u8]> = TableDefinition::new("batch");

/// Why a reversal is sent: DE39 of the 0400.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ReasonCode {
    /// "98": no answer (in time), or an answer that does not match the request.
    #[serde(rename = "98")]
    NoResponse,
    /// "A0": the answer failed its MAC check.
    #[serde(rename = "A0")]
    MacFailure,
    /// "06": an earlier reversal attempt got no acknowledgement.
    #[serde(rename = "06")]
    AfterFailedAttempt,
}

impl ReasonCode {
    /// The two-character code sent in the reversal.
    pub fn code(self) -> &'static str {
        match self {
            ReasonCode::NoResponse => "98",
            ReasonCode::MacFailure => "A0",
            ReasonCode::AfterFailedAttempt => "06",
        }
    }
}

/// An amount in minor units of a currency, as the journal stores it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Amount {
    /// Minor units (fen).
    pub minor_units: i64,
    /// ISO 4217 code, e.g. "CNY".
    pub currency: String,
}

impl From<&pb::Money> for Amount {
    fn from(money: &pb::Money) -> Self {
        Self {
            minor_units: money.minor_units,
            currency: money.currency.clone(),
        }
    }
}

impl Amount {
    /// The amount as the contracts carry it.
    pub fn money(&self) -> pb::Money {
        pb::Money {
            minor_units: self.minor_units,
            currency: self.currency.clone(),
        }
    }
}

/// A reversal waiting to be acknowledged by the host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PendingReversal {
    /// Batch number of the original.
    pub batch_no: u32,
    /// STAN of the original.
    pub stan: u32,
    /// Type of the original.
    #[serde(with = "type_name")]
    pub original_type: pb::TransactionType,
    /// Amount of the original.
    pub amount: Amount,
    /// Operator of the original.
    pub operator_no: String,
    /// Local date-time of the original, "YYYY-MM-DDTHH:MM:SS".
    pub local_datetime: String,
    /// Masked PAN of the original (BIN + "****" + last four); empty when no card was read.
    pub masked_pan: String,
    /// Reason code the next attempt carries.
    pub reason: ReasonCode,
    /// Reversal attempts sent without an acknowledgement.
    pub attempts: u32,
    /// When the record was written (China time, "YYYY-MM-DDTHH:MM:SS").
    pub written_at: String,
}

impl PendingReversal {
    /// Its key in the journal.
    pub fn key(&self) -> Key {
        (self.batch_no, self.stan)
    }

    /// Whether the next attempt is a repeat (MTI 0401).
    pub fn repeat(&self) -> bool {
        self.attempts > 0
    }

    /// After an attempt that got no acknowledgement: one more attempt, reason "06".
    pub fn attempt_failed(&mut self) {
        self.attempts = self.attempts.saturating_add(1);
        self.reason = ReasonCode::AfterFailedAttempt;
    }
}

/// One line of `pos-agent journal`.
impl std::fmt::Display for PendingReversal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "batch {:06} STAN {:06} {} {} card {} operator {} at {} reason {} attempts {} written {}",
            self.batch_no,
            self.stan,
            receipt::type_label(self.original_type as i32),
            receipt::amount(Some(&self.amount.money())),
            or_dash(&self.masked_pan),
            self.operator_no,
            self.local_datetime,
            self.reason.code(),
            self.attempts,
            self.written_at
        )
    }
}

/// The state of a transaction of the batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntryState {
    /// Approved and standing.
    Approved,
    /// Voided (撤销) by a later approved void.
    Voided,
    /// Undone by a reversal the host acknowledged.
    Reversed,
}

impl EntryState {
    /// Its name as `pos-agent journal` prints it.
    pub fn name(self) -> &'static str {
        match self {
            EntryState::Approved => "approved",
            EntryState::Voided => "voided",
            EntryState::Reversed => "reversed",
        }
    }
}

/// An approved financial transaction of the terminal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BatchEntry {
    /// Batch number.
    pub batch_no: u32,
    /// STAN.
    pub stan: u32,
    /// Type, as the host answered it.
    #[serde(with = "type_name")]
    pub transaction_type: pb::TransactionType,
    /// Amount approved.
    pub amount: Amount,
    /// Retrieval reference number.
    pub rrn: String,
    /// Approval code.
    pub approval_code: String,
    /// Masked PAN; empty when no card was read and the host sent none.
    pub masked_pan: String,
    /// How the card was read; unspecified when no card was read (and in records written
    /// before the journal kept it).
    #[serde(default, with = "mode_name")]
    pub entry_mode: pb::CardEntryMode,
    /// Business (settlement) date from the host, "YYYY-MM-DD".
    pub business_date: String,
    /// Local date-time of the request.
    pub local_datetime: String,
    /// Operator number.
    pub operator_no: String,
    /// For a void: STAN of the voided original; 0 otherwise.
    pub original_stan: u32,
    /// For a refund (or a void by RRN): RRN of the original; empty otherwise.
    pub original_rrn: String,
    /// Approved, voided or reversed.
    pub state: EntryState,
}

impl BatchEntry {
    /// Its key in the journal.
    pub fn key(&self) -> Key {
        (self.batch_no, self.stan)
    }

    /// Whether it is a void, which marks its original voided.
    pub fn is_void(&self) -> bool {
        matches!(
            self.transaction_type,
            pb::TransactionType::PurchaseVoid | pb::TransactionType::CompletionVoid
        )
    }
}

/// One line of `pos-agent journal`.
impl std::fmt::Display for BatchEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "STAN {:06} {} {} card {} rrn {} auth {} at {} operator {} {}",
            self.stan,
            receipt::type_label(self.transaction_type as i32),
            receipt::amount(Some(&self.amount.money())),
            or_dash(&self.masked_pan),
            or_dash(&self.rrn),
            or_dash(&self.approval_code),
            self.local_datetime,
            self.operator_no,
            self.state.name()
        )?;
        match (self.original_stan, self.original_rrn.as_str()) {
            (0, "") => Ok(()),
            (0, rrn) => write!(f, " original RRN {rrn}"),
            (stan, _) => write!(f, " original STAN {stan:06}"),
        }
    }
}

fn or_dash(text: &str) -> &str {
    if text.is_empty() { "-" } else { text }
}

/// Totals of one currency of a batch, as settlement (0500) sends them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Number of debits: purchases and pre-auth completions that stand.
    pub debit_count: u32,
    /// Their sum in minor units.
    pub debit_minor: i64,
    /// Number of credits: refunds that stand.
    pub credit_count: u32,
    /// Their sum in minor units.
    pub credit_minor: i64,
}

impl std::fmt::Display for Totals {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let yuan = |minor: i64| format!("{}.{:02}", minor / 100, (minor % 100).abs());
        write!(
            f,
            "debit {} {}, credit {} {}",
            self.debit_count,
            yuan(self.debit_minor),
            self.credit_count,
            yuan(self.credit_minor)
        )
    }
}

/// Which side of the settlement totals a transaction counts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// Purchases and pre-auth completions.
    Debit,
    /// Refunds.
    Credit,
}

impl Totals {
    /// Adds one transaction of `minor` units on `side`.
    pub fn add(&mut self, side: Side, minor: i64) {
        let (count, sum) = match side {
            Side::Debit => (&mut self.debit_count, &mut self.debit_minor),
            Side::Credit => (&mut self.credit_count, &mut self.credit_minor),
        };
        *count = count.saturating_add(1);
        *sum = sum.saturating_add(minor);
    }
}

/// The side a transaction of the batch counts on in the totals, or `None` when it counts
/// nowhere: voided and reversed transactions, voids themselves (the original and its void
/// cancel out), pre-authorizations and their voids (they move no money).
pub fn counted(entry: &BatchEntry) -> Option<Side> {
    use pb::TransactionType as T;
    if entry.state != EntryState::Approved {
        return None;
    }
    match entry.transaction_type {
        T::Purchase | T::PreAuthCompletion => Some(Side::Debit),
        T::Refund => Some(Side::Credit),
        _ => None,
    }
}

/// The batch totals per currency, of the transactions that are [`counted`].
pub fn totals(entries: &[BatchEntry]) -> BTreeMap<String, Totals> {
    let mut totals: BTreeMap<String, Totals> = BTreeMap::new();
    for entry in entries {
        if let Some(side) = counted(entry) {
            totals
                .entry(entry.amount.currency.clone())
                .or_default()
                .add(side, entry.amount.minor_units);
        }
    }
    totals
}

/// The journal file of a data directory.
#[derive(Debug, Clone)]
pub struct Journal {
    path: PathBuf,
}

impl Journal {
    /// Opens (creating, owner-only) the journal at `path`.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(path)
            .with_context(|| format!("cannot create the journal {}", path.display()))?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
        let journal = Self {
            path: path.to_owned(),
        };
        journal.write(|txn| {
            txn.open_table(REVERSALS)?;
            txn.open_table(BATCH)?;
            Ok(())
        })?;
        Ok(journal)
    }

    fn database(&self) -> anyhow::Result<Database> {
        Database::create(&self.path).with_context(|| {
            format!(
                "cannot open the journal {} (is another pos-agent using this data directory?)",
                self.path.display()
            )
        })
    }

    /// Runs `change` in one write transaction and commits it (durably) before returning.
    fn write<T>(
        &self,
        change: impl FnOnce(&redb::WriteTransaction) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let database = self.database()?;
        let txn = database.begin_write()?;
        let value = change(&txn)?;
        txn.commit()
            .with_context(|| format!("cannot commit to the journal {}", self.path.display()))?;
        Ok(value)
    }

    fn read<T>(
        &self,
        query: impl FnOnce(&redb::ReadTransaction) -> anyhow::Result<T>,
    ) -> anyhow::Result<T> {
        let database = self.database()?;
        let txn = database.begin_read()?;
        query(&txn)
    }

    /// Commits a reversal record (before its request goes out).
    pub fn add_reversal(&self, record: &PendingReversal) -> anyhow::Result<()> {
        self.write(|txn| {
            let mut table = txn.open_table(REVERSALS)?;
            table.insert(record.key(), encode(record)?.as_slice())?;
            Ok(())
        })
    }

    /// Changes a reversal record in place; `false` when there is none under `key`.
    pub fn update_reversal(
        &self,
        key: Key,
        change: impl FnOnce(&mut PendingReversal),
    ) -> anyhow::Result<bool> {
        self.write(|txn| {
            let mut table = txn.open_table(REVERSALS)?;
            let Some(mut record) = get::<PendingReversal>(&table, key)? else {
                return Ok(false);
            };
            change(&mut record);
            table.insert(key, encode(&record)?.as_slice())?;
            Ok(true)
        })
    }

    /// Deletes a reversal record whose request never left the terminal.
    pub fn forget_reversal(&self, key: Key) -> anyhow::Result<()> {
        self.write(|txn| {
            txn.open_table(REVERSALS)?.remove(key)?;
            Ok(())
        })
    }

    /// The host acknowledged the reversal: the record goes, and the transaction, if the batch
    /// has it, is reversed.
    pub fn reversal_acknowledged(&self, key: Key) -> anyhow::Result<()> {
        self.write(|txn| {
            txn.open_table(REVERSALS)?.remove(key)?;
            let mut batch = txn.open_table(BATCH)?;
            if let Some(mut entry) = get::<BatchEntry>(&batch, key)? {
                entry.state = EntryState::Reversed;
                batch.insert(key, encode(&entry)?.as_slice())?;
            }
            Ok(())
        })
    }

    /// A valid answer to request `key` arrived: its reversal record goes and, when approved,
    /// the transaction joins the batch (a void also marks its original voided), all in one
    /// transaction.
    pub fn answered(&self, key: Key, approved: Option<&BatchEntry>) -> anyhow::Result<()> {
        self.write(|txn| {
            txn.open_table(REVERSALS)?.remove(key)?;
            let Some(entry) = approved else {
                return Ok(());
            };
            let mut batch = txn.open_table(BATCH)?;
            batch.insert(entry.key(), encode(entry)?.as_slice())?;
            let original = (entry.batch_no, entry.original_stan);
            if entry.is_void()
                && entry.original_stan != 0
                && let Some(mut voided) = get::<BatchEntry>(&batch, original)?
            {
                voided.state = EntryState::Voided;
                batch.insert(original, encode(&voided)?.as_slice())?;
            }
            Ok(())
        })
    }

    /// Every pending reversal, oldest batch and STAN first.
    pub fn pending(&self) -> anyhow::Result<Vec<PendingReversal>> {
        self.read(|txn| {
            let table = txn.open_table(REVERSALS)?;
            let mut records = Vec::new();
            for row in table.iter()? {
                let (_, value) = row?;
                records.push(decode(value.value())?);
            }
            Ok(records)
        })
    }

    /// How many reversals are pending.
    pub fn pending_count(&self) -> anyhow::Result<u32> {
        self.read(|txn| {
            let count = txn.open_table(REVERSALS)?.len()?;
            Ok(u32::try_from(count).unwrap_or(u32::MAX))
        })
    }

    /// The transactions of batch `batch_no`, by STAN.
    pub fn entries(&self, batch_no: u32) -> anyhow::Result<Vec<BatchEntry>> {
        self.read(|txn| {
            let table = txn.open_table(BATCH)?;
            let mut entries = Vec::new();
            for row in table.range((batch_no, 0)..=(batch_no, u32::MAX))? {
                let (_, value) = row?;
                entries.push(decode(value.value())?);
            }
            Ok(entries)
        })
    }

    /// The transaction of batch `batch_no` with STAN `stan`.
    pub fn entry(&self, batch_no: u32, stan: u32) -> anyhow::Result<Option<BatchEntry>> {
        self.read(|txn| get(&txn.open_table(BATCH)?, (batch_no, stan)))
    }

    /// The transaction of batch `batch_no` with RRN `rrn`.
    pub fn entry_by_rrn(&self, batch_no: u32, rrn: &str) -> anyhow::Result<Option<BatchEntry>> {
        Ok(self
            .entries(batch_no)?
            .into_iter()
            .find(|entry| entry.rrn == rrn))
    }
}

fn get<T: for<'de> Deserialize<'de>>(
    table: &impl ReadableTable<Key, &'static [u8]>,
    key: Key,
) -> anyhow::Result<Option<T>> {
    table
        .get(key)?
        .map(|value| decode(value.value()))
        .transpose()
}

fn encode<T: Serialize>(record: &T) -> anyhow::Result<Vec<u8>> {
    Ok(serde_json::to_vec(record)?)
}

fn decode<T: for<'de> Deserialize<'de>>(bytes: &[u8]) -> anyhow::Result<T> {
    serde_json::from_slice(bytes).context("the journal holds a damaged record")
}

/// Transaction types stored by their contract names ("TRANSACTION_TYPE_PURCHASE").
mod type_name {
    use pos_proto::v1::TransactionType;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(kind: &TransactionType, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(kind.as_str_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<TransactionType, D::Error> {
        let name = String::deserialize(d)?;
        TransactionType::from_str_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown transaction type {name}")))
    }
}

/// Card entry modes stored by their contract names ("CARD_ENTRY_MODE_CHIP").
mod mode_name {
    use pos_proto::v1::CardEntryMode;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(mode: &CardEntryMode, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(mode.as_str_name())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<CardEntryMode, D::Error> {
        let name = String::deserialize(d)?;
        CardEntryMode::from_str_name(&name)
            .ok_or_else(|| serde::de::Error::custom(format!("unknown card entry mode {name}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pb::TransactionType as T;

    fn journal() -> (tempfile::TempDir, Journal) {
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::open(&dir.path().join("journal.redb")).unwrap();
        (dir, journal)
    }

    fn cny(minor_units: i64) -> Amount {
        Amount {
            minor_units,
            currency: "CNY".to_owned(),
        }
    }

    fn reversal(stan: u32) -> PendingReversal {
        PendingReversal {
            batch_no: 1,
            stan,
            original_type: T::Purchase,
            amount: cny(5_000),
            operator_no: "01".to_owned(),
            local_datetime: "2026-11-28T18:00:00".to_owned(),
            masked_pan: "622202****3446".to_owned(),
            reason: ReasonCode::NoResponse,
            attempts: 0,
            written_at: "2026-11-28T18:00:00".to_owned(),
        }
    }

    fn entry(stan: u32, kind: T, minor: i64) -> BatchEntry {
        BatchEntry {
            batch_no: 1,
            stan,
            transaction_type: kind,
            amount: cny(minor),
            rrn: format!("6123456789{stan:02}"),
            approval_code: "A1B2C3".to_owned(),
            masked_pan: "622202****3446".to_owned(),
            entry_mode: pb::CardEntryMode::Chip,
            business_date: "2026-11-28".to_owned(),
            local_datetime: "2026-11-28T18:00:00".to_owned(),
            operator_no: "01".to_owned(),
            original_stan: 0,
            original_rrn: String::new(),
            state: EntryState::Approved,
        }
    }

    #[test]
    fn records_survive_reopening_the_file_and_carry_no_card_secrets() {
        let (dir, journal) = journal();
        journal.add_reversal(&reversal(42)).unwrap();
        journal
            .answered((1, 41), Some(&entry(41, T::Purchase, 1_000)))
            .unwrap();
        drop(journal);

        let path = dir.path().join("journal.redb");
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the journal is owner-only");
        let reopened = Journal::open(&path).unwrap();
        assert_eq!(reopened.pending().unwrap(), vec![reversal(42)]);
        assert_eq!(reopened.pending_count().unwrap(), 1);
        assert_eq!(
            reopened.entry(1, 41).unwrap(),
            Some(entry(41, T::Purchase, 1_000))
        );
        assert_eq!(
            reopened
                .entry_by_rrn(1, "612345678941")
                .unwrap()
                .map(|e| e.stan),
            Some(41)
        );
        let bytes = std::fs::read(&path).unwrap();
        assert!(!bytes.windows(16).any(|w| w == b"6222020011223446"));
    }

    #[test]
    fn a_copied_journal_restores_its_pending_reversals() {
        let (dir, journal) = journal();
        journal.add_reversal(&reversal(7)).unwrap();
        let copy = dir.path().join("copy.redb");
        std::fs::copy(dir.path().join("journal.redb"), &copy).unwrap();
        journal.reversal_acknowledged((1, 7)).unwrap();
        assert!(journal.pending().unwrap().is_empty());
        assert_eq!(Journal::open(&copy).unwrap().pending_count().unwrap(), 1);
    }

    #[test]
    fn an_answer_clears_the_reversal_and_records_only_an_approval() {
        let (_dir, journal) = journal();
        journal.add_reversal(&reversal(1)).unwrap();
        journal.add_reversal(&reversal(2)).unwrap();
        journal
            .answered((1, 1), Some(&entry(1, T::Purchase, 5_000)))
            .unwrap();
        journal.answered((1, 2), None).unwrap();
        assert!(journal.pending().unwrap().is_empty());
        let entries = journal.entries(1).unwrap();
        assert_eq!(entries.len(), 1, "a decline is not in the batch");
        assert_eq!(entries[0].state, EntryState::Approved);
        assert!(journal.entries(2).unwrap().is_empty());
    }

    #[test]
    fn failed_attempts_count_and_turn_the_reason_to_06() {
        let (_dir, journal) = journal();
        journal.add_reversal(&reversal(3)).unwrap();
        assert!(
            journal
                .update_reversal((1, 3), |r| r.reason = ReasonCode::MacFailure)
                .unwrap()
        );
        let record = journal.pending().unwrap().remove(0);
        assert_eq!((record.reason.code(), record.repeat()), ("A0", false));
        journal
            .update_reversal((1, 3), PendingReversal::attempt_failed)
            .unwrap();
        journal
            .update_reversal((1, 3), PendingReversal::attempt_failed)
            .unwrap();
        let record = journal.pending().unwrap().remove(0);
        assert_eq!(record.reason, ReasonCode::AfterFailedAttempt);
        assert_eq!(record.attempts, 2);
        assert!(record.repeat(), "a repeat goes out as 0401");
        assert!(!journal.update_reversal((1, 4), |_| {}).unwrap());
        journal.forget_reversal((1, 3)).unwrap();
        assert_eq!(journal.pending_count().unwrap(), 0);
    }

    #[test]
    fn a_void_marks_its_original_and_a_reversal_marks_the_reversed() {
        let (_dir, journal) = journal();
        journal
            .answered((1, 1), Some(&entry(1, T::Purchase, 5_000)))
            .unwrap();
        journal
            .answered((1, 2), Some(&entry(2, T::Purchase, 3_000)))
            .unwrap();
        journal
            .answered((1, 3), Some(&entry(3, T::Refund, 1_000)))
            .unwrap();
        let mut void = entry(4, T::PurchaseVoid, 5_000);
        void.original_stan = 1;
        journal.answered((1, 4), Some(&void)).unwrap();
        journal.reversal_acknowledged((1, 2)).unwrap();

        let states: Vec<_> = journal
            .entries(1)
            .unwrap()
            .iter()
            .map(|e| (e.stan, e.state))
            .collect();
        assert_eq!(
            states,
            vec![
                (1, EntryState::Voided),
                (2, EntryState::Reversed),
                (3, EntryState::Approved),
                (4, EntryState::Approved),
            ]
        );
        let totals = totals(&journal.entries(1).unwrap());
        assert_eq!(
            totals.get("CNY"),
            Some(&Totals {
                debit_count: 0,
                debit_minor: 0,
                credit_count: 1,
                credit_minor: 1_000,
            })
        );
    }

    #[test]
    fn totals_count_standing_purchases_and_completions_as_debits() {
        let mut voided = entry(3, T::Purchase, 700);
        voided.state = EntryState::Voided;
        let entries = [
            entry(1, T::Purchase, 5_000),
            entry(2, T::PreAuthCompletion, 2_500),
            voided,
            entry(4, T::PreAuth, 9_900),
            entry(5, T::Refund, 1_200),
        ];
        let totals = totals(&entries);
        assert_eq!(
            totals["CNY"],
            Totals {
                debit_count: 2,
                debit_minor: 7_500,
                credit_count: 1,
                credit_minor: 1_200,
            }
        );
    }

    #[test]
    fn entries_keep_their_entry_mode_and_older_records_read_without_one() {
        let stored = encode(&entry(1, T::Purchase, 5_000)).unwrap();
        let text = String::from_utf8(stored).unwrap();
        assert!(text.contains("\"CARD_ENTRY_MODE_CHIP\""), "{text}");
        let older = text.replace(",\"entry_mode\":\"CARD_ENTRY_MODE_CHIP\"", "");
        assert!(!older.contains("entry_mode"), "{older}");
        let read: BatchEntry = decode(older.as_bytes()).unwrap();
        assert_eq!(read.entry_mode, pb::CardEntryMode::Unspecified);
        assert_eq!(read.stan, 1);
    }

    #[test]
    fn only_standing_purchases_completions_and_refunds_are_counted() {
        let mut voided = entry(1, T::Purchase, 100);
        voided.state = EntryState::Voided;
        let mut reversed = entry(2, T::PreAuthCompletion, 100);
        reversed.state = EntryState::Reversed;
        let sides: Vec<_> = [
            entry(3, T::Purchase, 100),
            entry(4, T::PreAuthCompletion, 100),
            entry(5, T::Refund, 100),
            entry(6, T::PurchaseVoid, 100),
            entry(7, T::CompletionVoid, 100),
            entry(8, T::PreAuth, 100),
            entry(9, T::PreAuthVoid, 100),
            voided,
            reversed,
        ]
        .iter()
        .map(counted)
        .collect();
        assert_eq!(
            sides,
            [
                Some(Side::Debit),
                Some(Side::Debit),
                Some(Side::Credit),
                None,
                None,
                None,
                None,
                None,
                None
            ]
        );
    }

    #[test]
    fn journal_lines_name_the_stan_amount_masked_card_and_state() {
        let line = reversal(42).to_string();
        for needle in [
            "STAN 000042",
            "RMB 50.00",
            "622202****3446",
            "reason 98",
            "attempts 0",
        ] {
            assert!(line.contains(needle), "{needle} missing from {line}");
        }
        let mut void = entry(43, T::PurchaseVoid, 5_000);
        void.original_stan = 42;
        let line = void.to_string();
        for needle in [
            "STAN 000043",
            "消费撤销",
            "approved",
            "original STAN 000042",
        ] {
            assert!(line.contains(needle), "{needle} missing from {line}");
        }
        let totals = Totals {
            debit_count: 2,
            debit_minor: 7_505,
            credit_count: 0,
            credit_minor: 0,
        };
        assert_eq!(totals.to_string(), "debit 2 75.05, credit 0 0.00");
    }
}
