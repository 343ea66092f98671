//! Batch settlement (结算) as a Lakala terminal does it (REFERENCE.md "Settlement"), the pure
//! parts: the batch totals of the 0500 (one bucket per card origin and currency, domestic CNY
//! always present), the 0320 upload records (every transaction that counts in those totals),
//! the summary the terminal prints and the settlement slip (结算单) it saves. The exchange
//! itself lives in `commands::settle`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use pos_proto::v1 as pb;

use crate::journal::{self, BatchEntry, Totals};
use crate::receipt;

/// The currency of domestic cards (ISO 4217 156).
const DOMESTIC_CURRENCY: &str = "CNY";

/// Totals per currency, the terminal's or the host's.
pub type CurrencyTotals = BTreeMap<String, Totals>;

/// Domestic cards are those in CNY; every other currency is a foreign card's (外卡).
pub fn origin(currency: &str) -> pb::CardOrigin {
    if currency == DOMESTIC_CURRENCY {
        pb::CardOrigin::Domestic
    } else {
        pb::CardOrigin::Foreign
    }
}

/// The terminal's totals of a batch, with a CNY bucket even when the batch is empty.
pub fn terminal_totals(entries: &[BatchEntry]) -> CurrencyTotals {
    let mut totals = journal::totals(entries);
    totals.entry(DOMESTIC_CURRENCY.to_owned()).or_default();
    totals
}

/// The totals as the settlement request (0500) carries them: one bucket per currency.
pub fn request_totals(totals: &CurrencyTotals) -> Vec<pb::BatchTotals> {
    totals
        .iter()
        .map(|(currency, sums)| {
            let money = |minor_units| pb::Money {
                minor_units,
                currency: currency.clone(),
            };
            pb::BatchTotals {
                card_origin: origin(currency) as i32,
                debit_amount: Some(money(sums.debit_minor)),
                debit_count: sums.debit_count,
                credit_amount: Some(money(sums.credit_minor)),
                credit_count: sums.credit_count,
            }
        })
        .collect()
}

/// The host's totals per currency; buckets of one currency (should the host split them) add
/// up. A bucket names its currency on its amounts; one without any is taken as CNY.
pub fn host_totals(buckets: &[pb::BatchTotals]) -> CurrencyTotals {
    let mut totals = CurrencyTotals::new();
    for bucket in buckets {
        let currency = [&bucket.debit_amount, &bucket.credit_amount]
            .into_iter()
            .flatten()
            .map(|money| money.currency.as_str())
            .find(|currency| !currency.is_empty())
            .unwrap_or(DOMESTIC_CURRENCY);
        let minor = |money: &Option<pb::Money>| money.as_ref().map_or(0, |m| m.minor_units);
        let sums = totals.entry(currency.to_owned()).or_default();
        sums.debit_count = sums.debit_count.saturating_add(bucket.debit_count);
        sums.debit_minor = sums.debit_minor.saturating_add(minor(&bucket.debit_amount));
        sums.credit_count = sums.credit_count.saturating_add(bucket.credit_count);
        sums.credit_minor = sums
            .credit_minor
            .saturating_add(minor(&bucket.credit_amount));
    }
    totals
}

/// The batch upload (批上送, 0320) of an unbalanced batch: every transaction that counts in the
/// terminal's totals, by STAN. Voided originals and their voids cancel out and are not sent;
/// no chip (EMV) data is kept, so `emv_data` is empty.
pub fn upload_records(entries: &[BatchEntry]) -> Vec<pb::BatchRecord> {
    entries
        .iter()
        .filter(|entry| journal::counted(entry).is_some())
        .map(|entry| pb::BatchRecord {
            stan: entry.stan,
            transaction_type: entry.transaction_type as i32,
            amount: Some(entry.amount.money()),
            masked_pan: entry.masked_pan.clone(),
            rrn: entry.rrn.clone(),
            approval_code: entry.approval_code.clone(),
            entry_mode: entry.entry_mode as i32,
            local_datetime: entry.local_datetime.clone(),
            emv_data: Vec::new(),
            original_stan: entry.original_stan,
        })
        .collect()
}

/// The balance result as the summary prints it.
pub fn balance_name(result: pb::BatchBalance) -> &'static str {
    match result {
        pb::BatchBalance::Balanced => "BALANCED",
        pb::BatchBalance::Unbalanced => "UNBALANCED",
        pb::BatchBalance::Unspecified => "UNKNOWN",
    }
}

/// What a closed batch's settlement came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The batch that was closed.
    pub batch_no: u32,
    /// The first comparison (0510).
    pub result: pb::BatchBalance,
    /// The comparison after the upload, as the host closed the batch.
    pub final_result: pb::BatchBalance,
    /// Records uploaded (0 when balanced).
    pub uploaded: u32,
    /// The terminal's totals.
    pub terminal: CurrencyTotals,
    /// The host's totals.
    pub host: CurrencyTotals,
    /// Differences the host's reconciliation recorded.
    pub differences: u32,
    /// The batch the terminal uses from now on.
    pub next_batch_no: u32,
}

impl Summary {
    /// Every currency either side has, in order; a side without it shows zeros.
    fn currencies(&self) -> Vec<(&str, Totals, Totals)> {
        let mut names: Vec<&str> = self
            .terminal
            .keys()
            .chain(self.host.keys())
            .map(String::as_str)
            .collect();
        names.sort_unstable();
        names.dedup();
        names
            .into_iter()
            .map(|name| {
                let side = |totals: &CurrencyTotals| totals.get(name).cloned().unwrap_or_default();
                (name, side(&self.terminal), side(&self.host))
            })
            .collect()
    }

    /// The lines the terminal prints once the batch is closed (after the first line, printed
    /// when the host compared the totals).
    pub fn lines(&self) -> Vec<String> {
        let mut lines = Vec::new();
        if self.result == pb::BatchBalance::Unbalanced {
            lines.push(format!("uploaded {} record(s)", self.uploaded));
            lines.push(format!(
                "after the upload: {}",
                balance_name(self.final_result)
            ));
        }
        for (currency, terminal, host) in self.currencies() {
            lines.push(format!("terminal totals {currency}: {terminal}"));
            lines.push(format!("host totals {currency}: {host}"));
        }
        lines.push(format!("differences: {}", self.differences));
        lines.push(format!(
            "batch {:06} closed; next batch {:06}",
            self.batch_no, self.next_batch_no
        ));
        lines
    }
}

/// The line printed when the host has compared the totals.
pub fn result_line(batch_no: u32, result: pb::BatchBalance) -> String {
    format!(
        "settlement of batch {batch_no:06}: {}",
        balance_name(result)
    )
}

/// Who settled, for the slip's header.
#[derive(Debug, Clone, Copy)]
pub struct SlipHeader<'a> {
    /// Merchant name.
    pub merchant_name: &'a str,
    /// Merchant id.
    pub merchant_id: &'a str,
    /// Terminal id.
    pub terminal_id: &'a str,
    /// Operator who settled.
    pub operator_no: &'a str,
    /// When, "YYYY-MM-DD HH:MM:SS".
    pub printed_at: &'a str,
}

/// The settlement slip (结算单): counts and amounts of both sides per card origin and
/// currency, the result, and the next batch.
pub fn slip(header: &SlipHeader<'_>, summary: &Summary) -> String {
    let mut r = String::new();
    let _ = writeln!(r, "        POS 结算单 / SETTLEMENT");
    let _ = writeln!(r, "------------------------------------------");
    let _ = writeln!(r, "商户名称 MERCHANT NAME: {}", header.merchant_name);
    let _ = writeln!(r, "商户编号 MERCHANT NO.:  {}", header.merchant_id);
    let _ = writeln!(r, "终端编号 TERMINAL NO.:  {}", header.terminal_id);
    let _ = writeln!(r, "操作员号 OPERATOR NO.:  {}", header.operator_no);
    let _ = writeln!(r, "批次号 BATCH NO.:       {:06}", summary.batch_no);
    let _ = writeln!(r, "日期/时间 DATE/TIME:    {}", header.printed_at);
    let _ = writeln!(r, "------------------------------------------");
    let _ = writeln!(r, "对账结果 RESULT:        {}", slip_result(summary.result));
    if summary.result == pb::BatchBalance::Unbalanced {
        let _ = writeln!(r, "批上送 UPLOADED:        {}", summary.uploaded);
        let _ = writeln!(
            r,
            "上送后 AFTER UPLOAD:    {}",
            slip_result(summary.final_result)
        );
    }
    let _ = writeln!(r, "差错笔数 DIFFERENCES:   {}", summary.differences);
    for (currency, terminal, host) in summary.currencies() {
        let origin = match origin(currency) {
            pb::CardOrigin::Domestic => "内卡 DOMESTIC",
            _ => "外卡 FOREIGN",
        };
        let _ = writeln!(r, "------------------------------------------");
        let _ = writeln!(r, "{origin} {currency}      笔数 COUNT  金额 AMOUNT");
        for (label, totals) in [("终端 TERMINAL", &terminal), ("主机 HOST", &host)] {
            let money = |minor_units| {
                receipt::amount(Some(&pb::Money {
                    minor_units,
                    currency: currency.to_owned(),
                }))
            };
            let _ = writeln!(
                r,
                "{label} 借记 DEBIT    {:>4}  {}",
                totals.debit_count,
                money(totals.debit_minor)
            );
            let _ = writeln!(
                r,
                "{label} 贷记 CREDIT   {:>4}  {}",
                totals.credit_count,
                money(totals.credit_minor)
            );
        }
    }
    let _ = writeln!(r, "------------------------------------------");
    let _ = writeln!(r, "下一批次号 NEXT BATCH:  {:06}", summary.next_batch_no);
    r
}

fn slip_result(result: pb::BatchBalance) -> &'static str {
    match result {
        pb::BatchBalance::Balanced => "对账平 BALANCED",
        pb::BatchBalance::Unbalanced => "对账不平 UNBALANCED",
        pb::BatchBalance::Unspecified => "- UNKNOWN",
    }
}

/// The slip's file name in the receipts directory.
pub fn slip_file_name(batch_no: u32) -> String {
    format!("settlement-{batch_no:06}.txt")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Amount, EntryState};
    use pb::TransactionType as T;

    fn entry(stan: u32, kind: T, minor_units: i64, currency: &str) -> BatchEntry {
        BatchEntry {
            batch_no: 1,
            stan,
            transaction_type: kind,
            amount: Amount {
                minor_units,
                currency: currency.to_owned(),
            },
            rrn: format!("6000000000{stan:02}"),
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

    /// Purchase 50.00 voided, purchase 30.00, completion 40.00, refund 10.00, a pre-auth, and
    /// a USD purchase of 12.34.
    fn batch() -> Vec<BatchEntry> {
        let mut voided = entry(1, T::Purchase, 5_000, "CNY");
        voided.state = EntryState::Voided;
        let mut void = entry(2, T::PurchaseVoid, 5_000, "CNY");
        void.original_stan = 1;
        let mut refund = entry(5, T::Refund, 1_000, "CNY");
        refund.original_rrn = "600000000003".to_owned();
        vec![
            voided,
            void,
            entry(3, T::Purchase, 3_000, "CNY"),
            entry(4, T::PreAuthCompletion, 4_000, "CNY"),
            refund,
            entry(6, T::PreAuth, 9_900, "CNY"),
            entry(7, T::Purchase, 1_234, "USD"),
        ]
    }

    fn cny(minor_units: i64) -> Option<pb::Money> {
        Some(pb::Money {
            minor_units,
            currency: "CNY".to_owned(),
        })
    }

    #[test]
    fn an_empty_batch_sends_one_domestic_cny_bucket_of_zeros() {
        assert_eq!(
            request_totals(&terminal_totals(&[])),
            vec![pb::BatchTotals {
                card_origin: pb::CardOrigin::Domestic as i32,
                debit_amount: cny(0),
                debit_count: 0,
                credit_amount: cny(0),
                credit_count: 0,
            }]
        );
    }

    #[test]
    fn totals_split_domestic_cny_from_foreign_currencies() {
        let totals = request_totals(&terminal_totals(&batch()));
        assert_eq!(
            totals,
            vec![
                pb::BatchTotals {
                    card_origin: pb::CardOrigin::Domestic as i32,
                    debit_amount: cny(7_000),
                    debit_count: 2,
                    credit_amount: cny(1_000),
                    credit_count: 1,
                },
                pb::BatchTotals {
                    card_origin: pb::CardOrigin::Foreign as i32,
                    debit_amount: Some(pb::Money {
                        minor_units: 1_234,
                        currency: "USD".to_owned(),
                    }),
                    debit_count: 1,
                    credit_amount: Some(pb::Money {
                        minor_units: 0,
                        currency: "USD".to_owned(),
                    }),
                    credit_count: 0,
                },
            ]
        );
        assert_eq!(
            host_totals(&totals),
            terminal_totals(&batch()),
            "the host's buckets read back"
        );
    }

    #[test]
    fn the_upload_carries_what_counts_and_not_voided_pairs_or_preauths() {
        let records = upload_records(&batch());
        let stans: Vec<_> = records.iter().map(|r| r.stan).collect();
        assert_eq!(stans, [3, 4, 5, 7]);
        assert_eq!(
            records[2],
            pb::BatchRecord {
                stan: 5,
                transaction_type: T::Refund as i32,
                amount: cny(1_000),
                masked_pan: "622202****3446".to_owned(),
                rrn: "600000000005".to_owned(),
                approval_code: "A1B2C3".to_owned(),
                entry_mode: pb::CardEntryMode::Chip as i32,
                local_datetime: "2026-11-28T18:00:00".to_owned(),
                emv_data: Vec::new(),
                original_stan: 0,
            }
        );
        assert!(upload_records(&[]).is_empty());
    }

    #[test]
    fn host_buckets_without_a_currency_are_cny_and_a_split_currency_adds_up() {
        let bucket = |debit_count, minor_units: i64| pb::BatchTotals {
            card_origin: pb::CardOrigin::Domestic as i32,
            debit_amount: Some(pb::Money {
                minor_units,
                currency: String::new(),
            }),
            debit_count,
            credit_amount: None,
            credit_count: 0,
        };
        let totals = host_totals(&[bucket(1, 5_000), bucket(2, 2_000)]);
        assert_eq!(
            totals,
            CurrencyTotals::from([(
                "CNY".to_owned(),
                Totals {
                    debit_count: 3,
                    debit_minor: 7_000,
                    credit_count: 0,
                    credit_minor: 0,
                }
            )])
        );
        assert!(host_totals(&[]).is_empty());
    }

    fn summary(result: pb::BatchBalance) -> Summary {
        let mut host = terminal_totals(&batch()[..4]);
        host.insert("CNY".to_owned(), {
            let mut cny = host["CNY"].clone();
            cny.debit_count += 1;
            cny.debit_minor += 5_000;
            cny
        });
        Summary {
            batch_no: 1,
            result,
            final_result: pb::BatchBalance::Unbalanced,
            uploaded: 2,
            terminal: terminal_totals(&batch()[..4]),
            host,
            differences: 1,
            next_batch_no: 2,
        }
    }

    #[test]
    fn the_summary_prints_both_sides_the_differences_and_the_next_batch() {
        assert_eq!(
            result_line(1, pb::BatchBalance::Unbalanced),
            "settlement of batch 000001: UNBALANCED"
        );
        assert_eq!(
            result_line(12, pb::BatchBalance::Balanced),
            "settlement of batch 000012: BALANCED"
        );
        assert_eq!(
            summary(pb::BatchBalance::Unbalanced).lines(),
            [
                "uploaded 2 record(s)",
                "after the upload: UNBALANCED",
                "terminal totals CNY: debit 2 70.00, credit 0 0.00",
                "host totals CNY: debit 3 120.00, credit 0 0.00",
                "differences: 1",
                "batch 000001 closed; next batch 000002",
            ]
        );
        let balanced = summary(pb::BatchBalance::Balanced).lines();
        assert!(!balanced.iter().any(|line| line.starts_with("uploaded")));
        assert_eq!(
            balanced[0],
            "terminal totals CNY: debit 2 70.00, credit 0 0.00"
        );
    }

    #[test]
    fn a_currency_only_one_side_has_shows_zeros_on_the_other() {
        let mut summary = summary(pb::BatchBalance::Balanced);
        summary.host.insert(
            "USD".to_owned(),
            Totals {
                debit_count: 1,
                debit_minor: 1_234,
                ..Totals::default()
            },
        );
        let lines = summary.lines();
        assert!(lines.contains(&"terminal totals USD: debit 0 0.00, credit 0 0.00".to_owned()));
        assert!(lines.contains(&"host totals USD: debit 1 12.34, credit 0 0.00".to_owned()));
    }

    #[test]
    fn the_slip_names_the_terminal_batch_result_and_both_sides() {
        let header = SlipHeader {
            merchant_name: "测试商户",
            merchant_id: "898310048990001",
            terminal_id: "12345678",
            operator_no: "01",
            printed_at: "2026-11-28 23:00:00",
        };
        let text = slip(&header, &summary(pb::BatchBalance::Unbalanced));
        for needle in [
            "结算单",
            "测试商户",
            "898310048990001",
            "12345678",
            "批次号 BATCH NO.:       000001",
            "对账不平 UNBALANCED",
            "批上送 UPLOADED:        2",
            "差错笔数 DIFFERENCES:   1",
            "内卡 DOMESTIC CNY",
            "RMB 70.00",
            "RMB 120.00",
            "下一批次号 NEXT BATCH:  000002",
        ] {
            assert!(text.contains(needle), "{needle} missing from\n{text}");
        }
        let balanced = slip(&header, &summary(pb::BatchBalance::Balanced));
        assert!(balanced.contains("对账平 BALANCED"));
        assert!(!balanced.contains("UPLOADED"));
        assert_eq!(slip_file_name(1), "settlement-000001.txt");
    }
}
