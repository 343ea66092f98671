//! Format rules of Chinese identifiers and personal data, and how personal data is masked.
//!
//! - Unified social credit code (统一社会信用代码), GB 32100-2015: 18 characters from
//!   0-9 A-H J-N P-R T-U W-Y; characters 3-8 are the region code (digits); the 18th is a
//!   check character, 31 minus the sum of value x (3^i mod 31) over the first 17, mod 31.
//! - Resident ID number (居民身份证号码), GB 11643-1999: 17 digits (6 region, 8 birth date
//!   YYYYMMDD, 3 sequence) and an ISO 7064 MOD 11-2 check character 0-9 or X.
//! - Masks as management.proto shows them: ID number first 6 + "********" + last 4, account
//!   first 4 + "****" + last 4, phone first 3 + "****" + last 4, name first character + "*"s.
//!
//! Problem messages never contain the value checked: it may be personal data.

use crate::error::FieldError;
use crate::time::Date;

/// Characters of a unified social credit code, in value order (0..=30).
const USCC_CHARSET: &str = "0123456789ABCDEFGHJKLMNPQRTUWXY";
/// Weights of the first 17 characters: 3^i mod 31.
const USCC_WEIGHTS: [u32; 17] = [
    1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28,
];
/// Weights of the first 17 digits of a resident ID number: 2^(17-i) mod 11.
const RESIDENT_ID_WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
/// Check character of a resident ID number, indexed by the weighted sum mod 11.
const RESIDENT_ID_CHECK: &[u8; 11] = b"10X98765432";
/// Default operator password at activation; never acceptable as a new password.
pub const DEFAULT_PASSWORD: &str = "0000";
/// Youngest age of a merchant's legal person.
const ADULT_AGE: i64 = 18;

/// The check character that completes the first 17 characters of a unified social credit
/// code, or `None` if they are not 17 characters of its character set.
pub fn uscc_check_char(first17: &str) -> Option<char> {
    let values: Vec<u32> = first17.chars().map(uscc_value).collect::<Option<_>>()?;
    if values.len() != 17 {
        return None;
    }
    let sum: u32 = values.iter().zip(USCC_WEIGHTS).map(|(v, w)| v * w).sum();
    let index = (31 - sum % 31) % 31;
    USCC_CHARSET.chars().nth(usize::try_from(index).ok()?)
}

fn uscc_value(c: char) -> Option<u32> {
    USCC_CHARSET
        .find(c)
        .and_then(|index| u32::try_from(index).ok())
}

/// What is wrong with a unified social credit code (upper case), if anything.
pub(crate) fn uscc_problem(code: &str) -> Option<String> {
    let count = code.chars().count();
    if count == 0 {
        return Some(
            "an enterprise needs its 18-character unified social credit code (统一社会信用代码)"
                .to_owned(),
        );
    }
    if count != 18 {
        return Some(format!(
            "an enterprise needs its 18-character unified social credit code, got {count} characters"
        ));
    }
    if let Some(position) = code.chars().position(|c| uscc_value(c).is_none()) {
        return Some(format!(
            "character {} is not allowed: a unified social credit code uses 0-9 and A-Z except I, O, S, V and Z",
            position + 1
        ));
    }
    if !code.chars().skip(2).take(6).all(|c| c.is_ascii_digit()) {
        return Some("characters 3 to 8 must be digits (the region code)".to_owned());
    }
    let (first17, last) = code.split_at(17);
    if uscc_check_char(first17).map(String::from).as_deref() != Some(last) {
        return Some("not a valid unified social credit code (check character)".to_owned());
    }
    None
}

/// The check character that completes the first 17 digits of a resident ID number, or
/// `None` if they are not 17 ASCII digits.
pub fn resident_id_check_char(first17: &str) -> Option<char> {
    if first17.len() != 17 {
        return None;
    }
    let mut sum = 0;
    for (c, weight) in first17.chars().zip(RESIDENT_ID_WEIGHTS) {
        sum += c.to_digit(10)? * weight;
    }
    let index = usize::try_from(sum % 11).ok()?;
    RESIDENT_ID_CHECK.get(index).map(|&b| char::from(b))
}

/// What is wrong with a resident ID number (upper case), if anything; the holder must be an
/// adult on `today`.
pub(crate) fn resident_id_problem(id: &str, today: Date) -> Option<String> {
    let count = id.chars().count();
    if count != 18 {
        return Some(format!(
            "a resident ID number has 18 characters, got {count}"
        ));
    }
    let (first17, last) = id.split_at(17);
    if !first17.bytes().all(|b| b.is_ascii_digit()) {
        return Some("the first 17 characters of a resident ID number must be digits".to_owned());
    }
    if !(last.bytes().all(|b| b.is_ascii_digit()) || last == "X") {
        return Some("the last character of a resident ID number must be a digit or X".to_owned());
    }
    let Some(birth) = Date::parse_compact(&id[6..14]) else {
        return Some("characters 7 to 14 must be a real birth date YYYYMMDD".to_owned());
    };
    if birth > today {
        return Some("the birth date in characters 7 to 14 is in the future".to_owned());
    }
    if resident_id_check_char(first17).map(String::from).as_deref() != Some(last) {
        return Some("not a valid resident ID number (check character)".to_owned());
    }
    if birth.years_until(today) < ADULT_AGE {
        return Some(format!(
            "the legal person must be at least {ADULT_AGE} years old"
        ));
    }
    None
}

/// What is wrong with a contact mobile number, if anything: 11 digits, "1", then 3-9.
pub(crate) fn phone_problem(phone: &str) -> Option<String> {
    let well_formed = phone.len() == 11
        && phone.bytes().all(|b| b.is_ascii_digit())
        && phone.starts_with('1')
        && matches!(phone.as_bytes()[1], b'3'..=b'9');
    (!well_formed).then(|| {
        "must be an 11-digit mainland mobile number such as 13812345678 (digits only)".to_owned()
    })
}

/// What is wrong with a device serial number, if anything: 1 to 32 of A-Z a-z 0-9 and '-'.
pub(crate) fn serial_problem(serial: &str) -> Option<String> {
    let count = serial.chars().count();
    if !(1..=32).contains(&count) {
        return Some(format!("must be 1 to 32 characters, got {count}"));
    }
    serial
        .chars()
        .position(|c| !(c.is_ascii_alphanumeric() || c == '-'))
        .map(|p| {
            format!(
                "may contain only letters, digits and '-', but character {} is not",
                p + 1
            )
        })
}

/// Whether `text` is a keyed token: 64 lowercase hex digits (HMAC-SHA-256).
pub(crate) fn is_token(text: &str) -> bool {
    text.len() == 64 && text.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Masks a resident ID number for display: first 6 + "********" + last 4
/// ("110105********002X"); shorter inputs are all stars.
pub fn mask_id_number(id: &str) -> String {
    keep_ends(id, 6, 4, None)
}

/// Masks a bank account for display: first 4 + "****" + last 4 ("6228****0018"); accounts
/// of fewer than 12 digits show only "****" + last 4, so that at least four digits stay hidden.
pub fn mask_account(account: &str) -> String {
    if account.chars().count() >= 12 {
        keep_ends(account, 4, 4, Some(4))
    } else {
        keep_ends(account, 0, 4, Some(4))
    }
}

/// Masks a mobile number for display: first 3 + "****" + last 4 ("138****5678").
pub fn mask_phone(phone: &str) -> String {
    keep_ends(phone, 3, 4, Some(4))
}

/// Masks a person's name for display: first character + one "*" per other character ("张*").
pub fn mask_name(name: &str) -> String {
    let mut chars = name.chars();
    match chars.next() {
        Some(first) => std::iter::once(first).chain(chars.map(|_| '*')).collect(),
        None => String::new(),
    }
}

/// Keeps `head` leading and `tail` trailing characters and replaces the middle with stars
/// (`stars` of them, or as many as were hidden); all stars when nothing would stay hidden.
fn keep_ends(text: &str, head: usize, tail: usize, stars: Option<usize>) -> String {
    let chars: Vec<char> = text.chars().collect();
    if chars.len() <= head + tail {
        return "*".repeat(stars.unwrap_or(chars.len()).max(chars.len()));
    }
    let hidden = chars.len() - head - tail;
    let mut masked: String = chars[..head].iter().collect();
    masked.push_str(&"*".repeat(stars.unwrap_or(hidden)));
    masked.extend(&chars[chars.len() - tail..]);
    masked
}

/// Checks a new operator password (in clear, before the service hashes it): 4 to 12 digits,
/// not the default "0000", not one repeated digit.
pub fn validate_new_password(password: &str) -> Result<(), FieldError> {
    let problem = |message: &str| Err(FieldError::new("new_password", message));
    if !password.bytes().all(|b| b.is_ascii_digit()) {
        return problem("must contain only digits");
    }
    if !(4..=12).contains(&password.len()) {
        return Err(FieldError::new(
            "new_password",
            format!("must be 4 to 12 digits, got {}", password.len()),
        ));
    }
    if password == DEFAULT_PASSWORD {
        return problem("must not be the default password");
    }
    if password
        .bytes()
        .all(|b| Some(&b) == password.as_bytes().first())
    {
        return problem("must not be one digit repeated (such as 1111)");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn today() -> Date {
        Date::new(2025, 3, 1).unwrap()
    }

    fn with_check(first17: &str) -> String {
        format!("{first17}{}", resident_id_check_char(first17).unwrap())
    }

    #[test]
    fn published_unified_social_credit_codes_pass() {
        // Huawei Technologies Co., Ltd. (Shenzhen) and two codes from public test suites.
        for code in [
            "914403001922038216",
            "91310110666007217T",
            "91110000MA01A7RH2R",
        ] {
            assert_eq!(uscc_problem(code), None, "{code}");
            assert_eq!(uscc_check_char(&code[..17]), code.chars().last());
        }
    }

    #[test]
    fn bad_unified_social_credit_codes_say_why() {
        assert_eq!(
            uscc_problem("914403001922038217").as_deref(),
            Some("not a valid unified social credit code (check character)")
        );
        // An early Xiamen pilot code that does not follow the standard's check character.
        assert!(uscc_problem("91350211M00013FA1N").is_some());
        assert_eq!(
            uscc_problem("91440300192203821").as_deref(),
            Some(
                "an enterprise needs its 18-character unified social credit code, got 17 characters"
            )
        );
        assert_eq!(
            uscc_problem("9144030019220382I6").as_deref(),
            Some(
                "character 17 is not allowed: a unified social credit code uses 0-9 and A-Z except I, O, S, V and Z"
            )
        );
        assert_eq!(
            uscc_problem("9144A3001922038216").as_deref(),
            Some("characters 3 to 8 must be digits (the region code)")
        );
    }

    #[test]
    fn resident_id_numbers_follow_gb_11643() {
        // The example printed in GB 11643-1999.
        assert_eq!(resident_id_problem("11010519491231002X", today()), None);
        assert_eq!(resident_id_check_char("11010519491231002"), Some('X'));
        assert_eq!(resident_id_check_char("31010419900101123"), Some('3'));
        assert_eq!(resident_id_problem("310104199001011233", today()), None);
        assert_eq!(
            resident_id_problem("310104199001011234", today()).as_deref(),
            Some("not a valid resident ID number (check character)")
        );
        assert_eq!(
            resident_id_problem("3101041990130112", today()).as_deref(),
            Some("a resident ID number has 18 characters, got 16")
        );
        assert_eq!(
            resident_id_problem(&with_check("31010419901301123"), today()).as_deref(),
            Some("characters 7 to 14 must be a real birth date YYYYMMDD")
        );
        assert_eq!(
            resident_id_problem(&with_check("31010420300101123"), today()).as_deref(),
            Some("the birth date in characters 7 to 14 is in the future")
        );
        assert_eq!(
            resident_id_problem(&with_check("31010420080101123"), today()).as_deref(),
            Some("the legal person must be at least 18 years old")
        );
        assert!(resident_id_problem("31010419900101123A", today()).is_some());
    }

    #[test]
    fn masks_keep_only_what_may_be_shown() {
        assert_eq!(mask_id_number("11010519491231002X"), "110105********002X");
        assert_eq!(mask_account("6228480402564890018"), "6228****0018");
        assert_eq!(mask_account("12345678"), "****5678");
        assert_eq!(mask_account("1234"), "****");
        assert_eq!(mask_phone("13812345678"), "138****5678");
        assert_eq!(mask_name("张三"), "张*");
        assert_eq!(mask_name("欧阳娜娜"), "欧***");
    }

    #[test]
    fn phones_and_serials() {
        assert_eq!(phone_problem("13812345678"), None);
        assert!(phone_problem("12812345678").is_some());
        assert!(phone_problem("1381234567").is_some());
        assert_eq!(serial_problem("A8-2024-000123"), None);
        assert_eq!(
            serial_problem("A8 2024").as_deref(),
            Some("may contain only letters, digits and '-', but character 3 is not")
        );
        assert!(serial_problem(&"9".repeat(33)).is_some());
        assert!(serial_problem("").is_some());
    }

    #[test]
    fn new_passwords_must_be_digits_and_not_trivial() {
        assert_eq!(validate_new_password("2580"), Ok(()));
        assert_eq!(validate_new_password("123456789012"), Ok(()));
        let message = |p: &str| validate_new_password(p).unwrap_err().to_string();
        assert_eq!(
            message("0000"),
            "new_password: must not be the default password"
        );
        assert_eq!(
            message("1111"),
            "new_password: must not be one digit repeated (such as 1111)"
        );
        assert_eq!(message("12a4"), "new_password: must contain only digits");
        assert_eq!(
            message("123"),
            "new_password: must be 4 to 12 digits, got 3"
        );
        assert!(validate_new_password("1234567890123").is_err());
    }
}
