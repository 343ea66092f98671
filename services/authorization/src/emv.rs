//! Field 55 of chip and contactless reads: well-formed BER-TLV holding every mandatory tag of
//! REFERENCE.md with the lengths EMV gives them, and an amount (9F02) and currency (5F2A) that
//! agree with the request. What fraud-check needs to know about it is [`ChipData::facts`] (the
//! raw field is not sent there).

use pos_domain::Money;
use pos_proto::v1 as pb;

use crate::tlv::{self, Tlv, tag_name};

/// Application cryptogram (ARQC).
const CRYPTOGRAM: u32 = 0x9F26;
/// Cryptogram information data.
const CID: u32 = 0x9F27;
/// Application transaction counter.
const ATC: u32 = 0x9F36;
/// Terminal verification results.
const TVR: u32 = 0x95;
/// Amount, authorised (n12).
const AMOUNT: u32 = 0x9F02;
/// Transaction currency code (n4).
const CURRENCY: u32 = 0x5F2A;

/// The mandatory tags of online chip data, with the value lengths EMV fixes (min, max).
const MANDATORY: [(u32, usize, usize); 14] = [
    (CRYPTOGRAM, 8, 8),
    (CID, 1, 1),
    (0x9F10, 1, 32), // issuer application data
    (0x9F37, 4, 4),  // unpredictable number
    (ATC, 2, 2),
    (TVR, 5, 5),
    (0x9A, 3, 3), // transaction date YYMMDD
    (0x9C, 1, 1), // transaction type
    (AMOUNT, 6, 6),
    (CURRENCY, 2, 2),
    (0x82, 2, 2),   // application interchange profile
    (0x9F1A, 2, 2), // terminal country code
    (0x9F03, 6, 6), // amount, other
    (0x9F33, 3, 3), // terminal capabilities
];

/// Checked field 55.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChipData {
    /// What fraud-check learns about it.
    pub facts: pb::EmvFacts,
}

/// Why field 55 is refused (answer "30").
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EmvProblem {
    /// A chip or contactless read without field 55.
    #[error("field 55 (chip data) is required for chip and contactless reads")]
    Missing,
    /// Not BER-TLV.
    #[error("field 55 is not well-formed BER-TLV: {0}")]
    Malformed(#[from] tlv::TlvError),
    /// Mandatory tags are absent.
    #[error("field 55 lacks the mandatory tags {}", .0.join(" "))]
    MissingTags(Vec<String>),
    /// A tag has a length EMV does not allow.
    #[error("field 55 tag {tag} has {got} bytes, expected {expected}")]
    BadLength {
        /// Hex tag name.
        tag: String,
        /// Its length.
        got: usize,
        /// What EMV allows.
        expected: String,
    },
    /// 9F02 or 5F2A is not BCD.
    #[error("field 55 tag {0} is not BCD digits")]
    NotBcd(String),
    /// 9F02 differs from the request's amount.
    #[error("field 55 amount (9F02) {chip} differs from the transaction amount {request}")]
    AmountMismatch {
        /// 9F02 in minor units.
        chip: u64,
        /// The request's amount in minor units.
        request: i64,
    },
    /// 5F2A differs from the request's currency.
    #[error("field 55 currency (5F2A) {chip:03} differs from the transaction currency {request}")]
    CurrencyMismatch {
        /// 5F2A.
        chip: u64,
        /// The request's currency (alpha and numeric).
        request: String,
    },
}

/// Checks field 55 against the request's amount (`None` for balance inquiry, whose 9F02 is not
/// compared).
pub fn check(field55: &[u8], amount: Option<&Money>) -> Result<ChipData, EmvProblem> {
    if field55.is_empty() {
        return Err(EmvProblem::Missing);
    }
    let objects = tlv::parse(field55)?;
    let missing: Vec<String> = MANDATORY
        .iter()
        .filter(|(tag, _, _)| tlv::find(&objects, *tag).is_none())
        .map(|(tag, _, _)| tag_name(*tag))
        .collect();
    if !missing.is_empty() {
        return Err(EmvProblem::MissingTags(missing));
    }
    for (tag, min, max) in MANDATORY {
        let got = value(&objects, tag).len();
        if got < min || got > max {
            let expected = if min == max {
                min.to_string()
            } else {
                format!("{min} to {max}")
            };
            return Err(EmvProblem::BadLength {
                tag: tag_name(tag),
                got,
                expected,
            });
        }
    }
    let chip_amount = bcd(value(&objects, AMOUNT)).ok_or(EmvProblem::NotBcd(tag_name(AMOUNT)))?;
    let chip_currency =
        bcd(value(&objects, CURRENCY)).ok_or(EmvProblem::NotBcd(tag_name(CURRENCY)))?;
    if let Some(amount) = amount {
        let request = amount.to_minor().unwrap_or(-1);
        if i64::try_from(chip_amount).ok() != Some(request) {
            return Err(EmvProblem::AmountMismatch {
                chip: chip_amount,
                request,
            });
        }
        let currency = amount.currency();
        if chip_currency != u64::from(currency.numeric()) {
            return Err(EmvProblem::CurrencyMismatch {
                chip: chip_currency,
                request: format!("{currency} ({:03})", currency.numeric()),
            });
        }
    }
    let atc = value(&objects, ATC);
    Ok(ChipData {
        facts: pb::EmvFacts {
            present: true,
            cryptogram_present: true,
            cryptogram_information_data: hex::encode_upper(value(&objects, CID)),
            atc: Some(u32::from(u16::from_be_bytes([atc[0], atc[1]]))),
            tvr: hex::encode_upper(value(&objects, TVR)),
            missing_tags: Vec::new(),
            amount_consistent: true,
        },
    })
}

/// The value of a tag known to be present (empty otherwise).
fn value<'a>(objects: &[Tlv<'a>], tag: u32) -> &'a [u8] {
    tlv::find(objects, tag).map_or(&[], |t| t.value)
}

/// The number in packed BCD `bytes`; `None` when a nibble is not a digit.
fn bcd(bytes: &[u8]) -> Option<u64> {
    bytes.iter().try_fold(0u64, |sum, &byte| {
        let (high, low) = (u64::from(byte >> 4), u64::from(byte & 0x0F));
        (high < 10 && low < 10).then(|| sum * 100 + high * 10 + low)
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use pos_domain::Currency;

    use super::*;

    fn push(out: &mut Vec<u8>, tag: u32, value: &[u8]) {
        if tag > 0xFF {
            out.extend(u16::try_from(tag).unwrap().to_be_bytes());
        } else {
            out.push(u8::try_from(tag).unwrap());
        }
        out.push(u8::try_from(value.len()).unwrap());
        out.extend_from_slice(value);
    }

    /// A well-formed field 55 for `amount_minor` fen in CNY, leaving out `skip`.
    pub(crate) fn field55_without(amount_minor: u64, skip: &[u32]) -> Vec<u8> {
        let digits = format!("{amount_minor:012}");
        let amount: Vec<u8> = digits
            .as_bytes()
            .chunks(2)
            .map(|p| ((p[0] - b'0') << 4) | (p[1] - b'0'))
            .collect();
        let tags: [(u32, Vec<u8>); 14] = [
            (0x9F26, vec![0x11; 8]),
            (0x9F27, vec![0x80]),
            (0x9F10, vec![0x07, 0x01, 0x01, 0x03, 0xA0, 0x00, 0x00]),
            (0x9F37, vec![1, 2, 3, 4]),
            (0x9F36, vec![0x00, 0x2A]),
            (0x95, vec![0; 5]),
            (0x9A, vec![0x25, 0x06, 0x01]),
            (0x9C, vec![0x00]),
            (0x9F02, amount),
            (0x5F2A, vec![0x01, 0x56]),
            (0x82, vec![0x7C, 0x00]),
            (0x9F1A, vec![0x01, 0x56]),
            (0x9F03, vec![0; 6]),
            (0x9F33, vec![0xE0, 0xF1, 0xC8]),
        ];
        let mut out = Vec::new();
        for (tag, value) in tags.iter().filter(|(t, _)| !skip.contains(t)) {
            push(&mut out, *tag, value);
        }
        out
    }

    pub(crate) fn field55(amount_minor: u64) -> Vec<u8> {
        field55_without(amount_minor, &[])
    }

    fn cny(minor: i64) -> Money {
        Money::from_minor(minor, Currency::CNY)
    }

    #[test]
    fn accepts_complete_chip_data_and_extracts_the_facts() {
        let chip = check(&field55(5000), Some(&cny(5000))).unwrap();
        assert!(chip.facts.present && chip.facts.amount_consistent);
        assert_eq!(chip.facts.cryptogram_information_data, "80");
        assert_eq!(chip.facts.atc, Some(42));
        assert_eq!(chip.facts.tvr, "0000000000");
        assert!(check(&field55(0), None).is_ok(), "balance inquiry");
    }

    #[test]
    fn names_every_missing_mandatory_tag() {
        let err = check(&field55_without(5000, &[0x9F26, 0x9F36]), Some(&cny(5000))).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field 55 lacks the mandatory tags 9F26 9F36"
        );
        assert_eq!(check(&[], Some(&cny(1))), Err(EmvProblem::Missing));
    }

    #[test]
    fn refuses_garbage_and_wrong_lengths() {
        let err = check(&[0x9F, 0x26, 0x08, 0x01], Some(&cny(1))).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("field 55 is not well-formed BER-TLV"),
            "{err}"
        );
        let mut short_cryptogram = field55_without(5000, &[0x9F26]);
        push(&mut short_cryptogram, 0x9F26, &[1, 2, 3]);
        let err = check(&short_cryptogram, Some(&cny(5000))).unwrap_err();
        assert_eq!(err.to_string(), "field 55 tag 9F26 has 3 bytes, expected 8");
    }

    #[test]
    fn the_chip_amount_and_currency_must_match_the_request() {
        let err = check(&field55(5000), Some(&cny(5001))).unwrap_err();
        assert_eq!(
            err,
            EmvProblem::AmountMismatch {
                chip: 5000,
                request: 5001
            }
        );
        let usd = Money::from_minor(5000, Currency::USD);
        let err = check(&field55(5000), Some(&usd)).unwrap_err();
        assert_eq!(
            err.to_string(),
            "field 55 currency (5F2A) 156 differs from the transaction currency USD (840)"
        );
        let mut not_bcd = field55_without(5000, &[0x9F02]);
        push(&mut not_bcd, 0x9F02, &[0, 0, 0, 0, 0x5A, 0]);
        assert_eq!(
            check(&not_bcd, Some(&cny(5000))),
            Err(EmvProblem::NotBcd("9F02".to_owned()))
        );
    }

    #[test]
    fn bcd_reads_packed_digits() {
        assert_eq!(bcd(&[0x00, 0x01, 0x56]), Some(156));
        assert_eq!(bcd(&[0x12, 0x34]), Some(1234));
        assert_eq!(bcd(&[0x1A]), None);
    }
}
