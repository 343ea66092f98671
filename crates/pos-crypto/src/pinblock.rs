//! ISO 9564-1 PIN blocks: format 0 for cardholder PINs (DE52, `PurchaseRequest.pin_block`) and
//! format 1 for operator passwords (`OperatorLoginRequest.password_block`).
//!
//! Both are 16 nibbles: the format, the PIN length, the PIN digits, then fill. Format 0 fills
//! with `F` and XORs the block with `0000` + the 12 rightmost PAN digits excluding the check
//! digit, which binds the PIN to the card; format 1 fills with random nibbles. The blocks
//! built here are clear: they are encrypted under a PIN key before they go anywhere. Errors
//! never contain PIN digits or the PAN.

use rand::Rng;
use zeroize::Zeroizing;

use crate::{CryptoError, Result};

/// Length of a PIN block in bytes.
pub const PIN_BLOCK_LEN: usize = 8;
/// Shortest and longest PIN (ISO 9564-1).
const PIN_LENGTHS: std::ops::RangeInclusive<usize> = 4..=12;
/// Shortest and longest PAN (ISO/IEC 7812-1), as `pos-domain` accepts them.
const PAN_LENGTHS: std::ops::RangeInclusive<usize> = 13..=19;

/// Nibbles of a block, zeroized on drop since they hold PIN digits.
type Nibbles = Zeroizing<[u8; 16]>;

/// The clear ISO 9564 format 0 PIN block of `pin` for the card `pan_digits`.
pub fn format0(pin: &str, pan_digits: &str) -> Result<[u8; PIN_BLOCK_LEN]> {
    let pin_field = pin_field(0, pin, |_| 0xF)?;
    let pan_field = pan_field(pan_digits)?;
    Ok(xor(&pack(&pin_field), &pack(&pan_field)))
}

/// The PIN in a clear format 0 block for the card `pan_digits`; refuses a malformed block.
pub fn decode_format0(block: &[u8; PIN_BLOCK_LEN], pan_digits: &str) -> Result<String> {
    let pan_field = pan_field(pan_digits)?;
    let clear = Zeroizing::new(xor(block, &pack(&pan_field)));
    let nibbles = unpack(&clear);
    let pin = decode_pin_field(&nibbles, 0)?;
    let fill_is_f = nibbles[2 + pin.len()..].iter().all(|&n| n == 0xF);
    if !fill_is_f {
        return Err(CryptoError::MalformedPinBlock("format 0 fill is not all F"));
    }
    Ok(pin.as_str().to_owned())
}

/// The clear ISO 9564 format 1 block of `pin` (an operator password: 4 to 12 digits).
pub fn format1(pin: &str) -> Result<[u8; PIN_BLOCK_LEN]> {
    let mut rng = rand::rng();
    let pin_field = pin_field(1, pin, |_| rng.random_range(0..16))?;
    Ok(pack(&pin_field))
}

/// The PIN in a clear format 1 block; refuses a malformed block.
pub fn decode_format1(block: &[u8; PIN_BLOCK_LEN]) -> Result<String> {
    let nibbles = unpack(block);
    Ok(decode_pin_field(&nibbles, 1)?.as_str().to_owned())
}

/// Format nibble, length nibble, PIN digits, then `fill(position)` up to 16 nibbles.
fn pin_field(format: u8, pin: &str, mut fill: impl FnMut(usize) -> u8) -> Result<Nibbles> {
    if !PIN_LENGTHS.contains(&pin.len()) {
        return Err(CryptoError::InvalidPin("must be 4 to 12 digits"));
    }
    if !pin.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::InvalidPin("must contain only digits 0-9"));
    }
    let mut nibbles = Zeroizing::new([0u8; 16]);
    nibbles[0] = format;
    nibbles[1] = pin.len() as u8;
    for (slot, digit) in nibbles[2..].iter_mut().zip(pin.bytes()) {
        *slot = digit - b'0';
    }
    for (position, slot) in nibbles.iter_mut().enumerate().skip(2 + pin.len()) {
        *slot = fill(position);
    }
    Ok(nibbles)
}

/// `0000` + the 12 rightmost PAN digits excluding the check digit.
fn pan_field(pan_digits: &str) -> Result<Nibbles> {
    if !pan_digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(CryptoError::InvalidPan(
            "must contain only digits 0-9".to_string(),
        ));
    }
    if !PAN_LENGTHS.contains(&pan_digits.len()) {
        let got = pan_digits.len();
        return Err(CryptoError::InvalidPan(format!(
            "must be 13 to 19 digits, got {got}"
        )));
    }
    let without_check = &pan_digits.as_bytes()[..pan_digits.len() - 1];
    let rightmost = &without_check[without_check.len() - 12..];
    let mut nibbles = Zeroizing::new([0u8; 16]);
    for (slot, digit) in nibbles[4..].iter_mut().zip(rightmost) {
        *slot = digit - b'0';
    }
    Ok(nibbles)
}

/// The PIN digits of a clear block after checking its format and length nibbles.
fn decode_pin_field(nibbles: &Nibbles, format: u8) -> Result<Zeroizing<String>> {
    if nibbles[0] != format {
        return Err(CryptoError::MalformedPinBlock(if format == 0 {
            "format nibble is not 0 (wrong key, wrong PAN or not a format 0 block)"
        } else {
            "format nibble is not 1 (wrong key or not a format 1 block)"
        }));
    }
    let len = usize::from(nibbles[1]);
    if !PIN_LENGTHS.contains(&len) {
        return Err(CryptoError::MalformedPinBlock(
            "PIN length is not between 4 and 12",
        ));
    }
    let digits = &nibbles[2..2 + len];
    if digits.iter().any(|&n| n > 9) {
        return Err(CryptoError::MalformedPinBlock("PIN contains a non-digit"));
    }
    Ok(Zeroizing::new(
        digits.iter().map(|&n| char::from(b'0' + n)).collect(),
    ))
}

/// Two nibbles per byte, high nibble first.
fn pack(nibbles: &[u8; 16]) -> [u8; PIN_BLOCK_LEN] {
    let mut block = [0u8; PIN_BLOCK_LEN];
    for (byte, pair) in block.iter_mut().zip(nibbles.chunks_exact(2)) {
        *byte = (pair[0] << 4) | pair[1];
    }
    block
}

/// The 16 nibbles of a block, high nibble first.
fn unpack(block: &[u8; PIN_BLOCK_LEN]) -> Nibbles {
    let mut nibbles = Zeroizing::new([0u8; 16]);
    for (pair, byte) in nibbles.chunks_exact_mut(2).zip(block) {
        pair[0] = byte >> 4;
        pair[1] = byte & 0x0F;
    }
    nibbles
}

/// Byte-wise XOR of two blocks.
fn xor(a: &[u8; PIN_BLOCK_LEN], b: &[u8; PIN_BLOCK_LEN]) -> [u8; PIN_BLOCK_LEN] {
    std::array::from_fn(|i| a[i] ^ b[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(hex_block: &str) -> [u8; 8] {
        hex::decode(hex_block).unwrap().try_into().unwrap()
    }

    // REFERENCE.md's vector, also what psec 1.3.0 gives:
    // psec.pinblock.encode_pinblock_iso_0("1234", "5544332211009966") → 041277CDDEEFF669.
    #[test]
    fn format0_reference_vector() {
        let b = format0("1234", "5544332211009966").unwrap();
        assert_eq!(hex::encode_upper(b), "041277CDDEEFF669");
        assert_eq!(decode_format0(&b, "5544332211009966").unwrap(), "1234");
    }

    // More psec 1.3.0 vectors (encode_pinblock_iso_0): a 12-digit PIN and a 19-digit PAN.
    #[test]
    fn format0_psec_vectors_for_long_pin_and_long_pan() {
        let b = format0("123456789012", "4000001234567899").unwrap();
        assert_eq!(hex::encode_upper(b), "0C1234575BD57576");
        assert_eq!(
            decode_format0(&b, "4000001234567899").unwrap(),
            "123456789012"
        );
        let b = format0("0000", "6212345678901234567").unwrap();
        assert_eq!(hex::encode_upper(b), "040056876FEDCBA9");
        assert_eq!(decode_format0(&b, "6212345678901234567").unwrap(), "0000");
    }

    #[test]
    fn format0_under_another_pan_does_not_decode() {
        let b = format0("1234", "5544332211009966").unwrap();
        let err = decode_format0(&b, "6222020200112233446").unwrap_err();
        assert!(matches!(err, CryptoError::MalformedPinBlock(_)));
    }

    #[test]
    fn format0_decoding_refuses_each_kind_of_malformed_block() {
        let pan = "5544332211009966";
        // The PAN field is 0000433221100996; each block's clear PIN field is in the comment.
        let cases = [
            ("141277CDDEEFF669", "format nibble"), // 141234FFFFFFFFFF
            ("031277CDDEEFF669", "PIN length"),    // 031234FFFFFFFFFF: 3 digits
            ("0D1277CDDEEFF669", "PIN length"),    // 0D1234FFFFFFFFFF: 13 digits
            ("041279CDDEEFF669", "non-digit"),     // 04123AFFFFFFFFFF
            ("041277CDDEEFF668", "fill"),          // 041234FFFFFFFFFE
        ];
        for (hex_block, reason) in cases {
            let err = decode_format0(&block(hex_block), pan).unwrap_err();
            let CryptoError::MalformedPinBlock(message) = err else {
                panic!("{hex_block}: {err:?}");
            };
            assert!(message.contains(reason), "{hex_block}: {message}");
        }
    }

    #[test]
    fn malformed_block_errors_never_show_pin_digits_or_pan() {
        let pan = "5544332211009966";
        for hex_block in ["141277CDDEEFF669", "041279CDDEEFF669", "041277CDDEEFF668"] {
            let shown = decode_format0(&block(hex_block), pan)
                .unwrap_err()
                .to_string();
            assert!(
                !shown.contains("1234") && !shown.contains("5544"),
                "{shown}"
            );
        }
    }

    #[test]
    fn bad_pins_and_pans_are_refused_without_echoing_them() {
        let pan = "5544332211009966";
        assert_eq!(
            format0("123", pan).unwrap_err().to_string(),
            "invalid PIN: must be 4 to 12 digits"
        );
        assert!(format0("1234567890123", pan).is_err());
        let err = format0("12a4", pan).unwrap_err().to_string();
        assert_eq!(err, "invalid PIN: must contain only digits 0-9");
        let err = format0("1234", "554433221100").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid PAN for the PIN block: must be 13 to 19 digits, got 12"
        );
        assert!(format0("1234", "5544 3322 1100 9966").is_err());
        assert!(format1("12").is_err());
    }

    #[test]
    fn format1_round_trips_every_length_with_random_fill() {
        for len in 4..=12 {
            let pin: String = "098765432109".chars().take(len).collect();
            let b = format1(&pin).unwrap();
            assert_eq!(b[0] >> 4, 1);
            assert_eq!(usize::from(b[0] & 0x0F), len);
            assert_eq!(decode_format1(&b).unwrap(), pin);
        }
        // The fill is random (40 bits for a 4-digit password): equal passwords, different blocks.
        assert_ne!(format1("0000").unwrap(), format1("0000").unwrap());
    }

    #[test]
    fn format1_decoding_refuses_malformed_blocks() {
        let refused = |hex_block: &str| match decode_format1(&block(hex_block)) {
            Err(CryptoError::MalformedPinBlock(message)) => message,
            other => panic!("{hex_block}: {other:?}"),
        };
        assert!(refused("0412345FFFFFFFFF").contains("format nibble"));
        assert!(refused("1312345FFFFFFFFF").contains("PIN length"));
        assert!(refused("1F12345FFFFFFFFF").contains("PIN length"));
        assert!(refused("14123A5FFFFFFFFF").contains("non-digit"));
        assert_eq!(decode_format1(&block("1412347A3B9C0DEF")).unwrap(), "1234");
    }

    #[test]
    fn a_format1_block_is_not_accepted_as_format0() {
        let b = format1("1234").unwrap();
        assert!(decode_format0(&b, "5544332211009966").is_err());
    }
}
