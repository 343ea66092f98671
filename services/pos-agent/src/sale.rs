//! Financial transactions at the counter: the cashier keys the amount, the card is read, its
//! masked number is shown for confirmation, the PIN becomes an ISO 9564 format-0 block under
//! the PIN key, and on approval two receipts are printed and saved.

use anyhow::{Context, bail};
use pos_crypto::{DesKey, pinblock};
use pos_domain::time::ChinaTime;
use pos_domain::{Currency, EntryMode, Money};
use pos_proto::v1 as pb;

use crate::card::Card;
use crate::emv::{self, TransactionData};
use crate::receipt::{self, Copy};

/// The terminal's clock: China Standard Time.
pub struct Clock(ChinaTime);

impl Clock {
    /// The current local time.
    pub fn now() -> Self {
        Self(ChinaTime::now())
    }

    /// "YYYY-MM-DDTHH:MM:SS" as the contracts carry local times.
    pub fn iso(&self) -> String {
        self.0.iso()
    }

    /// "YYYY-MM-DD HH:MM:SS" for receipts.
    pub fn printed(&self) -> String {
        self.iso().replace('T', " ")
    }

    /// The local date and time.
    pub fn local(&self) -> &ChinaTime {
        &self.0
    }

    fn yymmdd(&self) -> u32 {
        let t = &self.0;
        u32::try_from(t.year.rem_euclid(100)).unwrap_or(0) * 10_000 + t.month * 100 + t.day
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

/// The last four digits printed on the card as the cashier keyed them (`--card-face-last4`).
pub fn face_last4(digits: &str) -> anyhow::Result<String> {
    let digits = digits.trim();
    if digits.len() != 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        bail!("--card-face-last4: the last four digits printed on the card, e.g. 5677");
    }
    Ok(digits.to_owned())
}

/// Reads the card the cashier presents and shows its masked number. A chip card is not
/// swiped unless the chip read failed (`--entry fallback`).
pub fn present_card(spec: &str, entry: &str) -> anyhow::Result<(Card, EntryMode)> {
    let card = Card::read(spec)?;
    let mode = crate::card::entry_mode(entry)?;
    if mode == EntryMode::Swipe && card.has_chip() {
        bail!(
            "this is a chip card: insert it (请插卡); swipe it only with --entry fallback after a failed chip read"
        );
    }
    println!(
        "card: {} (shown to the cashier to confirm)",
        card.pan.masked()
    );
    Ok((card, mode))
}

/// The PIN block under the PIN key, or empty when no PIN was entered.
pub fn pin_block(pin: Option<&str>, card: &Card, pin_key: &DesKey) -> anyhow::Result<Vec<u8>> {
    let Some(pin) = pin else {
        return Ok(Vec::new());
    };
    let block = pinblock::format0(pin, card.pan.expose_digits()).context("PIN: 4 to 12 digits")?;
    Ok(pin_key.encrypt_ecb(&block)?)
}

/// Prints the host's (validated) answer; on approval prints and saves both receipts. Fails on
/// a decline with the host's code and message.
pub fn conclude(
    response: pb::TransactionResponse,
    receipts_dir: &std::path::Path,
    clock: &Clock,
) -> anyhow::Result<pb::TransactionResponse> {
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
    fn keyed_amounts_are_yuan_with_fen() {
        assert_eq!(keyed_amount("50.00").unwrap().minor_units, 5_000);
        assert_eq!(keyed_amount("0.01").unwrap().minor_units, 1);
        for bad in ["0.00", "-1.00", "50.001", "abc", "1e3", ""] {
            assert!(keyed_amount(bad).is_err(), "{bad} must be refused");
        }
    }

    #[test]
    fn the_card_face_digits_are_four_digits() {
        assert_eq!(face_last4(" 5677 ").unwrap(), "5677");
        for bad in ["567", "56777", "56a7", ""] {
            assert!(face_last4(bad).is_err(), "{bad} must be refused");
        }
    }
}
