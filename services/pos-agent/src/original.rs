//! The original transaction a void, refund, completion or pre-auth void names, as the cashier
//! keys it: a void by STAN (原凭证号) or RRN (参考号) takes its amount from the journal's
//! current batch unless the amount is keyed; an original date keyed MMDD gets its year (China
//! time).

use anyhow::bail;
use pos_domain::time::{ChinaTime, is_leap};
use pos_proto::v1 as pb;

use crate::answer::Original;
use crate::journal::BatchEntry;

/// How the cashier names the original of a void.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VoidBy {
    /// Its STAN (voucher number) in the current batch.
    Stan(u32),
    /// Its retrieval reference number.
    Rrn(String),
}

impl std::fmt::Display for VoidBy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            VoidBy::Stan(stan) => write!(f, "STAN {stan:06}"),
            VoidBy::Rrn(rrn) => write!(f, "RRN {rrn}"),
        }
    }
}

/// What a void sends and expects back.
#[derive(Debug, Clone, PartialEq)]
pub struct VoidTarget {
    /// The amount sent: as keyed, else the original's from the journal.
    pub amount: pb::Money,
    /// The answer's possible types (the host tells purchase void from completion void); the
    /// first is the journal's guess, which a reversal of the void names.
    pub types: Vec<pb::TransactionType>,
    /// The original as the terminal knows it.
    pub original: Original,
    /// The original's masked PAN, empty when unknown.
    pub masked_pan: String,
    /// The journal's amount when the keyed one differs from it, for a warning.
    pub journal_amount: Option<pb::Money>,
}

/// The void of `by`, given the journal's entry for it (`found`) and the amount the cashier
/// keyed, if any. The keyed amount is required when the journal does not have the original.
/// Whether the original can be voided (its state, its type, the amount) is the host's call:
/// its refusal comes back with a response code and is recorded.
pub fn void_target(
    by: &VoidBy,
    found: Option<&BatchEntry>,
    keyed: Option<pb::Money>,
) -> anyhow::Result<VoidTarget> {
    use pb::TransactionType as T;
    let journal_amount = found.map(|entry| entry.amount.money());
    let amount = match (keyed, &journal_amount) {
        (Some(keyed), _) => keyed,
        (None, Some(amount)) => amount.clone(),
        (None, None) => bail!(
            "{by} is not in this terminal's journal for the current batch; key the original's amount with --amount"
        ),
    };
    let types = match found.map(|entry| entry.transaction_type) {
        Some(T::PreAuthCompletion) => vec![T::CompletionVoid, T::PurchaseVoid],
        _ => vec![T::PurchaseVoid, T::CompletionVoid],
    };
    let (stan, rrn) = match by {
        VoidBy::Stan(stan) => (Some(*stan), found.map(|e| e.rrn.clone())),
        VoidBy::Rrn(rrn) => (found.map(|e| e.stan), Some(rrn.clone())),
    };
    Ok(VoidTarget {
        journal_amount: journal_amount.filter(|known| *known != amount),
        amount,
        types,
        original: Original {
            stan,
            rrn: rrn.filter(|rrn| !rrn.is_empty()),
            ..Original::default()
        },
        masked_pan: found.map(|e| e.masked_pan.clone()).unwrap_or_default(),
    })
}

/// Completes the original's reference in an answer with what the terminal knows, for the
/// receipt, where the host left it out.
pub fn fill_original(response: &mut pb::TransactionResponse, known: &Original, date: Option<&str>) {
    let original = response.original.get_or_insert_with(Default::default);
    if original.stan == 0 {
        original.stan = known.stan.unwrap_or(0);
    }
    if original.rrn.is_empty() {
        original.rrn = known.rrn.clone().unwrap_or_default();
    }
    if original.business_date.is_empty() {
        original.business_date = date.unwrap_or_default().to_owned();
    }
}

/// The original's date as "YYYY-MM-DD", from "YYYY-MM-DD" or "MMDD" as terminals key it. MMDD
/// is in the current year, or in the last one when that date is still to come.
pub fn original_date(keyed: &str, today: &ChinaTime) -> anyhow::Result<String> {
    let keyed = keyed.trim();
    if !keyed.is_ascii() {
        bail!("date {keyed}: key MMDD or YYYY-MM-DD");
    }
    let today_key = (today.year, today.month, today.day);
    let (year, month, day) = match keyed.len() {
        4 => {
            let month = number(&keyed[..2], keyed)?;
            let day = number(&keyed[2..], keyed)?;
            [today.year, today.year - 1]
                .into_iter()
                .map(|year| (year, month, day))
                .find(|&date| valid(date) && date <= today_key)
                .ok_or_else(|| anyhow::anyhow!("date {keyed}: no such day (MMDD)"))?
        }
        10 if keyed.as_bytes()[4] == b'-' && keyed.as_bytes()[7] == b'-' => {
            let date = (
                i64::from(number(&keyed[..4], keyed)?),
                number(&keyed[5..7], keyed)?,
                number(&keyed[8..], keyed)?,
            );
            if !valid(date) {
                bail!("date {keyed}: no such day");
            }
            if date > today_key {
                bail!("date {keyed} is in the future");
            }
            date
        }
        _ => bail!("date {keyed}: key MMDD or YYYY-MM-DD"),
    };
    Ok(format!("{year:04}-{month:02}-{day:02}"))
}

/// The original date of a completion or pre-auth void: as keyed, or today.
pub fn date_or_today(keyed: Option<&str>, today: &ChinaTime) -> anyhow::Result<String> {
    keyed.map_or_else(|| Ok(today.date_iso()), |k| original_date(k, today))
}

fn number(digits: &str, keyed: &str) -> anyhow::Result<u32> {
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("date {keyed}: key MMDD or YYYY-MM-DD");
    }
    digits
        .parse()
        .map_err(|_| anyhow::anyhow!("date {keyed}: key MMDD or YYYY-MM-DD"))
}

fn valid((year, month, day): (i64, u32, u32)) -> bool {
    let days = match month {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if is_leap(year) => 29,
        2 => 28,
        _ => return false,
    };
    (1..=days).contains(&day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::{Amount, EntryState};
    use pb::TransactionType as T;

    fn day(year: i64, month: u32, day: u32) -> ChinaTime {
        ChinaTime {
            year,
            month,
            day,
            hour: 12,
            minute: 0,
            second: 0,
        }
    }

    #[test]
    fn mmdd_is_this_year_unless_that_is_still_to_come() {
        let today = day(2026, 3, 15);
        assert_eq!(original_date("0315", &today).unwrap(), "2026-03-15");
        assert_eq!(original_date("0101", &today).unwrap(), "2026-01-01");
        assert_eq!(original_date("0316", &today).unwrap(), "2025-03-16");
        assert_eq!(original_date("1231", &today).unwrap(), "2025-12-31");
        assert_eq!(
            original_date("0229", &day(2024, 3, 1)).unwrap(),
            "2024-02-29"
        );
        assert_eq!(
            original_date("0229", &day(2025, 3, 1)).unwrap(),
            "2024-02-29",
            "the last 29 February"
        );
        assert_eq!(
            original_date("0229", &day(2026, 3, 1))
                .unwrap_err()
                .to_string(),
            "date 0229: no such day (MMDD)"
        );
        assert_eq!(original_date("2026-03-01", &today).unwrap(), "2026-03-01");
        for bad in [
            "1301",
            "0132",
            "0000",
            "12-1",
            "2026-02-30",
            "2026-3-01",
            "abcd",
            "",
        ] {
            assert!(original_date(bad, &today).is_err(), "{bad}");
        }
        assert!(original_date("2026-03-16", &today).is_err(), "future");
        assert_eq!(date_or_today(None, &today).unwrap(), "2026-03-15");
    }

    fn entry(kind: T) -> BatchEntry {
        BatchEntry {
            batch_no: 1,
            stan: 41,
            transaction_type: kind,
            amount: Amount {
                minor_units: 5_000,
                currency: "CNY".to_owned(),
            },
            rrn: "612345678901".to_owned(),
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

    fn cny(minor_units: i64) -> pb::Money {
        pb::Money {
            minor_units,
            currency: "CNY".to_owned(),
        }
    }

    #[test]
    fn a_void_takes_the_originals_amount_from_the_journal_unless_keyed() {
        let by = VoidBy::Stan(41);
        let purchase = entry(T::Purchase);
        let target = void_target(&by, Some(&purchase), None).unwrap();
        assert_eq!(target.amount, cny(5_000));
        assert_eq!(target.types, vec![T::PurchaseVoid, T::CompletionVoid]);
        assert_eq!(target.original.stan, Some(41));
        assert_eq!(target.original.rrn.as_deref(), Some("612345678901"));
        assert_eq!(target.masked_pan, "622202****3446");
        assert_eq!(target.journal_amount, None);

        let keyed = void_target(&by, Some(&purchase), Some(cny(4_999))).unwrap();
        assert_eq!(keyed.amount, cny(4_999), "the host judges the keyed amount");
        assert_eq!(keyed.journal_amount, Some(cny(5_000)));

        let completion = entry(T::PreAuthCompletion);
        let by_rrn = VoidBy::Rrn("612345678901".to_owned());
        let target = void_target(&by_rrn, Some(&completion), None).unwrap();
        assert_eq!(target.types[0], T::CompletionVoid);
        assert_eq!(target.original.stan, Some(41));
    }

    #[test]
    fn a_void_of_an_original_the_journal_does_not_have_needs_the_amount() {
        let error = void_target(&VoidBy::Stan(9), None, None).unwrap_err();
        assert!(error.to_string().contains("--amount"), "{error}");
        let unknown = void_target(&VoidBy::Rrn("6".repeat(12)), None, Some(cny(100))).unwrap();
        assert_eq!(unknown.amount, cny(100));
        assert_eq!(unknown.types, vec![T::PurchaseVoid, T::CompletionVoid]);
        assert_eq!(unknown.original.rrn, Some("6".repeat(12)));
        assert_eq!(unknown.original.stan, None);
        assert!(unknown.masked_pan.is_empty());
    }

    #[test]
    fn the_receipt_names_the_original_the_host_left_out() {
        let mut response = pb::TransactionResponse::default();
        let known = Original {
            stan: Some(41),
            rrn: Some("612345678901".to_owned()),
            ..Original::default()
        };
        fill_original(&mut response, &known, Some("2026-11-27"));
        let original = response.original.unwrap();
        assert_eq!(
            (
                original.stan,
                original.rrn.as_str(),
                original.business_date.as_str()
            ),
            (41, "612345678901", "2026-11-27")
        );
    }
}
