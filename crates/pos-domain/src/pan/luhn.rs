//! The Luhn (mod 10) check digit that every card number ends with (ISO/IEC 7812-1).

/// Whether `digits` (ASCII digits only) ends with a correct Luhn check digit.
pub fn is_valid(digits: &str) -> bool {
    !digits.is_empty() && weighted_sum(digits, false).is_some_and(|sum| sum % 10 == 0)
}

/// The check digit to append to `payload` (ASCII digits only), or `None` if it has a non-digit.
pub fn check_digit(payload: &str) -> Option<u8> {
    let sum = weighted_sum(payload, true)?;
    u8::try_from((10 - sum % 10) % 10).ok()
}

/// Sums the digits from the right, doubling every second one (the rightmost one first when
/// `double_rightmost`) and subtracting 9 from doubled values above 9.
fn weighted_sum(digits: &str, double_rightmost: bool) -> Option<u32> {
    let mut sum = 0;
    for (index, c) in digits.chars().rev().enumerate() {
        let digit = c.to_digit(10)?;
        let doubled = (index % 2 == 0) == double_rightmost;
        sum += match (doubled, digit * 2) {
            (true, twice) if twice > 9 => twice - 9,
            (true, twice) => twice,
            (false, _) => digit,
        };
    }
    Some(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_known_card_numbers() {
        assert!(is_valid("4111111111111111"));
        assert!(is_valid("6228480402564890018"));
        assert!(is_valid("79927398713"));
        assert!(!is_valid("4111111111111112"));
        assert!(!is_valid("79927398710"));
        assert!(!is_valid(""));
        assert!(!is_valid("4111x11111111111"));
    }

    #[test]
    fn computes_the_check_digit() {
        assert_eq!(check_digit("411111111111111"), Some(1));
        assert_eq!(check_digit("7992739871"), Some(3));
        assert_eq!(check_digit("622202020011223344"), Some(6));
        assert_eq!(check_digit("12a"), None);
    }
}
