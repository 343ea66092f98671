//! The settlement file of one merchant and business date (CSV, UTF-8): a header, one `TXN`
//! line per transaction of the date, one `ADJ` line per adjustment carried in, and a `TOTAL`
//! line. Amounts are yuan with two decimals, signed as they move the merchant's money: the
//! amount, fee and net columns of the `TXN` and `ADJ` lines add up to the `TOTAL` line. Cards
//! appear masked (BIN + last four), never in full. The content depends only on the settlement,
//! so writing it again gives the same file.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use pos_proto::v1 as pb;

use super::compute::Figures;
use crate::fees::yuan;

/// The columns.
pub const HEADER: &str =
    "record,time,terminal_id,batch_no,stan,type,masked_pan,amount,fee,net,rrn,reference";

/// The file's name for a merchant and date.
pub fn file_name(merchant_id: &str, business_date: &str) -> String {
    format!("settlement_{merchant_id}_{business_date}.csv")
}

/// The name of a transaction type without its prefix, e.g. "PURCHASE".
pub fn type_name(transaction_type: i32) -> String {
    pb::TransactionType::try_from(transaction_type)
        .map(|t| {
            t.as_str_name()
                .trim_start_matches("TRANSACTION_TYPE_")
                .to_owned()
        })
        .unwrap_or_else(|_| "UNKNOWN".to_owned())
}

/// A card number as it may be printed: BIN + `****` + last four whatever it arrived as, so a
/// full PAN can never reach the file.
pub fn masked(pan: &str) -> String {
    let digits: Vec<char> = pan.chars().filter(char::is_ascii_digit).collect();
    if digits.is_empty() {
        return String::new();
    }
    if digits.len() < 10 {
        let last: String = digits[digits.len().saturating_sub(4)..].iter().collect();
        return format!("****{last}");
    }
    let bin: String = digits[..6].iter().collect();
    let last4: String = digits[digits.len() - 4..].iter().collect();
    format!("{bin}****{last4}")
}

fn field(text: &str) -> String {
    if text.contains([',', '"', '\n']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_owned()
    }
}

/// The file's content.
pub fn content(settlement: &pb::MerchantSettlement, figures: &Figures) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{HEADER}");
    for line in &figures.lines {
        let s = &line.step;
        let amount = s.effect();
        let row = [
            "TXN".to_owned(),
            s.time.clone(),
            s.terminal_id.clone(),
            format!("{:06}", s.batch_no),
            format!("{:06}", s.stan),
            type_name(s.transaction_type),
            masked(&s.masked_pan),
            yuan(amount),
            yuan(line.fee),
            yuan(amount - line.fee),
            s.rrn.clone(),
            s.transaction_id().to_owned(),
        ];
        let _ = writeln!(out, "{}", row.map(|f| field(&f)).join(","));
    }
    for adjustment in &settlement.adjustments {
        let amount = adjustment.amount.as_ref().map_or(0, |m| m.minor_units);
        let fee = adjustment.fee.as_ref().map_or(0, |m| m.minor_units);
        let row = [
            "ADJ".to_owned(),
            adjustment.original_business_date.clone(),
            String::new(),
            String::new(),
            String::new(),
            type_name(adjustment.transaction_type),
            String::new(),
            yuan(amount),
            yuan(fee),
            yuan(amount - fee),
            String::new(),
            format!("{}: {}", adjustment.transaction_id, adjustment.reason),
        ];
        let _ = writeln!(out, "{}", row.map(|f| field(&f)).join(","));
    }
    let summary = format!(
        "{} {}; gross {}; purchases {} {}; completions {} {}; voids {} {}; reversals {} {}; \
         refunds {} {}; adjustments {} {}; account {}",
        settlement.merchant_id,
        settlement.business_date,
        yuan(figures.gross),
        figures.purchases.count,
        yuan(figures.purchases.amount),
        figures.completions.count,
        yuan(figures.completions.amount),
        figures.voids.count,
        yuan(figures.voids.amount),
        figures.reversals.count,
        yuan(figures.reversals.amount),
        figures.refunds.count,
        yuan(figures.refunds.amount),
        settlement.adjustments.len(),
        yuan(figures.adjustments_total),
        settlement.settlement_account_masked,
    );
    let total = [
        "TOTAL".to_owned(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        String::new(),
        yuan(figures.gross + figures.adjustments_total),
        yuan(figures.fee),
        yuan(figures.net),
        String::new(),
        summary,
    ];
    let _ = writeln!(out, "{}", total.map(|f| field(&f)).join(","));
    out
}

/// Writes `content` to `dir/name` through a temporary file and a rename, so a reader never
/// sees half a file. Returns the absolute path.
pub async fn write(dir: &Path, name: &str, content: &str) -> std::io::Result<PathBuf> {
    tokio::fs::create_dir_all(dir).await?;
    let path = std::path::absolute(dir.join(name))?;
    let temporary = path.with_extension("csv.tmp");
    tokio::fs::write(&temporary, content.as_bytes()).await?;
    tokio::fs::rename(&temporary, &path).await?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cards_are_masked_whatever_arrives() {
        assert_eq!(masked("6225880011223345"), "622588****3345");
        assert_eq!(masked("622588******3345"), "622588****3345");
        assert_eq!(masked(""), "");
        assert_eq!(masked("****3345"), "****3345");
        assert_eq!(field("a,b"), "\"a,b\"");
        assert_eq!(
            type_name(pb::TransactionType::PreAuthCompletion as i32),
            "PRE_AUTH_COMPLETION"
        );
    }
}
