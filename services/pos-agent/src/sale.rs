//! Financial transactions at the counter: the cashier keys the amount, the card is read, its
//! masked number is shown for confirmation, the PIN becomes an ISO 9564 format-0 block under
//! the PIN key, and on approval two receipts are printed and saved.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, bail};
use pos_crypto::{DesKey, pinblock};
use pos_domain::{Currency, EntryMode, Money};
use pos_proto::v1 as pb;
use pos_proto::v1::host_message::Body as HostBody;

use crate::card::Card;
use crate::emv::{self, TransactionData};
use crate::receipt::{self, Copy};

/// China Standard Time, the terminal's clock zone.
const CST_OFFSET_SECS: i64 = 8 * 3_600;

/// Civil date and time (UTC+8) of `unix` seconds: (year, month, day, hour, minute, second).
fn civil(unix: i64) -> (i64, u32, u32, u32, u32, u32) {
    let local = unix + CST_OFFSET_SECS;
    let days = local.div_euclid(86_400);
    let secs = local.rem_euclid(86_400);
    // Days to civil date (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let (h, m, s) = (secs / 3_600, (secs % 3_600) / 60, secs % 60);
    (year, month, day, h as u32, m as u32, s as u32)
}

/// The terminal's local time now.
pub struct Clock {
    year: i64,
    month: u32,
    day: u32,
    hour: u32,
    minute: u32,
    second: u32,
}

impl Clock {
    /// The current local time.
    pub fn now() -> Self {
        let unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0));
        let (year, month, day, hour, minute, second) = civil(unix);
        Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        }
    }

    /// "YYYY-MM-DDTHH:MM:SS" as the contracts carry local times.
    pub fn iso(&self) -> String {
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }

    /// "YYYY-MM-DD HH:MM:SS" for receipts.
    pub fn printed(&self) -> String {
        self.iso().replace('T', " ")
    }

    /// "YYYY-MM-DD", the business date a cashier keys for a completion.
    pub fn date(&self) -> String {
        format!("{:04}-{:02}-{:02}", self.year, self.month, self.day)
    }

    fn yymmdd(&self) -> u32 {
        u32::try_from(self.year.rem_euclid(100)).unwrap_or(0) * 10_000 + self.month * 100 + self.day
    }
}

/// The amount as the cashier keys it ("50.00" is fifty yuan).
pub fn keyed_amount(text: &str) -> anyhow::Result<pb::Money> {
    let money =
        Money::parse_major(text, Currency::CNY).map_err(|e| anyhow::anyhow!("amount: {e}"))?;
    if !money.is_positive() {
        bail!("amount: must be more than 0.00");
    }
    Ok(pb::Money {
        minor_units: money
            .to_minor()
            .map_err(|e| anyhow::anyhow!("amount: {e}"))?,
        currency: "CNY".to_owned(),
    })
}

fn proto_entry(mode: EntryMode) -> pb::CardEntryMode {
    match mode {
        EntryMode::Swipe => pb::CardEntryMode::Swipe,
        EntryMode::Chip => pb::CardEntryMode::Chip,
        EntryMode::Contactless => pb::CardEntryMode::Contactless,
        EntryMode::FallbackSwipe => pb::CardEntryMode::FallbackSwipe,
        EntryMode::Manual => pb::CardEntryMode::Manual,
    }
}

/// The card data of the request: track 2 for a swipe, field 55 for chip and contactless.
pub fn card_data(
    card: &Card,
    mode: EntryMode,
    amount_minor: u64,
    emv_type: u8,
    clock: &Clock,
) -> pb::CardData {
    let chip_read = matches!(mode, EntryMode::Chip | EntryMode::Contactless);
    pb::CardData {
        pan: card.pan.expose_digits().to_owned(),
        expiry: card.expiry.to_string(),
        service_code: card.service_code.to_string(),
        track2: if chip_read {
            String::new()
        } else {
            card.track2()
        },
        entry_mode: proto_entry(mode) as i32,
        emv_data: if chip_read {
            emv::field55(
                card,
                TransactionData {
                    amount_minor,
                    transaction_type: emv_type,
                    date_yymmdd: clock.yymmdd(),
                    currency: 156,
                },
            )
        } else {
            Vec::new()
        },
        card_sequence_number: if chip_read {
            "001".to_owned()
        } else {
            String::new()
        },
        displayed_last4: card.pan.last4().to_owned(),
    }
}

/// The PIN block under the PIN key, or empty when no PIN was entered.
pub fn pin_block(pin: Option<&str>, card: &Card, pin_key: &DesKey) -> anyhow::Result<Vec<u8>> {
    let Some(pin) = pin else {
        return Ok(Vec::new());
    };
    let block = pinblock::format0(pin, card.pan.expose_digits()).context("PIN: 4 to 12 digits")?;
    Ok(pin_key.encrypt_ecb(&block)?)
}

/// Prints the host's answer; on approval prints and saves both receipts. Fails on a decline.
pub fn conclude(
    answer: HostBody,
    receipts_dir: &std::path::Path,
    clock: &Clock,
) -> anyhow::Result<pb::TransactionResponse> {
    let response = match answer {
        HostBody::Transaction(response) => response,
        HostBody::Error(error) => bail!(
            "refused by the host ({}): {}",
            error.response_code,
            error.response_message
        ),
        other => bail!("unexpected answer from the host: {other:?}"),
    };
    if response.response_code != "00" {
        bail!(
            "declined ({}): {}",
            response.response_code,
            response.response_message
        );
    }
    match &response.amount {
        Some(amount) => println!(
            "approved: auth {} rrn {} amount {}",
            response.approval_code,
            response.rrn,
            receipt::amount(Some(amount))
        ),
        None => println!(
            "approved: auth {} rrn {}",
            response.approval_code, response.rrn
        ),
    }
    if let Some(balance) = &response.balance {
        println!("balance: {}", receipt::amount(Some(balance)));
    }
    if response.transaction_type != pb::TransactionType::BalanceInquiry as i32 {
        std::fs::create_dir_all(receipts_dir)?;
        for copy in [Copy::Merchant, Copy::Cardholder] {
            let text = receipt::render(copy, &response, &clock.printed());
            println!("\n{text}");
            let name = format!(
                "{:06}-{:06}-{}.txt",
                response.batch_no,
                response.stan,
                copy.suffix()
            );
            std::fs::write(receipts_dir.join(name), &text)?;
        }
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn civil_time_is_china_standard_time() {
        // 2026-11-28T10:00:00Z is 18:00 in Shanghai.
        assert_eq!(civil(1_795_860_000), (2026, 11, 28, 18, 0, 0));
        assert_eq!(civil(0), (1970, 1, 1, 8, 0, 0));
    }

    #[test]
    fn keyed_amounts_are_yuan_with_fen() {
        assert_eq!(keyed_amount("50.00").unwrap().minor_units, 5_000);
        assert_eq!(keyed_amount("0.01").unwrap().minor_units, 1);
        for bad in ["0.00", "-1.00", "50.001", "abc", "1e3", ""] {
            assert!(keyed_amount(bad).is_err(), "{bad} must be refused");
        }
    }
}
