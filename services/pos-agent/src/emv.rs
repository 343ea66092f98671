//! Field 55 (ICC data) for chip and contactless reads: the card's static tags plus what the
//! terminal and the transaction contribute, BER-TLV encoded. The cryptogram is simulated (a
//! keyed digest of the transaction data under a per-card key derived from the PAN): these are
//! test cards, not real EMV applications.

use sha2::{Digest, Sha256};

use crate::card::Card;

/// One TLV: tag (one or two bytes as written), value.
fn tlv(out: &mut Vec<u8>, tag: u16, value: &[u8]) {
    if tag > 0xFF {
        out.extend_from_slice(&tag.to_be_bytes());
    } else {
        out.push(tag as u8);
    }
    match value.len() {
        n if n < 0x80 => out.push(n as u8),
        n if n <= 0xFF => out.extend_from_slice(&[0x81, n as u8]),
        n => out.extend_from_slice(&[0x82, (n >> 8) as u8, n as u8]),
    }
    out.extend_from_slice(value);
}

/// Packs decimal digits as BCD, left-padded with zeros to `bytes` bytes.
fn bcd(number: u64, bytes: usize) -> Vec<u8> {
    let digits = format!("{number:0width$}", width = bytes * 2);
    digits
        .as_bytes()
        .chunks(2)
        .map(|pair| ((pair[0] - b'0') << 4) | (pair[1] - b'0'))
        .collect()
}

/// What the transaction contributes to field 55.
#[derive(Debug, Clone, Copy)]
pub struct TransactionData {
    /// Amount authorized in minor units (9F02).
    pub amount_minor: u64,
    /// Transaction type (9C): 0x00 goods and services, 0x30 balance inquiry, 0x03 pre-auth.
    pub transaction_type: u8,
    /// Date YYMMDD (9A).
    pub date_yymmdd: u32,
    /// ISO 4217 numeric currency (5F2A) and ISO 3166 numeric country (9F1A): 156 for China.
    pub currency: u16,
}

/// The field 55 bytes for `card` and `txn`.
pub fn field55(card: &Card, txn: TransactionData) -> Vec<u8> {
    let unpredictable: [u8; 4] = rand::random();
    let atc = card.atc.to_be_bytes();
    let amount = bcd(txn.amount_minor, 6);
    let date = bcd(u64::from(txn.date_yymmdd), 3);
    let currency = bcd(u64::from(txn.currency), 2);
    let cryptogram = {
        let mut digest = Sha256::new();
        digest.update(b"pos-agent test card key");
        digest.update(card.pan.expose_digits().as_bytes());
        digest.update(amount.as_slice());
        digest.update(date.as_slice());
        digest.update(unpredictable);
        digest.update(atc);
        digest.finalize()[..8].to_vec()
    };
    let static_tag = |tag: u16, default: &[u8]| -> Vec<u8> {
        card.emv
            .iter()
            .find(|(t, _)| *t == tag)
            .map_or_else(|| default.to_vec(), |(_, v)| v.clone())
    };
    let mut out = Vec::with_capacity(128);
    tlv(&mut out, 0x9F26, &cryptogram);
    tlv(&mut out, 0x9F27, &[0x80]);
    tlv(
        &mut out,
        0x9F10,
        &static_tag(
            0x9F10,
            &[
                0x07, 0x01, 0x01, 0x03, 0xA0, 0x00, 0x00, 0x01, 0x0A, 0x01, 0x00, 0x00, 0x00, 0x00,
                0x00, 0x00,
            ],
        ),
    );
    tlv(&mut out, 0x9F37, &unpredictable);
    tlv(&mut out, 0x9F36, &atc);
    tlv(&mut out, 0x95, &[0x00; 5]);
    tlv(&mut out, 0x9A, &date);
    tlv(&mut out, 0x9C, &[txn.transaction_type]);
    tlv(&mut out, 0x9F02, &amount);
    tlv(&mut out, 0x5F2A, &currency);
    tlv(&mut out, 0x82, &static_tag(0x82, &[0x7C, 0x00]));
    tlv(&mut out, 0x9F1A, &currency);
    tlv(&mut out, 0x9F03, &[0x00; 6]);
    tlv(&mut out, 0x9F33, &[0xE0, 0xF1, 0xC8]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_and_dates_are_bcd() {
        assert_eq!(bcd(5_000, 6), vec![0x00, 0x00, 0x00, 0x00, 0x50, 0x00]);
        assert_eq!(bcd(261_128, 3), vec![0x26, 0x11, 0x28]);
        assert_eq!(bcd(156, 2), vec![0x01, 0x56]);
    }

    #[test]
    fn field55_carries_every_mandatory_tag_with_the_amount() {
        let payload = "622202020011223344";
        let check = pos_domain::pan::luhn::check_digit(payload).expect("digit");
        let card = Card::read(&format!("{payload}{check}/2812/220")).expect("card");
        let data = field55(
            &card,
            TransactionData {
                amount_minor: 5_000,
                transaction_type: 0x00,
                date_yymmdd: 261_128,
                currency: 156,
            },
        );
        let hex = hex::encode_upper(&data);
        for tag in [
            "9F26", "9F27", "9F10", "9F37", "9F36", "95", "9A", "9C", "9F02", "5F2A", "82", "9F1A",
            "9F03", "9F33",
        ] {
            assert!(hex.contains(tag), "tag {tag} missing from {hex}");
        }
        assert!(
            hex.contains("9F0206000000005000"),
            "amount 50.00 in 9F02: {hex}"
        );
        assert!(hex.contains("9A03261128"), "date in 9A: {hex}");
        assert!(
            !hex.contains(card.pan.expose_digits()),
            "field 55 never carries the PAN"
        );
    }
}
